"""Every command line explains itself: each flag of each console script (and `make demo`) has help
text that shows its default, `--device` means the same everywhere (auto, as the node), and
`m4sam_node --help` prints the node's parameters and exits without starting ROS or a model."""

import argparse
import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from m4sam_ros.ros.params import PARAMS
from m4sam_ros.util.cli import resolve_device

ROOT = Path(__file__).resolve().parent.parent


def console_scripts() -> dict[str, str]:
    """name -> module of every console script in setup.py, plus `make demo`'s module."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " = m4sam_ros." in node.value:
            name, target = (part.strip() for part in node.value.split("="))
            out[name] = target.split(":")[0]
    out["m4sam-demo"] = "m4sam_ros.apps.demo"
    return out


SCRIPTS = console_scripts()
TOOLS = {name: module for name, module in SCRIPTS.items() if name != "m4sam_node"}
#: the tools that run a model on a device of their choosing
WITH_DEVICE = {"m4sam-train", "m4sam-eval", "m4sam-bag", "m4sam-bench", "m4sam-heldout", "m4sam-gpu-run"}


def test_the_scripts_are_all_here():
    assert len(SCRIPTS) == 15 and {"m4sam_node", "m4sam_wait_active", "m4sam-bag", "m4sam-train", "m4sam-soak"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_flag_has_help_showing_its_default(name):
    parser = importlib.import_module(TOOLS[name]).build_parser()
    formatter = parser._get_formatter()
    missing, no_default = [], []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flag = "/".join(action.option_strings) or action.dest
        if not (action.help or "").strip():
            missing.append(flag)
            continue
        if action.option_strings and not action.required:
            shown = formatter._expand_help(action)
            if "default" not in shown.lower():
                no_default.append(f"{flag}: {shown!r}")
    assert not missing, f"{name}: flags without help: {missing}"
    assert not no_default, f"{name}: help that does not show the default: {no_default}"
    text = parser.format_help()
    assert parser.prog == name and "(default:" in text


@pytest.mark.parametrize("name", sorted(WITH_DEVICE))
def test_device_defaults_to_auto_and_says_so(name):
    parser = importlib.import_module(TOOLS[name]).build_parser()
    action = next(a for a in parser._actions if "--device" in a.option_strings)
    assert action.default == "auto"
    shown = parser._get_formatter()._expand_help(action)
    assert "(default: auto)" in shown and "cuda when available" in shown


def test_no_other_tool_takes_a_device():
    others = {n for n, m in TOOLS.items()
              if any("--device" in a.option_strings for a in importlib.import_module(m).build_parser()._actions)}
    assert others == WITH_DEVICE


def test_resolve_device():
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(" cpu ") == "cpu"
    for bad in ("gpu", "cuda:x", "", "CPU"):
        with pytest.raises(ValueError, match="must be auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here.*use auto or cpu"):
            resolve_device("cuda:0")


def test_bag_tool_refuses_a_device_it_cannot_use(tmp_path, capsys):
    """m4sam-bag --device gpu: one line naming the flag's values, exit 2, nothing written."""
    from m4sam_ros.apps import bag
    from m4sam_ros.data.synth import generate_video, write_bag

    src = write_bag(generate_video(3, 2, 64, 48, 15.0), tmp_path / "in")
    code = bag.main(["--input", str(src), "--output", str(tmp_path / "out"), "--device", "gpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "device 'gpu': must be auto, cpu, cuda or cuda:N" in err
    assert not (tmp_path / "out").exists()


def test_node_help_lists_every_parameter_and_exits():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "m4sam_ros.ros.node", "--help"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: m4sam_node")
    for name, spec in PARAMS.items():
        default = f'"{spec.default}"' if isinstance(spec.default, str) else str(spec.default).lower()
        assert f"  {name} (default {default};" in out.stdout, name
        assert spec.description.split()[0] in out.stdout
    assert 'device (default "auto";' in out.stdout and "one of auto|memory|coarse|combined" in out.stdout
    assert out.stderr == ""  # no ROS log line: nothing started


def test_node_help_starts_neither_ros_nor_a_model(monkeypatch, capsys):
    import rclpy

    from m4sam_ros.ros import model_loader, node

    def started(*_a, **_k):
        raise AssertionError("--help started rclpy / built a model")

    monkeypatch.setattr(rclpy, "init", started)
    monkeypatch.setattr(model_loader, "build_predictor", started)
    for argv in (["m4sam_node", "--help"], ["m4sam_node", "-h", "--ros-args", "-p", "device:=cpu"]):
        with pytest.raises(SystemExit) as exc:
            node.main(argv)
        assert exc.value.code == 0
        assert "checkpoint (default" in capsys.readouterr().out

"""Launch files and config: they parse, and name only executables, parameters, launch arguments
and files that exist. When launch_ros is importable the descriptions are also built for real."""

import ast
import importlib.util
import os
import re
from pathlib import Path

import pytest
import yaml

from m4sam_ros.ros.node import PARAMS

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
NODE_PARAMS = set(PARAMS) | {"use_sim_time"}
# executables of other packages the launch files may start (they come from the ROS install)
FOREIGN_EXECUTABLES = {("rviz2", "rviz2")}


def _console_scripts():
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " = " in node.value:
            yield node.value.split(" = ")[0].strip()


def _kw(call, name):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _calls(tree, func_name):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name == func_name:
                yield node


def _str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def test_there_are_the_three_launch_files():
    assert {p.name for p in LAUNCH_FILES} == {"m4sam.launch.py", "realsense.launch.py", "rosbag.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_only_what_exists(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"]
    assert fns, "no generate_launch_description()"

    declared = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        name = _str(call.args[0])
        assert name, "argument name must be a literal"
        desc = _str(_kw(call, "description"))
        assert desc, f"{name}: no description"
        choices = _kw(call, "choices")
        default = _kw(call, "default_value")
        if choices is not None:
            values = [_str(c) for c in choices.elts]
            assert all(values)
            if _str(default) is not None:
                assert _str(default) in values, f"{name}: default {default.value!r} not in {values}"
        declared[name] = default
    for call in _calls(tree, "LaunchConfiguration"):
        assert _str(call.args[0]) in declared, f"LaunchConfiguration({_str(call.args[0])!r}) is not declared"
    # finite-valued booleans get choices
    for call in _calls(tree, "DeclareLaunchArgument"):
        if _str(_kw(call, "default_value")) in ("true", "false"):
            assert _kw(call, "choices") is not None, f"{_str(call.args[0])}: boolean without choices"

    scripts = set(_console_scripts())
    for call in _calls(tree, "Node"):
        pkg, exe = _str(_kw(call, "package")), _str(_kw(call, "executable"))
        assert pkg and exe
        if pkg == "m4sam_ros":
            assert exe in scripts, f"{exe} is not a console script of setup.py"
        else:
            assert (pkg, exe) in FOREIGN_EXECUTABLES
        params = _kw(call, "parameters")
        for item in params.elts if params is not None else []:
            if isinstance(item, ast.Dict):
                for key in item.keys:
                    assert _str(key) in NODE_PARAMS, f"unknown parameter {_str(key)!r}"

    # every file named in this package's share/ exists in the source tree
    for call in _calls(tree, "PathJoinSubstitution"):
        parts = call.args[0].elts
        pkg_call = parts[0]
        if isinstance(pkg_call, ast.Call) and _str(pkg_call.args[0]) == "m4sam_ros":
            rel = [_str(p) for p in parts[1:]]
            assert all(rel) and (ROOT.joinpath(*rel)).is_file(), f"missing {'/'.join(rel)}"

    # arguments handed to an included m4sam.launch.py are ones it declares
    inner = {_str(c.args[0]) for c in _calls(ast.parse((ROOT / "launch/m4sam.launch.py").read_text()),
                                             "DeclareLaunchArgument")}
    for call in _calls(tree, "IncludeLaunchDescription"):
        src = ast.unparse(call.args[0])
        args = _kw(call, "launch_arguments")
        if "m4sam.launch.py" in src and args is not None:
            keys = {_str(k) for k in args.func.value.keys}
            assert keys <= inner, f"unknown arguments {keys - inner}"


def test_rosbag_launch_plays_with_clock_and_sim_time():
    text = (ROOT / "launch/rosbag.launch.py").read_text()
    assert re.search(r'"ros2", "bag", "play", bag, "--clock"', text)
    assert '"use_sim_time": "true"' in text


def test_realsense_launch_aligns_depth():
    text = (ROOT / "launch/realsense.launch.py").read_text()
    assert '"align_depth.enable": "true"' in text and '"rs_launch.py"' in text


def test_params_yaml_lists_every_parameter_with_valid_values():
    doc = yaml.safe_load((ROOT / "config/m4sam.yaml").read_text())
    params = doc["/**"]["ros__parameters"]
    assert set(params) == set(PARAMS), f"missing {set(PARAMS) - set(params)}, unknown {set(params) - set(PARAMS)}"
    from m4sam_ros.ros.node import check_param

    for name, value in params.items():
        assert type(value) is type(PARAMS[name].default), f"{name}: {type(value).__name__}"
        assert check_param(name, value) is None
    # every parameter line carries a comment (on the line or just above)
    lines = (ROOT / "config/m4sam.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s+(\w+):\s*\S", line)
        if m and m.group(1) in PARAMS:
            assert "#" in line or lines[i - 1].strip().startswith("#"), f"{m.group(1)} has no comment"


def test_rviz_config_shows_the_outputs():
    cfg = yaml.safe_load((ROOT / "config/m4sam.rviz").read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"]: d["Class"] for d in displays if "Topic" in d}
    assert topics["/m4sam/mask"] == topics["/m4sam/overlay"] == "rviz_default_plugins/Image"
    assert topics["/m4sam/markers"] == "rviz_default_plugins/MarkerArray"
    assert topics["/m4sam/object_points"] == "rviz_default_plugins/PointCloud2"
    assert any(t.endswith("color/image_raw") for t in topics)


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None, reason="launch_ros not installed")
@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_generate_launch_description_runs(path):  # pragma: no cover - needs a ROS install
    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    assert isinstance(ld, LaunchDescription) and ld.get_launch_arguments()
    assert os.fspath(path)

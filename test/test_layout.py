"""The tree is the architecture: imports point down only, and the core imports no ROS package.

Rules out: a lower package reaching up (``model`` importing the predictor, ``data`` importing
``training``), a ROS import creeping into the core (``msgs``/``scene``/``model``/``predictor``/
``data``), a circle inside a package (``model.build`` <-> ``model.checkpoint``), and code still
written against the module paths of the old flat layout.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import m4sam_ros

PKG = Path(m4sam_ros.__file__).resolve().parent
ROOT = PKG.parent
EVERYTHING = {"util", "msgs", "scene", "viz", "model", "data", "predictor", "training", "evaluation", "ros",
              "export"}
# package -> the packages it may import (besides itself); docs/DESIGN.md draws the same
ALLOWED: dict[str, set[str]] = {
    "util": set(),
    "msgs": {"util"},
    "scene": {"util"},
    "viz": {"util"},
    "model": {"util"},
    "data": {"model", "msgs", "util"},
    "predictor": {"model", "util"},
    "training": {"model", "data", "viz", "util"},
    "export": {"model", "util"},
    "evaluation": {"predictor", "model", "data", "viz", "util"},
    "ros": {"predictor", "model", "msgs", "scene", "viz", "util"},
    "apps": EVERYTHING,
    "benchmarks": EVERYTHING | {"apps"},
}
ROS_FREE = {"util", "msgs", "scene", "viz", "model", "data", "predictor", "training", "evaluation", "export"}
ROS_MODULES = {"rclpy", "rcl_interfaces", "message_filters", "cv_bridge", "sensor_msgs", "sensor_msgs_py",
               "std_msgs", "std_srvs", "geometry_msgs", "visualization_msgs", "diagnostic_msgs", "vision_msgs",
               "lifecycle_msgs", "builtin_interfaces", "launch", "launch_ros", "rosidl_runtime_py",
               "image_geometry", "diagnostic_updater", "rclpy_message_converter"}


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every absolute module an import statement in ``path`` names (also inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1]  # a module's package; for __init__.py that is the package itself
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
            out += [(f"{mod}.{a.name}", node.lineno) for a in node.names]  # `from m4sam_ros import sync`
    return out


def package_of(path: Path) -> str | None:
    parts = path.relative_to(PKG).parts
    return parts[0] if len(parts) > 1 else None


def violations(pkg_dir: Path = PKG) -> list[str]:
    bad = []
    for path in sorted(pkg_dir.rglob("*.py")):
        own = package_of(path)
        for mod, line in imports_of(path):
            top = mod.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}"
            if top == "m4sam_ros":
                parts = mod.split(".")
                target = parts[1] if len(parts) > 1 else None
                if target in m4sam_ros.MOVED or mod in m4sam_ros.MOVED:
                    bad.append(f"{where} imports {mod} by its old path ({m4sam_ros.MOVED.get(mod)})")
                if own is None or target is None or target == own or target not in ALLOWED:
                    continue
                if target not in ALLOWED[own]:
                    bad.append(f"{where}: {own} imports {mod} (a {target} module; {own} may import "
                               f"{sorted(ALLOWED[own]) or 'nothing of the project'})")
            elif own in ROS_FREE and top in ROS_MODULES:
                bad.append(f"{where}: {own} is ROS-free but imports {mod}")
    return bad


def test_every_package_is_in_the_layer_map() -> None:
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED), "a new package needs its place in ALLOWED and in docs/DESIGN.md"
    loose = sorted(p.name for p in PKG.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules on the ground floor: {loose}"


def test_imports_point_down_and_the_core_imports_no_ros() -> None:
    assert violations() == []


def test_the_check_sees_an_upward_import_a_ros_import_and_an_old_path(tmp_path: Path, monkeypatch) -> None:
    """Negative control: the same scan over a copy with three planted faults reports each."""
    import shutil

    copy = tmp_path / "m4sam_ros"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__", "assets", "configs"))
    (copy / "model" / "bad_up.py").write_text("from m4sam_ros.predictor import StreamingPredictor\n")
    (copy / "msgs" / "bad_ros.py").write_text("def f():\n    import rclpy\n")
    (copy / "scene" / "bad_old.py").write_text("from m4sam_ros import sync\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", copy)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = "\n".join(violations(copy))
    assert "model/bad_up.py:1: model imports m4sam_ros.predictor" in found
    assert "msgs/bad_ros.py:2: msgs is ROS-free but imports rclpy" in found
    assert "scene/bad_old.py:1 imports m4sam_ros.sync by its old path" in found


def test_model_build_and_checkpoint_do_not_import_each_other() -> None:
    names = {p.stem: {m for m, _ in imports_of(p)} for p in (PKG / "model").glob("*.py")}
    assert "m4sam_ros.model.build" not in names["checkpoint"]
    assert "m4sam_ros.model.checkpoint" in names["build"]


def test_tests_and_tools_use_the_new_paths() -> None:
    old = sorted(m4sam_ros.MOVED)
    bad = []
    for path in sorted((ROOT / "test").glob("*.py")) + sorted((ROOT / "tools").glob("*.py")):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        bad += [f"{path.name}: {o}" for o in old if f"{o} " in text or f"{o}\n" in text or f'{o}"' in text
                or f"{o}." in text or f"{o.replace('.', '/')}.py" in text]
    assert bad == []


@pytest.mark.parametrize("old", ["m4sam_ros.sync", "m4sam_ros.train", "m4sam_ros.data.depth"])
def test_old_module_paths_still_import_with_a_warning(old: str) -> None:
    code = (f"import warnings, importlib; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    importlib.import_module({old!r})\nexcept DeprecationWarning as w:\n    print('W', w)\n"
            f"warnings.simplefilter('ignore')\nm = importlib.import_module({old!r})\nprint(m.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    new = m4sam_ros.MOVED[old]
    assert out.stdout.split("\n")[:2] == [f"W {old} moved to {new}; import it from there", new]


def test_public_imports_the_docs_show_still_work() -> None:
    from m4sam_ros.data.synth import generate_video  # noqa: F401
    from m4sam_ros.model import build_m4sam, load_config  # noqa: F401
    from m4sam_ros.predictor import SaliencyResult, StreamingPredictor  # noqa: F401

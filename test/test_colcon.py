"""The package as a ROS 2 workspace sees it: package.xml parsed by catkin_pkg, then a real colcon
build (colcon from the index, `python -m colcon` from this venv) of a copy of the checkout in a
temporary workspace, used through nothing but the generated setup script: the ament index finds
the package, share/ has launch/, config/, package.xml, `ros2 run`'s executable starts the node,
`colcon test` runs tests. This reproduces the README's workspace recipe as far as this machine
allows (no apt ROS here: the venv's ROS wheels stand in for /opt/ros)."""

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parent.parent
PKG = "m4sam_ros"
# Python modules that are ROS packages but not imported as such by name.
NOT_ROS = {PKG}


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH", "PYTHONPATH", "CMAKE_PREFIX_PATH")}
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------ package.xml
def test_package_xml_is_valid_format_3_ament_python():
    pkg = parse_package(str(ROOT / "package.xml"))  # raises on invalid XML / schema violations
    pkg.validate()
    assert pkg.name == PKG and pkg.package_format == 3
    assert pkg.get_build_type() == "ament_python"
    assert [d.name for d in pkg.buildtool_depends] == ["ament_python"]
    exec_deps = {d.name for d in pkg.exec_depends}
    assert "rviz2" not in exec_deps, "rviz2 must stay optional (headless robots)"
    assert "cv_bridge" not in exec_deps, "images are decoded by m4sam_ros.msgs.image_codec, not cv_bridge"
    assert {"python3-numpy", "python3-opencv", "python3-yaml", "python3-tqdm", "python3-matplotlib"} <= exec_deps
    xml = (ROOT / "package.xml").read_text()
    for pip_only in ("torch", "sam2", "pysodmetrics", "rosbags"):
        assert pip_only in xml, f"package.xml must say where {pip_only} comes from"
    # setup.py agrees on name, version and licence; the LICENSE file is that licence.
    setup_py = (ROOT / "setup.py").read_text()
    assert f'version="{pkg.version}"' in setup_py and f'license="{pkg.licenses[0]}"' in setup_py
    assert pkg.licenses == ["Apache-2.0"]
    lic = (ROOT / "LICENSE").read_text()
    assert "Apache License" in lic and "Version 2.0, January 2004" in lic and "END OF TERMS AND CONDITIONS" in lic


def _imported_top_modules():
    files = list((ROOT / PKG).rglob("*.py")) + list((ROOT / "launch").glob("*.py"))
    mods = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.add(node.module.split(".")[0])
    return mods


def test_every_ros_import_is_declared():
    """A top-level import that is a ROS package (it has an ament index entry in this environment,
    or is one of the optional ones) must be an exec_depend."""
    index = Path(sys.prefix) / "share" / "ament_index" / "resource_index" / "packages"
    ros_packages = {p.name for p in index.iterdir()} | {"vision_msgs", "message_filters", "sensor_msgs_py",
                                                        "launch", "launch_ros", "cv_bridge", "rviz2"}
    imported = _imported_top_modules()
    ros_imports = (imported & ros_packages) - NOT_ROS
    assert {"rclpy", "sensor_msgs", "launch", "launch_ros", "rcl_interfaces", "builtin_interfaces",
            "ament_index_python", "message_filters", "sensor_msgs_py", "vision_msgs"} <= ros_imports
    declared = {d.name for d in parse_package(str(ROOT / "package.xml")).exec_depends}
    assert ros_imports - declared == set()
    if "rclpy" in ros_imports and "lifecycle" in (ROOT / PKG / "ros" / "node.py").read_text():
        assert "lifecycle_msgs" in declared  # rclpy.lifecycle speaks lifecycle_msgs


# ---------------------------------------------------------------------------------------- colcon
def _checkout_files():
    """The files of a clone: tracked plus new, not ignored (what `git clone` + local edits give)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / PKG
    for rel in _checkout_files():
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst)
    colcon = [sys.executable, "-m", "colcon"]
    listed = subprocess.run(colcon + ["list"], cwd=ws, env=_clean_env(), capture_output=True, text=True,
                            timeout=120)
    build = subprocess.run(colcon + ["build", "--event-handlers", "console_direct-"], cwd=ws,
                           env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return ws, listed.stdout


def _in_workspace(ws, script, timeout=120):
    """Runs `script` in bash after sourcing ONLY the workspace's generated setup."""
    return subprocess.run(["bash", "-c", f"source install/setup.bash && {script}"], cwd=ws,
                          env=_clean_env(), capture_output=True, text=True, timeout=timeout)


def test_colcon_sees_a_ros_ament_python_package(workspace):
    ws, listed = workspace
    assert re.search(rf"^{PKG}\s+src/{PKG}\s+\(ros\.ament_python\)$", listed, re.M), listed


def test_ament_index_finds_the_installed_package(workspace):
    ws, _ = workspace
    code = ("from ament_index_python.packages import get_package_share_directory as s, get_package_prefix as p;"
            f"import {PKG}; print(s('{PKG}')); print(p('{PKG}')); print({PKG}.__file__)")
    out = _in_workspace(ws, f"{sys.executable} -c \"{code}\"")
    assert out.returncode == 0, out.stderr
    share, prefix, module = out.stdout.split()
    assert Path(share) == ws / "install" / PKG / "share" / PKG
    assert Path(prefix) == ws / "install" / PKG
    assert Path(module).is_relative_to(ws / "install"), "the workspace's copy must win over the venv's"
    assert {p.name for p in Path(share).iterdir()} >= {"launch", "config", "package.xml"}
    assert {p.name for p in (Path(share) / "launch").iterdir()} == {
        "m4sam.launch.py", "realsense.launch.py", "rosbag.launch.py"}
    assert {p.name for p in (Path(share) / "config").iterdir()} >= {"m4sam.yaml", "m4sam.rviz"}


def test_tools_are_where_ros2_run_looks(workspace):
    """`ros2 run m4sam_ros <tool>` runs <prefix>/lib/m4sam_ros/<tool>; the interpreter is the venv's."""
    ws, _ = workspace
    lib = ws / "install" / PKG / "lib" / PKG
    tools = {"m4sam_node", "m4sam-bag", "m4sam-train", "m4sam-eval", "m4sam-bench", "m4sam-synth"}
    assert tools <= {p.name for p in lib.iterdir()}
    for t in tools:
        assert os.access(lib / t, os.X_OK)
        assert (lib / t).read_text().splitlines()[0] == f"#!{sys.executable}"
    # the path `ros2 run` builds: <prefix from the ament index>/lib/<package>/<executable>
    code = f"from ament_index_python.packages import get_package_prefix; print(get_package_prefix('{PKG}'))"
    out = _in_workspace(ws, f'"$({sys.executable} -c "{code}")/lib/{PKG}/m4sam-bag" --help')
    assert out.returncode == 0 and "usage: m4sam-bag" in out.stdout, out.stderr[-2000:]


def test_installed_node_executable_starts_the_node(workspace):
    """lib/m4sam_ros/m4sam_node (what `ros2 run m4sam_ros m4sam_node` starts) builds the model,
    reaches active and stops cleanly on SIGINT."""
    ws, _ = workspace
    share = ws / "install" / PKG / "share" / PKG
    exe = ws / "install" / PKG / "lib" / PKG / "m4sam_node"
    env = _clean_env(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    cmd = (f"exec {exe} --ros-args --params-file {share}/config/m4sam.yaml -p device:=cpu "
           "-r __node:=m4sam_colcon_test")
    proc = subprocess.Popen(["bash", "-c", f"source install/setup.bash && {cmd}"], cwd=ws, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "model ready" in line:
                break
        assert any("model ready" in ln for ln in lines), "".join(lines)[-3000:]
        assert any("device cpu" in ln for ln in lines if "model ready" in ln)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, "".join(lines)[-2000:] + rest[-2000:]
    assert "Traceback" not in rest and "context is invalid" not in rest, rest[-2000:]


def test_colcon_test_runs_the_packages_tests(workspace, shared_ros):
    """`colcon test` collects and runs tests (extras_require, not the ignored tests_require)."""
    ws, _ = workspace
    colcon = [sys.executable, "-m", "colcon"]
    out = subprocess.run(colcon + ["test", "--event-handlers", "console_direct-", "--pytest-args",
                                   "test/test_image_codec.py", "-q"],
                         cwd=ws, env=_clean_env(OMP_NUM_THREADS="1", M4SAM_SHARED_ROS=str(shared_ros)), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = subprocess.run(colcon + ["test-result", "--all"], cwd=ws, env=_clean_env(), capture_output=True,
                         text=True, timeout=60)
    m = re.search(r"Summary: (\d+) tests, (\d+) errors, (\d+) failures, (\d+) skipped", res.stdout)
    assert m, res.stdout + res.stderr
    tests, errors, failures, _ = map(int, m.groups())
    assert tests >= 20 and errors == 0 and failures == 0, res.stdout

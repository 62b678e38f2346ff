"""Launch files and config: they parse, and name only executables, parameters, launch arguments
and files that exist; then the three launch files run through the REAL launch / launch_ros
(LaunchService, as `ros2 launch` does), the RealSense include resolved against the real
realsense2_camera rs_launch.py, with stand-ins (test/ros_standins/) for realsense2_camera_node,
rviz2 and `ros2 bag play`: masks must arrive on the remapped, namespaced topics and RViz must be
given a config that shows them."""

import ast
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray  # rosidl-generated in the test environment (make testenv)

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
    for call in [*_calls(tree, "Node"), *_calls(tree, "LifecycleNode")]:
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


MODEL_ARGS = ("checkpoint", "sam2_checkpoint", "device", "output", "params_file")


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_rviz_defaults_to_false_and_model_arguments_are_forwarded(path):
    """A fresh install has no rviz2: RViz is opt-in everywhere. Every file takes the model
    arguments and hands them on to m4sam.launch.py unchanged (which gives them to the node)."""
    tree = ast.parse(path.read_text())
    declared = {_str(c.args[0]): _str(_kw(c, "default_value")) for c in _calls(tree, "DeclareLaunchArgument")}
    assert declared["rviz"] == "false"
    assert set(MODEL_ARGS) <= set(declared)
    assert all(declared[name] == "" for name in MODEL_ARGS if name != "params_file")
    for call in _calls(tree, "IncludeLaunchDescription"):
        if "m4sam.launch.py" in ast.unparse(call.args[0]):
            forwarded = dict(zip((_str(k) for k in _kw(call, "launch_arguments").func.value.keys),
                                 _kw(call, "launch_arguments").func.value.values, strict=True))
            for name in MODEL_ARGS:
                assert ast.unparse(forwarded[name]) == f"LaunchConfiguration({name!r})", name


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


def test_rviz_config_template_shows_the_outputs():
    cfg = yaml.safe_load((ROOT / "config/m4sam.rviz").read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"]: d["Class"] for d in displays if "Topic" in d}
    assert topics["/m4sam/mask"] == topics["/m4sam/overlay"] == "rviz_default_plugins/Image"
    assert topics["/m4sam/markers"] == "rviz_default_plugins/MarkerArray"
    assert topics["/m4sam/object_points"] == "rviz_default_plugins/PointCloud2"
    assert any(t.endswith("color/image_raw") for t in topics)


def _load_launch_module(path):
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rviz_config_follows_namespace_topics_and_frame():
    mod = _load_launch_module(ROOT / "launch/m4sam.launch.py")
    cfg = mod.rviz_config(ROOT / "config/m4sam.rviz", "/robot1/", "/rig/cam1/color/image_raw", "cam1_color_optical_frame")
    topics = {d["Topic"]["Value"] for d in cfg["Visualization Manager"]["Displays"] if "Topic" in d}
    assert topics == {"/robot1/m4sam/mask", "/robot1/m4sam/overlay", "/robot1/m4sam/markers",
                      "/robot1/m4sam/object_points", "/rig/cam1/color/image_raw"}
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == "cam1_color_optical_frame"
    plain = mod.rviz_config(ROOT / "config/m4sam.rviz", "", "/camera/camera/color/image_raw", "f")
    assert "/m4sam/mask" in {d["Topic"]["Value"] for d in plain["Visualization Manager"]["Displays"] if "Topic" in d}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_generate_launch_description_runs(path):
    from launch import LaunchDescription

    ld = _load_launch_module(path).generate_launch_description()
    assert isinstance(ld, LaunchDescription) and ld.get_launch_arguments()


# ------------------------------------------------------------------ the real launch, for real
STANDINS = Path(__file__).resolve().parent / "ros_standins"


def _wrapper(path, script, args=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {str(path)!r}\n{args}"
                    f"runpy.run_path({str(script)!r}, run_name='__main__')\n")
    path.chmod(0o755)


#: the installed m4sam_node; $SLOW_CONFIGURE=S makes its model load S seconds longer (a big model)
NODE_SCRIPT = """
import os, time
from m4sam_ros.ros import model_loader
slow, real = float(os.environ.get("SLOW_CONFIGURE", "0")), model_loader.build_predictor
def build_slowly(p):
    time.sleep(slow)
    return real(p)
model_loader.build_predictor = build_slowly
from m4sam_ros.ros.node import main
main()
"""


def _m4sam_prefix(pre: Path, packages: tuple[str, ...]) -> Path:
    """m4sam_ros (this checkout) installed under ``pre``, plus ament index entries for ``packages``."""
    index = pre / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    for pkg in ("m4sam_ros", *packages):
        (index / pkg).touch()
    share = pre / "share" / "m4sam_ros"
    share.mkdir()
    for name in ("launch", "config", "package.xml"):
        (share / name).symlink_to(ROOT / name)
    node = pre / "lib" / "m4sam_ros" / "m4sam_node"
    node.parent.mkdir(parents=True)
    node.write_text(f"#!{sys.executable}\n{NODE_SCRIPT}")
    node.chmod(0o755)
    waiter = pre / "lib" / "m4sam_ros" / "m4sam_wait_active"
    waiter.write_text(f"#!{sys.executable}\nimport sys\nfrom m4sam_ros.ros.wait_active import main\nsys.exit(main())\n")
    waiter.chmod(0o755)
    return pre


@pytest.fixture(scope="module")
def bare_prefix(tmp_path_factory):
    """A fresh install: m4sam_ros only, neither rviz2 nor realsense2_camera."""
    return _m4sam_prefix(tmp_path_factory.mktemp("bare_prefix"), ())


@pytest.fixture(scope="module")
def prefix(tmp_path_factory, shared_ros):
    """An install prefix as a ROS install lays it out: m4sam_ros (this checkout), realsense2_camera
    (the real rs_launch.py + a stand-in node), rviz2 (stand-in); `ros2` (bag play stand-in) on PATH."""
    pre = _m4sam_prefix(tmp_path_factory.mktemp("ros_prefix"), ("realsense2_camera", "rviz2"))
    rs = pre / "share" / "realsense2_camera" / "launch"
    rs.mkdir(parents=True)
    (rs / "rs_launch.py").symlink_to(shared_ros / "realsense" / "rs_launch.py")
    _wrapper(pre / "lib" / "realsense2_camera" / "realsense2_camera_node", STANDINS / "camera_standin.py")
    _wrapper(pre / "lib" / "rviz2" / "rviz2", STANDINS / "rviz2_standin.py")
    _wrapper(pre / "bin" / "ros2", STANDINS / "camera_standin.py")
    return pre


class Launched:
    """`ros2 launch` of one file (the real LaunchService) + an rclpy subscriber to one topic."""

    def __init__(self, prefix, tmp_path, launch_file, args, topic, **env):
        self.record = tmp_path / "record"
        self.env = dict(os.environ, AMENT_PREFIX_PATH=f"{prefix}:{sys.prefix}",
                        PATH=f"{prefix / 'bin'}:{os.environ['PATH']}", STANDIN_RECORD=str(self.record),
                        OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0", **env)
        self.procs = []
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("launch_test_listener", context=self.ctx)
        self.got, self.detections = [], []
        self.node.create_subscription(Image, topic, self.got.append, qos_profile_sensor_data)
        self.node.create_subscription(Detection2DArray, topic.rsplit("/", 1)[0] + "/detections",
                                      self.detections.append, qos_profile_sensor_data)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self.spinner.start()
        self.launch = self.start([sys.executable, str(STANDINS / "run_launch.py"),
                                  str(prefix / "share" / "m4sam_ros" / "launch" / launch_file), *args])

    def start(self, cmd):
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def wait_masks(self, n=2, timeout=120):
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline and self.launch.poll() is None:
            time.sleep(0.2)
        return len(self.got) >= n

    def stop(self):
        outs = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                outs.append(proc.communicate(timeout=60)[0])
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                outs.append(proc.communicate()[0])
        self.executor.shutdown(timeout_sec=5)
        self.spinner.join(timeout=5)
        self.node.destroy_node()
        self.ctx.try_shutdown()
        return outs


def _check_stopped_cleanly(log):
    assert "Traceback" not in log, log[-4000:]
    assert not re.search(r"process has died.*m4sam_node", log), log[-4000:]


def test_m4sam_launch_namespace_and_remapped_topics(prefix, tmp_path):
    run = Launched(prefix, tmp_path, "m4sam.launch.py",
                   ["namespace:=ns_a", "color_topic:=/rig/cam/color/image_raw",
                    "depth_topic:=/rig/cam/aligned_depth_to_color/image_raw",
                    "camera_info_topic:=/rig/cam/aligned_depth_to_color/camera_info",
                    "rviz:=true", "rviz_fixed_frame:=cam_color_optical_frame"], "/ns_a/m4sam/mask")
    try:
        run.start([str(prefix / "lib" / "realsense2_camera" / "realsense2_camera_node"), "--ros-args",
                   "-r", "__ns:=/rig", "-r", "__node:=cam", "-p", "align_depth.enable:=true"])
        ok = run.wait_masks()
    finally:
        outs = run.stop()
    assert ok, outs[0][-4000:]
    assert run.got[0].encoding == "mono8" and run.got[0].header.frame_id == "cam_color_optical_frame"
    _check_stopped_cleanly(outs[0])
    cfg = yaml.safe_load(Path(str(run.record) + ".rviz").read_text())
    topics = {d["Topic"]["Value"] for d in cfg["Visualization Manager"]["Displays"] if "Topic" in d}
    assert {"/ns_a/m4sam/mask", "/ns_a/m4sam/overlay", "/rig/cam/color/image_raw"} <= topics


def test_realsense_launch_with_the_real_rs_launch(prefix, tmp_path):
    """rs_launch.py (real) starts the camera stand-in with our arguments; it publishes the aligned
    depth only because align_depth.enable reached it; masks arrive in the node's namespace."""
    run = Launched(prefix, tmp_path, "realsense.launch.py",
                   ["namespace:=robot1", "camera_namespace:=rig", "camera_name:=cam1", "rviz:=true"],
                   "/robot1/m4sam/mask")
    try:
        ok = run.wait_masks()
    finally:
        outs = run.stop()
    assert ok, outs[0][-4000:]
    assert run.got[0].header.frame_id == "cam1_color_optical_frame"
    # ~/detections: a real vision_msgs Detection2DArray, received by a real rclpy subscriber
    assert run.detections, "no Detection2DArray on /robot1/m4sam/detections"
    dets = run.detections[-1]
    assert dets.header.frame_id == "cam1_color_optical_frame"
    ids = [det.id for det in dets.detections]
    assert len(set(ids)) == len(ids) and all(i.isdigit() for i in ids), ids  # stable tracker ids
    for det in dets.detections:
        assert det.header == dets.header
        assert 0 < det.bbox.size_x <= 160 and 0 < det.bbox.size_y <= 120
        assert 0 <= det.bbox.center.position.x <= 160 and 0 <= det.bbox.center.position.y <= 120
        assert len(det.results) == 1 and det.results[0].hypothesis.class_id
        assert 0.0 <= det.results[0].hypothesis.score <= 1.0
    # the scene's one salient object, a near disk centred on row 60: found, and boxed around that row
    assert len(dets.detections) >= 1
    box = dets.detections[0].bbox
    assert abs(box.center.position.y - 60) < box.size_y / 2
    _check_stopped_cleanly(outs[0])
    cfg = yaml.safe_load(Path(str(run.record) + ".rviz").read_text())
    manager = cfg["Visualization Manager"]
    topics = {d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    assert topics == {"/robot1/m4sam/mask", "/robot1/m4sam/overlay", "/robot1/m4sam/markers",
                      "/robot1/m4sam/object_points", "/rig/cam1/color/image_raw"}
    assert manager["Global Options"]["Fixed Frame"] == "cam1_color_optical_frame"


def test_rosbag_launch_plays_and_the_node_runs_on_sim_time(prefix, tmp_path):
    bag = tmp_path / "some_bag"
    bag.mkdir()
    run = Launched(prefix, tmp_path, "rosbag.launch.py", [f"bag:={bag}", "rate:=1.0", "rviz:=false"],
                   "/m4sam/mask")
    try:
        ok = run.wait_masks()
    finally:
        outs = run.stop()
    assert ok, outs[0][-4000:]
    assert Path(str(run.record) + ".ros2").read_text() == f"bag play {bag} --clock --rate 1.0 --start-paused"
    assert Path(str(run.record) + ".ros2-service").read_text() == \
        "service call /rosbag2_player/resume rosbag2_interfaces/srv/Resume"
    assert not Path(str(run.record) + ".rviz").exists()
    stamp = run.got[0].header.stamp
    assert 1000 <= stamp.sec < 2000, "stamps come from the player's /clock (sim time)"
    _check_stopped_cleanly(outs[0])


# ------------------------------------------------------------------ a fresh install, a slow model
def _one_line(log: str, needle: str) -> str:
    lines = [ln for ln in log.splitlines() if needle in ln]
    assert len(lines) == 1, f"{needle!r}: {len(lines)} lines\n{log[-4000:]}"
    return lines[0]


def test_m4sam_launch_without_rviz2_runs_the_node_alone(bare_prefix, tmp_path):
    """rviz:=true on a machine without rviz2: one line with the apt command, then masks as usual."""
    run = Launched(bare_prefix, tmp_path, "m4sam.launch.py",
                   ["rviz:=true", "color_topic:=/rig/cam/color/image_raw",
                    "depth_topic:=/rig/cam/aligned_depth_to_color/image_raw",
                    "camera_info_topic:=/rig/cam/aligned_depth_to_color/camera_info"], "/m4sam/mask",
                   ROS_DISTRO="jazzy")
    try:
        run.start([sys.executable, str(STANDINS / "camera_standin.py"), "--ros-args", "-r", "__ns:=/rig",
                   "-r", "__node:=cam", "-p", "align_depth.enable:=true"])
        ok = run.wait_masks()
    finally:
        outs = run.stop()
    assert ok, outs[0][-4000:]
    line = _one_line(outs[0], "rviz2 is not installed")
    assert "sudo apt install ros-jazzy-rviz2" in line and "without RViz" in line
    assert "package 'rviz2' not found" not in outs[0]
    _check_stopped_cleanly(outs[0])


def test_realsense_launch_without_the_driver_stops_cleanly(bare_prefix, tmp_path):
    """No realsense2_camera: one line with the apt command, nothing started, the launch ends by itself."""
    env = dict(os.environ, AMENT_PREFIX_PATH=f"{bare_prefix}:{sys.prefix}", ROS_DISTRO="jazzy",
               RCUTILS_COLORIZED_OUTPUT="0")
    out = subprocess.run([sys.executable, str(STANDINS / "run_launch.py"),
                          str(bare_prefix / "share" / "m4sam_ros" / "launch" / "realsense.launch.py"), "rviz:=true"],
                         env=env, capture_output=True, text=True, timeout=120)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    line = _one_line(log, "realsense2_camera is not installed")
    assert "sudo apt install ros-jazzy-realsense2-camera" in line
    assert "Traceback" not in log and "process started" not in log, log[-4000:]


def test_rosbag_launch_waits_for_the_model_before_playing(prefix, tmp_path):
    """A node whose model takes 8 s more to load, a bag of 3 pairs: the player waits (paused) until
    the node is active, so the bag's first pair (1000.1 s) comes out as a mask."""
    bag = tmp_path / "short_bag"
    bag.mkdir()
    run = Launched(prefix, tmp_path, "rosbag.launch.py", [f"bag:={bag}"], "/m4sam/mask",
                   SLOW_CONFIGURE="8", STANDIN_BAG_FRAMES="3")
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not any(
                (m.header.stamp.sec, m.header.stamp.nanosec) == (1000, 100_000_000) for m in run.got):
            time.sleep(0.2)
    finally:
        outs = run.stop()
    stamps = sorted((m.header.stamp.sec, m.header.stamp.nanosec) for m in run.got)
    assert stamps and stamps[0] == (1000, 100_000_000), f"masks for {stamps}\n{outs[0][-4000:]}"
    assert len(stamps) <= 3
    log = outs[0]
    assert len(re.findall(r"\[ros2-\d+\]: process started", log)) == 2  # the player, then one resume call
    # the paused player's publishers were there when the node subscribed: no re-subscription
    assert "input QoS: reliable (matches the publishers)" in log and "no publisher yet" not in log, log[-4000:]
    _check_stopped_cleanly(log)


def _get_parameters(node, service: str, names: list[str]) -> dict:
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    client = node.create_client(GetParameters, service)
    assert client.wait_for_service(timeout_sec=90), f"no {service}"
    future = client.call_async(GetParameters.Request(names=names))
    deadline = time.monotonic() + 30
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert future.done(), f"{service}: no answer"
    return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values, strict=True)}


def test_launch_arguments_override_the_params_file(prefix, tmp_path):
    """checkpoint, sam2_checkpoint, device, output given on the command line reach the node's
    parameters over the params_file's; not given, the file's values stay (autostart false: the
    node only declares its parameters, no model is loaded)."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "autostart": False, "checkpoint": "/yaml/m4sam.pt", "sam2_checkpoint": "/yaml/sam2.pt",
        "device": "cuda:1", "output": "memory", "mask_threshold": 0.25}}}))
    names = ["checkpoint", "sam2_checkpoint", "device", "output", "mask_threshold", "autostart"]
    given = Launched(prefix, tmp_path / "a", "m4sam.launch.py",
                     ["namespace:=given", f"params_file:={params}", "checkpoint:=/cli/m4sam.pt",
                      "sam2_checkpoint:=/cli/sam2.pt", "device:=cpu", "output:=coarse"], "/given/m4sam/mask")
    kept = Launched(prefix, tmp_path / "b", "m4sam.launch.py", ["namespace:=kept", f"params_file:={params}"],
                    "/kept/m4sam/mask")
    try:
        got = _get_parameters(given.node, "/given/m4sam/get_parameters", names)
        same = _get_parameters(kept.node, "/kept/m4sam/get_parameters", names)
    finally:
        outs = [given.stop()[0], kept.stop()[0]]
    assert got == {"checkpoint": "/cli/m4sam.pt", "sam2_checkpoint": "/cli/sam2.pt", "device": "cpu",
                   "output": "coarse", "mask_threshold": 0.25, "autostart": False}, outs[0][-3000:]
    assert same == {"checkpoint": "/yaml/m4sam.pt", "sam2_checkpoint": "/yaml/sam2.pt", "device": "cuda:1",
                    "output": "memory", "mask_threshold": 0.25, "autostart": False}, outs[1][-3000:]

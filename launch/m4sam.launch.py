"""The m4sam node alone: ros2 launch m4sam_ros m4sam.launch.py color_topic:=... depth_topic:=...

Defaults are RealSense's topics with aligned depth (realsense2_camera 4.5x, align_depth.enable:=true).
rviz:=true also starts RViz with config/m4sam.rviz rewritten for this namespace and these topics
(realsense.launch.py and rosbag.launch.py start RViz through this file); without rviz2 installed
it says so in one line (with the apt command) and runs the node alone.
checkpoint:=, sam2_checkpoint:=, device:=, output:= override the params_file's values (empty:
keep the file's). The node is a launch_ros LifecycleNode, so including files can wait for it to
reach `active` (rosbag.launch.py starts the player then).
"""

import logging
import os
import tempfile
from pathlib import Path

import launch.logging
import yaml
from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

RVIZ_TEMPLATE = Path(__file__).resolve().parent.parent / "config" / "m4sam.rviz"


def missing_package(package: str, apt_name: str, then: str) -> str | None:
    """None when ``package`` is installed (ament index), else the one line that says how to get it."""
    try:
        get_package_prefix(package)
        return None
    except (PackageNotFoundError, ValueError):
        distro = os.environ.get("ROS_DISTRO") or "${ROS_DISTRO}"
        return f"{package} is not installed (sudo apt install ros-{distro}-{apt_name}): {then}"


def warn(line: str) -> None:
    """One line in the launch log (and on screen), no traceback."""
    launch.logging.get_logger("m4sam.launch").log(logging.WARNING, line)


def rviz_config(template: Path, namespace: str, color_topic: str, fixed_frame: str) -> dict:
    """config/m4sam.rviz with the node's output topics under ``namespace``, the colour display on
    ``color_topic`` and ``fixed_frame``: RViz shows the outputs whatever the launch arguments."""
    cfg = yaml.safe_load(template.read_text())
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    manager = cfg["Visualization Manager"]
    for display in manager["Displays"]:
        topic = display.get("Topic", {}).get("Value", "")
        if topic.startswith("/m4sam/"):
            display["Topic"]["Value"] = ns + topic
        elif topic.endswith("color/image_raw"):
            display["Topic"]["Value"] = color_topic
    manager["Global Options"]["Fixed Frame"] = fixed_frame
    return cfg


def _rviz(context, *_, **__):
    """RViz on a config written for the resolved arguments (the temporary file lives as long as the
    launch); one warning line and nothing else when rviz2 is not installed."""
    problem = missing_package("rviz2", "rviz2", "starting the node without RViz")
    if problem:
        warn(problem)
        return []
    cfg = rviz_config(RVIZ_TEMPLATE, LaunchConfiguration("namespace").perform(context),
                      LaunchConfiguration("color_topic").perform(context),
                      LaunchConfiguration("rviz_fixed_frame").perform(context))
    out = tempfile.NamedTemporaryFile("w", prefix="m4sam_", suffix=".rviz", delete=False)
    with out:
        yaml.safe_dump(cfg, out, sort_keys=False)
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context) == "true"
    return [Node(package="rviz2", executable="rviz2", name="rviz2", output="log", arguments=["-d", out.name],
                 parameters=[{"use_sim_time": use_sim_time}])]


def _node(context, *_, **__):
    """m4sam_node with the params_file, then the launch arguments set on the command line."""
    given = {"checkpoint": LaunchConfiguration("checkpoint").perform(context),
             "sam2_checkpoint": LaunchConfiguration("sam2_checkpoint").perform(context),
             "device": LaunchConfiguration("device").perform(context),
             "output": LaunchConfiguration("output").perform(context)}
    overrides = {name: value for name, value in given.items() if value.strip()}
    return [LifecycleNode(
        package="m4sam_ros",
        executable="m4sam_node",
        name="m4sam",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"),
                    {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)},
                    overrides],
        remappings=[
            ("color/image_raw", LaunchConfiguration("color_topic")),
            ("depth/image_raw", LaunchConfiguration("depth_topic")),
            ("depth/camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )]


def model_arguments() -> list[DeclareLaunchArgument]:
    """checkpoint, sam2_checkpoint, device, output: empty keeps the params_file's value."""
    return [
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="M4-SAM checkpoint (.pt) for the node's 'checkpoint' parameter "
                                          "(empty: the params_file's; there, empty = the bundled demo model)."),
        DeclareLaunchArgument("sam2_checkpoint", default_value="",
                              description="SAM2.1 weights (sam2.1_hiera_*.pt) for 'sam2_checkpoint' "
                                          "(empty: the params_file's)."),
        DeclareLaunchArgument("device", default_value="",
                              description="Torch device: auto, cpu, cuda or cuda:N (empty: the params_file's, "
                                          "auto in config/m4sam.yaml)."),
        DeclareLaunchArgument("output", default_value="",
                              description="Map behind ~/mask: auto, memory, coarse or combined "
                                          "(empty: the params_file's)."),
    ]


def generate_launch_description() -> LaunchDescription:
    """Declares the arguments and starts m4sam_node with remapped inputs."""
    args = [
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node (outputs are <namespace>/m4sam/...)."),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("m4sam_ros"),
                                                                  "config", "m4sam.yaml"]),
                              description="YAML with the node's parameters (see config/m4sam.yaml); "
                                          "the model arguments below override it."),
        *model_arguments(),
        DeclareLaunchArgument("color_topic", default_value="/camera/camera/color/image_raw",
                              description="Colour image (rgb8/bgr8/rgba8/bgra8/mono8)."),
        DeclareLaunchArgument("depth_topic", default_value="/camera/camera/aligned_depth_to_color/image_raw",
                              description="Depth registered to colour (16UC1 mm or 32FC1 m)."),
        DeclareLaunchArgument("camera_info_topic",
                              default_value="/camera/camera/aligned_depth_to_color/camera_info",
                              description="CameraInfo of the registered depth (for 3D markers/points)."),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="Use /clock (true when replaying a bag with --clock)."),
        DeclareLaunchArgument("log_level", default_value="info",
                              choices=["debug", "info", "warn", "error", "fatal"],
                              description="Logging level of the node."),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start RViz (rviz2 is optional: apt install ros-$ROS_DISTRO-rviz2)."),
        DeclareLaunchArgument("rviz_fixed_frame", default_value="camera_color_optical_frame",
                              description="RViz fixed frame: the colour optical frame (<camera_name>_color_optical_frame)."),
    ]
    node = OpaqueFunction(function=_node)
    rviz = OpaqueFunction(function=_rviz, condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription([*args, node, rviz])

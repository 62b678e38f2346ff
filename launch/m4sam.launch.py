"""The m4sam node alone: ros2 launch m4sam_ros m4sam.launch.py color_topic:=... depth_topic:=...

Defaults are RealSense's topics with aligned depth (realsense2_camera 4.5x, align_depth.enable:=true).
rviz:=true also starts RViz with config/m4sam.rviz rewritten for this namespace and these topics
(realsense.launch.py and rosbag.launch.py start RViz through this file).
"""

import tempfile
from pathlib import Path

import yaml
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

RVIZ_TEMPLATE = Path(__file__).resolve().parent.parent / "config" / "m4sam.rviz"


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
    """RViz on a config written for the resolved arguments (the temporary file lives as long as the launch)."""
    cfg = rviz_config(RVIZ_TEMPLATE, LaunchConfiguration("namespace").perform(context),
                      LaunchConfiguration("color_topic").perform(context),
                      LaunchConfiguration("rviz_fixed_frame").perform(context))
    out = tempfile.NamedTemporaryFile("w", prefix="m4sam_", suffix=".rviz", delete=False)
    with out:
        yaml.safe_dump(cfg, out, sort_keys=False)
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context) == "true"
    return [Node(package="rviz2", executable="rviz2", name="rviz2", output="log", arguments=["-d", out.name],
                 parameters=[{"use_sim_time": use_sim_time}])]


def generate_launch_description() -> LaunchDescription:
    """Declares the arguments and starts m4sam_node with remapped inputs."""
    args = [
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node (outputs are <namespace>/m4sam/...)."),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("m4sam_ros"),
                                                                  "config", "m4sam.yaml"]),
                              description="YAML with the node's parameters (see config/m4sam.yaml)."),
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
    node = Node(
        package="m4sam_ros",
        executable="m4sam_node",
        name="m4sam",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"),
                    {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        remappings=[
            ("color/image_raw", LaunchConfiguration("color_topic")),
            ("depth/image_raw", LaunchConfiguration("depth_topic")),
            ("depth/camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    rviz = OpaqueFunction(function=_rviz, condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription([*args, node, rviz])

"""An Intel RealSense (realsense2_camera's rs_launch.py, depth aligned to colour) + the m4sam node
(+ RViz): ros2 launch m4sam_ros realsense.launch.py rviz:=true

Without realsense2_camera installed it says so in one line (with the apt command) and stops
cleanly, starting nothing (m4sam.launch.py runs the node on another camera's topics).
"""

import logging
import os

import launch.logging
from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch.actions import (
    DeclareLaunchArgument,
    GroupAction,
    IncludeLaunchDescription,
    OpaqueFunction,
    SetLaunchConfiguration,
    Shutdown,
)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def missing_package(package: str, apt_name: str, then: str) -> str | None:
    """None when ``package`` is installed (ament index), else the one line that says how to get it."""
    try:
        get_package_prefix(package)
        return None
    except (PackageNotFoundError, ValueError):
        distro = os.environ.get("ROS_DISTRO") or "${ROS_DISTRO}"
        return f"{package} is not installed (sudo apt install ros-{distro}-{apt_name}): {then}"


def _camera_or_stop(context, *_, **__):
    """Nothing to add when the driver is installed; else one warning line and a clean shutdown."""
    problem = missing_package("realsense2_camera", "realsense2-camera",
                              "nothing started (m4sam.launch.py runs the node on another camera's topics)")
    if problem is None:
        return [realsense_launch(), m4sam_launch()]
    launch.logging.get_logger("m4sam.launch").log(logging.WARNING, problem)
    return [Shutdown(reason="realsense2_camera is not installed")]


def realsense_launch() -> GroupAction:
    """rs_launch.py with align_depth.enable:=true, in its own scope: rs_launch.py has an `output`
    argument of its own (screen/log), which must not see this file's `output` (the node's map)."""
    return GroupAction(scoped=True, actions=[SetLaunchConfiguration("output", "screen"), IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("realsense2_camera"),
                                                            "launch", "rs_launch.py"])),
        launch_arguments={
            "camera_namespace": LaunchConfiguration("camera_namespace"),
            "camera_name": LaunchConfiguration("camera_name"),
            "align_depth.enable": "true",
            "enable_sync": LaunchConfiguration("enable_sync"),
        }.items(),
    )])


def m4sam_launch() -> IncludeLaunchDescription:
    """m4sam.launch.py on the camera's aligned topics."""
    camera_ns = LaunchConfiguration("camera_namespace")
    camera = LaunchConfiguration("camera_name")
    prefix = ["/", camera_ns, "/", camera]
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("m4sam_ros"),
                                                            "launch", "m4sam.launch.py"])),
        launch_arguments={
            "namespace": LaunchConfiguration("namespace"),
            "params_file": LaunchConfiguration("params_file"),
            "checkpoint": LaunchConfiguration("checkpoint"),
            "sam2_checkpoint": LaunchConfiguration("sam2_checkpoint"),
            "device": LaunchConfiguration("device"),
            "output": LaunchConfiguration("output"),
            "color_topic": [*prefix, "/color/image_raw"],
            "depth_topic": [*prefix, "/aligned_depth_to_color/image_raw"],
            "camera_info_topic": [*prefix, "/aligned_depth_to_color/camera_info"],
            "use_sim_time": "false",
            "log_level": LaunchConfiguration("log_level"),
            "rviz": LaunchConfiguration("rviz"),
            "rviz_fixed_frame": [camera, "_color_optical_frame"],
        }.items(),
    )


def generate_launch_description() -> LaunchDescription:
    """Camera with align_depth.enable:=true, then the node on its aligned topics, optional RViz."""
    args = [
        DeclareLaunchArgument("camera_namespace", default_value="camera",
                              description="realsense2_camera camera_namespace."),
        DeclareLaunchArgument("camera_name", default_value="camera",
                              description="realsense2_camera camera_name."),
        DeclareLaunchArgument("enable_sync", default_value="true", choices=["true", "false"],
                              description="Let the camera stamp colour and depth frames together."),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the m4sam node."),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("m4sam_ros"),
                                                                  "config", "m4sam.yaml"]),
                              description="YAML with the node's parameters (the model arguments override it)."),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="M4-SAM checkpoint (.pt) for the node (empty: the params_file's)."),
        DeclareLaunchArgument("sam2_checkpoint", default_value="",
                              description="SAM2.1 weights (sam2.1_hiera_*.pt) for the node (empty: the params_file's)."),
        DeclareLaunchArgument("device", default_value="",
                              description="Torch device: auto, cpu, cuda or cuda:N (empty: the params_file's)."),
        DeclareLaunchArgument("output", default_value="",
                              description="auto, memory, coarse or combined (empty: the params_file's)."),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Start RViz with config/m4sam.rviz (set for these topics; "
                                          "rviz2 is optional: apt install ros-$ROS_DISTRO-rviz2)."),
        DeclareLaunchArgument("log_level", default_value="info",
                              choices=["debug", "info", "warn", "error", "fatal"],
                              description="Logging level of the node."),
    ]
    return LaunchDescription([*args, OpaqueFunction(function=_camera_or_stop)])

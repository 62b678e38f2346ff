"""An Intel RealSense (realsense2_camera's rs_launch.py, depth aligned to colour) + the m4sam node
(+ RViz): ros2 launch m4sam_ros realsense.launch.py rviz:=true
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    """Camera with align_depth.enable:=true, then the node on its aligned topics, optional RViz."""
    camera_ns = LaunchConfiguration("camera_namespace")
    camera = LaunchConfiguration("camera_name")
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
                              description="YAML with the node's parameters."),
        DeclareLaunchArgument("rviz", default_value="true", choices=["true", "false"],
                              description="Start RViz with config/m4sam.rviz (set for these topics)."),
        DeclareLaunchArgument("log_level", default_value="info",
                              choices=["debug", "info", "warn", "error", "fatal"],
                              description="Logging level of the node."),
    ]
    realsense = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("realsense2_camera"),
                                                            "launch", "rs_launch.py"])),
        launch_arguments={
            "camera_namespace": camera_ns,
            "camera_name": camera,
            "align_depth.enable": "true",
            "enable_sync": LaunchConfiguration("enable_sync"),
        }.items(),
    )
    prefix = ["/", camera_ns, "/", camera]
    m4sam = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("m4sam_ros"),
                                                            "launch", "m4sam.launch.py"])),
        launch_arguments={
            "namespace": LaunchConfiguration("namespace"),
            "params_file": LaunchConfiguration("params_file"),
            "color_topic": [*prefix, "/color/image_raw"],
            "depth_topic": [*prefix, "/aligned_depth_to_color/image_raw"],
            "camera_info_topic": [*prefix, "/aligned_depth_to_color/camera_info"],
            "use_sim_time": "false",
            "log_level": LaunchConfiguration("log_level"),
            "rviz": LaunchConfiguration("rviz"),
            "rviz_fixed_frame": [camera, "_color_optical_frame"],
        }.items(),
    )
    return LaunchDescription([*args, realsense, m4sam])

"""The m4sam node alone: ros2 launch m4sam_ros m4sam.launch.py color_topic:=... depth_topic:=...

Defaults are RealSense's topics with aligned depth (realsense2_camera 4.5x, align_depth.enable:=true).
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


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
    return LaunchDescription([*args, node])

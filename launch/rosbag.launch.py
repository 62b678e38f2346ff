"""Replay a recorded RGB-D bag into the m4sam node on simulated time (+ RViz):
ros2 launch m4sam_ros rosbag.launch.py bag:=/path/to/bag
"""

from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    """`ros2 bag play --clock` of the bag, the node with use_sim_time:=true, optional RViz."""
    bag = LaunchConfiguration("bag")
    rate = LaunchConfiguration("rate")
    args = [
        DeclareLaunchArgument("bag", description="Path of the rosbag2 folder or file to play."),
        DeclareLaunchArgument("rate", default_value="1.0", description="Playback rate factor."),
        DeclareLaunchArgument("loop", default_value="false", choices=["true", "false"],
                              description="Replay forever (stamps jump back; the node re-initialises)."),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the m4sam node."),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("m4sam_ros"),
                                                                  "config", "m4sam.yaml"]),
                              description="YAML with the node's parameters."),
        DeclareLaunchArgument("color_topic", default_value="/camera/camera/color/image_raw",
                              description="Colour topic in the bag."),
        DeclareLaunchArgument("depth_topic", default_value="/camera/camera/aligned_depth_to_color/image_raw",
                              description="Depth topic in the bag (registered to colour)."),
        DeclareLaunchArgument("camera_info_topic",
                              default_value="/camera/camera/aligned_depth_to_color/camera_info",
                              description="CameraInfo topic in the bag."),
        DeclareLaunchArgument("rviz", default_value="true", choices=["true", "false"],
                              description="Start RViz with config/m4sam.rviz (set for these topics)."),
        DeclareLaunchArgument("rviz_fixed_frame", default_value="camera_color_optical_frame",
                              description="RViz fixed frame: the colour frame_id in the bag."),
    ]
    play = ["ros2", "bag", "play", bag, "--clock", "--rate", rate]
    players = [
        ExecuteProcess(cmd=play, output="screen", condition=UnlessCondition(LaunchConfiguration("loop"))),
        ExecuteProcess(cmd=[*play, "--loop"], output="screen",
                       condition=IfCondition(LaunchConfiguration("loop"))),
    ]
    m4sam = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("m4sam_ros"),
                                                            "launch", "m4sam.launch.py"])),
        launch_arguments={
            "namespace": LaunchConfiguration("namespace"),
            "params_file": LaunchConfiguration("params_file"),
            "color_topic": LaunchConfiguration("color_topic"),
            "depth_topic": LaunchConfiguration("depth_topic"),
            "camera_info_topic": LaunchConfiguration("camera_info_topic"),
            "use_sim_time": "true",
            "rviz": LaunchConfiguration("rviz"),
            "rviz_fixed_frame": LaunchConfiguration("rviz_fixed_frame"),
        }.items(),
    )
    return LaunchDescription([*args, *players, m4sam])

"""Replay a recorded RGB-D bag into the m4sam node on simulated time (+ RViz):
ros2 launch m4sam_ros rosbag.launch.py bag:=/path/to/bag

The player starts at once but paused (`--start-paused`: its publishers exist, so the node picks
the matching QoS when it activates, with nothing to re-subscribe), and is resumed (its
/rosbag2_player/resume service) only when the node reaches `active` (model loaded, inputs
subscribed): the bag's first frames are not lost to model loading. `active` is learnt by asking
the node (`m4sam_wait_active`, its get_state service), not by hearing its transition event: a
node that activates before the launch has discovered it would send that event to nobody.
"""

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    IncludeLaunchDescription,
    LogInfo,
    RegisterEventHandler,
)
from launch.conditions import IfCondition, UnlessCondition
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    """The node with use_sim_time:=true, `ros2 bag play --clock` of the bag (resumed once the node is
    active), optional RViz."""
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
                              description="YAML with the node's parameters (the model arguments override it)."),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="M4-SAM checkpoint (.pt) for the node (empty: the params_file's)."),
        DeclareLaunchArgument("sam2_checkpoint", default_value="",
                              description="SAM2.1 weights (sam2.1_hiera_*.pt) for the node (empty: the params_file's)."),
        DeclareLaunchArgument("device", default_value="",
                              description="Torch device: auto, cpu, cuda or cuda:N (empty: the params_file's)."),
        DeclareLaunchArgument("output", default_value="",
                              description="auto, memory, coarse or combined (empty: the params_file's)."),
        DeclareLaunchArgument("color_topic", default_value="/camera/camera/color/image_raw",
                              description="Colour topic in the bag."),
        DeclareLaunchArgument("depth_topic", default_value="/camera/camera/aligned_depth_to_color/image_raw",
                              description="Depth topic in the bag (registered to colour)."),
        DeclareLaunchArgument("camera_info_topic",
                              default_value="/camera/camera/aligned_depth_to_color/camera_info",
                              description="CameraInfo topic in the bag."),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Start RViz with config/m4sam.rviz (set for these topics; "
                                          "rviz2 is optional: apt install ros-$ROS_DISTRO-rviz2)."),
        DeclareLaunchArgument("rviz_fixed_frame", default_value="camera_color_optical_frame",
                              description="RViz fixed frame: the colour frame_id in the bag."),
    ]
    play = ["ros2", "bag", "play", bag, "--clock", "--rate", rate, "--start-paused"]
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
            "checkpoint": LaunchConfiguration("checkpoint"),
            "sam2_checkpoint": LaunchConfiguration("sam2_checkpoint"),
            "device": LaunchConfiguration("device"),
            "output": LaunchConfiguration("output"),
            "color_topic": LaunchConfiguration("color_topic"),
            "depth_topic": LaunchConfiguration("depth_topic"),
            "camera_info_topic": LaunchConfiguration("camera_info_topic"),
            "use_sim_time": "true",
            "rviz": LaunchConfiguration("rviz"),
            "rviz_fixed_frame": LaunchConfiguration("rviz_fixed_frame"),
        }.items(),
    )
    resume = ExecuteProcess(cmd=["ros2", "service", "call", "/rosbag2_player/resume", "rosbag2_interfaces/srv/Resume"],
                            output="log")
    # once (the waiter exits once): a later deactivate/activate must not resume the player again
    waiter = Node(package="m4sam_ros", executable="m4sam_wait_active", name="m4sam_wait_active",
                  arguments=[["/", LaunchConfiguration("namespace"), "/m4sam"]], output="log")

    def on_waiter_exit(event, _context):
        if event.returncode == 0:
            return [resume]
        return [LogInfo(msg=f"m4sam_wait_active exited {event.returncode}: the bag player stays paused")]

    resume_when_active = RegisterEventHandler(OnProcessExit(target_action=waiter, on_exit=on_waiter_exit))
    return LaunchDescription([*args, *players, resume_when_active, waiter, m4sam])

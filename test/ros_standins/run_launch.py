"""What `ros2 launch FILE name:=value ...` does (ros2cli is not installed here): the real
launch.LaunchService running the launch file with its arguments; SIGINT shuts it down."""

import sys

from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource

from launch import LaunchDescription, LaunchService

path, args = sys.argv[1], [a.split(":=", 1) for a in sys.argv[2:]]
ls = LaunchService(argv=sys.argv[2:])
ls.include_launch_description(LaunchDescription([
    IncludeLaunchDescription(AnyLaunchDescriptionSource(path), launch_arguments=[tuple(a) for a in args])]))
sys.exit(ls.run())

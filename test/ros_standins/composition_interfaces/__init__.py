"""Stand-in for the ROS 2 message package composition_interfaces (test environments only).

launch_ros.actions imports ``composition_interfaces.srv`` at import time, and that message
package is neither on the package index nor in ../shared/ros. The project's launch files never
load composable nodes, so the service types only have to exist; calling them is not supported.
On a robot the real package comes with ROS (apt: ros-<distro>-composition-interfaces).
"""

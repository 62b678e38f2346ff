"""Test-wide settings: DDS stays on loopback, each test process gets its own ROS domain."""

import os

# Must happen before anything imports rclpy: discovery would otherwise multicast onto the network.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

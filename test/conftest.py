"""Test-wide settings: DDS stays on loopback, each test process gets its own ROS domain."""

import os
from pathlib import Path

# Must happen before anything imports rclpy: discovery would otherwise multicast onto the network.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


import pytest  # noqa: E402

#: ../shared/ros: source snapshots of ROS packages (test material). M4SAM_SHARED_ROS overrides it
#: (the colcon test runs the suite from a copy of the checkout elsewhere).
SHARED_ROS = Path(os.environ.get("M4SAM_SHARED_ROS", Path(__file__).resolve().parents[2] / "shared" / "ros"))


@pytest.fixture(scope="session")
def shared_ros() -> Path:
    """The ROS source snapshots folder; a clear failure when it is missing."""
    assert (SHARED_ROS / "README.md").is_file(), (
        f"no ROS source snapshots at {SHARED_ROS}: set M4SAM_SHARED_ROS to the shared/ros folder")
    return SHARED_ROS


@pytest.fixture(scope="module")
def context():
    """An rclpy context of the test module's own (its nodes and executors), shut down after it.
    Modules that define their own ``context`` keep theirs."""
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()

"""``m4sam_wait_active`` (rosbag.launch.py resumes the bag player when it exits 0) against real
lifecycle nodes: a node that became active *before* the waiter started is seen (the case
launch_ros's OnStateTransition misses: that transition event went out before anyone listened),
a node left unconfigured is not (exit 1 after --timeout, naming its state), and an empty
namespace substitution still names the node."""

import subprocess
import sys
import threading

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode

from m4sam_ros.ros.spin import spin_until
from m4sam_ros.ros.wait_active import node_name


@pytest.fixture
def lifecycle_nodes():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    active = LifecycleNode("wa_active", namespace="/wa_ns", context=ctx)
    idle = LifecycleNode("wa_idle", context=ctx)
    active.trigger_configure()
    active.trigger_activate()  # before any waiter exists: its transition event reached nobody
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(active)
    ex.add_node(idle)
    stop = threading.Event()
    t = threading.Thread(target=spin_until, args=(ex, stop, lambda *_: None), daemon=True)
    t.start()
    yield
    stop.set()
    t.join(timeout=5)
    ex.shutdown()
    active.destroy_node()
    idle.destroy_node()
    ctx.try_shutdown()


def waiter(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m4sam_ros.ros.wait_active", *args, "--ros-args", "-r",
                           "__node:=wa_test"], capture_output=True, text=True, timeout=timeout)


def test_an_already_active_node_is_seen_and_an_idle_one_is_not(lifecycle_nodes) -> None:
    out = waiter("//wa_ns//wa_active/", "--period", "0.1")
    assert out.returncode == 0 and "/wa_ns/wa_active is active" in out.stdout, out.stderr[-2000:]
    out = waiter("/wa_idle", "--timeout", "4")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "/wa_idle not active after 4 s (last: unconfigured)" in out.stderr


def test_node_name_reads_a_launch_substitution() -> None:
    assert node_name("//m4sam") == "/m4sam" and node_name("/robot1//m4sam") == "/robot1/m4sam"
    assert node_name("m4sam") == "/m4sam"

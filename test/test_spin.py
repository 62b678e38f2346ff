"""The node process's spin loop (``ros/spin.py``) on a real rclpy executor: an exception out of
the executor's wait-set building (what rclpy raises when a subscription is destroyed while another
thread builds the wait set, ros2/rclpy#1206) is reported and spinning goes on; ``Executor.spin()``
dies of the same exception, which silenced every callback of the in-process test nodes (issue 22's
flake of ``test_auto_transport_follows_publishers_that_come_later`` under a CPU hog)."""

import threading

import pytest
import rclpy
from rclpy._rclpy_pybind11 import InvalidHandle
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.waitable import NumberOfEntities, Waitable
from waiting import wait_until

from m4sam_ros.ros.spin import spin_until


class RacingWaitable(Waitable):
    """Raises as a destroyed entity's event handler does, the first ``times`` wait sets; then idle."""

    def __init__(self, node, times: int) -> None:
        super().__init__(node.default_callback_group)
        self.left = times

    def get_num_entities(self):
        return NumberOfEntities()

    def add_to_wait_set(self, wait_set):
        if self.left > 0:
            self.left -= 1
            raise InvalidHandle("cannot use Destroyable because destruction was requested")

    def is_ready(self, wait_set):
        return False

    def take_data(self):
        return None

    async def execute(self, taken_data):
        return None


@pytest.fixture
def node():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    n = rclpy.create_node("spin_test", context=ctx)
    yield n
    n.destroy_node()
    ctx.try_shutdown()


def ticking(node):
    ticks = []
    node.create_timer(0.01, lambda: ticks.append(1))
    return ticks


@pytest.mark.parametrize("executor_type", [SingleThreadedExecutor, MultiThreadedExecutor])
def test_spin_until_survives_the_destroy_race_and_reports_it(node, executor_type) -> None:
    ticks = ticking(node)
    ex = executor_type(context=node.context)
    ex.add_node(node)
    errors: list[tuple[str, BaseException]] = []
    stop = threading.Event()
    t = threading.Thread(target=spin_until, args=(ex, stop, lambda w, e: errors.append((w, e))), daemon=True)
    t.start()
    wait_until(lambda: len(ticks) >= 3, "the timer ticking", 10)
    node.add_waitable(RacingWaitable(node, times=2))
    ex.wake()
    wait_until(lambda: len(errors) == 2, "the two raised wait sets reported", 10)
    n = len(ticks)
    wait_until(lambda: len(ticks) >= n + 5, "the timer still ticking after them", 10)
    assert [w for w, _ in errors] == ["executor", "executor"]
    assert all(isinstance(e, InvalidHandle) for _, e in errors)
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive()  # the stop event ends the loop
    ex.shutdown()


def test_executor_spin_dies_of_it(node) -> None:
    """The control: rclpy's own spin() ends on the same exception (so the test above reproduces
    the failure it guards against)."""
    ticks = ticking(node)
    ex = SingleThreadedExecutor(context=node.context)
    ex.add_node(node)
    died: list[BaseException] = []

    def spin():
        try:
            ex.spin()
        except InvalidHandle as exc:
            died.append(exc)

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    wait_until(lambda: len(ticks) >= 3, "the timer ticking", 10)
    node.add_waitable(RacingWaitable(node, times=1))
    ex.wake()
    t.join(timeout=10)
    assert not t.is_alive() and len(died) == 1
    ex.shutdown()

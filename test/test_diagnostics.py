"""Diagnostics a robot monitor can act on: diagnostic_updater's FrequencyStatus / TimeStampStatus
conventions (names, keys, levels), status names that carry the node's namespace, hardware_id
naming the camera frame and the inference device.

The stand-in (pip-only installs) is fed the same events as the real diagnostic_updater from
../shared/ros and must publish the same levels, messages, keys and numbers. Then two namespaced
nodes run side by side over real DDS: one camera is throttled from 30 Hz to 3 Hz and its node's
``input rate`` turns WARN with the measured and the expected rate while the other stays OK;
old stamps turn ``frame age`` to ERROR; a stopped camera is ERROR "No events recorded."; a rate
parameter below the camera's gives "Frequency too high."; an inactive node is OK "not processing".
"""

from __future__ import annotations

import threading
import time

import diagnostic_updater
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import Image
from test_node import color_msg, depth_msg, frame, header

from m4sam_ros.ros import diagnostic_standins as standin
from m4sam_ros.ros.diagnostics import RateBaseline
from m4sam_ros.ros.node import M4SamNode
from m4sam_ros.ros.params import DEMO_MODEL
from m4sam_ros.ros.spin import spin_until


def _kv(stat) -> dict[str, str]:
    return {v.key: v.value for v in stat.values}


class FakeClock:
    """Stands in for rclpy's Clock inside both diagnostic_updater modules: the tests set the time."""

    now_ns = 1_000_000_000_000

    def __init__(self, *args, **kwargs) -> None:
        pass

    def now(self) -> Time:
        return Time(nanoseconds=FakeClock.now_ns)


@pytest.fixture
def fake_clock(monkeypatch):
    """Both implementations read the same, controlled clock, so their numbers must agree exactly."""
    import diagnostic_updater._update_functions as real_functions

    monkeypatch.setattr(real_functions, "Clock", FakeClock)
    monkeypatch.setattr(standin, "Clock", FakeClock)
    FakeClock.now_ns = 1_000_000_000_000
    return FakeClock


@pytest.mark.parametrize("bound", [{"min": 20.0, "max": 20.0}, {"min": 0.0}, {"min": 0.5, "max": 1.0},
                                   {"min": 4.0, "max": 6.0}])
def test_frequency_status_standin_matches_the_real_one(fake_clock, bound) -> None:
    real = diagnostic_updater.FrequencyStatus(diagnostic_updater.FrequencyStatusParam(bound, 0.3, 3), "r")
    mine = standin.FrequencyStatus(standin.FrequencyStatusParam(bound, 0.3, 3), "r")
    levels = set()
    for events, dt in ((0, 0.5), (3, 0.5), (10, 1.0), (1, 0.25), (40, 2.0)):  # a window of 3 runs moves on
        for _ in range(events):
            real.tick()
            mine.tick()
        fake_clock.now_ns += int(dt * 1e9)
        a = real.run(diagnostic_updater.DiagnosticStatusWrapper())
        b = mine.run(standin.DiagnosticStatusWrapper())
        assert (a.level, a.message) == (b.level, b.message)
        assert [(v.key, v.value) for v in a.values] == [(v.key, v.value) for v in b.values]
        levels.add(a.level)
    assert len(levels) >= 2  # the sequence crosses at least two states for every bound


@pytest.mark.parametrize("delays", [(), (0.2, 0.4), (3.0,), (-2.0, 0.1), (0.0,), (-2.0, 3.0)])
def test_timestamp_status_standin_matches_the_real_one(fake_clock, delays: tuple[float, ...]) -> None:
    params = (-1.0, 1.0)
    real = diagnostic_updater.TimeStampStatus(diagnostic_updater.TimeStampStatusParam(*params), "age")
    mine = standin.TimeStampStatus(standin.TimeStampStatusParam(*params), "age")
    for _ in range(2):  # the counts of late/early updates carry over
        now = fake_clock.now_ns * 1e-9
        for d in delays:
            stamp = 0.0 if d == 0.0 else now - d
            real.tick(stamp)
            mine.tick(stamp)
        a = real.run(diagnostic_updater.DiagnosticStatusWrapper())
        b = mine.run(standin.DiagnosticStatusWrapper())
        assert (a.level, a.message) == (b.level, b.message)
        assert [(v.key, v.value) for v in a.values] == [(v.key, v.value) for v in b.values]
        fake_clock.now_ns += 10**9


def test_merge_summary_standin_matches_the_real_one() -> None:
    for first, second in ((DiagnosticStatus.OK, DiagnosticStatus.WARN), (DiagnosticStatus.WARN, DiagnosticStatus.ERROR),
                          (DiagnosticStatus.WARN, DiagnosticStatus.WARN), (DiagnosticStatus.OK, DiagnosticStatus.OK)):
        a, b = diagnostic_updater.DiagnosticStatusWrapper(), standin.DiagnosticStatusWrapper()
        for s in (a, b):
            s.summary(first, "one")
            s.mergeSummary(second, "two")
        assert (a.level, a.message) == (b.level, b.message)


def test_rate_baseline_measures_the_first_seconds_then_holds() -> None:
    base = RateBaseline(1.0)
    assert base.left(5.0) == 1.0
    rates = [base.tick(10.0 + i / 30) for i in range(31)]  # 30 Hz for exactly 1 s
    assert rates[:-1] == [None] * 30 and rates[-1] == pytest.approx(30.0)
    assert base.tick(20.0) == pytest.approx(30.0)           # later pairs do not move it
    assert RateBaseline(1.0).tick(0.0) is None


# --------------------------------------------------------------------------- two namespaced nodes
class Camera:
    """Publishes colour + depth (+ nothing else) into ``ns`` at ``rate`` Hz from a thread; stamps
    are now + ``stamp_offset`` seconds, frame ids ``<ns>_color_optical_frame``."""

    def __init__(self, node, ns: str, stamp_offset: float) -> None:
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.node = node
        self.pc = node.create_publisher(Image, f"/{ns}/color/image_raw", qos)
        self.pd = node.create_publisher(Image, f"/{ns}/depth/image_raw", qos)
        self.frame_id = f"{ns}_color_optical_frame"
        self.offset = stamp_offset
        self.rate = 30.0
        self.sent = 0
        self.stop = threading.Event()
        self.rgb, self.depth = frame(0)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t = time.monotonic()
        while not self.stop.is_set():
            if self.rate > 0:
                stamp = self.node.get_clock().now().nanoseconds + int(self.offset * 1e9)
                self.pc.publish(color_msg(self.rgb, "rgb8", header(stamp, self.frame_id)))
                self.pd.publish(depth_msg(self.depth, "16UC1", header(stamp, self.frame_id)))
                self.sent += 1
                t += 1.0 / self.rate
            else:
                t = time.monotonic() + 0.05
            time.sleep(max(t - time.monotonic(), 0.0))


@pytest.fixture
def two_nodes():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    params = {"checkpoint": str(DEMO_MODEL), "device": "cpu", "autostart": False, "diagnostics_period": 0.25,
              "input_rate_learn_time": 1.0, "input_rate_window": 4, "input_rate_tolerance": 0.5,
              "max_rate": 2.0, "frame_age_max": 1.0, "qos_reliability": "reliable", "input_transport": "raw",
              "use_camera_info": False}
    nodes = {ns: M4SamNode(context=ctx, namespace=f"/{ns}",
                           parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
             for ns in ("cam_a", "cam_b")}
    io = rclpy.create_node("diag_test_io", context=ctx)
    got: list[DiagnosticArray] = []
    io.create_subscription(DiagnosticArray, "/diagnostics", got.append, 100)
    cams = {"cam_a": Camera(io, "cam_a", -5.0), "cam_b": Camera(io, "cam_b", 0.0)}  # a: stamps 5 s old
    ex = MultiThreadedExecutor(num_threads=4, context=ctx)
    for n in (*nodes.values(), io):
        ex.add_node(n)
    stop = threading.Event()  # spun as the node process spins (ros/spin.py: survives rclpy's destroy race)
    spinner = threading.Thread(target=spin_until, args=(ex, stop, lambda _where, _exc: None), daemon=True)
    spinner.start()
    try:
        yield nodes, cams, got
    finally:
        for c in cams.values():
            c.stop.set()
        stop.set()
        ex.shutdown(timeout_sec=5)
        spinner.join(timeout=5)
        for n in nodes.values():
            n._stop_io()
            n._free_model()
            n.destroy_node()
        io.destroy_node()
        ctx.try_shutdown()


def latest(got: list[DiagnosticArray], name: str, since: int = 0) -> DiagnosticStatus | None:
    for arr in reversed(got[since:]):
        for s in arr.status:
            if s.name == name:
                return s
    return None


def wait_status(got, name, pred, what, timeout=20.0) -> DiagnosticStatus:
    deadline = time.monotonic() + timeout
    start = len(got)
    while time.monotonic() < deadline:
        s = latest(got, name, start)
        if s is not None and pred(s):
            return s
        time.sleep(0.05)
    s = latest(got, name)
    raise AssertionError(f"timed out waiting for {what}; last {name}: "
                         f"{None if s is None else (s.level, s.message, _kv(s))}")


def test_two_namespaced_nodes_report_rate_and_age_states(two_nodes) -> None:
    nodes, cams, got = two_nodes
    for n in nodes.values():
        assert n.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert n.trigger_activate() == TransitionCallbackReturn.SUCCESS
    deadline = time.monotonic() + 20
    while not all(c.pc.get_subscription_count() and c.pd.get_subscription_count() for c in cams.values()):
        assert time.monotonic() < deadline, "discovery"
        time.sleep(0.05)
    for c in cams.values():
        c.thread.start()
    rate_a, rate_b = "/cam_a/m4sam: input rate", "/cam_b/m4sam: input rate"
    # both learn ~30 Hz over their first second, then are OK
    for name in (rate_a, rate_b):
        st = wait_status(got, name, lambda s: "Target frequency (Hz)" in _kv(s) and s.level == DiagnosticStatus.OK,
                         "a learned rate, OK")
        assert 10.0 < float(_kv(st)["Target frequency (Hz)"]) < 33.0, _kv(st)  # 30 Hz sent (fewer under load)
        assert _kv(st)["Expected frequency source"] == "measured over the first 1 s"
    learned_a = float(_kv(latest(got, rate_a))["Target frequency (Hz)"])
    # throttle camera A to 3 Hz: WARN with the measured and the expected rate; B stays OK
    cams["cam_a"].rate = 3.0
    st = wait_status(got, rate_a, lambda s: s.level == DiagnosticStatus.WARN  # once the window holds only 3 Hz
                     and float(_kv(s)["Actual frequency (Hz)"]) < 5.0, "WARN at ~3 Hz on the throttled camera")
    kv = _kv(st)
    assert st.message.startswith("Frequency too low.") and "expected" in st.message, st.message
    measured = float(kv["Actual frequency (Hz)"])
    assert 1.5 < measured and f"measured {measured:.2f} Hz" in st.message
    assert float(kv["Target frequency (Hz)"]) == pytest.approx(learned_a) and f"expected {learned_a:.2f} Hz" in st.message
    b = latest(got, rate_b)
    assert b.level == DiagnosticStatus.OK and b.message.startswith("Desired frequency met"), (b.message, _kv(b))
    # the two instances are told apart: namespace in the name, camera frame + device in hardware_id
    assert st.hardware_id == "cam_a_color_optical_frame on cpu" and b.hardware_id == "cam_b_color_optical_frame on cpu"
    # frame age: A's stamps are 5 s old -> ERROR; B's are fresh -> OK
    age_a = wait_status(got, "/cam_a/m4sam: frame age", lambda s: s.level == DiagnosticStatus.ERROR, "old stamps")
    assert age_a.message == "Timestamps too far in past seen." and float(_kv(age_a)["Latest timestamp delay:"]) > 4.5
    age_b = wait_status(got, "/cam_b/m4sam: frame age", lambda s: s.level == DiagnosticStatus.OK, "fresh stamps")
    assert age_b.message == "Timestamps are reasonable." and float(_kv(age_b)["Latest timestamp delay:"]) < 1.0
    # a parameter below B's rate: "Frequency too high."; camera A stopped: ERROR "No events recorded."
    nodes["cam_b"].set_parameters([Parameter("expected_input_rate", value=5.0)])
    cams["cam_a"].rate = 0.0
    st = wait_status(got, rate_b, lambda s: s.level == DiagnosticStatus.WARN, "too high")
    assert st.message.startswith("Frequency too high.") and "expected 5.00 Hz" in st.message
    assert _kv(st)["Expected frequency source"] == "parameter expected_input_rate"
    st = wait_status(got, rate_a, lambda s: s.level == DiagnosticStatus.ERROR, "no events")
    assert st.message.startswith("No events recorded.")
    # camera B's clock runs 5 s ahead: ERROR past the default frame_age_min (-1 s), OK once the
    # parameter allows 10 s (rules out a frame_age_min that never reaches the check)
    cams["cam_b"].offset = 5.0
    age_name = "/cam_b/m4sam: frame age"
    st = wait_status(got, age_name, lambda s: s.level == DiagnosticStatus.ERROR, "future stamps")
    assert st.message == "Timestamps too far in future seen.", st.message
    assert float(_kv(st)["Earliest acceptable timestamp delay:"]) == -1.0
    nodes["cam_b"].set_parameters([Parameter("frame_age_min", value=-10.0)])
    st = wait_status(got, age_name, lambda s: s.level == DiagnosticStatus.OK, "future stamps allowed")
    assert float(_kv(st)["Earliest acceptable timestamp delay:"]) == -10.0
    assert float(_kv(st)["Latest timestamp delay:"]) < -3.0  # the stamps are still 5 s ahead
    # an inactive node does not alarm about its camera
    assert nodes["cam_a"].trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    st = wait_status(got, rate_a, lambda s: s.level == DiagnosticStatus.OK, "inactive")
    assert st.message == "not processing (node not active)"
    pipe = latest(got, "/cam_b/m4sam: pipeline")
    assert pipe is not None and pipe.hardware_id == "cam_b_color_optical_frame on cpu"
    assert np.isfinite(float(_kv(pipe)["input_pair_rate_hz"]))

"""compat: the image bridge round-trips every encoding (row padding, byte order), input problems
get the right reason; the message_filters and sensor_msgs_py stand-ins behave as the REAL packages
(installed into the test environment by `make testenv`) on the same messages; the environment
switch forces the stand-ins."""

import os
import subprocess
import sys
import threading
import time

# message_filters, sensor_msgs_py: the real packages, part of the test environment
# (tools/install_ros_python.sh), never skipped.
import message_filters
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from sensor_msgs_py import point_cloud2
from std_msgs.msg import Header

from m4sam_ros.msgs.image_codec import SUPPORTED_ENCODINGS
from m4sam_ros.ros import compat

LAYOUT = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
          "mono8": (np.uint8, 1), "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1)}


def _array(encoding, h=7, w=5, seed=0):
    dtype, ch = LAYOUT[encoding]
    rng = np.random.default_rng(seed)
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dtype is np.float32:
        return rng.uniform(0.1, 8.0, shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


def _padded_msg(arr, encoding, pad, big_endian=False):
    """An Image with `pad` garbage bytes after every row, as some drivers send."""
    h, w = arr.shape[:2]
    dt = arr.dtype.newbyteorder(">" if big_endian else "<")
    rows = np.ascontiguousarray(arr.astype(dt)).view(np.uint8).reshape(h, -1)
    garbage = np.full((h, pad), 0xAB, np.uint8)
    data = np.concatenate([rows, garbage], axis=1)
    return Image(height=h, width=w, encoding=encoding, is_bigendian=big_endian,
                 step=data.shape[1], data=data.tobytes())


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_bridge_round_trip_every_encoding(encoding):
    bridge = compat.CvBridge()
    arr = _array(encoding)
    msg = bridge.cv2_to_imgmsg(arr, encoding, header=Header(frame_id="cam"))
    assert isinstance(msg, Image) and msg.encoding == encoding and msg.header.frame_id == "cam"
    assert msg.step * msg.height == len(msg.data)
    back = bridge.imgmsg_to_cv2(msg, "passthrough")
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("pad", [1, 3, 16])
def test_bridge_honours_row_padding(encoding, pad):
    arr = _array(encoding, h=6, w=9, seed=pad)
    msg = _padded_msg(arr, encoding, pad)
    assert compat.image_problem(msg) is None
    assert np.array_equal(compat.CvBridge().imgmsg_to_cv2(msg), arr)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_bridge_big_endian_depth(encoding):
    arr = _array(encoding, seed=3)
    msg = _padded_msg(arr, encoding, 2, big_endian=True)
    assert np.array_equal(compat.CvBridge().imgmsg_to_cv2(msg), arr)


def test_bridge_colour_conversions():
    bridge = compat.CvBridge()
    rgb = _array("rgb8")
    bgr_msg = bridge.cv2_to_imgmsg(np.ascontiguousarray(rgb[..., ::-1]), "bgr8")
    assert np.array_equal(bridge.imgmsg_to_cv2(bgr_msg, "rgb8"), rgb)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    assert np.array_equal(bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(rgba, "rgba8"), "bgr8"), rgb[..., ::-1])
    # passthrough picks the encoding from dtype/channels, as cv_bridge does
    assert bridge.cv2_to_imgmsg(np.zeros((2, 2), np.uint16)).encoding == "16UC1"
    assert bridge.cv2_to_imgmsg(np.zeros((2, 2), np.float32)).encoding == "32FC1"
    with pytest.raises(compat.CvBridgeError):
        bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(np.zeros((2, 2), np.uint16)), "rgb8")


def test_image_problem_reasons():
    ok = compat.CvBridge().cv2_to_imgmsg(_array("rgb8"), "rgb8")
    assert compat.image_problem(ok) is None
    bad_enc = Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8))
    assert compat.image_problem(bad_enc) == "unsupported_encoding"
    assert compat.image_problem(ok, allowed=("16UC1",)) == "unsupported_encoding"
    assert compat.image_problem(Image(height=0, width=4, encoding="mono8", step=4)) == "zero_size"
    assert compat.image_problem(Image(height=2, width=4, encoding="rgb8", step=6, data=bytes(12))) == "bad_step"
    short = Image(height=2, width=4, encoding="mono8", step=4, data=bytes(7))
    assert compat.image_problem(short) == "bad_data_length"
    # the decoder agrees: whatever image_problem rejects, imgmsg_to_cv2 refuses
    for msg in (bad_enc, short):
        with pytest.raises(compat.CvBridgeError):
            compat.CvBridge().imgmsg_to_cv2(msg)


@pytest.mark.parametrize("make_cloud", [compat.create_cloud_xyz32, compat.standin_create_cloud_xyz32],
                         ids=["resolved", "stand-in"])
def test_point_cloud_read_back_by_real_sensor_msgs_py(make_cloud):
    pts = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    cloud = make_cloud(Header(frame_id="cam"), pts)
    assert cloud.width == 50 and cloud.height == 1 and cloud.point_step == 12
    assert [f.name for f in cloud.fields] == ["x", "y", "z"] and cloud.header.frame_id == "cam"
    assert np.array_equal(compat.cloud_xyz(cloud), pts)
    assert np.array_equal(point_cloud2.read_points_numpy(cloud, field_names=("x", "y", "z")), pts)
    real = point_cloud2.create_cloud_xyz32(Header(frame_id="cam"), pts)
    assert bytes(real.data) == bytes(cloud.data) and real.fields == cloud.fields
    assert compat.cloud_xyz(make_cloud(Header(), np.zeros((0, 3)))).shape == (0, 3)


def test_backends_are_the_real_packages_in_the_test_environment():
    assert set(compat.BACKENDS) == set(compat.OPTIONAL_PACKAGES)
    if os.environ.get(compat.STANDINS_ENV):
        pytest.skip(f"{compat.STANDINS_ENV} is set: stand-ins forced for this run")
    assert compat.BACKENDS == dict.fromkeys(compat.OPTIONAL_PACKAGES, "ros")
    assert compat.Subscriber is message_filters.Subscriber
    assert compat.ApproximateTimeSynchronizer is message_filters.ApproximateTimeSynchronizer
    assert compat.create_cloud_xyz32 is point_cloud2.create_cloud_xyz32
    assert compat.HAVE_VISION_MSGS
    import diagnostic_updater
    import image_geometry

    assert compat.PinholeCameraModel is image_geometry.PinholeCameraModel
    assert compat.diagnostic_updater is diagnostic_updater


def _backends_with(env_value):
    env = dict(os.environ, **{compat.STANDINS_ENV: env_value})
    code = ("from m4sam_ros.ros import compat; print(sorted(compat.BACKENDS.items()), "
            "compat.Subscriber is compat.StandInSubscriber, compat.HAVE_VISION_MSGS)")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_environment_forces_the_standins():
    out = _backends_with("all")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[('diagnostic_updater',", "'stand-in'),", "('image_geometry',", "'stand-in'),",
                                  "('message_filters',", "'stand-in'),", "('sensor_msgs_py',", "'stand-in'),",
                                  "('vision_msgs',", "'missing')]", "True", "False"]
    assert compat.forced_standins("vision_msgs, sensor_msgs_py") == {"vision_msgs", "sensor_msgs_py"}
    assert compat.forced_standins("") == frozenset()
    with pytest.raises(ValueError, match="unknown package.*cv_bridge"):
        compat.forced_standins("cv_bridge")


def _stream(seed, n=300):
    """A camera-like message stream: two inputs at ~30 Hz, jitter, drops, outages of one input
    (which fill the other's queue), late (reordered) arrival."""
    rng = np.random.default_rng(seed)
    events = []
    t0 = 1_700_000_000 * 10**9
    outage = {0: 0, 1: 0}
    for i in range(n):
        base = t0 + i * 33_333_333
        for idx, offset in ((0, 0), (1, int(rng.integers(-12, 12)) * 1_000_000)):
            if outage[idx] == 0 and rng.random() < 0.03:
                outage[idx] = int(rng.integers(3, 15))
            if outage[idx] > 0:
                outage[idx] -= 1
                continue
            if rng.random() < 0.1:  # dropped
                continue
            stamp = base + offset + int(rng.integers(-2_000_000, 2_000_000))
            # transport delay, depth often later than colour: reorders the inputs, fills queues
            arrival = stamp + int(rng.exponential(15_000_000 if idx == 0 else 60_000_000))
            events.append((arrival, idx, stamp))
    events.sort()
    return [(idx, stamp) for _, idx, stamp in events]


def _pairs(sync_cls, events, queue_size, slop):
    inputs = [message_filters.SimpleFilter(), message_filters.SimpleFilter()]
    sync = sync_cls(inputs, queue_size, slop)
    got = []
    sync.registerCallback(lambda a, b: got.append((compat.stamp_to_ns(a.header.stamp),
                                                   compat.stamp_to_ns(b.header.stamp))))
    for idx, stamp in events:
        h = Header()
        h.stamp.sec, h.stamp.nanosec = divmod(stamp, 1_000_000_000)
        inputs[idx].signalMessage(Image(header=h))
    return got, sync


@pytest.mark.parametrize("seed,queue_size,slop",
                         [(3, 4, 0.02), (3, 5, 0.05), (2, 5, 0.02), (2, 8, 0.05), (0, 10, 0.02)])
def test_standin_synchronizer_pairs_like_the_real_message_filters(seed, queue_size, slop):
    """Same stream (jitter, 10 % drops, outages, reordering), same pairs out, in the same order.
    Small queues on purpose: eviction decides pairs here, so an off-by-one bound shows."""
    events = _stream(seed)
    real, _ = _pairs(message_filters.ApproximateTimeSynchronizer, events, queue_size, slop)
    standin, sync = _pairs(compat.StandInApproximateTimeSynchronizer, events, queue_size, slop)
    assert len(real) > 100 and sync.pairer.evicted > 50
    assert standin == real


def test_standin_keeps_pairing_where_message_filters_sticks():
    """The one documented difference (m4sam_ros.msgs.sync): after a colour stamp glitch into the future,
    message_filters drops every new colour message until the stream catches up; the stand-in pairs."""
    t0 = 1_700_000_000 * 10**9
    events = [(0, t0 + 500_000_000 + i) for i in range(3)]
    for i in range(10):
        events += [(0, t0 + i * 33_333_333), (1, t0 + i * 33_333_333 + 1_000_000)]
    real, _ = _pairs(message_filters.ApproximateTimeSynchronizer, events, 3, 0.02)
    standin, sync = _pairs(compat.StandInApproximateTimeSynchronizer, events, 3, 0.02)
    assert real == []
    assert standin == [(t0 + i * 33_333_333, t0 + i * 33_333_333 + 1_000_000) for i in range(10)]
    assert sync.pairer.kept_newest == 1  # one future message evicted, then there is room


@pytest.fixture
def ros_context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


def _img(stamp_ns, frame="cam"):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return compat.CvBridge().cv2_to_imgmsg(np.zeros((2, 2), np.uint8), "mono8", header=h)


@pytest.mark.parametrize("impl", ["resolved", "stand-in"])
def test_synchronizer_pairs_live_topics(ros_context, impl):
    """Subscriber + ApproximateTimeSynchronizer over real DDS: camera-like offsets pair 1:1,
    a lone message far from any partner is never paired."""
    sub_cls, sync_cls = ((compat.Subscriber, compat.ApproximateTimeSynchronizer) if impl == "resolved"
                         else (compat.StandInSubscriber, compat.StandInApproximateTimeSynchronizer))
    node = rclpy.create_node("sync_under_test", context=ros_context)
    pub_node = rclpy.create_node("sync_publisher", context=ros_context)
    a = sub_cls(node, Image, "a", qos_profile=10)
    b = sub_cls(node, Image, "b", qos_profile=10)
    assert a.getTopic() == "a" and a.topic_name == "/a"  # __getattr__ reaches the subscription
    sync = sync_cls([a, b], 10, 0.02)
    got, extra = [], []
    sync.registerCallback(lambda m1, m2, tag: got.append((m1, m2, tag)), "tag")
    sync.registerCallback(lambda m1, m2: extra.append(1))
    pa, pb = pub_node.create_publisher(Image, "a", 10), pub_node.create_publisher(Image, "b", 10)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(pub_node)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 5
        while (pa.get_subscription_count() < 1 or pb.get_subscription_count() < 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = 1_700_000_000 * 10**9
        for i in range(6):
            pa.publish(_img(t0 + i * 33_333_333))
            pb.publish(_img(t0 + i * 33_333_333 + 4_000_000))  # depth 4 ms after colour
        pa.publish(_img(t0 + 10 * 10**9))  # no partner within slop
        deadline = time.monotonic() + 5
        while len(got) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
    finally:
        ex.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()
        pub_node.destroy_node()
    assert len(got) == 6 and len(extra) == 6
    for i, (m1, m2, tag) in enumerate(got):
        assert tag == "tag"
        ns1 = compat.stamp_to_ns(m1.header.stamp)
        assert ns1 == t0 + i * 33_333_333
        assert compat.stamp_to_ns(m2.header.stamp) - ns1 == 4_000_000


def test_stamp_to_ns_accepts_rclpy_time_and_msg():
    from rclpy.time import Time

    h = _img(5_000_000_123).header
    assert compat.stamp_to_ns(h.stamp) == 5_000_000_123
    assert compat.stamp_to_ns(Time(nanoseconds=42)) == 42

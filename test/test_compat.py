"""compat: the cv_bridge stand-in round-trips every encoding (row padding, byte order), input
problems get the right reason, message_filters stand-ins pair real rclpy messages, point clouds."""

import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from m4sam_ros.image_codec import SUPPORTED_ENCODINGS
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


def test_point_cloud_round_trip():
    pts = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    cloud = compat.create_cloud_xyz32(Header(frame_id="cam"), pts)
    assert cloud.width == 50 and cloud.height == 1 and cloud.point_step == 12
    assert [f.name for f in cloud.fields] == ["x", "y", "z"] and cloud.header.frame_id == "cam"
    assert np.array_equal(compat.cloud_xyz(cloud), pts)
    assert compat.cloud_xyz(compat.create_cloud_xyz32(Header(), np.zeros((0, 3)))).shape == (0, 3)


def test_backends_are_reported():
    assert set(compat.BACKENDS) == {"cv_bridge", "message_filters", "sensor_msgs_py", "vision_msgs"}
    assert compat.HAVE_VISION_MSGS == (compat.BACKENDS["vision_msgs"] == "ros")


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


def test_synchronizer_pairs_live_topics(ros_context):
    """Subscriber + ApproximateTimeSynchronizer over real DDS: camera-like offsets pair 1:1,
    a lone message far from any partner is never paired."""
    node = rclpy.create_node("sync_under_test", context=ros_context)
    pub_node = rclpy.create_node("sync_publisher", context=ros_context)
    a = compat.Subscriber(node, Image, "a", qos_profile=10)
    b = compat.Subscriber(node, Image, "b", qos_profile=10)
    assert a.getTopic() == "a" and a.topic_name == "/a"  # __getattr__ reaches the subscription
    sync = compat.ApproximateTimeSynchronizer([a, b], 10, 0.02)
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

"""Result -> message conversion: encodings, headers, markers, clouds; image builders also make
rosbags messages (the bag tool writes the same bytes the node publishes)."""

from dataclasses import dataclass

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from m4sam_ros.msgs.image_codec import image_to_numpy
from m4sam_ros.ros import compat, messages
from m4sam_ros.ros.detections3d import detection2d_array, markers_with_ids
from m4sam_ros.scene.boxes3d import Box3DDetection


@dataclass
class Box:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float


def _hdr():
    h = Header(frame_id="camera_color_optical_frame")
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


def test_mask_saliency_overlay_messages():
    mask = np.zeros((12, 16), np.uint8)
    mask[3:8, 4:10] = 255
    sal = np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16)
    rgb = np.full((12, 16, 3), 100, np.uint8)
    m, s, o = (messages.mask_msg(mask, _hdr()), messages.saliency_msg(sal, _hdr()),
               messages.overlay_msg(rgb, mask, [Box(4, 3, 9, 7, 0.7)], _hdr()))
    assert (m.encoding, s.encoding, o.encoding) == ("mono8", "32FC1", "rgb8")
    assert m.header == s.header == o.header == _hdr()
    assert np.array_equal(image_to_numpy(m), mask) and np.array_equal(image_to_numpy(s), sal)
    ov = image_to_numpy(o)
    assert ov.shape == (12, 16, 3) and not np.array_equal(ov, rgb)


def test_detections_fields():
    """vision_msgs 4.x Detection2DArray: centre, size, class 'salient' and score per box, the header
    on the array and every detection; None only where vision_msgs is not installed."""
    boxes = [Box(4, 3, 10, 7, 0.7), Box(0, 0, 2, 1, 0.25)]
    if not compat.HAVE_VISION_MSGS:
        with pytest.raises(ImportError):
            detection2d_array(boxes, [0, 1], _hdr())
        assert compat.Detection2DArray is None
        return
    det = detection2d_array(boxes, [0, 1], _hdr())  # the builder the node publishes with
    assert isinstance(det, compat.Detection2DArray) and det.header == _hdr() and len(det.detections) == 2
    d0, d1 = det.detections
    assert d0.header == _hdr() and d0.id == "0" and d1.id == "1"
    assert (d0.bbox.center.position.x, d0.bbox.center.position.y, d0.bbox.size_x, d0.bbox.size_y) == (7.0, 5.0, 6.0, 4.0)
    assert (d1.bbox.center.position.x, d1.bbox.center.position.y, d1.bbox.size_x, d1.bbox.size_y) == (1.0, 0.5, 2.0, 1.0)
    assert [(r.hypothesis.class_id, round(r.hypothesis.score, 6)) for r in d0.results] == [("salient", 0.7)]
    assert [(r.hypothesis.class_id, r.hypothesis.score) for r in d1.results] == [("salient", 0.25)]
    assert detection2d_array([], [], _hdr()).detections == []


def test_image_builders_make_rosbags_messages_too():
    ts = get_typestore(Stores.ROS2_KILTED)
    Image = ts.types["sensor_msgs/msg/Image"]
    Header_, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    hdr = Header_(stamp=Time(sec=1, nanosec=2), frame_id="cam")
    mask = (np.arange(20, dtype=np.uint8).reshape(4, 5) % 2) * 255
    msg = messages.mask_msg(mask, hdr, factory=Image)
    assert isinstance(msg, Image) and msg.header.frame_id == "cam"
    raw = ts.serialize_cdr(msg, "sensor_msgs/msg/Image")
    back = ts.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    assert np.array_equal(image_to_numpy(back), mask)


def test_markers_and_points():
    boxes = [Box3DDetection((0.1, 0.2, 1.5), (0.3, 0.4, 0.2), 100, 0.9, (0, 0, 4, 4), 0),
             Box3DDetection((0.0, 0.0, 2.0), (0.1, 0.1, 0.1), 50, 0.5, (5, 5, 8, 8), 1)]
    arr = markers_with_ids(boxes, [7, 3], _hdr(), lifetime_s=0.25)
    assert arr.markers[0].action == Marker.DELETEALL
    cubes = [m for m in arr.markers[1:] if m.type == Marker.CUBE]
    labels = [m for m in arr.markers[1:] if m.type == Marker.TEXT_VIEW_FACING]
    assert [c.id for c in cubes] == [7, 3] and [t.text for t in labels] == ["id 7", "id 3"]
    assert cubes[0].pose.position.z == 1.5 and cubes[0].scale.y == 0.4 and cubes[0].header == _hdr()
    assert cubes[0].lifetime.sec == 0 and cubes[0].lifetime.nanosec == 250_000_000
    assert cubes[0].pose.orientation.w == 1.0 and 0 < cubes[0].color.a <= 1
    pts = np.array([[0, 0, 1], [1, 2, 3]], np.float32)
    cloud = messages.points_msg(pts, _hdr())
    assert cloud.header == _hdr() and np.array_equal(compat.cloud_xyz(cloud), pts)

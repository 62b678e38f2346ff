"""Stable ids across frames, new ids after a re-initialisation, and the id-carrying messages over DDS."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from m4sam_ros.predictor.streaming import Box, SaliencyResult, boxes_from_mask
from m4sam_ros.ros import detections3d as d3
from m4sam_ros.scene.camera import CameraModel
from m4sam_ros.scene.geometry import depth_in_metres
from m4sam_ros.scene.tracking import OverlapTracker, box_iou


def _b(x0: int, y0: int, x1: int, y1: int, s: float = 0.9) -> Box:
    return Box(x0, y0, x1, y1, s)


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_ids_follow_objects_by_overlap_not_by_list_order() -> None:
    t = OverlapTracker(iou_threshold=0.3, max_missed=0)
    a, b = _b(0, 0, 20, 20), _b(50, 50, 60, 60)
    assert t.update([a, b], reinitialized=True) == [1, 2]
    # both move a little, and the list order flips (the predictor sorts by area)
    assert t.update([_b(53, 52, 63, 62), _b(2, 1, 22, 21)]) == [2, 1]
    # a third object appears: a new id, never a reused one
    assert t.update([_b(3, 1, 23, 21), _b(53, 52, 63, 62), _b(90, 0, 100, 10)]) == [1, 2, 3]


def test_brief_occlusion_keeps_the_id_longer_loses_it() -> None:
    t = OverlapTracker(iou_threshold=0.3, max_missed=2)
    a = _b(0, 0, 20, 20)
    assert t.update([a]) == [1]
    assert t.update([]) == [] and t.update([]) == []
    assert t.update([a]) == [1]                     # gone for 2 frames: same object
    for _ in range(3):
        t.update([])
    assert t.update([a]) == [2]                     # gone for 3 > max_missed: a new id


def test_a_track_that_comes_back_starts_its_miss_count_afresh() -> None:
    """Two occlusions of max_missed frames each, with the object seen in between, keep the id:
    being matched again clears the misses. Wrong code: carry the misses over (the second
    occlusion ends the track and the object gets a new id)."""
    t = OverlapTracker(iou_threshold=0.3, max_missed=2)
    a = _b(0, 0, 20, 20)
    assert t.update([a]) == [1]
    for _ in range(2):
        assert t.update([]) == []
        assert t.update([]) == []
        assert t.update([a]) == [1]
    assert [(tr.id, tr.missed, tr.age) for tr in t.tracks] == [(1, 0, 3)]


def test_reinitialisation_gives_new_ids_even_at_the_same_place() -> None:
    t = OverlapTracker()
    a = _b(0, 0, 20, 20)
    assert t.update([a], reinitialized=True) == [1]
    assert t.update([a]) == [1]
    assert t.update([a], reinitialized=True) == [2]
    assert t.update([a]) == [2]
    t.reset()
    assert t.update([a]) == [3]


def test_one_track_cannot_take_two_boxes() -> None:
    t = OverlapTracker(iou_threshold=0.1)
    t.update([_b(0, 0, 40, 20)])
    ids = t.update([_b(0, 0, 20, 20), _b(20, 0, 40, 20)])  # a split: each overlaps the old box by 0.5
    assert sorted(ids) == [1, 2]


def _result(mask: np.ndarray, reinit: bool, index: int) -> SaliencyResult:
    sal = mask.astype(np.float32) / 255
    return SaliencyResult(mask=mask, saliency=sal, coarse=sal, memory=sal,
                          boxes=boxes_from_mask(mask, sal, 10), object_score=0.9, reinitialized=reinit,
                          frame_index=index, stamp=float(index))


CAMERA = CameraModel.pinhole(200.0, 200.0, 63.5, 47.5, 128, 96)


def _labelled(result, depth, header, tracker):
    return d3.labelled_outputs(result, depth_in_metres(depth, "16UC1"), CAMERA, header, tracker)


def _frame(shift: int) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((96, 128), np.uint8)
    depth = np.full((96, 128), 4000, np.uint16)
    mask[30:60, 40 + shift:80 + shift] = 255
    depth[30:60, 40 + shift:80 + shift] = 1500
    mask[5:15, 100:120] = 255                      # a second, small object at 3 m
    depth[5:15, 100:120] = 3000
    return mask, depth


def test_same_id_in_2d_3d_and_markers() -> None:
    if not d3.HAVE_VISION_MSGS:
        pytest.skip("vision_msgs (a ROS message package, not on PyPI) is not installed")
    from std_msgs.msg import Header

    tracker = OverlapTracker()
    header = Header(frame_id="camera_color_optical_frame")
    mask, depth = _frame(0)
    out = _labelled(_result(mask, True, 0), depth, header, tracker)
    assert out.ids == [1, 2] and not out.skipped
    ids2d = [d.id for d in out.messages["detections"].detections]
    ids3d = [d.id for d in out.messages["detections_3d"].detections]
    cubes = [m for m in out.messages["markers"].markers if m.type == m.CUBE]
    labels = [m.text for m in out.messages["markers"].markers if m.type == m.TEXT_VIEW_FACING]
    assert ids2d == ids3d == ["1", "2"] and [m.id for m in cubes] == [1, 2] and labels == ["id 1", "id 2"]
    det = out.messages["detections_3d"].detections[0]
    assert det.header == header and det.results[0].hypothesis.class_id == "salient"
    assert det.bbox.center.position.z == pytest.approx(1.5) and min(det.bbox.size.x, det.bbox.size.y,
                                                                     det.bbox.size.z) > 0
    # no camera (pipeline.scene_inputs refused the camera_info): no 3D outputs, 2D ids unchanged
    out = d3.labelled_outputs(_result(mask, False, 1), depth_in_metres(depth, "16UC1"), None, header, tracker)
    assert "detections_3d" not in out.messages and [d.id for d in out.messages["detections"].detections] == ["1", "2"]


def test_detection3d_array_with_stable_ids_arrives_at_a_real_subscriber() -> None:
    """Two frames through rclpy publisher -> DDS (loopback) -> subscriber: the moving object keeps id 1."""
    if not d3.HAVE_VISION_MSGS:
        pytest.skip("vision_msgs (a ROS message package, not on PyPI) is not installed")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Header
    from vision_msgs.msg import Detection3DArray

    tracker = OverlapTracker()
    sent = []
    for i, shift in enumerate((0, 4)):
        mask, depth = _frame(shift)
        header = Header(frame_id="camera_color_optical_frame")
        header.stamp.sec = 100 + i
        out = _labelled(_result(mask, i == 0, i), depth, header, tracker)
        sent.append(out.messages["detections_3d"])
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        pub_node = rclpy.create_node("io_det3d_pub", context=ctx)
        sub_node = rclpy.create_node("io_det3d_sub", context=ctx)
        got: list = []
        sub_node.create_subscription(Detection3DArray, "detections_3d", got.append, 10)
        pub = pub_node.create_publisher(Detection3DArray, "detections_3d", 10)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(pub_node)
        ex.add_node(sub_node)
        end = time.monotonic() + 20
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.1)
        for msg in sent:
            pub.publish(msg)
        while len(got) < 2 and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.1)
        ex.shutdown()
    finally:
        rclpy.shutdown(context=ctx)
    assert len(got) == 2
    assert [[d.id for d in m.detections] for m in got] == [["1", "2"], ["1", "2"]]
    assert [m.header.stamp.sec for m in got] == [100, 101]
    x0, x1 = (m.detections[0].bbox.center.position.x for m in got)
    assert x1 - x0 == pytest.approx(4 * 1.5 / 200.0, abs=1e-6)  # the same object, moved 4 px at 1.5 m

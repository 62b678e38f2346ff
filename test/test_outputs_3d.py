"""The 3D outputs of one frame through the pipeline the node and m4sam-bag share
(``pipeline.frame_outputs`` with real rclpy messages and the real image_geometry / vision_msgs /
sensor_msgs_py): one camera model and one depth reading for ``~/object_points``,
``~/detections_3d`` and ``~/markers``.

Discriminating inputs (issue 22 items 4 and 5): the component without a 3D box is the MIDDLE one
of three (ids shifted by one would put its id on the next object), ``depth_scale`` is set to a
non-default value (boxes that ignore it keep their size while the points halve), and the
camera_info is of twice the depth image's size with an off-centre principal point (a second,
unscaled camera parse in the box path would move the boxes away from the points).
"""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from m4sam_ros.predictor.streaming import SaliencyResult, boxes_from_mask
from m4sam_ros.ros import compat, pipeline
from m4sam_ros.scene.boxes3d import robust_box
from m4sam_ros.scene.tracking import OverlapTracker

H, W = 120, 160
ALL3D = ["points", "detections", "detections_3d", "markers"]


def camera_info() -> CameraInfo:
    """A 320x240 calibration (fx != fy, principal point off centre) for the 160x120 depth."""
    info = CameraInfo(width=2 * W, height=2 * H, distortion_model="plumb_bob")
    info.header.frame_id = "camera_color_optical_frame"
    info.k = [300.0, 0.0, 171.0, 0.0, 280.0, 109.0, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [300.0, 0.0, 171.0, 0.0, 0.0, 280.0, 109.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def result_of(mask: np.ndarray, saliency: np.ndarray) -> SaliencyResult:
    return SaliencyResult(mask=mask, saliency=saliency, coarse=saliency, memory=saliency,
                          boxes=boxes_from_mask(mask, saliency, 10), object_score=0.9, reinitialized=True,
                          frame_index=0, stamp=0.0)


def three_objects() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Components A (largest, 1.5 m), B (middle size, NO valid depth), C (smallest, 2.5 m) on a
    4 m wall: boxes_from_mask lists them A, B, C, so B, the one without a 3D box, is in the middle."""
    mask = np.zeros((H, W), np.uint8)
    sal = np.zeros((H, W), np.float32)
    depth = np.full((H, W), 4000, np.uint16)
    for (y0, y1, x0, x1), z, s in (((30, 60, 5, 45), 1500, 0.9), ((70, 95, 55, 85), 0, 0.8),
                                   ((20, 40, 120, 140), 2500, 0.7)):
        mask[y0:y1, x0:x1] = 255
        sal[y0:y1, x0:x1] = s
        depth[y0:y1, x0:x1] = z
    return mask, sal, depth


def frame(mask, sal, depth, encoding="16UC1", depth_scale=0.001, stride=2, wanted=ALL3D):
    settings = pipeline.OutputSettings(depth_scale=depth_scale, points_stride=stride, marker_min_points=20)
    return pipeline.frame_outputs(result_of(mask, sal), np.zeros((H, W, 3), np.uint8), depth, encoding,
                                  Header(frame_id="camera_color_optical_frame"), camera_info(), settings, wanted,
                                  OverlapTracker())


def cubes(frame_out):
    return [m for m in frame_out.messages["markers"].markers if m.type == m.CUBE]


def test_a_middle_component_without_a_3d_box_does_not_shift_the_ids() -> None:
    if not compat.HAVE_VISION_MSGS:
        pytest.skip("vision_msgs is not installed")
    mask, sal, depth = three_objects()
    out = frame(mask, sal, depth)
    det2d = out.messages["detections"].detections
    assert [d.id for d in det2d] == ["1", "2", "3"] and out.skipped == {"too_few_depth_points": 1}
    det3d = out.messages["detections_3d"].detections
    assert [d.id for d in det3d] == ["1", "3"]                   # B (id 2) has no box; C keeps id 3
    assert [m.id for m in cubes(out)] == [1, 3]
    texts = [m for m in out.messages["markers"].markers if m.type == m.TEXT_VIEW_FACING]
    assert [m.text for m in texts] == ["id 1", "id 3"]
    # RViz: the previous frame's boxes are deleted first, each label floats 5 cm above its cube's
    # top face (optical frame: -y is up), and each 3D detection keeps its component's 2D score
    assert out.messages["markers"].markers[0].action == texts[0].DELETEALL
    for cube, text in zip(cubes(out), texts, strict=True):
        top = cube.pose.position.y - cube.scale.y / 2
        assert text.pose.position.y == pytest.approx(top - 0.05) and text.pose.position.x == cube.pose.position.x
    assert [d.results[0].hypothesis.score for d in det3d] == pytest.approx([0.9, 0.7])
    # each 3D box is the object its id names in 2D: its centre projects inside that 2D box
    cam = compat.camera_model(camera_info()).scaled_to(W, H)
    by_id = {d.id: d.bbox for d in det2d}
    for d in det3d:
        p = d.bbox.center.position
        u, v = cam.project(np.array([[p.x, p.y, p.z]]))[0]
        b = by_id[d.id]
        assert abs(u - b.center.position.x) < b.size_x / 2 and abs(v - b.center.position.y) < b.size_y / 2
    assert [round(d.bbox.center.position.z, 3) for d in det3d] == [1.5, 2.5]


def test_depth_scale_changes_points_boxes_and_markers_alike() -> None:
    """Issue 22 item 5: depth_scale 0.0005 (half-millimetre units) halves every coordinate of the
    points, the box centres and sizes and the marker cubes, and nothing else changes."""
    mask, sal, depth = three_objects()
    ref, half = frame(mask, sal, depth), frame(mask, sal, depth, depth_scale=0.0005)
    np.testing.assert_allclose(compat.cloud_xyz(half.messages["points"]),
                               compat.cloud_xyz(ref.messages["points"]) * 0.5, rtol=1e-6)
    for a, b in zip(ref.boxes3d, half.boxes3d, strict=True):
        np.testing.assert_allclose(np.array(b.center), np.array(a.center) * 0.5, rtol=1e-6)
        np.testing.assert_allclose(np.array(b.size), np.maximum(np.array(a.size) * 0.5, 0.01), rtol=1e-6)
    for a, b in zip(cubes(ref), cubes(half), strict=True):
        assert b.pose.position.z == pytest.approx(a.pose.position.z * 0.5, rel=1e-6)
        assert b.scale.x == pytest.approx(a.scale.x * 0.5, rel=1e-6)
    if compat.HAVE_VISION_MSGS:
        zs = [d.bbox.center.position.z for d in half.messages["detections_3d"].detections]
        assert zs == pytest.approx([0.75, 1.25], abs=1e-6)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_one_object_has_one_extent_in_points_boxes_and_markers(encoding: str) -> None:
    """A 40 x 30 px patch at 1.5 m (holes and a far wall around it): the robust box of the
    published cloud, the Detection3D size and the marker cube are the same numbers, and the same
    for millimetres (16UC1) and metres (32FC1)."""
    mask = np.zeros((H, W), np.uint8)
    mask[30:60, 5:45] = 255
    depth_mm = np.full((H, W), 4000, np.uint16)
    depth_mm[30:60, 5:45] = 1500
    depth_mm[40:44, 10:20] = 0                       # holes inside the object
    depth = depth_mm
    if encoding == "32FC1":
        depth = depth_mm.astype(np.float32) / 1000
        depth[depth_mm == 0] = np.nan
    out = frame(mask, mask.astype(np.float32) / 255, depth, encoding)
    pts = compat.cloud_xyz(out.messages["points"])
    centre, size = robust_box(pts)
    [box] = out.boxes3d
    [cube] = cubes(out)
    np.testing.assert_allclose(box.size, size, atol=1e-6)
    np.testing.assert_allclose(box.center, centre, atol=1e-6)
    np.testing.assert_allclose((cube.scale.x, cube.scale.y, cube.scale.z), size, atol=1e-6)
    np.testing.assert_allclose((cube.pose.position.x, cube.pose.position.y, cube.pose.position.z), centre,
                               atol=1e-6)
    if compat.HAVE_VISION_MSGS:
        [det] = out.messages["detections_3d"].detections
        np.testing.assert_allclose((det.bbox.size.x, det.bbox.size.y, det.bbox.size.z), size, atol=1e-6)
    # the geometry itself: scaled camera fx = 150, fy = 140, cx = 85.25, cy = 54.25
    vs, us = np.mgrid[0:H:2, 0:W:2]
    sel = (mask[::2, ::2] > 0) & (depth_mm[::2, ::2] == 1500)
    xs = (us[sel] - 85.25) * 1.5 / 150
    assert size[0] == pytest.approx(np.percentile(xs, 98) - np.percentile(xs, 2), abs=1e-5)
    assert centre[2] == pytest.approx(1.5, abs=1e-6)
    # 16UC1 mm and 32FC1 m: identical to float precision
    if encoding == "32FC1":
        mm = frame(mask, mask.astype(np.float32) / 255, depth_mm, "16UC1")
        np.testing.assert_allclose(mm.boxes3d[0].size, box.size, atol=1e-6)
        np.testing.assert_allclose(compat.cloud_xyz(mm.messages["points"]), pts, atol=1e-6)


def test_a_bad_camera_info_leaves_3d_out_and_names_the_problem() -> None:
    mask, sal, depth = three_objects()
    info = camera_info()
    info.k = [0.0] * 9
    info.p = [0.0] * 12
    out = pipeline.frame_outputs(result_of(mask, sal), np.zeros((H, W, 3), np.uint8), depth, "16UC1", Header(),
                                 info, pipeline.OutputSettings(), ALL3D, OverlapTracker())
    assert [p.reason for p in out.problems] == ["bad_camera_info"]
    assert "points" not in out.messages and "markers" not in out.messages
    if compat.HAVE_VISION_MSGS:
        assert len(out.messages["detections"].detections) == 3

"""3D boxes per salient component: units, zero size, outliers, intrinsics."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from m4sam_ros.predictor.streaming import Box, boxes_from_mask
from m4sam_ros.scene.boxes3d import DepthUnitsError, boxes_3d, depth_in_metres
from m4sam_ros.scene.camera import CameraModel, CameraModelError

CAM = CameraModel.pinhole(fx=200.0, fy=210.0, cx=63.5, cy=47.5)
H, W = 96, 128


def _scene(z_obj: float = 2.0, z_wall: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """A fronto-parallel rectangle (u 40..79, v 30..59) at z_obj in front of a wall; mm depth."""
    depth = np.full((H, W), int(z_wall * 1000), np.uint16)
    mask = np.zeros((H, W), np.uint8)
    depth[30:60, 40:80] = int(z_obj * 1000)
    mask[30:60, 40:80] = 255
    return mask, depth


def _expected_x(u0: int, u1: int, z: float, rows: int = 30) -> tuple[float, float]:
    """Centre and 2..98 percentile extent of x over the pixels of columns u0..u1-1 at depth z."""
    xs = np.repeat((np.arange(u0, u1) - CAM.cx) * z / CAM.fx, rows)
    lo, hi = np.percentile(xs, 2), np.percentile(xs, 98)
    return (lo + hi) / 2, hi - lo


def test_box_of_a_plane_matches_its_geometry_and_is_never_zero_thick() -> None:
    mask, depth = _scene()
    boxes = boxes_from_mask(mask, mask.astype(np.float32) / 255, 10)
    [b] = boxes_3d(mask, boxes, depth_in_metres(depth, "16UC1"), CAM)
    cx, sx = _expected_x(40, 80, 2.0)
    assert b.center[0] == pytest.approx(cx, abs=1e-6) and b.size[0] == pytest.approx(sx, abs=1e-6)
    ys = np.repeat((np.arange(30, 60) - CAM.cy) * 2.0 / CAM.fy, 40)
    assert b.size[1] == pytest.approx(np.percentile(ys, 98) - np.percentile(ys, 2), abs=1e-6)
    assert b.center[2] == pytest.approx(2.0, abs=1e-6)
    assert b.size[2] == pytest.approx(0.01)  # flat: padded to min_extent, never zero
    assert b.num_points == 30 * 40 and b.box2d == (40, 30, 80, 60) and b.index == 0
    assert b.score == pytest.approx(1.0)


def test_16uc1_millimetres_and_32fc1_metres_give_the_same_box() -> None:
    mask, depth = _scene()
    boxes = boxes_from_mask(mask, mask.astype(np.float32) / 255, 10)
    [mm] = boxes_3d(mask, boxes, depth_in_metres(depth, "16UC1"), CAM)
    metres = depth.astype(np.float32) / 1000
    metres[0, 0] = np.nan
    [m] = boxes_3d(mask, boxes, depth_in_metres(metres, "32FC1"), CAM)
    np.testing.assert_allclose(m.center, mm.center, atol=1e-6)
    np.testing.assert_allclose(m.size, mm.size, atol=1e-6)


def test_flying_pixels_and_holes_do_not_stretch_the_box() -> None:
    mask, depth = _scene()
    rng = np.random.default_rng(0)
    inside = np.argwhere(mask > 0)
    pick = inside[rng.choice(len(inside), 60, replace=False)]
    depth[pick[:30, 0], pick[:30, 1]] = 5000      # 2.5 % edge pixels that see the wall
    depth[pick[30:, 0], pick[30:, 1]] = 0         # holes
    depth[31, 41] = 300                           # one flying pixel far in front
    [b] = boxes_3d(mask, [Box(40, 30, 80, 60, 0.9)], depth_in_metres(depth, "16UC1"), CAM)
    assert b.center[2] == pytest.approx(2.0, abs=1e-6)
    assert b.size[2] == pytest.approx(0.01)
    cx, sx = _expected_x(40, 80, 2.0)
    assert b.center[0] == pytest.approx(cx, abs=0.01) and b.size[0] == pytest.approx(sx, rel=0.03)
    assert b.num_points == 30 * 40 - 30 and b.score == pytest.approx(0.9)


def test_component_without_depth_is_left_out_and_counted() -> None:
    mask, depth = _scene()
    mask[70:90, 100:120] = 255                   # a second component ...
    depth[70:90, 100:120] = 0                    # ... with no valid depth
    boxes = boxes_from_mask(mask, mask.astype(np.float32) / 255, 10)
    assert len(boxes) == 2
    skipped: Counter[str] = Counter()
    dets = boxes_3d(mask, boxes, depth_in_metres(depth, "16UC1"), CAM, skipped=skipped)
    assert [d.index for d in dets] == [0] and skipped == {"too_few_depth_points": 1}
    depth[70:90, 100:120] = 12000                # beyond max_depth (10 m): same
    assert len(boxes_3d(mask, boxes, depth_in_metres(depth, "16UC1"), CAM, skipped=skipped)) == 1
    assert skipped["too_few_depth_points"] == 2


def test_components_are_separated_even_when_their_boxes_overlap() -> None:
    mask = np.zeros((H, W), np.uint8)
    depth = np.full((H, W), 4000, np.uint16)
    mask[10:60, 10:14] = 255                     # an L: its box covers the square below
    mask[56:60, 10:60] = 255
    mask[20:40, 30:50] = 255                     # a separate square at 1 m inside the L's box
    depth[20:40, 30:50] = 1000
    depth[mask > 0] = np.where(depth[mask > 0] == 1000, 1000, 3000)
    boxes = boxes_from_mask(mask, mask.astype(np.float32) / 255, 10)
    dets = boxes_3d(mask, boxes, depth_in_metres(depth, "16UC1"), CAM)
    zs = sorted(round(d.center[2], 3) for d in dets)
    assert zs == [1.0, 3.0]


def _x(u: float, z: float = 2.0) -> float:
    return (u - CAM.cx) * z / CAM.fx


def test_box_spans_the_object_not_its_median_and_ignores_a_thin_antenna() -> None:
    """An L (a 40x30 block with a 10x30 leg under its left end) and a one-pixel antenna on each
    side (8 px, 0.5 % of the points). The box must run from the object's left edge (u 40) to its
    right edge (u 79): the 2nd/98th percentiles drop the antennas, and the centre is the middle
    of that extent. Wrong code: centre at the median (pulled towards the leg, ~4 px left), or
    min/max extents (stretched by 8 px to the antennas). A plain rectangle cannot tell: its
    median is its middle and its 2nd percentile is its first column."""
    mask = np.zeros((H, W), np.uint8)
    mask[30:60, 40:80] = 255
    mask[60:90, 40:50] = 255
    mask[45, 32:40] = 255
    mask[45, 80:88] = 255
    depth = np.full((H, W), 5000, np.uint16)
    depth[mask > 0] = 2000
    [b] = boxes_3d(mask, [Box(32, 30, 88, 90, 0.8)], depth_in_metres(depth, "16UC1"), CAM)
    assert b.num_points == 30 * 40 + 30 * 10 + 16
    assert b.center[0] - b.size[0] / 2 == pytest.approx(_x(40), abs=1e-5)
    assert b.center[0] + b.size[0] / 2 == pytest.approx(_x(79), abs=1e-5)


def test_a_diagonal_neighbour_is_part_of_the_component() -> None:
    """Two squares touching at one corner are one 8-connected component (as the predictor's boxes
    are made), and a third square inside their 2D box is not part of it. Wrong code: 4-connected
    labels, so no label has the predictor's box and the whole box's mask (all three) is used."""
    mask = np.zeros((H, W), np.uint8)
    mask[10:30, 10:30] = 255                      # A
    mask[30:50, 30:50] = 255                      # B, touching A at (29, 29)-(30, 30)
    mask[10:25, 35:48] = 255                      # C, separate, inside the A+B box
    depth = np.where(mask > 0, 2000, 5000).astype(np.uint16)
    boxes = boxes_from_mask(mask, mask.astype(np.float32) / 255, 10)
    assert [tuple(b[:4]) for b in boxes] == [(10, 10, 50, 50), (35, 10, 48, 25)]
    first, second = boxes_3d(mask, boxes, depth_in_metres(depth, "16UC1"), CAM)
    assert (first.num_points, second.num_points) == (800, 15 * 13)


def test_a_box_from_elsewhere_takes_only_the_mask_inside_it() -> None:
    """A 2D box that is no component's exact box (a caller's, a detector's) takes the mask pixels
    inside it, not the whole mask. Wrong code: the whole mask (another object at 1 m would pull
    the box's depth there)."""
    mask, depth = _scene()
    mask[5:20, 5:25] = 255
    depth[5:20, 5:25] = 1000
    [b] = boxes_3d(mask, [(38, 28, 82, 62, 0.7)], depth_in_metres(depth, "16UC1"), CAM)
    assert b.num_points == 30 * 40 and b.center[2] == pytest.approx(2.0, abs=1e-6) and b.score == 0.7


def test_min_points_is_the_smallest_count_kept() -> None:
    """A component with exactly ``min_points`` valid depth pixels gets its box, one fewer does not.
    Wrong code: ``<=`` (a 20-pixel component is dropped at min_points=20)."""
    mask = np.zeros((H, W), np.uint8)
    mask[10:14, 10:15] = 255                      # 20 pixels
    depth = np.where(mask > 0, 2000, 5000).astype(np.uint16)
    boxes = [Box(10, 10, 15, 14, 0.9)]
    assert len(boxes_3d(mask, boxes, depth_in_metres(depth, "16UC1"), CAM, min_points=20)) == 1
    depth[10, 10] = 0
    skipped: Counter[str] = Counter()
    assert boxes_3d(mask, boxes, depth_in_metres(depth, "16UC1"), CAM, min_points=20, skipped=skipped) == []
    assert skipped == {"too_few_depth_points": 1}


@pytest.mark.parametrize(("depth", "encoding", "match"), [
    (np.full((4, 4), 1500, np.uint16), "32FC1", "must be float32"),
    (np.full((4, 4), 1500.0, np.float32), "32FC1", "millimetres"),
    (np.full((4, 4), 2, np.uint16), "16UC1", "metres stored as integers"),
    (np.full((4, 4), 2.0, np.float32), "16UC1", "must be uint16"),
    (np.full((4, 4), 2.0, np.float64), "64FC1", "not a depth encoding"),
])
def test_depth_units_are_checked_against_the_encoding(depth: np.ndarray, encoding: str, match: str) -> None:
    with pytest.raises(DepthUnitsError, match=match) as info:
        depth_in_metres(depth, encoding)
    assert info.value.reason == "depth_units"


@pytest.mark.parametrize("k", [
    [float("nan"), 0, 64, 0, 200, 48, 0, 0, 1],
    [200, 0, 64, 0, float("inf"), 48, 0, 0, 1],
    [200, 0, float("nan"), 0, 200, 48, 0, 0, 1],
    [0, 0, 64, 0, 0, 48, 0, 0, 0],
    [-200, 0, 64, 0, 200, 48, 0, 0, 1],
    [200, 0, 64, 0, 200, 48],
])
def test_intrinsics_must_be_finite_and_positive(k: list[float]) -> None:
    with pytest.raises((CameraModelError, ValueError)) as info:
        CameraModel.from_matrices(k, [], [0.0] * 9, [0.0] * 12, 128, 96)
    assert getattr(info.value, "reason", "bad_camera_info") == "bad_camera_info"


def test_boxes_take_metres_not_raw_depth() -> None:
    """Raw 16UC1 handed to boxes_3d would make boxes 1000x too big: refused, naming the fix."""
    mask, depth = _scene()
    with pytest.raises(DepthUnitsError, match="depth_in_metres"):
        boxes_3d(mask, [Box(40, 30, 80, 60, 0.9)], depth, CAM)

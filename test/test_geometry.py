"""geometry: a box of known size and distance, rendered as depth, comes back as that 3D box."""

import numpy as np
import pytest

from m4sam_ros.scene.camera import CameraModel, CameraModelError
from m4sam_ros.scene.geometry import backproject, depth_in_metres

INTR = CameraModel.pinhole(fx=100.0, fy=100.0, cx=79.5, cy=59.5, width=160, height=120)


def depth_to_metres(depth):
    return depth_in_metres(depth, "32FC1" if depth.dtype == np.float32 else "16UC1")


def _fronto_parallel_patch(z=2.0, x0=0.2, y0=-0.1, size=0.4):
    """Depth (mm, 0 = invalid background) of a square patch at distance z, and its mask."""
    depth = np.zeros((120, 160), np.uint16)
    u0, u1 = INTR.cx + INTR.fx * x0 / z, INTR.cx + INTR.fx * (x0 + size) / z
    v0, v1 = INTR.cy + INTR.fy * y0 / z, INTR.cy + INTR.fy * (y0 + size) / z
    us, vs = np.arange(160), np.arange(120)
    sel = ((vs[:, None] >= v0) & (vs[:, None] <= v1)) & ((us[None] >= u0) & (us[None] <= u1))
    depth[sel] = int(z * 1000)
    return depth, (sel * 255).astype(np.uint8)


def test_depth_to_metres_units_and_invalid():
    mm = np.array([[0, 1500], [65535, 1500]], np.uint16)
    m = depth_to_metres(mm)
    assert np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.5) and m[1, 0] == pytest.approx(65.535)
    f = np.array([[np.nan, 2.0], [np.inf, -1.0]], np.float32)
    mf = depth_to_metres(f)
    assert np.isnan(mf[0, 0]) and mf[0, 1] == 2.0 and np.isnan(mf[1, 0]) and np.isnan(mf[1, 1])
    with pytest.raises(ValueError):
        depth_to_metres(np.zeros((2, 2, 1), np.uint16))
    # depth_scale applies to integer depth only (0.25 mm units: 1500 -> 0.375 m); 32FC1 is metres
    assert depth_in_metres(mm, "16UC1", 0.00025)[0, 1] == pytest.approx(0.375)
    assert depth_in_metres(f, "32FC1", 0.00025)[0, 1] == 2.0


def test_patch_comes_back_as_box():
    depth, mask = _fronto_parallel_patch()
    pts = backproject(mask, depth_to_metres(depth), INTR)
    assert len(pts) > 100 and np.allclose(pts[:, 2], 2.0)
    centre, size = (pts.min(0) + pts.max(0)) / 2, pts.max(0) - pts.min(0)
    assert centre[0] == pytest.approx(0.4, abs=0.03) and centre[1] == pytest.approx(0.1, abs=0.03)
    assert centre[2] == pytest.approx(2.0, abs=1e-3)
    assert size[0] == pytest.approx(0.4, abs=0.05) and size[1] == pytest.approx(0.4, abs=0.05)


def test_invalid_depth_and_far_points_are_left_out():
    depth, mask = _fronto_parallel_patch()
    mask[:] = 255  # the whole image is "salient" but only the patch has depth
    dm = depth_to_metres(depth)
    assert len(backproject(mask, dm, INTR)) == int((depth > 0).sum())
    assert len(backproject(mask, dm, INTR, max_depth=1.5)) == 0
    assert len(backproject(mask, dm, INTR, stride=2)) < int((depth > 0).sum()) / 3


def test_intrinsics_must_be_finite_and_positive():
    import math

    good = [120.0, 0.0, 79.5, 0.0, 120.0, 59.5, 0.0, 0.0, 1.0]
    assert CameraModel.from_matrices(good, [], [0.0] * 9, [0.0] * 12, 160, 120).fx == 120.0
    for i, bad in ((0, math.nan), (4, math.inf), (0, -1.0), (4, 0.0), (2, math.nan), (5, -math.inf)):
        k = list(good)
        k[i] = bad
        with pytest.raises(CameraModelError, match="finite|> 0"):
            CameraModel.from_matrices(k, [], [0.0] * 9, [0.0] * 12, 160, 120)

"""geometry: a box of known size and distance, rendered as depth, comes back as that 3D box."""

import numpy as np
import pytest

from m4sam_ros.scene.geometry import Intrinsics, backproject, depth_to_metres

INTR = Intrinsics(fx=100.0, fy=100.0, cx=79.5, cy=59.5, width=160, height=120)


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
    mm = np.array([[0, 1500], [65535, 1]], np.uint16)
    m = depth_to_metres(mm)
    assert np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.5) and m[1, 0] == pytest.approx(65.535)
    f = np.array([[np.nan, 2.0], [np.inf, -1.0]], np.float32)
    mf = depth_to_metres(f)
    assert np.isnan(mf[0, 0]) and mf[0, 1] == 2.0 and np.isnan(mf[1, 0]) and np.isnan(mf[1, 1])
    with pytest.raises(ValueError):
        depth_to_metres(np.zeros((2, 2, 1)))


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


def test_intrinsics_from_k_and_scaling():
    k = [200.0, 0, 159.5, 0, 200.0, 119.5, 0, 0, 1]
    intr = Intrinsics.from_k(k, 320, 240)
    half = intr.scaled_to(160, 120)
    assert (half.fx, half.fy, half.cx, half.cy) == pytest.approx((100.0, 100.0, 79.5, 59.5))
    with pytest.raises(ValueError):
        Intrinsics.from_k([0.0] * 9, 10, 10)


def test_intrinsics_must_be_finite_and_positive():
    import math

    import pytest

    from m4sam_ros.scene.geometry import Intrinsics

    good = [120.0, 0.0, 79.5, 0.0, 120.0, 59.5, 0.0, 0.0, 1.0]
    assert Intrinsics.from_k(good, 160, 120).fx == 120.0
    for i, bad in ((0, math.nan), (4, math.inf), (0, -1.0), (4, 0.0), (2, math.nan), (5, -math.inf)):
        k = list(good)
        k[i] = bad
        with pytest.raises(ValueError, match="finite|positive"):
            Intrinsics.from_k(k, 160, 120)

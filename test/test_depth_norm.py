"""Depth normalisation is robust: per-frame bounds are the 1st/99th percentiles of the valid depths,
so a few wild pixels (flying pixels, specular returns, a hand in front of the lens) neither flatten
the map nor move it."""

from __future__ import annotations

import numpy as np
import pytest

from m4sam_ros.model.depth import normalize_depth


def _scene_mm(seed: int = 0) -> np.ndarray:
    """100x100 millimetres: a ramp 1000..2000 mm (the scene) with a few holes."""
    rng = np.random.default_rng(seed)
    depth = np.linspace(1000, 2000, 100 * 100).reshape(100, 100)
    depth = rng.permutation(depth.ravel()).reshape(100, 100).round().astype(np.uint16)
    depth[rng.random(depth.shape) < 0.02] = 0  # holes
    return depth


def _with_outliers(depth: np.ndarray, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """0.3% of the pixels far too near and 0.3% far too far (fewer than 1% on each side)."""
    rng = np.random.default_rng(seed)
    out = depth.copy()
    idx = rng.choice(depth.size, 60, replace=False)
    near, far = idx[:30], idx[30:]
    out.flat[near] = 5
    out.flat[far] = 60000
    wild = np.zeros(depth.shape, bool)
    wild.flat[idx] = True
    return out, wild


def _reference(depth: np.ndarray) -> np.ndarray:
    """The documented rule, written out here: nearness between the 1st and 99th percentiles."""
    d = depth.astype(np.float64)
    valid = np.isfinite(d) & (d > 0)
    lo, hi = np.percentile(d[valid], [1, 99])
    out = np.zeros(d.shape)
    out[valid] = np.clip(1.0 - (d[valid] - lo) / (hi - lo), 0.0, 1.0)
    return out


def test_outliers_do_not_flatten_the_map() -> None:
    clean = _scene_mm()
    noisy, wild = _with_outliers(clean)
    n = normalize_depth(noisy, "metric")
    scene = ~wild & (clean > 0)
    # the scene still spans (almost) the whole [0, 1] range: min/max bounds would squeeze it into
    # about 1.5% of it (1000..2000 mm between 5 and 60000 mm)
    assert n[scene].max() - n[scene].min() > 0.95
    # the outliers are clipped to the ends, not stretched over the range
    assert np.all(n[wild & (noisy == 5)] == 1.0) and np.all(n[wild & (noisy == 60000)] == 0.0)
    # and the scene's values barely move compared with the same frame without outliers
    ref = normalize_depth(clean, "metric")
    assert np.abs(n[scene] - ref[scene]).max() < 0.02
    np.testing.assert_allclose(n, _reference(noisy), atol=1e-6)
    assert np.all(n[noisy == 0] == 0.0)


def test_metres_with_invalid_values_and_outliers() -> None:
    clean = _scene_mm(3)
    noisy, wild = _with_outliers(clean, 4)
    metres = noisy.astype(np.float32) / 1000.0
    metres[clean == 0] = np.nan
    metres[:2, :2] = np.inf
    metres[-1, -1] = -1.0
    n = normalize_depth(metres, "metric")
    assert n.dtype == np.float32 and n.shape == metres.shape
    scene = ~wild & np.isfinite(metres) & (metres > 0)
    assert n[scene].max() - n[scene].min() > 0.95
    assert np.all(n[~np.isfinite(metres) | (metres <= 0)] == 0.0)
    np.testing.assert_allclose(n, _reference(np.where(np.isfinite(metres), metres, 0)), atol=1e-6)
    # the same scene in millimetres and in metres gives the same map
    mm = normalize_depth(np.where(np.isfinite(metres) & (metres > 0), noisy, 0).astype(np.uint16), "metric")
    np.testing.assert_allclose(n, mm, atol=1e-5)


@pytest.mark.parametrize("wild_value", [1, 65535])
def test_one_sided_outliers(wild_value: int) -> None:
    """Outliers on one side only (a near occluder edge or far sky returns) leave the scene's range."""
    clean = _scene_mm(5)
    noisy = clean.copy()
    noisy.flat[np.random.default_rng(6).choice(clean.size, 80, replace=False)] = wild_value
    keep = (noisy == clean) & (clean > 0)
    n = normalize_depth(noisy, "metric")
    assert n[keep].max() - n[keep].min() > 0.95


@pytest.mark.parametrize("wild_value", [1, 65535])
def test_relative_16bit_outliers_do_not_move_the_rest(wild_value: int) -> None:
    """A benchmark's 16-bit map: a few wild pixels change nothing else by more than a hair (whether
    the map is scaled by the dtype's range or stretched between per-frame robust bounds)."""
    rng = np.random.default_rng(8)
    clean = rng.integers(9000, 21000, (80, 80)).astype(np.uint16)
    clean[rng.random(clean.shape) < 0.02] = 0
    noisy = clean.copy()
    noisy.flat[rng.choice(clean.size, 40, replace=False)] = wild_value
    keep = (noisy == clean) & (clean > 0)
    a, b = normalize_depth(clean, "relative"), normalize_depth(noisy, "relative")
    assert np.abs(a[keep] - b[keep]).max() < 0.02
    assert np.all(b[clean == 0] == 0.0)


def test_relative_maps_keep_their_scale_polarity_and_range() -> None:
    """Benchmark depth (``relative``): 8-bit maps divided by 255 (their own maximum), 16-bit maps
    stretched per frame with polarity kept (larger values stay larger), a flat 16-bit frame 0.5
    where valid (no ordering to show, but not "far"), float maps clipped to [0, 1] with <= 0
    invalid. Wrong code ruled out: 8-bit divided by 65535 (a near-black map), the 16-bit map
    inverted like metric depth, a flat frame all "far" (0), float values outside [0, 1] kept."""
    eight = np.array([[0, 51, 255]], np.uint8)
    np.testing.assert_allclose(normalize_depth(eight, "relative"), [[0.0, 0.2, 1.0]], atol=1e-7)
    ramp = np.linspace(1000, 5000, 200).astype(np.uint16).reshape(10, 20)
    ramp[0, 0] = 0
    out = normalize_depth(ramp, "relative")
    valid = ramp > 0
    assert out[0, 0] == 0.0 and np.all(np.diff(out[valid]) >= 0) and out[valid][-1] == 1.0
    assert out[valid][1] == 0.0  # the 1st percentile's pixel and below: 0
    flat = np.full((4, 4), 3000, np.uint16)
    flat[0] = 0
    np.testing.assert_array_equal(normalize_depth(flat, "relative"), np.where(flat > 0, 0.5, 0.0))
    floats = np.array([[-0.2, 0.0, 0.3, 1.5, np.nan]], np.float32)
    np.testing.assert_allclose(normalize_depth(floats, "relative"), [[0.0, 0.0, 0.3, 1.0, 0.0]], atol=1e-7)

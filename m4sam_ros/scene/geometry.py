"""Depth in metres and the 3D points of masked pixels, through the one camera model. No ROS.

``depth_in_metres`` is where depth units are decided, once per frame: 16UC1/mono16 times
``depth_scale`` (metres per unit, RealSense 0.001), 32FC1 as metres (REP 118). ``backproject``
is the only pixel -> 3D step: ``~/object_points`` calls it on the whole mask, ``boxes3d`` on each
component, so the same object gets the same extent in the points, the boxes and the markers.
Points are in the camera's optical frame (x right, y down, z forward), metres.
"""

from __future__ import annotations

import math

import numpy as np

from m4sam_ros.scene.camera import CameraModel

#: metres per depth unit for each depth encoding at the default depth_scale (REP 118)
DEPTH_UNITS = {"16UC1": 0.001, "mono16": 0.001, "32FC1": 1.0}
_DTYPES = {"16UC1": np.uint16, "mono16": np.uint16, "32FC1": np.float32}


class DepthUnitsError(ValueError):
    """Depth whose dtype, encoding and values disagree; ``reason`` is the counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def depth_in_metres(depth: np.ndarray, encoding: str, depth_scale: float = 0.001) -> np.ndarray:
    """float32 metres, NaN where invalid, after checking that dtype, encoding and values agree.

    16UC1/mono16 must be uint16 (0 = invalid), ``depth_scale`` metres per unit; 32FC1 float32
    metres (NaN, inf, <= 0 invalid; ``depth_scale`` does not apply). A 32FC1 frame whose median
    valid depth exceeds 100 "m" is millimetres mislabelled; an integer frame whose median is
    below 2 cm is metres cast to integers (or a wrong depth_scale). Both are refused with the
    reason ``depth_units`` instead of producing 3D output 1000x off."""
    if encoding not in DEPTH_UNITS:
        raise DepthUnitsError("depth_units", f"encoding {encoding!r} is not a depth encoding; use 16UC1 "
                              "(millimetres) or 32FC1 (metres)")
    if not (math.isfinite(depth_scale) and depth_scale > 0):
        raise DepthUnitsError("depth_units", f"depth_scale must be a positive number of metres per unit, got "
                              f"{depth_scale}")
    d = np.asarray(depth)
    if d.ndim != 2:
        raise DepthUnitsError("depth_units", f"depth must be HxW, got shape {d.shape}")
    if d.dtype != _DTYPES[encoding]:
        raise DepthUnitsError("depth_units", f"{encoding} depth must be {np.dtype(_DTYPES[encoding])}, got {d.dtype}")
    if encoding == "32FC1":
        out = d.astype(np.float32, copy=True)
        out[~np.isfinite(out) | (out <= 0)] = np.nan
    else:
        out = d.astype(np.float32) * np.float32(depth_scale)
        out[d == 0] = np.nan
    valid = out[np.isfinite(out)]
    if valid.size:
        med = float(np.median(valid))
        if encoding == "32FC1" and med > 100.0:
            raise DepthUnitsError("depth_units", f"32FC1 depth has median {med:.1f}: that is millimetres, but "
                                  "32FC1 must be metres (REP 118); publish 16UC1 or divide by 1000")
        if encoding != "32FC1" and med < 0.02:
            raise DepthUnitsError("depth_units", f"{encoding} depth has median {med * 1000:.1f} mm at depth_scale "
                                  f"{depth_scale}: that looks like metres stored as integers; 16UC1 must be "
                                  "millimetres (REP 118), or set depth_scale to the camera's unit")
    return out


def backproject(mask: np.ndarray, depth_m: np.ndarray, camera: CameraModel, stride: int = 1,
                max_depth: float = float("inf")) -> np.ndarray:
    """(N, 3) float32 points of the pixels where ``mask`` is set and depth is valid (and below
    ``max_depth``), every ``stride``-th row and column of the image (the grid starts at pixel
    (0, 0), so a component and the whole mask sample the same pixels)."""
    if np.shape(mask) != np.shape(depth_m):
        raise ValueError(f"mask {np.shape(mask)} and depth {np.shape(depth_m)} differ in size")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    h, w = depth_m.shape
    xr, yr = camera.ray_grid(h, w, stride)
    z = depth_m[::stride, ::stride]
    sel = (np.asarray(mask)[::stride, ::stride] > 0) & np.isfinite(z) & (z < max_depth)
    zz = z[sel]
    return np.stack([xr[sel] * zz, yr[sel] * zz, zz], axis=1).astype(np.float32)


__all__ = ["DEPTH_UNITS", "DepthUnitsError", "backproject", "depth_in_metres"]

"""3D extent of the salient object from metric depth and pinhole intrinsics. No ROS.

The node turns these into ``~/markers`` and ``~/object_points``; the bag tool can do the same
offline. Points are in the camera's optical frame (x right, y down, z forward), metres.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: focal lengths (pixels) a real camera can have: below 1 px or above 1e6 px is a broken calibration
FOCAL_RANGE = (1.0, 1e6)
#: principal point bound (pixels): far outside any image a sensor can produce
PRINCIPAL_LIMIT = 1e6


def intrinsics_problem(fx: float, fy: float, cx: float, cy: float) -> str | None:
    """Why these intrinsics cannot be used (None: usable). Finite and > 0 is not enough: a
    subnormal focal length (5e-324) back-projects every pixel to inf/NaN."""
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)):
        return f"intrinsics must be finite, got fx={fx} fy={fy} cx={cx} cy={cy}: check the camera_info topic"
    if fx <= 0 or fy <= 0:
        return f"focal lengths must be positive, got fx={fx} fy={fy}: an uncalibrated camera publishes K = 0"
    if not (FOCAL_RANGE[0] <= fx <= FOCAL_RANGE[1] and FOCAL_RANGE[0] <= fy <= FOCAL_RANGE[1]):
        return (f"focal lengths must be {FOCAL_RANGE[0]:g}..{FOCAL_RANGE[1]:g} px, got fx={fx:g} fy={fy:g}: "
                "not a usable calibration")
    if abs(cx) > PRINCIPAL_LIMIT or abs(cy) > PRINCIPAL_LIMIT:
        return f"principal point cx={cx:g} cy={cy:g} is beyond {PRINCIPAL_LIMIT:g} px: not a usable calibration"
    return None


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the image the depth is registered to."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> Intrinsics:
        """From a row-major 3x3 K (sensor_msgs/CameraInfo.k)."""
        k = [float(v) for v in k]
        if len(k) != 9:
            raise ValueError(f"K must have 9 entries, got {len(k)}")
        return cls(k[0], k[4], k[2], k[5], int(width), int(height))

    def __post_init__(self) -> None:
        problem = intrinsics_problem(self.fx, self.fy, self.cx, self.cy)  # also after scaled_to
        if problem is not None:
            raise ValueError(problem)

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera at another resolution (camera_info for a differently sized stream)."""
        if (width, height) == (self.width, self.height) or self.width <= 0 or self.height <= 0:
            return Intrinsics(self.fx, self.fy, self.cx, self.cy, width, height)
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                          (self.cy + 0.5) * sy - 0.5, width, height)


def depth_to_metres(depth: np.ndarray, mm_scale: float = 0.001) -> np.ndarray:
    """float32 metres with NaN where invalid, from uint16 millimetres (0 = invalid, REP 118
    16UC1) or float metres (NaN/inf/<= 0 = invalid, 32FC1)."""
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {d.shape}")
    if np.issubdtype(d.dtype, np.integer):
        out = d.astype(np.float32) * np.float32(mm_scale)
        out[d == 0] = np.nan
        return out
    out = d.astype(np.float32, copy=True)
    out[~np.isfinite(out) | (out <= 0)] = np.nan
    return out


def backproject(mask: np.ndarray, depth_m: np.ndarray, intr: Intrinsics, stride: int = 1,
                max_depth: float = float("inf"), region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """(N, 3) float32 points of the pixels where ``mask > 0`` and depth is valid (and below
    ``max_depth``), every ``stride``-th row and column, optionally inside ``region`` (x0, y0, x1, y1)."""
    if mask.shape != depth_m.shape:
        raise ValueError(f"mask {mask.shape} and depth {depth_m.shape} differ in size")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    h, w = mask.shape
    x0, y0, x1, y1 = region if region is not None else (0, 0, w - 1, h - 1)
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(x1), w - 1), min(int(y1), h - 1)
    if x1 < x0 or y1 < y0:
        return np.zeros((0, 3), np.float32)
    vs, us = np.mgrid[y0:y1 + 1:stride, x0:x1 + 1:stride]
    z = depth_m[vs, us]
    sel = (mask[vs, us] > 0) & np.isfinite(z) & (z < max_depth)
    u, v, z = us[sel].astype(np.float32), vs[sel].astype(np.float32), z[sel]
    x = (u - np.float32(intr.cx)) * z / np.float32(intr.fx)
    y = (v - np.float32(intr.cy)) * z / np.float32(intr.fy)
    return np.stack([x, y, z], axis=1).astype(np.float32)

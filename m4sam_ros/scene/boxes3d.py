"""One 3D box per salient component, from depth + pinhole intrinsics. No ROS imports.

The three complaints users of ROS 3D detectors raise most are answered here: depth units (the
array's dtype must agree with the encoding, and the values must look like that unit: 16UC1 is
millimetres, 32FC1 metres, REP 118), zero-size boxes (an extent is never below ``min_extent``;
a component without enough valid depth is left out and counted), and outliers (flying pixels at
depth edges and holes: a median/MAD depth gate, then percentiles per axis).
Boxes are axis-aligned in the camera's optical frame (x right, y down, z forward), metres; the
caller stamps them with the colour image's header.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from m4sam_ros.scene.geometry import intrinsics_problem

#: metres per depth unit for each depth encoding (REP 118)
DEPTH_UNITS = {"16UC1": 0.001, "mono16": 0.001, "32FC1": 1.0}
_DTYPES = {"16UC1": np.uint16, "mono16": np.uint16, "32FC1": np.float32}


class DepthUnitsError(ValueError):
    """Depth whose dtype, encoding and values disagree; ``reason`` is the counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics of the image the depth is registered to; all finite, focal lengths > 0."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_k(cls, k: Sequence[float]) -> Camera:
        """From sensor_msgs/CameraInfo.k (row-major 3x3); raises DepthUnitsError('bad_camera_info')."""
        vals = [float(v) for v in k]
        if len(vals) != 9:
            raise DepthUnitsError("bad_camera_info", f"K has {len(vals)} entries, 9 expected")
        return cls(vals[0], vals[4], vals[2], vals[5])

    def __post_init__(self) -> None:
        problem = intrinsics_problem(self.fx, self.fy, self.cx, self.cy)
        if problem is not None:
            raise DepthUnitsError("bad_camera_info", problem)


@dataclass(frozen=True)
class Box3DDetection:
    """A salient component's box: centre and edge lengths (metres), its 2D box and score."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    num_points: int
    score: float
    box2d: tuple[int, int, int, int]   # x0, y0, x1, y1 (x1, y1 exclusive), as predictor.Box
    index: int                         # position of the component in the 2D box list


def depth_in_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """float32 metres, NaN where invalid, after checking that dtype, encoding and values agree.

    16UC1/mono16 must be uint16 millimetres (0 = invalid); 32FC1 float32 metres (NaN, inf, <= 0
    invalid). A 32FC1 frame whose median valid depth exceeds 100 "m" is millimetres mislabelled;
    a 16UC1 frame whose median is below 20 "mm" is metres cast to integers. Both are refused with
    the reason ``depth_units`` instead of producing boxes 1000x off."""
    if encoding not in DEPTH_UNITS:
        raise DepthUnitsError("depth_units", f"encoding {encoding!r} is not a depth encoding; use 16UC1 "
                              "(millimetres) or 32FC1 (metres)")
    d = np.asarray(depth)
    if d.ndim != 2:
        raise DepthUnitsError("depth_units", f"depth must be HxW, got shape {d.shape}")
    if d.dtype != _DTYPES[encoding]:
        raise DepthUnitsError("depth_units", f"{encoding} depth must be {np.dtype(_DTYPES[encoding])}, got {d.dtype}")
    if encoding == "32FC1":
        out = d.astype(np.float32, copy=True)
        out[~np.isfinite(out) | (out <= 0)] = np.nan
    else:
        out = d.astype(np.float32) * np.float32(DEPTH_UNITS[encoding])
        out[d == 0] = np.nan
    valid = out[np.isfinite(out)]
    if valid.size:
        med = float(np.median(valid))
        if encoding == "32FC1" and med > 100.0:
            raise DepthUnitsError("depth_units", f"32FC1 depth has median {med:.1f}: that is millimetres, but "
                                  "32FC1 must be metres (REP 118); publish 16UC1 or divide by 1000")
        if encoding != "32FC1" and med < 0.02:
            raise DepthUnitsError("depth_units", f"{encoding} depth has median {med * 1000:.1f} mm: that looks "
                                  "like metres stored as integers; 16UC1 must be millimetres (REP 118)")
    return out


def component_masks(mask: np.ndarray, boxes2d: Sequence[Any]) -> list[np.ndarray]:
    """For each 2D box (predictor.Box or (x0, y0, x1, y1, ...)), the pixels of its 8-connected
    mask component: the component whose bounding box is exactly that box, else the mask inside
    the box (boxes from elsewhere)."""
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    by_box = {(int(s[0]), int(s[1]), int(s[0] + s[2]), int(s[1] + s[3])): i for i, s in enumerate(stats) if i}
    out = []
    for b in boxes2d:
        x0, y0, x1, y1 = (int(round(float(v))) for v in _corners(b))
        label = by_box.get((x0, y0, x1, y1))
        if label is not None:
            out.append(labels == label)
        else:
            region = np.zeros(binary.shape, bool)
            region[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
            out.append(region & (binary > 0))
    return out


def _corners(b: Any) -> tuple[float, float, float, float]:
    if hasattr(b, "x0"):
        return b.x0, b.y0, b.x1, b.y1
    return tuple(b[:4])  # type: ignore[return-value]


def robust_box(points: np.ndarray, low: float = 2.0, high: float = 98.0, gate: float = 3.0,
               min_extent: float = 0.01) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(centre, size) of an (N, 3) point set: points whose depth lies within ``gate`` robust
    standard deviations (1.4826 MAD, at least 2 cm) of the median depth, then the ``low``..``high``
    percentiles per axis; every edge at least ``min_extent`` metres."""
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    z = pts[:, 2]
    med = np.median(z)
    sigma = max(1.4826 * float(np.median(np.abs(z - med))), 0.02)
    kept = pts[np.abs(z - med) <= gate * sigma]
    if len(kept) == 0:  # pragma: no cover - the median point is always kept
        kept = pts
    lo = np.percentile(kept, low, axis=0)
    hi = np.percentile(kept, high, axis=0)
    centre = (lo + hi) / 2
    size = np.maximum(hi - lo, min_extent)
    return tuple(float(v) for v in centre), tuple(float(v) for v in size)  # type: ignore[return-value]


def boxes_3d(mask: np.ndarray, boxes2d: Sequence[Any], depth: np.ndarray, encoding: str, camera: Camera, *,
             max_depth: float = 10.0, min_points: int = 20, min_extent: float = 0.01, stride: int = 1,
             skipped: Counter[str] | None = None) -> list[Box3DDetection]:
    """One box per 2D box's mask component. Components with fewer than ``min_points`` valid depth
    pixels (holes, beyond ``max_depth``) are left out and counted in ``skipped`` as
    ``too_few_depth_points``. Depth/encoding disagreement raises DepthUnitsError."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if not (min_extent > 0 and math.isfinite(min_extent)):
        raise ValueError(f"min_extent must be a positive number of metres, got {min_extent}")
    depth_m = depth_in_metres(depth, encoding)
    if depth_m.shape != np.asarray(mask).shape:
        raise DepthUnitsError("size_mismatch", f"mask {np.asarray(mask).shape} vs depth {depth_m.shape}: depth "
                              "must be registered to colour")
    skipped = skipped if skipped is not None else Counter()
    out: list[Box3DDetection] = []
    h, w = depth_m.shape
    vs, us = np.mgrid[0:h:stride, 0:w:stride]
    sub_depth = depth_m[::stride, ::stride]
    for i, (b, comp) in enumerate(zip(boxes2d, component_masks(mask, boxes2d), strict=True)):
        z = sub_depth
        sel = comp[::stride, ::stride] & np.isfinite(z) & (z < max_depth)
        if int(sel.sum()) < min_points:
            skipped["too_few_depth_points"] += 1
            continue
        zz = z[sel].astype(np.float64)
        x = (us[sel] - camera.cx) * zz / camera.fx
        y = (vs[sel] - camera.cy) * zz / camera.fy
        centre, size = robust_box(np.stack([x, y, zz], axis=1), min_extent=min_extent)
        corners = tuple(int(round(float(v))) for v in _corners(b))
        score = float(getattr(b, "score", b[4] if not hasattr(b, "x0") and len(b) > 4 else 1.0))
        out.append(Box3DDetection(centre, size, int(sel.sum()), score, corners, i))  # type: ignore[arg-type]
    return out


__all__ = ["DEPTH_UNITS", "Box3DDetection", "Camera", "DepthUnitsError", "boxes_3d", "component_masks",
           "depth_in_metres", "robust_box"]

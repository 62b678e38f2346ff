"""One 3D box per salient component, from metric depth + the camera model. No ROS imports.

The three complaints users of ROS 3D detectors raise most are answered here: depth units
(``geometry.depth_in_metres`` checks dtype, encoding and values once per frame, REP 118),
zero-size boxes (an extent is never below ``min_extent``; a component without enough valid depth
is left out and counted), and outliers (flying pixels at depth edges and holes: a median/MAD
depth gate, then percentiles per axis). The points come from ``geometry.backproject`` with the
same ``CameraModel`` as ``~/object_points``, so both give an object the same extent.
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

from m4sam_ros.scene.camera import CameraModel
from m4sam_ros.scene.geometry import DEPTH_UNITS, DepthUnitsError, backproject, depth_in_metres


@dataclass(frozen=True)
class Box3DDetection:
    """A salient component's box: centre and edge lengths (metres), its 2D box and score."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    num_points: int
    score: float
    box2d: tuple[int, int, int, int]   # x0, y0, x1, y1 (x1, y1 exclusive), as predictor.Box
    index: int                         # position of the component in the 2D box list


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


def boxes_3d(mask: np.ndarray, boxes2d: Sequence[Any], depth_m: np.ndarray, camera: CameraModel, *,
             max_depth: float = 10.0, min_points: int = 20, min_extent: float = 0.01, stride: int = 1,
             skipped: Counter[str] | None = None) -> list[Box3DDetection]:
    """One box per 2D box's mask component, from ``depth_m`` (metres, NaN invalid: what
    ``geometry.depth_in_metres`` returns). Components with fewer than ``min_points`` valid depth
    pixels (holes, beyond ``max_depth``) are left out and counted in ``skipped`` as
    ``too_few_depth_points``; each box keeps its component's ``index`` so ids never shift."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if not (min_extent > 0 and math.isfinite(min_extent)):
        raise ValueError(f"min_extent must be a positive number of metres, got {min_extent}")
    depth_m = np.asarray(depth_m)
    if depth_m.dtype.kind != "f":
        raise DepthUnitsError("depth_units", f"boxes_3d takes depth in metres (float), got {depth_m.dtype}: "
                              "convert with geometry.depth_in_metres(depth, encoding, depth_scale)")
    if depth_m.shape != np.asarray(mask).shape:
        raise DepthUnitsError("size_mismatch", f"mask {np.asarray(mask).shape} vs depth {depth_m.shape}: depth "
                              "must be registered to colour")
    skipped = skipped if skipped is not None else Counter()
    out: list[Box3DDetection] = []
    for i, (b, comp) in enumerate(zip(boxes2d, component_masks(mask, boxes2d), strict=True)):
        pts = backproject(comp, depth_m, camera, stride, max_depth)
        if len(pts) < min_points:
            skipped["too_few_depth_points"] += 1
            continue
        centre, size = robust_box(pts, min_extent=min_extent)
        corners = tuple(int(round(float(v))) for v in _corners(b))
        score = float(getattr(b, "score", b[4] if not hasattr(b, "x0") and len(b) > 4 else 1.0))
        out.append(Box3DDetection(centre, size, len(pts), score, corners, i))  # type: ignore[arg-type]
    return out


__all__ = ["DEPTH_UNITS", "Box3DDetection", "CameraModel", "DepthUnitsError", "boxes_3d", "component_masks",
           "depth_in_metres", "robust_box"]

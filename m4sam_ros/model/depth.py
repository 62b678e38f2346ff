"""The one depth normalisation used by training, evaluation, the predictor and the node.

Every depth source becomes the model's ``float32 HxW`` map in ``[0, 1]``:

- ``metric``: RealSense ``16UC1`` millimetres (0 = invalid) or REP 118 ``32FC1`` metres
  (NaN, +-inf and values <= 0 = invalid). The output is *nearness*: the nearest valid pixel -> 1,
  the farthest -> 0, using robust per-frame bounds (the 1st and 99th percentiles of the valid
  depths) so a few outliers do not flatten the map.
- ``relative``: a benchmark's depth image in the dataset's own convention (polarity kept). 8-bit
  maps are already normalised and are scaled by 255. 16-bit maps are normalised PER FRAME: their
  values rarely span 0..65535 (a few thousand levels in practice, which / 65535 would squash into a
  nearly black map), so the frame's robust bounds (1st/99th percentile of the valid values) map to
  [0, 1]. Float maps are taken as [0, 1]. 0 = invalid throughout.

Invalid pixels are set to 0, the value of "far": a hole in the depth never looks salient, and a
frame with no valid depth at all becomes all zeros (the RGB branch still works).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

DepthKind = Literal["metric", "relative"]
LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.0


def valid_depth_mask(depth: np.ndarray) -> np.ndarray:
    """Pixels that carry a measurement: finite and > 0."""
    depth = np.asarray(depth)
    if np.issubdtype(depth.dtype, np.floating):
        return np.isfinite(depth) & (depth > 0)
    return depth > 0


def normalize_depth(depth: np.ndarray, kind: DepthKind = "metric") -> np.ndarray:
    """Maps a depth image to the model's [0, 1] map (see the module docstring for the rules)."""
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or depth.size == 0:
        raise ValueError(f"depth must be a non-empty HxW array, got shape {depth.shape}")
    if not (np.issubdtype(depth.dtype, np.integer) or np.issubdtype(depth.dtype, np.floating)):
        raise ValueError(f"depth must be an integer or float array, got dtype {depth.dtype}")
    valid = valid_depth_mask(depth)
    if kind == "relative":
        if np.issubdtype(depth.dtype, np.integer) and depth.dtype.itemsize >= 2:
            return _per_frame(depth, valid)
        scale = float(np.iinfo(depth.dtype).max) if np.issubdtype(depth.dtype, np.integer) else 1.0
        out = np.where(valid, depth.astype(np.float32) / scale, 0.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
    if kind != "metric":
        raise ValueError(f"unknown depth kind {kind!r}; use 'metric' or 'relative'")
    out = np.zeros(depth.shape, np.float32)
    if not valid.any():
        return out
    values = depth[valid].astype(np.float32)
    near, far = np.percentile(values, [LOW_PERCENTILE, HIGH_PERCENTILE])
    span = max(float(far - near), 1e-6)
    nearness = 1.0 - (depth.astype(np.float32) - near) / span
    out[valid] = np.clip(nearness[valid], 0.0, 1.0)
    return out


def _per_frame(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Valid values stretched to [0, 1] between the frame's robust bounds, polarity kept; a frame
    whose valid values are all equal becomes 0.5 there (valid, but no ordering to show)."""
    out = np.zeros(depth.shape, np.float32)
    if not valid.any():
        return out
    values = depth[valid].astype(np.float32)
    low, high = np.percentile(values, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if high - low < 1e-6:
        out[valid] = 0.5
        return out
    out[valid] = np.clip((depth[valid].astype(np.float32) - low) / (high - low), 0.0, 1.0)
    return out


def resize_raw_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """A raw depth image (uint16 mm, 0 = hole; float m, NaN = hole) resized to ``height x width``
    with nearest neighbour: every output pixel is one measured value or one hole.

    Why not linear: a hole (0) next to a wall at 2000 mm blends into a 1000 mm rim, nearer than
    anything in the scene, which normalisation then shows as the most salient pixels; and NaN holes
    would spread over their valid neighbours. Nearest neither invents depths nor moves holes
    by more than one source pixel."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.size == 0:
        raise ValueError(f"depth must be a non-empty HxW array, got shape {depth.shape}")
    if height < 1 or width < 1:
        raise ValueError(f"target size must be at least 1x1, got {width}x{height}")
    if depth.shape == (height, width):
        return depth
    return cv2.resize(depth, (int(width), int(height)), interpolation=cv2.INTER_NEAREST)

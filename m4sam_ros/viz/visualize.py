"""Debug pictures of a result: mask tint + boxes, and contact sheets. Pure numpy/OpenCV, no ROS.

The node's ``~/overlay`` topic, the bag tool and the demo all draw with ``render_overlay`` so a
picture means the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

#: Tint of salient pixels and colour of the boxes (RGB).
DEFAULT_COLOR = (255, 40, 40)


def _box_tuple(box: Any) -> tuple[float, float, float, float, float | None]:
    """Box-like -> (x0, y0, x1, y1, score): the predictor's Box, or a 4-/5-sequence."""
    if hasattr(box, "x0"):
        return float(box.x0), float(box.y0), float(box.x1), float(box.y1), getattr(box, "score", None)
    vals = list(box)
    if len(vals) not in (4, 5):
        raise ValueError(f"a box is (x0, y0, x1, y1[, score]), got {len(vals)} values")
    return (*map(float, vals[:4]), float(vals[4]) if len(vals) == 5 else None)  # type: ignore[return-value]


def render_overlay(rgb: np.ndarray, mask: np.ndarray | None, boxes: Iterable[Any] = (),
                   color: Sequence[int] = DEFAULT_COLOR, alpha: float = 0.45,
                   thickness: int = 2, show_scores: bool = True) -> np.ndarray:
    """A copy of ``rgb`` (uint8 HxWx3) with salient pixels (mask > 0) tinted by ``color`` at
    ``alpha``, the mask outline, and each box drawn with its score; returns uint8 HxWx3 RGB."""
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 HxWx3, got {img.dtype} {img.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = img.copy()
    col = np.array(color, dtype=np.float32)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != img.shape[:2]:
            raise ValueError(f"mask shape {m.shape} != image shape {img.shape[:2]}")
        sel = m > 0
        if sel.any():
            out[sel] = np.clip(out[sel].astype(np.float32) * (1 - alpha) + col * alpha, 0, 255).astype(np.uint8)
            contours, _ = cv2.findContours(sel.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 1)
    h, w = img.shape[:2]
    for box in boxes:
        x0, y0, x1, y1, score = _box_tuple(box)
        p0 = (int(np.clip(round(x0), 0, w - 1)), int(np.clip(round(y0), 0, h - 1)))
        p1 = (int(np.clip(round(x1), 0, w - 1)), int(np.clip(round(y1), 0, h - 1)))
        cv2.rectangle(out, p0, p1, tuple(int(c) for c in color), thickness)
        if show_scores and score is not None:
            cv2.putText(out, f"{score:.2f}", (p0[0] + 2, max(p0[1] - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, tuple(int(c) for c in color), 1, cv2.LINE_AA)
    return out


def as_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 RGB from a mono mask (HxW uint8), a [0,1] float map (HxW) or an RGB image."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0) * 255).round().astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return a


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], cell: tuple[int, int] | None = None,
                  pad: int = 2) -> np.ndarray:
    """A grid of pictures (row = frame, column = RGB / depth / GT / prediction ...), each cell
    resized to ``cell`` (w, h; default the first picture's size); returns uint8 RGB."""
    if not rows or not rows[0]:
        raise ValueError("contact_sheet needs at least one picture")
    cw, ch = cell or (rows[0][0].shape[1], rows[0][0].shape[0])
    ncol = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (ch + pad) + pad, ncol * (cw + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, pic in enumerate(row):
            tile = cv2.resize(as_rgb(pic), (cw, ch), interpolation=cv2.INTER_NEAREST)
            y, x = pad + i * (ch + pad), pad + j * (cw + pad)
            sheet[y:y + ch, x:x + cw] = tile
    return sheet

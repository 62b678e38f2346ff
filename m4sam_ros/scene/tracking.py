"""Stable ids for salient components across frames, by overlap. No ROS imports.

Each component keeps its id while it stays: a component of the new frame takes the id of the
previous frame's component it overlaps most (2D box IoU at least ``iou_threshold``; one-to-one,
greedy, best overlap first). A component that overlaps none gets a new id. A track that finds no
partner survives ``max_missed`` frames (a brief occlusion) before its id is retired. When the
predictor re-initialises (``SaliencyResult.reinitialized``: first frame, lost object, shot cut,
stamp jump) every track ends: the object may be another one, so ids start afresh. Ids are never
reused within a tracker's life, so a consumer never confuses an old object with a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Track:
    """One live id: its last box and how many frames it has gone unmatched."""

    id: int
    box: tuple[float, float, float, float]
    missed: int = 0
    age: int = 1


def _corners(b: Any) -> tuple[float, float, float, float]:
    if hasattr(b, "x0"):
        return float(b.x0), float(b.y0), float(b.x1), float(b.y1)
    return tuple(float(v) for v in b[:4])  # type: ignore[return-value]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes with exclusive x1, y1; 0 for empty boxes."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class OverlapTracker:
    """Assigns ids to each frame's boxes; call :meth:`update` once per processed frame."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 2, first_id: int = 1) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.tracks: list[Track] = []
        self._next_id = int(first_id)
        self.resets = 0

    def reset(self) -> None:
        """Ends every track (``~/reset``, a re-initialisation); the next boxes get new ids."""
        self.tracks = []
        self.resets += 1

    def _new_id(self) -> int:
        nid = self._next_id
        self._next_id += 1
        return nid

    def update(self, boxes: Sequence[Any], reinitialized: bool = False) -> list[int]:
        """Ids for ``boxes`` (predictor.Box or (x0, y0, x1, y1, ...)), in their order."""
        if reinitialized:
            self.reset()
        new = [_corners(b) for b in boxes]
        ids: list[int | None] = [None] * len(new)
        if self.tracks and new:
            iou = np.array([[box_iou(t.box, b) for b in new] for t in self.tracks])
            order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None, kind="stable"), iou.shape))[0]
            used_t: set[int] = set()
            for ti, bi in order:
                if iou[ti, bi] < self.iou_threshold:
                    break
                if ti in used_t or ids[bi] is not None:
                    continue
                used_t.add(int(ti))
                ids[bi] = self.tracks[ti].id
        matched = {i for i in ids if i is not None}
        survivors = []
        for t in self.tracks:
            if t.id in matched:
                continue
            t.missed += 1
            if t.missed <= self.max_missed:
                survivors.append(t)
        by_id = {t.id: t for t in self.tracks}
        live: list[Track] = []
        out: list[int] = []
        for b, tid in zip(new, ids, strict=True):
            if tid is None:
                tid = self._new_id()
                live.append(Track(tid, b))
            else:
                t = by_id[tid]
                live.append(Track(tid, b, 0, t.age + 1))
            out.append(tid)
        self.tracks = live + survivors
        return out


__all__ = ["OverlapTracker", "Track", "box_iou"]

"""When the streaming predictor conditions a frame on its pseudo mask again.

A track has failed when the object score stays low, or memory and coarse maps disagree (IoU below a
threshold), for N frames in a row; a shot boundary makes the memory stale at once; and a caller
may ask for it (``request``). The predictor's own restart on a backwards stamp is not here: that
forgets everything, this keeps the older conditioning frames.

Torch-free: the maps may be torch tensors (``StreamingPredictor``) or numpy arrays
(``OrtStreamingPredictor``); both backends share this one rule.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def _iou(a: Any, b: Any) -> float:
    """IoU of two boolean maps (torch or numpy); 1 when both are empty."""
    inter = (a & b).sum().item()
    union = (a | b).sum().item()
    return 1.0 if union == 0 else inter / union


class ReinitPolicy:
    """The re-initialisation rule: thresholds, the current runs, the forced flag, the scene-cut check.

    ``forced`` says the next frame is conditioned; the predictor sets it after each frame from
    ``update`` and when ``is_scene_cut`` or ``request`` says so."""

    def __init__(self, score_threshold: float = 0.5, low_score_frames: int = 5, iou_threshold: float = 0.2,
                 iou_frames: int = 5, cut_threshold: float = 0.3) -> None:
        self.score_threshold = score_threshold
        self.low_score_frames = low_score_frames
        self.iou_threshold = iou_threshold
        self.iou_frames = iou_frames
        self.cut_threshold = cut_threshold  # <= -1: scene cuts never re-condition
        self.reset()

    def reset(self) -> None:
        """Forget the runs, the request and the previous frame's thumbnail."""
        self.low_score_run = 0
        self.disagree_run = 0
        self.forced = False
        self._last_thumb: np.ndarray | None = None

    def request(self) -> None:
        """Condition the next frame on its pseudo mask."""
        self.forced = True

    def restart_runs(self) -> None:
        """A conditioning frame starts a new track: earlier low scores and disagreements are moot."""
        self.low_score_run = self.disagree_run = 0

    def is_scene_cut(self, rgb: np.ndarray) -> bool:
        """A shot boundary: consecutive frames' 32x32 grey thumbnails correlate below the threshold.

        Memory of the previous shot is stale even when the tracker happily follows the new view, so
        a cut re-conditions the frame. Camera motion and lighting changes keep the correlation high."""
        grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
        thumb = grey.astype(np.float32).ravel()
        thumb = (thumb - thumb.mean()) / (thumb.std() + 1e-3)
        prev, self._last_thumb = self._last_thumb, thumb
        if prev is None or self.cut_threshold <= -1:
            return False
        return float(np.mean(prev * thumb)) < self.cut_threshold

    def update(self, object_score: float, memory_logits: Any, coarse_logits: Any) -> bool:
        """After a tracked frame (``memory_logits`` and ``coarse_logits`` at the same size): True
        when the next frame should be conditioned on its pseudo mask again."""
        self.low_score_run = self.low_score_run + 1 if object_score < self.score_threshold else 0
        mem = memory_logits > 0  # torch or numpy, any float dtype: the sign needs no upcast
        coarse = coarse_logits > 0
        iou = _iou(mem, coarse)
        self.disagree_run = self.disagree_run + 1 if iou < self.iou_threshold else 0
        return (self.low_score_run >= self.low_score_frames
                or self.disagree_run >= self.iou_frames)

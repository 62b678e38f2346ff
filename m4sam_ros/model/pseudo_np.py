"""``pseudo.pseudo_mask`` in numpy, for the ONNX Runtime backend (no torch there).

The same rule: pixels with sigmoid(coarse) > 0.5 (confident), else those at or above half the
map's peak (never empty: SAM2 encodes an empty prompt as "no object")."""

from __future__ import annotations

import numpy as np

from .preprocess_np import sigmoid


def pseudo_mask_np(coarse_logits: np.ndarray, threshold: float = 0.5, relative: float = 0.5
                   ) -> tuple[np.ndarray, bool]:
    """``coarse_logits`` [1,1,H,W] -> (mask [1,1,H,W] float32 {0,1}, confident)."""
    if coarse_logits.ndim != 4 or coarse_logits.shape[:2] != (1, 1):
        raise ValueError(f"coarse_logits must be [1,1,H,W], got {tuple(coarse_logits.shape)}")
    prob = sigmoid(coarse_logits)
    absolute = prob > np.float32(threshold)
    confident = bool(absolute.any())
    mask = absolute if confident else prob >= np.float32(relative) * prob.max()
    return mask.astype(np.float32), confident

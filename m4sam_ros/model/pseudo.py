"""The one rule that turns coarse saliency logits into a pseudo mask (training and predictor).

SAM2 treats an empty mask prompt as "no object" (object score -10) and encodes a "no object"
memory from it, which then conditions every later frame. So a pseudo mask must never be empty:

- confident: some pixel has sigmoid(coarse) > ``threshold`` (0.5) -> mask = those pixels;
- weak (nothing above the threshold): fall back to a relative threshold of the map,
  sigmoid(coarse) >= ``relative`` * its maximum, which keeps the most salient region (never
  empty), and report ``confident = False`` so callers can log it or retry on a later frame.

Per sample, no data-dependent Python control flow (``torch.where``), so it batches and exports.
"""

from __future__ import annotations

import torch

#: track_step caps object pointers at min(num_frames, max_obj_ptrs_in_encoder) and normalises
#: their temporal encoding by it: a stream is endless, and training must use the same value.
ENDLESS = 1 << 30


def pseudo_mask(coarse_logits: torch.Tensor, threshold: float = 0.5,
                relative: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """``coarse_logits`` [B,1,H,W] -> (mask [B,1,H,W] float {0,1}, confident [B] bool)."""
    if coarse_logits.dim() != 4 or coarse_logits.shape[1] != 1:
        raise ValueError(f"coarse_logits must be [B,1,H,W], got {tuple(coarse_logits.shape)}")
    if not 0.0 < threshold < 1.0 or not 0.0 < relative <= 1.0:
        raise ValueError(f"need 0 < threshold < 1 and 0 < relative <= 1, got {threshold}, {relative}")
    prob = torch.sigmoid(coarse_logits.detach().float())
    absolute = prob > threshold
    confident = absolute.flatten(1).any(dim=1)
    peak = prob.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    fallback = prob >= relative * peak
    mask = torch.where(confident.view(-1, 1, 1, 1), absolute, fallback)
    return mask.float(), confident

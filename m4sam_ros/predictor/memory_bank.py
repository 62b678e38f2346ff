"""The streaming predictor's frame memories: what SAM2's ``track_step`` reads, and nothing more.

Conditioning frames (at most ``max_cond_frames``, oldest dropped) plus the last ``keep_non_cond``
tracked frames, each holding only the fields later frames read. SAM2's video predictor keeps every
frame forever; this keeps the state bounded.

Memories are stored as SAM2's video predictor stores them (memory features in bfloat16, one shared
positional encoding), so the RGB-only parity mode reproduces ``SAM2VideoPredictor``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

#: fields of a frame's output that later frames read (sam2_base._prepare_memory_conditioned_features)
KEPT_FIELDS = ("maskmem_features", "maskmem_pos_enc", "obj_ptr", "object_score_logits")


def tensor_nbytes(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of every distinct tensor storage reachable from ``obj`` (dicts, lists, tuples)."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        key = obj.untyped_storage().data_ptr()
        if key in seen:
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(tensor_nbytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_nbytes(v, seen) for v in obj)
    return 0


class MemoryBank:
    """Conditioning and tracked frames' memories (frame index -> kept fields), bounded in number.

    ``cond`` and ``non_cond`` are SAM2's ``cond_frame_outputs`` / ``non_cond_frame_outputs``;
    ``pos_enc`` is the memory positional encoding every frame shares (it depends on no input)."""

    def __init__(self, max_cond_frames: int, keep_non_cond: int) -> None:
        self.max_cond_frames = max_cond_frames
        self.keep_non_cond = keep_non_cond
        self.clear()

    def clear(self) -> None:
        """Forget every frame (fresh containers: nothing handed out earlier changes)."""
        self.cond: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.non_cond: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.pos_enc: list[torch.Tensor] | None = None

    def clear_non_cond(self) -> None:
        """Forget the tracked frames (a fresh start: they belong to the track that failed)."""
        self.non_cond.clear()

    def output_dict(self) -> dict[str, dict[int, dict[str, Any]]]:
        """The ``output_dict`` SAM2's ``track_step`` reads earlier frames from."""
        return {"cond_frame_outputs": self.cond, "non_cond_frame_outputs": self.non_cond}

    def store(self, idx: int, out: dict[str, Any], cond: bool) -> None:
        """Keeps only what later frames read, as SAM2's video predictor stores it, then drops the
        oldest tracked frames (and, storing a conditioning frame, conditioning frames) past the bounds."""
        pos_enc = out["maskmem_pos_enc"]
        if pos_enc is not None and self.pos_enc is None:
            self.pos_enc = [x[0:1].clone() for x in pos_enc]
        compact = {
            "maskmem_features": out["maskmem_features"].to(torch.bfloat16).clone(),
            "maskmem_pos_enc": self.pos_enc,
            "obj_ptr": out["obj_ptr"].clone(),
            "object_score_logits": out["object_score_logits"].clone(),
        }
        (self.cond if cond else self.non_cond)[idx] = compact
        while len(self.non_cond) > self.keep_non_cond:
            self.non_cond.popitem(last=False)
        while cond and len(self.cond) > self.max_cond_frames:
            self.cond.popitem(last=False)

    def nbytes(self) -> int:
        """Bytes of the tensors held (the shared positional encoding counted once)."""
        return tensor_nbytes([self.cond, self.non_cond, self.pos_enc])

    def max_nbytes(self) -> int | None:
        """The most the bank can ever hold: the shared positional encoding plus
        ``max_cond_frames + keep_non_cond`` frames' worth (None before the first frame)."""
        frames = list(self.cond.values()) + list(self.non_cond.values())
        if not frames:
            return None
        shared = tensor_nbytes(self.pos_enc)
        per_frame = tensor_nbytes({k: v for k, v in frames[0].items() if k != "maskmem_pos_enc"})
        return shared + per_frame * (self.max_cond_frames + self.keep_non_cond)

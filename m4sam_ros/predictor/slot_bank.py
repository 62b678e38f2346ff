"""The ONNX backend's frame memories: ``MemoryBank``'s bounds, in numpy, read into fixed slots.

Same bounds as ``memory_bank.MemoryBank`` (at most ``max_cond_frames`` conditioning frames, the
last ``keep_non_cond`` tracked frames, only the fields later frames read, memory features in
bfloat16). ``assemble`` picks the frames SAM2's ``_prepare_memory_conditioned_features`` picks,
in its order, with its temporal encodings, and lays them into the exported memory attention's
static slots with validity masks (unused slots are masked out of the softmax).

Torch-free: bfloat16 is kept as its upper 16 bits (round-to-nearest-even, as ``Tensor.to``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

#: ``num_frames`` of a stream (``model.pseudo.ENDLESS``; copied: that module imports torch)
ENDLESS = 1 << 30


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), rounding to nearest even like ``torch.Tensor.to(bfloat16)``."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def from_bf16_bits(b: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) -> float32 (exact)."""
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def select_closest_cond_frames(frame_idx: int, cond: dict[int, Any], max_cond_frame_num: int
                               ) -> tuple[dict[int, Any], dict[int, Any]]:
    """SAM2's ``sam2_utils.select_closest_cond_frames``: (selected, unselected) conditioning frames."""
    if max_cond_frame_num == -1 or len(cond) <= max_cond_frame_num:
        return cond, {}
    selected: dict[int, Any] = {}
    before = max((t for t in cond if t < frame_idx), default=None)
    if before is not None:
        selected[before] = cond[before]
    after = min((t for t in cond if t >= frame_idx), default=None)
    if after is not None:
        selected[after] = cond[after]
    remain = sorted((t for t in cond if t not in selected), key=lambda t: abs(t - frame_idx))
    selected.update((t, cond[t]) for t in remain[:max_cond_frame_num - len(selected)])
    return selected, {t: v for t, v in cond.items() if t not in selected}


class SlotBank:
    """Conditioning and tracked frames' memories (frame index -> kept fields) for the ONNX graphs.

    ``layout``: the manifest's slot counts and sizes; ``sam``: the manifest's SAM2 settings."""

    def __init__(self, max_cond_frames: int, keep_non_cond: int, layout: dict[str, int], sam: dict[str, Any]) -> None:
        if max_cond_frames > layout["cond_slots"]:
            raise ValueError(f"max_cond_frames={max_cond_frames} but the export has {layout['cond_slots']} "
                             "conditioning slots: lower it or export again with m4sam-export --max-cond-frames")
        self.max_cond_frames = max_cond_frames
        self.keep_non_cond = keep_non_cond
        self.layout = layout
        self.sam = sam
        self.clear()

    def clear(self) -> None:
        """Forget every frame."""
        self.cond: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self.non_cond: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self.pos_enc: np.ndarray | None = None

    def clear_non_cond(self) -> None:
        """Forget the tracked frames (a fresh start: they belong to the track that failed)."""
        self.non_cond.clear()

    def store(self, idx: int, maskmem_features: np.ndarray, maskmem_pos_enc: np.ndarray, obj_ptr: np.ndarray,
              object_score_logits: np.ndarray, cond: bool) -> None:
        """Keeps what later frames read (features as bfloat16), then drops the oldest frames past the bounds."""
        if self.pos_enc is None:
            self.pos_enc = np.array(maskmem_pos_enc, np.float32)
        (self.cond if cond else self.non_cond)[idx] = {
            "maskmem_features": to_bf16_bits(maskmem_features),
            "obj_ptr": np.array(obj_ptr, np.float32),
            "object_score_logits": np.array(object_score_logits, np.float32),
        }
        while len(self.non_cond) > self.keep_non_cond:
            self.non_cond.popitem(last=False)
        while cond and len(self.cond) > self.max_cond_frames:
            self.cond.popitem(last=False)

    def nbytes(self) -> int:
        """Bytes held (the shared positional encoding counted once)."""
        frames = list(self.cond.values()) + list(self.non_cond.values())
        return sum(a.nbytes for f in frames for a in f.values()) + (0 if self.pos_enc is None else self.pos_enc.nbytes)

    def max_nbytes(self) -> int | None:
        """The most the bank can ever hold (None before the first frame)."""
        frames = list(self.cond.values()) + list(self.non_cond.values())
        if not frames or self.pos_enc is None:
            return None
        per_frame = sum(a.nbytes for a in frames[0].values())
        return self.pos_enc.nbytes + per_frame * (self.max_cond_frames + self.keep_non_cond)

    def assemble(self, frame_idx: int) -> dict[str, np.ndarray]:
        """The memory attention's slot inputs for tracked frame ``frame_idx``: the frames and
        pointers SAM2 would concatenate, in its order, the rest of the slots masked out."""
        if not self.cond or self.pos_enc is None:
            raise RuntimeError("a tracked frame needs a conditioning frame first")
        lay, sam = self.layout, self.sam
        num_maskmem = sam["num_maskmem"]
        selected, unselected = select_closest_cond_frames(frame_idx, self.cond, sam["max_cond_frames_in_attn"])
        picks: list[tuple[int, dict[str, np.ndarray]]] = [(0, out) for out in selected.values()]
        stride = sam["memory_temporal_stride_for_eval"]
        for t_pos in range(1, num_maskmem):
            t_rel = num_maskmem - t_pos
            prev = frame_idx - 1 if t_rel == 1 else ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
            out = self.non_cond.get(prev)
            if out is None:
                out = unselected.get(prev)
            if out is not None:
                picks.append((t_pos, out))
        nm, g, cm = lay["mem_slots"], lay["feat_size"], lay["mem_dim"]
        if len(picks) > nm:
            raise RuntimeError(f"{len(picks)} memories for {nm} slots")  # bounded by construction
        mem_feats = np.zeros((nm, cm, g, g), np.float32)
        mem_tpos = np.zeros(nm, np.int64)
        mem_valid = np.zeros(nm, bool)
        for i, (t_pos, out) in enumerate(picks):
            mem_feats[i] = from_bf16_bits(out["maskmem_features"])[0]
            mem_tpos[i] = num_maskmem - t_pos - 1
            mem_valid[i] = True
        feeds = {"mem_feats": mem_feats, "mem_pos": self.pos_enc, "mem_tpos": mem_tpos, "mem_valid": mem_valid}
        npt = max(lay["ptr_slots"], 1)
        ptrs = np.zeros((npt, lay["hidden_dim"]), np.float32)
        ptr_tpos = np.zeros(npt, np.float32)
        ptr_valid = np.zeros(npt, bool)
        if sam["use_obj_ptrs_in_encoder"]:
            max_ptrs = min(ENDLESS, sam["max_obj_ptrs_in_encoder"])
            ptr_cond = ({t: o for t, o in selected.items() if t <= frame_idx}
                        if sam["only_obj_ptrs_in_the_past_for_eval"] else selected)
            pos_ptrs = [((frame_idx - t) if sam["use_signed_tpos_enc_to_obj_ptrs"] else abs(frame_idx - t),
                         o["obj_ptr"]) for t, o in ptr_cond.items()]
            for t_diff in range(1, max_ptrs):
                t = frame_idx - t_diff
                if t < 0 or t >= ENDLESS:
                    break
                out = self.non_cond.get(t, unselected.get(t))
                if out is not None:
                    pos_ptrs.append((t_diff, out["obj_ptr"]))
            if len(pos_ptrs) > lay["ptr_slots"]:
                raise RuntimeError(f"{len(pos_ptrs)} pointers for {lay['ptr_slots']} slots")
            for i, (pos, ptr) in enumerate(pos_ptrs):
                ptrs[i] = ptr.reshape(-1)
                ptr_tpos[i] = pos
                ptr_valid[i] = True
        feeds.update(ptrs=ptrs, ptr_tpos=ptr_tpos, ptr_valid=ptr_valid)
        return feeds

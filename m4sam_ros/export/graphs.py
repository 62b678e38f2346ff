"""The streaming step cut into export-friendly modules that share M4-SAM's / SAM2's weights.

Each module is one ONNX graph (``onnx_export``); the runtime (``predictor.onnx_runtime``) calls
them in the order ``StreamingPredictor`` calls SAM2's ``track_step``:

- ``EncoderGraph``: RGB-D encoder (trunk with MoE-LoRA, fusion, neck + conv_s0/s1, GMLFF, coarse
  head) -> coarse logits and the three feature levels SAM2 reads, plus the top level's positional
  encoding. ``rgb_only=True``: ``sam.forward_image`` alone (the RGB-only parity mode).
- ``MemoryAttentionGraph``: SAM2's memory attention over a FIXED number of memory slots with a
  validity mask (so TensorRT gets one static profile). The rotary encoding is real-valued
  (cos/sin pairs), numerically SAM2's complex ``apply_rotary_enc``; invalid slots get an additive
  -inf attention bias, which is the softmax over the valid keys only.
- ``DecoderTrackGraph``: SAM2's prompt encoder (no prompt) + mask decoder (multimask, best by
  IoU) + the object-pointer head, as ``_forward_sam_heads`` runs it for a tracked frame.
- ``DecoderCondGraph``: a conditioning frame with a mask prompt, as ``_use_mask_as_output`` does
  it (the mask is the output; the pointer comes from the decoder on the mask prompt). Its
  antialiased 4x downsampling is a product with a fixed matrix (exactly what
  ``F.interpolate(..., antialias=True)`` computes, without the op ONNX exporters lack).
- ``MemoryEncoderGraph``: ``_encode_new_memory`` (binarised mask for a conditioning frame,
  sigmoid otherwise; the no-object spatial embedding).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from sam2.modeling.position_encoding import compute_axial_cis
from sam2.modeling.sam2_utils import get_1d_sine_pe


def memory_layout(sam: Any, max_cond_frames: int) -> dict[str, int]:
    """The static slot counts: spatial memories (conditioning frames the attention reads plus
    ``num_maskmem - 1`` recent frames) and object pointers (conditioning frames plus
    ``max_obj_ptrs_in_encoder - 1`` recent frames), each pointer split into ``hidden/mem_dim`` tokens."""
    cond_slots = max_cond_frames if sam.max_cond_frames_in_attn == -1 else min(max_cond_frames,
                                                                              sam.max_cond_frames_in_attn)
    g = sam.image_size // 16
    return {
        "cond_slots": int(cond_slots),
        "mem_slots": int(cond_slots + sam.num_maskmem - 1),
        "ptr_slots": int(cond_slots + sam.max_obj_ptrs_in_encoder - 1) if sam.use_obj_ptrs_in_encoder else 0,
        "tokens_per_ptr": int(sam.hidden_dim // sam.mem_dim),
        "feat_size": int(g),
        "hidden_dim": int(sam.hidden_dim),
        "mem_dim": int(sam.mem_dim),
    }


def check_exportable(sam: Any) -> None:
    """The SAM2 settings the graphs assume (SAM2.1's); anything else is refused with its name."""
    need = {"use_mask_input_as_output_without_sam": True,
            "use_high_res_features_in_sam": True, "pred_obj_scores": True}
    for name, value in need.items():
        if bool(getattr(sam, name)) != value:
            raise ValueError(f"export supports SAM2.1-style models only: {name} must be {value}")
    if sam.num_maskmem <= 1:
        raise ValueError("export needs a memory (num_maskmem > 1)")
    if tuple(sam.sam_prompt_encoder.mask_input_size) != (sam.image_size // 4, sam.image_size // 4):
        raise ValueError("the mask prompt size must be image_size / 4")


class EncoderGraph(nn.Module):
    """image [1,3,S,S] (ImageNet-normalised), depth [1,1,S,S] in [0,1] -> coarse_logits [1,1,S,S],
    feat_s0 [1,C0,S/4,S/4], feat_s1 [1,C1,S/8,S/8], vision_feat [1,C,S/16,S/16], vision_pos (same)."""

    def __init__(self, model: Any, rgb_only: bool = False) -> None:
        super().__init__()
        self.model = model
        self.rgb_only = rgb_only

    def forward(self, image: torch.Tensor, depth: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        enc = self.model.encode(image, None if self.rgb_only else depth)
        fpn, pos = enc.backbone_out["backbone_fpn"], enc.backbone_out["vision_pos_enc"]
        n = self.model.sam.num_feature_levels
        if n != 3:
            raise ValueError(f"export expects 3 feature levels, the model has {n}")
        levels = (fpn[-3], fpn[-2], fpn[-1], pos[-1])
        return levels if self.rgb_only else (enc.coarse_logits, *levels)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """SAM2's ``apply_rotary_enc`` in real arithmetic: consecutive channel pairs (re, im) times
    (cos + i sin). x [..., N, D]; cos/sin [N, D/2]."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    re, im = pairs[..., 0], pairs[..., 1]
    return torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1).flatten(-2)


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.reshape(b, t, n, c // n).transpose(1, 2)


class MemoryAttentionGraph(nn.Module):
    """SAM2's memory attention for a tracked frame over fixed slots.

    Inputs: vision_feat, vision_pos [1,C,g,g]; mem_feats [Nm,Cm,g,g]; mem_pos [1,Cm,g,g] (the
    shared spatial encoding); mem_tpos [Nm] int64 (index into ``maskmem_tpos_enc``, i.e.
    ``num_maskmem - t_pos - 1``); mem_valid [Nm] bool; ptrs [Np,C]; ptr_tpos [Np] float (frame
    distance); ptr_valid [Np] bool. Output: pix_feat [1,C,g,g] (the memory-conditioned feature)."""

    def __init__(self, sam: Any, layout: dict[str, int]) -> None:
        super().__init__()
        self.sam = sam
        self.attn = sam.memory_attention
        self.layout = layout
        g = layout["feat_size"]
        layer0 = self.attn.layers[0]
        for name, attn in (("self", layer0.self_attn), ("cross", layer0.cross_attn_image)):
            dim = attn.internal_dim // attn.num_heads
            cis = compute_axial_cis(dim=dim, end_x=g, end_y=g,
                                    theta=attn.compute_cis.keywords.get("theta", 10000.0))
            self.register_buffer(f"{name}_cos", cis.real.float().contiguous(), persistent=False)
            self.register_buffer(f"{name}_sin", cis.imag.float().contiguous(), persistent=False)

    def _attention(self, attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor,
                   sin: torch.Tensor, num_k_rope: int, bias: torch.Tensor | None) -> torch.Tensor:
        q = _heads(attn.q_proj(q), attn.num_heads)
        k = _heads(attn.k_proj(k), attn.num_heads)
        v = _heads(attn.v_proj(v), attn.num_heads)
        q = rotate(q, cos, sin)
        r = num_k_rope // q.shape[-2]
        k_rope = rotate(k[:, :, :num_k_rope], cos.repeat(r, 1), sin.repeat(r, 1))
        k = torch.cat([k_rope, k[:, :, num_k_rope:]], dim=2) if num_k_rope < k.shape[2] else k_rope
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        if bias is not None:
            scores = scores + bias
        out = torch.softmax(scores, dim=-1) @ v
        b, h, t, d = out.shape
        return attn.out_proj(out.transpose(1, 2).reshape(b, t, h * d))

    def forward(self, vision_feat: torch.Tensor, vision_pos: torch.Tensor, mem_feats: torch.Tensor,
                mem_pos: torch.Tensor, mem_tpos: torch.Tensor, mem_valid: torch.Tensor, ptrs: torch.Tensor,
                ptr_tpos: torch.Tensor, ptr_valid: torch.Tensor) -> torch.Tensor:
        sam, lay = self.sam, self.layout
        c, cm, g = lay["hidden_dim"], lay["mem_dim"], lay["feat_size"]
        hw = g * g
        nm, k_ptr = lay["mem_slots"], lay["tokens_per_ptr"]
        curr = vision_feat.flatten(2).transpose(1, 2)          # [1, HW, C] (batch first)
        curr_pos = vision_pos.flatten(2).transpose(1, 2)
        # spatial memories, slot after slot, as torch.cat of each frame's [HW, 1, Cm]
        mem = mem_feats.flatten(2).transpose(1, 2).reshape(1, nm * hw, cm)
        tpos = sam.maskmem_tpos_enc[mem_tpos].reshape(nm, 1, cm)        # [Nm, 1, Cm]
        mpos = (mem_pos.flatten(2).transpose(1, 2).reshape(1, hw, cm) + tpos).reshape(1, nm * hw, cm)
        valid = mem_valid.reshape(nm, 1).expand(nm, hw).reshape(nm * hw)
        num_ptr_tokens = 0
        if lay["ptr_slots"]:
            np_ = lay["ptr_slots"]
            t_diff_max = sam.max_obj_ptrs_in_encoder - 1
            if sam.add_tpos_enc_to_obj_ptrs:
                tpos_dim = c if sam.proj_tpos_enc_in_obj_ptrs else cm
                opos = sam.obj_ptr_tpos_proj(get_1d_sine_pe(ptr_tpos / t_diff_max, dim=tpos_dim))
            else:
                opos = ptrs.new_zeros(np_, cm)
            ptok = ptrs.reshape(np_, k_ptr, cm).reshape(1, np_ * k_ptr, cm)
            ppos = opos.reshape(np_, 1, cm).expand(np_, k_ptr, cm).reshape(1, np_ * k_ptr, cm)
            pval = ptr_valid.reshape(np_, 1).expand(np_, k_ptr).reshape(np_ * k_ptr)
            mem = torch.cat([mem, ptok], dim=1)
            mpos = torch.cat([mpos, ppos], dim=1)
            valid = torch.cat([valid, pval], dim=0)
            num_ptr_tokens = np_ * k_ptr
        bias = torch.where(valid, torch.zeros((), dtype=mem.dtype), torch.full((), float("-inf"), dtype=mem.dtype))
        bias = bias.reshape(1, 1, 1, -1)
        num_k_rope = mem.shape[1] - num_ptr_tokens
        out = curr
        if self.attn.pos_enc_at_input:
            out = out + 0.1 * curr_pos
        for layer in self.attn.layers:
            t2 = layer.norm1(out)
            qk = t2 + curr_pos if layer.pos_enc_at_attn else t2
            out = out + self._attention(layer.self_attn, qk, qk, t2, self.self_cos, self.self_sin, hw, None)
            t2 = layer.norm2(out)
            q = t2 + curr_pos if layer.pos_enc_at_cross_attn_queries else t2
            k = mem + mpos if layer.pos_enc_at_cross_attn_keys else mem
            out = out + self._attention(layer.cross_attn_image, q, k, mem, self.cross_cos, self.cross_sin,
                                        num_k_rope, bias)
            t2 = layer.norm3(out)
            out = out + layer.linear2(layer.activation(layer.linear1(t2)))
        out = self.attn.norm(out)                                   # [1, HW, C]
        return out.transpose(1, 2).reshape(1, c, g, g)


class DecoderTrackGraph(nn.Module):
    """pix_feat [1,C,g,g] (memory-conditioned), feat_s0, feat_s1 -> low_res_masks [1,1,S/4,S/4],
    high_res_masks [1,1,S,S], obj_ptr [1,C], object_score_logits [1,1] (SAM2's choices)."""

    def __init__(self, sam: Any) -> None:
        super().__init__()
        self.sam = sam

    def forward(self, pix_feat: torch.Tensor, feat_s0: torch.Tensor, feat_s1: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        multimask = self.sam._use_multimask(False, None)
        outs = self.sam._forward_sam_heads(backbone_features=pix_feat, point_inputs=None, mask_inputs=None,
                                           high_res_features=[feat_s0, feat_s1], multimask_output=multimask)
        _, _, _, low_res, high_res, obj_ptr, score = outs
        return low_res, high_res, obj_ptr, score


def antialias_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """[size_out, size_in]: the 1-D map ``F.interpolate(bilinear, antialias=True)`` applies along one
    axis (it is separable), taken from torch itself on unit vectors."""
    eye = torch.eye(size_in).reshape(size_in, 1, 1, size_in)
    cols = F.interpolate(eye, size=(1, size_out), mode="bilinear", align_corners=False, antialias=True)
    return cols.reshape(size_in, size_out).t().contiguous()


class DecoderCondGraph(nn.Module):
    """A conditioning frame: vision_feat [1,C,g,g] (no memory), feat_s0, feat_s1, mask [1,1,S,S]
    float {0,1} -> low_res_masks, mem_mask_logits [1,1,S,S] (the predictor's upsampled low-res
    mask, from which the memory is encoded), obj_ptr, object_score_logits."""

    def __init__(self, sam: Any) -> None:
        super().__init__()
        self.sam = sam
        s = sam.image_size
        self.register_buffer("down", antialias_matrix(s, s // 4), persistent=False)

    def forward(self, vision_feat: torch.Tensor, feat_s0: torch.Tensor, feat_s1: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        sam = self.sam
        s = sam.image_size
        high_res = mask * 20.0 - 10.0
        low_res = self.down @ high_res @ self.down.t()
        _, _, _, _, _, obj_ptr, _ = sam._forward_sam_heads(
            backbone_features=vision_feat, mask_inputs=sam.mask_downsample(mask),
            high_res_features=[feat_s0, feat_s1])
        appearing = (mask.flatten(1) > 0.0).any(dim=1, keepdim=True).float()   # [1, 1]
        score = 20.0 * appearing - 10.0
        if sam.fixed_no_obj_ptr:
            obj_ptr = appearing * obj_ptr
        obj_ptr = obj_ptr + (1 - appearing) * sam.no_obj_ptr
        mem_logits = F.interpolate(low_res, size=(s, s), mode="bilinear", align_corners=False)
        return low_res, mem_logits, obj_ptr, score


class MemoryEncoderGraph(nn.Module):
    """vision_feat [1,C,g,g], mask_logits [1,1,S,S], object_score_logits [1,1], binarize [1] bool ->
    maskmem_features [1,Cm,g,g], maskmem_pos_enc [1,Cm,g,g] (``_encode_new_memory``)."""

    def __init__(self, sam: Any) -> None:
        super().__init__()
        self.sam = sam

    def forward(self, vision_feat: torch.Tensor, mask_logits: torch.Tensor, object_score_logits: torch.Tensor,
                binarize: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sam = self.sam
        mask = torch.where(binarize.reshape(1, 1, 1, 1), (mask_logits > 0).float(), torch.sigmoid(mask_logits))
        if sam.sigmoid_scale_for_mem_enc != 1.0:
            mask = mask * sam.sigmoid_scale_for_mem_enc
        if sam.sigmoid_bias_for_mem_enc != 0.0:
            mask = mask + sam.sigmoid_bias_for_mem_enc
        out = sam.memory_encoder(vision_feat, mask, skip_mask_sigmoid=True)
        feats, pos = out["vision_features"], out["vision_pos_enc"][-1]
        if sam.no_obj_embed_spatial is not None:
            appearing = (object_score_logits > 0).float()
            feats = feats + (1 - appearing[..., None, None]) * sam.no_obj_embed_spatial[..., None, None]
        return feats, pos

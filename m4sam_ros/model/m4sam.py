"""M4-SAM on SAM2: MoE-LoRA trunk, RGB-D fusion, GMLFF + coarse head, SAM2's memory branch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .fusion import MultiLevelFusion
from .gmlff import GMLFF, CoarseHead, TopDownHead
from .moe_lora import DEPTH, RGB, ModalityState, QKVAdapter
from .preprocess import depth_to_rgb_input
from .pseudo import ENDLESS, pseudo_mask

HEAD_TYPES = ("conv", "topdown")

SAM_TRUNK_PREFIX = "image_encoder.trunk."
SAM_NECK_PREFIX = "image_encoder.neck."
# Everything of SAM2Base outside the image encoder is the memory branch: memory encoder and
# attention, prompt encoder, mask decoder (with the object-score head and conv_s0/s1), object
# pointer projections, temporal encodings, no-mem / no-obj embeddings ("sam_memory" group).
SAM_IMAGE_ENCODER_PREFIX = "image_encoder."


@dataclass
class EncodedFrames:
    """Output of M4SAM.encode.

    backbone_out: dict exactly as SAM2Base.forward_image returns it (feed it to
    ``sam._prepare_backbone_features``); coarse_logits: [B, 1, S, S] or None in RGB-only mode;
    aux_loss: scalar MoE balance loss (0 when no adapter ran); side_logits: deep-supervision
    outputs [B, 1, S, S] of the top-down head when asked for (``encode(..., sides=True)``).
    """

    backbone_out: dict[str, Any]
    coarse_logits: torch.Tensor | None
    aux_loss: torch.Tensor
    side_logits: list[torch.Tensor] = field(default_factory=list)
    edge_logits: list[torch.Tensor] = field(default_factory=list)


class M4SAM(nn.Module):
    """SAM2Base plus M4-SAM's trainable parts; SAM2's own modules stay under ``self.sam`` with
    their original state-dict keys, so official checkpoints load into ``model.sam`` unchanged."""

    def __init__(self, sam: nn.Module, config: dict[str, Any]) -> None:
        super().__init__()
        self.sam = sam
        self.config = config
        self.image_size = int(sam.image_size)
        # the pre-trained SAM2 weights under this model ({name, size, sha256}; None: random or all
        # weights its own); build_m4sam sets it, checkpoints record it (model.checkpoint)
        self.sam2_weights: dict[str, Any] | None = None
        moe = config["moe_lora"]
        self._state = ModalityState()
        self.adapters = nn.ModuleList()
        self._hook_handles = []
        for blk in sam.image_encoder.trunk.blocks:
            ad = QKVAdapter(blk.attn.qkv, self._state, rank=moe["rank"], alpha=moe["alpha"],
                            top_k=moe["top_k"], noisy=moe["noisy_gating"],
                            modality_experts=moe["modality_experts"],
                            fusion_experts=moe["fusion_experts"])
            self.adapters.append(ad)
            self._hook_handles.append(blk.attn.qkv.register_forward_hook(ad.hook))
        channels = list(sam.image_encoder.trunk.channel_list)[::-1]  # trunk order: stride 4 first
        self.trunk_channels = channels
        self.fusion = MultiLevelFusion(channels, config["fusion"]["hidden_ratio"])
        width = config["gmlff"]["width"]
        self.gmlff = GMLFF(channels, width=width, ffn_ratio=config["gmlff"]["ffn_ratio"])
        head = config["head"]
        self.head_type = head.get("type", "conv")
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"head.type must be one of {HEAD_TYPES}, got {self.head_type!r}")
        if self.head_type == "conv":
            self.head = CoarseHead(width, head["hidden"])
        else:
            self.head = TopDownHead(channels, width, edges=bool(head.get("edges", False)))
        # ablation (issue 20 item 7, config gmlff.to_decoder): GMLFF's stride-4 output (and its
        # 2x2 mean at stride 8) added to the high-resolution features SAM2's mask decoder
        # upsamples with, through zero-initialised 1x1 convs: at step 0 the decoder sees exactly
        # SAM2's features, and the scored memory output can learn to use GMLFF
        self.gmlff_to_decoder: nn.ModuleList | None = None
        if config["gmlff"].get("to_decoder", False):
            if not sam.use_high_res_features_in_sam:
                raise ValueError("gmlff.to_decoder needs SAM2's high-resolution decoder features "
                                 "(use_high_res_features_in_sam: true)")
            dec = sam.sam_mask_decoder
            self.gmlff_to_decoder = nn.ModuleList(
                nn.Conv2d(width, conv.out_channels, 1) for conv in (dec.conv_s0, dec.conv_s1))
            for conv in self.gmlff_to_decoder:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        self.apply_trainable()

    # ----------------------------------------------------------------------------- trainability
    def parameter_group_of(self, name: str) -> str:
        """Name of the group a parameter belongs to (for reports, optimiser groups, freezing)."""
        if name.startswith("adapters."):
            return "adapters"
        if name.startswith("gmlff_to_decoder."):
            return "gmlff"
        for g in ("fusion", "gmlff", "head"):
            if name.startswith(g + "."):
                return g
        if name.startswith("sam." + SAM_TRUNK_PREFIX):
            return "sam_trunk"
        if name.startswith("sam." + SAM_NECK_PREFIX):
            return "sam_neck"
        if name.startswith("sam.") and not name.startswith("sam." + SAM_IMAGE_ENCODER_PREFIX):
            return "sam_memory"
        return "sam_modules"  # anything else of the image encoder (none in SAM2.1 today)

    def trained_groups(self) -> set[str]:
        """Parameter groups the config trains: M4-SAM's parts always; SAM2's memory branch with
        ``train_memory_branch`` (benchmark configs, low lr) or ``train_sam_modules``; the neck
        with ``train_sam_modules``; everything with ``train_base_in_full``."""
        full = bool(self.config.get("train_base_in_full", False))
        sam_mods = bool(self.config.get("train_sam_modules", False)) or full
        groups = {"adapters", "fusion", "gmlff", "head"}
        if sam_mods or self.config.get("train_memory_branch", False):
            groups.add("sam_memory")
        if sam_mods:
            groups |= {"sam_neck", "sam_modules"}
        if full:
            groups.add("sam_trunk")
        return groups

    def apply_trainable(self) -> None:
        """Freeze/unfreeze according to the config (see ``trained_groups``)."""
        groups = self.trained_groups()
        for name, p in self.named_parameters():
            p.requires_grad_(self.parameter_group_of(name) in groups)

    # ----------------------------------------------------------------------------- encoder
    @contextmanager
    def modality(self, tags: torch.Tensor) -> Iterator[list[torch.Tensor]]:
        """Activate the adapters for one trunk forward with per-sample modality tags
        (RGB=0, DEPTH=1); yields the list that collects the balance losses."""
        if self._state.tags is not None:
            raise RuntimeError("modality() is not re-entrant")
        self._state.set_tags(tags)
        self._state.aux = []
        try:
            yield self._state.aux
        finally:
            self._state.set_tags(None)

    def _neck(self, levels: list[torch.Tensor]) -> dict[str, Any]:
        """SAM2's neck + conv_s0/conv_s1 on given trunk levels, as ImageEncoder.forward and
        SAM2Base.forward_image do it."""
        enc = self.sam.image_encoder
        features, pos = enc.neck(levels)
        if enc.scalp > 0:
            features, pos = features[: -enc.scalp], pos[: -enc.scalp]
        out = {"vision_features": features[-1], "vision_pos_enc": pos, "backbone_fpn": features}
        if self.sam.use_high_res_features_in_sam:
            dec = self.sam.sam_mask_decoder
            out["backbone_fpn"][0] = dec.conv_s0(out["backbone_fpn"][0])
            out["backbone_fpn"][1] = dec.conv_s1(out["backbone_fpn"][1])
        return out

    def encode(self, images: torch.Tensor, depths: torch.Tensor | None = None,
               sides: bool = False) -> EncodedFrames:
        """images [B,3,S,S] ImageNet-normalised; depths [B,1,S,S] in [0,1] or None.

        None: RGB-only parity mode, exactly ``sam.forward_image(images)``. Otherwise RGB and
        depth share ONE batched trunk pass ([rgb; depth]) with modality tags, are fused per level,
        go through SAM2's neck (memory branch input) and GMLFF + coarse head. ``sides``: also
        return the head's deep-supervision outputs (training; inference skips them)."""
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"images must be {self.image_size}x{self.image_size}, "
                             f"got {tuple(images.shape[-2:])}")
        if depths is None:
            return EncodedFrames(self.sam.forward_image(images), None, images.new_zeros(()))
        b = images.shape[0]
        if depths.shape != (b, 1, *images.shape[-2:]):
            raise ValueError(f"depths must be {(b, 1, *images.shape[-2:])}, got {tuple(depths.shape)}")
        x = torch.cat([images, depth_to_rgb_input(depths.to(images.dtype))], dim=0)
        tags = torch.tensor([RGB] * b + [DEPTH] * b, device=images.device)
        with self.modality(tags) as aux_list:
            levels = self.sam.image_encoder.trunk(x)
        aux = torch.stack(aux_list).sum() if aux_list else images.new_zeros(())
        fused = self.fusion([lv[:b] for lv in levels], [lv[b:] for lv in levels])
        backbone_out = self._neck(fused)
        g = self.gmlff(fused)
        if self.gmlff_to_decoder is not None:
            fpn = backbone_out["backbone_fpn"]
            fpn[0] = fpn[0] + self.gmlff_to_decoder[0](g)
            fpn[1] = fpn[1] + self.gmlff_to_decoder[1](F.avg_pool2d(g, 2))
        side_logits: list[torch.Tensor] = []
        edge_logits: list[torch.Tensor] = []
        if self.head_type == "conv":
            coarse = self.head(g, self.image_size)
        else:
            coarse, side_logits = self.head(fused, g, self.image_size, sides=sides, edges=edge_logits)
        return EncodedFrames(backbone_out, coarse, aux, side_logits, edge_logits)

    # ----------------------------------------------------------------------------- memory branch
    def track_frame(self, frame_idx: int, is_init_cond_frame: bool, vision_feats: list[torch.Tensor],
                    vision_pos: list[torch.Tensor], feat_sizes: list[tuple[int, int]],
                    mask_inputs: torch.Tensor | None, output_dict: dict[str, dict],
                    num_frames: int = ENDLESS) -> dict[str, Any]:
        """SAM2Base.track_step (no points, memory encoder on), but object_score_logits are kept in
        training mode too (SAM2 drops them there), and ``pred_masks_high_res_raw`` holds the mask
        decoder's logits *before* SAM2 replaces "no object" frames by -1024 (same mask choice,
        same upsampling), so a loss on them has a gradient on every frame."""
        sam = self.sam
        captured: list[tuple[torch.Tensor, torch.Tensor]] = []

        def grab(module: nn.Module, inputs: Any, output: Any) -> None:
            captured.append((output[0], output[1]))  # (low-res multimasks, ious)

        handle = sam.sam_mask_decoder.register_forward_hook(grab)
        try:
            current_out, sam_outputs, _, _ = sam._track_step(
                frame_idx, is_init_cond_frame, vision_feats, vision_pos, feat_sizes, None,
                mask_inputs, output_dict, num_frames, False, None)
        finally:
            handle.remove()
        _, _, _, low_res, high_res, obj_ptr, obj_score = sam_outputs
        current_out["pred_masks"] = low_res
        current_out["pred_masks_high_res"] = high_res
        current_out["obj_ptr"] = obj_ptr
        current_out["object_score_logits"] = obj_score
        if mask_inputs is not None and sam.use_mask_input_as_output_without_sam:
            current_out["pred_masks_high_res_raw"] = high_res  # the mask prompt itself
        else:
            masks, ious = captured[-1]
            masks = F.interpolate(masks.float(), size=(self.image_size, self.image_size),
                                  mode="bilinear", align_corners=False)
            if masks.shape[1] > 1:
                best = torch.argmax(ious, dim=-1)
                masks = masks[torch.arange(masks.shape[0], device=masks.device), best].unsqueeze(1)
            current_out["pred_masks_high_res_raw"] = masks
        sam._encode_memory_in_output(vision_feats, feat_sizes, None, True, high_res, obj_score,
                                     current_out)
        return current_out

    def forward_clip(self, images: torch.Tensor, depths: torch.Tensor,
                     cond_masks: torch.Tensor | None = None,
                     cond_select: torch.Tensor | None = None) -> dict[str, Any]:
        """Differentiable clip forward for training.

        images [B,T,3,S,S] normalised, depths [B,T,1,S,S]. All B*T frames are encoded in one
        batch; frame 0 is conditioned by its own pseudo mask (``pseudo.pseudo_mask``: never empty,
        the predictor's rule), frames 1..T-1 are tracked from memory with the predictor's
        ``num_frames`` (ENDLESS), so object pointers get the same temporal encoding as at
        inference. ``cond_masks`` [B,1,S,S] (ground truth) replaces frame 0's pseudo mask for the
        samples where ``cond_select`` [B] bool is True (all samples when cond_select is None).

        Returns coarse_logits, memory_logits (SAM2's output: -1024 on "no object" frames),
        memory_logits_raw (the decoder's logits before that replacement: supervise these),
        [B,T,1,S,S]; object_score_logits [B,T,1]; side_logits (list of [B,T,1,S,S], empty for
        the conv head); edge_logits (list of [B,T,1,S,S], the head's edge maps when the config
        has ``head.edges``, else empty); pseudo_confident [B] bool; object_score_from_prompt;
        aux_loss (scalar)."""
        if images.dim() != 5 or depths.dim() != 5:
            raise ValueError(f"images/depths must be [B,T,C,S,S], got {tuple(images.shape)} and "
                             f"{tuple(depths.shape)}")
        b, t_len = images.shape[:2]
        s = self.image_size
        enc = self.encode(images.flatten(0, 1), depths.flatten(0, 1), sides=True)
        coarse = enc.coarse_logits.view(b, t_len, 1, s, s)
        _, feats, pos, sizes = self.sam._prepare_backbone_features(enc.backbone_out)

        def frame(xs: list[torch.Tensor], t: int) -> list[torch.Tensor]:
            return [x.unflatten(1, (b, t_len))[:, :, t].contiguous() for x in xs]

        mask0, confident = pseudo_mask(coarse[:, 0])
        if cond_masks is not None:
            if cond_masks.shape != (b, 1, s, s):
                raise ValueError(f"cond_masks must be {(b, 1, s, s)}, got {tuple(cond_masks.shape)}")
            # training may condition on ground truth instead (scheduled sampling): the memory
            # branch then learns to track before the coarse head gives usable pseudo masks
            gt = cond_masks.to(mask0)
            if cond_select is None:
                mask0 = gt
            else:
                if cond_select.shape != (b,):
                    raise ValueError(f"cond_select must be [B]={b} bool, got {tuple(cond_select.shape)}")
                mask0 = torch.where(cond_select.to(mask0.device).bool().view(b, 1, 1, 1), gt, mask0)
        elif cond_select is not None and bool(cond_select.any()):
            raise ValueError("cond_select picks ground-truth conditioning but cond_masks is None")

        output_dict: dict[str, dict] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        mem, raw, scores = [], [], []
        for t in range(t_len):
            cond = t == 0
            out = self.track_frame(t, cond, frame(feats, t), frame(pos, t), sizes,
                                   mask0 if cond else None, output_dict, ENDLESS)
            output_dict["cond_frame_outputs" if cond else "non_cond_frame_outputs"][t] = out
            mem.append(out["pred_masks_high_res"])
            raw.append(out["pred_masks_high_res_raw"])
            scores.append(out["object_score_logits"])
        return {
            "coarse_logits": coarse,
            "memory_logits": torch.stack(mem, dim=1),
            "memory_logits_raw": torch.stack(raw, dim=1),
            "object_score_logits": torch.stack(scores, dim=1),
            "side_logits": [x.view(b, t_len, 1, s, s) for x in enc.side_logits],
            "edge_logits": [x.view(b, t_len, 1, s, s) for x in enc.edge_logits],
            "pseudo_confident": confident,
            # frame 0's score is SAM2's constant copy of the mask prompt (no gradient) when it
            # outputs the prompt itself; the loss then supervises the score on frames 1..T-1
            "object_score_from_prompt": bool(self.sam.use_mask_input_as_output_without_sam),
            "aux_loss": enc.aux_loss,
        }

    def forward(self, images: torch.Tensor, depths: torch.Tensor,
                cond_masks: torch.Tensor | None = None,
                cond_select: torch.Tensor | None = None) -> dict[str, Any]:
        """Alias of forward_clip (so DDP and friends can wrap the model)."""
        return self.forward_clip(images, depths, cond_masks, cond_select)

"""The streaming predictor: one RGB-D frame pair in, mask + saliency + boxes out, memory bounded.

It is the one inference path of the project (node, bag tool, evaluation, benchmark, demo).

- Pseudo-Guided Initialization: the first frame (and any re-initialisation) is a *conditioning*
  frame whose mask prompt is the model's own coarse mask (SAM2.1 uses a mask input directly as the
  frame's output); later frames are predicted from SAM2's memory by ``track_step``. The mask comes
  from ``model.pseudo.pseudo_mask``, the rule training uses too: never empty (an empty prompt
  would encode a "no object" memory), and ``num_frames`` is the same endless-stream value.
- Re-initialisation (``reinit_policy.ReinitPolicy``): the object score stays low, or memory and
  coarse maps disagree (IoU below a threshold), for N frames in a row, or a scene cut; a stamp going
  backwards (a looping rosbag) starts afresh.
- No silent blanks: SAM2 gates a frame whose object score logit is <= 0 to -1024 everywhere (an
  all-black map). When that happens and the coarse map is confident (its peak probability above
  ``fallback_confidence``), the frame's memory map is the coarse map instead (``fallback``);
  ``no_object_fallback=False`` keeps SAM2's blank. ``blanked`` / ``fallback`` on every result say
  which frames the gate hit (eval and the node's diagnostics report the share).
- A conditioning frame's memory map is a real prediction: the soft coarse map its prompt was cut
  from (``condition_output="coarse"``), not the binarised prompt SAM2 passes through its 4x
  down/up mask path (``"prompt"``, SAM2's own behaviour and always that of a given ``mask_prompt``).
- Bounded state (``memory_bank.MemoryBank``): conditioning frames (at most ``max_cond_frames``,
  oldest dropped) plus the last ``max(num_maskmem - 1, max_obj_ptrs_in_encoder - 1)`` = 15 other
  frames, each holding only the fields later frames read, stored as SAM2's video predictor stores
  them, so the RGB-only parity mode reproduces ``SAM2VideoPredictor``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from m4sam_ros.model.depth import normalize_depth
from m4sam_ros.model.preprocess import depth_to_tensor, rgb_to_tensor
from m4sam_ros.model.pseudo import ENDLESS, pseudo_mask
from m4sam_ros.predictor.controls import Delegated, PredictorControls
from m4sam_ros.predictor.memory_bank import KEPT_FIELDS, MemoryBank, tensor_nbytes  # noqa: F401 - re-exported
from m4sam_ros.predictor.reinit_policy import ReinitPolicy
from m4sam_ros.predictor.result import (  # noqa: F401 - re-exported
    CONDITION_OUTPUTS,
    OUTPUT_CHOICES,
    OUTPUTS,
    Box,
    SaliencyResult,
    boxes_from_mask,
    mask_and_boxes,
    validate_frame,
)

log = logging.getLogger(__name__)

# ENDLESS (model.pseudo): num_frames of every track_step, the same value training uses


class StreamingPredictor(PredictorControls):
    """Prompt-free RGB-D video salient object detection, one frame at a time.

    ``memory`` (a ``MemoryBank``) holds the frames SAM2 reads; ``reinit`` (a ``ReinitPolicy``)
    decides when a frame is conditioned on its pseudo mask again."""

    # the constructor's names stay readable and writable here; the values live where they are used
    max_cond_frames = Delegated("memory", "max_cond_frames")
    keep_non_cond = Delegated("memory", "keep_non_cond")

    def __init__(self, model: Any, device: str | torch.device = "cpu", *, mask_threshold: float = 0.5,
                 output: str = "memory", min_box_area: float = 0.001, reinit_score_threshold: float = 0.5,
                 reinit_low_score_frames: int = 5, reinit_iou_threshold: float = 0.2,
                 reinit_iou_frames: int = 5, reinit_cut_threshold: float = 0.3, max_cond_frames: int = 4,
                 rgb_only: bool = False, recommended_output: str = "memory",
                 use_autocast: bool | None = None, compile: bool | str = False, no_object_fallback: bool = True,
                 fallback_confidence: float = 0.5, condition_output: str = "coarse") -> None:
        if recommended_output not in OUTPUTS:
            raise ValueError(f"recommended_output must be one of {OUTPUTS}, got {recommended_output!r}")
        self.recommended_output = recommended_output
        output = self._resolve_output(output)
        if condition_output not in CONDITION_OUTPUTS:
            raise ValueError(f"condition_output must be one of {CONDITION_OUTPUTS}, got {condition_output!r}")
        if not 0.0 <= fallback_confidence <= 1.0:
            raise ValueError(f"fallback_confidence is a probability in [0, 1], got {fallback_confidence}")
        self.no_object_fallback = bool(no_object_fallback)
        self.fallback_confidence = float(fallback_confidence)
        self.condition_output = condition_output
        if max_cond_frames < 2:
            raise ValueError(f"max_cond_frames must be >= 2 (SAM2's memory attention needs it), got {max_cond_frames}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.sam = self.model.sam
        # as build_sam2_video_predictor sets it: a conditioning mask is binarised before its memory
        # is encoded (our conditioning masks are binary already; this keeps parity with SAM2's VP)
        self.sam.binarize_mask_from_pts_for_mem_enc = True
        self.image_size = int(self.model.image_size)
        self.output = output
        self.mask_threshold = float(mask_threshold)
        self.min_box_area = min_box_area
        self.reinit = ReinitPolicy(reinit_score_threshold, reinit_low_score_frames, reinit_iou_threshold,
                                   reinit_iou_frames, reinit_cut_threshold)
        self.rgb_only = rgb_only
        # the tracked frames SAM2 reads: its memory frames and its object pointers, whichever reach further
        self.memory = MemoryBank(max_cond_frames, max(self.sam.num_maskmem - 1,
                                                      self.sam.max_obj_ptrs_in_encoder - 1))
        self.use_autocast = (self.device.type == "cuda") if use_autocast is None else use_autocast
        self._encode = self.model.encode
        if compile:
            if self.device.type != "cuda":
                raise ValueError("compile=True is for CUDA devices; on CPU leave it off")
            # True: max-autotune (best steady state, long first-call tuning); a string: that mode
            mode = "max-autotune-no-cudagraphs" if compile is True else str(compile)
            self._encode = torch.compile(self.model.encode, mode=mode, dynamic=False)
        self._warned_resize = False
        self.reset()

    # ------------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: str | Path | dict | None = None, m4sam_checkpoint: str | Path | None = None,
                    sam2_checkpoint: str | Path | None = None, device: str = "cpu", image_size: int | None = None,
                    **kwargs: Any) -> StreamingPredictor:
        """Builds the model (config name/YAML/dict; None = the checkpoint's own config) and wraps it.
        The checkpoint's recommended output (``extra["recommended_output"]``) is what
        ``output="auto"`` picks."""
        from m4sam_ros.model import build_m4sam
        from m4sam_ros.model.checkpoint import recommended_output

        if config is None:
            if m4sam_checkpoint is None:
                raise ValueError("give a model config (e.g. 'm4sam_hiera_t') or an M4-SAM checkpoint that holds one")
            from m4sam_ros.model.checkpoint import read_m4sam_checkpoint

            config = read_m4sam_checkpoint(m4sam_checkpoint)["config"]
            if image_size is not None:
                config = dict(config, image_size=image_size)
                image_size = None
        model = build_m4sam(config, sam2_checkpoint=sam2_checkpoint, m4sam_checkpoint=m4sam_checkpoint,
                            device=device, image_size=image_size)
        if m4sam_checkpoint is not None:
            kwargs.setdefault("recommended_output", recommended_output(m4sam_checkpoint))
        return cls(model, device=device, **kwargs)

    # ------------------------------------------------------------------------ input
    def _validate(self, rgb: Any, depth: Any) -> tuple[np.ndarray, np.ndarray | None]:
        rgb, depth, warned = validate_frame(rgb, depth, self.rgb_only, self._warned_resize)
        self._warned_resize = warned
        return rgb, depth

    # ------------------------------------------------------------------------ inference
    def step(self, rgb: np.ndarray, depth: np.ndarray | None, stamp: float | None = None) -> SaliencyResult:
        """One frame pair: ``rgb`` uint8 HxWx3 (RGB order), ``depth`` uint16 mm or float32 m."""
        t0 = time.perf_counter()
        rgb, depth = self._validate(rgb, depth)
        if self.reinit.is_scene_cut(rgb):
            log.info("scene cut at frame %d: conditioning on the pseudo mask again", self._frame_index)
            self.reinit.request()
        image = rgb_to_tensor(rgb, self.image_size).to(self.device)
        depth01 = None
        if depth is not None and not self.rgb_only:
            depth01 = depth_to_tensor(normalize_depth(depth, "metric"), self.image_size).to(self.device)
        result = self.step_tensor(image, depth01, rgb.shape[:2], stamp=stamp, t_start=t0)
        return result

    @torch.inference_mode()
    def step_tensor(self, image: torch.Tensor, depth01: torch.Tensor | None, orig_hw: tuple[int, int],
                    stamp: float | None = None, mask_prompt: torch.Tensor | None = None,
                    t_start: float | None = None) -> SaliencyResult:
        """The tensor-level step: ``image`` [1,3,S,S] ImageNet-normalised, ``depth01`` [1,1,S,S] or None.

        ``mask_prompt`` [S,S] conditions this frame on a given mask instead of the pseudo mask (the
        parity test gives SAM2's video predictor and this predictor the same first mask)."""
        t0 = time.perf_counter() if t_start is None else t_start
        timings = {"preprocess": (time.perf_counter() - t0) * 1e3}
        if stamp is not None and self._last_stamp is not None and stamp < self._last_stamp:
            log.info("stamp went backwards (%.3f -> %.3f s): starting afresh", self._last_stamp, stamp)
            self.reset()
        self._last_stamp = stamp
        t1 = time.perf_counter()
        coarse_logits, feats, pos, sizes = self._encode_frame(image, depth01)
        timings["encode"] = (time.perf_counter() - t1) * 1e3
        t2 = time.perf_counter()
        idx = self._frame_index
        condition = not self.memory.cond or self.reinit.forced or mask_prompt is not None
        confident = None
        if condition:
            mask, confident = self._conditioning_mask(idx, coarse_logits, mask_prompt)
            out = self._condition(idx, feats, pos, sizes, mask)
        else:
            out = self._track(idx, feats, pos, sizes)
        timings["track"] = (time.perf_counter() - t2) * 1e3
        t3 = time.perf_counter()
        memory_logits, memory, coarse, object_score = self._maps(out, coarse_logits, orig_hw)
        blanked = bool((out["object_score_logits"] <= 0).any().item())
        fallback = False
        if coarse_logits is not None and mask_prompt is None and (
                (condition and self.condition_output == "coarse")
                or (blanked and self.no_object_fallback and float(coarse.max()) > self.fallback_confidence)):
            # a real prediction instead of the binarised prompt / SAM2's all -1024 "no object" map
            fallback = blanked  # never on a conditioning frame: SAM2 scores its (never empty) prompt +10
            memory_logits = F.interpolate(coarse_logits.float(), size=orig_hw, mode="bilinear", align_corners=False)
            memory = coarse
        saliency = {"memory": memory, "coarse": coarse, "combined": (memory + coarse) / 2}[self.output]
        reinit_next = False
        if not condition and coarse_logits is not None:
            reinit_next = self.reinit.update(object_score, out["pred_masks_high_res"], coarse_logits)
        self.reinit.forced = reinit_next
        self._frame_index += 1
        sal, mask_np, boxes = self._mask_and_boxes(saliency)
        timings["postprocess"] = (time.perf_counter() - t3) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return SaliencyResult(mask=mask_np, saliency=sal, coarse=coarse.cpu().numpy().astype(np.float32),
                              memory=memory.cpu().numpy().astype(np.float32), boxes=boxes,
                              object_score=object_score, reinitialized=condition, frame_index=idx,
                              stamp=stamp, timings=timings,
                              memory_logits=memory_logits[0, 0].cpu().numpy().astype(np.float32),
                              pseudo_confident=confident, blanked=blanked, fallback=fallback)

    def _encode_frame(self, image: torch.Tensor, depth01: torch.Tensor | None
                      ) -> tuple[torch.Tensor | None, list[torch.Tensor], list[torch.Tensor], list[tuple[int, int]]]:
        """(coarse logits or None, then SAM2's vision features, positional embeddings, feature sizes)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_autocast):
            enc = self._encode(image, None if self.rgb_only else depth01)
            _, feats, pos, sizes = self.sam._prepare_backbone_features(enc.backbone_out)
        return enc.coarse_logits, feats, pos, sizes

    def _conditioning_mask(self, idx: int, coarse_logits: torch.Tensor | None,
                           mask_prompt: torch.Tensor | None) -> tuple[torch.Tensor, bool | None]:
        """The mask a conditioning frame is given, and whether the pseudo mask was confident (None
        for a given ``mask_prompt``)."""
        if mask_prompt is not None:
            return mask_prompt.reshape(1, 1, self.image_size, self.image_size).float().to(self.device), None
        if coarse_logits is None:
            raise ValueError("RGB-only parity mode has no coarse map: give the first frame a mask_prompt")
        # the training rule: sigmoid(coarse) > 0.5, or, when nothing passes, a relative
        # threshold of the map; never empty (SAM2 encodes an empty mask as "no object")
        mask, conf = pseudo_mask(coarse_logits)
        confident = bool(conf.item())
        if not confident:
            log.debug("frame %d: weak pseudo mask, conditioning on its relative threshold", idx)
        return mask, confident

    def _condition(self, idx: int, feats: list[torch.Tensor], pos: list[torch.Tensor],
                   sizes: list[tuple[int, int]], mask: torch.Tensor) -> dict[str, Any]:
        """A conditioning frame, as SAM2's video predictor makes one from ``add_new_mask``: the mask
        is the output, and its memory is encoded from that output (``is_mask_from_pts``)."""
        sam = self.sam
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_autocast):
            out = sam.track_step(frame_idx=idx, is_init_cond_frame=True, current_vision_feats=feats,
                                 current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=None,
                                 mask_inputs=mask, output_dict=self.memory.output_dict(), num_frames=ENDLESS,
                                 track_in_reverse=False, run_mem_encoder=False)
            high_res = F.interpolate(out["pred_masks"], size=(self.image_size, self.image_size), mode="bilinear",
                                     align_corners=False)
            out["maskmem_features"], out["maskmem_pos_enc"] = sam._encode_new_memory(
                current_vision_feats=feats, feat_sizes=sizes, pred_masks_high_res=high_res,
                object_score_logits=out["object_score_logits"], is_mask_from_pts=True)
        # a fresh start: the frames tracked before it belong to the track that failed
        self.memory.clear_non_cond()
        self.reinit.restart_runs()
        self.memory.store(idx, out, cond=True)
        return out

    def _track(self, idx: int, feats: list[torch.Tensor], pos: list[torch.Tensor],
               sizes: list[tuple[int, int]]) -> dict[str, Any]:
        """A tracked frame: predicted from the memory bank by SAM2, its own memory encoded and kept."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_autocast):
            out = self.sam.track_step(
                frame_idx=idx, is_init_cond_frame=False, current_vision_feats=feats,
                current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=None, mask_inputs=None,
                output_dict=self.memory.output_dict(), num_frames=ENDLESS, track_in_reverse=False,
                run_mem_encoder=True)
        self.memory.store(idx, out, cond=False)
        return out

    def _maps(self, out: dict[str, Any], coarse_logits: torch.Tensor | None, orig_hw: tuple[int, int]
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """(memory logits [1,1,H,W], memory map, coarse map (the memory map without one), object
        score) at the input image's size."""
        h, w = orig_hw
        memory_logits = F.interpolate(out["pred_masks"].float(), size=(h, w), mode="bilinear", align_corners=False)
        memory = torch.sigmoid(memory_logits)[0, 0]
        object_score = float(torch.sigmoid(out["object_score_logits"].float()).item())
        if coarse_logits is not None:
            coarse = torch.sigmoid(F.interpolate(coarse_logits.float(), size=(h, w), mode="bilinear",
                                                 align_corners=False))[0, 0]
        else:
            coarse = memory
        return memory_logits, memory, coarse, object_score

    def _mask_and_boxes(self, saliency: torch.Tensor) -> tuple[np.ndarray, np.ndarray, list[Box]]:
        """(saliency float32, its mask uint8 {0, 255}, the mask's boxes); ``min_box_area`` below 1 is
        a fraction of the image."""
        return mask_and_boxes(saliency.cpu().numpy(), self.mask_threshold, self.min_box_area)

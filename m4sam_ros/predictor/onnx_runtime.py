"""``StreamingPredictor`` on ONNX Runtime: the exported graphs (``m4sam-export``), no torch, no sam2.

Imports numpy, OpenCV and onnxruntime only (``test_onnx_runtime`` runs it in a process where
importing torch fails), so a robot image needs neither torch nor sam2. Same step as the PyTorch
predictor, in the same order, with the shared torch-free parts:

- input checks, result record, mask and boxes: ``predictor.result``;
- resize + normalisation: ``model.preprocess_np`` (PyTorch's bilinear/antialias weights);
  depth normalisation: ``model.depth``; the pseudo-mask rule: ``model.pseudo_np``;
- re-initialisation (low score, disagreement, scene cut, request, backwards stamp):
  ``predictor.reinit_policy`` (the one rule both backends run);
- bounded memory: ``predictor.slot_bank`` (the bounds of ``MemoryBank``, SAM2's frame and pointer
  selection, laid into the graphs' fixed slots).

The output branch is chosen in one place (``_saliency``), so a change of the PyTorch predictor's
output rule (e.g. a fallback to the coarse map on a confident "no object" frame) is mirrored there.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from m4sam_ros.model.depth import normalize_depth
from m4sam_ros.model.preprocess_np import depth_to_array, resize_bilinear, rgb_to_array, sigmoid
from m4sam_ros.model.pseudo_np import pseudo_mask_np
from m4sam_ros.predictor.controls import PredictorControls
from m4sam_ros.predictor.reinit_policy import ReinitPolicy
from m4sam_ros.predictor.result import (
    CONDITION_OUTPUTS,
    OUTPUTS,
    SaliencyResult,
    mask_and_boxes,
    validate_frame,
)
from m4sam_ros.predictor.slot_bank import SlotBank

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "m4sam-onnx/1"
REQUIRED_GRAPHS = ("encoder", "memory_attention", "decoder_track", "decoder_cond", "memory_encoder")
#: ``providers`` shorthands -> ONNX Runtime execution providers, best first (CPU always last)
PROVIDER_CHOICES = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    """The folder's manifest.json, checked: format and every graph file present."""
    model_dir = Path(model_dir)
    path = model_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: no manifest.json; write the folder with "
                                "`m4sam-export --checkpoint CK --out DIR`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}; "
                         "export the model again with this version's m4sam-export")
    for name in REQUIRED_GRAPHS:
        if name not in manifest.get("graphs", {}) or not (model_dir / manifest["graphs"][name]["file"]).is_file():
            raise FileNotFoundError(f"{model_dir}: graph {name}.onnx missing; export the folder again")
    return manifest


def session_options(threads: int | None) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # the exporter's harmless shape-merge notes stay out of the log
    # No memory pattern: ORT plans one block for a graph's intermediates after its first run and
    # keeps the first run's arena chunks beside it; hiera-t at 256 px peaks at 407 instead of 516 MiB,
    # CPU time within the noise (775-800 vs 747-786 ms/frame, m4sam-bench --backend onnxruntime).
    opts.enable_mem_pattern = False
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return opts


def resolve_providers(providers: str | list[str] | None) -> list[str]:
    """A shorthand (cpu, cuda, tensorrt) or a list of ONNX Runtime providers, checked against this build."""
    if providers is None:
        providers = "cpu"
    wanted = PROVIDER_CHOICES.get(providers) if isinstance(providers, str) else list(providers)
    if wanted is None:
        raise ValueError(f"providers must be one of {sorted(PROVIDER_CHOICES)} or a list, got {providers!r}")
    have = ort.get_available_providers()
    if wanted[0] not in have:
        raise ValueError(f"execution provider {wanted[0]} is not in this onnxruntime build (it has {have}); "
                         "install onnxruntime-gpu (CUDA/TensorRT; Jetson: NVIDIA's JetPack wheel) or use "
                         "providers='cpu'")
    return [p for p in wanted if p in have]


def default_threads() -> int | None:
    """ONNX Runtime's intra-op threads when none are given: OMP_NUM_THREADS if set (the node and
    the demo limit PyTorch with it), else ONNX Runtime's own choice."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


class OrtStreamingPredictor(PredictorControls):
    """Prompt-free RGB-D video salient object detection on ONNX Runtime, one frame at a time.

    ``model_dir``: a folder written by ``m4sam-export``. The keyword arguments are
    ``StreamingPredictor``'s (thresholds, ``output``, ``max_cond_frames``, ``rgb_only``);
    ``threads``: ONNX Runtime's intra-op threads (None: ``OMP_NUM_THREADS``, else its default);
    ``providers``: cpu, cuda, tensorrt or a list of execution providers (CPU as the fallback)."""

    backend = "onnxruntime"

    def __init__(self, model_dir: str | Path, *, mask_threshold: float = 0.5, output: str = "memory",
                 min_box_area: float = 0.001, reinit_score_threshold: float = 0.5, reinit_low_score_frames: int = 5,
                 reinit_iou_threshold: float = 0.2, reinit_iou_frames: int = 5, reinit_cut_threshold: float = 0.3,
                 max_cond_frames: int = 4, rgb_only: bool = False, recommended_output: str | None = None,
                 threads: int | None = None, providers: str | list[str] | None = None,
                 no_object_fallback: bool = True, fallback_confidence: float = 0.5,
                 condition_output: str = "coarse") -> None:
        if condition_output not in CONDITION_OUTPUTS:
            raise ValueError(f"condition_output must be one of {CONDITION_OUTPUTS}, got {condition_output!r}")
        if not 0.0 <= fallback_confidence <= 1.0:
            raise ValueError(f"fallback_confidence is a probability in [0, 1], got {fallback_confidence}")
        self.no_object_fallback = bool(no_object_fallback)
        self.fallback_confidence = float(fallback_confidence)
        self.condition_output = condition_output
        self.model_dir = Path(os.path.expanduser(str(model_dir)))
        self.manifest = read_manifest(self.model_dir)
        rec = recommended_output or self.manifest.get("recommended_output", "memory")
        if rec not in OUTPUTS:
            raise ValueError(f"recommended_output must be one of {OUTPUTS}, got {rec!r}")
        self.recommended_output = rec
        self.output = self._resolve_output(output)
        if max_cond_frames < 2:
            raise ValueError(f"max_cond_frames must be >= 2 (SAM2's memory attention needs it), got {max_cond_frames}")
        if rgb_only and "encoder_rgb" not in self.manifest["graphs"]:
            raise ValueError(f"{self.model_dir} has no RGB-only encoder: export with m4sam-export --rgb-only-encoder")
        self.image_size = int(self.manifest["image_size"])
        self.mask_threshold = float(mask_threshold)
        self.min_box_area = min_box_area
        self.rgb_only = rgb_only
        self.reinit = ReinitPolicy(reinit_score_threshold, reinit_low_score_frames, reinit_iou_threshold,
                                   reinit_iou_frames, reinit_cut_threshold)
        sam = self.manifest["sam"]
        self.memory = SlotBank(max_cond_frames, max(sam["num_maskmem"] - 1, sam["max_obj_ptrs_in_encoder"] - 1),
                               self.manifest["layout"], sam)
        self.providers = resolve_providers(providers)
        self.device = "cpu" if self.providers[0] == "CPUExecutionProvider" else self.providers[0]
        opts = session_options(default_threads() if threads is None else threads)
        names = list(REQUIRED_GRAPHS) + (["encoder_rgb"] if rgb_only else [])
        self.sessions = {n: ort.InferenceSession(str(self.model_dir / self.manifest["graphs"][n]["file"]),
                                                 sess_options=opts, providers=self.providers) for n in names}
        self._inputs = {n: {i.name for i in s.get_inputs()} for n, s in self.sessions.items()}
        self._warned_resize = False
        self.reset()

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, **kwargs: Any) -> OrtStreamingPredictor:
        """The predictor of an exported folder (same as the constructor; ``from_config``'s twin)."""
        return cls(model_dir, **kwargs)

    # ------------------------------------------------------------------------ inference
    def _run(self, name: str, **feeds: np.ndarray) -> list[np.ndarray]:
        wanted = self._inputs[name]
        return self.sessions[name].run(None, {k: v for k, v in feeds.items() if k in wanted})

    def step(self, rgb: np.ndarray, depth: np.ndarray | None, stamp: float | None = None) -> SaliencyResult:
        """One frame pair: ``rgb`` uint8 HxWx3 (RGB order), ``depth`` uint16 mm or float32 m."""
        t0 = time.perf_counter()
        rgb, depth, self._warned_resize = validate_frame(rgb, depth, self.rgb_only, self._warned_resize)
        if self.reinit.is_scene_cut(rgb):
            log.info("scene cut at frame %d: conditioning on the pseudo mask again", self._frame_index)
            self.reinit.request()
        image = rgb_to_array(rgb, self.image_size)
        depth01 = None
        if depth is not None and not self.rgb_only:
            depth01 = depth_to_array(normalize_depth(depth, "metric"), self.image_size)
        return self.step_array(image, depth01, rgb.shape[:2], stamp=stamp, t_start=t0)

    def step_array(self, image: np.ndarray, depth01: np.ndarray | None, orig_hw: tuple[int, int],
                   stamp: float | None = None, mask_prompt: np.ndarray | None = None,
                   t_start: float | None = None) -> SaliencyResult:
        """``StreamingPredictor.step_tensor`` in numpy: ``image`` [1,3,S,S] normalised, ``depth01``
        [1,1,S,S] or None; ``mask_prompt`` [S,S] conditions this frame on a given mask."""
        t0 = time.perf_counter() if t_start is None else t_start
        timings = {"preprocess": (time.perf_counter() - t0) * 1e3}
        if stamp is not None and self._last_stamp is not None and stamp < self._last_stamp:
            log.info("stamp went backwards (%.3f -> %.3f s): starting afresh", self._last_stamp, stamp)
            self.reset()
        self._last_stamp = stamp
        t1 = time.perf_counter()
        if self.rgb_only:
            coarse_logits = None
            s0, s1, vf, vp = self._run("encoder_rgb", image=image)
        else:
            if depth01 is None:
                raise ValueError("depth is required; only rgb_only=True runs without it")
            coarse_logits, s0, s1, vf, vp = self._run("encoder", image=image, depth=depth01)
        timings["encode"] = (time.perf_counter() - t1) * 1e3
        t2 = time.perf_counter()
        idx = self._frame_index
        condition = not self.memory.cond or self.reinit.forced or mask_prompt is not None
        confident = None
        high_res = None
        if condition:
            mask, confident = self._conditioning_mask(coarse_logits, mask_prompt)
            low_res, mem_logits, obj_ptr, score = self._run("decoder_cond", vision_feat=vf, feat_s0=s0,
                                                            feat_s1=s1, mask=mask)
            feats, pos = self._run("memory_encoder", vision_feat=vf, mask_logits=mem_logits,
                                   object_score_logits=score, binarize=np.array([True]))
            # a fresh start: the frames tracked before it belong to the track that failed
            self.memory.clear_non_cond()
            self.reinit.restart_runs()
            self.memory.store(idx, feats, pos, obj_ptr, score, cond=True)
        else:
            (pix,) = self._run("memory_attention", vision_feat=vf, vision_pos=vp, **self.memory.assemble(idx))
            low_res, high_res, obj_ptr, score = self._run("decoder_track", pix_feat=pix, feat_s0=s0, feat_s1=s1)
            feats, pos = self._run("memory_encoder", vision_feat=vf, mask_logits=high_res,
                                   object_score_logits=score, binarize=np.array([False]))
            self.memory.store(idx, feats, pos, obj_ptr, score, cond=False)
        timings["track"] = (time.perf_counter() - t2) * 1e3
        t3 = time.perf_counter()
        h, w = orig_hw
        memory_logits = resize_bilinear(low_res[0, 0], h, w)
        memory = sigmoid(memory_logits)
        object_score = float(sigmoid(score.reshape(-1)[:1])[0])
        coarse = memory if coarse_logits is None else sigmoid(resize_bilinear(coarse_logits[0, 0], h, w))
        # StreamingPredictor.step_tensor's rule, mirrored: a conditioning frame's memory map is its soft
        # coarse map; a "no object" frame (SAM2's -1024 map) falls back to a confident coarse map
        blanked = bool((np.asarray(score) <= 0).any())
        fallback = False
        if coarse_logits is not None and mask_prompt is None and (
                (condition and self.condition_output == "coarse")
                or (blanked and self.no_object_fallback and float(coarse.max()) > self.fallback_confidence)):
            fallback = blanked  # never on a conditioning frame: SAM2 scores its (never empty) prompt +10
            memory_logits = resize_bilinear(coarse_logits[0, 0], h, w)
            memory = coarse
        saliency = self._saliency(memory, coarse)
        reinit_next = False
        if not condition and coarse_logits is not None:
            reinit_next = self.reinit.update(object_score, high_res, coarse_logits)
        self.reinit.forced = reinit_next
        self._frame_index += 1
        sal, mask_np, boxes = mask_and_boxes(saliency, self.mask_threshold, self.min_box_area)
        timings["postprocess"] = (time.perf_counter() - t3) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return SaliencyResult(mask=mask_np, saliency=sal, coarse=coarse, memory=memory, boxes=boxes,
                              object_score=object_score, reinitialized=condition, frame_index=idx, stamp=stamp,
                              timings=timings, memory_logits=memory_logits, pseudo_confident=confident,
                              blanked=blanked, fallback=fallback)

    def _saliency(self, memory: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """The configured output branch (the one place to mirror a change of the PyTorch rule)."""
        if self.output == "memory":
            return memory
        if self.output == "coarse":
            return coarse
        return (memory + coarse) / np.float32(2.0)

    def _conditioning_mask(self, coarse_logits: np.ndarray | None, mask_prompt: np.ndarray | None
                           ) -> tuple[np.ndarray, bool | None]:
        if mask_prompt is not None:
            s = self.image_size
            return np.asarray(mask_prompt, np.float32).reshape(1, 1, s, s), None
        if coarse_logits is None:
            raise ValueError("RGB-only parity mode has no coarse map: give the first frame a mask_prompt")
        mask, confident = pseudo_mask_np(coarse_logits)
        if not confident:
            log.debug("frame %d: weak pseudo mask, conditioning on its relative threshold", self._frame_index)
        return mask, confident

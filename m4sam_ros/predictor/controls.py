"""What both streaming backends share besides the step itself: run-time settings, reset,
warm-up and state size. Torch-free, so the ONNX Runtime backend can use it."""

from __future__ import annotations

from typing import Any

import numpy as np

from m4sam_ros.predictor.result import OUTPUT_CHOICES

#: what ``set_thresholds`` (the node's run-time parameters) may change
RUNTIME_SETTINGS = frozenset({"mask_threshold", "min_box_area", "reinit_score_threshold", "reinit_iou_threshold",
                              "reinit_low_score_frames", "reinit_iou_frames", "reinit_cut_threshold", "output",
                              "no_object_fallback", "fallback_confidence"})


class Delegated:
    """A predictor attribute whose value lives on one of its parts (``reinit``, ``memory``)."""

    def __init__(self, part: str, name: str) -> None:
        self.part, self.name = part, name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class PredictorControls:
    """Mixed into ``StreamingPredictor`` and ``OrtStreamingPredictor``: each has ``memory`` (its
    bounded bank), ``reinit`` (a ``ReinitPolicy``), ``recommended_output``, ``rgb_only`` and ``step``."""

    # the constructor's names stay readable and writable here; the values live where they are used
    reinit_score_threshold = Delegated("reinit", "score_threshold")
    reinit_low_score_frames = Delegated("reinit", "low_score_frames")
    reinit_iou_threshold = Delegated("reinit", "iou_threshold")
    reinit_iou_frames = Delegated("reinit", "iou_frames")
    reinit_cut_threshold = Delegated("reinit", "cut_threshold")

    def _resolve_output(self, output: str) -> str:
        if output not in OUTPUT_CHOICES:
            raise ValueError(f"output must be one of {OUTPUT_CHOICES}, got {output!r}")
        return self.recommended_output if output == "auto" else output

    def set_thresholds(self, **values: Any) -> None:
        """Run-time changes (the node's parameters); unknown names are an error."""
        for name, value in values.items():
            if name not in RUNTIME_SETTINGS:
                raise ValueError(f"unknown threshold {name!r}")
            if name == "output":
                value = self._resolve_output(value)
            setattr(self, name, value)  # reinit_*: delegated to the policy (class attributes above)

    def reset(self) -> None:
        """Forget everything: the next frame starts fresh."""
        self.memory.clear()
        self.reinit.reset()
        self._frame_index = 0
        self._last_stamp: float | None = None

    def warm_up(self, height: int = 240, width: int = 320, frames: int = 2) -> None:
        """Runs throw-away frames so lazy initialisation (kernel selection, allocator, ONNX Runtime's
        memory plan) is done before the first real frame, then forgets them."""
        rgb = np.zeros((height, width, 3), np.uint8)
        depth = np.full((height, width), 1000, np.uint16)
        for _ in range(frames):
            self.step(rgb, None if self.rgb_only else depth)
        self.reset()

    def request_reinit(self) -> None:
        """Condition the next frame on its pseudo mask again (keeps older conditioning frames)."""
        self.reinit.request()

    def state_nbytes(self) -> int:
        """Bytes the predictor keeps between frames."""
        return self.memory.nbytes()

    def max_state_nbytes(self) -> int | None:
        """The most the state can ever hold: the shared positional encoding plus
        ``max_cond_frames + 15`` frames' worth (None before the first frame)."""
        return self.memory.max_nbytes()

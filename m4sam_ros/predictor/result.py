"""What a predictor step takes and returns, shared by the PyTorch and the ONNX Runtime backends.

Torch-free (numpy and OpenCV only): input validation, the result record, mask and boxes. Both
backends call these, so their inputs are refused with the same messages and their masks and boxes
come from the same code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import cv2
import numpy as np

from m4sam_ros.model.depth import resize_raw_depth

log = logging.getLogger("m4sam_ros.predictor.streaming")

OUTPUTS = ("memory", "coarse", "combined")
#: ``auto``: the checkpoint's recommended branch (``from_config``), else memory.
OUTPUT_CHOICES = ("auto", *OUTPUTS)
#: what a conditioning frame's memory map is: the soft coarse map, or SAM2's pass-through of the prompt
CONDITION_OUTPUTS = ("coarse", "prompt")


class Box(NamedTuple):
    """A salient region: pixel corners (x1, y1 exclusive) and the mean saliency inside it."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float


@dataclass
class SaliencyResult:
    """What one ``step`` returns; maps are at the input image's size."""

    mask: np.ndarray                # uint8 HxW in {0, 255}
    saliency: np.ndarray            # float32 HxW in [0, 1]: the configured output
    coarse: np.ndarray              # float32 HxW in [0, 1]: the per-frame coarse map
    memory: np.ndarray              # float32 HxW in [0, 1]: the memory branch (SAM2 decoder)
    boxes: list[Box]
    object_score: float             # sigmoid of SAM2's object score: is the object visible?
    reinitialized: bool             # this frame was (re-)conditioned on its pseudo mask
    frame_index: int                # frames since the last reset
    stamp: float | None
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    memory_logits: np.ndarray | None = None  # float32 HxW logits of the memory branch (parity checks)
    pseudo_confident: bool | None = None  # conditioning frames: did the pseudo mask pass 0.5 anywhere?
    blanked: bool = False           # SAM2's no-object gate fired (object score logit <= 0: -1024 everywhere)
    fallback: bool = False          # ... and the memory map is the confident coarse map instead


def boxes_from_mask(mask: np.ndarray, saliency: np.ndarray, min_area: int) -> list[Box]:
    """One box per 8-connected region of ``mask`` with at least ``min_area`` pixels, largest first."""
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    boxes = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < min_area:
            continue
        boxes.append((area, Box(x, y, x + w, y + h, float(saliency[labels == i].mean()))))
    return [b for _, b in sorted(boxes, key=lambda ab: -ab[0])]


def mask_and_boxes(sal: np.ndarray, mask_threshold: float, min_box_area: float
                   ) -> tuple[np.ndarray, np.ndarray, list[Box]]:
    """(saliency float32, its mask uint8 {0, 255}, the mask's boxes); ``min_box_area`` below 1 is
    a fraction of the image."""
    sal = np.asarray(sal, dtype=np.float32)
    h, w = sal.shape
    mask_np = np.where(sal > mask_threshold, 255, 0).astype(np.uint8)
    min_area = min_box_area if min_box_area >= 1 else max(1, int(min_box_area * h * w))
    return sal, mask_np, boxes_from_mask(mask_np, sal, int(min_area))


def validate_frame(rgb: Any, depth: Any, rgb_only: bool, warned_resize: bool
                   ) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Checks a frame pair and registers depth to colour's size; returns (rgb, depth, warned_resize).
    Every refusal names the problem and the fix."""
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"rgb must be a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 (0..255), got {rgb.dtype}; convert with .astype(np.uint8) "
                         "after scaling")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be HxWx3 (RGB order), got shape {rgb.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"rgb image is empty ({rgb.shape[1]}x{rgb.shape[0]})")
    if depth is None:
        if rgb_only:
            return rgb, None, warned_resize
        raise ValueError("depth is required (uint16 millimetres or float32 metres); "
                         "only rgb_only=True runs without it")
    if not isinstance(depth, np.ndarray):
        raise ValueError(f"depth must be a numpy array, got {type(depth).__name__}")
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.dtype not in (np.uint16, np.float32, np.float64):
        raise ValueError(f"depth must be uint16 millimetres (0 = invalid) or float32 metres (NaN = invalid), "
                         f"got {depth.dtype}")
    if depth.ndim != 2 or depth.size == 0:
        raise ValueError(f"depth must be a non-empty HxW array, got shape {depth.shape}")
    h, w = rgb.shape[:2]
    if depth.shape != (h, w):
        dh, dw = depth.shape
        if abs(dh / dw - h / w) > 0.01 * h / w:
            raise ValueError(f"depth is {dw}x{dh} but colour is {w}x{h}, a different aspect ratio: register "
                             "depth to colour (RealSense: align_depth.enable:=true)")
        if not warned_resize:
            log.warning("depth is %dx%d, colour %dx%d: resizing depth with nearest neighbour (said once)",
                        dw, dh, w, h)
            warned_resize = True
        depth = resize_raw_depth(depth, h, w)
    return rgb, depth, warned_resize

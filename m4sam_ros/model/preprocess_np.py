"""``preprocess`` in numpy: the same resize and normalisation without torch (ONNX Runtime backend).

``F.interpolate(mode="bilinear", align_corners=False)`` with and without ``antialias`` is a
separable linear map; here each output pixel's taps and weights follow PyTorch's own rules
(``area_pixel_compute_source_index`` and the antialiased triangle filter of
``upsample_bilinear2d_aa``), so the arrays equal ``preprocess.rgb_to_tensor`` /
``depth_to_tensor`` to float rounding and the torch and ONNX backends see the same input.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

IMAGENET_MEAN = np.array((0.485, 0.456, 0.406), np.float32)
IMAGENET_STD = np.array((0.229, 0.224, 0.225), np.float32)


@lru_cache(maxsize=64)
def bilinear_taps(size_in: int, size_out: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """(indices [out, K] int, weights [out, K] float32) of the 1-D bilinear resize PyTorch applies."""
    scale = size_in / size_out
    if not antialias:
        # float32 arithmetic, as PyTorch computes the source index for float32 input
        s32 = np.float32(size_in) / np.float32(size_out)
        src = np.maximum(s32 * (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5),
                         np.float32(0.0))
        i0 = src.astype(np.int64)
        i1 = np.minimum(i0 + 1, size_in - 1)
        l1 = (src - i0.astype(np.float32)).astype(np.float32)
        return np.stack([i0, i1], 1), np.stack([1 - l1, l1], 1).astype(np.float32)
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    rows = []
    for i in range(size_out):
        center = scale * (i + 0.5)
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), size_in)
        j = np.arange(xmin, xmax)
        w = np.maximum(0.0, 1.0 - np.abs((j - center + 0.5) * invscale))
        total = w.sum()
        rows.append((j, w / total if total != 0 else w))
    k = max(len(j) for j, _ in rows)
    idx = np.zeros((size_out, k), np.int64)
    wts = np.zeros((size_out, k), np.float32)
    for i, (j, w) in enumerate(rows):
        idx[i, :len(j)] = j
        wts[i, :len(j)] = w
    return idx, wts


def _resize_axis(x: np.ndarray, axis: int, size: int, antialias: bool) -> np.ndarray:
    if x.shape[axis] == size and not antialias:
        return x
    idx, w = bilinear_taps(x.shape[axis], size, antialias)
    taken = np.take(x, idx, axis=axis)                   # axis -> (out, K)
    shape = [1] * taken.ndim
    shape[axis], shape[axis + 1] = w.shape
    return (taken * w.reshape(shape)).sum(axis=axis + 1, dtype=np.float32)


def resize_bilinear(x: np.ndarray, height: int, width: int, antialias: bool = False) -> np.ndarray:
    """Resizes the first two axes of float32 ``x`` (HxW or HxWxC) like ``F.interpolate(bilinear,
    align_corners=False, antialias=...)``."""
    x = np.asarray(x, np.float32)
    if x.shape[:2] == (height, width):
        return x
    return _resize_axis(_resize_axis(x, 1, width, antialias), 0, height, antialias)


def resize_square(x: np.ndarray, size: int) -> np.ndarray:
    """``preprocess.resize_square``: antialiased when either side shrinks."""
    if x.shape[:2] == (size, size):
        return np.asarray(x, np.float32)
    down = x.shape[0] > size or x.shape[1] > size
    return resize_bilinear(x, size, size, antialias=down)


def rgb_to_array(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 HxWx3 RGB -> [1, 3, S, S] float32, resized and ImageNet-normalised (``rgb_to_tensor``)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB, got shape {rgb.shape}")
    x = rgb.astype(np.float32)
    if rgb.dtype == np.uint8:
        x = x / np.float32(255.0)
    x = np.clip(resize_square(x, size), 0.0, 1.0)
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def depth_to_array(depth01: np.ndarray, size: int) -> np.ndarray:
    """float HxW in [0, 1] (``depth.normalize_depth``) -> [1, 1, S, S] in [0, 1] (``depth_to_tensor``)."""
    if depth01.ndim != 2:
        raise ValueError(f"expected HxW depth, got shape {depth01.shape}")
    x = np.nan_to_num(np.asarray(depth01, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    x = np.clip(resize_square(x, size), 0.0, 1.0)
    return np.ascontiguousarray(x[None, None], dtype=np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function."""
    x = np.asarray(x, np.float32)
    with np.errstate(over="ignore"):  # exp(1024) = inf on SAM2's "no object" logits: sigmoid 0, as wanted
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)

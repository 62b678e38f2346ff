"""Saliency metrics: thin wrappers around PySODMetrics (``py_sod_metrics``), the field's reference code.

Using the package itself (not a re-implementation) keeps our numbers comparable with published
tables. Inputs follow its convention: prediction and ground truth as uint8 HxW at ground-truth
resolution; the package binarises the ground truth at > 128 and min-max normalises the prediction.
Reported: S-measure (alpha 0.5), E-measure (max / mean / adaptive over the 256-threshold curve),
F-measure with beta^2 = 0.3 (max / mean / adaptive), weighted F, MAE.
"""

from __future__ import annotations

import warnings
from typing import Any

import cv2
import numpy as np
import py_sod_metrics as psm

BETA2 = 0.3
#: metric keys in the order tables show them
KEYS = ("S", "maxE", "meanE", "adpE", "maxF", "meanF", "adpF", "wF", "MAE")
#: the columns the M4-SAM paper reports
PAPER_KEYS = ("S", "meanE", "adpF", "MAE")


def to_uint8(saliency: np.ndarray) -> np.ndarray:
    """A float map in [0, 1] (or a uint8 map, returned as is) as the uint8 image a method saves."""
    saliency = np.asarray(saliency)
    if saliency.dtype == np.uint8:
        return saliency
    if not np.issubdtype(saliency.dtype, np.floating):
        raise TypeError(f"saliency must be float in [0, 1] or uint8, got {saliency.dtype}")
    return np.round(np.clip(np.nan_to_num(saliency, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)


def resize_to(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a uint8 map to ``shape`` (H, W) when it differs (the toolkits' rule)."""
    if pred.shape[:2] == tuple(shape):
        return pred
    return cv2.resize(pred, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


class SODMetrics:
    """Accumulates every metric over frames; ``results()`` averages over frames like the toolkits."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # Fmeasure is the class the published evaluation toolkits use; its deprecation notice
            # (in favour of FmeasureV2, which gives the same numbers) is noise here
            warnings.simplefilter("ignore", UserWarning)
            self._f = psm.Fmeasure(beta=BETA2)
        self._s = psm.Smeasure(alpha=0.5)
        self._e = psm.Emeasure()
        self._wf = psm.WeightedFmeasure(beta=1.0)
        self._mae = psm.MAE()
        self.frames = 0

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Adds one frame: ``pred`` and ``gt`` uint8 HxW of the same size."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.dtype != np.uint8 or gt.dtype != np.uint8:
            raise TypeError(f"pred and gt must be uint8, got {pred.dtype} and {gt.dtype}")
        if pred.ndim != 2 or gt.ndim != 2:
            raise ValueError(f"pred and gt must be HxW, got shapes {pred.shape} and {gt.shape}")
        if pred.shape != gt.shape:
            raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ in size; resize pred to the GT first")
        for m in (self._f, self._s, self._e, self._wf, self._mae):
            m.step(pred=pred, gt=gt)
        self.frames += 1

    def results(self, curves: bool = True) -> dict[str, Any]:
        """Scalars under ``KEYS`` plus ``frames``; with ``curves`` also 256-point lists indexed by
        threshold 0..255: ``precision``, ``recall``, ``f_curve``, ``e_curve``."""
        if self.frames == 0:
            raise ValueError("no frames were scored")
        f = self._f.get_results()
        e = self._e.get_results()["em"]
        # the package orders its curves from threshold 255 down to 0; flip to 0..255
        f_curve = np.flip(np.asarray(f["fm"]["curve"], dtype=np.float64))
        e_curve = np.flip(np.asarray(e["curve"], dtype=np.float64))
        out: dict[str, Any] = {
            "S": float(self._s.get_results()["sm"]),
            "maxE": float(e_curve.max()),
            "meanE": float(e_curve.mean()),
            "adpE": float(e["adp"]),
            "maxF": float(f_curve.max()),
            "meanF": float(f_curve.mean()),
            "adpF": float(f["fm"]["adp"]),
            "wF": float(self._wf.get_results()["wfm"]),
            "MAE": float(self._mae.get_results()["mae"]),
            "frames": self.frames,
        }
        if curves:
            out["precision"] = np.flip(np.asarray(f["pr"]["p"], dtype=np.float64)).tolist()
            out["recall"] = np.flip(np.asarray(f["pr"]["r"], dtype=np.float64)).tolist()
            out["f_curve"] = f_curve.tolist()
            out["e_curve"] = e_curve.tolist()
        return out


MetricAccumulator = SODMetrics
"""The same accumulator under the name the issue brief uses."""


def score_pairs(pairs: list[tuple[np.ndarray, np.ndarray]], curves: bool = False) -> dict[str, Any]:
    """Scores (pred, gt) uint8 pairs in one go (tests, quick checks)."""
    m = SODMetrics()
    for pred, gt in pairs:
        m.step(pred, gt)
    return m.results(curves=curves)

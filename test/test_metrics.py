"""metrics: the wrappers give PySODMetrics' numbers, curves run over thresholds 0..255."""

from __future__ import annotations

import warnings

import numpy as np
import py_sod_metrics as psm
import pytest

from m4sam_ros.metrics import KEYS, SODMetrics, resize_to, score_pairs, to_uint8


def _gt(h: int = 48, w: int = 64) -> np.ndarray:
    gt = np.zeros((h, w), np.uint8)
    gt[10:30, 20:50] = 255
    return gt


def _noisy(gt: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    soft = gt.astype(np.float32) * 0.7 + rng.uniform(0, 80, gt.shape)
    soft[0, 0], soft[-1, -1] = 0, 255  # full range: PySODMetrics' min-max normalisation is then a no-op
    return soft.clip(0, 255).astype(np.uint8)


def test_perfect_prediction() -> None:
    gt = _gt()
    r = score_pairs([(gt.copy(), gt)])
    assert r["S"] == pytest.approx(1.0)
    assert r["MAE"] == 0.0
    assert r["maxF"] == pytest.approx(1.0) and r["adpF"] == pytest.approx(1.0)
    assert r["wF"] == pytest.approx(1.0)
    assert r["maxE"] == pytest.approx(1.0, abs=1e-3)


def test_equals_pysodmetrics_directly() -> None:
    gts = [_gt(), np.roll(_gt(), 7, axis=1), np.zeros((48, 64), np.uint8)]
    preds = [_noisy(g, i) for i, g in enumerate(gts)]
    ours = score_pairs(list(zip(preds, gts, strict=True)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = psm.Fmeasure()
    sm, em, wfm, mae = psm.Smeasure(), psm.Emeasure(), psm.WeightedFmeasure(), psm.MAE()
    for p, g in zip(preds, gts, strict=True):
        for m in (fm, sm, em, wfm, mae):
            m.step(pred=p, gt=g)
    f, e = fm.get_results()["fm"], em.get_results()["em"]
    ref = {"S": sm.get_results()["sm"], "maxE": e["curve"].max(), "meanE": e["curve"].mean(), "adpE": e["adp"],
           "maxF": f["curve"].max(), "meanF": f["curve"].mean(), "adpF": f["adp"],
           "wF": wfm.get_results()["wfm"], "MAE": mae.get_results()["mae"]}
    for k in KEYS:
        assert ours[k] == pytest.approx(float(ref[k]), abs=1e-12), k
    assert ours["frames"] == 3
    assert 0.0 < ours["S"] < 1.0 and ours["MAE"] > 0.0


def test_curves_are_indexed_by_threshold() -> None:
    gt = _gt()
    pred = _noisy(gt, 3)
    m = SODMetrics()
    m.step(pred, gt)
    r = m.results()
    assert len(r["f_curve"]) == len(r["precision"]) == len(r["recall"]) == len(r["e_curve"]) == 256
    fg = gt > 128
    for t in (1, 60, 128, 200, 255):
        binary = pred >= t
        tp = float((binary & fg).sum())
        prec, rec = tp / max(binary.sum(), 1), tp / fg.sum()
        f = 1.3 * prec * rec / (0.3 * prec + rec) if tp else 0.0
        assert r["f_curve"][t] == pytest.approx(f, abs=1e-9), t
        assert r["precision"][t] == pytest.approx(prec, abs=1e-9)
        assert r["recall"][t] == pytest.approx(rec, abs=1e-9)
    assert r["recall"][0] == pytest.approx(1.0)  # everything >= 0 is foreground


def test_input_checks_and_conversions() -> None:
    m = SODMetrics()
    with pytest.raises(ValueError, match="no frames"):
        m.results()
    with pytest.raises(TypeError, match="uint8"):
        m.step(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="differ in size"):
        m.step(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    assert to_uint8(np.array([[0.0, 0.5, 1.0, 2.0, np.nan]], np.float32)).tolist() == [[0, 128, 255, 255, 0]]
    assert resize_to(np.zeros((10, 20), np.uint8), (30, 40)).shape == (30, 40)


def test_metric_accumulator_alias_matches_score_pairs() -> None:
    from m4sam_ros.metrics import MetricAccumulator
    acc = MetricAccumulator()
    gt = _gt()
    pred = _noisy(gt, 3)
    acc.step(pred, gt)
    res = acc.results()
    ref = score_pairs([(pred, gt)])
    assert res["S"] == ref["S"] and res["MAE"] == ref["MAE"]

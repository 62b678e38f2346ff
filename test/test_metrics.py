"""metrics: the wrappers give PySODMetrics' numbers, curves run over thresholds 0..255."""

from __future__ import annotations

import warnings

import numpy as np
import py_sod_metrics as psm
import pytest

from m4sam_ros.evaluation.metrics import KEYS, SODMetrics, resize_to, score_pairs, to_uint8


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


def test_metric_accumulator_against_hand_computed_values() -> None:
    """MetricAccumulator's numbers computed by hand here (PySODMetrics' documented rules: GT > 128,
    prediction min-max normalised per frame, adaptive threshold twice the mean, beta^2 0.3, and
    the S-measure's empty/full-GT cases), averaged over frames."""
    from m4sam_ros.evaluation.metrics import MetricAccumulator

    acc = MetricAccumulator()
    gt1 = np.zeros((10, 10), np.uint8)
    gt1[2:6, 3:8] = 255                           # 20 foreground pixels
    pred1 = np.full((10, 10), 40, np.uint8)       # range 40..200: normalised to 0..1
    pred1[2:6, 3:8] = 200
    pred1[8, 0:4] = 120                           # 4 false-positive pixels at 0.5
    pred1[2, 3] = 120                             # one foreground pixel at 0.5
    gt2 = np.zeros((10, 10), np.uint8)            # empty GT: S = 1 - mean(pred)
    pred2 = np.zeros((10, 10), np.uint8)
    pred2[0, :5] = 255                            # 5 pixels at 1.0
    acc.step(pred1, gt1)
    acc.step(pred2, gt2)
    r = acc.results(curves=False)
    assert r["frames"] == 2
    # frame 1, normalised: 19 fg at 1.0, 1 fg at 0.5, 4 bg at 0.5, the rest 0
    mae1 = (1 * 0.5 + 4 * 0.5) / 100
    mae2 = 5 / 100
    assert r["MAE"] == pytest.approx((mae1 + mae2) / 2, abs=1e-12)
    # adaptive F, frame 1: threshold 2 * mean = 2 * (19 + 2.5) / 100 = 0.43 -> the 24 pixels >= 0.5
    p1, r1 = 20 / 24, 20 / 20
    adp1 = 1.3 * p1 * r1 / (0.3 * p1 + r1)
    # frame 2: empty GT -> no true positive -> F = 0
    assert r["adpF"] == pytest.approx((adp1 + 0.0) / 2, abs=1e-12)
    # S-measure, frame 2 (empty GT): 1 - mean(pred) = 0.95; frame 1 via PySODMetrics' structure terms
    sm1 = psm.Smeasure()
    sm1.step(pred=pred1, gt=gt1)
    assert r["S"] == pytest.approx((float(sm1.get_results()["sm"]) + 0.95) / 2, abs=1e-12)
    # a full GT frame alone: S = mean(pred)
    full = MetricAccumulator()
    pred3 = np.zeros((4, 4), np.uint8)
    pred3[:, :1] = 255
    full.step(pred3, np.full((4, 4), 255, np.uint8))
    assert full.results(curves=False)["S"] == pytest.approx(0.25, abs=1e-12)

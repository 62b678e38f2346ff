"""Predictions at another size than the ground truth are resized bilinearly (the evaluation
toolkits' rule), not by nearest neighbour, before they are quantised, saved and scored."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import py_sod_metrics as psm
import pytest

from m4sam_ros.data.datasets import open_videos
from m4sam_ros.data.synth import world as synth
from m4sam_ros.evaluation.evaluate import evaluate_maps
from m4sam_ros.evaluation.evaluate import main as eval_main
from m4sam_ros.evaluation.metrics import resize_to


def test_resize_to_is_bilinear_with_known_values() -> None:
    pred = np.array([[0, 255]], np.uint8)
    # half-pixel centres: output x samples input x' = (x + 0.5) / 2 - 0.5 -> -0.25, 0.25, 0.75, 1.25
    assert resize_to(pred, (1, 4)).tolist() == [[0, 64, 191, 255]]
    pred = np.array([[0, 100], [200, 40]], np.uint8)
    np.testing.assert_array_equal(resize_to(pred, (4, 4))[1:3, 1:3], [[59, 76], [126, 79]])
    same = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert resize_to(same, (3, 4)) is same


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resizedata")
    synth.write_vidsod_layout(synth.generate_video(610, 3, 80, 60), root / "test" / "v0")
    return root


def _soft_small(gt: np.ndarray) -> np.ndarray:
    """A soft half-size prediction: a blurred, shifted copy of the GT at 40x30."""
    soft = cv2.GaussianBlur(np.roll(gt, 3, axis=1), (0, 0), 4)
    return cv2.resize(soft, (gt.shape[1] // 2, gt.shape[0] // 2), interpolation=cv2.INTER_AREA)


def test_pred_dir_at_half_size_is_scored_bilinear(data_root: Path, tmp_path: Path) -> None:
    preds = tmp_path / "small"
    bilinear, nearest = psm.MAE(), psm.MAE()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = psm.Fmeasure()
    sm = psm.Smeasure()
    for gt_path in sorted(data_root.glob("test/*/gt/*.png")):
        gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        small = _soft_small(gt)
        assert small.shape != gt.shape
        (preds / "v0").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(preds / "v0" / gt_path.name), small)
        up = cv2.resize(small, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
        for m in (bilinear, fm, sm):
            m.step(pred=up, gt=gt)
        nearest.step(pred=cv2.resize(small, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST), gt=gt)
    out = tmp_path / "out"
    assert eval_main(["--pred-dir", str(preds), "--dataset", "synthetic", "--data-root", str(data_root),
                      "--out", str(out), "--quiet"]) == 0
    r = json.loads((out / "metrics.json").read_text())["small"]["synthetic"]
    mae_lin, mae_near = bilinear.get_results()["mae"], nearest.get_results()["mae"]
    assert abs(mae_lin - mae_near) > 1e-4  # the two rules are told apart by this data
    assert r["MAE"] == pytest.approx(mae_lin, abs=1e-12)
    assert r["S"] == pytest.approx(sm.get_results()["sm"], abs=1e-12)
    assert r["adpF"] == pytest.approx(fm.get_results()["fm"]["adp"], abs=1e-12)


def test_saved_maps_are_bilinear_resizes(data_root: Path, tmp_path: Path) -> None:
    """Float maps from a model at its own resolution: the saved PNG is the bilinear resize of the
    quantised map, at GT size."""
    videos = open_videos("synthetic", data_root, "test")
    rng = np.random.default_rng(0)
    made: dict[tuple[str, int], np.ndarray] = {}

    def maps(video):
        for i in range(len(video)):
            m = rng.random((15, 20)).astype(np.float32)
            made[(video.name, i)] = m
            yield i, {"model": m}

    save = tmp_path / "saved"
    evaluate_maps(videos, maps, ["model"], {"model": save}, progress=False)
    for (name, i), m in made.items():
        frame = videos[0][i]
        saved = cv2.imread(str(save / name / f"{frame.stem}.png"), cv2.IMREAD_GRAYSCALE)
        q = np.round(m * 255).astype(np.uint8)
        expected = cv2.resize(q, (frame.gt.shape[1], frame.gt.shape[0]), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(saved, expected)

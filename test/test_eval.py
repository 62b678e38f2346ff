"""m4sam-eval: scores equal PySODMetrics on the saved PNGs; perfect maps score S = 1, MAE = 0."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import py_sod_metrics as psm
import pytest

from m4sam_ros.data.synth import world as synth
from m4sam_ros.evaluation.evaluate import depth_baseline
from m4sam_ros.evaluation.evaluate import main as eval_main
from m4sam_ros.evaluation.metrics import KEYS


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaldata")
    for i in range(2):
        synth.write_vidsod_layout(synth.generate_video(500 + i, 5, 80, 60), root / "test" / f"v{i}")
    return root


def _direct(pred_root: Path, data_root: Path) -> dict[str, float]:
    """PySODMetrics straight on the saved PNGs, no code of ours in between."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = psm.Fmeasure()
    sm, em, wfm, mae = psm.Smeasure(), psm.Emeasure(), psm.WeightedFmeasure(), psm.MAE()
    n = 0
    for gt_path in sorted(data_root.glob("test/*/gt/*.png")):
        pred = cv2.imread(str(pred_root / gt_path.parent.parent.name / gt_path.name), cv2.IMREAD_GRAYSCALE)
        gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        assert pred is not None and pred.shape == gt.shape
        for m in (fm, sm, em, wfm, mae):
            m.step(pred=pred, gt=gt)
        n += 1
    f, e = fm.get_results()["fm"], em.get_results()["em"]
    return {"S": sm.get_results()["sm"], "maxE": e["curve"].max(), "meanE": e["curve"].mean(), "adpE": e["adp"],
            "maxF": f["curve"].max(), "meanF": f["curve"].mean(), "adpF": f["adp"],
            "wF": wfm.get_results()["wfm"], "MAE": mae.get_results()["mae"], "frames": n}


def _assert_equal(got: dict, ref: dict) -> None:
    assert got["frames"] == ref["frames"]
    for k in KEYS:
        assert got[k] == pytest.approx(float(ref[k]), abs=1e-9), k


def test_pred_dir_perfect_prediction(data_root: Path, tmp_path: Path) -> None:
    preds = tmp_path / "perfect"
    for gt_dir in data_root.glob("test/*/gt"):
        shutil.copytree(gt_dir, preds / "synthetic" / gt_dir.parent.name)
    out = tmp_path / "out"
    assert eval_main(["--pred-dir", str(preds), "--dataset", "synthetic", "--data-root", str(data_root),
                      "--out", str(out), "--quiet"]) == 0
    r = json.loads((out / "metrics.json").read_text())["perfect"]["synthetic"]
    assert r["S"] == pytest.approx(1.0) and r["MAE"] == 0.0 and r["frames"] == 10
    assert r["maxF"] == pytest.approx(1.0)
    md = (out / "metrics.md").read_text()
    assert "synthetic S" in md and "| perfect |" in md
    assert (out / "plots" / "pr_synthetic.png").stat().st_size > 0
    assert (out / "plots" / "f_threshold_synthetic.png").stat().st_size > 0


def test_pred_dir_scores_equal_pysodmetrics_and_tables_accumulate(data_root: Path, tmp_path: Path) -> None:
    preds = tmp_path / "blurry"  # <video>/<stem>.png directly (no dataset level), smaller than the GT
    for gt_path in data_root.glob("test/*/gt/*.png"):
        gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        soft = cv2.GaussianBlur(gt, (9, 9), 3)
        (preds / gt_path.parent.parent.name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(preds / gt_path.parent.parent.name / gt_path.name), soft)
    out = tmp_path / "out"
    common = ["--dataset", "synthetic", "--data-root", str(data_root), "--out", str(out), "--quiet"]
    assert eval_main(["--pred-dir", str(preds), *common]) == 0
    assert eval_main(["--baseline", "depth", *common]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"blurry", "depth-baseline"}
    _assert_equal(metrics["blurry"]["synthetic"], _direct(preds, data_root))
    # the baseline's maps are saved as OUT/<dataset>/<video>/<stem>.png and reproduce its scores
    _assert_equal(metrics["depth-baseline"]["synthetic"], _direct(out / "synthetic", data_root))
    assert metrics["blurry"]["synthetic"]["S"] > metrics["depth-baseline"]["synthetic"]["S"]
    md = (out / "metrics.md").read_text()
    assert "| blurry |" in md and "| depth-baseline |" in md


def test_clear_errors(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preds = tmp_path / "partial" / "v0"
    preds.mkdir(parents=True)
    cv2.imwrite(str(preds / "00000.png"), np.zeros((60, 80), np.uint8))
    common = ["--dataset", "synthetic", "--out", str(tmp_path / "o"), "--quiet"]
    assert eval_main(["--pred-dir", str(preds.parent), "--data-root", str(data_root), *common]) == 2
    assert "missing prediction for v0/00001" in capsys.readouterr().err
    assert eval_main(["--baseline", "depth", "--data-root", str(tmp_path / "nowhere"), *common]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty" / "test").mkdir(parents=True)
    assert eval_main(["--baseline", "depth", "--data-root", str(tmp_path / "empty"), *common]) == 2
    assert "holds no videos" in capsys.readouterr().err
    assert eval_main(["--checkpoint", str(tmp_path / "none.pt"), "--data-root", str(data_root), *common]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_depth_baseline_keeps_the_largest_near_region() -> None:
    depth = np.full((40, 60), 0.2, np.float32)
    depth[5:25, 5:30] = 0.9     # large near region
    depth[30:35, 45:55] = 0.95  # small, nearer region
    depth[0:3, 50:60] = 0.0     # invalid pixels are never salient
    mask = depth_baseline(depth)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert (mask[5:25, 5:30] == 255).all() and mask.sum() == 255 * 20 * 25
    assert not depth_baseline(np.zeros((8, 8), np.float32)).any()



@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight demo model at 64 px in M4-SAM's checkpoint format (what m4sam-train writes)."""
    import torch

    from m4sam_ros.model import build_m4sam, save_m4sam_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_m4sam_checkpoint(build_m4sam("m4sam_demo", image_size=64), path)
    return path


def test_checkpoint_eval_scores_equal_pysodmetrics_on_saved_pngs(data_root: Path, checkpoint: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert eval_main(["--checkpoint", str(checkpoint), "--dataset", "synthetic", "--data-root", str(data_root),
                      "--out", str(out), "--output", "all", "--clip-len", "3", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"m4sam-coarse", "m4sam-memory", "m4sam-combined"}
    for branch in ("coarse", "memory", "combined"):
        saved = out / branch / "synthetic"
        assert sorted(p.name for p in saved.iterdir()) == ["v0", "v1"]
        assert cv2.imread(str(saved / "v0" / "00000.png"), cv2.IMREAD_UNCHANGED).shape == (60, 80)
        _assert_equal(metrics[f"m4sam-{branch}"]["synthetic"], _direct(saved, data_root))
        assert metrics[f"m4sam-{branch}"]["synthetic"]["clip_len"] == 3
    # the branches are different maps, and combined is their mean
    c = cv2.imread(str(out / "coarse/synthetic/v1/00004.png"), cv2.IMREAD_GRAYSCALE).astype(int)
    m = cv2.imread(str(out / "memory/synthetic/v1/00004.png"), cv2.IMREAD_GRAYSCALE).astype(int)
    b = cv2.imread(str(out / "combined/synthetic/v1/00004.png"), cv2.IMREAD_GRAYSCALE).astype(int)
    assert (c != m).any() and np.abs(b - (c + m) / 2).max() <= 1.0
    # one branch alone: saved as OUT/<dataset>/<video>/<stem>.png, the same maps as in the "all" run
    single = tmp_path / "single"
    assert eval_main(["--checkpoint", str(checkpoint), "--dataset", "synthetic", "--data-root", str(data_root),
                      "--out", str(single), "--output", "memory", "--clip-len", "3", "--quiet"]) == 0
    assert set(json.loads((single / "metrics.json").read_text())) == {"m4sam-memory"}
    for png in (out / "memory" / "synthetic").glob("*/*.png"):
        again = cv2.imread(str(single / "synthetic" / png.parent.name / png.name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(again, cv2.imread(str(png), cv2.IMREAD_UNCHANGED)), png


def test_checkpoint_of_another_config_is_refused(data_root: Path, checkpoint: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main(["--checkpoint", str(checkpoint), "--config", "m4sam_hiera_t", "--image-size", "64",
                      "--dataset", "synthetic", "--data-root", str(data_root), "--out", str(tmp_path / "o"),
                      "--quiet"]) == 2
    assert "another model config" in capsys.readouterr().err


def test_relative_depth_datasets_go_through_the_same_predictor(data_root: Path, tmp_path: Path) -> None:
    """The ViDSOD layout read as 'vidsod' (relative depth) instead of 'synthetic' (metric depth): the
    same frames, the depth normalised the other way, so the maps differ; scores still match PNGs."""
    import torch

    from m4sam_ros.model import build_m4sam, save_m4sam_checkpoint

    torch.manual_seed(1)
    model = build_m4sam("m4sam_demo", image_size=64)
    with torch.no_grad():  # the fusion starts as an exact no-op: give depth a say
        for p in model.fusion.parameters():
            p.normal_(0.0, 0.5)
    checkpoint = tmp_path / "depth_matters.pt"
    save_m4sam_checkpoint(model, checkpoint)
    outs = {}
    for dataset in ("synthetic", "vidsod"):
        outs[dataset] = tmp_path / dataset
        assert eval_main(["--checkpoint", str(checkpoint), "--dataset", dataset, "--data-root", str(data_root),
                          "--out", str(outs[dataset]), "--output", "coarse", "--quiet"]) == 0
    rel = json.loads((outs["vidsod"] / "metrics.json").read_text())["m4sam-coarse"]["vidsod"]
    _assert_equal(rel, _direct(outs["vidsod"] / "vidsod", data_root))
    a = cv2.imread(str(outs["synthetic"] / "synthetic/v0/00002.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(outs["vidsod"] / "vidsod/v0/00002.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_protocols_paper_and_streaming(data_root: Path, checkpoint: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """paper: clips of N annotated frames, reset per clip, heuristics off; streaming: every frame,
    one reset per video, the predictor's (the node's) defaults. Both named in metrics.md."""
    from m4sam_ros.data.datasets import open_videos
    from m4sam_ros.evaluation.evaluate import PredictorRunner
    from m4sam_ros.predictor.streaming import StreamingPredictor

    sparse = tmp_path / "rdvs"
    video = synth.generate_video(7, 12, 64, 48)
    d = sparse / "test" / "v"
    for sub in ("rgb", "Depth", "ground-truth"):
        (d / sub).mkdir(parents=True)
    annotated = [0, 3, 4, 8, 10, 11]
    for i in range(12):
        cv2.imwrite(str(d / "rgb" / f"{i}.png"), video.rgb[i][..., ::-1])
        cv2.imwrite(str(d / "Depth" / f"{i}.png"), (video.depth[i] // 20).clip(1, 255).astype(np.uint8))
        if i in annotated:
            cv2.imwrite(str(d / "ground-truth" / f"{i}.png"), video.gt[i])
    v = open_videos("rdvs", sparse, "test")[0]
    paper = PredictorRunner(checkpoint, protocol="paper")
    assert paper.schedule(v, 4) == [(0, True), (3, False), (4, False), (8, False), (10, True), (11, False)]
    assert paper.predictor.reinit_low_score_frames >= 10**9 and paper.predictor.reinit_iou_frames >= 10**9
    assert paper.predictor.output == "memory"
    stream = PredictorRunner(checkpoint, protocol="streaming")
    assert stream.schedule(v, 4) == [(i, i == 0) for i in range(12)]
    defaults = StreamingPredictor(stream.predictor.model)
    for attr in ("reinit_low_score_frames", "reinit_iou_frames", "reinit_cut_threshold", "reinit_score_threshold"):
        assert getattr(stream.predictor, attr) == getattr(defaults, attr), attr
    # the paper protocol's maps of a clip do not depend on frames outside it
    got = dict(paper.run(v, 4))
    assert sorted(got) == annotated
    out = tmp_path / "out"
    for protocol in ("paper", "streaming"):
        assert eval_main(["--checkpoint", str(checkpoint), "--dataset", "rdvs", "--data-root", str(sparse),
                          "--out", str(out), "--protocol", protocol, "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["m4sam-memory"]["rdvs"]["protocol"] == "paper"
    assert metrics["m4sam-memory"]["rdvs"]["clip_len"] == 4 and metrics["m4sam-memory"]["rdvs"]["frames"] == 6
    assert metrics["m4sam-memory-streaming"]["rdvs"]["protocol"] == "streaming"
    md = (out / "metrics.md").read_text()
    assert "default: paper" in md and "`paper` (default)" in md and "`streaming`" in md
    assert "- m4sam-memory-streaming on rdvs: `streaming`" in md
    assert eval_main(["--checkpoint", str(checkpoint), "--dataset", "rdvs", "--data-root", str(sparse),
                      "--out", str(out), "--protocol", "streaming", "--clip-len", "4", "--quiet"]) == 2
    assert "--clip-len is for --protocol paper" in capsys.readouterr().err


def test_onnxruntime_backend_scores_as_pytorch(data_root: Path, checkpoint: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """m4sam-export of the checkpoint, then m4sam-eval --backend onnxruntime: every metric of every
    branch within 0.01 of the PyTorch run (the maps agree to ~1e-6, so they round to the same PNGs)."""
    from m4sam_ros.export.onnx_export import main as export_main

    model_dir = tmp_path / "onnx"
    assert export_main(["--checkpoint", str(checkpoint), "--out", str(model_dir)]) == 0
    runs = {}
    for backend, src in (("torch", ["--checkpoint", str(checkpoint)]), ("onnxruntime", ["--model-dir", str(model_dir)])):
        out = tmp_path / backend
        assert eval_main([*src, "--backend", backend, "--dataset", "synthetic", "--data-root", str(data_root),
                          "--out", str(out), "--output", "all", "--clip-len", "3", "--quiet"]) == 0
        runs[backend] = json.loads((out / "metrics.json").read_text())
    for method, per in runs["torch"].items():
        got = runs["onnxruntime"][method]["synthetic"]
        assert got["backend"] == "onnxruntime" and per["synthetic"]["backend"] == "torch"
        for k in KEYS:
            assert got[k] == pytest.approx(per["synthetic"][k], abs=0.01), (method, k)
    common = ["--dataset", "synthetic", "--data-root", str(data_root), "--out", str(tmp_path / "x"), "--quiet"]
    assert eval_main(["--model-dir", str(tmp_path / "missing"), *common]) == 2
    assert "m4sam-export" in capsys.readouterr().err
    assert eval_main(["--checkpoint", str(checkpoint), "--backend", "onnxruntime", *common]) == 2
    assert "--model-dir" in capsys.readouterr().err

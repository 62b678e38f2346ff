"""m4sam-heldout at a tiny size: every set written, both baselines scored as m4sam-eval scores them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from m4sam_ros.data.datasets import open_videos
from m4sam_ros.evaluation.heldout import SETS, main, rgb_baseline
from m4sam_ros.evaluation.metrics import score_pairs


def test_rgb_baseline_finds_the_odd_colour() -> None:
    rgb = np.full((60, 80, 3), (90, 120, 90), np.uint8)
    rgb[20:40, 30:50] = (230, 40, 40)
    out = rgb_baseline(rgb)
    assert out.dtype == np.uint8 and (out[22:38, 32:48] == 255).all() and (out[:15] == 0).all()


def test_heldout_sets_and_table(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--baselines-only", "--videos", "1", "--frames", "3", "--width", "64",
                 "--height", "48", "--quiet"]) == 0
    data = json.loads((tmp_path / "heldout.json").read_text())
    assert list(data["results"]) == list(SETS)
    md = (tmp_path / "heldout.md").read_text()
    assert md.count("\n") == len(SETS) + 2 and "| shapes | cross, crescent" in md and "pending" in md
    # the baseline's figures are the metrics of its masks (scored directly here)
    from m4sam_ros.evaluation.evaluate import depth_baseline
    from m4sam_ros.model.depth import normalize_depth

    video = open_videos("synthetic", tmp_path / "sets" / "layouts", "test")[0]
    pairs = [(depth_baseline(normalize_depth(f.depth, "metric")), f.gt) for f in video]
    direct = score_pairs(pairs)
    got = data["results"]["layouts"]["depth-only"]
    assert abs(got["S"] - direct["S"]) < 1e-9 and abs(got["MAE"] - direct["MAE"]) < 1e-9


def test_model_branch_scored_as_the_predictor_gives_it(tmp_path: Path) -> None:
    """The bundled model on one tiny set: the table's model column is the chosen branch's score,
    computed from the very maps the streaming predictor returns."""
    from m4sam_ros.evaluation.evaluate import PredictorRunner
    from m4sam_ros.evaluation.heldout import DEMO_MODEL

    assert main(["--out", str(tmp_path), "--sets", "shapes", "--videos", "1", "--frames", "4", "--width", "64",
                 "--height", "48", "--branch", "coarse", "--quiet"]) == 0
    res = json.loads((tmp_path / "heldout.json").read_text())["results"]["shapes"]
    video = open_videos("synthetic", tmp_path / "sets" / "shapes", "test")[0]
    runner = PredictorRunner(DEMO_MODEL)
    maps = dict(runner.run(video, 16))
    from m4sam_ros.evaluation.metrics import resize_to, to_uint8

    for branch in ("coarse", "memory"):
        direct = score_pairs([(resize_to(to_uint8(maps[i][branch]), f.gt.shape[:2]), f.gt)
                              for i, f in enumerate(video)])
        assert abs(res[f"model:{branch}"]["S"] - direct["S"]) < 1e-9
    assert res["model"]["S"] == res["model:coarse"]["S"] != res["model:memory"]["S"]
    md = (tmp_path / "heldout.md").read_text()
    assert "(coarse) S | MAE | memory S | combined S |" in md and "pending" not in md


def test_auto_branch_is_the_checkpoints_recommendation(tmp_path: Path) -> None:
    from m4sam_ros.evaluation.heldout import DEMO_MODEL
    from m4sam_ros.model.checkpoint import recommended_output

    assert main(["--out", str(tmp_path), "--sets", "layouts", "--videos", "1", "--frames", "3", "--width", "64",
                 "--height", "48", "--quiet"]) == 0
    data = json.loads((tmp_path / "heldout.json").read_text())
    res, branch = data["results"]["layouts"], recommended_output(DEMO_MODEL)
    assert data["meta"]["branch"] == res["model"]["branch"] == branch
    assert res["model"]["S"] == res[f"model:{branch}"]["S"]
    assert f"({branch}) S" in (tmp_path / "heldout.md").read_text()


def test_resolution_ceiling_is_the_ground_truth_through_the_grid(tmp_path: Path) -> None:
    from m4sam_ros.evaluation.heldout import gt_through_grid

    assert main(["--out", str(tmp_path), "--baselines-only", "--sets", "shapes", "--videos", "1", "--frames", "3",
                 "--width", "64", "--height", "48", "--ceiling", "8", "--quiet"]) == 0
    got = json.loads((tmp_path / "heldout.json").read_text())["results"]["shapes"]["gt@8"]["S"]
    video = open_videos("synthetic", tmp_path / "sets" / "shapes", "test")[0]
    direct = score_pairs([((gt_through_grid(f.gt, 8) * 255 + 0.5).astype(np.uint8), f.gt) for f in video])
    assert abs(got - direct["S"]) < 1e-9 and got < 0.98  # an 8x8 grid loses the shape's detail
    fine = [gt_through_grid(f.gt, 512) for f in video]
    assert all(np.abs(m * 255 - f.gt).max() < 128 for m, f in zip(fine, video, strict=True))  # a fine grid keeps it

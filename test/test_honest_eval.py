"""Issue 20 (part A): honest loading and evaluation.

- One SAM2 weights rule for every entry point: a checkpoint trained on SAM2's weights refuses to
  build without them, with ONE message (build_m4sam, StreamingPredictor.from_config, m4sam-eval,
  m4sam-bag, m4sam-bench, the node's loader); another SHA-256 warns; --export-full loads alone.
  Rules out: an entry point that builds a random encoder silently, or words the refusal its own way.
- A checkpoint lacking a trained weight does not load (issue 22 item 3). Rules out: strict=False
  loading that leaves the missing layer random.
- The paper protocol cuts clips as the authors' clipper does (annotated frames only, in order,
  non-overlapping, length 4, remainder a shorter last clip). Rules out: sliding windows, cutting by
  frame index, dropping or padding the remainder, the old 16-frame clips.
- Clip-start frames are scored from the soft coarse map, not the binarised prompt.
- A no-object frame is not all black when the coarse map is confident; eval reports the shares.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from m4sam_ros.data.synth import world as synth
from m4sam_ros.evaluation.evaluate import PredictorRunner, paper_clips
from m4sam_ros.evaluation.evaluate import main as eval_main
from m4sam_ros.model import build_m4sam, load_config, save_m4sam_checkpoint
from m4sam_ros.model.checkpoint import (
    CheckpointError,
    MissingSAM2WeightsError,
    SAM2WeightsMismatchWarning,
    missing_sam2_message,
    sam2_fingerprint,
    sam2_requirement,
    trained_state_dict,
)
from m4sam_ros.predictor import StreamingPredictor

DEMO = Path(__file__).resolve().parents[1] / "m4sam_ros" / "assets" / "demo_model.pt"


def _peft_config() -> dict:
    """The demo's tiny SAM2 with a frozen image encoder: a checkpoint of it holds only what trains."""
    return dict(load_config("m4sam_demo", image_size=64), train_base_in_full=False, train_sam_modules=False,
                train_memory_branch=True)


@pytest.fixture(scope="module")
def peft(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A SAM2 file (official format), a checkpoint trained on it, the original model and its record."""
    d = tmp_path_factory.mktemp("peft")
    torch.manual_seed(0)
    base = build_m4sam(_peft_config())
    sam2 = d / "sam2.1_tiny_demo.pt"
    torch.save({"model": base.sam.state_dict()}, sam2)
    model = build_m4sam(_peft_config(), sam2_checkpoint=sam2)
    with torch.no_grad():  # trained parts that differ from a fresh build
        for k, v in trained_state_dict(model).items():
            if v.is_floating_point():
                model.state_dict()[k].add_(0.01 * torch.randn_like(v))
    ckpt = d / "peft.pt"
    save_m4sam_checkpoint(model, ckpt)
    other = d / "other_sam2.pt"
    torch.manual_seed(5)
    torch.save({"model": build_m4sam(_peft_config()).sam.state_dict()}, other)
    return {"dir": d, "sam2": sam2, "ckpt": ckpt, "model": model, "other": other}


def _coarse(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(3)
    x, dep = torch.randn(1, 3, 64, 64), torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        return model.eval().encode(x, dep).coarse_logits


def test_checkpoint_records_the_sam2_file_it_was_trained_on(peft: dict) -> None:
    ckpt = torch.load(peft["ckpt"], weights_only=True)
    assert ckpt["sam2_weights"] == sam2_fingerprint(peft["sam2"])
    import hashlib

    assert ckpt["sam2_weights"]["sha256"] == hashlib.sha256(peft["sam2"].read_bytes()).hexdigest()
    assert ckpt["sam2_weights"]["size"] == peft["sam2"].stat().st_size
    assert not any(k.startswith("sam.image_encoder.") for k in ckpt["state_dict"])  # trained parts only


def test_every_entry_point_refuses_missing_sam2_weights_with_one_message(peft: dict, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from m4sam_ros.apps.bag import main as bag_main
    from m4sam_ros.benchmarks.bench import main as bench_main
    from m4sam_ros.ros.model_loader import resolve_weights
    from m4sam_ros.ros.params import ConfigurationError

    ckpt = peft["ckpt"]
    message = missing_sam2_message(ckpt, torch.load(ckpt, weights_only=True)["sam2_weights"])
    assert "--sam2-checkpoint" in message and "sam2_checkpoint" in message and "sam2.1_tiny_demo.pt" in message
    with pytest.raises(MissingSAM2WeightsError) as e:
        build_m4sam(_peft_config(), m4sam_checkpoint=ckpt)
    assert str(e.value) == message
    with pytest.raises(MissingSAM2WeightsError) as e:
        StreamingPredictor.from_config(None, m4sam_checkpoint=ckpt)
    assert str(e.value) == message
    data = tmp_path / "data"
    synth.write_vidsod_layout(synth.generate_video(3, 3, 64, 48), data / "test" / "v0")
    assert eval_main(["--checkpoint", str(ckpt), "--dataset", "synthetic", "--data-root", str(data),
                      "--out", str(tmp_path / "eval"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    bag = synth.write_bag(synth.generate_video(3, 2, 64, 48), tmp_path / "in")
    assert bag_main(["--input", str(bag), "--output", str(tmp_path / "out"), "--checkpoint", str(ckpt),
                     "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert bench_main(["--checkpoint", str(ckpt), "--size", "64", "--frames", "8", "--warmup", "1"]) == 2
    assert message in capsys.readouterr().err
    params = {"model_config": "m4sam_demo", "checkpoint": str(ckpt), "sam2_checkpoint": ""}
    with pytest.raises(ConfigurationError) as e:
        resolve_weights(params.__getitem__)
    assert "'sam2_checkpoint'" in str(e.value) and message in str(e.value)
    # with the file: it loads, and is the model that was saved (the same coarse logits)
    assert resolve_weights(dict(params, sam2_checkpoint=str(peft["sam2"])).__getitem__)[2] == str(peft["sam2"])
    rebuilt = build_m4sam(_peft_config(), sam2_checkpoint=peft["sam2"], m4sam_checkpoint=ckpt)
    torch.testing.assert_close(_coarse(rebuilt), _coarse(peft["model"]), rtol=0, atol=0)


def test_another_sam2_file_warns_loudly_the_right_one_does_not(peft: dict) -> None:
    with pytest.warns(SAM2WeightsMismatchWarning, match="SAM2 WEIGHTS MISMATCH.*sam2.1_tiny_demo.pt.*other_sam2.pt"):
        build_m4sam(_peft_config(), sam2_checkpoint=peft["other"], m4sam_checkpoint=peft["ckpt"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAM2WeightsMismatchWarning)
        build_m4sam(_peft_config(), sam2_checkpoint=peft["sam2"], m4sam_checkpoint=peft["ckpt"])


def test_export_full_loads_without_the_flag_and_equals_the_original(peft: dict, tmp_path: Path) -> None:
    from m4sam_ros.training.train import main as train_main

    full = tmp_path / "full.pt"
    assert train_main(["--export-full", str(full), "--init", str(peft["ckpt"])]) == 2  # the rule applies here too
    assert not full.exists()
    assert train_main(["--export-full", str(full), "--init", str(peft["ckpt"]),
                       "--sam2-checkpoint", str(peft["sam2"])]) == 0
    ckpt = torch.load(full, weights_only=True)
    assert ckpt["sam2_weights"] is None and sam2_requirement(ckpt) is None
    assert any(k.startswith("sam.image_encoder.trunk.") for k in ckpt["state_dict"])
    assert ckpt["extra"]["exported_from"]["sam2_weights"]["sha256"] == sam2_fingerprint(peft["sam2"])["sha256"]
    torch.manual_seed(9)  # another random init underneath: every weight must come from the file
    model = build_m4sam(_peft_config(), m4sam_checkpoint=full)
    torch.testing.assert_close(_coarse(model), _coarse(peft["model"]), rtol=0, atol=0)


def test_bundled_demo_model_needs_no_sam2_file() -> None:
    assert sam2_requirement(torch.load(DEMO, weights_only=True)) is None
    StreamingPredictor.from_config(None, m4sam_checkpoint=DEMO)  # no sam2_checkpoint: loads


def test_checkpoint_lacking_a_trained_weight_does_not_load(peft: dict, tmp_path: Path) -> None:
    """Issue 22 item 3: a key dropped from the MIDDLE of the trained parts (not the last one)."""
    for src, sam2 in ((peft["ckpt"], peft["sam2"]), (DEMO, None)):
        ckpt = torch.load(src, weights_only=True)
        keys = sorted(ckpt["state_dict"])
        dropped = [k for k in keys if k.startswith("gmlff.")][1]
        del ckpt["state_dict"][dropped]
        bad = tmp_path / f"lacking_{Path(src).name}"
        torch.save(ckpt, bad)
        config = _peft_config() if sam2 else ckpt["config"]
        with pytest.raises(CheckpointError, match=r"missing keys \(1\): " + dropped.replace(".", r"\.")):
            build_m4sam(config, sam2_checkpoint=sam2, m4sam_checkpoint=bad)


def test_a_trained_parts_checkpoint_carrying_frozen_weights_does_not_load(peft: dict, tmp_path: Path) -> None:
    """A checkpoint that needs SAM2's weights but also carries a frozen encoder weight (another
    tool's export, a hand-merged file) is refused, naming the key: loading it would overwrite the
    SAM2 weights just loaded with whatever it holds. Wrong code: check only for missing keys (the
    frozen weight is loaded over SAM2's without a word)."""
    ckpt = torch.load(peft["ckpt"], weights_only=True)
    frozen = next(k for k in peft["model"].state_dict() if k.startswith("sam.image_encoder.")
                  and k not in ckpt["state_dict"])
    ckpt["state_dict"][frozen] = torch.zeros_like(peft["model"].state_dict()[frozen])
    bad = tmp_path / "carries_frozen.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): " + frozen.replace(".", r"\.")):
        build_m4sam(_peft_config(), sam2_checkpoint=peft["sam2"], m4sam_checkpoint=bad)


def test_a_random_base_model_is_saved_with_every_weight(tmp_path: Path) -> None:
    """No SAM2 file loaded: the frozen encoder is random and must travel with the checkpoint."""
    torch.manual_seed(0)
    model = build_m4sam(_peft_config())
    path = tmp_path / "random_base.pt"
    save_m4sam_checkpoint(model, path)
    assert sam2_requirement(torch.load(path, weights_only=True)) is None
    torch.manual_seed(1)
    torch.testing.assert_close(_coarse(build_m4sam(_peft_config(), m4sam_checkpoint=path)), _coarse(model),
                               rtol=0, atol=0)


# ------------------------------------------------------------------------------ paper protocol

def test_paper_clips_cut_as_the_authors_clipper() -> None:
    """``[a[i:i+4] for i in range(0, n, 4)]`` on the annotated frames: irregular frame indices so
    cutting by frame number, sliding windows or dropping the remainder all give other clips."""
    annotated = [1, 2, 5, 6, 7, 9, 12, 13, 15, 20]
    assert paper_clips(annotated, 4) == [[1, 2, 5, 6], [7, 9, 12, 13], [15, 20]]
    assert paper_clips(annotated[:8], 4) == [[1, 2, 5, 6], [7, 9, 12, 13]]  # no empty remainder clip
    assert paper_clips([3], 4) == [[3]]
    assert paper_clips(annotated, 0) == [annotated]
    assert paper_clips([], 4) == []


def _sparse_rdvs(root: Path, annotated: list[int], n: int = 14) -> Path:
    import cv2

    video = synth.generate_video(7, n, 64, 48)
    d = root / "test" / "v"
    for sub in ("rgb", "Depth", "ground-truth"):
        (d / sub).mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(d / "rgb" / f"{i:05d}.png"), video.rgb[i][..., ::-1])
        cv2.imwrite(str(d / "Depth" / f"{i:05d}.png"), (video.depth[i] // 20).clip(1, 255).astype(np.uint8))
        if i in annotated:
            cv2.imwrite(str(d / "ground-truth" / f"{i:05d}.png"), video.gt[i])
    return root


def test_paper_schedule_resets_at_each_clip_of_annotated_frames(tmp_path: Path) -> None:
    from m4sam_ros.data.datasets import open_videos

    annotated = [1, 2, 5, 6, 7, 9, 12, 13]
    root = _sparse_rdvs(tmp_path / "rdvs", annotated)
    v = open_videos("rdvs", root, "test")[0]
    runner = PredictorRunner(DEMO, protocol="paper")
    assert runner.schedule(v, 4) == [(1, True), (2, False), (5, False), (6, False),
                                     (7, True), (9, False), (12, False), (13, False)]
    assert runner.schedule(v, 3) == [(1, True), (2, False), (5, False), (6, True), (7, False), (9, False),
                                     (12, True), (13, False)]


def test_paper_protocol_min_max_normalises_each_map_as_the_authors_do(tmp_path: Path) -> None:
    """A random-weight model's maps span a narrow band; the paper protocol stretches each frame to
    [0, 1] (``(x - min) / (max - min + 1e-8)``), the streaming protocol scores them as they are."""
    import cv2

    from m4sam_ros.evaluation.evaluate import minmax_normalise

    np.testing.assert_allclose(minmax_normalise(np.array([[0.2, 0.4], [0.6, 0.3]])), [[0, 0.5], [1, 0.25]],
                               atol=1e-6)
    assert not minmax_normalise(np.full((3, 3), 0.7)).any()  # a constant map -> 0, as theirs
    torch.manual_seed(0)
    ckpt = tmp_path / "random.pt"
    save_m4sam_checkpoint(build_m4sam("m4sam_demo", image_size=64), ckpt)
    data = tmp_path / "data"
    synth.write_vidsod_layout(synth.generate_video(610, 3, 64, 48), data / "test" / "v0")
    ranges = {}
    for protocol in ("paper", "streaming"):
        out = tmp_path / protocol
        assert eval_main(["--checkpoint", str(ckpt), "--dataset", "synthetic", "--data-root", str(data),
                          "--out", str(out), "--protocol", protocol, "--output", "coarse", "--quiet"]) == 0
        pngs = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((out / "synthetic" / "v0").glob("*.png"))]
        ranges[protocol] = [(int(p.min()), int(p.max())) for p in pngs]
        row = json.loads((out / "metrics.json").read_text())["m4sam-coarse-streaming" if protocol == "streaming"
                                                              else "m4sam-coarse"]["synthetic"]
        assert row["normalisation"] == ("per-frame min-max" if protocol == "paper" else "none")
    assert ranges["paper"] == [(0, 255)] * 3
    assert all(hi - lo < 200 for lo, hi in ranges["streaming"]), ranges


def _demo_without_objects(path: Path) -> Path:
    """The bundled (trained, confident) demo model with SAM2's object-score head forced to -5:
    every tracked frame is a "no object" frame; conditioning frames are not (their score comes
    from the never-empty prompt)."""
    model = build_m4sam("m4sam_demo", m4sam_checkpoint=DEMO)
    last = model.sam.sam_mask_decoder.pred_obj_score_head.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-5.0)
    save_m4sam_checkpoint(model, path)
    return path


def test_clip_starts_scored_from_the_soft_coarse_map_and_gate_shares_reported(tmp_path: Path) -> None:
    import cv2

    data = tmp_path / "data"
    for i in range(2):
        synth.write_vidsod_layout(synth.generate_video(600 + i, 5, 80, 60), data / "test" / f"v{i}")
    out = tmp_path / "out"
    assert eval_main(["--checkpoint", str(DEMO), "--dataset", "synthetic", "--data-root", str(data),
                      "--out", str(out), "--output", "all", "--quiet"]) == 0
    for v in ("v0", "v1"):
        for stem in ("00000", "00004"):  # clip starts of [0 1 2 3] [4]
            m = cv2.imread(str(out / "memory" / "synthetic" / v / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
            c = cv2.imread(str(out / "coarse" / "synthetic" / v / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
            np.testing.assert_array_equal(m, c)
            assert len(np.unique(m)) > 16, "a binarised prompt has a handful of levels, a soft map many"
        m = cv2.imread(str(out / "memory" / "synthetic" / v / "00002.png"), cv2.IMREAD_GRAYSCALE)
        c = cv2.imread(str(out / "coarse" / "synthetic" / v / "00002.png"), cv2.IMREAD_GRAYSCALE)
        assert (m != c).any()  # tracked frames: the memory branch's own map
    row = json.loads((out / "metrics.json").read_text())["m4sam-memory"]["synthetic"]
    assert row["protocol"] == "paper" and row["clip_len"] == 4 and row["frames_scored"] == 10
    assert row["no_object_share"] == 0.0 and row["blanked_share"] == 0.0
    assert "10 frames scored" in (out / "metrics.md").read_text()

    # every tracked frame hit by the gate: 3 of 5 per video (frames 1-3; 0 and 4 start clips)
    gated = _demo_without_objects(tmp_path / "no_objects.pt")
    for flag, blanked in (([], 0.0), (["--no-fallback"], 0.6)):
        o = tmp_path / f"gated{len(flag)}"
        assert eval_main(["--checkpoint", str(gated), "--dataset", "synthetic", "--data-root", str(data),
                          "--out", str(o), "--quiet", *flag]) == 0
        row = json.loads((o / "metrics.json").read_text())["m4sam-memory"]["synthetic"]
        assert row["no_object_frames"] == 6 and row["no_object_share"] == 0.6
        assert row["blanked_share"] == blanked and row["no_object_fallback"] == (not flag)
        assert (row["blanked_frames"], row["fallback_frames"]) == ((6, 0) if flag else (0, 6))
        tracked = cv2.imread(str(o / "synthetic" / "v0" / "00002.png"), cv2.IMREAD_GRAYSCALE)
        assert (tracked.max() > 0) == (not flag)  # all black only when the fallback is off


def test_forced_no_object_frame_is_not_all_black_when_the_coarse_map_is_confident(tmp_path: Path) -> None:
    video = synth.generate_video(5, 3, 96, 72)
    path = _demo_without_objects(tmp_path / "no_objects.pt")
    for kw, expect_fallback in (({}, True), ({"no_object_fallback": False}, False),
                                ({"fallback_confidence": 1.0}, False)):
        p = StreamingPredictor.from_config(None, m4sam_checkpoint=path, output="memory", **kw)
        first = p.step(video.rgb[0], video.depth[0])
        assert first.reinitialized and not first.blanked
        np.testing.assert_array_equal(first.memory, first.coarse)  # the clip start: the soft coarse map
        res = p.step(video.rgb[1], video.depth[1])
        assert res.blanked and res.object_score < 0.01 and res.fallback == expect_fallback
        assert res.coarse.max() > 0.5  # the coarse map is confident here
        if expect_fallback:
            np.testing.assert_array_equal(res.memory, res.coarse)
            assert res.mask.any() and res.saliency.max() > 0.5
        else:
            assert res.memory.max() < 1e-6 and not res.mask.any()  # SAM2's -1024 everywhere
    # SAM2's own behaviour on the conditioning frame, on request: the prompt's pass-through
    p = StreamingPredictor.from_config(None, m4sam_checkpoint=path, condition_output="prompt")
    first = p.step(video.rgb[0], video.depth[0])
    assert np.abs(first.memory - first.coarse).max() > 0.1


def test_node_diagnostics_report_the_blanked_share() -> None:
    """The /diagnostics values: gate hits and frames left blank, as shares of the processed frames."""
    from m4sam_ros.ros.diagnostics import Stats, new_window, pipeline_status

    st = Stats(pairs_in=10, processed=8, no_object=3, blanked=1)
    _, _, pairs, _ = pipeline_status(st, new_window(), 1.0, True, "active", {}, False, None)
    values = dict(pairs)
    assert values["no_object_frames"] == "3" and values["blanked_frames"] == "1"
    assert values["no_object_share"] == "0.375" and values["blanked_share"] == "0.125"

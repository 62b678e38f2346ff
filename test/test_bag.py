"""m4sam-bag on real rosbag2 files written by m4sam-synth (.mcap and .db3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from m4sam_ros.apps.bag import BagError, main, process_bag
from m4sam_ros.data.synth import world as synth
from m4sam_ros.msgs.image_codec import image_to_numpy
from m4sam_ros.predictor.streaming import StreamingPredictor

FRAMES = 5


_SHARED: list[StreamingPredictor] = []


def _predictor() -> StreamingPredictor:
    """The demo config with seeded random weights, built once and reset before each use (a reset
    predictor starts afresh, so this equals building a new one)."""
    if not _SHARED:
        torch.manual_seed(0)
        _SHARED.append(StreamingPredictor.from_config("m4sam_demo", device="cpu"))
    _SHARED[0].reset()
    return _SHARED[0]


@pytest.fixture(scope="module")
def video() -> synth.SyntheticVideo:
    return synth.generate_video(11, FRAMES, 96, 72)


def _read(path: Path, log_times: dict[str, list[int]] | None = None) -> dict[str, list]:
    """Messages per topic; ``log_times`` (when given) gets each message's bag time per topic."""
    out: dict[str, list] = {}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for conn, logtime, raw in reader.messages():
            out.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
            if log_times is not None:
                log_times.setdefault(conn.topic, []).append(logtime)
    return out


def _ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_one_mask_per_pair_stamped_like_colour_equal_to_predictor(tmp_path: Path, video, storage: str) -> None:
    bag = synth.write_bag(video, tmp_path / "in", storage=storage)
    out = tmp_path / "out"
    summary = process_bag(bag, out, _predictor(), progress=False, video=tmp_path / "overlay.mp4")
    assert summary.pairs == FRAMES and summary.processed == FRAMES
    assert summary.unpaired_color == 0 and summary.unpaired_depth == 0
    times: dict[str, list[int]] = {}
    topics = _read(out, times)
    # every output sits at its colour frame's bag time (a player replays it with the colour frame),
    # not at the depth frame's that completed the pair (written 3 ms later here)
    assert times["/m4sam/mask"] == times["/m4sam/overlay"] == times[synth.COLOR_TOPIC]
    assert times[synth.DEPTH_TOPIC] != times[synth.COLOR_TOPIC]
    # the input topics are carried over unchanged
    assert len(topics[synth.COLOR_TOPIC]) == FRAMES and len(topics[synth.DEPTH_INFO_TOPIC]) == FRAMES
    masks = topics["/m4sam/mask"]
    colour_stamps = [_ns(m.header) for m in topics[synth.COLOR_TOPIC]]
    assert [_ns(m.header) for m in masks] == colour_stamps
    assert all(m.header.frame_id == synth.COLOR_FRAME_ID and m.encoding == "mono8" for m in masks)
    assert [m.encoding for m in topics["/m4sam/saliency"]] == ["32FC1"] * FRAMES
    assert [m.encoding for m in topics["/m4sam/overlay"]] == ["rgb8"] * FRAMES
    assert len(topics["/m4sam/markers"]) == FRAMES
    direct = _predictor()
    for i, m in enumerate(masks):
        stamp = colour_stamps[i] * 1e-9
        expected = direct.step(video.rgb[i], video.depth[i], stamp=stamp)
        np.testing.assert_array_equal(image_to_numpy(m), expected.mask)
    assert (tmp_path / "overlay.mp4").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "overlay.mp4"]


def test_missing_topic_lists_the_bag_topics(tmp_path: Path, video) -> None:
    bag = synth.write_bag(video, tmp_path / "in")
    with pytest.raises(BagError, match=r"(?s)/nope not in .*the bag has:.*/camera/camera/color/image_raw \(sensor_msgs/msg/Image\)"):
        process_bag(bag, tmp_path / "out", _predictor(), color_topic="/nope", progress=False)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in"]


def test_truncated_bag_fails_clearly_and_leaves_nothing(tmp_path: Path, video, capsys) -> None:
    bag = synth.write_bag(video, tmp_path / "in")
    data = next(bag.glob("*.mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    rc = main(["--input", str(bag), "--output", str(tmp_path / "out"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "m4sam-bag: error:" in err and str(bag) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_failure_midway_leaves_no_output(tmp_path: Path, video) -> None:
    bag = synth.write_bag(video, tmp_path / "in")

    class Boom:
        def __init__(self) -> None:
            self.inner, self.n = _predictor(), 0

        def step(self, *a, **k):
            self.n += 1
            if self.n == 3:
                raise RuntimeError("out of memory")
            return self.inner.step(*a, **k)

    with pytest.raises(RuntimeError, match="out of memory"):
        process_bag(bag, tmp_path / "out", Boom(), progress=False, video=tmp_path / "o.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_existing_output_is_not_overwritten_without_flag(tmp_path: Path, video) -> None:
    bag = synth.write_bag(video, tmp_path / "in")
    (tmp_path / "out").mkdir()
    with pytest.raises(BagError, match="--overwrite"):
        process_bag(bag, tmp_path / "out", _predictor(), progress=False)


def test_branch_and_mask_threshold_reach_the_predictor(tmp_path: Path, video, capsys) -> None:
    """--branch / --mask-threshold: the masks are the bundled model's coarse map at 0.3."""
    from m4sam_ros.apps.bag import DEMO_MODEL

    bag = synth.write_bag(video, tmp_path / "in")
    assert main(["--input", str(bag), "--output", str(tmp_path / "out"), "--branch", "coarse",
                 "--mask-threshold", "0.3", "--quiet"]) == 0
    masks = _read(tmp_path / "out")["/m4sam/mask"]
    direct = StreamingPredictor.from_config(None, m4sam_checkpoint=DEMO_MODEL, output="coarse", mask_threshold=0.3)
    memory = StreamingPredictor.from_config(None, m4sam_checkpoint=DEMO_MODEL)
    differs = False
    for i, m in enumerate(masks):
        stamp = _ns(m.header) * 1e-9
        expected = direct.step(video.rgb[i], video.depth[i], stamp=stamp).mask
        np.testing.assert_array_equal(image_to_numpy(m), expected)
        differs |= not np.array_equal(expected, memory.step(video.rgb[i], video.depth[i], stamp=stamp).mask)
    assert differs  # the flag changed what was written
    with pytest.raises(SystemExit):
        main(["--input", str(bag), "--output", str(tmp_path / "out2"), "--mask-threshold", "1.5"])
    assert "--mask-threshold 1.5" in capsys.readouterr().err and not (tmp_path / "out2").exists()


def test_onnxruntime_backend_writes_the_pytorch_masks(tmp_path: Path, video, capsys) -> None:
    """--backend onnxruntime --model-dir: the bundled model exported by m4sam-export gives the
    PyTorch predictor's masks (>= 99.5 % of pixels) on every frame; no --model-dir is a clear error."""
    from m4sam_ros.apps.bag import DEMO_MODEL
    from m4sam_ros.export.onnx_export import main as export_main

    model_dir = tmp_path / "onnx"
    assert export_main(["--checkpoint", str(DEMO_MODEL), "--out", str(model_dir)]) == 0
    bag = synth.write_bag(video, tmp_path / "in")
    assert main(["--input", str(bag), "--output", str(tmp_path / "out"), "--backend", "onnxruntime",
                 "--model-dir", str(model_dir), "--quiet"]) == 0
    masks = _read(tmp_path / "out")["/m4sam/mask"]
    assert len(masks) == FRAMES
    direct = StreamingPredictor.from_config(None, m4sam_checkpoint=DEMO_MODEL, output="auto")
    for m in masks:
        i = len([x for x in masks if _ns(x.header) < _ns(m.header)])
        expected = direct.step(video.rgb[i], video.depth[i], stamp=_ns(m.header) * 1e-9).mask
        assert (image_to_numpy(m) == expected).mean() >= 0.995, i
    assert main(["--input", str(bag), "--output", str(tmp_path / "out2"), "--backend", "onnxruntime", "--quiet"]) == 2
    assert "--model-dir" in capsys.readouterr().err and not (tmp_path / "out2").exists()

"""Synthetic generator: determinism, scene content, layout writer, rosbag2 round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from m4sam_ros.data import synth
from m4sam_ros.data.datasets import open_videos
from m4sam_ros.image_codec import image_to_numpy


def test_same_seed_same_video_other_seed_other_video() -> None:
    a, b = synth.generate_video(7, 8, 96, 64), synth.generate_video(7, 8, 96, 64)
    c = synth.generate_video(8, 8, 96, 64)
    for x, y in zip(a.rgb + a.depth + a.gt, b.rgb + b.depth + b.gt, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a.rgb, c.rgb, strict=True))


def test_scene_content() -> None:
    v = synth.generate_video(3, 30, 160, 120, scene_cuts=1)
    assert v.cuts == [15]
    assert v.rgb[0].dtype == np.uint8 and v.rgb[0].shape == (120, 160, 3)
    assert v.depth[0].dtype == np.uint16 and v.gt[0].dtype == np.uint8
    assert set(np.unique(v.gt[0])) <= {0, 255}
    for depth, gt in zip(v.depth, v.gt, strict=True):
        obj = gt > 0
        assert obj.any()
        assert (depth == 0).any()                          # holes
        valid_obj, wall = depth[obj & (depth > 0)], depth[:10][depth[:10] > 0]
        assert np.median(valid_obj) < np.median(wall)      # the object is nearer than the wall
    # the floor comes nearer than the object at the bottom: "nearest region" is not the answer
    bottom = v.depth[0][-3:]
    assert np.median(bottom[bottom > 0]) < np.median(v.depth[0][v.gt[0] > 0])
    moved = [np.argwhere(g > 0).mean(0) for g in v.gt[:14]]
    assert np.abs(np.diff(moved, axis=0)).sum() > 5        # it moves


def test_layout_writer_reads_back(tmp_path: Path) -> None:
    v = synth.generate_video(1, 5, 64, 48)
    synth.write_vidsod_layout(v, tmp_path / "train" / "clip")
    video = open_videos("synthetic", tmp_path, "train")[0]
    assert len(video) == 5 and video.depth_kind == "metric"
    f = video[2]
    np.testing.assert_array_equal(f.depth, v.depth[2])     # 16-bit PNG: exact
    np.testing.assert_array_equal(f.gt, v.gt[2])
    assert np.abs(f.rgb.astype(int) - v.rgb[2]).mean() < 4  # JPEG: close
    assert not list(tmp_path.glob("train/.*partial"))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_round_trip(tmp_path: Path, storage: str) -> None:
    v = synth.generate_video(2, 4, 64, 48, fps=10.0)
    path = synth.write_bag(v, tmp_path / "bag", storage=storage)
    assert list(path.glob("*.mcap" if storage == "mcap" else "*.db3"))
    stamps = synth.frame_stamps_ns(v)
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        topics = {c.topic for c in reader.connections}
        assert topics == {synth.COLOR_TOPIC, synth.DEPTH_TOPIC, synth.COLOR_INFO_TOPIC, synth.DEPTH_INFO_TOPIC}
        colors, depths = [], []
        for conn, t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == synth.COLOR_TOPIC:
                assert msg.encoding == "rgb8" and msg.header.frame_id == synth.COLOR_FRAME_ID
                colors.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, image_to_numpy(msg)))
                assert t == colors[-1][0]
            elif conn.topic == synth.DEPTH_TOPIC:
                assert msg.encoding == "16UC1"
                depths.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, image_to_numpy(msg)))
            elif conn.topic == synth.DEPTH_INFO_TOPIC:
                assert msg.k[0] == pytest.approx(v.fx) and msg.width == 64
    assert [s for s, _ in colors] == stamps
    assert [s for s, _ in depths] == [s + synth.DEPTH_STAMP_OFFSET_NS for s in stamps]
    for i in range(4):
        np.testing.assert_array_equal(colors[i][1], v.rgb[i])
        np.testing.assert_array_equal(depths[i][1], v.depth[i])


def test_cli_writes_layout_and_bag(tmp_path: Path) -> None:
    rc = synth.main(["--out", str(tmp_path / "data"), "--bag", str(tmp_path / "b"), "--videos", "2",
                     "--frames", "3", "--width", "64", "--height", "48", "--split", "test"])
    assert rc == 0
    assert len(open_videos("synthetic", tmp_path / "data", "test")) == 2
    assert (tmp_path / "b" / "metadata.yaml").exists()
    assert synth.main(["--bag", str(tmp_path / "c"), "--frames", "0"]) == 2  # clear error, exit 2
    assert not (tmp_path / "c").exists()

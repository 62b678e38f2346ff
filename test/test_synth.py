"""Synthetic generator: determinism, scene content, layout writer, rosbag2 round trip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from m4sam_ros.data.datasets import open_videos
from m4sam_ros.data.synth import depth as synth_depth
from m4sam_ros.data.synth import layouts as synth_layouts
from m4sam_ros.data.synth import shapes as synth_shapes
from m4sam_ros.data.synth import textures as synth_textures
from m4sam_ros.data.synth import world as synth
from m4sam_ros.data.synth.scene import FACTORS, POOLS, factor_pools, sample_scene
from m4sam_ros.model.depth import normalize_depth
from m4sam_ros.msgs.image_codec import image_to_numpy


def test_same_seed_same_video_other_seed_other_video() -> None:
    a, b = synth.generate_video(7, 8, 96, 64), synth.generate_video(7, 8, 96, 64)
    c = synth.generate_video(8, 8, 96, 64)
    for x, y in zip(a.rgb + a.depth + a.gt, b.rgb + b.depth + b.gt, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a.rgb, c.rgb, strict=True))


def test_scene_content() -> None:
    v = synth.generate_video(3, 30, 160, 120, scene_cuts=1)
    assert v.cuts == [15] and len(v.factors) == 2
    assert v.rgb[0].dtype == np.uint8 and v.rgb[0].shape == (120, 160, 3)
    assert v.depth[0].dtype == np.uint16 and v.gt[0].dtype == np.uint8
    assert set(np.unique(v.gt[0])) <= {0, 255}
    assert sum(g.any() for g in v.gt) >= 25


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15, 16])
def test_salient_objects_stand_out_in_depth(seed: int) -> None:
    """The rule: the object is nearer than the surfaces just around it (most frames; noise and
    resting contact may blur a few)."""
    v = synth.generate_video(seed, 6, 128, 96)
    nearer = total = 0
    for depth, gt in zip(v.depth, v.gt, strict=True):
        obj = gt > 0
        if obj.sum() < 30:
            continue
        ring = cv2.dilate(obj.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~obj
        d_obj, d_ring = depth[obj & (depth > 0)], depth[ring & (depth > 0)]
        if d_obj.size and d_ring.size:
            total += 1
            nearer += np.median(d_obj) < np.median(d_ring)
    assert total >= 3 and nearer >= total - 1


def test_training_world_never_draws_held_out_values() -> None:
    for f in FACTORS:
        train, held = POOLS[f]
        assert train and held and not set(train) & set(held)
    seen: dict[str, set[str]] = {f: set() for f in FACTORS}
    for seed in range(40):
        scene = sample_scene(np.random.default_rng(seed), 64, 48, factor_pools(None))
        for f in FACTORS:
            seen[f] |= set(scene.factors[f])
    for f in FACTORS:
        assert seen[f] <= set(POOLS[f][0]), f
    assert seen["shapes"] == set(POOLS["shapes"][0])          # and it draws every training value
    assert seen["layouts"] == set(POOLS["layouts"][0])


@pytest.mark.parametrize("factor", FACTORS)
def test_held_out_set_draws_its_factor_from_held_out_values(factor: str) -> None:
    for seed in range(6):
        scene = sample_scene(np.random.default_rng(seed), 64, 48, factor_pools(factor))
        for f in FACTORS:
            vals = set(scene.factors[f])
            if f == factor:
                assert vals & set(POOLS[f][1]), (f, vals)      # at least one held-out value
                if f != "depth_noise":                         # depth noise adds held-out effects
                    assert vals <= set(POOLS[f][1]), (f, vals)
            else:
                assert vals <= set(POOLS[f][0]), (f, vals)
    with pytest.raises(ValueError, match="unknown factor"):
        factor_pools("colour")


def test_every_shape_family_draws_a_mask() -> None:
    rng = np.random.default_rng(0)
    for fam in synth_shapes.FAMILIES:
        m = synth_shapes.draw(rng, fam, 64)
        assert m.shape == (64, 64) and 0.03 < (m > 0).mean() < 0.9, fam
    assert (synth_shapes.draw(rng, "ring", 64)[32, 32] == 0)    # a shape with a hole
    with pytest.raises(ValueError, match="unknown shape family"):
        synth_shapes.draw(rng, "teapot", 64)


def test_photo_textures_come_from_installed_wheels() -> None:
    for package, rel in synth_textures.PHOTOS_TRAIN + synth_textures.PHOTOS_HELDOUT:
        img = synth_textures.load_photo(package, rel)
        assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 64 and img.std() > 5
    assert not set(synth_textures.PHOTOS_TRAIN) & set(synth_textures.PHOTOS_HELDOUT)


def test_plane_depth_is_exact() -> None:
    """A fronto-parallel wall 2 m away is 2 m deep everywhere; a floor 0.5 m below a level camera
    is at depth 0.5 fy / (v - cy) metres on row v, where that is nearer than the wall."""
    lay = synth_layouts.Layout("t", [synth_layouts.Plane(np.array([0.0, 0.0, 1.0]), 2.0, "wall"),
                                     synth_layouts.Plane(np.array([0.0, 1.0, 0.0]), 0.5, "floor")], 0.0, 0.0, 0.0)
    rays = synth_layouts.pixel_rays(64, 48, 50.0, 50.0, 31.5, 23.5)
    depth, index, _ = synth_layouts.render(lay, rays, lay.rotation())
    np.testing.assert_allclose(depth[:20], 2.0, rtol=1e-12)
    rows = np.arange(48)[:, None] - 23.5
    floor = index == 1
    assert floor[-1].all() and not floor[:36].any() and floor[37:].all()   # 25 / (v - 23.5) < 2 from v = 37
    np.testing.assert_allclose(depth[floor], np.broadcast_to(25.0 / rows, (48, 64))[floor], rtol=1e-12)


def test_depth_noise_effects() -> None:
    rng = np.random.default_rng(0)
    rgb = np.full((60, 80, 3), 128, np.uint8)
    only_q = synth_depth.NoiseProfile(effects=("quantisation",), disparity_sigma=0.0, subpixel=0.1)
    steps = []
    for z in (1.0, 4.0):
        ramp = np.tile(np.linspace(z, z * 1.1, 80), (60, 1))
        out = synth_depth.apply_noise(rng, ramp, rgb, 300.0, only_q)
        steps.append(np.diff(np.unique(out)).max())
    assert 12 < steps[1] / steps[0] < 20                        # quantisation grows with z^2 (16x)
    scene = np.full((60, 80), 3.0)
    scene[20:40, 30:50] = 1.0                                    # a near square
    edges = synth_depth.NoiseProfile(effects=("edge_holes",), edge_prob=1.0, edge_width=2)
    out = synth_depth.apply_noise(rng, scene, rgb, 300.0, edges)
    assert (out[20:40, 29:31] == 0).all() and (out[:15] > 0).all()
    shadow = synth_depth.NoiseProfile(effects=("shadow",), baseline_m=0.05)
    out = synth_depth.apply_noise(rng, scene, rgb, 300.0, shadow)
    assert (out[25, 22:30] == 0).all() and (out[25, 50:] > 0).all()   # band on the left side only
    dark = rgb.copy()
    dark[:10] = 5
    out = synth_depth.apply_noise(rng, scene, dark, 300.0, synth_depth.NoiseProfile(effects=("dark_holes",)))
    assert (out[:10] == 0).mean() > 0.7 and (out[10:] > 0).all()
    out = synth_depth.apply_noise(rng, np.full((60, 80), 9.0), rgb, 300.0,
                                  synth_depth.NoiseProfile(effects=("dropouts",), max_range_m=6.0, blobs=0))
    assert (out == 0).all()                                     # beyond the range: no depth


def test_depth_conventions_hold_the_same_measurement() -> None:
    depth_m = np.array([[0.0, 0.5, 1.234], [2.0, 4.0, 7.5]])
    mm = synth_depth.to_convention(depth_m, "mm16")
    assert mm.dtype == np.uint16 and mm.tolist() == [[0, 500, 1234], [2000, 4000, 7500]]
    m = synth_depth.to_convention(depth_m, "m32")
    assert m.dtype == np.float32 and np.isnan(m[0, 0]) and m[1, 2] == np.float32(7.5)
    rel = synth_depth.to_convention(depth_m, "relative8")
    np.testing.assert_allclose(normalize_depth(rel, "relative"), normalize_depth(mm, "metric"), atol=0.5 / 255)
    # 16-bit relative maps are stretched per frame by the reader: on a real frame that is ~identity
    frame = np.random.default_rng(0).uniform(0.5, 5.0, (48, 64))
    frame[:5] = 0.0
    rel = synth_depth.to_convention(frame, "relative16")
    near = normalize_depth(synth_depth.to_convention(frame, "mm16"), "metric")
    np.testing.assert_allclose(normalize_depth(rel, "relative"), near, atol=0.02)
    with pytest.raises(ValueError, match="unknown depth convention"):
        synth_depth.to_convention(depth_m, "cm")


def test_every_convention_scores_the_same(tmp_path: Path) -> None:
    """One scene written as 16UC1 mm, 32FC1 m and benchmark-style relative maps: the depth baseline
    and a model (whose fusion gives depth a say) score the same on all of them."""
    import torch

    from m4sam_ros.evaluation.evaluate import PredictorRunner, evaluate_maps
    from m4sam_ros.evaluation.heldout import _baseline_maps
    from m4sam_ros.model import build_m4sam, save_m4sam_checkpoint

    torch.manual_seed(1)
    model = build_m4sam("m4sam_demo", image_size=64)
    with torch.no_grad():
        for p in model.fusion.parameters():
            p.normal_(0.0, 0.5)
    ckpt = tmp_path / "m.pt"
    save_m4sam_checkpoint(model, ckpt)
    runner = PredictorRunner(ckpt)
    v = synth.generate_video(21, 6, 96, 72)
    scores = {}
    for conv, dataset in (("mm16", "synthetic"), ("m32", "synthetic"), ("relative16", "vidsod"),
                          ("relative8", "vidsod")):
        synth.write_vidsod_layout(v, tmp_path / conv / "test" / "v0", depth_convention=conv)
        videos = open_videos(dataset, tmp_path / conv, "test")
        assert videos[0].depth_kind == ("metric" if dataset == "synthetic" else "relative")

        def maps(video, runner=runner):
            for i, b in runner.run(video, 0):
                yield i, {"model": b["combined"]}
        res = evaluate_maps(videos, _baseline_maps, ["depth-only"], None, progress=False)
        res |= evaluate_maps(videos, maps, ["model"], None, progress=False)
        scores[conv] = {m: (r["S"], r["MAE"]) for m, r in res.items()}
    for m in ("depth-only", "model"):
        np.testing.assert_allclose(scores["m32"][m], scores["mm16"][m], atol=1e-6, err_msg=f"m32 {m}")
        # relative maps: 8-bit loses depth resolution, 16-bit is re-stretched per frame by the reader
        # (1st/99th percentiles): close, not identical
        for conv in ("relative8", "relative16"):
            np.testing.assert_allclose(scores[conv][m], scores["mm16"][m], atol=0.03, err_msg=f"{conv} {m}")
    assert scores["mm16"]["model"] != scores["mm16"]["depth-only"]


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

"""Data layer: benchmark readers on trees written in their exact layouts, depth normalisation,
clip sampling with one augmentation per clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from m4sam_ros.data.clips import ClipAugmentation, ClipDataset
from m4sam_ros.data.datasets import DatasetError, open_videos
from m4sam_ros.model.depth import normalize_depth

H, W = 24, 32


def _frame(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(i)
    rgb = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    depth = rng.integers(1, 255, (H, W), dtype=np.uint8)
    gt = np.zeros((H, W), np.uint8)
    gt[4 + i % 5:14, 6:20] = 255
    return rgb, depth, gt


def _write_video(d: Path, names: tuple[str, str, str], stems: list[str], gt_stems: list[str] | None = None,
                 exts: tuple[str, str, str] = (".jpg", ".png", ".png")) -> None:
    for sub in names:
        (d / sub).mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(stems):
        rgb, depth, gt = _frame(i)
        cv2.imwrite(str(d / names[0] / f"{stem}{exts[0]}"), rgb[..., ::-1])
        cv2.imwrite(str(d / names[1] / f"{stem}{exts[1]}"), depth)
        if gt_stems is None or stem in gt_stems:
            cv2.imwrite(str(d / names[2] / f"{stem}{exts[2]}"), gt)


def test_rdvs_reader_sparse_ground_truth(tmp_path: Path) -> None:
    stems = [f"img_{i}" for i in (1, 2, 10, 11)]  # natural order: 1, 2, 10, 11
    _write_video(tmp_path / "test" / "v1", ("rgb", "Depth", "ground-truth"), stems, gt_stems=["img_1", "img_10"])
    _write_video(tmp_path / "test" / "v0", ("rgb", "Depth", "ground-truth"), stems[:2])
    videos = open_videos("rdvs", tmp_path, "test")
    assert [v.name for v in videos] == ["v0", "v1"]
    v = videos[1]
    assert v.stems == stems and v.depth_kind == "relative"
    frames = list(v)
    assert [f.gt is not None for f in frames] == [True, False, True, False]
    assert frames[0].rgb.dtype == np.uint8 and frames[0].rgb.shape == (H, W, 3)
    assert frames[1].depth.shape == (H, W)
    np.testing.assert_array_equal(frames[2].gt, _frame(2)[2])


def test_vidsod_reader_requires_dense_gt(tmp_path: Path) -> None:
    _write_video(tmp_path / "train" / "a", ("rgb", "depth", "gt"), ["0001", "0002", "0003"], exts=(".png",) * 3)
    videos = open_videos("vidsod", tmp_path, "train")
    assert len(videos) == 1 and len(videos[0]) == 3
    np.testing.assert_array_equal(videos[0][0].rgb, _frame(0)[0])  # png: lossless, RGB order
    (tmp_path / "train" / "a" / "gt" / "0002.png").unlink()
    with pytest.raises(DatasetError, match="no ground truth.*0002"):
        open_videos("vidsod", tmp_path, "train")


def test_dvisal_reader_uses_split_files(tmp_path: Path) -> None:
    for name in ("bear", "cat", "dog"):
        _write_video(tmp_path / "data" / name, ("RGB", "Depth", "GT"), ["00000", "00005"])
    (tmp_path / "train.txt").write_text("bear\ndog\n")
    (tmp_path / "test_all.txt").write_text("cat\n")
    assert [v.name for v in open_videos("dvisal", tmp_path, "train")] == ["bear", "dog"]
    assert [v.name for v in open_videos("dvisal", tmp_path, "test_all")] == ["cat"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DatasetError, match="lists no videos"):
        open_videos("dvisal", tmp_path, "empty")
    (tmp_path / "bad.txt").write_text("cow\n")
    with pytest.raises(DatasetError, match="cow"):
        open_videos("dvisal", tmp_path, "bad")


def test_reader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        open_videos("vidsod", tmp_path / "nope", "test")
    (tmp_path / "test").mkdir()
    with pytest.raises(DatasetError, match="holds no videos"):
        open_videos("vidsod", tmp_path, "test")
    d = tmp_path / "test" / "v"
    _write_video(d, ("rgb", "depth", "gt"), ["1", "2"])
    (d / "depth" / "2.png").unlink()
    with pytest.raises(DatasetError, match="no depth frame"):
        open_videos("vidsod", tmp_path, "test")
    cv2.imwrite(str(d / "depth" / "2.png"), np.zeros((H + 1, W), np.uint8))
    video = open_videos("vidsod", tmp_path, "test")[0]
    with pytest.raises(DatasetError, match="2.png is 32x25"):
        video[1]
    (d / "rgb" / "1.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="cannot read image"):
        video[0]
    broken = tmp_path / "test" / "w"
    (broken / "rgb").mkdir(parents=True)
    with pytest.raises(DatasetError, match="missing folder"):
        open_videos("vidsod", tmp_path, "test")


def test_depth_saved_as_colour_and_orphan_frames(tmp_path: Path) -> None:
    """Some releases save depth as a 3-channel image (grey replicated): the reader takes its first
    channel, so the frame's depth is HxW with the stored values. A ground truth of another size,
    and a depth or ground-truth file without a colour frame (a renamed or extra file), are refused
    naming the file, not resized or left out. Wrong code: pass the HxWx3 depth on (normalisation
    and the model get three channels), score against a mask of another frame size, ignore orphans
    (a shifted numbering goes unnoticed)."""
    d = tmp_path / "train" / "a"
    _write_video(d, ("rgb", "depth", "gt"), ["0001", "0002"], exts=(".png",) * 3)
    depth = _frame(1)[1]
    cv2.imwrite(str(d / "depth" / "0002.png"), np.dstack([depth, depth // 2, depth // 3]))  # BGR on disk
    frame = open_videos("vidsod", tmp_path, "train")[0][1]
    assert frame.depth.shape == (H, W)
    np.testing.assert_array_equal(frame.depth, depth)
    cv2.imwrite(str(d / "gt" / "0001.png"), np.zeros((H + 2, W), np.uint8))  # another size: not this frame's
    with pytest.raises(DatasetError, match=r"ground truth .*0001\.png is 32x26 but colour is 32x24"):
        open_videos("vidsod", tmp_path, "train")[0][0]
    cv2.imwrite(str(d / "depth" / "0003.png"), depth)
    with pytest.raises(DatasetError, match=r"no colour frame, e\.g\. \['0003'\]"):
        open_videos("vidsod", tmp_path, "train")


def test_a_truncated_jpeg_is_refused_not_half_decoded(tmp_path: Path) -> None:
    """A JPEG cut short (an interrupted download or copy) decodes in OpenCV to a half-grey image
    with only a warning on stderr: the reader refuses it, naming the file and what is missing.
    Wrong code: trust cv2.imdecode (training and scores then use a half-grey frame)."""
    d = tmp_path / "test" / "v"
    _write_video(d, ("rgb", "depth", "gt"), ["1"])
    jpg = d / "rgb" / "1.jpg"
    data = jpg.read_bytes()
    assert cv2.imdecode(np.frombuffer(data[: len(data) * 2 // 3], np.uint8), cv2.IMREAD_COLOR) is not None
    jpg.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DatasetError, match=r"1\.jpg.*without its end-of-image marker"):
        open_videos("vidsod", tmp_path, "test")[0][0]


def test_normalize_depth_metric_mm_and_metres() -> None:
    mm = np.array([[0, 1000, 2000], [3000, 4000, 0]], np.uint16)
    out = normalize_depth(mm)
    assert out.dtype == np.float32 and out.shape == mm.shape
    assert out[0, 0] == 0 and out[1, 2] == 0                  # invalid -> 0 ("far")
    assert out[0, 1] > out[0, 2] > out[1, 0] > out[1, 1]        # nearer -> larger
    assert out[0, 1] == pytest.approx(1.0) and out[1, 1] == pytest.approx(0.0)
    m = mm.astype(np.float32) / 1000.0
    m[0, 0], m[1, 2] = np.nan, np.inf
    np.testing.assert_allclose(normalize_depth(m), out, atol=1e-6)
    m[1, 2] = -np.inf
    assert normalize_depth(m)[1, 2] == 0
    assert not normalize_depth(np.zeros((3, 3), np.uint16)).any()  # all invalid -> zeros, no error
    assert not normalize_depth(np.full((3, 3), np.nan, np.float32)).any()


def test_normalize_depth_relative_maps() -> None:
    d8 = np.array([[0, 51, 255]], np.uint8)
    np.testing.assert_allclose(normalize_depth(d8, "relative"), [[0, 0.2, 1.0]], atol=1e-6)
    # 16-bit benchmark depth is normalised per frame: a frame spanning 1000..3000 fills [0, 1]
    # (scaled by 65535 it would be a nearly black map), polarity kept, 0 still invalid
    d16 = np.array([[0, 1000, 2000, 3000]], np.uint16)
    np.testing.assert_allclose(normalize_depth(d16, "relative"), [[0, 0.0, 0.5, 1.0]], atol=0.02)
    out = normalize_depth(np.linspace(1000, 3000, 101).astype(np.uint16)[None], "relative")
    assert out[0, 3] > out[0, 2] > 0 and out[0, 50] == pytest.approx(0.5, abs=1e-6) and out.max() == 1.0
    np.testing.assert_allclose(normalize_depth(d16 * 7, "relative"), normalize_depth(d16, "relative"), atol=1e-6)
    assert normalize_depth(np.array([[0, 500, 500]], np.uint16), "relative").tolist() == [[0, 0.5, 0.5]]
    with pytest.raises(ValueError, match="unknown depth kind"):
        normalize_depth(d8, "disparity")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty HxW"):
        normalize_depth(np.zeros((0, 3), np.uint16))


def _coded_video(tmp_path: Path, n: int = 6) -> Path:
    """Frames whose pixels encode (frame, row, col), so any geometric change is visible."""
    d = tmp_path / "train" / "coded"
    for sub in ("rgb", "depth", "gt"):
        (d / sub).mkdir(parents=True)
    yy, xx = np.mgrid[0:64, 0:64]
    for t in range(n):
        rgb = np.stack([xx * 4, yy * 4, np.full_like(xx, 40 * t)], -1).astype(np.uint8)
        depth = (1000 + 20 * xx + 5 * t).astype(np.uint16)
        gt = ((xx < 32) * 255).astype(np.uint8)
        cv2.imwrite(str(d / "rgb" / f"{t:03d}.png"), rgb[..., ::-1])
        cv2.imwrite(str(d / "depth" / f"{t:03d}.png"), depth)
        cv2.imwrite(str(d / "gt" / f"{t:03d}.png"), gt)
    return tmp_path


def test_clip_dataset_shapes_and_shared_augmentation(tmp_path: Path) -> None:
    root = _coded_video(tmp_path)
    videos = open_videos("synthetic", root, "train")
    ds = ClipDataset(videos, clip_len=3, stride=2, size=32, augment=True, seed=1, sampling="sliding")
    assert len(ds) == 2  # windows 0-2-4 and 1-3-5
    seen_flip = set()
    for i in range(len(ds)):
        for epoch in range(6):
            ds.set_epoch(epoch)
            item = ds[i]
            assert item["images"].shape == (3, 3, 32, 32) and item["depths"].shape == (3, 1, 32, 32)
            assert item["gts"].shape == (3, 1, 32, 32) and item["gt_valid"].tolist() == [True] * 3
            assert item["images"].dtype == torch.float32 and 0 <= item["images"].min() <= item["images"].max() <= 1
            # one geometric transform for the whole clip: the ground truth (same every frame) matches
            for t in (1, 2):
                assert torch.equal(item["gts"][t], item["gts"][0])
            # depth and gt went through the same warp: the object half stays nearer in depth
            left = item["gts"][0, 0] > 0.5
            near = item["depths"][0, 0]
            assert near[left].mean() > near[~left].mean()
            seen_flip.add(bool(left[:, 0].float().mean() < 0.5))
            # colour jitter touched RGB only: the depth is the normalised map, bounded and not jittered
            assert item["depths"].max() <= 1.0
    assert seen_flip == {True, False}  # flips happen, and not always
    again = ClipDataset(videos, clip_len=3, stride=2, size=32, augment=True, seed=1, sampling="sliding")
    again.set_epoch(5)
    for k, v in again[1].items():
        assert torch.equal(v, ds[1][k])  # deterministic given seed, epoch and index


def test_clip_augmentation_is_identical_across_frames() -> None:
    aug = ClipAugmentation.draw(np.random.default_rng(4))
    img = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    a = aug.geometric(img, 16, cv2.INTER_NEAREST)
    b = aug.geometric(img.copy(), 16, cv2.INTER_NEAREST)
    np.testing.assert_array_equal(a, b)
    rgb = np.full((4, 4, 3), 0.5, np.float32)
    assert ClipAugmentation.draw(np.random.default_rng(0), enabled=False).photometric(rgb) == pytest.approx(rgb)


def test_clip_dataset_marks_sparse_frames(tmp_path: Path) -> None:
    _write_video(tmp_path / "train" / "v", ("rgb", "Depth", "ground-truth"), ["1", "2", "3"], gt_stems=["2"])
    ds = ClipDataset(open_videos("rdvs", tmp_path, "train"), clip_len=3, size=16, augment=False, frames="all")
    item = ds[0]
    assert item["gt_valid"].tolist() == [False, True, False]
    assert item["gts"][0].sum() == 0 and item["gts"][1].sum() > 0
    with pytest.raises(ValueError, match="shorter than one clip"):
        ClipDataset(open_videos("rdvs", tmp_path, "train"), clip_len=4, size=16, frames="all", sampling="sliding")
    with pytest.raises(ValueError, match="annotated frames"):  # auto on a sparse video: 1 annotated frame
        ClipDataset(open_videos("rdvs", tmp_path, "train"), clip_len=2, size=16, sampling="sliding")
    # chunks pad a video's remainder, but a dataset without one full clip is a wrong clip length
    with pytest.raises(ValueError, match="shorter than one clip"):
        ClipDataset(open_videos("rdvs", tmp_path, "train"), clip_len=4, size=16, frames="all")


def test_sparse_videos_give_clips_of_annotated_frames(tmp_path: Path) -> None:
    """RDVS/DViSal-like sparsity: every clip holds T supervised frames, in temporal order."""
    stems = [str(i) for i in range(1, 13)]
    annotated = ["1", "4", "7", "10", "12"]
    _write_video(tmp_path / "train" / "v", ("rgb", "Depth", "ground-truth"), stems, gt_stems=annotated)
    videos = open_videos("rdvs", tmp_path, "train")
    ds = ClipDataset(videos, clip_len=3, size=16, augment=False, sampling="sliding")  # auto -> annotated
    assert [[videos[0].stems[ds.frames[v][s + t]] for t in range(3)] for v, s in ds.index] == \
        [["1", "4", "7"], ["4", "7", "10"], ["7", "10", "12"]]
    for i in range(len(ds)):
        assert ds[i]["gt_valid"].all()
    rgb0 = cv2.imread(str(tmp_path / "train/v/rgb/4.jpg"))[..., ::-1]
    from m4sam_ros.model.preprocess import IMAGENET_MEAN, IMAGENET_STD, rgb_to_tensor
    # the training resize IS the inference one: the same tensor as the predictor's preprocessing
    ref = rgb_to_tensor(np.ascontiguousarray(rgb0), 16)[0] * torch.tensor(IMAGENET_STD).view(3, 1, 1) \
        + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    torch.testing.assert_close(ds[1]["images"][0], ref, atol=1e-5, rtol=0)
    dense = ClipDataset(videos, clip_len=3, size=16, augment=False, frames="all", sampling="sliding")
    assert len(dense) == 10 and not dense[0]["gt_valid"].all()
    with pytest.raises(ValueError, match="frames must be one of"):
        ClipDataset(videos, clip_len=3, size=16, frames="some")


def test_training_depth_resize_equals_inference(tmp_path: Path) -> None:
    """Depth (and RGB) are shrunk with antialiased bilinear, as the predictor does, not NEAREST."""
    from m4sam_ros.model.preprocess import depth_to_tensor

    root = _coded_video(tmp_path)
    videos = open_videos("synthetic", root, "train")
    ds = ClipDataset(videos, clip_len=1, size=16, augment=False)
    depth01 = normalize_depth(videos[0][2].depth, "metric")
    torch.testing.assert_close(ds[2]["depths"][0], depth_to_tensor(depth01, 16)[0], atol=1e-6, rtol=0)


def test_non_overlapping_clips_give_the_authors_clips_per_video(tmp_path: Path) -> None:
    """The authors' clipper (dataset_utils.clipper): chunks [i:i+T] for i in range(0, n, T) of the
    ANNOTATED frames of each video, the last one padded with its last frame -> ceil(n / T) clips
    per video (sliding windows give n - T + 1: ~4x as many steps per epoch)."""
    sizes = {"a": 9, "b": 4, "c": 2, "d": 13}            # annotated frames per video
    for name, n in sizes.items():
        stems = [str(i) for i in range(1, 2 * n + 1)]     # every other frame annotated (sparse)
        _write_video(tmp_path / "train" / name, ("rgb", "Depth", "ground-truth"), stems, gt_stems=stems[::2])
    videos = open_videos("rdvs", tmp_path, "train")
    ds = ClipDataset(videos, clip_len=4, size=16, augment=False)  # defaults: chunks, annotated frames
    per_video = {}
    for i in range(len(ds)):
        v, _ = ds.index[i]
        per_video.setdefault(videos[v].name, []).append([videos[v].stems[j] for j in ds.clip_positions(i)])
    # by hand, from the authors' rule: video a has annotated stems 1,3,...,17
    assert per_video["a"] == [["1", "3", "5", "7"], ["9", "11", "13", "15"], ["17", "17", "17", "17"]]
    assert per_video["b"] == [["1", "3", "5", "7"]]
    assert per_video["c"] == [["1", "3", "3", "3"]]
    assert [len(per_video[k]) for k in "abcd"] == [3, 1, 1, 4]          # ceil(n / 4)
    sliding = ClipDataset(videos, clip_len=4, size=16, augment=False, sampling="sliding")
    assert len(sliding) == (9 - 3) + (4 - 3) + 0 + (13 - 3)
    padded = ds[2]  # a's last chunk: one frame repeated, supervised as the authors' loader does
    assert padded["gt_valid"].all() and all(torch.equal(padded["images"][t], padded["images"][0]) for t in range(4))
    with pytest.raises(ValueError, match="sampling must be one of"):
        ClipDataset(videos, clip_len=4, size=16, sampling="random")
    with pytest.raises(ValueError, match="needs sampling='sliding'"):
        ClipDataset(videos, clip_len=4, stride=2, size=16)

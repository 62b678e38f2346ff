"""Issue 21, the smaller items: intrinsics of unusable magnitude, untrusted strings in log lines,
truncated dataset images, empty or unreadable checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_data import _frame, _write_video

from m4sam_ros.data.datasets import DatasetError, open_videos, read_image
from m4sam_ros.model.checkpoint import CheckpointError, UnreadableCheckpointError, safe_load
from m4sam_ros.scene.camera import CameraModel, CameraModelError
from m4sam_ros.util.text import clip_line, quote


def _camera(k: list[float]) -> CameraModel:
    return CameraModel.from_matrices(k, [], np.eye(3), np.zeros(12), 640, 480)


@pytest.mark.parametrize("fx", [5e-324, 1e-300, 0.5, 1e6 * 1.0001, 1e300])
def test_focal_lengths_of_unusable_magnitude_are_refused(fx: float) -> None:
    for k in ([fx, 0, 320, 0, 500, 240, 0, 0, 1], [500, 0, 320, 0, fx, 240, 0, 0, 1]):
        with pytest.raises(CameraModelError) as info:
            _camera(k)
        assert info.value.reason == "bad_camera_info" and "1..1e+06 px" in str(info.value)


def test_usable_intrinsics_pass_and_the_principal_point_is_bounded() -> None:
    for f in (1.0, 615.3, 1e6):
        cam = _camera([f, 0, 320, 0, f, 240, 0, 0, 1])
        assert cam.fx == f and math.isfinite(1.0 / cam.fx)
    with pytest.raises(CameraModelError, match="principal point"):
        _camera([600, 0, 1e300, 0, 600, 240, 0, 0, 1])


def test_the_subnormal_focal_length_is_counted_by_the_pipeline() -> None:
    from sensor_msgs.msg import CameraInfo, Image

    from m4sam_ros.predictor.streaming import Box, SaliencyResult
    from m4sam_ros.ros import pipeline
    from m4sam_ros.scene.tracking import OverlapTracker

    h, w = 24, 32
    mask = np.zeros((h, w), np.uint8)
    mask[5:15, 8:20] = 255
    sal = (mask / 255).astype(np.float32)
    result = SaliencyResult(mask=mask, saliency=sal, coarse=sal, memory=sal, boxes=[Box(8, 5, 19, 14, 0.9)],
                            object_score=3.0, reinitialized=True, frame_index=0, stamp=0.0, timings={})
    depth = np.full((h, w), 1500, np.uint16)
    info = CameraInfo(width=w, height=h, k=[5e-324, 0.0, 16.0, 0.0, 5e-324, 12.0, 0.0, 0.0, 1.0])
    frame = pipeline.frame_outputs(result, np.zeros((h, w, 3), np.uint8), depth, "16UC1", Image().header, info,
                                   pipeline.OutputSettings(), ["markers", "points", "mask"], OverlapTracker())
    assert [p.reason for p in frame.problems] == ["bad_camera_info"]
    assert "markers" not in frame.messages and "mask" in frame.messages  # no NaN poses go out


def test_untrusted_strings_are_escaped_and_cut() -> None:
    assert quote("rgb8; jpeg compressed bgr8") == "'rgb8; jpeg compressed bgr8'"
    big = quote("a\nb" * 400_000)
    assert len(big) < 120 and "\n" not in big and "(1200000 chars)" in big
    line = clip_line("x\r\n\x1b[31m" + "y" * 5000)
    assert len(line) <= 620 and "\n" not in line and "\x1b" not in line and "(5008 chars)" in line


def test_truncated_dataset_images_fail_naming_the_file(tmp_path: Path) -> None:
    _write_video(tmp_path / "train" / "a", ("rgb", "depth", "gt"), ["0001", "0002", "0003"],
                 exts=(".jpg", ".png", ".png"))
    videos = open_videos("vidsod", tmp_path, "train")
    assert videos[0][1].rgb.shape == _frame(1)[0].shape  # intact: read
    jpg = tmp_path / "train" / "a" / "rgb" / "0002.jpg"
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) * 3 // 4])
    assert cv2.imread(str(jpg)) is not None  # what the old reader did: a grey-filled frame, a warning
    with pytest.raises(DatasetError, match=r"0002\.jpg is truncated .*end-of-image"):
        videos[0][1]
    png = tmp_path / "train" / "a" / "depth" / "0003.png"
    png.write_bytes(png.read_bytes()[:-20])
    with pytest.raises(DatasetError, match=r"0003\.png is truncated .*IEND"):
        videos[0][2]
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"e\.png: the file is empty"):
        read_image(empty, cv2.IMREAD_UNCHANGED)
    junk = tmp_path / "j.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match=r"cannot read image .*j\.png .*corrupt or not an image"):
        read_image(junk, cv2.IMREAD_UNCHANGED)
    assert videos[0][0].rgb is not None  # the others still read


def test_empty_or_unreadable_checkpoints_say_what_they_are(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    page = tmp_path / "page.pt"
    page.write_text("<html><body>404 Not Found</body></html>")
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(4096)}, good)
    torn = tmp_path / "torn.pt"
    torn.write_bytes(good.read_bytes()[:1000])
    lfs = tmp_path / "lfs.pt"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 10\n")
    cases = {empty: "the file is empty (0 B)", page: "an HTML/XML page", torn: "1000 B, a zip archive",
             lfs: "Git LFS pointer", tmp_path / "missing.pt": "no such file", tmp_path: "is a folder"}
    for path, what in cases.items():
        with pytest.raises(UnreadableCheckpointError) as info:
            safe_load(path)
        text = str(info.value)
        assert what in text and "expected a PyTorch checkpoint written by torch.save" in text, text
        assert isinstance(info.value, CheckpointError) and "\n" not in text
    assert safe_load(good)["w"].shape == (4096,)

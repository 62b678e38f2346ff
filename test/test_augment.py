"""Training clips: colour jitter touches RGB only; the depth a clip carries does not depend on the
brightness, contrast or saturation drawn for it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from m4sam_ros.data import clips
from m4sam_ros.data.clips import ClipAugmentation, ClipDataset
from m4sam_ros.data.datasets import open_videos
from m4sam_ros.data.synth import world as synth

JITTERS = [(1.0, 1.0, 1.0), (1.2, 1.0, 1.0), (0.8, 1.2, 0.8), (1.15, 0.85, 1.2)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = tmp_path_factory.mktemp("augdata")
    synth.write_vidsod_layout(synth.generate_video(77, 5, 96, 72), root / "train" / "v0")
    return open_videos("synthetic", root, "train")


def _items_with_jitter(videos: list, monkeypatch: pytest.MonkeyPatch, jitter: tuple[float, float, float]
                       ) -> list[dict[str, torch.Tensor]]:
    """Every item of one epoch with the clip's geometry drawn as usual and the photometric factors
    forced to ``jitter`` (brightness, contrast, saturation)."""
    draw = ClipAugmentation.draw

    def forced(rng: np.random.Generator, enabled: bool = True) -> ClipAugmentation:
        b, c, s = jitter
        return replace(draw(rng, enabled), brightness=b, contrast=c, saturation=s)

    with monkeypatch.context() as m:
        m.setattr(clips.ClipAugmentation, "draw", staticmethod(forced))
        ds = ClipDataset(videos, clip_len=2, size=48, augment=True, seed=5)
        ds.set_epoch(1)
        return [ds[i] for i in range(len(ds))]


def test_colour_jitter_leaves_depth_and_gt_alone(videos: list, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [_items_with_jitter(videos, monkeypatch, j) for j in JITTERS]
    reference = runs[0]
    assert len(reference) == 4
    for jitter, items in zip(JITTERS[1:], runs[1:], strict=True):
        for i, (item, ref) in enumerate(zip(items, reference, strict=True)):
            assert torch.equal(item["depths"], ref["depths"]), (jitter, i)
            assert torch.equal(item["gts"], ref["gts"]), (jitter, i)
            # the jitter does act on the colour images (positive control)
            assert (item["images"] - ref["images"]).abs().mean() > 0.01, (jitter, i)
    # and the geometry really was drawn per item (not a degenerate identity)
    assert not torch.equal(reference[0]["depths"], reference[1]["depths"])


def test_drawn_jitter_is_within_its_range_and_photometric_is_rgb_shaped() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        aug = ClipAugmentation.draw(rng)
        assert 0.8 <= aug.brightness <= 1.2 and 0.8 <= aug.contrast <= 1.2 and 0.8 <= aug.saturation <= 1.2
    rgb = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    out = replace(aug, brightness=1.2, contrast=1.0, saturation=1.0).photometric(rgb)
    np.testing.assert_allclose(out, np.clip(rgb * 1.2, 0, 1), atol=1e-6)

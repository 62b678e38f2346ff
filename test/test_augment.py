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

    def forced(rng: np.random.Generator, enabled: bool = True, frame_hw: tuple[int, int] = (352, 352)
               ) -> ClipAugmentation:
        b, c, s = jitter
        return replace(draw(rng, enabled, frame_hw), brightness=b, contrast=c, saturation=s)

    with monkeypatch.context() as m:
        m.setattr(clips.ClipAugmentation, "draw", staticmethod(forced))
        ds = ClipDataset(videos, clip_len=2, size=48, augment=True, seed=5, sampling="sliding")
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
    seen = set()
    for _ in range(400):
        aug = ClipAugmentation.draw(rng)
        # the authors' PIL factors: randint(5, 15) / 10 etc., both ends included
        assert 0.5 <= aug.brightness <= 1.5 and 0.5 <= aug.contrast <= 1.5 and 0.0 <= aug.saturation <= 2.0
        assert 0.0 <= aug.sharpness <= 3.0
        seen |= {aug.brightness, aug.contrast}
    assert {0.5, 1.5} <= seen  # both ends are drawn
    rgb = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    out = replace(aug, brightness=1.2, contrast=1.0, saturation=1.0, sharpness=1.0).photometric(rgb)
    np.testing.assert_allclose(out, np.clip(rgb * 1.2, 0, 1), atol=1e-6)


# ---- the authors' augmentation (issue 20): crop, rotation probability, no mirrored borders, PIL colour

def test_crop_is_centred_and_at_most_30_px() -> None:
    """Their randomCrop: a window randint(W-30, W) x randint(H-30, H), centred (a plausible wrong
    version keeps 75-100 % at a random place, or crops a fraction instead of pixels)."""
    rng = np.random.default_rng(3)
    h, w = 240, 320
    removed = set()
    for _ in range(300):
        x0, y0, cw, ch = ClipAugmentation.draw(rng, frame_hw=(h, w)).crop
        pw, ph = round(cw * w), round(ch * h)
        assert 290 <= pw <= 319 and 210 <= ph <= 239
        assert round(x0 * w) == (w - pw) // 2 and round(y0 * h) == (h - ph) // 2
        removed.add(w - pw)
    assert min(removed) == 1 and max(removed) == 30


def test_rotation_probability_and_angles() -> None:
    """Rotation with probability 0.2 (their random() > 0.8), integer angles -15..14."""
    rng = np.random.default_rng(7)
    angles = [ClipAugmentation.draw(rng).angle for _ in range(4000)]
    rotated = [a for a in angles if a != 0.0]
    # binomial(4000, 0.2 * 29/30: angle 0 drawn counts as no rotation): sd 0.0063, bound 5 sd
    assert abs(len(rotated) / 4000 - 0.2 * 29 / 30) < 0.032
    assert set(rotated) <= set(float(a) for a in range(-15, 15)) and min(rotated) == -15 and max(rotated) == 14


def test_rotation_fills_corners_with_zeros_not_mirrored_objects() -> None:
    """An object touching the left border must not reappear in the rotated-in corners (reflect
    padding mirrored it there)."""
    gt = np.zeros((100, 100), np.float32)
    gt[:, :10] = 1.0  # a band along the left border
    aug = ClipAugmentation(False, (0.0, 0.0, 1.0, 1.0), 15.0, 1.0, 1.0, 1.0, 1.0)
    out = aug.geometric(gt, None)
    assert out.shape == gt.shape
    assert out[0, 0] == 0.0 and out[99, 0] == 0.0 and out[0, 99] == 0.0 and out[99, 99] == 0.0
    assert out[50, 2] == 1.0  # the band itself is still there
    # depth corners are 0 = invalid/far too: never a near (salient-looking) rim
    depth = np.ones((60, 80), np.float32)
    assert aug.geometric(depth, None)[0, 0] == 0.0


@pytest.mark.parametrize("factors", [(1.3, 0.5, 1.6, 2.5), (0.6, 1.4, 0.3, 0.0)])
def test_photometric_equals_pil_image_enhance(factors: tuple[float, float, float, float]) -> None:
    """Brightness, Contrast, Color, Sharpness as PIL's ImageEnhance applies them (the authors'
    colorEnhance), each step checked on the output of PIL's previous step. The image has very
    different channel means, so a contrast about the RGB mean instead of PIL's luma mean (6 grey
    levels off at factor 0.5), saturation about the channel mean, or a missing / wrong sharpness
    step each miss by several levels. Tolerance: PIL truncates to uint8 after a blend (up to 1
    level low) and rounds its luma / mean / smoothed images to integers (up to 0.5 x |1 - f|)."""
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(11)
    img = np.clip(np.array([200, 100, 30], np.float32) + rng.normal(0, 25, (36, 44, 3)), 0, 255).astype(np.uint8)
    b, c, s, sh = factors
    one = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "sharpness": 1.0}
    for enhancer, name, f in ((ImageEnhance.Brightness, "brightness", b), (ImageEnhance.Contrast, "contrast", c),
                              (ImageEnhance.Color, "saturation", s), (ImageEnhance.Sharpness, "sharpness", sh)):
        want = np.asarray(enhancer(Image.fromarray(img)).enhance(f)).astype(np.float32)
        aug = ClipAugmentation(False, (0.0, 0.0, 1.0, 1.0), 0.0, **(one | {name: f}))
        got = aug.photometric(img.astype(np.float32) / 255.0) * 255.0
        diff = got - want
        assert -1.0 - 0.5 * abs(1 - f) <= diff.min() and diff.max() <= 1.0 + 0.5 * abs(1 - f), (name, f)
        assert abs(diff.mean()) < 0.75, (name, f, diff.mean())
        img = want.astype(np.uint8)

"""render_overlay tints exactly the salient pixels, draws boxes, never edits its input."""

from dataclasses import dataclass

import numpy as np
import pytest

from m4sam_ros.viz.visualize import as_rgb, contact_sheet, render_overlay


@dataclass
class Box:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float


def _scene():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    mask[20:40, 30:50] = 255
    return rgb, mask


def test_tint_only_inside_mask_and_input_untouched():
    rgb, mask = _scene()
    before = rgb.copy()
    out = render_overlay(rgb, mask, [], color=(255, 0, 0), alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.array_equal(rgb, before)
    inner = (slice(22, 38), slice(32, 48))  # away from the outline
    expect = np.clip(rgb[inner].astype(np.float32) * 0.5 + np.array([255, 0, 0]) * 0.5, 0, 255).astype(np.uint8)
    assert np.abs(out[inner].astype(int) - expect.astype(int)).max() <= 1
    outside = np.ones(mask.shape, bool)
    outside[18:42, 28:52] = False
    assert np.array_equal(out[outside], rgb[outside])


def test_boxes_are_drawn_in_colour():
    rgb = np.zeros((60, 80, 3), np.uint8)
    out = render_overlay(rgb, None, [Box(10, 10, 40, 30, 0.9), (50, 5, 70, 50)], color=(0, 255, 0),
                         thickness=1, show_scores=False)
    assert (out[10, 10:41] == [0, 255, 0]).all() and (out[10:31, 40] == [0, 255, 0]).all()
    assert (out[5, 50:71] == [0, 255, 0]).all()
    assert (out[20, 20] == 0).all()  # inside the box stays untouched without a mask


def test_empty_mask_returns_copy_and_bad_inputs_raise():
    rgb, _ = _scene()
    out = render_overlay(rgb, np.zeros((60, 80), np.uint8), [])
    assert np.array_equal(out, rgb) and out is not rgb
    with pytest.raises(ValueError):
        render_overlay(rgb, np.zeros((10, 10), np.uint8), [])
    with pytest.raises(ValueError):
        render_overlay(rgb.astype(np.float32), None, [])
    with pytest.raises(ValueError):
        render_overlay(rgb, None, [(1, 2, 3)])


def test_contact_sheet_layout():
    rgb, mask = _scene()
    sal = np.linspace(0, 1, 60 * 80, dtype=np.float32).reshape(60, 80)
    sheet = contact_sheet([[rgb, mask, sal], [rgb, mask]], cell=(40, 30), pad=2)
    assert sheet.shape == (2 * 32 + 2, 3 * 42 + 2, 3) and sheet.dtype == np.uint8
    assert as_rgb(sal)[0, 0, 0] == 0 and as_rgb(sal)[-1, -1, 0] == 255

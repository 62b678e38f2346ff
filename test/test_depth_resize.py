"""Depth at another size than colour is resized with nearest neighbour (``resize_raw_depth``).

The inputs have holes right next to valid depth, where the plausible wrong resize (linear) blends
a 0 mm hole and a 2000 mm wall into a 1000 mm rim - nearer than anything in the scene, the most
salient pixel after normalisation - and spreads NaN holes over valid pixels. A constant map cannot
tell the two apart; these can.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from m4sam_ros.model.depth import normalize_depth, resize_raw_depth
from m4sam_ros.predictor.streaming import StreamingPredictor
from m4sam_ros.ros.params import DEMO_MODEL

HOLEY_MM = np.array([[2000, 0, 2000],
                     [2000, 0, 3000]], np.uint16)  # a hole column between two walls


def test_upscaling_keeps_holes_and_invents_no_depth():
    got = resize_raw_depth(HOLEY_MM, 4, 6)
    assert np.array_equal(got, np.repeat(np.repeat(HOLEY_MM, 2, axis=0), 2, axis=1))
    assert got.dtype == np.uint16
    # what linear would do: a rim nearer than the scene, the nearest pixel after normalisation
    linear = cv2.resize(HOLEY_MM, (6, 4), interpolation=cv2.INTER_LINEAR)
    assert ((linear > 0) & (linear < 2000)).any()
    near = normalize_depth(got) == normalize_depth(got).max()
    assert np.array_equal(near, np.repeat(np.repeat(HOLEY_MM == 2000, 2, axis=0), 2, axis=1))


def test_float_metres_nan_holes_stay_the_same_size():
    d = np.array([[1.0, np.nan, 2.0, 2.0],
                  [1.0, np.nan, 2.0, np.inf]], np.float32)
    got = resize_raw_depth(d, 4, 8)
    want = np.repeat(np.repeat(d, 2, axis=0), 2, axis=1)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(got[~np.isnan(got)], want[~np.isnan(want)])
    down = resize_raw_depth(want, 2, 4)  # and back down: the original, holes where they were
    assert np.array_equal(np.isnan(down), np.isnan(d)) and np.array_equal(down[~np.isnan(d)], d[~np.isnan(d)])


def test_same_size_is_returned_unchanged_and_bad_sizes_are_clear():
    assert resize_raw_depth(HOLEY_MM, 2, 3) is HOLEY_MM
    with pytest.raises(ValueError, match="HxW"):
        resize_raw_depth(np.zeros((2, 3, 3), np.uint16), 4, 6)
    with pytest.raises(ValueError, match="at least 1x1"):
        resize_raw_depth(HOLEY_MM, 0, 6)


holey_maps = hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=12),
                        elements=st.sampled_from([0, 0, 500, 1200, 4000, 65535]))


@settings(max_examples=120, deadline=None)
@given(holey_maps, st.floats(0.3, 3.0), st.floats(0.3, 3.0))
def test_every_output_pixel_is_a_measured_value_or_a_hole(d, fy, fx):
    """For any map with holes and any scale: no value appears that the sensor did not measure
    (linear and area resizes invent in-between depths at every hole edge)."""
    h, w = max(1, round(d.shape[0] * fy)), max(1, round(d.shape[1] * fx))
    got = resize_raw_depth(d, h, w)
    assert got.shape == (h, w) and got.dtype == np.uint16
    assert set(np.unique(got)) <= set(np.unique(d))


@pytest.fixture(scope="module")
def model():
    return StreamingPredictor.from_config(None, m4sam_checkpoint=str(DEMO_MODEL)).model  # it uses depth


def test_the_predictor_sees_the_nearest_neighbour_depth(model):
    """A half-size depth with holes gives exactly the outputs of its nearest-upscaled full-size
    copy (and of the same depth as HxWx1), and not those of the linear one (so this input can tell
    the two apart)."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 255, (48, 64, 3), np.uint8)
    small = rng.choice(np.array([0, 800, 2500], np.uint16), size=(24, 32))
    runs = {}
    for name, depth in (("small", small), ("nearest", np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)),
                        ("linear", cv2.resize(small, (64, 48), interpolation=cv2.INTER_LINEAR)),
                        ("hw1", small[..., None])):
        runs[name] = StreamingPredictor(model, "cpu").step(rgb, depth).coarse
    assert np.array_equal(runs["small"], runs["nearest"]) and np.array_equal(runs["small"], runs["hw1"])
    assert np.abs(runs["small"] - runs["linear"]).max() > 1e-3


def test_only_the_same_aspect_ratio_is_resized(model):
    """Within 1 %: 24x32 for 48x64 is resized, 25x32 (4 % off: depth not registered to colour) is
    refused naming the fix. Rules out a loose or axis-swapped aspect check (w/h against h/w would
    refuse the 24x32 one)."""
    p = StreamingPredictor(model, "cpu")
    rgb = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="different aspect ratio: register depth to colour"):
        p.step(rgb, np.full((25, 32), 1000, np.uint16))
    with pytest.raises(ValueError, match="different aspect ratio"):
        p.step(rgb, np.full((32, 24), 1000, np.uint16))  # transposed
    assert p.step(rgb, np.full((24, 32), 1000, np.uint16)).mask.shape == (48, 64)

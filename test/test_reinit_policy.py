"""ReinitPolicy on its own: when a tracked frame says "condition the next one again".

Every input here is chosen so that a plausible wrong rule gives another answer (each test says
which): scattered low scores where a total count would fire, good frames between bad ones, logits
between 0 and the probability 0.5, two empty masks, a brightness change that a raw difference
would call a cut. The property tests compare the incremental counters against a rule written
differently (the length of the trailing run of the whole history) for any sequence.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from m4sam_ros.predictor.reinit_policy import ReinitPolicy

S = 16
HALF = torch.zeros(1, 1, S, S)
HALF[..., :, : S // 2] = 1.0


def logits(region: torch.Tensor, inside: float = 4.0) -> torch.Tensor:
    """``inside`` on the region, -4 elsewhere."""
    return torch.where(region > 0, torch.tensor(inside), torch.tensor(-4.0))


AGREE = (logits(HALF), logits(HALF))
DISAGREE = (logits(HALF), logits(1 - HALF))  # disjoint halves: IoU 0


def score_only(n: int) -> ReinitPolicy:
    """The low-score rule alone: the IoU path can never fire (IoU is never below -1)."""
    return ReinitPolicy(score_threshold=0.5, low_score_frames=n, iou_threshold=-1.0, iou_frames=1)


def iou_only(n: int) -> ReinitPolicy:
    """The disagreement rule alone: no score is below 0."""
    return ReinitPolicy(score_threshold=0.0, low_score_frames=1, iou_threshold=0.2, iou_frames=n)


def test_scattered_low_scores_never_fire_a_run_of_n_does():
    """Rules out counting low frames in total (or since the last conditioning) instead of in a row:
    8 low scores, never 3 in a row, would fire a total count at the 3rd."""
    p = score_only(3)
    scores = [0.1, 0.2, 0.9, 0.1, 0.3, 0.8, 0.1, 0.2, 0.7, 0.4, 0.45]
    fired = [p.update(s, *AGREE) for s in scores]
    assert fired == [False] * 9 + [False, False] and p.low_score_run == 2
    assert p.update(0.49, *AGREE)  # the 3rd in a row fires, exactly then
    assert p.update(0.05, *AGREE)  # and keeps firing while the run lasts (the predictor restarts it)
    assert not p.update(0.5, *AGREE) and p.low_score_run == 0  # at the threshold is not low (strict <)


def test_interleaved_disagreement_never_fires_a_run_of_n_does():
    """Rules out a disagreement count that a good frame does not end, and a policy that shares one
    run between the two rules (a low score must not extend the disagreement run)."""
    p = ReinitPolicy(score_threshold=0.5, low_score_frames=3, iou_threshold=0.2, iou_frames=3)
    seq = [(0.9, DISAGREE), (0.9, DISAGREE), (0.9, AGREE), (0.9, DISAGREE), (0.1, AGREE), (0.9, DISAGREE),
           (0.1, DISAGREE), (0.9, AGREE)]
    assert [p.update(s, *maps) for s, maps in seq] == [False] * len(seq)
    assert (p.low_score_run, p.disagree_run) == (0, 0)
    assert [p.update(0.9, *DISAGREE) for _ in range(3)] == [False, False, True]
    assert p.low_score_run == 0


def test_foreground_is_positive_logit_and_two_empty_masks_agree():
    """Rules out thresholding logits at 0.5 (a probability) and calling two empty masks a
    disagreement (IoU 0 for an empty union): both would fire here, the right rule never does."""
    p = iou_only(2)
    weak = (logits(HALF, inside=0.3), logits(HALF, inside=3.0))  # sigmoid(0.3) = 0.57: foreground
    empty = (torch.full((1, 1, S, S), -2.0), torch.full((1, 1, S, S), -0.1))
    assert [p.update(1.0, *weak), p.update(1.0, *weak), p.update(1.0, *empty), p.update(1.0, *empty)] == [False] * 4
    # the IoU threshold is a fraction: 8 of 16 columns against 1 overlapping is IoU 1/8 < 0.2
    one = torch.zeros(1, 1, S, S)
    one[..., :, :1] = 1.0
    assert [p.update(1.0, logits(HALF), logits(one)) for _ in range(2)] == [False, True]
    three = torch.zeros(1, 1, S, S)
    three[..., :, :2] = 1.0  # IoU 2/8 = 0.25: agreement, the run ends
    assert not p.update(1.0, logits(HALF), logits(three)) and p.disagree_run == 0


def test_restart_and_reset():
    """restart_runs (a conditioning frame) ends both runs but keeps the request and the thumbnail;
    reset forgets everything. Rules out a restart that leaves one run counting."""
    p = ReinitPolicy(score_threshold=0.5, low_score_frames=2, iou_threshold=0.2, iou_frames=2)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (48, 64, 3), np.uint8)
    p.is_scene_cut(img)
    p.update(0.1, *DISAGREE)
    p.request()
    p.restart_runs()
    assert (p.low_score_run, p.disagree_run, p.forced) == (0, 0, True)
    assert not p.update(0.1, *DISAGREE)  # one frame into a fresh run: not yet
    assert p.is_scene_cut(rng.integers(0, 255, (48, 64, 3), np.uint8))  # the thumbnail was kept
    p.reset()
    assert (p.low_score_run, p.disagree_run, p.forced) == (0, 0, False)
    assert not p.is_scene_cut(rng.integers(0, 255, (48, 64, 3), np.uint8))  # no previous frame


def _scene(seed: int) -> np.ndarray:
    """A smooth random scene (blobs), 96x128, so a shifted view still correlates."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 255, (6, 8, 3)).astype(np.float32)
    return np.clip(cv2.resize(low, (128, 96), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def test_scene_cut_ignores_lighting_and_small_motion_but_not_a_new_shot():
    """Rules out comparing raw thumbnails (a brightness/contrast change would be a cut) and a cut
    test on the first frame after a reset; ``cut_threshold <= -1`` switches cuts off."""
    p = ReinitPolicy(cut_threshold=0.3)
    a = _scene(1)
    assert not p.is_scene_cut(a)
    darker = np.clip(a.astype(np.float32) * 0.5 + 10, 0, 255).astype(np.uint8)
    assert not p.is_scene_cut(darker)
    shifted = np.roll(darker, 3, axis=1)  # a small pan
    assert not p.is_scene_cut(shifted)
    assert p.is_scene_cut(_scene(2))  # another shot
    off = ReinitPolicy(cut_threshold=-1.0)
    off.is_scene_cut(a)
    assert not off.is_scene_cut(_scene(2))


# ------------------------------------------------------------------------------ properties
def trailing_run(flags: list[bool]) -> int:
    """How many of the last flags are True in a row (the rule, stated on the whole history)."""
    n = 0
    for f in reversed(flags):
        if not f:
            break
        n += 1
    return n


frames = st.lists(st.tuples(st.floats(0.0, 1.0, allow_nan=False), st.booleans()), max_size=40)


@settings(max_examples=150, deadline=None)
@given(frames, st.integers(1, 6), st.integers(1, 6), st.floats(0.05, 0.95))
def test_fires_exactly_when_a_trailing_run_reaches_its_length(seq, n_low, n_iou, threshold):
    """For every sequence of (score, disagree?) frames and every setting: update() is True exactly
    when the trailing run of scores below the threshold reaches ``n_low`` or the trailing run of
    disagreeing frames reaches ``n_iou``."""
    p = ReinitPolicy(score_threshold=threshold, low_score_frames=n_low, iou_threshold=0.2, iou_frames=n_iou)
    lows: list[bool] = []
    disagree: list[bool] = []
    for score, bad in seq:
        got = p.update(score, *(DISAGREE if bad else AGREE))
        lows.append(score < threshold)
        disagree.append(bad)
        assert got == (trailing_run(lows) >= n_low or trailing_run(disagree) >= n_iou)
        assert (p.low_score_run, p.disagree_run) == (trailing_run(lows), trailing_run(disagree))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=30), st.integers(2, 6))
def test_a_good_frame_always_ends_the_run(seq, n):
    """Whatever came before, a frame with a good score and agreeing maps makes the next n-1 frames
    unable to fire, bad or not."""
    p = score_only(n)
    for bad in seq:
        p.update(0.1 if bad else 0.9, *AGREE)
    p.update(0.9, *AGREE)
    assert not any(p.update(0.1, *AGREE) for _ in range(n - 1))

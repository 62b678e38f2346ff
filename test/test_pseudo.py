"""The shared pseudo-mask rule: never empty, confident only when something passes 0.5."""

from __future__ import annotations

import math

import pytest
import torch

from m4sam_ros.model.pseudo import pseudo_mask


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_confident_map_is_the_absolute_threshold():
    logits = torch.full((1, 1, 4, 4), _logit(0.1))
    logits[0, 0, 1, 1:3] = _logit(0.9)
    logits[0, 0, 2, 1] = _logit(0.45)  # relative >= 0.45 * 0.9 but not > 0.5: not in the mask
    mask, confident = pseudo_mask(logits)
    want = torch.zeros(1, 1, 4, 4)
    want[0, 0, 1, 1:3] = 1
    assert confident.tolist() == [True]
    assert torch.equal(mask, want)


def test_weak_map_falls_back_to_relative_threshold_never_empty():
    """Nothing above 0.5 (SAM2 would read an empty prompt as "no object"): keep the pixels with
    at least half the peak probability, and say it is not confident."""
    probs = torch.tensor([[0.30, 0.16, 0.14], [0.02, 0.20, 0.01], [0.05, 0.149, 0.151]])
    logits = torch.log(probs / (1 - probs)).view(1, 1, 3, 3)
    mask, confident = pseudo_mask(logits)
    want = torch.tensor([[1.0, 1, 0], [0, 1, 0], [0, 0, 1]]).view(1, 1, 3, 3)  # >= 0.15
    assert confident.tolist() == [False]
    assert torch.equal(mask, want)


def test_per_sample_in_a_batch_and_uniform_map():
    strong = torch.full((1, 1, 2, 2), -3.0)
    strong[..., 0, 0] = 3.0
    flat = torch.full((1, 1, 2, 2), -8.0)  # no structure at all: the whole frame, not empty
    mask, confident = pseudo_mask(torch.cat([strong, flat]))
    assert confident.tolist() == [True, False]
    assert mask[0].sum() == 1 and mask[1].sum() == 4
    assert mask.dtype == torch.float32


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\[B,1,H,W\]"):
        pseudo_mask(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="threshold"):
        pseudo_mask(torch.zeros(1, 1, 2, 2), threshold=1.5)


def test_predictor_conditions_on_the_shared_rule_never_empty():
    """A model whose coarse map is weak everywhere (nothing above 0.5): the predictor's first
    frame is conditioned on the relative-threshold mask (not an empty "no object" prompt), exactly
    what forward_clip would use, and says it was not confident."""
    import numpy as np

    from m4sam_ros.model import build_m4sam
    from m4sam_ros.model.build import load_config
    from m4sam_ros.predictor.streaming import StreamingPredictor

    torch.manual_seed(0)
    # the conv head: its random map varies across the image, so the relative threshold picks a part
    model = build_m4sam(load_config("m4sam_demo") | {"head": {"type": "conv", "hidden": 16}})
    with torch.no_grad():
        model.head.body[-1].bias.fill_(-30.0)  # sigmoid(coarse) ~ 0 everywhere
    # "prompt": frame 0 outputs the conditioning mask SAM2 was given (the rule under test)
    p = StreamingPredictor(model, reinit_cut_threshold=-1.0, condition_output="prompt")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    depth = rng.integers(300, 3000, (96, 128), dtype=np.uint16)
    res = p.step(rgb, depth)
    assert res.reinitialized and res.pseudo_confident is False
    assert res.object_score > 0.5  # SAM2 saw a non-empty prompt: "object present"
    assert p.memory.cond[0]["object_score_logits"].item() > 0
    assert 0 < (res.memory > 0.5).mean() < 1


"""The memory branch learns: "no object" frames keep a gradient, ground-truth conditioning per
sample, and the predictor's endless-stream num_frames in training."""

from __future__ import annotations

import pytest
import torch

from m4sam_ros.model import build_m4sam
from m4sam_ros.model.build import load_config
from m4sam_ros.model.pseudo import ENDLESS, pseudo_mask
from m4sam_ros.training.losses import clip_loss

S = 64


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_m4sam("m4sam_hiera_t", image_size=S).train()


def _clip(b=1, t=2):
    g = torch.Generator().manual_seed(0)
    x, d = torch.randn(b, t, 3, S, S, generator=g), torch.rand(b, t, 1, S, S, generator=g)
    gts = torch.zeros(b, t, 1, S, S)
    gts[..., 16:48, 20:44] = 1
    return x, d, gts


def _set_object_bias(model, value: float) -> None:
    with torch.no_grad():
        model.sam.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(value)


def _memory_grads(model) -> dict[str, float]:
    sam = model.sam
    parts = {"memory_attention": sam.memory_attention, "memory_encoder": sam.memory_encoder,
             "mask_hypernetworks": sam.sam_mask_decoder.output_hypernetworks_mlps,
             "object_score_head": sam.sam_mask_decoder.pred_obj_score_head}
    return {k: sum(float(p.grad.abs().sum()) for p in m.parameters() if p.grad is not None)
            for k, m in parts.items()}


def test_no_object_frame_has_memory_gradient(model):
    """SAM2 replaces a "no object" frame's logits by -1024: a loss on them is ~224 with exactly
    zero gradient. clip_loss supervises the decoder's logits before that replacement, so the
    memory branch gets a gradient on such a frame, and the loss stays in the normal range."""
    x, d, gts = _clip()
    _set_object_bias(model, -50.0)  # every tracked frame: "no object"
    try:
        model.zero_grad()
        out = model.forward_clip(x, d, cond_masks=gts[:, 0])
        assert (out["object_score_logits"][:, 1] < 0).all()
        assert (out["memory_logits"][:, 1] == -1024).all()          # SAM2's replacement
        assert out["memory_logits_raw"][:, 1].std() > 0             # the decoder's real logits
        # the issue: a structure loss on SAM2's output there has no gradient at all
        naive = clip_loss({**{k: v for k, v in out.items() if k != "memory_logits_raw"}},
                          gts, torch.ones(1, 2, dtype=torch.bool))
        assert naive["memory"] == 0  # such frames are skipped, not a constant ~224
        parts = clip_loss(out, gts, torch.ones(1, 2, dtype=torch.bool))
        assert 0 < parts["memory"] < 5
        parts["total"].backward()
        grads = _memory_grads(model)
        assert all(v > 0 for v in grads.values()), grads
    finally:
        _set_object_bias(model, 0.0)


def test_raw_logits_equal_output_when_object_present(model):
    x, d, gts = _clip()
    _set_object_bias(model, 50.0)
    try:
        with torch.no_grad():
            out = model.forward_clip(x, d, cond_masks=gts[:, 0])
        assert (out["object_score_logits"] > 0).all()
        assert torch.equal(out["memory_logits_raw"], out["memory_logits"])
    finally:
        _set_object_bias(model, 0.0)


def test_cond_select_per_sample_and_endless_num_frames(model, monkeypatch):
    x, d, gts = _clip(b=2, t=2)
    seen = []
    orig = model.sam._track_step

    def spy(*args, **kwargs):
        seen.append(args[8])  # num_frames
        return orig(*args, **kwargs)

    monkeypatch.setattr(model.sam, "_track_step", spy)
    with torch.no_grad():
        out = model.forward_clip(x, d, cond_masks=gts[:, 0], cond_select=torch.tensor([True, False]))
    assert seen == [ENDLESS, ENDLESS]
    # frame 0 is the mask prompt itself (SAM2.1: logits +-10): GT for sample 0, pseudo for 1
    want0 = gts[0, 0] * 20 - 10
    torch.testing.assert_close(out["memory_logits"][0, 0], want0)
    pseudo, _ = pseudo_mask(out["coarse_logits"][1, 0:1])
    torch.testing.assert_close(out["memory_logits"][1, 0], pseudo[0] * 20 - 10)
    with pytest.raises(ValueError, match="cond_select"):
        model.forward_clip(x, d, cond_masks=gts[:, 0], cond_select=torch.tensor([True]))


def test_side_logits_and_conv_head():
    """topdown (benchmark configs, demo): two side outputs at full size; conv: none."""
    torch.manual_seed(0)
    x, d, gts = _clip()
    topdown = build_m4sam("m4sam_hiera_t", image_size=S).train()
    out = topdown.forward_clip(x, d)
    assert [s.shape for s in out["side_logits"]] == [(1, 2, 1, S, S)] * 2
    clip_loss(out, gts, torch.ones(1, 2, dtype=torch.bool))["total"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in topdown.head.parameters())
    conv = build_m4sam(load_config("m4sam_demo") | {"head": {"type": "conv", "hidden": 16}}).train()
    out = conv.forward_clip(torch.randn(1, 2, 3, 128, 128), torch.rand(1, 2, 1, 128, 128))
    assert out["side_logits"] == []

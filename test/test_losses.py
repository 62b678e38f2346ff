"""The structure loss done right: pixel weights applied, logits in, frames without GT ignored."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from m4sam_ros.losses import boundary_weights, clip_loss, masked_structure_loss, structure_loss_per_map


def test_structure_loss_applies_weights_and_ignores_invalid_frames() -> None:
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:12, 4:12] = 1
    perfect = (target * 2 - 1) * 20
    wrong = -perfect
    valid = torch.tensor([True])
    assert masked_structure_loss(perfect, target, valid) < 0.01
    assert masked_structure_loss(wrong, target, valid) > 1.0
    # an error at the boundary costs more than the same error in the flat background (pixel weights)
    edge, flat = perfect.clone(), perfect.clone()
    edge[..., 4, 4:12] = 20 * -1
    flat[..., 0, 0:8] = 20
    assert masked_structure_loss(edge, target, valid) > masked_structure_loss(flat, target, valid)
    # invalid frames contribute nothing, whatever their prediction
    two = torch.cat([perfect, wrong]).unsqueeze(0)
    tgt = torch.cat([target, target]).unsqueeze(0)
    assert masked_structure_loss(two, tgt, torch.tensor([[True, False]])) < 0.01
    assert masked_structure_loss(two, tgt, torch.tensor([[False, False]])) == 0


def test_clip_loss_skips_frame0_memory() -> None:
    b, t, s = 1, 3, 16
    gts = torch.zeros(b, t, 1, s, s)
    gts[..., 4:12, 4:12] = 1
    good = (gts * 2 - 1) * 20
    out = {"coarse_logits": good, "memory_logits": good.clone(), "object_score_logits": torch.full((b, t, 1), 10.0),
           "aux_loss": torch.tensor(0.0)}
    out["memory_logits"][:, 0] = -good[:, 0]  # frame 0's memory output is the prompt: not supervised
    parts = clip_loss(out, gts, torch.ones(b, t, dtype=torch.bool))
    assert parts["memory"] < 0.01 and parts["total"] < 0.05


def test_matches_the_weighted_formula_and_not_the_buggy_mean() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 24, 24) * 3
    target = torch.zeros(2, 1, 24, 24)
    target[0, :, 5:15, 6:18] = 1
    target[1, :, 12:22, 2:9] = 1
    w = boundary_weights(target)
    assert w.min() >= 1.0 and w.max() > 2.0  # boundary pixels weigh more
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    wbce = (w * bce).sum(dim=(2, 3)) / w.sum(dim=(2, 3))
    p = torch.sigmoid(logits)
    inter, union = (p * target * w).sum(dim=(2, 3)), ((p + target) * w).sum(dim=(2, 3))
    want = (wbce + 1 - (inter + 1) / (union - inter + 1)).squeeze(1)
    got = structure_loss_per_map(logits, target)
    torch.testing.assert_close(got, want)
    # the authors' release: BCE with mean reduction (weights silently dropped) gives another number
    buggy = F.binary_cross_entropy_with_logits(logits, target, reduction="mean")
    assert not torch.allclose(wbce.mean(), buggy, atol=1e-3)


def test_invalid_frames_get_no_gradient() -> None:
    logits = torch.randn(1, 3, 1, 16, 16, requires_grad=True)
    target = (torch.rand(1, 3, 1, 16, 16) > 0.5).float()
    masked_structure_loss(logits, target, torch.tensor([[True, False, True]])).backward()
    assert logits.grad[:, 1].abs().sum() == 0
    assert logits.grad[:, 0].abs().sum() > 0 and logits.grad[:, 2].abs().sum() > 0

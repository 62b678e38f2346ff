"""Losses against values worked out by hand on tiny maps (not re-implementations of the formula).

Conventions used in the hand computations: on maps smaller than 352 px the boundary-weight window
and the edge window are 3x3; average pooling counts the zero padding (divides by 9); erosion
ignores the outside of the image (max pooling pads with -inf).
"""

from __future__ import annotations

import math

import pytest
import torch

from m4sam_ros.training.losses import (
    boundary_weights,
    clip_loss,
    edge_loss_per_map,
    edge_weight_at,
    masked_structure_loss,
    sobel_edges,
    structure_loss_per_map,
)

LN2 = math.log(2.0)


def _map(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).view(1, 1, len(rows), len(rows[0]))


def test_boundary_weights_single_pixel_by_hand():
    # one foreground pixel at (1,1) of a 4x4 map: its 3x3 mean is 1/9 -> w = 1 + 5 * 8/9 = 49/9;
    # its 8 neighbours see mean 1/9 -> w = 1 + 5/9 = 14/9; every other pixel w = 1
    t = torch.zeros(1, 1, 4, 4)
    t[0, 0, 1, 1] = 1
    want = torch.ones(4, 4)
    want[0:3, 0:3] = 14 / 9
    want[1, 1] = 49 / 9
    torch.testing.assert_close(boundary_weights(t)[0, 0], want)


def test_boundary_window_scales_with_the_map_size():
    """The structure loss's window is 31 px at 352 px (the authors' setting) and scales with the
    map (7 px at 64): one foreground pixel raises the weight of pixels up to k // 2 away, not one
    further. Wrong code: a fixed or unscaled window (3x3 everywhere, or 11 px at 352)."""
    for size, k in ((352, 31), (64, 7)):
        t = torch.zeros(1, 1, size, size)
        c = size // 2
        t[0, 0, c, c] = 1
        w = boundary_weights(t)[0, 0]
        assert w[c, c + k // 2] == pytest.approx(1 + 5 / k**2) and w[c, c + k // 2 + 1] == 1.0
        assert w[c + k // 2, c - k // 2] == pytest.approx(1 + 5 / k**2) and w[c - k // 2 - 1, c] == 1.0


def test_edge_band_scales_with_the_map_size():
    """The edge loss's band is k - 1 px wide with k = 3 at 352 px, scaled with size (7 at 704): at
    704 px a prediction 3 px off a vertical stripe's edges still overlaps half of each band. By
    hand: the target's band covers 6 columns at each edge (12 x 704 px), the shifted prediction's
    too, 3 of each 6 shared: loss = 1 - (2 * 6 * 704 + 1) / (24 * 704 + 1). Border rows add no
    edge (outside the image counts as neither). Wrong code: a 3 px window at every size (the
    bands of a 3 px shift no longer touch: loss ~1, no gradient towards the edge)."""
    t = torch.zeros(1, 1, 704, 704)
    t[..., 300:400] = 1
    pred = torch.full_like(t, -30.0)
    pred[..., 303:403] = 30.0
    want = 1 - (2 * 6 * 704 + 1) / (24 * 704 + 1)
    assert edge_loss_per_map(pred, t).item() == pytest.approx(want, abs=1e-4)


def test_structure_loss_by_hand():
    """logits 0 (p = 1/2) on 2x2 maps.
    Empty target: weights 1, wBCE = ln 2, inter 0, union 4 * 1/2 = 2 -> wIoU = 1 - 1/3.
    Full target: every 3x3 window (zero padded) holds 4 ones -> w = 1 + 5 * 5/9 = 34/9 everywhere,
    wBCE = ln 2, inter = 4 * 1/2 * w, union = 4 * 3/2 * w -> wIoU = 1 - (68/9 + 1) / (136/9 + 1)
    = 68/145."""
    logits = torch.zeros(2, 1, 2, 2)
    target = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    got = structure_loss_per_map(logits, target)
    torch.testing.assert_close(got, torch.tensor([LN2 + 2 / 3, LN2 + 68 / 145]))
    # confident and right: ~0; confident and wrong: large
    right = (target * 2 - 1) * 30
    assert structure_loss_per_map(right, target).max() < 1e-6
    assert structure_loss_per_map(-right, target).min() > 20


def test_masked_mean_over_valid_frames_by_hand():
    logits = torch.zeros(1, 2, 1, 2, 2)
    target = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)]).unsqueeze(0)
    a, b = LN2 + 2 / 3, LN2 + 68 / 145
    for valid, want in (([True, True], (a + b) / 2), ([True, False], a), ([False, True], b),
                        ([False, False], 0.0)):
        got = masked_structure_loss(logits, target, torch.tensor([valid]))
        assert got.item() == pytest.approx(want, abs=1e-6)


def test_edge_loss_by_hand():
    """3x3 target with only the centre set: dilation is 1 everywhere, erosion 0 -> 9 edge pixels.
    Flat prediction (p = 1/2): its edges are 0 -> 1 - 1/(0 + 9 + 1) = 0.9.
    Sharp right prediction: edges 1 on the same 9 pixels -> 1 - 19/19 = 0.
    Full target: no edge inside the image; flat prediction -> 1 - 1/1 = 0."""
    centre = _map([[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    flat = torch.zeros(1, 1, 3, 3)
    sharp = (centre * 2 - 1) * 40
    got = edge_loss_per_map(torch.cat([flat, sharp, flat]), torch.cat([centre, centre, torch.ones(1, 1, 3, 3)]))
    torch.testing.assert_close(got, torch.tensor([0.9, 0.0, 0.0]), atol=1e-6, rtol=0)


def _outputs(t: int = 2, score: float = 0.0, sides: int = 0, raw: bool = True) -> dict:
    z = torch.zeros(1, t, 1, 2, 2)
    out = {"coarse_logits": z.clone(), "memory_logits": z.clone(),
           "object_score_logits": torch.full((1, t, 1), score), "aux_loss": torch.tensor(0.25),
           "side_logits": [z.clone() for _ in range(sides)]}
    if raw:
        out["memory_logits_raw"] = z.clone()
    return out


#: the authors' memory loss of an all-zero logit map on a full 2x2 target: 0.7 (b + 0.3 * 1/2)
#: + 0.8 focal (0.25 * (1 - 1/2)^2 * ln 2) + 0.5 Dice (1 - 4/6) + 0.9 MAE (1/2)
B_FULL = LN2 + 68 / 145
MEM_FULL = 0.7 * (B_FULL + 0.15) + 0.8 * 0.0625 * LN2 + 0.5 / 3 + 0.45


def test_clip_loss_composition_by_hand():
    """2x2 maps, all logits 0, both frames fully foreground (b = ln2 + 68/145 per map, MAE 1/2,
    edges 0): coarse b + 0.3/2, side (stride 16) 0.6 x that, balance 0.8 x 0.25, object
    BCE(0, present) = ln 2 on frame 1 only (frame 0's score is the prompt's), memory (frame 1) the
    authors' mix, total = coarse + side + 0 + 0.2 + 1.0 ln 2 + memory."""
    gts = torch.ones(1, 2, 1, 2, 2)
    parts = clip_loss(_outputs(sides=1), gts, torch.ones(1, 2, dtype=torch.bool))
    c = B_FULL + 0.15
    assert parts["coarse"].item() == pytest.approx(c, abs=1e-6)
    assert parts["edge"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["side"].item() == pytest.approx(0.6 * c, abs=1e-6)
    assert parts["memory"].item() == pytest.approx(MEM_FULL, abs=1e-5)
    assert parts["object"].item() == pytest.approx(LN2, abs=1e-6)
    assert parts["total"].item() == pytest.approx(c + 0.6 * c + 0.8 * 0.25 + LN2 + MEM_FULL, abs=1e-5)
    # the stride-8 side output weighs 0.8 (the authors' 0.6 / 0.8, not 0.5 / 0.5)
    two = clip_loss(_outputs(sides=2), gts, torch.ones(1, 2, dtype=torch.bool))
    assert two["side"].item() == pytest.approx((0.6 + 0.8) * c, abs=1e-6)


def test_clip_loss_frame0_memory_and_no_object_frames_by_hand():
    """Frame 0's memory output is the prompt: never in the memory loss. A frame without the
    object (empty GT) has no mask loss, only the object BCE: score -2, target 0 ->
    ln(1 + e^-2). Without raw logits, frames SAM2 called "no object" (score <= 0) are skipped."""
    gts = torch.ones(1, 3, 1, 2, 2)
    gts[:, 2] = 0                          # object gone in frame 2
    out = _outputs(t=3, score=-2.0)
    out["memory_logits_raw"][:, 0] = 1e3   # frame 0 wildly wrong: must not matter
    parts = clip_loss(out, gts, torch.ones(1, 3, dtype=torch.bool))
    assert parts["memory"].item() == pytest.approx(MEM_FULL, abs=1e-5)  # frame 1 only
    bce_present, bce_absent = math.log1p(math.exp(2.0)), math.log1p(math.exp(-2.0))
    assert parts["object"].item() == pytest.approx((bce_present + bce_absent) / 2, abs=1e-6)
    out = _outputs(t=3, score=-2.0, raw=False)
    out["memory_logits"][:, 1:] = -1024.0  # SAM2's "no object" output
    assert clip_loss(out, gts, torch.ones(1, 3, dtype=torch.bool))["memory"].item() == 0.0


def test_object_score_is_supervised_on_every_frame_that_predicts_one():
    """When frame 0's score is the decoder's own (not SAM2's copy of the mask prompt) it is
    supervised too: frames 0 (absent), 1, 2 (present) at score -2 -> (ln(1+e^-2) + 2 ln(1+e^2)) / 3.
    A single-frame clip still trains the score."""
    gts = torch.ones(1, 3, 1, 2, 2)
    gts[:, 0] = 0
    out = _outputs(t=3, score=-2.0) | {"object_score_from_prompt": False}
    bce_present, bce_absent = math.log1p(math.exp(2.0)), math.log1p(math.exp(-2.0))
    got = clip_loss(out, gts, torch.ones(1, 3, dtype=torch.bool))["object"].item()
    assert got == pytest.approx((bce_absent + 2 * bce_present) / 3, abs=1e-6)
    one = _outputs(t=1, score=-2.0) | {"object_score_from_prompt": False}
    assert clip_loss(one, torch.ones(1, 1, 1, 2, 2), torch.ones(1, 1, dtype=torch.bool))["object"].item() == \
        pytest.approx(bce_present, abs=1e-6)


def test_structure_loss_weights_boundary_errors_by_hand():
    """Issue 22.2: non-constant logits AND mask. 4x4 target with one foreground pixel at (1,1):
    boundary weights 49/9 there, 14/9 on its 8 neighbours, 1 on the other 7 (sum 224/9). Logits
    are confidently right (+-30) everywhere except one pixel at 0 (BCE ln 2):
      error ON the object: wBCE = (49/9) ln2 / (224/9) = 7 ln2 / 32; p = 1/2 there ->
        inter = 49/18, union - inter = 49/9 -> wIoU = 1 - (49/18 + 1)/(49/9 + 1) = 49/116;
      error in the far background (3,3), weight 1: wBCE = 9 ln2 / 224, inter = 49/9 ->
        wIoU = 1 - (49/9 + 1)/(49/9 + 1/2 + 1) = 9/125.
    Plain (unweighted, mean-reduced) BCE gives ln2/16 for both: the weighting must make the
    boundary error cost more."""
    t = torch.zeros(1, 1, 4, 4)
    t[0, 0, 1, 1] = 1
    right = (t * 2 - 1) * 30
    on_obj, far = right.clone(), right.clone()
    on_obj[0, 0, 1, 1] = 0.0
    far[0, 0, 3, 3] = 0.0
    got = structure_loss_per_map(torch.cat([on_obj, far]), torch.cat([t, t]))
    want = torch.tensor([7 * LN2 / 32 + 49 / 116, 9 * LN2 / 224 + 9 / 125])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert got[0] - 49 / 116 > 4 * (got[1] - 9 / 125)  # the BCE part: 49/9 times the far error's


def test_sobel_edge_target_by_hand():
    """Left half foreground (4x4): Sobel x = -4 on columns 1 and 2 (1+2+1 either side), 0 on the
    outer columns, y = 0 everywhere (replicate padding: no edge at the image border, which the
    authors' zero padding drew on the top and bottom rows). Min-max per map -> {0, 1}. An empty
    map has no edges: it stays at sqrt(1e-6)."""
    t = torch.zeros(2, 1, 4, 4)
    t[0, 0, :, :2] = 1
    e = sobel_edges(t)
    want = torch.tensor([0.0, 1.0, 1.0, 0.0]).expand(4, 4)
    torch.testing.assert_close(e[0, 0], want, atol=1e-6, rtol=0)
    torch.testing.assert_close(e[1, 0], torch.full((4, 4), 1e-3), atol=1e-9, rtol=0)


def test_edge_outputs_use_the_structure_loss_on_sobel_edges():
    """With edge outputs the edge term is the structure loss (+ 0.3 MAE) of each edge map against
    the Sobel target; all-zero logits on a left-half mask -> the same value per map, summed."""
    gts = torch.zeros(1, 2, 1, 4, 4)
    gts[..., :2] = 1
    z = torch.zeros(1, 2, 1, 4, 4)
    out = {"coarse_logits": z, "memory_logits": z, "memory_logits_raw": z, "aux_loss": torch.tensor(0.0),
           "object_score_logits": torch.zeros(1, 2, 1), "edge_logits": [z, z, z]}
    target = sobel_edges(gts.view(-1, 1, 4, 4))[:1]
    per = structure_loss_per_map(z[0, :1], target) + 0.3 * 0.5
    parts = clip_loss(out, gts, torch.ones(1, 2, dtype=torch.bool), edge_weight=0.5)
    assert parts["edge"].item() == pytest.approx(3 * per.item(), abs=1e-6)
    without = clip_loss(out, gts, torch.ones(1, 2, dtype=torch.bool), edge_weight=0.0)
    assert (parts["total"] - without["total"]).item() == pytest.approx(0.5 * 3 * per.item(), abs=1e-5)


def test_edge_weight_ramp():
    """The authors' edge weight: 0.2 -> 0.8 linearly over the first third (20 of 60 epochs), then 1
    (0.5 on ViDSOD-100)."""
    assert edge_weight_at(0, 300) == pytest.approx(0.2)
    assert edge_weight_at(50, 300) == pytest.approx(0.5)
    assert edge_weight_at(99, 300) == pytest.approx(0.2 + 0.6 * 99 / 100)
    assert edge_weight_at(100, 300) == 1.0 and edge_weight_at(299, 300) == 1.0
    assert edge_weight_at(200, 300, ramp=2 / 3, final=0.5) == 0.5


def test_invalid_frames_get_no_gradient():
    logits = torch.randn(1, 3, 1, 16, 16, requires_grad=True)
    target = (torch.rand(1, 3, 1, 16, 16) > 0.5).float()
    masked_structure_loss(logits, target, torch.tensor([[True, False, True]])).backward()
    assert logits.grad[:, 1].abs().sum() == 0
    assert logits.grad[:, 0].abs().sum() > 0 and logits.grad[:, 2].abs().sum() > 0


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="gt_valid"):
        clip_loss(_outputs(), torch.ones(1, 2, 1, 2, 2), torch.ones(2, dtype=torch.bool))

"""The coarse decoder: GMLFF's fast merge equals its formula, the top-down head's deep
supervision, and the bundled demo model (conv head) still loads and runs."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from m4sam_ros.model import build_m4sam, load_m4sam_checkpoint
from m4sam_ros.model.build import load_config
from m4sam_ros.model.gmlff import GMLFF, TopDownHead

CHANNELS = [16, 32, 64, 128]
DEMO = Path(__file__).resolve().parent.parent / "m4sam_ros" / "assets" / "demo_model.pt"


def _levels(b: int = 2, s: int = 32, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, s >> i, s >> i, generator=g) for i, c in enumerate(CHANNELS)]


def _randomise(module: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.dim() == 1 and p.numel() > 1 else 0.0))


def test_gmlff_equals_its_formula():
    """Reference: project, upsample, concatenate, 1x1 merge, attention, gate, FFN (METHOD.md)."""
    torch.manual_seed(0)
    m = GMLFF(CHANNELS, width=8).eval()
    _randomise(m)
    levels = _levels()
    size = levels[0].shape[-2:]
    xs = [F.interpolate(p(x), size=size, mode="bilinear", align_corners=False) for p, x in zip(m.proj, levels, strict=True)]
    x1 = m.merge(torch.cat(xs, dim=1))
    xe = x1 * m.channel_att(x1) * m.spatial_att(x1)
    gate = torch.sigmoid(m.gate(torch.cat([x1, xe], dim=1)))
    y = gate * xe + (1 - gate) * x1
    want = y + m.ffn(y)
    torch.testing.assert_close(m(levels), want, rtol=1e-5, atol=1e-5)


def test_topdown_head_sides_and_gradients():
    torch.manual_seed(0)
    head = TopDownHead(CHANNELS, width=8)
    levels = _levels()
    g = torch.randn(2, 8, 32, 32)
    coarse, sides = head(levels, g, 64)
    assert coarse.shape == (2, 1, 64, 64) and sides == []  # sides only when asked (inference)
    coarse2, sides = head(levels, g, 64, sides=True)
    assert torch.equal(coarse, coarse2)
    assert [s.shape for s in sides] == [(2, 1, 64, 64)] * 2
    (coarse.mean() + sum(s.mean() for s in sides)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    # every level reaches the output: the stride-32 level moves the coarse map
    levels2 = [x.clone() for x in levels]
    levels2[3] += 1.0
    assert not torch.allclose(head(levels2, g, 64)[0], coarse)


def test_head_type_from_config():
    cfg_model = build_m4sam("m4sam_hiera_t", image_size=64)
    assert isinstance(cfg_model.head, TopDownHead) and cfg_model.head_type == "topdown"
    demo = build_m4sam("m4sam_demo")  # the bundled demo model was retrained with the top-down head
    assert isinstance(demo.head, TopDownHead) and demo.head_type == "topdown"
    conv = build_m4sam(load_config("m4sam_demo") | {"head": {"type": "conv", "hidden": 16}})
    assert conv.head_type == "conv" and not isinstance(conv.head, TopDownHead)


def test_bundled_demo_model_still_loads_and_runs():
    model = build_m4sam("m4sam_demo")
    load_m4sam_checkpoint(model, DEMO)
    x, d = torch.randn(1, 3, 128, 128), torch.rand(1, 1, 128, 128)
    with torch.no_grad():
        enc = model.encode(x, d)
    assert enc.coarse_logits.shape == (1, 1, 128, 128) and torch.isfinite(enc.coarse_logits).all()

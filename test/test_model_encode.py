"""M4SAM encode / forward_clip on random weights: SAM2 parity at init, gradients, shapes."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from m4sam_ros.model import build_m4sam, load_config, param_groups, parameter_report
from m4sam_ros.model.moe_lora import RGB
from m4sam_ros.model.preprocess import (
    depth_to_rgb_input,
    depth_to_tensor,
    normalize_rgb,
    rgb_to_tensor,
)

S = 128


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_m4sam("m4sam_hiera_t", image_size=S)


def _inputs(b, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, S, S, generator=g), torch.rand(b, 1, S, S, generator=g)


def _randomise_adapters(model):
    for name, p in model.named_parameters():
        if name.endswith("lora_B.weight"):
            nn.init.normal_(p, std=0.2)


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_parity_mode_is_forward_image(tiny):
    x, _ = _inputs(2)
    with torch.no_grad():
        enc = tiny.encode(x)
        ref = tiny.sam.forward_image(x)
    assert enc.coarse_logits is None and enc.aux_loss.item() == 0
    assert _same(enc.backbone_out["backbone_fpn"], ref["backbone_fpn"])
    assert _same(enc.backbone_out["vision_pos_enc"], ref["vision_pos_enc"])


def test_zero_init_identity_bit_for_bit(tiny):
    """Untrained adapters (B == 0) active on an RGB-tagged batch: every trunk level equals the
    plain SAM2 trunk bit for bit (same batch, so same reduction order)."""
    x, _ = _inputs(2)
    trunk = tiny.sam.image_encoder.trunk
    with torch.no_grad():
        ref = trunk(x)
        with tiny.modality(torch.full((2,), RGB)) as aux:
            got = trunk(x)
    assert len(aux) == len(trunk.blocks)  # the adapters really ran
    assert _same(got, ref)


def test_batched_rgbd_encode_equals_forward_image_at_init(tiny):
    """encode(rgb, depth) at init: one [rgb; depth] trunk pass, zero-init fusion, SAM2 neck.

    (a) Bit for bit equal to SAM2's own trunk + neck + conv_s0/s1 run on the same 2B batch.
    (b) Against forward_image(rgb) at batch B: the only difference is batch 2B vs B in SAM2's
    own trunk (oneDNN picks another reduction order; measured ~2e-6 absolute on values ~3 at
    the stride-16 level, 0 at strides 4/8), so the bound is 1e-6 relative to the tensor's scale."""
    x, d = _inputs(2)
    with torch.no_grad():
        enc = tiny.encode(x, d)
        both = torch.cat([x, depth_to_rgb_input(d)])
        plain = tiny._neck([lv[:2] for lv in tiny.sam.image_encoder.trunk(both)])
        ref = tiny.sam.forward_image(x)
    assert _same(enc.backbone_out["backbone_fpn"], plain["backbone_fpn"])
    for a, b in zip(enc.backbone_out["backbone_fpn"], ref["backbone_fpn"], strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= 1e-6 * b.abs().max().item()
    assert enc.coarse_logits.shape == (2, 1, S, S)


def test_adapters_change_features_once_trained(tiny):
    """Guards the identity test: the hooks are live, so non-zero B moves the RGB features."""
    model = build_m4sam("m4sam_hiera_t", image_size=S)
    model.load_state_dict(tiny.state_dict())
    _randomise_adapters(model)
    x, d = _inputs(1)
    with torch.no_grad():
        a = model.encode(x, d).backbone_out["vision_features"]
        b = model.sam.forward_image(x)["vision_features"]
    assert (a - b).abs().max() > 1e-3


def test_gradients_reach_exactly_the_trainable_parameters(tiny):
    torch.manual_seed(0)
    model = build_m4sam("m4sam_hiera_t", image_size=S)
    _randomise_adapters(model)
    model.train()
    x, d = _inputs(2 * 2)
    out = model.forward_clip(x.view(2, 2, 3, S, S), d.view(2, 2, 1, S, S))
    assert out["coarse_logits"].shape == (2, 2, 1, S, S)
    assert out["memory_logits"].shape == (2, 2, 1, S, S)
    assert out["object_score_logits"].shape == (2, 2, 1)
    loss = (out["coarse_logits"].sigmoid().mean() + out["memory_logits"].sigmoid().mean()
            + out["object_score_logits"].mean() + out["aux_loss"]
            + sum(s.sigmoid().mean() for s in out["side_logits"]))
    loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad <= trainable  # nothing frozen gets a gradient
    # Everything M4-SAM adds that trains has a gradient (dense experts: unpicked ones get zeros);
    # of SAM2's memory branch only parts this clip never runs (point prompts) have none.
    assert all(model.parameter_group_of(n) == "sam_memory" for n in trainable - with_grad)
    groups = {model.parameter_group_of(n) for n in trainable}
    assert groups == {"adapters", "fusion", "gmlff", "head", "sam_memory"}
    nonzero = {model.parameter_group_of(n) for n, p in model.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    assert nonzero == groups
    for sub in ("lora_A", "lora_B", "experts", "gate"):
        assert any(sub in n and p.grad.abs().sum() > 0 for n, p in model.named_parameters()
                   if p.grad is not None), sub
    assert all(p.grad is None for p in model.sam.image_encoder.trunk.parameters())


def test_train_switches_and_param_groups():
    cfg = load_config("m4sam_hiera_t", image_size=S)
    cfg["train_sam_modules"] = True
    model = build_m4sam(cfg)
    rep = parameter_report(model)
    assert rep["by_group"]["sam_trunk"]["trainable"] == 0
    for g in ("sam_memory", "sam_neck"):
        assert rep["by_group"][g]["trainable"] == rep["by_group"][g]["total"] > 0
    assert 0 < rep["share"] < 1
    groups = param_groups(model, lr_heads=1e-3, lr_adapters=1e-4, lr_memory=2e-5)
    assert [(g["name"], g["lr"]) for g in groups] == [("adapters", 1e-4), ("memory", 2e-5),
                                                       ("heads", 1e-3)]
    assert sum(p.numel() for g in groups for p in g["params"]) == rep["trainable"]
    memory = {id(p) for p in groups[1]["params"]}
    sam = model.sam
    for mod in (sam.memory_encoder, sam.memory_attention, sam.sam_mask_decoder, sam.obj_ptr_proj,
                sam.obj_ptr_tpos_proj):
        assert all(id(p) in memory for p in mod.parameters())
    for p in (sam.maskmem_tpos_enc, sam.no_mem_embed, sam.no_obj_ptr):
        assert id(p) in memory
    assert not any(id(p) in memory for p in sam.image_encoder.parameters())


def test_memory_branch_switch():
    """train_memory_branch (benchmark configs) trains SAM2's memory branch alone in its own group;
    off, SAM2 stays frozen except what M4-SAM adds."""
    cfg = load_config("m4sam_hiera_t", image_size=S)
    assert cfg["train_memory_branch"] and cfg["head"]["type"] == "topdown"
    model = build_m4sam(cfg)
    rep = parameter_report(model)["by_group"]
    assert rep["sam_memory"]["trainable"] == rep["sam_memory"]["total"]
    assert rep["sam_neck"]["trainable"] == 0 and rep["sam_trunk"]["trainable"] == 0
    cfg["train_memory_branch"] = False
    model = build_m4sam(cfg)
    assert parameter_report(model)["by_group"]["sam_memory"]["trainable"] == 0
    assert [g["name"] for g in param_groups(model, 1e-3, 1e-4)] == ["adapters", "heads"]


def test_demo_config_small_fast_and_fully_trainable():
    model = build_m4sam("m4sam_demo")
    rep = parameter_report(model)
    assert rep["trainable"] == rep["total"]
    nbytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert nbytes <= 20 * 2**20
    assert model.image_size == 128
    x, d = torch.randn(1, 3, 128, 128), torch.rand(1, 1, 128, 128)
    with torch.no_grad():
        enc = model.encode(x, d)
        _, feats, pos, sizes = model.sam._prepare_backbone_features(enc.backbone_out)
        out = model.sam.track_step(0, True, feats, pos, sizes, None,
                                   (enc.coarse_logits.sigmoid() > 0.5).float(),
                                   {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, 1)
    assert out["pred_masks_high_res"].shape == (1, 1, 128, 128)
    assert out["maskmem_features"] is not None


def test_image_size_must_be_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        load_config("m4sam_hiera_t", image_size=100)
    assert load_config("m4sam_hiera_l", image_size=352)["image_size"] == 352


def test_preprocess():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = 255
    t = rgb_to_tensor(rgb, 32)
    assert t.shape == (1, 3, 32, 32) and t.dtype == torch.float32
    assert torch.allclose(t[0, :, 5, 5], torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224,
                                                      -0.406 / 0.225]), atol=1e-5)
    depth = np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64)
    depth[0, 0] = np.nan
    dt = depth_to_tensor(depth, 32)
    assert dt.shape == (1, 1, 32, 32) and dt.min() >= 0 and dt.max() <= 1
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(normalize_rgb(x)[:, 1], (x[:, 1] - 0.456) / 0.224)


def test_demo_trains_in_full():
    torch.manual_seed(0)
    model = build_m4sam("m4sam_demo").train()
    x, d = torch.randn(1, 2, 3, 128, 128), torch.rand(1, 2, 1, 128, 128)
    out = model.forward_clip(x, d)
    sides = sum(s.mean() for s in out["side_logits"])  # the top-down head's deep supervision
    (out["coarse_logits"].mean() + out["memory_logits"].mean() + sides + out["aux_loss"]).backward()
    trunk = model.sam.image_encoder.trunk
    assert all(p.grad is not None for p in trunk.blocks[0].attn.qkv.parameters())
    missing = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    # Unpicked experts, and SAM2 parts frame 0/1 of a 2-frame clip never use (e.g. the point
    # prompt embeddings), have no gradient; the trunk and the M4-SAM parts do.
    assert not any(n.startswith(("sam.image_encoder.trunk", "fusion", "gmlff", "head")) for n in missing)

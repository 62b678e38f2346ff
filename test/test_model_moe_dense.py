"""Dense batched MoE-LoRA experts == the sparse dispatch they replaced, with no data-dependent ops.

The reference below is the previous implementation (nonzero / index_select / index_add_ per
expert and per modality, gate logits by matmul), kept here verbatim in spirit so the packed
grouped-convolution path is checked against it on random weights and mixed modality tags.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from m4sam_ros.model import build_m4sam
from m4sam_ros.model.moe_lora import (
    DEPTH,
    FUSION_EXPERTS,
    MODALITY_EXPERTS,
    RGB,
    ExpertGroup,
    ModalityState,
    MoELoRA,
    QKVAdapter,
    balance_loss,
)


# ------------------------------------------------------------------ reference (previous code)
def ref_gate(gate, x):
    """Previous NoisyTopKGate.forward without noise (eval, or noisy=False)."""
    logits = x @ gate.w_gate
    m = min(gate.top_k + 1, gate.num_experts)
    top_vals, top_idx = logits.topk(m, dim=1)
    k_vals, k_idx = top_vals[:, : gate.top_k], top_idx[:, : gate.top_k]
    gates = torch.zeros_like(logits).scatter(1, k_idx, torch.softmax(k_vals, dim=1))
    return gates, balance_loss(gates.sum(0), (gates > 0).float().sum(0), gate.loss_weight)


def ref_group(grp, z):
    gates, aux = ref_gate(grp.gate, z.mean(dim=(2, 3)))
    out = torch.zeros_like(z)
    for e, expert in enumerate(grp.experts):
        idx = (gates[:, e] > 0).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        y = expert(z.index_select(0, idx)) * gates[idx, e].view(-1, 1, 1, 1)
        out.index_add_(0, idx, y.contiguous())
    return out, aux


def ref_low_rank(moe, za, tags):
    z = za.permute(0, 3, 1, 2).contiguous()
    aux = z.new_zeros(())
    mod = torch.zeros_like(z)
    for tag, name in ((RGB, "rgb"), (DEPTH, "depth")):
        idx = (tags == tag).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        y, a = ref_group(moe.groups[name], z.index_select(0, idx))
        mod.index_add_(0, idx, y)
        aux = aux + a
    fus, a = ref_group(moe.groups["fusion"], z)
    h = (z + mod + fus).permute(0, 2, 3, 1)
    return moe.lora_B(h * moe.scale), aux + a


def ref_hook(ad, state, module, inputs, output):
    tags = state.tags
    if tags is None:
        return None
    x = inputs[0]
    t = tags.repeat_interleave(x.shape[0] // tags.numel())
    dq, aq = ref_low_rank(ad.q, ad.q.lora_A(x), t)
    dv, av = ref_low_rank(ad.v, ad.v.lora_A(x), t)
    state.aux.append(aq + av)
    w = ad.width
    return torch.cat([output[..., :w] + dq, output[..., w : 2 * w], output[..., 2 * w :] + dv], -1)


def _randomise(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if name.endswith(("lora_B.weight", "w_gate")) or ".experts." in name:
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if "norm" not in name else 0.2)
                        + (1.0 if name.endswith(".2.weight") else 0.0))


TAGS = torch.tensor([RGB, DEPTH, DEPTH, RGB, DEPTH, RGB, RGB])


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("train", [False, True])
def test_moelora_dense_equals_sparse_reference(train):
    torch.manual_seed(0)
    moe = MoELoRA(16, 24, rank=4, noisy=False)
    _randomise(moe)
    moe.train(train)
    za = torch.randn(len(TAGS), 6, 5, 4)
    got, aux = moe.forward_low_rank(za, TAGS)
    want, want_aux = ref_low_rank(moe, za, TAGS)
    assert want.abs().max() > 0.5  # the experts and B really contribute
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if train:  # balance loss only counts in training
        torch.testing.assert_close(aux, want_aux, rtol=1e-5, atol=1e-7)
        assert aux > 0
    else:
        assert aux == 0


def test_expert_group_dense_equals_reference_and_one_modality_batch():
    torch.manual_seed(1)
    for kinds in (MODALITY_EXPERTS, FUSION_EXPERTS):
        grp = ExpertGroup(4, kinds, top_k=2, noisy=False).eval()
        _randomise(grp, seed=3)
        z = torch.randn(9, 4, 7, 7)
        got, _ = grp(z)
        want, _ = ref_group(grp, z)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    moe = MoELoRA(16, 24, rank=4, noisy=False).eval()
    _randomise(moe, seed=4)
    za = torch.randn(3, 4, 4, 4)
    only_depth = torch.full((3,), DEPTH)  # a group with no samples at all
    torch.testing.assert_close(moe.forward_low_rank(za, only_depth)[0],
                               ref_low_rank(moe, za, only_depth)[0], rtol=1e-5, atol=1e-5)


def test_qkv_hook_dense_equals_reference_with_gradients():
    torch.manual_seed(0)
    qkv = nn.Linear(8, 3 * 16)
    state = ModalityState()
    ad = QKVAdapter(qkv, state, rank=4, noisy=False).train()
    _randomise(ad)
    x = torch.randn(len(TAGS) * 2, 3, 3, 8, requires_grad=True)  # 2 windows per sample
    r = torch.randn(len(TAGS) * 2, 3, 3, 48)
    results = []
    for hook in (ad.hook, functools.partial(ref_hook, ad, state)):
        handle = qkv.register_forward_hook(hook)
        state.tags, state.aux = TAGS, []
        out = qkv(x)
        ((out * r).sum() + state.aux[0]).backward()
        results.append([out.detach().clone(), x.grad.clone(), ad.q.lora_B.weight.grad.clone(),
                        ad.v.groups["fusion"].experts[2][0].weight.grad.clone(),
                        ad.q.groups["rgb"].gate.w_gate.grad.clone()])
        handle.remove()
        for p in [x, *ad.parameters(), *qkv.parameters()]:
            p.grad = None
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_whole_encoder_dense_equals_reference():
    """The clip model's encode with every adapter through the reference hook vs the dense one."""
    torch.manual_seed(0)
    model = build_m4sam("m4sam_hiera_t", image_size=64)
    _randomise(model.adapters)
    x, d = torch.randn(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        got = model.encode(x, d)
        for h in model._hook_handles:
            h.remove()
        for blk, ad in zip(model.sam.image_encoder.trunk.blocks, model.adapters, strict=True):
            blk.attn.qkv.register_forward_hook(functools.partial(ref_hook, ad, model._state))
        want = model.encode(x, d)
    assert (want.backbone_out["vision_features"] - model.sam.forward_image(x)["vision_features"]).abs().max() > 1e-2
    for a, b in zip(got.backbone_out["backbone_fpn"], want.backbone_out["backbone_fpn"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
    torch.testing.assert_close(got.coarse_logits, want.coarse_logits, rtol=1e-4, atol=1e-4)


class _OpLog(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


def test_no_data_dependent_ops():
    """The same op sequence whatever the data and routing, and none of the data-dependent ops
    (nonzero, index_select, index_add, item) that block an ONNX/TensorRT export."""
    moe = MoELoRA(16, 24, rank=4, noisy=False).eval()
    logs = []
    for seed, tags in ((0, TAGS), (1, torch.full((7,), RGB))):
        _randomise(moe, seed)
        with torch.no_grad(), _OpLog() as log:
            moe(torch.randn(7, 5, 5, 16), tags)
        logs.append(log.ops)
    assert logs[0] == logs[1]
    assert not {"nonzero", "index_select", "index_add", "index_add_", "_local_scalar_dense"} & set(logs[0])
    # all experts: one conv per first-conv kernel size (5x5, 3x3, 1x1) + one for the second convs
    assert sum(op == "convolution" for op in logs[0]) == 4


def test_grouped_conv_kernels_match_each_expert_kind():
    """Each expert kind alone through the packed path equals the expert module itself."""
    torch.manual_seed(2)
    for kind in (*MODALITY_EXPERTS, *FUSION_EXPERTS):
        grp = ExpertGroup(4, (kind,), top_k=1, noisy=False).eval()
        _randomise(grp, seed=5)
        z = torch.randn(3, 4, 6, 6)
        torch.testing.assert_close(grp(z)[0], grp.experts[0](z), rtol=1e-5, atol=1e-5)

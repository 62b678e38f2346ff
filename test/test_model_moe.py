"""MoE-LoRA pieces: dispatcher routing, gates, gate-weighted combine, balance loss."""

import pytest
import torch
import torch.nn as nn

from m4sam_ros.model.moe_lora import (
    DEPTH,
    RGB,
    ExpertGroup,
    ModalityState,
    MoELoRA,
    NoisyTopKGate,
    QKVAdapter,
    balance_loss,
)


def _random_b(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        if name.endswith("lora_B.weight"):
            nn.init.normal_(p, std=0.5)


def _group_grads(moe: MoELoRA) -> dict:
    return {g: any(p.grad is not None and p.grad.abs().sum() > 0 for p in grp.parameters())
            for g, grp in moe.groups.items()}


@pytest.mark.parametrize("target,expect", [(DEPTH, {"rgb": False, "depth": True, "fusion": True}),
                                           (RGB, {"rgb": True, "depth": False, "fusion": True})])
def test_dispatcher_routes_by_modality_gradients(target, expect):
    torch.manual_seed(0)
    moe = MoELoRA(16, 16, rank=4)
    _random_b(moe)
    x = torch.randn(6, 5, 5, 16)
    tags = torch.tensor([RGB, DEPTH, DEPTH, RGB, DEPTH, RGB])
    delta, _ = moe(x, tags)
    # Only the output of the target modality's samples feeds the loss.
    delta[tags == target].pow(2).sum().backward()
    assert _group_grads(moe) == expect


def test_dispatcher_gates_see_only_own_samples_inside_windows():
    """Through the qkv hook with windowed input: per-sample tags expand over each sample's windows
    (sample-major); the RGB gate is zero on exactly the depth samples' windows and vice versa, the
    fusion gate is live everywhere."""
    torch.manual_seed(0)
    qkv = nn.Linear(8, 3 * 16)  # a q-pool-like block: out slice 16 != in 8
    state = ModalityState()
    ad = QKVAdapter(qkv, state, rank=4)
    qkv.register_forward_hook(ad.hook)
    seen = {}
    for g in ("rgb", "depth", "fusion"):
        gate = ad.q.groups[g].gate
        orig = gate.route
        gate.route = lambda x, m, w, g=g, orig=orig: seen.__setitem__(g, orig(x, m, w)) or seen[g]
    b, nw = 3, 4
    x = torch.randn(b * nw, 2, 2, 8)
    tags = torch.tensor([DEPTH, RGB, DEPTH])
    state.tags = tags
    qkv(x)
    win_tags = tags.repeat_interleave(nw)
    rows = {g: seen[g][0].sum(1) > 0 for g in seen}  # windows with a live gate
    assert torch.equal(rows["rgb"], win_tags == RGB)
    assert torch.equal(rows["depth"], win_tags == DEPTH)
    assert rows["fusion"].all()
    assert len(state.aux) == 1


def test_qkv_hook_inactive_without_tags_and_zero_init_is_exact():
    torch.manual_seed(0)
    qkv = nn.Linear(8, 3 * 16)
    state = ModalityState()
    ad = QKVAdapter(qkv, state, rank=4)
    qkv.register_forward_hook(ad.hook)
    x = torch.randn(4, 3, 3, 8)
    ref = x @ qkv.weight.T + qkv.bias
    plain = qkv(x)
    state.tags = torch.tensor([RGB, DEPTH, RGB, DEPTH])
    tagged = qkv(x)  # B == 0: exact no-op
    assert torch.equal(plain, tagged)
    assert torch.allclose(plain, ref, atol=1e-6)
    _random_b(ad)
    changed = qkv(x)
    w = 16
    assert torch.equal(changed[..., w : 2 * w], plain[..., w : 2 * w])  # k slice untouched
    assert not torch.allclose(changed[..., :w], plain[..., :w])  # q adapted
    assert not torch.allclose(changed[..., 2 * w :], plain[..., 2 * w :])  # v adapted


def test_gate_uniform_routing_zero_loss_skewed_positive():
    gate = NoisyTopKGate(3, 3, top_k=2).eval()
    with torch.no_grad():
        gate.w_gate.copy_(-10 * torch.eye(3))  # sample e_i avoids expert i
    gates, loss = gate(torch.eye(3))  # each pair of experts once -> uniform
    assert torch.allclose(gates.sum(0), torch.ones(3))
    assert ((gates > 0).sum(1) == 2).all()
    assert loss.item() == 0.0
    gates, loss = gate(torch.eye(3)[[0, 0, 0]])  # always experts 1 and 2
    assert gates[:, 0].abs().sum() == 0
    assert loss.item() > 0.01
    assert balance_loss(torch.ones(5), torch.full((5,), 3.0)).item() == 0.0
    assert balance_loss(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])).item() > 0


def test_gate_topk_softmax_and_noise_only_in_training():
    torch.manual_seed(0)
    gate = NoisyTopKGate(4, 3, top_k=2)
    nn.init.normal_(gate.w_gate)
    x = torch.randn(32, 4)
    gate.eval()
    g1, _ = gate(x)
    g2, _ = gate(x)
    assert torch.equal(g1, g2)
    logits = x @ gate.w_gate
    top, idx = logits.topk(2, dim=1)
    expect = torch.zeros_like(logits).scatter(1, idx, torch.softmax(top, 1))
    assert torch.allclose(g1, expect)
    gate.train()
    g3, loss = gate(x)
    g4, _ = gate(x)
    assert not torch.equal(g3, g4)
    loss.backward()
    assert gate.w_noise.grad is not None and gate.w_noise.grad.abs().sum() > 0  # smooth load
    k1 = NoisyTopKGate(4, 3, top_k=1).eval()
    nn.init.normal_(k1.w_gate)
    g, _ = k1(x)
    assert ((g > 0).sum(1) == 1).all() and torch.allclose(g.sum(1), torch.ones(32))


def test_expert_group_is_gate_weighted_sum():
    torch.manual_seed(0)
    grp = ExpertGroup(4, ("conv3x3", "conv5x5", "dwsep3x3"), top_k=2, noisy=True).eval()
    nn.init.normal_(grp.gate.w_gate)
    z = torch.randn(10, 4, 6, 6)
    out, _ = grp(z)
    gates, _ = grp.gate(z.mean(dim=(2, 3)))
    dense = sum(gates[:, e].view(-1, 1, 1, 1) * ex(z) for e, ex in enumerate(grp.experts))
    assert torch.allclose(out, dense, atol=1e-6)


def test_hook_in_place_add_keeps_gradients_exact():
    """The hook adds the deltas in place into the qkv output; gradients (to x, the qkv weight and
    the adapter) must equal those of the out-of-place formula."""
    torch.manual_seed(0)
    qkv = nn.Linear(8, 3 * 16)
    state = ModalityState()
    ad = QKVAdapter(qkv, state, rank=4).eval()
    _random_b(ad)
    handle = qkv.register_forward_hook(ad.hook)
    x = torch.randn(4, 3, 3, 8, requires_grad=True)
    r = torch.randn(4, 3, 3, 48)
    tags = torch.tensor([RGB, DEPTH, RGB, DEPTH])
    state.tags = tags
    (qkv(x) * r).sum().backward()
    got = [x.grad.clone(), qkv.weight.grad.clone(), ad.q.lora_B.weight.grad.clone()]
    for p in [x, *qkv.parameters(), *ad.parameters()]:
        p.grad = None
    handle.remove()
    dq, _ = ad.q(x, tags)
    dv, _ = ad.v(x, tags)
    out = qkv(x) + torch.cat([dq, torch.zeros_like(dq), dv], dim=-1)
    (out * r).sum().backward()
    want = [x.grad, qkv.weight.grad, ad.q.lora_B.weight.grad]
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-5)

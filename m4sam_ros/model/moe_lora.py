"""Modality-Aware MoE-LoRA for the frozen SAM2 Hiera trunk (METHOD.md part 1).

Each Hiera block's fused ``attn.qkv`` Linear keeps its own weights (so SAM2 state dicts load
unchanged); a forward hook adds the low-rank update to its q and v slices. The low-rank map
``z = x A^T`` is kept in its spatial layout (B', H, W, r) and passed through convolutional experts:
a modality group chosen per sample by its tag (RGB or depth) plus a shared fusion group, each
with a noisy top-k gate. ``B`` starts at zero, so an untrained adapter changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

RGB = 0
DEPTH = 1

MODALITY_EXPERTS = ("conv3x3", "conv5x5", "dwsep3x3")
FUSION_EXPERTS = ("conv1x1_3x3", "conv5x5_1x1", "dw3x3_3x3")


def _norm(ch: int) -> nn.Module:
    # One group: per-sample (per-window) normalisation, never mixing RGB and depth samples.
    return nn.GroupNorm(1, ch)


def make_expert(kind: str, ch: int) -> nn.Module:
    """One convolutional expert on the rank-``ch`` spatial map (channels-first)."""
    if kind == "conv3x3":
        layers = [nn.Conv2d(ch, ch, 3, padding=1)]
    elif kind == "conv5x5":
        layers = [nn.Conv2d(ch, ch, 5, padding=2)]
    elif kind == "dwsep3x3":
        layers = [nn.Conv2d(ch, ch, 3, padding=1, groups=ch), nn.Conv2d(ch, ch, 1)]
    elif kind == "conv1x1_3x3":
        layers = [nn.Conv2d(ch, ch, 1), nn.Conv2d(ch, ch, 3, padding=1)]
    elif kind == "conv5x5_1x1":
        layers = [nn.Conv2d(ch, ch, 5, padding=2), nn.Conv2d(ch, ch, 1)]
    elif kind == "dw3x3_3x3":
        layers = [nn.Conv2d(ch, ch, 3, padding=1, groups=ch), nn.Conv2d(ch, ch, 3, padding=1)]
    else:
        raise ValueError(f"unknown expert kind {kind!r}")
    return nn.Sequential(*layers, _norm(ch), nn.GELU())


def cv_squared(x: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation: 0 for a perfectly even spread over experts."""
    x = x.float()
    if x.numel() <= 1:
        return x.new_zeros(())
    return x.var() / (x.mean() ** 2 + 1e-10)


def balance_loss(importance: torch.Tensor, load: torch.Tensor, weight: float = 0.01) -> torch.Tensor:
    """Load-balancing loss of one gate: weight * (cv^2(importance) + cv^2(load))."""
    return weight * (cv_squared(importance) + cv_squared(load))


class NoisyTopKGate(nn.Module):
    """Noisy top-k gate (Shazeer et al. 2017); noise only in training.

    Returns dense gate weights [N, E] (zero outside the top k, softmax over the top-k logits)
    and the gate's balance loss.
    """

    def __init__(self, in_dim: int, num_experts: int, top_k: int = 2, noisy: bool = True,
                 loss_weight: float = 0.01) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k={top_k} must be in [1, {num_experts}]")
        self.num_experts = num_experts
        self.top_k = top_k
        self.noisy = noisy
        self.loss_weight = loss_weight
        # Zero init: every expert starts equally likely (noise breaks the tie in training).
        self.w_gate = nn.Parameter(torch.zeros(in_dim, num_experts))
        self.w_noise = nn.Parameter(torch.zeros(in_dim, num_experts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clean = x @ self.w_gate
        use_noise = self.noisy and self.training
        if use_noise:
            noise_std = F.softplus(x @ self.w_noise) + 1e-2
            logits = clean + torch.randn_like(clean) * noise_std
        else:
            logits = clean
        m = min(self.top_k + 1, self.num_experts)
        top_vals, top_idx = logits.topk(m, dim=1)
        k_vals, k_idx = top_vals[:, : self.top_k], top_idx[:, : self.top_k]
        gates = torch.zeros_like(logits).scatter(1, k_idx, torch.softmax(k_vals, dim=1))
        importance = gates.sum(0)
        if use_noise and self.top_k < self.num_experts:
            load = self._prob_in_top_k(clean, logits, noise_std, top_vals).sum(0)
        else:
            load = (gates > 0).float().sum(0)
        return gates, balance_loss(importance, load, self.loss_weight)

    def _prob_in_top_k(self, clean: torch.Tensor, noisy: torch.Tensor, noise_std: torch.Tensor,
                       top_vals: torch.Tensor) -> torch.Tensor:
        # Differentiable estimate of P(expert in top k) under resampled noise: an expert is in
        # when its noisy logit beats the k-th best of the *others* (the (k+1)-th value if it is
        # currently in, the k-th if it is out).
        thr_in = top_vals[:, self.top_k : self.top_k + 1]
        thr_out = top_vals[:, self.top_k - 1 : self.top_k]
        is_in = noisy > thr_in
        normal = torch.distributions.Normal(clean.new_zeros(()), clean.new_ones(()))
        p_in = normal.cdf((clean - thr_in) / noise_std)
        p_out = normal.cdf((clean - thr_out) / noise_std)
        return torch.where(is_in, p_in, p_out)


class ExpertGroup(nn.Module):
    """A set of conv experts behind one noisy top-k gate, combined as a gate-weighted sum.

    Only the samples a gate picked for an expert run through it (sparse dispatch).
    """

    def __init__(self, rank: int, kinds: Sequence[str], top_k: int, noisy: bool) -> None:
        super().__init__()
        self.experts = nn.ModuleList(make_expert(k, rank) for k in kinds)
        self.gate = NoisyTopKGate(rank, len(self.experts), min(top_k, len(self.experts)), noisy)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gates, aux = self.gate(z.mean(dim=(2, 3)))
        out = torch.zeros_like(z)
        for e, expert in enumerate(self.experts):
            idx = (gates[:, e] > 0).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            y = expert(z.index_select(0, idx)) * gates[idx, e].view(-1, 1, 1, 1)
            out.index_add_(0, idx, y.contiguous())
        return out, aux


class MoELoRA(nn.Module):
    """Low-rank adapter with modality-dispatched conv experts for one q or v slice."""

    def __init__(self, in_features: int, out_features: int, rank: int = 4, alpha: float = 1.0,
                 top_k: int = 2, noisy: bool = True,
                 modality_experts: Sequence[str] = MODALITY_EXPERTS,
                 fusion_experts: Sequence[str] = FUSION_EXPERTS) -> None:
        super().__init__()
        self.scale = alpha / rank
        self.lora_A = nn.Linear(in_features, rank, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        self.lora_B = nn.Linear(rank, out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        self.groups = nn.ModuleDict({
            "rgb": ExpertGroup(rank, modality_experts, top_k, noisy),
            "depth": ExpertGroup(rank, modality_experts, top_k, noisy),
            "fusion": ExpertGroup(rank, fusion_experts, top_k, noisy),
        })

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, H, W, C) spatial tokens; tags: (N,) RGB/DEPTH per sample -> (delta, aux)."""
        return self.forward_low_rank(self.lora_A(x), tags)

    def forward_low_rank(self, za: torch.Tensor, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything after A: za = x A^T as (N, H, W, r)."""
        # (N, r, H, W): the spatial low-rank map the experts see. Contiguous: index_add on a permuted
        # tensor takes a strided scatter path that was half of the encoder's CPU time.
        z = za.permute(0, 3, 1, 2).contiguous()
        aux = z.new_zeros(())
        mod = torch.zeros_like(z)
        for tag, name in ((RGB, "rgb"), (DEPTH, "depth")):
            idx = (tags == tag).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            y, a = self.groups[name](z.index_select(0, idx))
            mod.index_add_(0, idx, y)
            aux = aux + a
        fus, a = self.groups["fusion"](z)
        aux = aux + a
        h = (z + mod + fus).permute(0, 2, 3, 1)
        return self.lora_B(h * self.scale), aux


class ModalityState:
    """Per-forward modality tags shared by all qkv hooks, and the balance losses they produce."""

    def __init__(self) -> None:
        self.tags: torch.Tensor | None = None
        self.aux: list[torch.Tensor] = []

    def set_tags(self, tags: torch.Tensor | None) -> None:
        """Tags [B] (RGB=0 / DEPTH=1) for the next trunk forward, or None (adapters inactive)."""
        self.tags = tags


class QKVAdapter(nn.Module):
    """The q and v MoE-LoRA adapters of one Hiera block; called from a forward hook on qkv."""

    def __init__(self, qkv: nn.Linear, state: ModalityState, **moe_kwargs) -> None:
        super().__init__()
        # At q-pool blocks qkv maps dim -> 3*dim_out with dim_out = 2*dim: the slice width is
        # out_features // 3, not in_features.
        if qkv.out_features % 3:
            raise ValueError("qkv.out_features must be divisible by 3")
        self.width = qkv.out_features // 3
        self.q = MoELoRA(qkv.in_features, self.width, **moe_kwargs)
        self.v = MoELoRA(qkv.in_features, self.width, **moe_kwargs)
        self._state = state

    def hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...],
             output: torch.Tensor) -> torch.Tensor | None:
        tags = self._state.tags
        if tags is None:
            return None  # adapters inactive: qkv output untouched (SAM2 parity)
        x = inputs[0]
        n = x.shape[0]
        if n % tags.numel():
            raise RuntimeError(f"qkv batch {n} is not a multiple of {tags.numel()} modality tags")
        # window_partition is sample-major: windows of sample i are contiguous.
        t = tags.repeat_interleave(n // tags.numel())
        # One pass over x for both A matrices (x is the large tensor here).
        za = F.linear(x, torch.cat([self.q.lora_A.weight, self.v.lora_A.weight]))
        zq, zv = za.split([self.q.lora_A.out_features, self.v.lora_A.out_features], dim=-1)
        dq, aq = self.q.forward_low_rank(zq, t)
        dv, av = self.v.forward_low_rank(zv, t)
        self._state.aux.append(aq + av)
        w = self.width
        # In place on the q and v slices (no copy of the whole qkv output): the Linear's backward
        # needs its input and weight, never its output, so autograd is unaffected.
        output[..., :w].add_(dq)
        output[..., 2 * w :].add_(dv)
        return output

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
    and the gate's balance loss. The gate always computes in float32 with elementwise products
    (no matmul), so CUDA autocast (which runs matmul in bf16 but softmax in float32) cannot give
    its pieces different dtypes.
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
        gates, loss = self.route(x, None, with_loss=True)
        return gates, loss

    def route(self, x: torch.Tensor, sample_mask: torch.Tensor | None,
              with_loss: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Gates [N, E] float32 for pooled inputs ``x`` [N, D]; rows where ``sample_mask`` [N] is
        False are zero and do not count in the balance loss (samples of the other modality)."""
        x = x.float()
        clean = _float_matmul(x, self.w_gate)
        use_noise = self.noisy and self.training
        if use_noise:
            noise_std = F.softplus(_float_matmul(x, self.w_noise)) + 1e-2
            logits = clean + torch.randn_like(clean) * noise_std
        else:
            logits = clean
        m = min(self.top_k + 1, self.num_experts)
        top_vals, top_idx = logits.topk(m, dim=1)
        k_vals, k_idx = top_vals[:, : self.top_k], top_idx[:, : self.top_k]
        gates = torch.zeros_like(logits).scatter(1, k_idx, torch.softmax(k_vals, dim=1))
        keep = None if sample_mask is None else sample_mask.to(gates.dtype).unsqueeze(1)
        if keep is not None:
            gates = gates * keep
        if not with_loss:
            return gates, None
        importance = gates.sum(0)
        if use_noise and self.top_k < self.num_experts:
            p = self._prob_in_top_k(clean, logits, noise_std, top_vals)
            load = (p if keep is None else p * keep).sum(0)
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


def _float_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x [N, D] @ w [D, E] in float32 as a broadcast product + sum: autocast leaves elementwise
    ops alone (and sums in float32), so the result is float32 on every device."""
    return (x.float().unsqueeze(2) * w.float().unsqueeze(0)).sum(1)


class ExpertGroup(nn.Module):
    """A set of conv experts behind one noisy top-k gate, combined as a gate-weighted sum.

    Evaluated densely (``PackedExperts``): every expert runs on every sample in one grouped
    convolution and unpicked experts are multiplied by a zero gate weight.
    """

    def __init__(self, rank: int, kinds: Sequence[str], top_k: int, noisy: bool) -> None:
        super().__init__()
        self.kinds = tuple(kinds)
        self.experts = nn.ModuleList(make_expert(k, rank) for k in kinds)
        self.gate = NoisyTopKGate(rank, len(self.experts), min(top_k, len(self.experts)), noisy)
        self._packed = PackedExperts()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gates, aux = self.gate(z.mean(dim=(2, 3)))
        y, perm = self._packed.run(z, [self.experts])
        if perm is not None:
            gates = gates[:, perm]
        mix = (y.unflatten(1, (len(self.experts), -1)) * gates[:, :, None, None, None]).sum(1)
        return mix.to(z.dtype), aux


def _expert_convs(expert: nn.Module) -> tuple[list[nn.Conv2d], nn.GroupNorm]:
    convs = [m for m in expert if isinstance(m, nn.Conv2d)]
    norms = [m for m in expert if isinstance(m, nn.GroupNorm)]
    if not 1 <= len(convs) <= 2 or len(norms) != 1 or norms[0].num_groups != 1:
        raise ValueError("an expert must be 1-2 convs + GroupNorm(1, r) + GELU")
    return convs, norms[0]


def _dense_kernel(conv: nn.Conv2d, size: int) -> torch.Tensor:
    """The conv's weight as a dense (groups=1) kernel zero-padded to size x size: a conv with it
    and padding size//2 computes the same map (depthwise -> diagonal over channels)."""
    w = conv.weight
    if conv.groups != 1:
        if conv.groups != conv.in_channels or conv.out_channels != conv.in_channels:
            raise ValueError("only dense or depthwise expert convs are supported")
        eye = torch.eye(conv.in_channels, dtype=w.dtype, device=w.device)
        w = w * eye[:, :, None, None]  # [C,1,k,k] * [C,C,1,1] -> [C,C,k,k], zero off the diagonal
    pad = (size - w.shape[-1]) // 2
    return F.pad(w, [pad] * 4) if pad else w


class PackedExperts:
    """Every expert of several expert groups as one grouped convolution per first-conv kernel
    size (+ one grouped second conv, one GroupNorm, one GELU), with no data-dependent control
    flow: what an export to ONNX/TensorRT needs, and on a CPU it removes the per-expert dispatch
    that cost more than the arithmetic. Grouping by kernel size (5x5 / 3x3 / 1x1) instead of
    padding every kernel to 5x5 halves the dense arithmetic; depthwise kernels become diagonal
    dense ones; experts with one conv get an identity second conv. Weights are re-packed on every
    call that records gradients and cached (per parameter version) otherwise.

    Input z [N, L*r, H, W] (L low-rank maps side by side, the same expert kinds on each);
    ``experts_per_map[l]`` lists the experts of map l. ``run`` returns the expert outputs
    [N, L*E*r, H, W], map-major, experts in ``perm`` order, and ``perm`` (global expert indices,
    to reorder the gates the same way; None when the order is unchanged).
    """

    def __init__(self) -> None:
        # a plain object, not a submodule: the owning modules register the experts
        self._cache_key: tuple | None = None
        self._cache: tuple | None = None

    def _pack(self, experts_per_map: list[Sequence[nn.Module]]) -> tuple:
        maps = [[_expert_convs(e) for e in es] for es in experts_per_map]
        n_maps, n_e = len(maps), len(maps[0])
        if any(len(m) != n_e for m in maps):
            raise ValueError("every low-rank map needs the same experts")
        sizes = [c[0].kernel_size[0] for c, _ in maps[0]]
        ks = sorted(set(sizes), reverse=True)
        order = [j for k in ks for j in range(n_e) if sizes[j] == k]   # per map, by kernel size
        stage1 = []
        for k in ks:
            sel = [j for j in order if sizes[j] == k]
            w = torch.cat([_dense_kernel(maps[m][j][0][0], k) for m in range(n_maps) for j in sel])
            b = torch.cat([maps[m][j][0][0].bias for m in range(n_maps) for j in sel])
            stage1.append((w, b, k, len(sel)))
        parts = [maps[m][j] for m in range(n_maps) for j in order]
        two = any(len(c) == 2 for c, _ in parts)
        k2 = max((c[1].kernel_size[0] for c, _ in parts if len(c) == 2), default=1)
        w2 = b2 = None
        if two:
            ws, bs = [], []
            for c, _ in parts:
                if len(c) == 2:
                    ws.append(_dense_kernel(c[1], k2))
                    bs.append(c[1].bias)
                else:  # identity: 1.0 * x + exact zeros
                    r = c[0].out_channels
                    eye = torch.eye(r, dtype=c[0].weight.dtype, device=c[0].weight.device)
                    ws.append(F.pad(eye[:, :, None, None], [(k2 - 1) // 2] * 4))
                    bs.append(torch.zeros_like(c[0].bias))
            w2, b2 = torch.cat(ws), torch.cat(bs)
        gn_w = torch.cat([n.weight for _, n in parts])
        gn_b = torch.cat([n.bias for _, n in parts])
        eps = parts[0][1].eps
        perm = None
        if order != list(range(n_e)):
            perm = torch.tensor([m * n_e + j for m in range(n_maps) for j in order],
                                device=gn_w.device)
        return stage1, w2, b2, k2, gn_w, gn_b, eps, n_maps, len(parts), perm

    def run(self, z: torch.Tensor,
            experts_per_map: list[Sequence[nn.Module]]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if torch.is_grad_enabled():
            packed = self._pack(experts_per_map)
        else:
            params = [p for es in experts_per_map for e in es for p in e.parameters()]
            key = tuple((id(p), p._version, p.dtype, p.device) for p in params)
            if key != self._cache_key:
                self._cache, self._cache_key = self._pack(experts_per_map), key
            packed = self._cache
        stage1, w2, b2, k2, gn_w, gn_b, eps, n_maps, n_experts, perm = packed
        ys = [F.conv2d(z, w, b, padding=k // 2, groups=n_maps) for w, b, k, _ in stage1]
        if len(ys) == 1:
            y = ys[0]
        else:  # map-major: map 0's experts of every kernel size, then map 1's, ...
            r = z.shape[1] // n_maps
            y = torch.cat([yk[:, m * n * r : (m + 1) * n * r] for m in range(n_maps)
                           for yk, (_, _, _, n) in zip(ys, stage1, strict=True)], dim=1)
        if w2 is not None:
            y = F.conv2d(y, w2, b2, padding=k2 // 2, groups=n_experts)
        # convs run fastest on the channels-last view of z; CPU group_norm 5x slower on it
        y = y.contiguous()
        return F.gelu(F.group_norm(y, n_experts, gn_w, gn_b, eps)), perm


class MoELoRA(nn.Module):
    """Low-rank adapter with modality-dispatched conv experts for one q or v slice."""

    def __init__(self, in_features: int, out_features: int, rank: int = 4, alpha: float = 1.0,
                 top_k: int = 2, noisy: bool = True,
                 modality_experts: Sequence[str] = MODALITY_EXPERTS,
                 fusion_experts: Sequence[str] = FUSION_EXPERTS) -> None:
        super().__init__()
        self.scale = alpha / rank
        self.rank = rank
        self.lora_A = nn.Linear(in_features, rank, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        self.lora_B = nn.Linear(rank, out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        self.groups = nn.ModuleDict({
            "rgb": ExpertGroup(rank, modality_experts, top_k, noisy),
            "depth": ExpertGroup(rank, modality_experts, top_k, noisy),
            "fusion": ExpertGroup(rank, fusion_experts, top_k, noisy),
        })
        self._packed = PackedExperts()

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, H, W, C) spatial tokens; tags: (N,) RGB/DEPTH per sample -> (delta, aux)."""
        return self.forward_low_rank(self.lora_A(x), tags)

    def forward_low_rank(self, za: torch.Tensor, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything after A: za = x A^T as (N, H, W, r)."""
        (h,), aux = mix_low_rank([self], self._packed, za, _modality_masks(tags))
        return self.lora_B(h * self.scale), aux

    def gate_list(self) -> list[tuple[NoisyTopKGate, int | None]]:
        """(gate, modality whose samples it sees or None for all) in expert order."""
        return [(self.groups["rgb"].gate, RGB), (self.groups["depth"].gate, DEPTH),
                (self.groups["fusion"].gate, None)]

    def expert_list(self) -> list[nn.Module]:
        return [*self.groups["rgb"].experts, *self.groups["depth"].experts,
                *self.groups["fusion"].experts]


def _modality_masks(tags: torch.Tensor) -> dict[int, torch.Tensor]:
    return {RGB: tags == RGB, DEPTH: tags == DEPTH}


def mix_low_rank(loras: list[MoELoRA], packed: PackedExperts, za: torch.Tensor,
                 masks: dict[int, torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Dense MoE for L low-rank maps at once. za (N, H, W, L*r) holds the maps side by side;
    returns per map h = z + sum_g sum_e gate_ge * expert_ge(z) as (N, H, W, r) in za's dtype, and
    the summed balance loss (computed in training mode only; zero otherwise).

    RGB-group gates are zero on depth samples and vice versa, so the result equals sparse
    dispatch; every expert runs on every sample (one grouped conv), none is skipped."""
    # (N, L*r, H, W) as a channels-last view of za: no copy, and convs take it as it is
    z = za.permute(0, 3, 1, 2)
    pooled = za.float().mean(dim=(1, 2))                                    # [N, L*r]
    with_loss = any(lo.training for lo in loras)
    gate_cols, aux = [], za.new_zeros((), dtype=torch.float32)
    for i, lo in enumerate(loras):
        p = pooled[:, i * lo.rank : (i + 1) * lo.rank]
        for gate, modality in lo.gate_list():
            g, a = gate.route(p, None if modality is None else masks[modality], with_loss)
            gate_cols.append(g)
            if a is not None:
                aux = aux + a
    gates = torch.cat(gate_cols, dim=1)                                     # [N, sum E], fp32
    y, perm = packed.run(z, [lo.expert_list() for lo in loras])             # [N, sum E * r, H, W]
    if perm is not None:
        gates = gates[:, perm]                                              # the experts' order
    r = loras[0].rank
    mixed = (y.unflatten(1, (-1, r)) * gates[:, :, None, None, None])       # [N, sum E, r, H, W]
    outs, start = [], 0
    for i, lo in enumerate(loras):
        n_e = len(lo.expert_list())
        m = mixed[:, start : start + n_e].sum(1).to(za.dtype)               # [N, r, H, W]
        start += n_e
        outs.append((z[:, i * r : (i + 1) * r] + m).permute(0, 2, 3, 1))
    return outs, aux


class ModalityState:
    """Per-forward modality tags shared by all qkv hooks, and the balance losses they produce."""

    def __init__(self) -> None:
        self.tags: torch.Tensor | None = None
        self.aux: list[torch.Tensor] = []

        self._masks: dict[int, tuple[torch.Tensor, dict[int, torch.Tensor]]] = {}

    def set_tags(self, tags: torch.Tensor | None) -> None:
        """Tags [B] (RGB=0 / DEPTH=1) for the next trunk forward, or None (adapters inactive)."""
        self.tags = tags
        self._masks = {}

    def window_masks(self, n: int) -> dict[int, torch.Tensor]:
        """Per-window modality masks for a qkv batch of ``n`` windows (sample-major), computed
        once per size and forward (the 2 x blocks hooks share them)."""
        tags = self.tags
        if tags is None:
            raise RuntimeError("no modality tags set")
        if n % tags.numel():
            raise RuntimeError(f"qkv batch {n} is not a multiple of {tags.numel()} modality tags")
        cached = self._masks.get(n)
        if cached is None or cached[0] is not tags:  # keyed on the tags object itself
            cached = (tags, _modality_masks(tags.repeat_interleave(n // tags.numel())))
            self._masks[n] = cached
        return cached[1]


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
        self._packed = PackedExperts()

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
        masks = self._state.window_masks(n)
        # One pass over x for both A matrices (x is the large tensor here); q and v experts then
        # run as one packed grouped convolution.
        za = F.linear(x, torch.cat([self.q.lora_A.weight, self.v.lora_A.weight]))
        (hq, hv), aux = mix_low_rank([self.q, self.v], self._packed, za, masks)
        dq = self.q.lora_B(hq * self.q.scale)
        dv = self.v.lora_B(hv * self.v.scale)
        self._state.aux.append(aux)
        w = self.width
        if torch.onnx.is_in_onnx_export():
            # An in-place slice add exports as ScatterND, whose index tensor (one int64 4-tuple per
            # element of qkv) ONNX Runtime's constant folding materialises: 1.6 GB resident for
            # hiera-t at 256 px, and slow. A concat of the three slices is the same arithmetic.
            return torch.cat([output[..., :w] + dq, output[..., w : 2 * w], output[..., 2 * w :] + dv], dim=-1)
        # In place on the q and v slices (no copy of the whole qkv output): the Linear's backward
        # needs its input and weight, never its output, so autograd is unaffected.
        output[..., :w].add_(dq)
        output[..., 2 * w :].add_(dv)
        return output

"""The whole clip model under CUDA autocast's per-op dtype rules (emulated on CPU) and in bf16.

CPU autocast follows other op lists than CUDA's (softmax and group_norm stay in the input dtype
there), so a model that runs under CPU autocast can still crash on its first CUDA call. This
``TorchFunctionMode`` casts the floating-point tensor arguments of each op as CUDA autocast does
(torch.amp docs, "CUDA Ops that can autocast to float16"/"to float32"/"promote to the widest
input type"): matmul/linear/conv/bmm/sdpa to the low-precision dtype, softmax/group_norm/
layer_norm/sum/exp/... to float32, index_put/scatter_add/... to the widest type. Other ops run
in whatever dtype their inputs have, as under autocast. The casts are ordinary differentiable
``.to()`` calls above autograd, so forward *and* backward are exercised as on a GPU.

Regions that disable CUDA autocast (``torch.autocast("cuda", enabled=False)``) are honoured:
entering the emulation sets the CUDA autocast flag, which such regions switch off.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from m4sam_ros.model import build_m4sam
from m4sam_ros.model.moe_lora import MoELoRA
from m4sam_ros.training.losses import clip_loss

LOWER = {
    "__matmul__", "__rmatmul__", "addbmm", "addmm", "addmv", "addr", "baddbmm", "bmm", "chain_matmul",
    "multi_dot", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "linear", "matmul", "mm", "mv", "prelu", "scaled_dot_product_attention",
}
FLOAT32 = {
    "__pow__", "__rdiv__", "__rpow__", "__rtruediv__", "acos", "asin", "binary_cross_entropy_with_logits",
    "cosh", "cosine_embedding_loss", "cdist", "cosine_similarity", "cross_entropy", "cumprod", "cumsum",
    "dist", "erfinv", "exp", "expm1", "group_norm", "hinge_embedding_loss", "kl_div", "l1_loss",
    "layer_norm", "log", "log_softmax", "log10", "log1p", "log2", "margin_ranking_loss", "mse_loss",
    "multilabel_margin_loss", "multi_margin_loss", "nll_loss", "norm", "normalize", "pdist",
    "poisson_nll_loss", "pow", "prod", "reciprocal", "rsqrt", "sinh", "smooth_l1_loss",
    "soft_margin_loss", "softmax", "softmin", "softplus", "sum", "renorm", "tan", "triplet_margin_loss",
}
PROMOTE = {"addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "grid_sample", "index_put",
           "scatter_add", "tensordot"}
_AUTOCASTABLE = (torch.float16, torch.bfloat16, torch.float32)


def _cast(obj: Any, dtype: torch.dtype) -> Any:
    def one(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.dtype in _AUTOCASTABLE and x.dtype != dtype:
            return x.to(dtype)
        return x
    return tree_map(one, obj)


def _widest(args: Any, kwargs: Any) -> torch.dtype | None:
    found: list[torch.dtype] = []

    def look(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.dtype in _AUTOCASTABLE:
            found.append(x.dtype)
        return x
    tree_map(look, (args, kwargs))
    if not found:
        return None
    return torch.float32 if torch.float32 in found else found[0]


class CudaAutocastEmulation(TorchFunctionMode):
    """``with CudaAutocastEmulation(torch.bfloat16): model(...)`` on CPU tensors."""

    def __init__(self, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.dtype = dtype
        self.calls = {"lower": 0, "float32": 0, "promote": 0}

    def __enter__(self) -> CudaAutocastEmulation:
        self._prev = (torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"))
        torch.set_autocast_enabled("cuda", True)
        torch.set_autocast_dtype("cuda", self.dtype)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        torch.set_autocast_enabled("cuda", self._prev[0])
        torch.set_autocast_dtype("cuda", self._prev[1])

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if torch.is_autocast_enabled("cuda"):
            if name in LOWER:
                self.calls["lower"] += 1
                args, kwargs = _cast((args, kwargs), torch.get_autocast_dtype("cuda"))
            elif name in FLOAT32:
                self.calls["float32"] += 1
                args, kwargs = _cast((args, kwargs), torch.float32)
            elif name in PROMOTE:
                widest = _widest(args, kwargs)
                if widest is not None:
                    self.calls["promote"] += 1
                    args, kwargs = _cast((args, kwargs), widest)
        return func(*args, **kwargs)


S = 64


def _clip(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x, d = torch.randn(2, 2, 3, S, S, generator=g), torch.rand(2, 2, 1, S, S, generator=g)
    gts = torch.zeros(2, 2, 1, S, S)
    gts[..., 16:48, 20:44] = 1
    return x, d, gts


def _model(train: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_m4sam("m4sam_hiera_t", image_size=S)
    for name, p in model.named_parameters():  # live adapters: B != 0, experts routed
        if name.endswith(("lora_B.weight", "w_gate")):
            torch.nn.init.normal_(p, std=0.2)
    return model.train(train)


def test_emulation_casts_like_cuda_autocast():
    """The emulation itself: matmul -> bf16, softmax/group_norm -> float32, elementwise untouched."""
    a = torch.randn(4, 4)
    with CudaAutocastEmulation(torch.bfloat16) as em:
        assert (a @ a).dtype == torch.bfloat16
        assert torch.nn.functional.linear(a, a).dtype == torch.bfloat16
        b = (a @ a)
        assert torch.softmax(b, 0).dtype == torch.float32
        assert torch.nn.functional.group_norm(b.view(1, 4, 4), 1).dtype == torch.float32
        assert (b * 2).dtype == torch.bfloat16
        assert b.sum().dtype == torch.float32
        with torch.autocast("cuda", enabled=False):
            assert (a @ a).dtype == torch.float32
    assert em.calls["lower"] >= 3 and em.calls["float32"] >= 3
    assert (a @ a).dtype == torch.float32  # off again


def test_clip_forward_backward_under_cuda_autocast_rules():
    """Training step: forward_clip + clip_loss + backward with bf16 autocast as CUDA runs it
    (issue 14: index_add_ raised "self (BFloat16) and source (Float)" here)."""
    model = _model(train=True)
    x, d, gts = _clip()
    with CudaAutocastEmulation(torch.bfloat16) as em:
        out = model.forward_clip(x, d)
        loss = clip_loss(out, gts, torch.ones(2, 2, dtype=torch.bool))["total"]
    loss.backward()
    assert em.calls["lower"] > 100 and em.calls["float32"] > 100  # the rules really applied
    assert torch.isfinite(loss)
    for name in ("adapters.0.q.lora_B.weight", "adapters.0.q.groups.rgb.gate.w_gate",
                 "adapters.3.v.groups.fusion.experts.1.0.weight", "head.out.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.dtype == torch.float32
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_inference_under_cuda_autocast_rules():
    """Predictor-style inference (no grad) under the rules (issue 14: scatter() raised
    "Expected self.dtype to be equal to src.dtype" here); close to the float32 result."""
    model = _model(train=False)
    x, d, _ = _clip()
    with torch.no_grad():
        ref = model.encode(x[:, 0], d[:, 0])
        with CudaAutocastEmulation(torch.bfloat16):
            got = model.encode(x[:, 0], d[:, 0])
            out = model.forward_clip(x, d)
    assert torch.isfinite(out["memory_logits"]).all()
    err = (got.coarse_logits.float() - ref.coarse_logits).abs().max()
    assert err < 0.1 * ref.coarse_logits.abs().max()


def test_plain_bf16_weights_forward_backward():
    """model.to(bfloat16): (a) M4-SAM's encoder (adapters, fusion, GMLFF, head) without autocast:
    gates stay float32 and expert outputs come back in the buffer's dtype, so every op sees
    matching dtypes; (b) the whole clip model with bf16 weights under the CUDA rules (SAM2's
    memory branch itself casts masks to float32, so it needs autocast, as on a GPU)."""
    model = _model(train=True).to(torch.bfloat16)
    x, d, gts = _clip()
    enc = model.encode(x[:, 0].bfloat16(), d[:, 0].bfloat16(), sides=True)
    assert enc.coarse_logits.dtype == torch.bfloat16
    (enc.coarse_logits.float().mean() + sum(s.float().mean() for s in enc.side_logits)
     + enc.aux_loss).backward()
    grad = model.adapters[0].q.lora_B.weight.grad
    assert grad.dtype == torch.bfloat16 and grad.abs().sum() > 0
    model.zero_grad()
    with CudaAutocastEmulation(torch.bfloat16):
        out = model.forward_clip(x.bfloat16(), d.bfloat16())
        loss = clip_loss(out, gts, torch.ones(2, 2, dtype=torch.bool))["total"]
    loss.backward()
    assert torch.isfinite(loss)
    assert model.adapters[1].v.lora_B.weight.grad.abs().sum() > 0
    assert model.sam.memory_attention.layers[0].cross_attn_image.q_proj.weight.grad.abs().sum() > 0


def test_moelora_dtypes_under_rules():
    moe = MoELoRA(16, 24, rank=4).train()
    torch.nn.init.normal_(moe.lora_B.weight)
    x = torch.randn(4, 5, 5, 16)
    tags = torch.tensor([0, 1, 0, 1])
    with CudaAutocastEmulation(torch.bfloat16):
        delta, aux = moe(x, tags)
    assert delta.dtype == torch.bfloat16 and aux.dtype == torch.float32
    (delta.float().sum() + aux).backward()
    assert moe.groups["depth"].experts[0][0].weight.grad.abs().sum() > 0

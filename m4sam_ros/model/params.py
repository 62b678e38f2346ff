"""Parameter accounting and optimiser groups."""

from __future__ import annotations

from typing import Any

from .m4sam import M4SAM


def parameter_report(model: M4SAM) -> dict[str, Any]:
    """Trainable vs total parameter counts, overall and per group (adapters, fusion, gmlff, head,
    sam_trunk, sam_neck, sam_modules)."""
    by_group: dict[str, dict[str, int]] = {}
    for name, p in model.named_parameters():
        g = by_group.setdefault(model.parameter_group_of(name), {"trainable": 0, "total": 0})
        g["total"] += p.numel()
        if p.requires_grad:
            g["trainable"] += p.numel()
    total = sum(g["total"] for g in by_group.values())
    trainable = sum(g["trainable"] for g in by_group.values())
    return {"trainable": trainable, "total": total, "share": trainable / max(total, 1),
            "by_group": by_group}


def param_groups(model: M4SAM, lr_heads: float, lr_adapters: float) -> list[dict[str, Any]]:
    """Optimiser groups: the MoE-LoRA adapters at ``lr_adapters``; everything else that trains
    (fusion, GMLFF, head, and SAM2 modules when the config trains them) at ``lr_heads``."""
    adapters, heads = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (adapters if model.parameter_group_of(name) == "adapters" else heads).append(p)
    groups = []
    if adapters:
        groups.append({"name": "adapters", "params": adapters, "lr": lr_adapters})
    if heads:
        groups.append({"name": "heads", "params": heads, "lr": lr_heads})
    return groups

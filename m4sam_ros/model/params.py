"""Parameter accounting and optimiser groups."""

from __future__ import annotations

from typing import Any

from .m4sam import M4SAM

#: parameter_group_of names -> optimiser group (each at its own learning rate)
_OPTIMISER_GROUP = {"adapters": "adapters", "sam_memory": "memory"}


def parameter_report(model: M4SAM) -> dict[str, Any]:
    """Trainable vs total parameter counts, overall and per group (adapters, fusion, gmlff, head,
    sam_trunk, sam_neck, sam_memory, sam_modules)."""
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


def param_groups(model: M4SAM, lr_heads: float, lr_adapters: float,
                 lr_memory: float = 1e-5) -> list[dict[str, Any]]:
    """Optimiser groups, each present only when it has trainable parameters: "adapters"
    (MoE-LoRA) at ``lr_adapters``; "memory" (SAM2's pre-trained memory branch: memory encoder
    and attention, mask decoder, object-score head, object pointers; config
    ``train_memory_branch``) at the low ``lr_memory`` so it adapts without forgetting; "heads"
    (fusion, GMLFF, head, and SAM2's neck/trunk when the config trains them) at ``lr_heads``.

    A model trained from scratch (``train_base_in_full``, the demo) has no pre-trained memory
    branch to protect: pass ``lr_memory=lr_heads`` there."""
    by_name: dict[str, list] = {"adapters": [], "memory": [], "heads": []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            by_name[_OPTIMISER_GROUP.get(model.parameter_group_of(name), "heads")].append(p)
    lrs = {"adapters": lr_adapters, "memory": lr_memory, "heads": lr_heads}
    return [{"name": n, "params": ps, "lr": lrs[n]} for n, ps in by_name.items() if ps]

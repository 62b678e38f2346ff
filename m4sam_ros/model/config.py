"""Model configs: a name, YAML path or dict resolved to one plain dict (no torch, no sam2).

A model config (``m4sam_ros/configs/m4sam_*.yaml``) names a SAM2.1 hydra config shipped in the
``sam2`` package plus hydra overrides, and M4-SAM's own settings. The image size can be any
multiple of 32 and is applied as hydra overrides (``model.image_size`` and the RoPE grid of the
memory attention). Both ``build`` and ``checkpoint`` read configs through here, so neither imports
the other's config code.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .moe_lora import FUSION_EXPERTS, MODALITY_EXPERTS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

DEFAULTS: dict[str, Any] = {
    "name": "custom",
    "sam2_config": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "image_size": 1024,
    "hydra_overrides": [],
    "moe_lora": {
        "rank": 4,
        "alpha": 1.0,
        "top_k": 2,
        "noisy_gating": True,
        "modality_experts": list(MODALITY_EXPERTS),
        "fusion_experts": list(FUSION_EXPERTS),
    },
    "fusion": {"hidden_ratio": 0.125},
    # to_decoder: GMLFF's output also feeds SAM2's mask decoder (ablation, issue 20 item 7)
    "gmlff": {"width": 64, "ffn_ratio": 2.0, "to_decoder": False},
    # conv: one 3x3 conv on the GMLFF output (the bundled demo model); topdown: the top-down
    # decoder with deep supervision (benchmark configs). Default conv so old checkpoints load.
    # edges: the authors' edge heads beside the top-down head's outputs (training supervision)
    "head": {"type": "conv", "hidden": 32, "edges": False},
    # SAM2's memory branch (memory encoder/attention, mask decoder, object pointers) trains in
    # its own low-lr optimiser group ("memory", params.param_groups).
    "train_memory_branch": False,
    "train_sam_modules": False,
    "train_base_in_full": False,
}


def available_configs() -> list[str]:
    """Names of the model configs shipped with the package."""
    return sorted(p.stem for p in CONFIG_DIR.glob("m4sam_*.yaml"))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(config: str | Path | dict[str, Any], image_size: int | None = None) -> dict[str, Any]:
    """Resolve a config name (``m4sam_hiera_t``), a YAML path or a dict to a full plain dict."""
    if isinstance(config, dict):
        raw = copy.deepcopy(config)
    else:
        path = Path(config)
        if not path.suffix:
            path = CONFIG_DIR / f"{config}.yaml"
        elif not path.exists() and (CONFIG_DIR / path.name).exists():
            path = CONFIG_DIR / path.name
        if not path.exists():
            raise FileNotFoundError(f"model config {config!r} not found; shipped configs: "
                                    f"{', '.join(available_configs())}")
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        raw.setdefault("name", path.stem)
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown model config keys: {sorted(unknown)}")
    cfg = _merge(DEFAULTS, raw)
    if image_size is not None:
        cfg["image_size"] = int(image_size)
    s = int(cfg["image_size"])
    if s <= 0 or s % 32:
        raise ValueError(f"image_size must be a positive multiple of 32, got {s}")
    cfg["image_size"] = s
    cfg["hydra_overrides"] = [str(o) for o in cfg["hydra_overrides"]]
    return cfg


def sam2_overrides(cfg: dict[str, Any]) -> list[str]:
    """Hydra overrides for SAM2: the config's own, then the image size (+ RoPE grid)."""
    s = cfg["image_size"]
    g = s // 16
    return list(cfg["hydra_overrides"]) + [
        f"++model.image_size={s}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{g},{g}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{g},{g}]",
    ]

"""``build_m4sam``: SAM2 from its hydra config at the configured size, wrapped as M4-SAM, with
checkpoints loaded (configs: ``config``; checkpoint files: ``checkpoint``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sam2  # noqa: F401  (initialises hydra's global config search path for sam2's configs)
import torch
from hydra import compose
from hydra.utils import instantiate
from omegaconf import OmegaConf

from .checkpoint import load_m4sam_checkpoint, load_sam2_checkpoint
from .config import CONFIG_DIR, DEFAULTS, available_configs, load_config, sam2_overrides  # noqa: F401 - re-exported
from .m4sam import M4SAM


def build_sam2_base(cfg: dict[str, Any]) -> torch.nn.Module:
    """Instantiate SAM2Base (random weights) from sam2's hydra config + overrides."""
    hcfg = compose(config_name=cfg["sam2_config"], overrides=sam2_overrides(cfg))
    OmegaConf.resolve(hcfg)
    return instantiate(hcfg.model, _recursive_=True)


def build_m4sam(config: str | Path | dict[str, Any], sam2_checkpoint: str | Path | None = None,
                m4sam_checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
                image_size: int | None = None) -> M4SAM:
    """Build M4-SAM (eval mode); optionally load SAM2's official weights (strict) and an M4-SAM
    checkpoint (strict, config-checked). Without checkpoints every weight is random, except
    that the adapters and fusion start as exact no-ops."""
    cfg = load_config(config, image_size)
    sam = build_sam2_base(cfg)
    if sam2_checkpoint is not None:
        load_sam2_checkpoint(sam, sam2_checkpoint)
    model = M4SAM(sam, cfg)
    if m4sam_checkpoint is not None:
        load_m4sam_checkpoint(model, m4sam_checkpoint)
    model.to(device)
    model.eval()
    return model

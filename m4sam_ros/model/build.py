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

from .checkpoint import (
    check_sam2_weights,
    load_m4sam_checkpoint,
    load_sam2_checkpoint,
    read_m4sam_checkpoint,
    sam2_fingerprint,
    save_m4sam_checkpoint,
)
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
    that the adapters and fusion start as exact no-ops.

    The SAM2 weights rule of every entry point lives here (``checkpoint`` module docstring): an
    M4-SAM checkpoint that needs SAM2's weights is refused without ``sam2_checkpoint``
    (``MissingSAM2WeightsError``) before anything is built, and warns on a file with another SHA-256."""
    ckpt = None
    if m4sam_checkpoint is not None:
        ckpt = read_m4sam_checkpoint(m4sam_checkpoint)
        check_sam2_weights(m4sam_checkpoint, ckpt, sam2_checkpoint)
    cfg = load_config(config, image_size)
    sam = build_sam2_base(cfg)
    if sam2_checkpoint is not None:
        load_sam2_checkpoint(sam, sam2_checkpoint)
    model = M4SAM(sam, cfg)
    # which pre-trained SAM2 weights the model stands on (None: random); saved with its checkpoints
    model.sam2_weights = sam2_fingerprint(sam2_checkpoint) if sam2_checkpoint is not None else None
    if m4sam_checkpoint is not None:
        load_m4sam_checkpoint(model, m4sam_checkpoint, ckpt)
        if model.sam2_weights is not None and not model.sam2_weights.get("sha256") and sam2_checkpoint is not None:
            model.sam2_weights = sam2_fingerprint(sam2_checkpoint)  # an older checkpoint: record the file given
    model.to(device)
    model.eval()
    return model


def export_full_checkpoint(m4sam_checkpoint: str | Path, out: str | Path,
                           sam2_checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Writes a self-contained checkpoint (every weight, the image encoder included; it needs no
    SAM2 file) from ``m4sam_checkpoint`` + the SAM2 weights it needs: what to deploy. Returns the
    SAM2 record it was exported from (None if the source held every weight already)."""
    ckpt = read_m4sam_checkpoint(m4sam_checkpoint)
    model = build_m4sam(ckpt["config"], sam2_checkpoint=sam2_checkpoint, m4sam_checkpoint=m4sam_checkpoint)
    source = model.sam2_weights
    extra = dict(ckpt.get("extra", {}), exported_from={"checkpoint": Path(m4sam_checkpoint).name,
                                                      "sam2_weights": source})
    save_m4sam_checkpoint(model, out, extra=extra, full=True)
    return source

"""M4-SAM on SAM2 as nn.Modules, and what inference needs around it.

Owns the model (MoE-LoRA, fusion, GMLFF, heads, the pseudo-mask rule), its configs and
checkpoints, and the preprocessing every caller shares: ``preprocess`` (resize, ImageNet
normalisation; ``preprocess_np`` the same in numpy) and ``depth`` (the one depth normalisation).
May import ``util``, torch and sam2; never ``predictor``, ``data``, ``training``, ``evaluation``,
``ros`` or rclpy. See docs/DESIGN.md.

The names below load on first use (PEP 562), so the torch-free modules (``depth``,
``preprocess_np``) import where torch is not installed (the ONNX Runtime backend).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_m4sam": "build",
    "export_full_checkpoint": "build",
    "MissingSAM2WeightsError": "checkpoint",
    "SAM2WeightsMismatchWarning": "checkpoint",
    "CheckpointError": "checkpoint",
    "load_m4sam_checkpoint": "checkpoint",
    "load_sam2_checkpoint": "checkpoint",
    "save_m4sam_checkpoint": "checkpoint",
    "available_configs": "config",
    "load_config": "config",
    "M4SAM": "m4sam",
    "EncodedFrames": "m4sam",
    "param_groups": "params",
    "parameter_report": "params",
    "ENDLESS": "pseudo",
    "pseudo_mask": "pseudo",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

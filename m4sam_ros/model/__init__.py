"""M4-SAM on SAM2 as nn.Modules, and what inference needs around it.

Owns the model (MoE-LoRA, fusion, GMLFF, heads, the pseudo-mask rule), its configs and
checkpoints, and the preprocessing every caller shares: ``preprocess`` (resize, ImageNet
normalisation) and ``depth`` (the one depth normalisation). May import ``util``, torch and sam2;
never ``predictor``, ``data``, ``training``, ``evaluation``, ``ros`` or rclpy. See docs/DESIGN.md.
"""

from .build import build_m4sam, export_full_checkpoint
from .checkpoint import (
    CheckpointError,
    MissingSAM2WeightsError,
    SAM2WeightsMismatchWarning,
    load_m4sam_checkpoint,
    load_sam2_checkpoint,
    save_m4sam_checkpoint,
)
from .config import available_configs, load_config
from .m4sam import M4SAM, EncodedFrames
from .params import param_groups, parameter_report
from .pseudo import ENDLESS, pseudo_mask

__all__ = [
    "ENDLESS",
    "M4SAM",
    "CheckpointError",
    "MissingSAM2WeightsError",
    "SAM2WeightsMismatchWarning",
    "EncodedFrames",
    "available_configs",
    "build_m4sam",
    "export_full_checkpoint",
    "load_config",
    "load_m4sam_checkpoint",
    "load_sam2_checkpoint",
    "param_groups",
    "parameter_report",
    "pseudo_mask",
    "save_m4sam_checkpoint",
]

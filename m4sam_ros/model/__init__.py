"""M4-SAM on SAM2 (no ROS imports). See docs/DESIGN.md, section Model."""

from .build import available_configs, build_m4sam, load_config
from .checkpoint import (
    CheckpointError,
    load_m4sam_checkpoint,
    load_sam2_checkpoint,
    save_m4sam_checkpoint,
)
from .m4sam import M4SAM, EncodedFrames
from .params import param_groups, parameter_report
from .pseudo import ENDLESS, pseudo_mask

__all__ = [
    "ENDLESS",
    "M4SAM",
    "CheckpointError",
    "EncodedFrames",
    "available_configs",
    "build_m4sam",
    "load_config",
    "load_m4sam_checkpoint",
    "load_sam2_checkpoint",
    "param_groups",
    "parameter_report",
    "pseudo_mask",
    "save_m4sam_checkpoint",
]

"""Image and depth to model tensors, in torch only (torchvision is not importable here).

SAM2 resizes every frame to a square S x S and normalises with ImageNet statistics; depth goes
through the same trunk, so it gets the same statistics after being repeated to 3 channels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_rgb(x01: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] in [0, 1] -> ImageNet-normalised (the statistics SAM2 was trained with)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x01.dtype, device=x01.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x01.dtype, device=x01.device).view(3, 1, 1)
    return (x01 - mean) / std


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    down = x.shape[-2] > size or x.shape[-1] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=down)


def rgb_to_tensor(rgb: np.ndarray, size: int) -> torch.Tensor:
    """uint8 HxWx3 RGB -> [1, 3, S, S] float32, resized (antialiased) and ImageNet-normalised."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB, got shape {rgb.shape}")
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    if rgb.dtype == np.uint8:
        x = x / 255.0
    x = resize_square(x, size).clamp_(0.0, 1.0)
    return normalize_rgb(x)


def depth_to_tensor(depth01: np.ndarray, size: int) -> torch.Tensor:
    """float HxW in [0, 1] (see data.depth.normalize_depth) -> [1, 1, S, S] in [0, 1]."""
    if depth01.ndim != 2:
        raise ValueError(f"expected HxW depth, got shape {depth01.shape}")
    x = torch.from_numpy(np.ascontiguousarray(depth01, dtype=np.float32))[None, None]
    x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return resize_square(x, size).clamp_(0.0, 1.0)


def depth_to_rgb_input(depths: torch.Tensor) -> torch.Tensor:
    """[B, 1, S, S] depth in [0, 1] -> [B, 3, S, S] normalised like RGB (trunk input)."""
    return normalize_rgb(depths.expand(-1, 3, -1, -1))

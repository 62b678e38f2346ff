"""Per-level RGB-depth fusion of the Hiera trunk outputs.

fused = rgb + conv([r, d, r*d, |r-d|]) with the last conv zero-initialised, so an untrained
fusion returns the RGB features exactly and SAM2's neck sees what it was trained on.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class LevelFusion(nn.Module):
    """Fuse one trunk level: 1x1 bottleneck over the 4 interaction maps, 3x3 back (zero init)."""

    def __init__(self, channels: int, hidden_ratio: float = 0.125) -> None:
        super().__init__()
        hidden = max(8, int(round(channels * hidden_ratio)))
        self.reduce = nn.Conv2d(4 * channels, hidden, 1)
        self.norm = nn.GroupNorm(1, hidden)
        self.act = nn.GELU()
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, r: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        x = torch.cat([r, d, r * d, (r - d).abs()], dim=1)
        return r + self.out(self.act(self.norm(self.reduce(x))))


class MultiLevelFusion(nn.Module):
    """One LevelFusion per trunk level (trunk order: highest resolution first)."""

    def __init__(self, channels: list[int], hidden_ratio: float = 0.125) -> None:
        super().__init__()
        self.levels = nn.ModuleList(LevelFusion(c, hidden_ratio) for c in channels)

    def forward(self, rgb: list[torch.Tensor], depth: list[torch.Tensor]) -> list[torch.Tensor]:
        return [f(r, d) for f, r, d in zip(self.levels, rgb, depth, strict=True)]

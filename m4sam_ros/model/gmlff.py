"""Gated Multi-Level Feature Fusion (GMLFF) and the coarse saliency head (METHOD.md part 2)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ChannelAttention(nn.Module):
    """CBAM-style channel attention: shared MLP over avg- and max-pooled descriptors."""

    def __init__(self, ch: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(4, ch // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(ch, hidden, 1), nn.GELU(), nn.Conv2d(hidden, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM-style spatial attention from channel mean and max."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(s))


class GMLFF(nn.Module):
    """Project every level to a common width, resize to stride 4, concatenate, 1x1 -> X1;
    Xe = X1 * ca(X1) * sa(X1); G = sigmoid(norm(conv1x1([X1, Xe]))); Y = G*Xe + (1-G)*X1;
    out = Y + FFN(Y)."""

    def __init__(self, channels: list[int], width: int = 64, ffn_ratio: float = 2.0) -> None:
        super().__init__()
        self.proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, width, 1), nn.GroupNorm(1, width), nn.GELU())
            for c in channels
        )
        self.merge = nn.Sequential(nn.Conv2d(width * len(channels), width, 1),
                                   nn.GroupNorm(1, width), nn.GELU())
        self.channel_att = ChannelAttention(width)
        self.spatial_att = SpatialAttention()
        self.gate = nn.Sequential(nn.Conv2d(2 * width, width, 1), nn.GroupNorm(1, width))
        hidden = int(width * ffn_ratio)
        self.ffn = nn.Sequential(nn.GroupNorm(1, width), nn.Conv2d(width, hidden, 1), nn.GELU(),
                                 nn.Conv2d(hidden, width, 1))

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        size = levels[0].shape[-2:]
        xs = []
        for p, x in zip(self.proj, levels, strict=True):
            y = p(x)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            xs.append(y)
        x1 = self.merge(torch.cat(xs, dim=1))
        xe = x1 * self.channel_att(x1) * self.spatial_att(x1)
        g = torch.sigmoid(self.gate(torch.cat([x1, xe], dim=1)))
        y = g * xe + (1 - g) * x1
        return y + self.ffn(y)


class CoarseHead(nn.Module):
    """Light decoder: stride-4 GMLFF features -> 1-channel logits, upsampled to S x S."""

    def __init__(self, width: int = 64, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, hidden, 3, padding=1), nn.GroupNorm(1, hidden),
                                  nn.GELU(), nn.Conv2d(hidden, 1, 1))

    def forward(self, x: torch.Tensor, out_size: int) -> torch.Tensor:
        return F.interpolate(self.body(x), size=(out_size, out_size), mode="bilinear",
                             align_corners=False)

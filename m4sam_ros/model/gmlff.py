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
        # merge's 1x1 conv over the concatenation = the sum of its per-level slices; a 1x1 conv
        # and bilinear upsampling commute (both linear, weights of the upsampling sum to 1), so
        # each level is mixed at its own resolution and only width channels get upsampled: the
        # same function with ~1/L of merge's arithmetic at stride 4 and no concatenation.
        conv, norm, act = self.merge
        width = conv.out_channels
        acc = None
        for i, (p, x) in enumerate(zip(self.proj, levels, strict=True)):
            y = F.conv2d(p(x), conv.weight[:, i * width : (i + 1) * width])
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            acc = y if acc is None else acc + y
        x1 = act(norm(acc + conv.bias.view(1, -1, 1, 1)))
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


class LightBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 + norm + GELU: a 3x3 receptive field at ~1/8 of a full
    3x3 conv's arithmetic (the head must stay real-time at stride 4)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.pw = nn.Conv2d(width, width, 1)
        self.norm = nn.GroupNorm(1, width)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.pw(self.dw(x))))


class TopDownHead(nn.Module):
    """Top-down decoder over the fused trunk levels with deep supervision.

    Starting from the stride-32 level, each step upsamples, adds the next finer level's 1x1
    lateral projection and refines with a LightBlock (strides 16, 8); at stride 4 the GMLFF output
    (all levels, gated) joins as the lateral. Side logits at strides 16 and 8 supervise the coarse
    levels (deep supervision); the stride-4 output is the coarse map itself. Replaces the single
    3x3 conv head, whose pseudo mask capped every tracked frame (issue 14)."""

    def __init__(self, channels: list[int], width: int = 64, edges: bool = False) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"TopDownHead needs the 4 trunk levels, got {len(channels)}")
        # channels in trunk order (stride 4, 8, 16, 32); stride 4 comes in through GMLFF
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels[1:])
        self.blocks = nn.ModuleList(LightBlock(width) for _ in range(3))  # strides 16, 8, 4
        self.side = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in range(2))  # strides 16, 8
        self.out = nn.Conv2d(width, 1, 1)
        # the authors' edge heads: a 1x1 conv beside each output (strides 16, 8, 4), supervised
        # by the Sobel edges of the ground truth (training only; config head.edges)
        self.edge = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in range(3)) if edges else None

    @staticmethod
    def _up(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, levels: list[torch.Tensor], gmlff_out: torch.Tensor, out_size: int,
                sides: bool = False, edges: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-> (coarse logits [B,1,S,S], side logits [s16, s8] each [B,1,S,S] or [] if not sides).
        With ``sides`` and edge heads, the edge logits [s16, s8, s4] are appended to ``edges``."""
        l8, l16, l32 = (lat(x) for lat, x in zip(self.lateral, levels[1:], strict=True))
        d16 = self.blocks[0](l16 + self._up(l32, l16))
        d8 = self.blocks[1](l8 + self._up(d16, l8))
        d4 = self.blocks[2](gmlff_out + self._up(d8, gmlff_out))
        size = (out_size, out_size)
        coarse = F.interpolate(self.out(d4), size=size, mode="bilinear", align_corners=False)
        side_out = []
        if sides:
            side_out = [F.interpolate(head(d), size=size, mode="bilinear", align_corners=False)
                        for head, d in zip(self.side, (d16, d8), strict=True)]
            if self.edge is not None and edges is not None:
                edges.extend(F.interpolate(head(d), size=size, mode="bilinear", align_corners=False)
                             for head, d in zip(self.edge, (d16, d8, d4), strict=True))
        return coarse, side_out

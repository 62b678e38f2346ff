"""One optimiser step: micro-batches, ground-truth conditioning per clip, loss, update."""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from m4sam_ros.model.preprocess import normalize_rgb
from m4sam_ros.training.losses import EDGE_RAMP_FRACTION, OBJECT_WEIGHT, clip_loss, edge_weight_at


def gt_cond_probability(step: int, total: int, start: float, end: float) -> float:
    """Probability that a clip's frame 0 is conditioned on its ground truth at ``step``: linear
    from ``start`` (first step) to ``end`` (last step). Early on the memory branch learns to track
    from good masks; later it learns from the pseudo masks it will get at inference."""
    if total <= 1:
        return float(start)
    frac = min(1.0, max(0.0, step / (total - 1)))
    return float(start + (end - start) * frac)


def draw_cond_select(seed: int, rank: int, step: int, micro: int, first_valid: torch.Tensor, prob: float
                     ) -> torch.Tensor:
    """[B] bool: which clips use their ground truth for frame 0. Drawn from (seed, rank, step,
    micro-batch) alone, so a resumed run makes the very choices of an uninterrupted one; a clip
    whose frame 0 has no ground truth is never selected."""
    u = np.random.default_rng([seed, rank, step, micro]).random(int(first_valid.shape[0]))
    return torch.from_numpy(u < prob) & first_valid.detach().cpu().bool()


def takes_cond_select(model: torch.nn.Module) -> bool:
    """Whether the model conditions per clip (``forward(..., cond_select=)``)."""
    return "cond_select" in inspect.signature(model.forward).parameters


@dataclass
class StepRunner:
    """Runs optimiser steps on ``model`` (``wrapped`` is the model or its DDP wrapper)."""

    model: torch.nn.Module
    wrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: torch.device
    accum: int
    seed: int
    rank: int
    gt_cond_start: float
    gt_cond_end: float
    clip_grad: float = 1.0
    edge_ramp: float = EDGE_RAMP_FRACTION   # share of the schedule the edge weight ramps over
    edge_final: float = 1.0                 # edge weight after the ramp (the authors: 0.5 on ViDSOD-100)
    object_weight: float = OBJECT_WEIGHT

    def __post_init__(self) -> None:
        self.per_clip = takes_cond_select(self.model)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, batch: dict[str, torch.Tensor], select: torch.Tensor) -> dict[str, torch.Tensor]:
        images = normalize_rgb(batch["images"].to(self.device))
        depths = batch["depths"].to(self.device)
        gts = batch["gts"].to(self.device)
        with self._autocast():
            if not bool(select.any()):
                return self.wrapped(images, depths)
            if self.per_clip:
                return self.wrapped(images, depths, cond_masks=gts[:, 0], cond_select=select.to(self.device))
            # a model without per-clip conditioning: only a batch whose clips all drew it
            return self.wrapped(images, depths, gts[:, 0]) if bool(select.all()) else self.wrapped(images, depths)

    def run(self, batches: Iterator[dict[str, torch.Tensor]], step: int, total: int) -> dict[str, Any] | None:
        """One step at ``step`` (0-based) of ``total``; None when ``batches`` ran out first."""
        self.optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        prob = gt_cond_probability(step, total, self.gt_cond_start, self.gt_cond_end)
        edge_w = edge_weight_at(step, total, self.edge_ramp, self.edge_final)
        sums: dict[str, float] = {}
        chosen = clips = 0
        for micro in range(self.accum):
            batch = next(batches, None)
            if batch is None:
                return None
            select = draw_cond_select(self.seed, self.rank, step, micro, batch["gt_valid"][:, 0], prob)
            if not self.per_clip and not bool(select.all()):
                select = torch.zeros_like(select)
            chosen, clips = chosen + int(select.sum()), clips + int(select.numel())
            outputs = self._forward(batch, select)
            parts = clip_loss(outputs, batch["gts"].to(self.device), batch["gt_valid"].to(self.device),
                              object_weight=self.object_weight, edge_weight=edge_w)
            (parts["total"] / self.accum).backward()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / self.accum
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        lrs = [g["lr"] for g in self.optimizer.param_groups]  # the rates this step used
        self.optimizer.step()
        self.scheduler.step()
        return {**{k: round(v, 6) for k, v in sums.items()}, "lr": lrs, "gt_cond": round(chosen / max(clips, 1), 4),
                "gt_cond_prob": round(prob, 4), "edge_weight": round(edge_w, 4), "s_per_step": time.perf_counter() - t0}

"""What a training run is made of: processes, data, optimiser groups and schedule."""

from __future__ import annotations

import inspect
import math
import os
from argparse import Namespace
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from m4sam_ros.data.clips import ClipDataset
from m4sam_ros.data.datasets import DatasetError, Video, open_videos
from m4sam_ros.model import param_groups
from m4sam_ros.training import TrainError

MIN_LR = 1e-7
DEFAULT_LR_MEMORY = 1e-5


@dataclass(frozen=True)
class Processes:
    """This process's place in the run (one process, or one of torchrun's)."""

    distributed: bool
    rank: int
    world: int
    device: torch.device


def init_processes(device: str, threads: int | None = None) -> Processes:
    """Joins torchrun's process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    dev = torch.device(device)
    if dev.type == "cuda" and distributed:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    if threads:
        torch.set_num_threads(threads)
    return Processes(distributed, dist.get_rank() if distributed else 0, dist.get_world_size() if distributed else 1,
                     dev)


def prepare_data(args: Namespace, run: Path, rank: int) -> list[Video]:
    """The split's videos; synthetic scenes are generated into RUN/data when no root is given."""
    root = args.data_root
    if root is None:
        if args.dataset != "synthetic":
            raise DatasetError(f"--data-root is required for {args.dataset} (only synthetic data is generated)")
        from m4sam_ros.data.synth import generate_video, video_seed, write_vidsod_layout

        root = run / "data"
        split_dir = root / args.split
        if rank == 0:
            for i in range(args.synthetic_videos):
                d = split_dir / f"synth_{video_seed(args.synthetic_seed, i):06d}"
                if not d.exists():
                    write_vidsod_layout(generate_video(video_seed(args.synthetic_seed, i), args.synthetic_frames,
                                                       width=320, height=240), d)
        if dist.is_initialized():
            dist.barrier()
    return open_videos(args.dataset, root, args.split)


def build_dataset(args: Namespace, videos: list[Video], size: int) -> ClipDataset:
    try:
        return ClipDataset(videos, clip_len=args.clip_len, stride=args.stride, size=size,
                           augment=not args.no_augment, seed=args.seed, frames=args.clip_frames,
                           sampling=getattr(args, "clip_sampling", "chunks"))
    except ValueError as exc:  # e.g. every video shorter than the clip
        raise DatasetError(f"{args.dataset} {args.split}: {exc}") from exc


def build_sampler(args: Namespace, dataset: ClipDataset, procs: Processes) -> DistributedSampler:
    sampler = DistributedSampler(dataset, num_replicas=procs.world, rank=procs.rank, shuffle=True, seed=args.seed,
                                 drop_last=True)
    if len(sampler) < args.batch_size * args.accum:
        raise DatasetError(f"{args.dataset} {args.split}: {len(dataset)} clip(s) of {args.clip_len} frames "
                           f"({len(sampler)} per process) cannot fill one step of --batch-size {args.batch_size} "
                           f"x --accum {args.accum}; the split is empty or its videos are shorter than the clip")
    return sampler


def optimiser_groups(model: torch.nn.Module, args: Namespace) -> list[dict[str, Any]]:
    """The model package's groups (adapters, heads and, when the config trains SAM2's memory
    branch, memory at ``--lr-memory``: default 1e-5 over pre-trained SAM2 weights, ``--lr-heads``
    for a base trained from scratch, which has nothing to protect); with ``--lr-base`` the image
    trunk, when it trains, moves out of the heads group into its own."""
    lr_memory = args.lr_memory
    if lr_memory is None:
        lr_memory = args.lr_heads if model.config.get("train_base_in_full") else DEFAULT_LR_MEMORY
    if "lr_memory" in inspect.signature(param_groups).parameters:
        groups = param_groups(model, args.lr_heads, args.lr_adapters, lr_memory=lr_memory)
    else:  # the model package before its memory group
        groups = param_groups(model, args.lr_heads, args.lr_adapters)
    groups = _object_score_group(model, groups, getattr(args, "lr_object", None), args.lr_heads)
    if args.lr_base is None:
        return groups
    trunk = {id(p) for n, p in model.named_parameters() if p.requires_grad and model.parameter_group_of(n) == "sam_trunk"}
    if not trunk:
        raise TrainError("--lr-base given but this config keeps the image trunk frozen")
    for g in groups:
        g["params"] = [p for p in g["params"] if id(p) not in trunk]
    base = [p for p in model.parameters() if id(p) in trunk]
    return [g for g in groups if g["params"]] + [{"name": "base", "params": base, "lr": args.lr_base}]


#: SAM2's object-score head and token ("is the object visible?"): parameters no other loss term
#: reaches, so under Adam their step size is set by their learning rate alone, not the loss weight
OBJECT_SCORE_PARAMS = ("sam.sam_mask_decoder.pred_obj_score_head.", "sam.sam_mask_decoder.obj_score_token.")


def _object_score_group(model: torch.nn.Module, groups: list[dict[str, Any]], lr_object: float | None,
                        lr_heads: float) -> list[dict[str, Any]]:
    """Move SAM2's object-score head out of the memory group into its own "object" group at
    ``lr_object`` (default ``lr_heads``): at the memory branch's 1e-5 the score would not learn
    the dataset's "salient object present" within a recipe's few thousand steps."""
    ids = {id(p) for n, p in model.named_parameters() if p.requires_grad and n.startswith(OBJECT_SCORE_PARAMS)}
    if not ids:
        return groups
    for g in groups:
        g["params"] = [p for p in g["params"] if id(p) not in ids]
    obj = [p for p in model.parameters() if id(p) in ids]
    lr = lr_heads if lr_object is None else lr_object
    return [g for g in groups if g["params"]] + [{"name": "object", "params": obj, "lr": lr}]


def describe_groups(model: torch.nn.Module, groups: list[dict[str, Any]]) -> list[str]:
    """One line per optimiser group: its name, learning rate, size and the modules in it."""
    where = {id(p): model.parameter_group_of(n) for n, p in model.named_parameters()}
    lines = []
    for g in groups:
        sizes: Counter[str] = Counter()
        for p in g["params"]:
            sizes[where.get(id(p), "?")] += p.numel()
        total = sum(sizes.values())
        modules = ", ".join(f"{m} {n:,}" for m, n in sorted(sizes.items(), key=lambda kv: -kv[1]))
        lines.append(f"  group {g.get('name', '?'):<9} lr {g['lr']:.1e}  {total:>12,} parameters  ({modules})")
    return lines


def cosine_lr_factor(step: int, total: int, warmup: int, base_lr: float) -> float:
    """Linear warm-up, then cosine from ``base_lr`` down to MIN_LR at ``total`` steps."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    lr = MIN_LR + (base_lr - MIN_LR) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr / base_lr


def build_optimizer(groups: list[dict[str, Any]], args: Namespace, total_steps: int
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``groups`` with one warm-up + cosine schedule per group (each from its own lr)."""
    optimizer = torch.optim.AdamW(groups, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, [lambda s, b=g["lr"]: cosine_lr_factor(s, total_steps, args.warmup, b) for g in groups])
    return optimizer, scheduler

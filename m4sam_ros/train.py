"""`m4sam-train`: train M4-SAM on RDVS, ViDSOD-100, DViSal or synthetic scenes.

One command for one process or many: under ``torchrun --nproc_per_node=N`` it runs
DistributedDataParallel (gloo on CPU, nccl on CUDA) with a DistributedSampler. Checkpoints are
written atomically every ``--save-every`` steps and at the end (``RUN/checkpoint.pt``, the
M4-SAM format holding only what trains; ``RUN/train_state.pt``, optimiser/schedule/step), so
``--resume RUN`` continues at the same step with the same schedule.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from m4sam_ros.atomic import torch_save
from m4sam_ros.data.clips import ClipDataset
from m4sam_ros.data.datasets import DATASETS, DatasetError, open_videos
from m4sam_ros.losses import clip_loss
from m4sam_ros.model import (
    CheckpointError,
    build_m4sam,
    param_groups,
    parameter_report,
    save_m4sam_checkpoint,
)
from m4sam_ros.model.preprocess import normalize_rgb
from m4sam_ros.plots import plot_loss_curve

CHECKPOINT = "checkpoint.pt"
STATE = "train_state.pt"
LOG = "log.jsonl"
MIN_LR = 1e-7


class TrainError(RuntimeError):
    """A training run that cannot start as asked; the message says why."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="m4sam-train", description=__doc__.splitlines()[0])
    p.add_argument("--config", default="m4sam_hiera_t", help="model config name or YAML path")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic")
    p.add_argument("--data-root", help="dataset root (synthetic: generated into RUN/data when omitted)")
    p.add_argument("--split", default="train")
    p.add_argument("--out", help="run folder (checkpoints, log, loss curve)")
    p.add_argument("--resume", help="run folder to continue; same arguments as the run that made it")
    p.add_argument("--sam2-checkpoint", help="official SAM2.1 weights; without them the base is random")
    p.add_argument("--image-size", type=int, help="override the config's image size (multiple of 32)")
    p.add_argument("--steps", type=int, help="optimiser steps (default: --epochs worth)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=4, help="clips per process per micro-batch")
    p.add_argument("--accum", type=int, default=1, help="gradient accumulation micro-batches")
    p.add_argument("--clip-len", type=int, default=4)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--lr-heads", type=float, default=1e-3)
    p.add_argument("--lr-adapters", type=float, default=1e-4)
    p.add_argument("--lr-base", type=float, help="own learning rate for the SAM2 image trunk when the config "
                   "trains the base in full (default: it trains at --lr-heads, in the heads group)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps before the cosine")
    p.add_argument("--gt-cond-prob", type=float, default=0.5,
                   help="probability that frame 0 is conditioned on ground truth instead of its pseudo mask")
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--synthetic-videos", type=int, default=24)
    p.add_argument("--synthetic-frames", type=int, default=48)
    p.add_argument("--synthetic-seed", type=int, default=1, help="base seed of the generated training scenes")
    p.add_argument("--time-limit", type=float, help="stop (and save) after this many minutes")
    p.add_argument("--stop-after", type=int, help="stop (and save) after this many steps of this invocation "
                   "(a preemption point; --resume continues the same schedule)")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (1 stays fast on a busy machine)")
    p.add_argument("--quiet", action="store_true")
    return p


def cosine_lr_factor(step: int, total: int, warmup: int, base_lr: float) -> float:
    """Linear warm-up, then cosine from ``base_lr`` down to MIN_LR at ``total`` steps."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    lr = MIN_LR + (base_lr - MIN_LR) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr / base_lr


def _prepare_data(args: argparse.Namespace, run: Path, rank: int) -> list:
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


def _param_groups(model: torch.nn.Module, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The model package's groups (adapters / heads); with ``--lr-base`` the image trunk, when it
    trains, moves out of the heads group into its own."""
    groups = param_groups(model, args.lr_heads, args.lr_adapters)
    if args.lr_base is None:
        return groups
    trunk = {id(p) for n, p in model.named_parameters() if p.requires_grad and model.parameter_group_of(n) == "sam_trunk"}
    if not trunk:
        raise TrainError("--lr-base given but this config keeps the image trunk frozen")
    for g in groups:
        g["params"] = [p for p in g["params"] if id(p) not in trunk]
    base = [p for p in model.parameters() if id(p) in trunk]
    return [g for g in groups if g["params"]] + [{"name": "base", "params": base, "lr": args.lr_base}]


def train(args: argparse.Namespace) -> Path:
    """Runs the training described by ``args``; returns the run folder."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        backend = "nccl" if args.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    device = torch.device(args.device)
    if device.type == "cuda" and distributed:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    run = Path(args.resume or args.out or "runs/m4sam")
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed + rank)
    random.seed(args.seed + rank)
    np.random.seed(args.seed + rank)

    model = build_m4sam(args.config, sam2_checkpoint=args.sam2_checkpoint, device=str(device),
                        image_size=args.image_size)
    model.train()
    report = parameter_report(model)
    base_note = (f"SAM2 base from {args.sam2_checkpoint}" if args.sam2_checkpoint else
                 "no --sam2-checkpoint: the SAM2 base is random-initialised"
                 + (" and trains in full" if model.config.get("train_base_in_full") else
                    " and stays frozen (pass official weights for a meaningful model)"))
    videos = _prepare_data(args, run, rank)
    try:
        dataset = ClipDataset(videos, clip_len=args.clip_len, stride=args.stride, size=model.image_size,
                              augment=not args.no_augment, seed=args.seed)
    except ValueError as exc:  # e.g. every video shorter than the clip
        raise DatasetError(f"{args.dataset} {args.split}: {exc}") from exc
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=args.seed,
                                 drop_last=True)
    if len(sampler) < args.batch_size * args.accum:
        raise DatasetError(f"{args.dataset} {args.split}: {len(dataset)} clip(s) of {args.clip_len} frames "
                           f"({len(sampler)} per process) cannot fill one step of --batch-size {args.batch_size} "
                           f"x --accum {args.accum}; the split is empty or its videos are shorter than the clip")
    per_epoch = max(1, len(sampler) // (args.batch_size * args.accum))
    total_steps = args.steps or per_epoch * args.epochs

    groups = _param_groups(model, args)
    base_lrs = [g["lr"] for g in groups]
    optimizer = torch.optim.AdamW(groups, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, [lambda s, b=b: cosine_lr_factor(s, total_steps, args.warmup, b) for b in base_lrs])
    step = 0
    if args.resume:
        from m4sam_ros.model import load_m4sam_checkpoint

        if not (run / STATE).exists():
            raise TrainError(f"{run / STATE} missing; is {run} a training run folder?")
        extra = load_m4sam_checkpoint(model, run / CHECKPOINT)
        state = torch.load(run / STATE, map_location=device, weights_only=True)
        if int(extra.get("step", -1)) != int(state["step"]):
            # the two files are each written atomically but one after the other: a kill in between
            raise TrainError(f"{run / CHECKPOINT} is at step {extra.get('step')} but {run / STATE} at step "
                             f"{state['step']} (the run was killed while saving); copy a consistent pair back")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
    wrapped = model
    if distributed:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    forward = wrapped.forward if distributed else model.forward_clip

    if rank == 0:
        print(f"m4sam-train: {args.dataset} ({len(videos)} videos, {len(dataset)} clips), {world} process(es), "
              f"device {device}; {report['trainable']:,} of {report['total']:,} parameters train "
              f"({100 * report['share']:.2f}%); {base_note}; {total_steps} steps from step {step}", flush=True)
        with open(run / "args.json", "w") as f:
            json.dump(vars(args) | {"base": base_note, "world_size": world}, f, indent=1)

    def save(final: bool = False) -> None:
        if rank != 0:
            return
        save_m4sam_checkpoint(model, run / CHECKPOINT, extra={"step": step, "args": json.dumps(vars(args))})
        torch_save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                      "torch_rng": torch.get_rng_state()}, run / STATE)
        plot_loss_curve(run / LOG, run / "loss.png")

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _null()
    started = time.monotonic()
    from tqdm import tqdm

    bar = tqdm(total=total_steps, initial=step, disable=rank != 0 or args.quiet, desc="m4sam-train")
    first_step = step
    log_file = open(run / LOG, "a") if rank == 0 else None
    try:
        while step < total_steps:
            epoch, offset = divmod(step, per_epoch)
            sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            indices = list(sampler)[offset * args.batch_size * args.accum:]
            # the loader's own generator: creating it must not draw from the global RNG (the gates'
            # noise), or a resumed run would diverge from an uninterrupted one
            loader = DataLoader(dataset, batch_size=args.batch_size, sampler=indices, num_workers=args.workers,
                                drop_last=True, generator=torch.Generator().manual_seed(args.seed + epoch))
            it = iter(loader)
            while step < total_steps:
                optimizer.zero_grad(set_to_none=True)
                sums: dict[str, float] = {}
                t0 = time.perf_counter()
                batch = None
                for _ in range(args.accum):
                    batch = next(it, None)
                    if batch is None:
                        break
                    images = normalize_rgb(batch["images"].to(device))
                    depths = batch["depths"].to(device)
                    gts, valid = batch["gts"].to(device), batch["gt_valid"].to(device)
                    cond = None
                    # drawn from the step alone, so a resumed run makes the same choices
                    draw = np.random.default_rng([args.seed, rank, step]).random()
                    if draw < args.gt_cond_prob and bool(valid[:, 0].all()):
                        cond = gts[:, 0]
                    with autocast:
                        outputs = forward(images, depths, cond)
                    parts = clip_loss(outputs, gts, valid)
                    (parts["total"] / args.accum).backward()
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + float(v.detach()) / args.accum
                if batch is None:
                    break
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                lrs = [g["lr"] for g in optimizer.param_groups]  # the rates this step used
                optimizer.step()
                scheduler.step()
                step += 1
                bar.update(1)
                if log_file:
                    row = {"step": step, **{k: round(v, 6) for k, v in sums.items()},
                           "lr": lrs, "s_per_step": time.perf_counter() - t0}
                    log_file.write(json.dumps(row) + "\n")
                    log_file.flush()
                    bar.set_postfix(loss=f"{sums['total']:.3f}")
                if step % args.save_every == 0:
                    save()
                out_of_time = args.time_limit and time.monotonic() - started > 60 * args.time_limit
                if out_of_time or (args.stop_after and step - first_step >= args.stop_after):
                    total_steps = step  # stop here; the schedule state is saved for --resume
    finally:
        bar.close()
        if log_file:
            log_file.close()
    save(final=True)
    if rank == 0:
        print(f"m4sam-train: done at step {step} in {time.monotonic() - started:.0f} s; wrote {run / CHECKPOINT}",
              flush=True)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return run


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.out and not args.resume:
        build_parser().error("give --out RUN (or --resume RUN)")
    if args.resume and not Path(args.resume).is_dir():
        build_parser().error(f"--resume {args.resume}: no such run folder")
    try:
        train(args)
    except (DatasetError, CheckpointError, TrainError) as exc:
        print(f"m4sam-train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

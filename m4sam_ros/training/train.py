"""`m4sam-train`: train M4-SAM on RDVS, ViDSOD-100, DViSal or synthetic scenes.

One command for one process or many: under ``torchrun --nproc_per_node=N`` it runs
DistributedDataParallel (gloo on CPU, nccl on CUDA) with a DistributedSampler. Every
``--save-every`` steps and at the end the weights and the train state are saved as ONE atomic
unit (``RUN/checkpoints/step-<N>/``, see ``m4sam_ros.training.state``; ``RUN/checkpoint.pt`` is the
newest weights), so ``--resume RUN`` continues at the same step with the same schedule, whatever
instant the previous run was killed at. ``--recipe rdvs|dvisal|vidsod`` gives the benchmark
settings. Checkpoints record the SAM2 file (name, size, SHA-256) they were trained on; loading
one needs that file (``--sam2-checkpoint``) unless it is self-contained: ``--export-full OUT.pt
--init CKPT --sam2-checkpoint SAM2.pt`` writes such a checkpoint for deployment and exits.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from m4sam_ros.data.datasets import DATASETS, DatasetError
from m4sam_ros.model import CheckpointError, build_m4sam, load_config, parameter_report
from m4sam_ros.model.checkpoint import save_m4sam_checkpoint
from m4sam_ros.training import TrainError
from m4sam_ros.training.build import (
    MIN_LR,
    Processes,
    build_dataset,
    build_optimizer,
    build_sampler,
    cosine_lr_factor,
    describe_groups,
    init_processes,
    optimiser_groups,
    prepare_data,
)
from m4sam_ros.training.losses import EDGE_RAMP_FRACTION, OBJECT_WEIGHT
from m4sam_ros.training.recipes import available_recipes, load_recipe
from m4sam_ros.training.state import (
    CHECKPOINT,
    LOG,
    STATE,
    epoch_checkpoint,
    load_latest,
    save_unit,
    sweep_partials,
    truncate_log,
)
from m4sam_ros.training.step import StepRunner
from m4sam_ros.util.cli import DefaultsHelpFormatter, add_device_argument, resolve_device
from m4sam_ros.viz.plots import plot_loss_curve

__all__ = ["CHECKPOINT", "LOG", "MIN_LR", "STATE", "Session", "TrainError", "build_parser", "cosine_lr_factor", "main",
           "run_steps", "set_up", "train"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="m4sam-train", description=__doc__.splitlines()[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--recipe", help=f"benchmark recipe ({', '.join(available_recipes())}) or a YAML path: "
                   "its values become the defaults, flags still win")
    p.add_argument("--config", default="m4sam_hiera_t", help="model config name or YAML path")
    p.add_argument("--model-set", action="append", default=None, metavar="KEY=VALUE",
                   help="override a top-level model config setting (YAML value), e.g. train_memory_branch=true")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic", help="dataset layout to train on")
    p.add_argument("--data-root", help="dataset root (synthetic: generated into RUN/data when omitted)")
    p.add_argument("--split", default="train", help="split folder of the dataset")
    p.add_argument("--out", help="run folder (checkpoints, log, loss curve)")
    p.add_argument("--resume", help="run folder to continue; same arguments as the run that made it")
    p.add_argument("--sam2-checkpoint", help="official SAM2.1 weights; without them the base is random")
    p.add_argument("--init", help="fine-tune: start from this M4-SAM checkpoint's weights (same model config; "
                   "a fresh optimiser and schedule, unlike --resume)")
    p.add_argument("--export-full", metavar="OUT.pt",
                   help="write a self-contained checkpoint (every weight, image encoder included; loads without "
                        "--sam2-checkpoint) of --init CKPT + --sam2-checkpoint to OUT.pt and exit: for deployment")
    p.add_argument("--image-size", type=int, help="override the config's image size (multiple of 32)")
    p.add_argument("--steps", type=int, help="optimiser steps (default: --epochs worth)")
    p.add_argument("--epochs", type=int, default=30, help="passes over the clips (when --steps is not given)")
    p.add_argument("--batch-size", type=int, default=4, help="clips per process per micro-batch")
    p.add_argument("--accum", type=int, default=1, help="gradient accumulation micro-batches")
    p.add_argument("--clip-len", type=int, default=4, help="frames per training clip")
    p.add_argument("--stride", type=int, default=1, help="frame step inside a clip")
    p.add_argument("--clip-sampling", choices=["chunks", "sliding"], default="chunks",
                   help="chunks: non-overlapping clips, the last one of a video padded with its last frame (the "
                        "authors' schedule); sliding: every window (~T x the steps per epoch)")
    p.add_argument("--clip-frames", choices=["auto", "annotated", "all"], default="auto",
                   help="frames clips are built from: annotated ones only (auto: when a video's ground truth "
                        "is sparse) or all")
    p.add_argument("--lr-heads", type=float, default=1e-3, help="learning rate of the new heads (fusion, GMLFF, coarse)")
    p.add_argument("--lr-adapters", type=float, default=1e-4, help="learning rate of the MoE-LoRA adapters")
    p.add_argument("--lr-memory", type=float, help="SAM2's memory branch when the config trains it (default 1e-5)")
    p.add_argument("--lr-object", type=float, help="SAM2's object-score head when it trains (default --lr-heads)")
    p.add_argument("--object-weight", type=float, default=OBJECT_WEIGHT, help="weight of the object-score BCE")
    p.add_argument("--edge-ramp", type=float, default=EDGE_RAMP_FRACTION,
                   help="share of the schedule over which the edge-loss weight ramps 0.2 -> 0.8 (the authors: "
                        "20 of 60 epochs)")
    p.add_argument("--edge-weight", type=float, default=1.0, help="edge-loss weight after the ramp (ViDSOD-100: 0.5)")
    p.add_argument("--lr-base", type=float, help="own learning rate for the SAM2 image trunk when the config "
                   "trains the base in full (default: it trains at --lr-heads, in the heads group)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="AdamW weight decay")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps before the cosine")
    p.add_argument("--gt-cond-prob", type=float, default=0.5,
                   help="probability, per clip at the first step, that frame 0 is conditioned on its ground truth "
                        "instead of its pseudo mask")
    p.add_argument("--gt-cond-prob-end", type=float, default=0.0,
                   help="that probability at the last step (linear in between)")
    p.add_argument("--seed", type=int, default=3407, help="random seed (data order, augmentation, init)")
    p.add_argument("--save-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--no-epoch-checkpoints", action="store_true",
                   help="do not keep RUN/epochs/epoch-<E>.pt at the end of every epoch (kept by default, as the "
                        "authors save every epoch; score them with m4sam-eval-epochs)")
    p.add_argument("--workers", type=int, default=0,
                   help="data-loader processes (0: load in the training process; the recipes use 8)")
    add_device_argument(p)
    p.add_argument("--no-augment", action="store_true", help="train without data augmentation")
    p.add_argument("--synthetic-videos", type=int, default=24, help="synthetic scenes generated (no --data-root)")
    p.add_argument("--synthetic-frames", type=int, default=48, help="frames per synthetic scene")
    p.add_argument("--synthetic-seed", type=int, default=1, help="base seed of the generated training scenes")
    p.add_argument("--time-limit", type=float, help="stop (and save) after this many minutes")
    p.add_argument("--stop-after", type=int, help="stop (and save) after this many steps of this invocation "
                   "(a preemption point; --resume continues the same schedule)")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (1 stays fast on a busy machine)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def model_config(args: argparse.Namespace) -> str | dict[str, Any]:
    """``--config`` with the ``--model-set`` overrides applied (a dict then, stored in checkpoints)."""
    if not args.model_set:
        return args.config
    cfg = load_config(args.config)
    for item in args.model_set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TrainError(f"--model-set {item!r}: expected KEY=VALUE, e.g. train_memory_branch=true")
        *parents, leaf = key.strip().split(".")  # head.edges=true sets one key of a section
        node = cfg
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise TrainError(f"--model-set {item!r}: {part!r} is not a section of the model config")
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    return cfg


def _announce(args: argparse.Namespace, model: torch.nn.Module, procs: Processes, groups: list, n_videos: int,
              n_clips: int, total: int, step: int, run: Path) -> None:
    report = parameter_report(model)
    if args.init:
        base = f"weights from --init {args.init} (fine-tuning)"
    elif args.sam2_checkpoint:
        base = f"SAM2 base from {args.sam2_checkpoint}"
    else:
        base = "no --sam2-checkpoint: the SAM2 base is random-initialised" + (
            " and trains in full" if model.config.get("train_base_in_full") else
            " and stays frozen (pass official weights for a meaningful model)")
    print(f"m4sam-train: {args.dataset} ({n_videos} videos, {n_clips} clips), {procs.world} process(es), "
          f"device {procs.device}; {report['trainable']:,} of {report['total']:,} parameters train "
          f"({100 * report['share']:.2f}%); {base}; {total} steps from step {step}", flush=True)
    print("m4sam-train: optimiser groups (AdamW, weight decay "
          f"{args.weight_decay:g}, cosine to {MIN_LR:g}):\n" + "\n".join(describe_groups(model, groups)), flush=True)
    with open(run / "args.json", "w") as f:
        json.dump(vars(args) | {"base": base, "world_size": procs.world}, f, indent=1)


@dataclass
class Session:
    """Everything one training run holds between steps (built by :func:`set_up`)."""

    args: argparse.Namespace
    procs: Processes
    run: Path
    model: torch.nn.Module
    dataset: Any
    sampler: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    runner: StepRunner
    per_epoch: int
    total_steps: int
    step: int

    def save_epoch(self, epoch: int) -> None:
        """RUN/epochs/epoch-<E>.pt: the weights at the end of epoch E (atomic; rank 0), as the
        authors keep one per epoch; ``m4sam-eval-epochs RUN`` scores them all."""
        if self.procs.rank == 0 and not self.args.no_epoch_checkpoints:
            save_m4sam_checkpoint(self.model, epoch_checkpoint(self.run, epoch),
                                  extra={"epoch": epoch, "step": self.step, "args": json.dumps(vars(self.args))})

    def save(self) -> None:
        """One atomic unit of weights + train state (rank 0), and the loss curve."""
        if self.procs.rank == 0:
            save_unit(self.run, self.model, {"optimizer": self.optimizer.state_dict(),
                                             "scheduler": self.scheduler.state_dict(), "step": self.step,
                                             "torch_rng": torch.get_rng_state()},
                      extra={"args": json.dumps(vars(self.args))})
            plot_loss_curve(self.run / LOG, self.run / "loss.png")


def set_up(args: argparse.Namespace) -> Session:
    """Processes, data, model (fresh, --init or --resume), optimiser and schedule, in the order
    that keeps a resumed run on the same random stream as an uninterrupted one."""
    procs = init_processes(resolve_device(args.device), args.threads)
    run = Path(args.resume or args.out or "runs/m4sam")
    run.mkdir(parents=True, exist_ok=True)
    if procs.rank == 0:
        swept = sweep_partials(run)
        if swept:
            print(f"m4sam-train: removed {len(swept)} leftover(s) of an interrupted save: {', '.join(swept)}")
    videos = prepare_data(args, run, procs.rank)  # before the (slow) model build: data errors come first
    torch.manual_seed(args.seed + procs.rank)  # after data generation: the weights never depend on it
    random.seed(args.seed + procs.rank)
    np.random.seed(args.seed + procs.rank)
    # --init weights are loaded over the built model; a resumed run's own unit replaces them below
    model = build_m4sam(model_config(args), sam2_checkpoint=args.sam2_checkpoint, device=str(procs.device),
                        image_size=args.image_size, m4sam_checkpoint=None if args.resume else args.init)
    model.train()
    dataset = build_dataset(args, videos, model.image_size)
    sampler = build_sampler(args, dataset, procs)
    per_epoch = max(1, len(sampler) // (args.batch_size * args.accum))
    total_steps = args.steps or per_epoch * args.epochs
    groups = optimiser_groups(model, args)
    optimizer, scheduler = build_optimizer(groups, args, total_steps)
    step = 0
    if args.resume:
        state, _, _ = load_latest(run, model)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
    if procs.rank == 0:
        truncate_log(run / LOG, step)  # steps redone after the unit resumed from are logged once
        _announce(args, model, procs, groups, len(videos), len(dataset), total_steps, step, run)
    wrapped = model
    if procs.distributed:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[procs.device.index] if procs.device.type == "cuda" else None,
            find_unused_parameters=True)
    runner = StepRunner(model, wrapped, optimizer, scheduler, procs.device, args.accum, args.seed, procs.rank,
                        args.gt_cond_prob, args.gt_cond_prob_end, edge_ramp=args.edge_ramp,
                        edge_final=args.edge_weight, object_weight=args.object_weight)
    return Session(args, procs, run, model, dataset, sampler, optimizer, scheduler, runner, per_epoch,
                   total_steps, step)


def run_steps(sess: Session) -> None:
    """Steps until the schedule ends (or --time-limit / --stop-after cut it short), logging each
    and saving every --save-every steps."""
    from tqdm import tqdm

    args, rank = sess.args, sess.procs.rank
    started, first_step = time.monotonic(), sess.step
    bar = tqdm(total=sess.total_steps, initial=sess.step, disable=rank != 0 or args.quiet, desc="m4sam-train")
    log_file = open(sess.run / LOG, "a") if rank == 0 else None
    try:
        while sess.step < sess.total_steps:
            epoch, offset = divmod(sess.step, sess.per_epoch)
            sess.sampler.set_epoch(epoch)
            sess.dataset.set_epoch(epoch)
            # the loader's own generator: creating it must not draw from the global RNG (the gates'
            # noise), or a resumed run would diverge from an uninterrupted one
            loader = DataLoader(sess.dataset, batch_size=args.batch_size, num_workers=args.workers, drop_last=True,
                                sampler=list(sess.sampler)[offset * args.batch_size * args.accum:],
                                generator=torch.Generator().manual_seed(args.seed + epoch))
            batches = iter(loader)
            while sess.step < sess.total_steps:
                row = sess.runner.run(batches, sess.step, sess.total_steps)
                if row is None:
                    break
                sess.step += 1
                bar.update(1)
                if log_file:
                    log_file.write(json.dumps({"step": sess.step, **row}) + "\n")
                    log_file.flush()
                    bar.set_postfix(loss=f"{row['total']:.3f}")
                if sess.step % args.save_every == 0:
                    sess.save()
                if sess.step % sess.per_epoch == 0:
                    sess.save_epoch(sess.step // sess.per_epoch)
                out_of_time = args.time_limit and time.monotonic() - started > 60 * args.time_limit
                if out_of_time or (args.stop_after and sess.step - first_step >= args.stop_after):
                    sess.total_steps = sess.step  # stop here; the schedule state is saved for --resume
    finally:
        bar.close()
        if log_file:
            log_file.close()


def train(args: argparse.Namespace) -> Path:
    """Runs the training described by ``args``; returns the run folder."""
    sess = set_up(args)
    started = time.monotonic()
    run_steps(sess)
    sess.save()
    if sess.procs.rank == 0:
        print(f"m4sam-train: done at step {sess.step} in {time.monotonic() - started:.0f} s; "
              f"wrote {sess.run / CHECKPOINT}", flush=True)
    if sess.procs.distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return sess.run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses ``argv``; a ``--recipe`` supplies the defaults that the flags then override."""
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.recipe:
        parser.set_defaults(**load_recipe(pre.recipe, parser))
    args = parser.parse_args(argv)
    if args.export_full:
        if not args.init:
            parser.error("--export-full OUT.pt needs --init CKPT (the checkpoint to export)")
        return args
    if not args.out and not args.resume:
        parser.error("give --out RUN (or --resume RUN)")
    if args.resume and not Path(args.resume).is_dir():
        parser.error(f"--resume {args.resume}: no such run folder")
    try:
        resolve_device(args.device)
    except ValueError as exc:
        parser.error(f"--device: {exc}")
    return args


def export_full(args: argparse.Namespace) -> Path:
    """``--export-full``: --init's checkpoint + its SAM2 weights as one self-contained file."""
    from m4sam_ros.model import export_full_checkpoint

    source = export_full_checkpoint(args.init, args.export_full, args.sam2_checkpoint)
    print(f"m4sam-train: wrote {args.export_full}: self-contained (every weight"
          + (f"; SAM2 base {source['name']}" if source else "") + "), loads without --sam2-checkpoint", flush=True)
    return Path(args.export_full)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.export_full:
            export_full(args)
            return 0
        train(args)
    except (DatasetError, CheckpointError, TrainError) as exc:
        print(f"m4sam-train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

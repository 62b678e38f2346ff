"""Demo benchmark: ``make demo`` N times, then the node and ``m4sam-bag`` against the bare predictor.

    python -m m4sam_ros.benchmarks.demo_bench --runs 5                 # the README's demo figures
    python -m m4sam_ros.benchmarks.demo_bench --runs 1 --soak 60       # + m4sam-soak at the same size/rate

Prints, with the machine's load average beside every figure:

- per run: masks of pairs sent, frames/s, latency mean/p95, the loss split into the node's own drops
  (its /diagnostics: dropped as stale, rejected) and the harness's (pairs that never reached the
  node, masks not recorded), how late the player published, and the CPU seconds each process used
  during the replay (the harness's share shows whether it competes with the node);
- min/median/max over the runs of masks, frames/s and p95 latency;
- the node's ms/frame by stage (decode, inference, encode, publish; wall and worker-thread CPU, from
  its own timings) against ``StreamingPredictor.step`` on the same frames in this process: the
  node's overhead over the bare predictor;
- ``m4sam-bag`` on the demo's input bag: frames/s against the bare predictor's.

On a loaded machine wall times stretch with the load; CPU times and the ratios much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from m4sam_ros.util.atomic import write_text
from m4sam_ros.util.cli import DefaultsHelpFormatter

#: the node's worker stages (its /diagnostics ``stage_ms_mean_*``); the mask is out after the first three
NODE_STAGES = ("decode", "inference", "mask", "encode", "publish")
MASK_PATH = ("decode", "inference", "mask")


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)} if values else {}


class TimedPredictor:
    """Passes ``step`` through to a StreamingPredictor and keeps its wall and thread-CPU seconds."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def step(self, *args: Any, **kwargs: Any) -> Any:
        t0, c0 = time.perf_counter(), time.thread_time()
        out = self.predictor.step(*args, **kwargs)
        self.cpu.append(time.thread_time() - c0)
        self.wall.append(time.perf_counter() - t0)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)


def bare_predictor(checkpoint: str, frames: int, seed: int, width: int, height: int, fps: float
                   ) -> dict[str, Any]:
    """``StreamingPredictor.step`` on the demo's own frames, one torch thread as the node has."""
    import torch

    from m4sam_ros.apps.demo import DEMO_SCENE
    from m4sam_ros.data.synth import generate_video
    from m4sam_ros.predictor import StreamingPredictor

    torch.set_num_threads(1)
    video = generate_video(seed, frames, width, height, fps, **DEMO_SCENE)
    pred = TimedPredictor(StreamingPredictor.from_config(None, m4sam_checkpoint=checkpoint, device="cpu"))
    pred.predictor.warm_up(height, width)  # as the node does at configure
    load0 = _load()
    for i in range(frames):
        pred.step(video.rgb[i], video.depth[i], stamp=i / fps)
    return {"frames": frames, "step_ms_mean": 1e3 * float(np.mean(pred.wall)),
            "step_ms_median": 1e3 * float(np.median(pred.wall)),
            "step_cpu_ms_mean": 1e3 * float(np.mean(pred.cpu)), "load_average": [load0, _load()]}


def bag_throughput(input_bag: Path, checkpoint: str) -> dict[str, Any]:
    """``m4sam-bag``'s own loop on the demo's input bag, with its predictor timed inside."""
    import torch

    from m4sam_ros.apps.bag import process_bag
    from m4sam_ros.predictor import StreamingPredictor

    torch.set_num_threads(1)
    pred = TimedPredictor(StreamingPredictor.from_config(None, m4sam_checkpoint=checkpoint, device="cpu"))
    pred.predictor.warm_up()
    load0 = _load()
    with tempfile.TemporaryDirectory() as tmp:
        c0 = time.process_time()
        summary = process_bag(input_bag, Path(tmp) / "out", pred, progress=False)
        cpu = time.process_time() - c0
    step_s, step_cpu = float(np.sum(pred.wall)), float(np.sum(pred.cpu))
    n = max(summary.processed, 1)
    return {"processed": summary.processed, "pairs": summary.pairs, "seconds": summary.seconds,
            "frames_per_second": summary.frames_per_second, "ms_per_frame": 1e3 * summary.seconds / n,
            "cpu_ms_per_frame": 1e3 * cpu / n, "step_ms_mean": 1e3 * step_s / n, "step_cpu_ms_mean": 1e3 * step_cpu / n,
            "rest_ms_per_frame": 1e3 * (summary.seconds - step_s) / n, "load_average": [load0, _load()]}


def run_soak(seconds: float, size: str, rate: float) -> dict[str, Any]:
    """``m4sam-soak`` at the demo's size and rate (its own process tree); its closing line parsed."""
    cmd = [sys.executable, "-m", "m4sam_ros.benchmarks.soak_bench", "--minutes", f"{seconds / 60:.4f}",
           "--size", size, "--rate", f"{rate:g}", "--report", f"{max(seconds / 4, 1):g}"]
    load0 = _load()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300).stdout
    m = re.search(r"sent (\d+) pairs, (\d+) masks \(([\d.]+) Hz\).*longest stall ([\d.]+) s", out)
    if not m:
        return {"error": out[-2000:], "load_average": [load0, _load()]}
    sent, masks = int(m.group(1)), int(m.group(2))
    return {"sent": sent, "masks": masks, "delivered": masks / max(sent, 1), "hz": float(m.group(3)),
            "longest_stall_s": float(m.group(4)), "load_average": [load0, _load()]}


def overhead(node: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    """The node's per-frame work over the bare step: to the mask (decode + inference + ~/mask out)
    and in all (+ encoding and publishing saliency, overlay, markers), wall and worker CPU."""
    wall = node.get("stage_ms_mean") or {}
    cpu = node.get("stage_cpu_ms_mean") or {}
    out: dict[str, Any] = {}
    for name, stages in (("to_mask", MASK_PATH), ("all", NODE_STAGES)):
        w = sum(wall.get(s) or 0.0 for s in stages)
        c = sum(cpu.get(s) or 0.0 for s in stages)
        out[f"{name}_ms"], out[f"{name}_cpu_ms"] = w, c
        out[f"{name}_overhead_wall"] = w / bare["step_ms_mean"] - 1 if bare["step_ms_mean"] else None
        out[f"{name}_overhead_cpu"] = c / bare["step_cpu_ms_mean"] - 1 if bare["step_cpu_ms_mean"] else None
        out[f"{name}_overhead_cpu_vs_own_inference"] = c / cpu["inference"] - 1 if cpu.get("inference") else None
    return out


def median_node(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Each of the node's per-stage figures as its median over the runs (runs without them left out)."""
    nodes = [n for n in nodes if n and n.get("stage_ms_mean")]
    if not nodes:
        return {}
    out: dict[str, Any] = {"runs": len(nodes)}
    for key in ("stage_ms_mean", "stage_cpu_ms_mean"):
        stages = {st for n in nodes for st in n[key]}
        out[key] = {st: statistics.median([n[key][st] for n in nodes if n[key].get(st) is not None]) for st in stages}
    for key in ("pair_to_mask_ms_mean", "pair_to_mask_ms_p95", "pair_to_output_ms_mean", "pair_to_output_ms_p95"):
        vals = [n[key] for n in nodes if n.get(key) is not None]
        out[key] = statistics.median(vals) if vals else None
    return out


def _fmt(v: Any, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


def print_run(i: int, s: dict[str, Any]) -> None:
    h, ln, lh = s.get("harness", {}), s.get("lost_in_node", {}), s.get("lost_in_harness", {})
    skipped = (ln.get("skipped_rate_limit") or 0) + (ln.get("skipped_paused") or 0)
    cpu = h.get("cpu_s_during_replay", {})
    print(f"run {i}: {s['masks_received']}/{s['pairs_sent']} masks, {s['frames_per_second']:.2f} frames/s, latency "
          f"{_fmt(s['latency_ms_mean'], '.0f')} ms mean / {_fmt(s['latency_ms_p95'], '.0f')} ms p95; lost in node: "
          f"{ln.get('dropped_stale', 'n/a')} stale + {ln.get('rejected', 'n/a')} rejected + {skipped} skipped, "
          f"in harness: "
          f"{lh.get('never_reached_node', 'n/a')} never reached + {lh.get('masks_not_recorded', 'n/a')} not recorded; "
          f"player late p95/max {_fmt(h.get('player_late_ms_p95'))}/{_fmt(h.get('player_late_ms_max'))} ms; "
          f"CPU s during the {_fmt(h.get('replay_wall_s'))} s replay: "
          + ", ".join(f"{k} {_fmt(v, '.2f')}" for k, v in cpu.items())
          + f"; load {s['load_average']['start'][0]:.2f} -> {s['load_average']['end'][0]:.2f}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    """The command line (test/test_cli_help.py reads every flag's help)."""
    p = argparse.ArgumentParser(prog="m4sam-demo-bench", description=__doc__.splitlines()[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="demo runs in a row")
    p.add_argument("--frames", type=int, default=90, help="frames of the synthetic scene per run")
    p.add_argument("--seed", type=int, default=90213, help="scene seed (the demo's)")
    p.add_argument("--checkpoint", default=None, help="M4-SAM checkpoint (default: the bundled demo model)")
    p.add_argument("--keep", default=None, help="keep each run's demo_output under this folder")
    p.add_argument("--no-bare", action="store_true", help="skip the bare-predictor and m4sam-bag comparison")
    p.add_argument("--soak", type=float, default=0.0, help="also run m4sam-soak this many seconds at 320x240, 15 Hz")
    p.add_argument("--json", help="also write every figure here (atomically)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.runs < 1 or args.frames < 8:
        p.error("--runs must be >= 1 and --frames >= 8")

    from m4sam_ros.apps.demo import run_demo
    from m4sam_ros.ros.params import DEMO_MODEL

    checkpoint = args.checkpoint or str(DEMO_MODEL)
    width, height, fps = 320, 240, 15.0
    print(f"demo bench: {args.runs} run(s) of {args.frames} pairs at {fps:g} Hz, {width}x{height}, "
          f"{os.cpu_count()} CPUs, load average {_load()}", flush=True)
    out: dict[str, Any] = {"runs": [], "cpus": os.cpu_count(), "load_average_start": _load()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        for i in range(args.runs):
            s = run_demo(root / f"run{i}", frames=args.frames, seed=args.seed,
                         checkpoint=Path(args.checkpoint) if args.checkpoint else None, width=width, height=height,
                         fps=fps)
            out["runs"].append(s)
            print_run(i, s)
        runs = out["runs"]
        out["spread"] = {k: _spread([float(r[k]) for r in runs if r.get(k) is not None])
                         for k in ("masks_received", "frames_per_second", "latency_ms_p95")}
        loads = [r["load_average"]["start"][0] for r in runs] + [r["load_average"]["end"][0] for r in runs]
        out["spread"]["load_1min"] = _spread(loads)
        print(f"\nover {len(runs)} run(s) (min / median / max):")
        for k, v in out["spread"].items():
            print(f"  {k:18s} {v['min']:8.2f} {v['median']:8.2f} {v['max']:8.2f}")
        if not args.no_bare:
            bare = bare_predictor(checkpoint, args.frames, args.seed, width, height, fps)
            node = median_node([r.get("node") or {} for r in runs])
            out["bare_predictor"], out["node_median"] = bare, node
            out["overhead"] = ov = overhead(node, bare) if node else {}
            wall, cpu = node.get("stage_ms_mean") or {}, node.get("stage_cpu_ms_mean") or {}
            print(f"\nnode (its own timings, median of {node.get('runs', 0)} run(s)) vs StreamingPredictor.step on the "
                  f"same {args.frames} frames "
                  f"(ms/frame, mean; wall | worker CPU); load during the bare run {bare['load_average']}:")
            print(f"  bare StreamingPredictor.step     {bare['step_ms_mean']:7.1f} | {bare['step_cpu_ms_mean']:6.1f}")
            for stage in NODE_STAGES:
                print(f"  node {stage:28s}{_fmt(wall.get(stage), '7.1f')} | {_fmt(cpu.get(stage), '6.1f')}")
            for name, label in (("to_mask", "to the mask (decode+inference+mask)"),
                                ("all", "in all (every output published)")):
                if ov:
                    print(f"  node work {label:36s} {ov[name + '_ms']:7.1f} | {ov[name + '_cpu_ms']:6.1f}   vs bare "
                          f"step: {_fmt(100 * ov[name + '_overhead_wall'], '+.1f')} % wall, "
                          f"{_fmt(100 * ov[name + '_overhead_cpu'], '+.1f')} % CPU; vs its own inference "
                          f"{_fmt(100 * ov[name + '_overhead_cpu_vs_own_inference'], '+.1f')} % CPU")
            print(f"  node queue (pair in -> taken)    {_fmt(wall.get('queue'), '7.1f')}")
            for key, label in (("pair_to_mask", "mask out"), ("pair_to_output", "all out")):
                print(f"  node pair in -> {label:16s} {_fmt(node.get(key + '_ms_mean'), '7.1f')} mean, "
                      f"{_fmt(node.get(key + '_ms_p95'), '.1f')} p95")
            bag = bag_throughput(root / f"run{args.runs - 1}" / "input_bag", checkpoint)
            out["bag"] = bag
            bare_fps = 1e3 / bare["step_ms_mean"]
            print(f"\nm4sam-bag on the demo's input bag: {bag['processed']}/{bag['pairs']} pairs, "
                  f"{bag['frames_per_second']:.2f} frames/s vs bare predictor {bare_fps:.2f} frames/s "
                  f"({100 * (bag['frames_per_second'] / bare_fps - 1):+.1f} %); per frame {bag['ms_per_frame']:.1f} ms "
                  f"= step {bag['step_ms_mean']:.1f} + read/decode/encode/write {bag['rest_ms_per_frame']:.1f} "
                  f"(CPU {bag['cpu_ms_per_frame']:.1f}, step CPU {bag['step_cpu_ms_mean']:.1f}); load "
                  f"{bag['load_average']}")
        if args.soak > 0:
            out["soak"] = soak = run_soak(args.soak, f"{width}x{height}", fps)
            if "error" in soak:
                print(f"\nm4sam-soak failed:\n{soak['error']}")
            else:
                print(f"\nm4sam-soak {args.soak:g} s at {width}x{height}, {fps:g} Hz: {soak['masks']}/{soak['sent']} "
                      f"masks ({100 * soak['delivered']:.1f} %, {soak['hz']:.2f} Hz), longest stall "
                      f"{soak['longest_stall_s']:.2f} s; demo median {out['spread']['masks_received']['median']:.0f}/"
                      f"{runs[0]['pairs_sent']}; load {soak['load_average']}")
    out["load_average_end"] = _load()
    print(f"\nload average at the end {out['load_average_end']} on {os.cpu_count()} CPUs")
    if args.json:
        write_text(args.json, json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

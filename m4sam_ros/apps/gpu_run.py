"""`m4sam-gpu-run OUT`: the one prepared GPU run, in <= 10 minutes on one CUDA GPU.

1. ``m4sam-bench --gpu-suite`` (training step of hiera-l at 352 px, streaming frames/s and latency,
   memory at frame 100 vs 2,000) -> ``OUT/gpu_suite.json``;
2. meanwhile, on the CPU cores: the training scenes of the synthetic world and the six held-out
   test sets of ``m4sam-heldout`` are generated in parallel;
3. ``m4sam-train`` of the 256 px demo model from scratch (``m4sam_ros/assets/MODEL_CARD.md``'s
   recipe: every group at 1e-3, synthetic world; scaled to the GPU: batch 16, data-loader
   workers; with this package's training recipe: non-overlapping clips, the authors'
   augmentation and loss, edge heads, and GMLFF fed to SAM2's decoder: ``gmlff.to_decoder``, which
   scored the memory output best in the CPU ablation of docs/TRAINING.md). A 10-step calibration
   run measures s/step first, so the
   schedule (warm-up + cosine) is sized to end inside the time left, not cut off by a timer;
4. ``m4sam-heldout``'s sets scored for the new model (every branch) and the bundled demo model,
   on the same frames -> ``OUT/heldout.json``, ``OUT/summary.json`` (each stage's seconds, the mean
   S of both models, ``beats_bundled``) and ``OUT/demo_model.pt`` (the new model with its best
   branch recommended; to ship it: copy it over ``m4sam_ros/assets/demo_model.pt`` and update the
   model card).

Logs: ``OUT/logs/<stage>.log``; the run folder ``OUT/train``. ``--tiny`` runs the same code path on
the CPU at a tiny size in about a minute (the test does); ``tools/gpu_run.sh OUT`` is this command.
Exit 0 when every stage ran (whether or not the new model wins), 1 when one failed (the others'
results are still written).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m4sam_ros.util.atomic import write_text
from m4sam_ros.util.cli import DefaultsHelpFormatter, add_device_argument


@dataclass(frozen=True)
class Plan:
    """Sizes of one run: the GPU plan or the tiny CPU one."""

    suite: list[str]            # extra m4sam-bench arguments
    suite_timeout_s: float
    videos: int                 # training scenes
    frames: int                 # frames per training scene
    scene_wh: tuple[int, int]
    image_size: int
    batch: int
    workers: int
    calib_steps: int
    min_steps: int
    max_steps: int
    warmup: int
    heldout_sets: tuple[str, ...]
    heldout_videos: int
    heldout_frames: int
    heldout_reserve_s: float    # time kept for scoring after training
    budget_s: float             # the whole run


def plans() -> dict[str, Plan]:
    from m4sam_ros.evaluation.heldout import SETS

    return {
        "gpu": Plan(suite=["--budget-s", "150"], suite_timeout_s=240, videos=400, frames=12, scene_wh=(320, 240),
                    image_size=256, batch=16, workers=8, calib_steps=10, min_steps=200, max_steps=20000,
                    warmup=100, heldout_sets=SETS, heldout_videos=8, heldout_frames=32, heldout_reserve_s=100,
                    budget_s=570),
        "tiny": Plan(suite=["--tiny", "--device", "cpu"], suite_timeout_s=300, videos=2, frames=6,
                     scene_wh=(96, 72), image_size=64, batch=2, workers=0, calib_steps=2, min_steps=2, max_steps=2,
                     warmup=0, heldout_sets=("in_distribution", "shapes"), heldout_videos=1, heldout_frames=4,
                     heldout_reserve_s=0, budget_s=600),
    }


def _write_scene(seed: int, frames: int, wh: tuple[int, int], holdout: str | None, d: str) -> str:
    from m4sam_ros.data.synth import generate_video, write_vidsod_layout

    if not Path(d).exists():
        write_vidsod_layout(generate_video(seed, frames, wh[0], wh[1], holdout=holdout), d)
    return d


def start_scenes(pool: ProcessPoolExecutor, out: Path, plan: Plan, seed: int) -> list[Future]:
    """Queues the training scenes (named as ``m4sam-train`` names its generated ones) and the
    held-out sets (as ``m4sam-heldout.write_sets`` writes them) on ``pool``."""
    from m4sam_ros.data.synth import video_seed
    from m4sam_ros.evaluation.heldout import set_seed

    jobs = []
    for i in range(plan.videos):
        s = video_seed(seed, i)
        jobs.append(pool.submit(_write_scene, s, plan.frames, plan.scene_wh, None,
                                str(out / "data" / "train" / f"synth_{s:06d}")))
    for name in plan.heldout_sets:
        for i in range(plan.heldout_videos):
            s = video_seed(set_seed(name), i)
            jobs.append(pool.submit(_write_scene, s, plan.heldout_frames, (320, 240),
                                    None if name == "in_distribution" else name,
                                    str(out / "heldout" / "sets" / name / "test" / f"synth_{s:06d}")))
    return jobs


def _run(cmd: list[str], log: Path, timeout: float) -> dict[str, Any]:
    """Runs one stage as a subprocess, its output into ``log``; never raises."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return {"rc": rc, "seconds": round(time.perf_counter() - t0, 1), "log": str(log)}


def train_command(out: Path, run: Path, plan: Plan, device: str, steps: int, seed: int) -> list[str]:
    """``m4sam-train`` for the demo model at the plan's size (MODEL_CARD's rates, this recipe)."""
    return [sys.executable, "-m", "m4sam_ros.training.train", "--config", "m4sam_demo",
            "--image-size", str(plan.image_size), "--model-set", "head.edges=true",
            "--model-set", "gmlff.to_decoder=true", "--dataset", "synthetic",
            "--data-root", str(out / "data"), "--synthetic-videos", str(plan.videos),
            "--synthetic-frames", str(plan.frames), "--synthetic-seed", str(seed), "--steps", str(steps),
            "--batch-size", str(plan.batch), "--clip-len", "4", "--warmup", str(min(plan.warmup, steps // 10)),
            "--lr-heads", "1e-3", "--lr-adapters", "1e-3", "--lr-memory", "1e-3", "--workers", str(plan.workers),
            "--save-every", "1000000", "--no-epoch-checkpoints", "--device", device, "--quiet", "--out", str(run),
            *(["--threads", "1"] if device == "cpu" else [])]


def seconds_per_step(run: Path) -> float:
    """Median s/step of a run's log, the first steps (warm-up, allocation) left out."""
    rows = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines() if ln.strip()]
    times = [r["s_per_step"] for r in rows]
    return float(statistics.median(times[3:] or times))


def score(out: Path, plan: Plan, checkpoint: Path, device: str) -> dict[str, Any]:
    """Held-out S per set of ``checkpoint`` (every branch), on the sets under OUT/heldout."""
    from m4sam_ros.evaluation.heldout import evaluate_sets, write_sets

    roots = write_sets(out / "heldout", plan.heldout_videos, plan.heldout_frames, 320, 240, plan.heldout_sets)
    res = evaluate_sets(roots, checkpoint, 16, branch="auto", device=device)
    per = {b: {n: r[f"model:{b}"]["S"] for n, r in res.items()} for b in ("memory", "coarse", "combined")}
    return {"recommended": next(iter(res.values()))["model"]["branch"], "S": per,
            "mean_S": {b: round(statistics.mean(v.values()), 4) for b, v in per.items()}}


def gpu_run(out: Path, tiny: bool = False, device: str = "auto", seed: int = 1) -> dict[str, Any]:
    """Runs the four stages (module docstring); returns and writes OUT/summary.json."""
    import torch

    started = time.perf_counter()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    plan = plans()["tiny" if tiny else "gpu"]
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    summary: dict[str, Any] = {"device": device, "plan": "tiny" if tiny else "gpu", "stages": {}}
    stages = summary["stages"]
    cores = max(1, (os.cpu_count() or 2) - 2)
    with ProcessPoolExecutor(max_workers=1 if tiny else cores) as pool:
        jobs = start_scenes(pool, out, plan, seed)
        stages["gpu_suite"] = _run([sys.executable, "-m", "m4sam_ros.benchmarks.bench", "--gpu-suite",
                                    "--json", str(out / "gpu_suite.json"), *plan.suite],
                                   logs / "gpu_suite.log", plan.suite_timeout_s)
        t0 = time.perf_counter()
        for j in jobs:
            j.result()
        stages["scenes"] = {"seconds_waited": round(time.perf_counter() - t0, 1), "videos": len(jobs)}
    calib = out / "calibration"
    stages["calibration"] = _run(train_command(out, calib, plan, device, plan.calib_steps, seed),
                                 logs / "calibration.log", 300)
    steps = plan.min_steps
    if stages["calibration"]["rc"] == 0:
        s_step = seconds_per_step(calib)
        left = plan.budget_s - (time.perf_counter() - started) - plan.heldout_reserve_s - 30  # 30 s: model build
        steps = max(plan.min_steps, min(plan.max_steps, int(left / max(s_step, 1e-3))))
        stages["calibration"]["s_per_step"] = round(s_step, 4)
    run = out / "train"
    stages["train"] = _run(train_command(out, run, plan, device, steps, seed), logs / "train.log",
                           max(60.0, plan.budget_s))
    stages["train"]["steps"] = steps
    ckpt = run / "checkpoint.pt"
    if stages["train"]["rc"] == 0 and ckpt.is_file():
        from m4sam_ros.evaluation.heldout import DEMO_MODEL
        from m4sam_ros.model.checkpoint import set_recommended_output

        t0 = time.perf_counter()
        new, bundled = score(out, plan, ckpt, device), score(out, plan, DEMO_MODEL, device)
        best = max(new["mean_S"], key=lambda b: new["mean_S"][b])
        ref = bundled["mean_S"][bundled["recommended"]]
        summary["heldout"] = {"new": new, "bundled": bundled, "new_best_branch": best,
                              "new_mean_S": new["mean_S"][best], "bundled_mean_S": ref,
                              "sets": list(plan.heldout_sets), "videos": plan.heldout_videos,
                              "frames": plan.heldout_frames}
        summary["beats_bundled"] = new["mean_S"][best] > ref
        set_recommended_output(ckpt, out / "demo_model.pt", best)
        stages["heldout"] = {"rc": 0, "seconds": round(time.perf_counter() - t0, 1)}
        write_text(out / "heldout.json", json.dumps(summary["heldout"], indent=1))
    else:
        stages["heldout"] = {"rc": "skipped: no trained checkpoint"}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["ok"] = all(s.get("rc", 0) == 0 for s in stages.values())
    write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The command line (test/test_cli_help.py reads every flag's help)."""
    p = argparse.ArgumentParser(prog="m4sam-gpu-run", description=__doc__.splitlines()[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("out", help="output folder (JSON, logs, checkpoint)")
    p.add_argument("--tiny", action="store_true", help="the same stages at a tiny size on the CPU (~1 min)")
    add_device_argument(p)
    p.add_argument("--seed", type=int, default=1, help="base seed of the training scenes")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    s = gpu_run(Path(args.out), args.tiny, args.device, args.seed)
    h = s.get("heldout")
    if h:
        print(f"m4sam-gpu-run: new model mean S {h['new_mean_S']:.4f} ({h['new_best_branch']}) vs bundled "
              f"{h['bundled_mean_S']:.4f}: {'beats' if s['beats_bundled'] else 'does not beat'} the bundled model")
    print(f"m4sam-gpu-run: {'ok' if s['ok'] else 'a stage failed'} in {s['seconds']:.0f} s; "
          f"wrote {Path(args.out) / 'summary.json'}")
    return 0 if s["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

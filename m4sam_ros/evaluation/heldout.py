"""`m4sam-heldout`: factor-wise held-out test sets of the synthetic world, and their score table.

For each factor of ``m4sam-synth``'s world (shapes, textures, layouts, distractors, depth noise) a
test set whose values of that factor never occur in training (``generate_video(holdout=F)``; the
training sampler draws only the training pools), plus an in-distribution set (training pools, seeds
training never uses). Each set is scored three ways, through the same code as ``m4sam-eval``
(``evaluate.evaluate_maps``; the model through ``evaluate.PredictorRunner``, i.e. the streaming
predictor, the one inference path):

- the model (default: the bundled demo model), memory reset every ``--clip-len`` frames: the
  ``--branch`` the table reports (default ``auto``, as the node's ``output`` parameter: the
  branch the checkpoint recommends, else memory) and, beside it, the S of the other two branches (same run, no extra cost);
- depth only: ``evaluate.depth_baseline`` (Otsu on nearness, largest component);
- RGB only: frequency-tuned colour saliency (Achanta et al. 2009: distance of each blurred Lab
  pixel to the frame's mean Lab colour), Otsu, largest component; the appearance cue alone.

Writes ``OUT/sets/<factor>/test/<video>/`` (ViDSOD layout, 16-bit mm depth), ``OUT/heldout.json``
and ``OUT/heldout.md`` (the model card's table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from m4sam_ros.data import synth
from m4sam_ros.data.datasets import DatasetError, Video, open_videos
from m4sam_ros.data.synth.scene import FACTORS, POOLS
from m4sam_ros.model.depth import normalize_depth
from m4sam_ros.util.atomic import write_text
from m4sam_ros.util.cli import DefaultsHelpFormatter, add_device_argument, resolve_device

DEMO_MODEL = Path(__file__).resolve().parent.parent / "assets" / "demo_model.pt"  # m4sam_ros/assets
SETS = ("in_distribution", *FACTORS)
BASE_SEED = 70   # held-out sets use seeds 70000+ (training's default base seed 1 uses 1000+)


def set_seed(name: str) -> int:
    """The base seed of one set (distinct per set, far from the training seeds)."""
    return BASE_SEED + SETS.index(name)


def rgb_baseline(rgb: np.ndarray) -> np.ndarray:
    """Frequency-tuned colour saliency, Otsu-thresholded, largest component. uint8 {0, 255}."""
    lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (5, 5), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
    sal = np.linalg.norm(lab - lab.reshape(-1, 3).mean(0), axis=-1)
    sal8 = cv2.normalize(sal, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, mask = cv2.threshold(sal8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    out = np.zeros(rgb.shape[:2], np.uint8)
    if n > 1:
        out[labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))] = 255
    return out


def write_sets(root: Path, videos: int, frames: int, width: int, height: int,
               names: tuple[str, ...] = SETS) -> dict[str, Path]:
    """Generates every set (skips videos already on disk); returns set name -> dataset root."""
    roots = {}
    for name in names:
        if name not in SETS:
            raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)}")
        holdout = None if name == "in_distribution" else name
        base = root / "sets" / name
        for i in range(videos):
            seed = synth.video_seed(set_seed(name), i)
            d = base / "test" / f"synth_{seed:06d}"
            if not d.exists():
                synth.write_vidsod_layout(synth.generate_video(seed, frames, width, height, holdout=holdout), d)
        roots[name] = base
    return roots


def _baseline_maps(video: Video) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    for i in range(len(video)):
        f = video[i]
        yield i, {"depth-only": _depth_only(f.depth, video.depth_kind), "rgb-only": rgb_baseline(f.rgb)}


def gt_through_grid(gt: np.ndarray, grid: int) -> np.ndarray:
    """The ground truth squeezed to ``grid`` x ``grid`` (area) and stretched back (bilinear): the
    best map a model whose output is that grid (stride 4 of a square input, as SAM2's masks) can
    give. Its S is the resolution ceiling of such a model. float [0, 1]."""
    g = gt.astype(np.float32) / 255.0
    small = cv2.resize(g, (grid, grid), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)


def _ceiling_maps(grid: int) -> Any:
    def maps(video: Video) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for i in range(len(video)):
            f = video[i]
            if f.gt is not None:
                yield i, {f"gt@{grid}": gt_through_grid(f.gt, grid)}
    return maps


def _depth_only(depth: np.ndarray, kind: Any) -> np.ndarray:
    from m4sam_ros.evaluation.evaluate import depth_baseline

    return depth_baseline(normalize_depth(depth, kind))


BRANCHES = ("memory", "coarse", "combined")


def evaluate_sets(roots: dict[str, Path], checkpoint: Path | None, clip_len: int = 16,
                  progress: bool = False, branch: str = "auto", ceiling: int = 0, device: str = "cpu"
                  ) -> dict[str, dict[str, dict[str, Any]]]:
    """Set name -> method -> scalar metrics. With a ``checkpoint``: ``model`` (its ``branch``;
    auto: the checkpoint's recommended one, named in ``model["branch"]``) and ``model:<b>`` for
    every branch b."""
    from m4sam_ros.evaluation.evaluate import PredictorRunner, evaluate_maps

    runner = PredictorRunner(checkpoint, device=device) if checkpoint is not None else None
    if runner is not None and branch == "auto":
        branch = runner.predictor.recommended_output
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, root in roots.items():
        videos = open_videos("synthetic", root, "test")
        res = evaluate_maps(videos, _baseline_maps, ["depth-only", "rgb-only"], None, progress=progress)
        if ceiling:
            res |= evaluate_maps(videos, _ceiling_maps(ceiling), [f"gt@{ceiling}"], None, progress=progress)
        if runner is not None:
            t0 = time.perf_counter()

            def maps(video: Video) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
                for i, by_branch in runner.run(video, clip_len):
                    yield i, {"model": by_branch[branch], **{f"model:{b}": by_branch[b] for b in BRANCHES}}
            res |= evaluate_maps(videos, maps, ["model", *(f"model:{b}" for b in BRANCHES)], None, progress=progress)
            res["model"]["seconds"] = round(time.perf_counter() - t0, 1)
            res["model"]["branch"] = branch
        out[name] = {m: {k: v for k, v in r.items() if not isinstance(v, (list, np.ndarray))} for m, r in res.items()}
    return out


def _f(v: float | None) -> str:
    return "pending" if v is None else f"{v:.3f}"


def markdown(results: dict[str, dict[str, dict[str, Any]]], model_name: str, branch: str = "memory") -> str:
    """The model card's factor table: S / MAE of the model's ``branch``, the S of its other
    branches, and S / MAE of both baselines per held-out set."""
    others = [b for b in BRANCHES if b != branch]
    rows = [f"| test set | held-out values | {model_name} ({branch}) S | MAE | " + " | ".join(f"{b} S" for b in others)
            + " | depth-only S | MAE | RGB-only S | MAE | frames |",
            "|---|---|---:|---:|" + "---:|" * len(others) + "---:|---:|---:|---:|---:|"]
    for name, per in results.items():
        values = "none (training pools, unseen seeds)" if name == "in_distribution" else ", ".join(POOLS[name][1])
        m = per.get("model", {})
        other_s = " | ".join(_f(per.get(f"model:{b}", {}).get("S")) for b in others)
        rows.append(f"| {name} | {values} | {_f(m.get('S'))} | {_f(m.get('MAE'))} | {other_s} | "
                    f"{_f(per['depth-only']['S'])} | "
                    f"{_f(per['depth-only']['MAE'])} | {_f(per['rgb-only']['S'])} | {_f(per['rgb-only']['MAE'])} | "
                    f"{per['depth-only']['frames']} |")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    """The m4sam-heldout command line (test/test_cli_help.py reads every flag's help)."""
    p = argparse.ArgumentParser(prog="m4sam-heldout", description=__doc__.splitlines()[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the sets and the tables")
    p.add_argument("--checkpoint", default=str(DEMO_MODEL), help="model to score (default: the bundled demo model)")
    p.add_argument("--baselines-only", action="store_true", help="score only the two baselines")
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS, help="held-out sets to generate and score")
    p.add_argument("--videos", type=int, default=4, help="videos per set")
    p.add_argument("--frames", type=int, default=24, help="frames per video")
    p.add_argument("--width", type=int, default=320, help="frame width in pixels")
    p.add_argument("--height", type=int, default=240, help="frame height in pixels")
    p.add_argument("--branch", choices=("auto", *BRANCHES), default="auto",
                   help="the model's map the table reports (the node's `output` parameter; auto: the "
                        "checkpoint's recommended branch, else memory)")
    p.add_argument("--ceiling", type=int, default=0, metavar="GRID",
                   help="also score the ground truth squeezed through a GRID x GRID output (e.g. 32: a 128 px "
                        "model's stride-4 masks): the resolution ceiling of such a model (JSON only)")
    p.add_argument("--clip-len", type=int, default=16, help="reset the predictor every N frames (0: never)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add_device_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.videos < 1 or args.frames < 1:
        p.error("--videos and --frames must be >= 1")
    if args.ceiling < 0:
        p.error("--ceiling must be 0 (off) or a grid size >= 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from m4sam_ros.evaluation.evaluate import EvalError

    out = Path(args.out)
    try:
        roots = write_sets(out, args.videos, args.frames, args.width, args.height, tuple(args.sets))
        ckpt = None if args.baselines_only else Path(args.checkpoint)
        results = evaluate_sets(roots, ckpt, args.clip_len, progress=not args.quiet, branch=args.branch,
                                ceiling=args.ceiling, device=resolve_device(args.device))
    except (EvalError, DatasetError, OSError, ValueError) as exc:
        print(f"m4sam-heldout: error: {exc}", file=sys.stderr)
        return 2
    branch = next((per["model"]["branch"] for per in results.values() if "model" in per), args.branch)
    meta = {"checkpoint": None if ckpt is None else str(ckpt), "videos": args.videos, "frames": args.frames,
            "size": [args.width, args.height], "clip_len": args.clip_len, "branch": branch}
    write_text(out / "heldout.json", json.dumps({"meta": meta, "results": results}, indent=1))
    table = markdown(results, "model" if ckpt is None else ckpt.stem, branch)
    write_text(out / "heldout.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

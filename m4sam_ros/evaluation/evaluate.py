"""`m4sam-eval`: score saliency maps on RDVS, ViDSOD-100, DViSal or synthetic scenes.

Three sources of maps, one scorer (``m4sam_ros.evaluation.metrics``, i.e. PySODMetrics):

- ``--checkpoint CKPT``: runs the streaming predictor over every video of the split under one of
  two protocols (``--protocol``):

  - ``paper`` (the default): the authors' test protocol (their ``test.py`` with
    ``dataset_utils.clipper``): a video's ANNOTATED frames, in name order, cut into non-overlapping
    clips of ``--clip-len`` (4) frames, ``[a[i:i+4] for i in range(0, n, 4)]``; the remainder is
    a shorter last clip (the authors pad it by repeating its last frame and skip the repeats when
    scoring: with a causal predictor the padding cannot change the real frames, so it is left
    out). The memory is reset at every clip start, each clip's first frame is scored from its soft
    coarse map (the prediction its prompt is cut from, not the binarised prompt), the rest from
    the memory output, with no re-initialisation heuristics; every map is min-max normalised per
    frame before scoring, as the authors' script does;
  - ``streaming`` (what the node does): every frame of a video in order, one reset per video,
    the predictor with its default heuristics; only annotated frames are scored.

  Frames whose object score is <= 0 (SAM2's "no object" gate: -1024 everywhere) fall back to the
  coarse map when it is confident (``--no-fallback`` keeps the blank); the metrics file names the
  protocol, the clip length, the frames scored and the share of scored frames the gate hit
  (``no_object_share``) and left blank (``blanked_share``).

  ``--output coarse|memory|combined|all`` picks the branch(es) (default: memory).
- ``--pred-dir DIR``: maps saved by any method as ``DIR[/<dataset>]/<video>/<stem>.png``.
- ``--baseline depth``: the nearest valid region of the normalised depth (Otsu on the nearness
  map, largest connected component): what depth alone gives, the bar a model must clear.

Predictions are written as ``OUT/<dataset>/<video>/<stem>.png`` (uint8, GT resolution; with
``--output all`` under ``OUT/<branch>/<dataset>/...``); only frames with ground truth are scored.
``OUT/metrics.json`` (scalars), ``OUT/curves.json``, ``OUT/metrics.md`` (paper-style table, datasets
as column groups) and ``OUT/plots/{pr,f_threshold}_<dataset>.png`` are merged with what earlier
runs wrote to the same OUT, so methods and datasets accumulate into one table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from m4sam_ros.data.datasets import DATASETS, DatasetError, Video, natural_key, open_videos
from m4sam_ros.evaluation.metrics import KEYS, PAPER_KEYS, SODMetrics, resize_to, to_uint8
from m4sam_ros.model.depth import normalize_depth
from m4sam_ros.util.atomic import write_text
from m4sam_ros.util.cli import DefaultsHelpFormatter, add_device_argument, resolve_device

BRANCHES = ("coarse", "memory", "combined")
PROTOCOLS = {
    "paper": "the authors' test protocol: annotated frames cut into non-overlapping clips of {clip_len} (remainder: "
             "a shorter last clip), memory reset per clip, clip start scored from its soft coarse map, no "
             "re-initialisation heuristics, per-frame min-max normalised maps",
    "streaming": "every frame in order, one reset per video, the node's predictor with its heuristics",
}
DEFAULT_PROTOCOL = "paper"
#: the authors' test clip length (test.py --vid_len 4)
PAPER_CLIP_LEN = 4
#: the predictor settings that switch the re-initialisation heuristics off (paper protocol)
NO_HEURISTICS = {"reinit_low_score_frames": 10**9, "reinit_iou_frames": 10**9, "reinit_cut_threshold": -2.0}
PRED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


class EvalError(RuntimeError):
    """A problem with the inputs of an evaluation; the message says which and where."""


# ------------------------------------------------------------------------------------ baselines

def depth_baseline(depth01: np.ndarray) -> np.ndarray:
    """The nearest valid region: Otsu threshold on the nearness of valid pixels, largest component.

    ``depth01`` is ``normalize_depth``'s output (near = 1, invalid = 0). Returns uint8 {0, 255}."""
    valid = depth01 > 0
    out = np.zeros(depth01.shape, np.uint8)
    if valid.sum() < 2:
        return out
    near = to_uint8(depth01)
    values = near[valid].reshape(-1, 1)
    thr, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = (valid & (near > thr)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return out
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out[labels == largest] = 255
    return out


# ------------------------------------------------------------------------------------ sources

def _find_prediction(folder: Path, stem: str) -> Path | None:
    for ext in PRED_EXTENSIONS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def read_prediction(path: Path) -> np.ndarray:
    """A saved saliency map as uint8 HxW (colour maps are converted to grey, 16-bit scaled)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise EvalError(f"cannot read prediction {path}")
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY)
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = to_uint8(img.astype(np.float32))
    return img


def _pred_video_dir(pred_dir: Path, dataset: str, video: Video) -> Path:
    for cand in (pred_dir / dataset / video.name, pred_dir / video.name):
        if cand.is_dir():
            return cand
    raise EvalError(f"no predictions for video {video.name!r}: looked for {pred_dir / dataset / video.name} "
                    f"and {pred_dir / video.name}")


def _gt_frames(video: Video) -> Iterator[int]:
    return (i for i in range(len(video)) if video.has_gt(i))


def paper_clips(annotated: list[int], clip_len: int) -> list[list[int]]:
    """The authors' clip cutting (``dataset_utils.clipper``): consecutive, non-overlapping chunks of
    ``clip_len`` annotated frames in order; the last chunk holds the remainder (shorter).
    ``clip_len`` <= 0: the whole list is one clip."""
    if clip_len <= 0:
        return [list(annotated)] if annotated else []
    return [list(annotated[i:i + clip_len]) for i in range(0, len(annotated), clip_len)]


def minmax_normalise(x: np.ndarray) -> np.ndarray:
    """The authors' per-frame normalisation: ``(x - min) / (max - min + 1e-8)`` (a constant map -> 0)."""
    x = np.asarray(x, np.float32)
    lo = float(x.min())
    return ((x - lo) / (float(x.max()) - lo + 1e-8)).astype(np.float32)


class PredictorRunner:
    """Runs the streaming predictor over a video and yields per-branch float maps per frame."""

    def __init__(self, checkpoint: str | Path | None, config: str | None = None, sam2_checkpoint: str | None = None,
                 device: str = "cpu", image_size: int | None = None, output: str = "memory",
                 protocol: str = DEFAULT_PROTOCOL, no_object_fallback: bool = True, minmax: bool = False,
                 model_dir: str | Path | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise EvalError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        self.minmax = minmax  # the authors' per-frame min-max normalisation (m4sam-eval's paper protocol)
        #: (video name, frame index) -> (no-object gate fired, fell back to the coarse map)
        self.gate: dict[tuple[str, int], tuple[bool, bool]] = {}
        if model_dir is not None:
            self._init_onnx(Path(model_dir), device, output, protocol, no_object_fallback)
            return
        if checkpoint is None:
            raise EvalError("give a checkpoint (PyTorch) or model_dir (ONNX Runtime)")
        import torch

        from m4sam_ros.model import build_m4sam
        from m4sam_ros.model.checkpoint import CheckpointError, safe_load

        ckpt_path = Path(checkpoint)
        if not ckpt_path.is_file():
            raise EvalError(f"checkpoint {ckpt_path} does not exist")
        try:
            ckpt = safe_load(ckpt_path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
            raise EvalError(f"cannot read checkpoint {ckpt_path}: {exc}") from exc
        if not isinstance(ckpt, dict) or "config" not in ckpt:
            raise EvalError(f"{ckpt_path} is not an M4-SAM checkpoint (no config inside)")
        cfg: Any = config if config is not None else ckpt["config"]
        try:
            model = build_m4sam(cfg, sam2_checkpoint=sam2_checkpoint, m4sam_checkpoint=ckpt_path, device=device,
                                image_size=image_size)
        except CheckpointError as exc:
            raise EvalError(str(exc)) from exc
        from m4sam_ros.predictor import StreamingPredictor

        self.protocol = protocol
        from m4sam_ros.model.checkpoint import recommended_output

        self.predictor = StreamingPredictor(model, torch.device(device),
                                            output=output if output in BRANCHES else "memory",
                                            recommended_output=recommended_output(ckpt),
                                            no_object_fallback=no_object_fallback,
                                            **(NO_HEURISTICS if protocol == "paper" else {}))
        self.image_size = int(model.image_size)
        self.extra = ckpt.get("extra", {})

    def _init_onnx(self, model_dir: Path, device: str, output: str, protocol: str,
                   no_object_fallback: bool = True) -> None:
        """The same runner over an ``m4sam-export`` folder (``--backend onnxruntime``): no torch."""
        from m4sam_ros.predictor.onnx_runtime import OrtStreamingPredictor

        self.protocol = protocol
        try:
            self.predictor = OrtStreamingPredictor(
                model_dir, output=output if output in BRANCHES else "memory",
                providers="cuda" if str(device).startswith("cuda") else "cpu",
                no_object_fallback=no_object_fallback,
                **(NO_HEURISTICS if protocol == "paper" else {}))
        except (FileNotFoundError, ValueError) as exc:
            raise EvalError(f"--model-dir {model_dir}: {exc}") from exc
        self.image_size = self.predictor.image_size
        self.extra = {"recommended_output": self.predictor.recommended_output}

    def schedule(self, video: Video, clip_len: int) -> list[tuple[int, bool]]:
        """(frame index, reset before it) in feeding order, as the protocol prescribes.

        Paper protocol: clips of ``clip_len`` annotated frames; ``clip_len`` <= 0 makes the whole
        video one clip (one reset at its start)."""
        if self.protocol == "streaming":
            return [(i, i == 0) for i in range(len(video))]
        annotated = [i for i in range(len(video)) if video.has_gt(i)]
        return [(i, k == 0) for clip in paper_clips(annotated, clip_len) for k, i in enumerate(clip)]

    def run(self, video: Video, clip_len: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Frame index -> {coarse, memory, combined} float maps at the frame's resolution."""
        for i, reset in self.schedule(video, clip_len):
            if reset:
                self.predictor.reset()
            frame = video[i]
            if video.depth_kind == "metric":
                # the deployment path: raw camera depth in, the predictor normalises it
                res = self.predictor.step(frame.rgb, frame.depth)
            elif getattr(self.predictor, "backend", "torch") == "onnxruntime":
                from m4sam_ros.model.preprocess_np import depth_to_array, rgb_to_array

                res = self.predictor.step_array(rgb_to_array(frame.rgb, self.image_size),
                                                depth_to_array(normalize_depth(frame.depth, video.depth_kind),
                                                               self.image_size), frame.rgb.shape[:2])
            else:
                # benchmark depth is relative (a stored image, near = bright): same model call, but
                # normalised as the dataset's kind, exactly as in training
                from m4sam_ros.model.preprocess import depth_to_tensor, rgb_to_tensor

                dev = self.predictor.device
                image = rgb_to_tensor(frame.rgb, self.image_size).to(dev)
                depth01 = depth_to_tensor(normalize_depth(frame.depth, video.depth_kind), self.image_size).to(dev)
                res = self.predictor.step_tensor(image, depth01, frame.rgb.shape[:2])
            self.gate[(video.name, i)] = (res.blanked, res.fallback)
            memory, coarse = res.memory, res.coarse
            if self.minmax:  # the authors' per-frame normalisation; combined: the mean of the two
                memory, coarse = minmax_normalise(memory), minmax_normalise(coarse)
            yield i, {"coarse": coarse, "memory": memory, "combined": (memory + coarse) / 2}

    def gate_counts(self, videos: list[Video]) -> dict[str, Any]:
        """Over the scored (annotated) frames: how many the no-object gate hit, how many of those
        fell back to the coarse map, how many stayed blank, and the shares."""
        scored = [(v.name, i) for v in videos for i in _gt_frames(v)]
        flags = [self.gate.get(key, (False, False)) for key in scored]
        hit = sum(b for b, _ in flags)
        fell = sum(b and f for b, f in flags)
        n = max(len(scored), 1)
        return {"frames_scored": len(scored), "no_object_frames": hit, "fallback_frames": fell,
                "blanked_frames": hit - fell, "no_object_share": round(hit / n, 6),
                "blanked_share": round((hit - fell) / n, 6)}


# ------------------------------------------------------------------------------------ evaluation

def _write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise EvalError(f"could not write {path}")


def evaluate_maps(videos: list[Video], maps: Callable[[Video], Iterator[tuple[int, dict[str, np.ndarray]]]],
                  methods: list[str], save_dirs: dict[str, Path] | None, progress: bool = True
                  ) -> dict[str, dict[str, Any]]:
    """Scores ``maps(video)`` (frame index -> {method: float [0,1] or uint8 map}) against the GT.

    Each map is resized to GT resolution and quantised to uint8 once; that very array is both saved
    (when ``save_dirs`` names a folder for the method) and scored, so the saved PNGs reproduce the
    metrics exactly. Returns per-method results (scalars + curves + counts)."""
    from tqdm import tqdm

    scorers = {m: SODMetrics() for m in methods}
    counts = {m: 0 for m in methods}
    for video in tqdm(videos, disable=not progress, desc="m4sam-eval", unit="video"):
        for i, by_method in maps(video):
            if not video.has_gt(i):
                continue
            frame = video[i]
            assert frame.gt is not None
            gt = frame.gt
            for m in methods:
                pred = resize_to(to_uint8(by_method[m]), gt.shape[:2])
                if save_dirs and m in save_dirs:
                    _write_png(save_dirs[m] / video.name / f"{frame.stem}.png", pred)
                scorers[m].step(pred, gt)
                counts[m] += 1
    out = {}
    for m in methods:
        if counts[m] == 0:
            raise EvalError("no frame with ground truth in the split: nothing to score")
        out[m] = scorers[m].results(curves=True) | {"videos": len(videos)}
    return out


def _pred_dir_maps(pred_dir: Path, dataset: str, method: str) -> Callable[[Video], Iterator]:
    def maps(video: Video) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        folder = _pred_video_dir(pred_dir, dataset, video)
        for i in _gt_frames(video):
            stem = video.stems[i]
            path = _find_prediction(folder, stem)
            if path is None:
                raise EvalError(f"missing prediction for {video.name}/{stem} in {folder} "
                                f"(tried {', '.join(PRED_EXTENSIONS)})")
            yield i, {method: read_prediction(path)}
    return maps


def _baseline_maps(method: str) -> Callable[[Video], Iterator]:
    def maps(video: Video) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for i in _gt_frames(video):
            frame = video[i]
            yield i, {method: depth_baseline(normalize_depth(frame.depth, video.depth_kind))}
    return maps


# ------------------------------------------------------------------------------------ reports

def _load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def markdown_table(metrics: dict[str, dict[str, dict[str, Any]]], keys: tuple[str, ...] = PAPER_KEYS) -> str:
    """Methods as rows, datasets as column groups (the layout of the paper's table)."""
    datasets = sorted({d for per in metrics.values() for d in per}, key=lambda d: (d not in DATASETS, d))
    head = "| method | " + " | ".join(f"{d} {k}" for d in datasets for k in keys) + " |"
    sep = "|---|" + "---:|" * (len(datasets) * len(keys))
    rows = [head, sep]
    for method, per in metrics.items():
        cells = []
        for d in datasets:
            for k in keys:
                v = per.get(d, {}).get(k)
                cells.append("–" if v is None else f"{v:.3f}".replace("0.", ".", 1) if abs(v) < 1 else f"{v:.3f}")
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def protocol_notes(metrics: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The evaluation protocol of every model row (the default named), for metrics.md."""
    lines = [f"Protocols (m4sam-eval --protocol; default: {DEFAULT_PROTOCOL}):", ""]
    for name, text in PROTOCOLS.items():
        lines.append(f"- `{name}`{' (default)' if name == DEFAULT_PROTOCOL else ''}: "
                     f"{text.format(clip_len=f'--clip-len ({PAPER_CLIP_LEN})')}")
    rows = [(m, d, r) for m, per in metrics.items() for d, r in per.items() if "protocol" in r]
    if rows:
        lines += ["", "Rows scored here:", ""]
        lines += [f"- {m} on {d}: `{r['protocol']}`"
                  + (f", clips of {r.get('clip_len')} annotated frames" if r["protocol"] == "paper" else "")
                  + (f", {r['frames']} frames scored" if "frames" in r else "")
                  + (f", no-object gate on {100 * r['no_object_share']:.1f} % of them, "
                     f"{100 * r['blanked_share']:.1f} % left blank" if "blanked_share" in r else "")
                  for m, d, r in rows]
    return lines


def write_reports(out: Path, dataset: str, results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> dict:
    """Merges ``results`` into OUT/metrics.json and curves.json, rewrites metrics.md and the plots."""
    from m4sam_ros.viz.plots import plot_f_threshold, plot_pr_curves

    out.mkdir(parents=True, exist_ok=True)
    metrics = _load_json(out / "metrics.json")
    curves = _load_json(out / "curves.json")
    for method, r in results.items():
        metrics.setdefault(method, {})[dataset] = {k: r[k] for k in (*KEYS, "frames", "videos")} | meta
        curves.setdefault(dataset, {})[method] = {k: r[k] for k in ("precision", "recall", "f_curve", "e_curve")}
    write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    write_text(out / "curves.json", json.dumps(curves))
    md = ["# m4sam-eval results", "",
          "S-measure, mean E-measure, adaptive F-measure (beta^2 0.3), MAE (the paper's columns):", "",
          markdown_table(metrics), "", "All metrics:", "", markdown_table(metrics, KEYS), "",
          *protocol_notes(metrics), ""]
    write_text(out / "metrics.md", "\n".join(md))
    for d, per in curves.items():
        plot_pr_curves(per, out / "plots" / f"pr_{d}.png", title=f"{d}: precision-recall")
        plot_f_threshold(per, out / "plots" / f"f_threshold_{d}.png", title=f"{d}: F-measure vs threshold")
    return metrics


# ------------------------------------------------------------------------------------ CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="m4sam-eval", description=__doc__.splitlines()[0],
                                formatter_class=DefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="M4-SAM checkpoint to run through the streaming predictor")
    src.add_argument("--pred-dir", help="score saved maps DIR[/<dataset>]/<video>/<stem>.png of any method")
    src.add_argument("--baseline", choices=["depth"], help="score a baseline that needs no model")
    src.add_argument("--model-dir", help="ONNX folder from m4sam-export, run by ONNX Runtime (--backend onnxruntime)")
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default=None,
                   help="torch (with --checkpoint) or onnxruntime (with --model-dir); default: what the source implies")
    p.add_argument("--dataset", choices=DATASETS, required=True, help="dataset layout under --data-root")
    p.add_argument("--data-root", required=True, help="dataset root (the layout of --dataset)")
    p.add_argument("--split", default="test", help="split folder of the dataset")
    p.add_argument("--out", required=True, help="folder for predictions, metrics.json/.md, plots")
    p.add_argument("--protocol", choices=list(PROTOCOLS), default=DEFAULT_PROTOCOL,
                   help="paper: the authors' test protocol, non-overlapping clips of --clip-len annotated frames "
                        "(default); streaming: the whole video through the streaming predictor, as the node does")
    p.add_argument("--clip-len", type=int,
                   help=f"paper protocol: annotated frames per clip (default {PAPER_CLIP_LEN}, the authors')")
    p.add_argument("--no-fallback", action="store_true",
                   help="keep SAM2's all-black map on frames its no-object gate hits (default: the coarse map "
                        "when it is confident)")
    p.add_argument("--output", choices=[*BRANCHES, "all"], default="memory", help="branch(es) to save and score")
    p.add_argument("--method", help="name in the tables (default: m4sam-<branch>, the pred-dir name, depth-baseline)")
    p.add_argument("--config", help="model config; default: the one stored in the checkpoint")
    p.add_argument("--sam2-checkpoint", help="official SAM2.1 weights the checkpoint's adapters were trained on")
    p.add_argument("--image-size", type=int, help="model input size (multiple of 32; default: the checkpoint's)")
    add_device_argument(p)
    p.add_argument("--max-videos", type=int, help="only the first N videos (quick checks)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Runs one evaluation; returns the per-method results for this dataset."""
    videos = open_videos(args.dataset, args.data_root, args.split)
    if args.max_videos:
        videos = videos[: args.max_videos]
    if not any(v.has_gt(i) for v in videos for i in range(len(v))):
        raise EvalError(f"{args.dataset} {args.split} under {args.data_root}: no frame has ground truth")
    out = Path(args.out)
    meta: dict[str, Any] = {"split": args.split}
    t0 = time.perf_counter()
    if args.pred_dir:
        pred_dir = Path(args.pred_dir)
        if not pred_dir.is_dir():
            raise EvalError(f"--pred-dir {pred_dir} does not exist")
        method = args.method or pred_dir.name
        results = evaluate_maps(videos, _pred_dir_maps(pred_dir, args.dataset, method), [method], None,
                                progress=not args.quiet)
        meta["source"] = str(pred_dir)
    elif args.baseline:
        method = args.method or "depth-baseline"
        results = evaluate_maps(videos, _baseline_maps(method), [method], {method: out / args.dataset},
                                progress=not args.quiet)
        meta["source"] = "depth baseline (Otsu on nearness, largest component)"
    else:
        backend = args.backend or ("onnxruntime" if args.model_dir else "torch")
        if (backend == "onnxruntime") != bool(args.model_dir):
            raise EvalError("--backend onnxruntime runs --model-dir (an m4sam-export folder); --backend torch runs "
                            "--checkpoint")
        if args.threads and backend == "torch":
            import torch

            torch.set_num_threads(args.threads)
        if args.protocol == "streaming" and args.clip_len is not None:
            raise EvalError("--clip-len is for --protocol paper; the streaming protocol resets once per video, "
                            "as the node does")
        clip_len = PAPER_CLIP_LEN if args.clip_len is None else args.clip_len
        if args.protocol == "paper" and clip_len < 1:
            raise EvalError(f"--clip-len must be >= 1 for the paper protocol, got {clip_len}")
        try:
            device = resolve_device(args.device)
        except ValueError as exc:
            raise EvalError(f"--device: {exc}") from exc
        runner = PredictorRunner(args.checkpoint, args.config, args.sam2_checkpoint, device, args.image_size,
                                 args.output, args.protocol, no_object_fallback=not args.no_fallback,
                                 minmax=args.protocol == "paper", model_dir=args.model_dir)
        branches = list(BRANCHES) if args.output == "all" else [args.output]
        base = args.method or "m4sam"
        suffix = "" if args.protocol == DEFAULT_PROTOCOL else f"-{args.protocol}"
        names = {b: f"{base}-{b}{suffix}" for b in branches}
        save = {names[b]: (out / b / args.dataset if args.output == "all" else out / args.dataset) for b in branches}

        def maps(video: Video) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
            for i, by_branch in runner.run(video, clip_len):
                yield i, {names[b]: by_branch[b] for b in branches}

        results = evaluate_maps(videos, maps, list(names.values()), save, progress=not args.quiet)
        meta |= {"source": str(args.model_dir or args.checkpoint), "protocol": args.protocol, "backend": backend,
                 "clip_len": clip_len if args.protocol == "paper" else None,
                 "normalisation": "per-frame min-max" if args.protocol == "paper" else "none",
                 "no_object_fallback": not args.no_fallback} | runner.gate_counts(videos)
    frames = sum(len(v) for v in videos)
    meta["seconds"] = round(time.perf_counter() - t0, 2)
    meta["fps"] = round(frames / max(meta["seconds"], 1e-9), 2)
    write_reports(out, args.dataset, results, meta)
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = run(args)
    except (EvalError, DatasetError) as exc:
        print(f"m4sam-eval: error: {exc}", file=sys.stderr)
        return 2
    for method, r in sorted(results.items(), key=lambda kv: natural_key(kv[0])):
        print(f"{method} on {args.dataset}/{args.split} ({r['frames']} frames): "
              + ", ".join(f"{k} {r[k]:.4f}" for k in KEYS))
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'metrics.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`m4sam-bench`: per-frame time and state size of SAM2's video predictor vs the streaming predictor.

In one process, on the same frames and the same (random) weights:

- ``sam2_vp``: SAM2VideoPredictor, offline, RGB (init_state + add_new_mask + propagate_in_video);
- ``stream_rgb``: the streaming predictor in RGB-only parity mode, same first mask;
- ``m4sam``: full M4-SAM RGB-D streaming (both modalities batched through one encoder pass,
  pseudo-guided start, no prompt).

Times are steady-state medians (first ``--warmup`` frames left out), reported as ratios against
SAM2VideoPredictor. State sizes are the bytes of tensors each keeps between frames, after warm-up
and at the last frame (SAM2VP's preloaded video frames are left out of its figure: they are input,
not memory). ``--memory-only --frames 10000`` soaks the streaming state alone.
``--checkpoint CKPT`` times a trained model instead (its own config; ``--sam2-checkpoint`` when it
needs SAM2's weights: the loader's rule, as everywhere).

``--gpu-suite`` is the one command for a CUDA machine (``m4sam_ros.benchmarks.gpu_suite``): ~30
training steps of hiera-l at 352 px from random weights in the official SAM2.1 format, streaming
RGB-D inference at three sizes with and without torch.compile, and GPU memory at frame 100 vs
2,000, in one JSON, in under 8 minutes. ``--gpu-suite --device cpu --tiny`` runs it end to end here.

``--backend onnxruntime`` (``m4sam_ros.benchmarks.onnx_bench``): the model exported to ONNX and run
by ONNX Runtime against the PyTorch predictor in one process, at ``--threads`` (default 1,2): ms/frame,
CPU ms/frame, ORT / PyTorch, RGB-D / RGB-only for both, and each backend's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import torch
import torch.nn.functional as F

from m4sam_ros.data.synth import generate_video
from m4sam_ros.model import build_m4sam
from m4sam_ros.predictor import StreamingPredictor, tensor_nbytes
from m4sam_ros.util.atomic import write_text
from m4sam_ros.util.cli import DefaultsHelpFormatter, add_device_argument, resolve_device

MODEL_SIZES = {"tiny": ("m4sam_hiera_t", "configs/sam2.1/sam2.1_hiera_t.yaml"),
               "small": ("m4sam_hiera_s", "configs/sam2.1/sam2.1_hiera_s.yaml"),
               "base_plus": ("m4sam_hiera_b+", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
               "large": ("m4sam_hiera_l", "configs/sam2.1/sam2.1_hiera_l.yaml"),
               "demo": ("m4sam_demo", None)}  # the shrunk demo model: SAM2 config from its own YAML


def _median_ms(times: list[float], warmup: int) -> float:
    steady = times[warmup:] or times
    return 1e3 * statistics.median(steady)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _vp_state_bytes(state: dict[str, Any]) -> int:
    return tensor_nbytes({k: v for k, v in state.items() if k != "images"})


def _bench_model(model_size: str, device: str, size: int, checkpoint: str | None, sam2_checkpoint: str | None
                 ) -> tuple[torch.nn.Module, Any, str | None]:
    """(model, its config, SAM2 hydra config or None = the config's own): random weights of
    ``model_size``, or a trained ``checkpoint`` at ``size`` (built by the one loader)."""
    config, sam2_config = MODEL_SIZES[model_size]
    if checkpoint is not None:
        from m4sam_ros.model.checkpoint import read_m4sam_checkpoint

        config, sam2_config = dict(read_m4sam_checkpoint(checkpoint)["config"], image_size=size), None
    return (build_m4sam(config, sam2_checkpoint=sam2_checkpoint, m4sam_checkpoint=checkpoint, device=device,
                        image_size=size), config, sam2_config)


def run_bench(size: int = 256, frames: int = 40, device: str = "cpu", model_size: str = "tiny", warmup: int = 5,
              seed: int = 0, width: int = 320, height: int = 240, checkpoint: str | None = None,
              sam2_checkpoint: str | None = None) -> dict[str, Any]:
    """Runs the three predictors and returns the figures (the JSON keys of the CLI)."""
    from sam2.build_sam import build_sam2_video_predictor

    if frames <= warmup + 1:
        raise ValueError(f"--frames must exceed --warmup + 1 ({warmup + 1}), got {frames}")
    dev = torch.device(device)
    torch.manual_seed(seed)
    model, config, sam2_config = _bench_model(model_size, device, size, checkpoint, sam2_checkpoint)
    video = generate_video(seed + 4242, frames, width, height)
    overrides = [f"++model.image_size={size}"]
    if sam2_config is None:
        from m4sam_ros.model import load_config

        cfg = load_config(config)
        sam2_config, overrides = cfg["sam2_config"], [*cfg["hydra_overrides"], *overrides]
    vp = build_sam2_video_predictor(sam2_config, None, device=device, hydra_overrides_extra=overrides)
    vp.load_state_dict(model.sam.state_dict(), strict=True)
    vp.eval()
    warm_frame = min(frames - 1, warmup + 16)  # past SAM2's 16-frame memory window
    out: dict[str, Any] = {"size": size, "frames": frames, "device": str(dev), "model_size": model_size,
                           "warmup": warmup, "image": [width, height], "torch_threads": torch.get_num_threads()}
    first_mask = video.gt[0] > 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, rgb in enumerate(video.rgb):
            cv2.imwrite(str(Path(tmp) / f"{i:05d}.jpg"), rgb[..., ::-1])
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            state = vp.init_state(tmp)
            vp.add_new_mask(state, 0, 1, first_mask)
            times, t_prev = [], time.perf_counter()
            for i, _, masks in vp.propagate_in_video(state):
                masks.cpu()
                _sync(dev)
                now = time.perf_counter()
                times.append(now - t_prev)
                t_prev = now
                if i == warm_frame:
                    out["sam2_vp_state_bytes_warm"] = _vp_state_bytes(state)
            out["sam2_vp_state_bytes_end"] = _vp_state_bytes(state)
            images = state["images"]
    out["sam2_vp_ms"] = _median_ms(times[1:], warmup)

    prompt = F.interpolate(torch.from_numpy(first_mask)[None, None].float(), size=(size, size), mode="bilinear",
                           align_corners=False, antialias=True)[0, 0] >= 0.5
    stream = StreamingPredictor(model, device, rgb_only=True)
    times = []
    for i in range(frames):
        t0 = time.perf_counter()
        stream.step_tensor(images[i:i + 1].to(dev), None, (height, width), mask_prompt=prompt if i == 0 else None)
        _sync(dev)
        times.append(time.perf_counter() - t0)
    out["stream_rgb_ms"] = _median_ms(times[1:], warmup)

    m4sam = StreamingPredictor(model, device, reinit_low_score_frames=10**9, reinit_iou_frames=10**9)
    times = []
    for i in range(frames):
        t0 = time.perf_counter()
        m4sam.step(video.rgb[i], video.depth[i], stamp=i / video.fps)
        _sync(dev)
        times.append(time.perf_counter() - t0)
        if i == warm_frame:
            out["stream_state_bytes_warm"] = m4sam.state_nbytes()
    out["stream_state_bytes_end"] = m4sam.state_nbytes()
    out["m4sam_ms"] = _median_ms(times[1:], warmup)
    out["ratio_stream_rgb_vs_sam2_vp"] = out["stream_rgb_ms"] / out["sam2_vp_ms"]
    out["ratio_m4sam_vs_sam2_vp"] = out["m4sam_ms"] / out["sam2_vp_ms"]
    return out


def run_memory_soak(size: int, frames: int, device: str, model_size: str, seed: int = 0,
                    checkpoint: str | None = None, sam2_checkpoint: str | None = None) -> dict[str, Any]:
    """Streams ``frames`` frames (a looping synthetic video) and records the state size over time."""
    torch.manual_seed(seed)
    predictor = StreamingPredictor(_bench_model(model_size, device, size, checkpoint, sam2_checkpoint)[0], device,
                                   reinit_low_score_frames=10**9, reinit_iou_frames=10**9)
    video = generate_video(seed + 4242, 60, 160, 120)
    sizes = {}
    for i in range(frames):
        predictor.step(video.rgb[i % 60], video.depth[i % 60], stamp=i / 15.0)
        if i in (16, frames // 2, frames - 1):
            sizes[i] = predictor.state_nbytes()
    return {"size": size, "frames": frames, "device": device, "model_size": model_size,
            "stream_state_bytes_warm": sizes[16], "stream_state_bytes_mid": sizes[frames // 2],
            "stream_state_bytes_end": sizes[frames - 1]}


def build_parser() -> argparse.ArgumentParser:
    """The m4sam-bench command line (test/test_cli_help.py reads every flag's help)."""
    p = argparse.ArgumentParser(prog="m4sam-bench", description=__doc__.splitlines()[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="model image size (multiple of 32)")
    p.add_argument("--frames", type=int, default=40, help="frames streamed (and timed)")
    add_device_argument(p)
    p.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="tiny", help="SAM2 trunk size")
    p.add_argument("--checkpoint", help="time this trained M4-SAM checkpoint (its own config) instead of random "
                   "weights of --model-size")
    p.add_argument("--sam2-checkpoint", help="the SAM2.1 weights --checkpoint was trained on (when it records any)")
    p.add_argument("--warmup", type=int, default=5, help="frames left out of the timing medians")
    p.add_argument("--memory-only", action="store_true", help="soak: stream --frames frames, report state size")
    p.add_argument("--json", help="also write the figures here (atomically)")
    p.add_argument("--gpu-suite", action="store_true",
                   help="train + stream + memory check on a GPU, one JSON (default gpu_suite.json)")
    p.add_argument("--tiny", action="store_true", help="--gpu-suite at a tiny size (demo model, 64 px): CPU-runnable")
    p.add_argument("--budget-s", type=float, default=450.0, help="--gpu-suite: start no part after this many seconds")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="onnxruntime: export the model and compare ONNX Runtime with PyTorch (CPU)")
    p.add_argument("--threads", default="1,2", help="--backend onnxruntime: thread counts to time, e.g. 1,2")
    p.add_argument("--no-rss", action="store_true", help="--backend onnxruntime: skip the peak-RSS child processes")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.gpu_suite:
        from m4sam_ros.benchmarks.gpu_suite import run_gpu_suite

        device = args.device if args.device != "auto" else "cuda"
        if device.startswith("cuda") and not torch.cuda.is_available():
            p.error("--gpu-suite: no CUDA device here; run it on a GPU machine, or --device cpu --tiny to check it")
        suite = run_gpu_suite(device, tiny=args.tiny, budget_s=args.budget_s)
        text = json.dumps(suite, indent=2) + "\n"
        print(text, end="")
        write_text(args.json or "gpu_suite.json", text)
        failed = [k for k, v in suite.items() if isinstance(v, dict) and "error" in v]
        if failed:
            print(f"m4sam-bench: error: part(s) failed: {', '.join(failed)} (details in the JSON)", file=sys.stderr)
        return 1 if failed else 0
    try:
        args.device = resolve_device(args.device)
    except ValueError as exc:
        p.error(f"--device: {exc}")
    if args.size % 32:
        p.error(f"--size must be a multiple of 32, got {args.size}")
    from m4sam_ros.model.checkpoint import CheckpointError

    weights = {"checkpoint": args.checkpoint, "sam2_checkpoint": args.sam2_checkpoint}
    try:
        if args.backend == "onnxruntime":
            from m4sam_ros.benchmarks.onnx_bench import run_onnx_bench

            if args.device != "cpu":
                p.error("--backend onnxruntime times the CPU (--device cpu); the GPU route is --gpu-suite")
            if args.checkpoint:
                p.error("--backend onnxruntime times random weights of --model-size; drop --checkpoint")
            try:
                threads = tuple(int(t) for t in args.threads.split(",") if t.strip())
            except ValueError:
                p.error(f"--threads must be comma-separated integers, got {args.threads!r}")
            res = run_onnx_bench(args.size, args.frames, args.model_size, args.warmup, threads,
                                 rss=not args.no_rss)
        elif args.memory_only:
            if args.frames < 18:
                p.error("--memory-only needs --frames >= 18 (past the 16-frame memory window)")
            res = run_memory_soak(args.size, args.frames, args.device, args.model_size, **weights)
        else:
            res = run_bench(args.size, args.frames, args.device, args.model_size, args.warmup, **weights)
    except CheckpointError as exc:
        print(f"m4sam-bench: error: {exc}", file=sys.stderr)
        return 2
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v:.3f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        write_text(args.json, json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

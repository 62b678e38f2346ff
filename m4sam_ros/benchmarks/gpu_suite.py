"""``m4sam-bench --gpu-suite``: one command that tells whether a GPU trains and streams M4-SAM.

In order, each part timed and guarded (an error is recorded in the JSON, the next part runs):

1. training: SAM2.1 weights drawn at random and saved in the OFFICIAL checkpoint format
   (``{"model": state_dict}``), loaded through the normal path (``build_m4sam(sam2_checkpoint=)``);
   then ~30 steps of hiera-l at 352 px, T = 4, batch 4, the memory branch training, through the very
   ``StepRunner`` of ``m4sam-train`` (bf16 autocast on CUDA): finite loss, peak memory, s/step;
2. streaming RGB-D inference (the node's predictor): hiera-t at 512 and 1024 px and hiera-l at
   352 px, frames/s, p50 and p99 latency, bf16 autocast, eager; then the same with torch.compile;
3. memory: allocated GPU memory at frame 100 and at frame 2,000 of a stream (must be equal);
4. onnx: the ONNX export on ONNX Runtime's CUDA and TensorRT execution providers (frames/s, p99,
   parity with the CPU EP) and each graph through ``trtexec --fp16``, hiera-t at 512 and 1024 px
   (``onnx_bench.onnx_gpu_part``); without CUDA it reports these as skipped.

``--tiny`` shrinks everything (demo model, 64 px, a few steps and frames) so that
``--device cpu --tiny`` runs end to end on a CPU. torch.compile is a CUDA path of the predictor;
on CPU it is reported as skipped. The whole suite keeps to ``--budget-s`` (default 450 s: under 8
minutes with start-up); parts that would start after it are reported as skipped.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

FULL = {
    "train": {"config": "m4sam_hiera_l", "size": 352, "steps": 30, "batch": 4, "clip_len": 4},
    "streams": [("m4sam_hiera_t", 512), ("m4sam_hiera_t", 1024), ("m4sam_hiera_l", 352)],
    "stream_frames": 60, "stream_warmup": 10,
    "memory": {"config": "m4sam_hiera_t", "size": 512, "frames": (100, 2000)},
    "camera": (640, 480),
}
TINY = {
    "train": {"config": "m4sam_demo", "size": 64, "steps": 3, "batch": 1, "clip_len": 2},
    "streams": [("m4sam_demo", 64)],
    "stream_frames": 8, "stream_warmup": 2,
    "memory": {"config": "m4sam_demo", "size": 64, "frames": (60, 120)},
    "camera": (160, 120),
}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _gib(n: int) -> float:
    return round(n / 2**30, 3)


def _train_part(spec: dict[str, Any], dev: torch.device, work: Path) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from m4sam_ros.data.clips import ClipDataset
    from m4sam_ros.data.datasets import open_videos
    from m4sam_ros.data.synth import generate_video, write_vidsod_layout
    from m4sam_ros.model import build_m4sam, load_config
    from m4sam_ros.model.build import build_sam2_base
    from m4sam_ros.training.build import build_optimizer, optimiser_groups
    from m4sam_ros.training.step import StepRunner

    cfg = load_config(spec["config"], spec["size"])
    cfg["train_memory_branch"] = True
    torch.manual_seed(0)
    official = work / "sam2.1_random.pt"
    torch.save({"model": build_sam2_base(cfg).state_dict()}, official)  # the official SAM2.1 format
    model = build_m4sam(cfg, sam2_checkpoint=official, device=dev).train()
    n_clips = spec["batch"] * spec["steps"]
    frames = n_clips + spec["clip_len"]
    write_vidsod_layout(generate_video(11, frames, 320, 240), work / "data" / "train" / "v0")
    data = ClipDataset(open_videos("synthetic", work / "data", "train"), clip_len=spec["clip_len"],
                       size=model.image_size, augment=True, seed=0, sampling="sliding")
    loader = iter(DataLoader(data, batch_size=spec["batch"], shuffle=True, drop_last=True,
                             generator=torch.Generator().manual_seed(0)))
    hp = argparse.Namespace(lr_heads=1e-3, lr_adapters=1e-4, lr_memory=1e-5, lr_base=None, weight_decay=5e-4,
                            warmup=0)
    groups = optimiser_groups(model, hp)
    optimizer, scheduler = build_optimizer(groups, hp, spec["steps"])
    runner = StepRunner(model, model, optimizer, scheduler, dev, accum=1, seed=0, rank=0, gt_cond_start=0.5,
                        gt_cond_end=0.0)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    losses, times = [], []
    for step in range(spec["steps"]):
        t0 = time.perf_counter()
        row = runner.run(loader, step, spec["steps"])
        _sync(dev)
        times.append(time.perf_counter() - t0)
        if row is None:
            break
        losses.append(row["total"])
    steady = times[2:] or times
    return {"config": spec["config"], "image_size": spec["size"], "batch": spec["batch"],
            "clip_len": spec["clip_len"], "steps": len(losses), "sam2_checkpoint_format": "official {'model': sd}",
            "groups": {g["name"]: sum(p.numel() for p in g["params"]) for g in groups},
            "loss_first": losses[0], "loss_last": losses[-1], "loss_finite": all(math.isfinite(v) for v in losses),
            "s_per_step": round(statistics.median(steady), 4),
            "peak_memory_gib": _gib(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None}


def _stream_part(config: str, size: int, compile_: bool, spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    from m4sam_ros.data.synth import generate_video
    from m4sam_ros.model import build_m4sam
    from m4sam_ros.predictor import StreamingPredictor

    if compile_ and dev.type != "cuda":
        return {"skipped": "torch.compile is the predictor's CUDA path"}
    torch.manual_seed(0)
    # compiled in the default mode: max-autotune can spend longer than the whole 8-minute suite
    # tuning kernels (same graph, same outputs)
    predictor = StreamingPredictor(build_m4sam(config, device=dev, image_size=size), dev,
                                   compile="default" if compile_ else False)
    w, h = spec["camera"]
    video = generate_video(5, 30, w, h)
    n, warm = spec["stream_frames"], spec["stream_warmup"]
    times = []
    for i in range(n + warm):
        t0 = time.perf_counter()
        predictor.step(video.rgb[i % 30], video.depth[i % 30], stamp=i / 30.0)
        _sync(dev)
        times.append(time.perf_counter() - t0)
    lat = np.array(times[warm:]) * 1e3
    return {"frames": n, "fps": round(1e3 / float(lat.mean()), 2), "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "autocast": "bf16" if predictor.use_autocast else "off",
            "compile": "torch.compile(encode), default mode" if compile_ else False,
            "first_frame_ms": round(times[0] * 1e3, 1)}


def _memory_part(spec: dict[str, Any], dev: torch.device, camera: tuple[int, int]) -> dict[str, Any]:
    from m4sam_ros.data.synth import generate_video
    from m4sam_ros.model import build_m4sam
    from m4sam_ros.predictor import StreamingPredictor

    torch.manual_seed(0)
    predictor = StreamingPredictor(build_m4sam(spec["config"], device=dev, image_size=spec["size"]), dev)
    video = generate_video(6, 60, *camera)
    early, late = spec["frames"]
    out: dict[str, Any] = {"config": spec["config"], "image_size": spec["size"], "frames": [early, late]}
    for i in range(1, late + 1):
        predictor.step(video.rgb[i % 60], video.depth[i % 60], stamp=i / 30.0)
        if i in (early, late):
            _sync(dev)
            key = "early" if i == early else "late"
            out[f"state_bytes_{key}"] = predictor.state_nbytes()
            out[f"allocated_bytes_{key}"] = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else None
    which = "allocated_bytes" if dev.type == "cuda" else "state_bytes"
    out["compared"] = which
    out["equal"] = out[f"{which}_early"] == out[f"{which}_late"]
    return out


def run_gpu_suite(device: str = "cuda", tiny: bool = False, budget_s: float = 450.0) -> dict[str, Any]:
    """Runs the suite (see the module docstring); returns the JSON-ready figures."""
    dev = torch.device(device)
    spec = TINY if tiny else FULL
    started = time.perf_counter()
    res: dict[str, Any] = {"device": str(dev), "tiny": tiny, "torch": torch.__version__, "budget_s": budget_s,
                           "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None}

    def part(name: str, fn: Callable[[], dict[str, Any]], needs_s: float = 0.0) -> None:
        if time.perf_counter() - started > budget_s - needs_s:
            res[name] = {"skipped": f"time budget of {budget_s:.0f} s (this part needs ~{needs_s:.0f} s left)"}
            return
        t0 = time.perf_counter()
        try:
            res[name] = fn() | {"seconds": round(time.perf_counter() - t0, 1)}
        except Exception as exc:  # noqa: BLE001 - one failing part must not hide the others' figures
            res[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=4)[-1500:]}
        finally:
            if dev.type == "cuda":
                torch.cuda.empty_cache()

    with tempfile.TemporaryDirectory() as tmp:
        part("train", lambda: _train_part(spec["train"], dev, Path(tmp)))
    for compile_ in (False, True):
        for config, size in spec["streams"]:
            key = f"stream_{config.removeprefix('m4sam_')}_{size}{'_compiled' if compile_ else ''}"
            part(key, lambda c=config, s=size, k=compile_: _stream_part(c, s, k, spec, dev),
                 needs_s=90.0 if compile_ and dev.type == "cuda" else 0.0)
        if not compile_:
            part("memory", lambda: _memory_part(spec["memory"], dev, spec["camera"]))
    if dev.type == "cuda":
        from m4sam_ros.benchmarks.onnx_bench import onnx_gpu_part

        onnx_spec = {"sizes": (64,), "frames": 8, "warmup": 2, "config": "m4sam_demo"} if tiny else {}
        part("onnx", lambda: onnx_gpu_part(**onnx_spec), needs_s=120.0)
    else:
        res["onnx"] = {"skipped": "no CUDA device: ONNX Runtime CUDA/TensorRT EPs and trtexec FP16 not run here"}
    res["seconds"] = round(time.perf_counter() - started, 1)
    return res

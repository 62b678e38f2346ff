"""``m4sam-bench --backend onnxruntime``: ONNX Runtime vs PyTorch, same weights, same frames, one process.

The model (random weights, hiera-t at 256 px by default) is exported to a temporary folder, then
four predictors step through the same frames, interleaved frame by frame so that a shared
machine's load falls on all of them alike: PyTorch RGB-D, PyTorch RGB-only (parity mode, same
first mask), ONNX Runtime RGB-D, ONNX Runtime RGB-only; at each thread count (torch's
``set_num_threads`` and ORT's intra-op threads). Per frame the wall time and the process CPU time
are recorded; figures are steady-state medians. RGB-D / RGB-only is reported on CPU time (the
figure ``m4sam_ros.benchmarks.timing`` gives for PyTorch), ORT / PyTorch on both.

Peak resident memory is measured in two child processes that each load one backend and stream
the same frames: the PyTorch one builds the model as here; the ONNX Runtime one runs with torch
and sam2 blocked from import, which is what a robot image without them holds.

``onnx_gpu_part``: the GPU route for ``m4sam-bench --gpu-suite``: the export run by ONNX Runtime's
CUDA and TensorRT execution providers (frames/s, p99, max |logits - CPU EP|) and each graph
built by ``trtexec --fp16``, at 512 and 1024 px; on a machine without CUDA it says what was skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

_RSS_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    backend, model_dir, frames_file, config, size, seed = sys.argv[1:7]
    if backend == "onnxruntime":
        import importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "sam2"):
                    raise ImportError(name + " blocked: measuring the torch-free deployment")
        sys.meta_path.insert(0, Block())
        from m4sam_ros.predictor.onnx_runtime import OrtStreamingPredictor
        pred = OrtStreamingPredictor(model_dir, threads=1, reinit_low_score_frames=10**9, reinit_iou_frames=10**9)
    else:
        import torch
        torch.set_num_threads(1)
        torch.manual_seed(int(seed))
        from m4sam_ros.model import build_m4sam
        from m4sam_ros.predictor.streaming import StreamingPredictor
        pred = StreamingPredictor(build_m4sam(config, image_size=int(size)), "cpu",
                                  reinit_low_score_frames=10**9, reinit_iou_frames=10**9)
    data = np.load(frames_file)
    for i in range(len(data["rgb"])):
        pred.step(data["rgb"][i], data["depth"][i], stamp=0.1 * i)
    # VmHWM: this process image's own peak (ru_maxrss would include the parent's RSS at the fork)
    hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
    print(json.dumps({"peak_rss_kib": hwm}))
""")


def _median(xs: list[float], warmup: int) -> float:
    return statistics.median(xs[warmup:] or xs)


def _peak_rss_mib(backend: str, model_dir: Path, frames_file: Path, config: str, size: int, seed: int) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, backend, str(model_dir), str(frames_file), config,
                           str(size), str(seed)], capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{backend} RSS child failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_kib"] / 1024.0


def run_onnx_bench(size: int = 256, frames: int = 20, model_size: str = "tiny", warmup: int = 3,
                   threads: tuple[int, ...] = (1, 2), seed: int = 0, width: int = 320, height: int = 240,
                   rss: bool = True) -> dict[str, Any]:
    """The figures (the JSON keys of ``m4sam-bench --backend onnxruntime``)."""
    import torch
    import torch.nn.functional as F

    from m4sam_ros.benchmarks.bench import MODEL_SIZES
    from m4sam_ros.data.synth import generate_video
    from m4sam_ros.export.onnx_export import export_model
    from m4sam_ros.model import build_m4sam
    from m4sam_ros.model.preprocess import rgb_to_tensor
    from m4sam_ros.predictor.onnx_runtime import OrtStreamingPredictor
    from m4sam_ros.predictor.streaming import StreamingPredictor

    if frames <= warmup + 1:
        raise ValueError(f"--frames must exceed --warmup + 1 ({warmup + 1}), got {frames}")
    config = MODEL_SIZES[model_size][0]
    torch.manual_seed(seed)
    model = build_m4sam(config, image_size=size)
    video = generate_video(seed + 4242, frames, width, height)
    no_reinit = {"reinit_low_score_frames": 10**9, "reinit_iou_frames": 10**9}
    out: dict[str, Any] = {"backend": "onnxruntime vs torch", "size": size, "model_size": model_size,
                           "frames": frames, "warmup": warmup, "image": [width, height],
                           "note": "shared machine: figures move with the load of other processes"}
    prompt = F.interpolate(torch.from_numpy(video.gt[0] > 0)[None, None].float(), size=(size, size),
                           mode="bilinear", align_corners=False, antialias=True)[0, 0] >= 0.5
    images = [rgb_to_tensor(rgb, size) for rgb in video.rgb]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "onnx"
        t0 = time.perf_counter()
        export_model(model, model_dir, rgb_only_encoder=True)
        out["export_s"] = round(time.perf_counter() - t0, 1)
        out["onnx_mib"] = round(sum(f.stat().st_size for f in model_dir.glob("*.onnx")) / 2**20, 2)
        for t in threads:
            torch.set_num_threads(t)
            runs = {
                "torch_rgbd": StreamingPredictor(model, "cpu", **no_reinit),
                "torch_rgb": StreamingPredictor(model, "cpu", rgb_only=True, **no_reinit),
                "ort_rgbd": OrtStreamingPredictor(model_dir, threads=t, **no_reinit),
                "ort_rgb": OrtStreamingPredictor(model_dir, threads=t, rgb_only=True, **no_reinit),
            }
            wall: dict[str, list[float]] = {k: [] for k in runs}
            cpu: dict[str, list[float]] = {k: [] for k in runs}
            for i in range(frames):
                for name, pred in runs.items():
                    w0, c0 = time.perf_counter(), time.process_time()
                    if name == "torch_rgb":
                        pred.step_tensor(images[i], None, (height, width), mask_prompt=prompt if i == 0 else None)
                    elif name == "ort_rgb":
                        pred.step_array(images[i].numpy(), None, (height, width),
                                        mask_prompt=prompt.numpy() if i == 0 else None)
                    else:
                        pred.step(video.rgb[i], video.depth[i], stamp=i / video.fps)
                    wall[name].append((time.perf_counter() - w0) * 1e3)
                    cpu[name].append((time.process_time() - c0) * 1e3)
            for name in runs:
                out[f"{name}_ms_t{t}"] = round(_median(wall[name], warmup), 2)
                out[f"{name}_cpu_ms_t{t}"] = round(_median(cpu[name], warmup), 2)
            out[f"ratio_ort_vs_torch_t{t}"] = round(out[f"ort_rgbd_ms_t{t}"] / out[f"torch_rgbd_ms_t{t}"], 3)
            out[f"ratio_ort_vs_torch_cpu_t{t}"] = round(out[f"ort_rgbd_cpu_ms_t{t}"] / out[f"torch_rgbd_cpu_ms_t{t}"], 3)
            for b in ("torch", "ort"):
                out[f"rgbd_over_rgb_{b}_cpu_t{t}"] = round(out[f"{b}_rgbd_cpu_ms_t{t}"] / out[f"{b}_rgb_cpu_ms_t{t}"], 3)
        if rss:
            frames_file = Path(tmp) / "frames.npz"
            np.savez(frames_file, rgb=np.stack(video.rgb), depth=np.stack(video.depth))
            out["torch_peak_rss_mib"] = round(_peak_rss_mib("torch", model_dir, frames_file, config, size, seed), 1)
            out["ort_peak_rss_mib"] = round(_peak_rss_mib("onnxruntime", model_dir, frames_file, config, size, seed), 1)
            out["ratio_rss_ort_vs_torch"] = round(out["ort_peak_rss_mib"] / out["torch_peak_rss_mib"], 3)
    return out


# ------------------------------------------------------------------------------------------ GPU route
def _trtexec(path: Path, fp16: bool = True) -> dict[str, Any]:
    """Builds one graph with TensorRT's trtexec and returns its mean GPU compute time."""
    exe = shutil.which("trtexec")
    if exe is None:
        return {"skipped": "trtexec not on PATH (JetPack: /usr/src/tensorrt/bin/trtexec)"}
    cmd = [exe, f"--onnx={path}", "--iterations=50", "--warmUp=200"] + (["--fp16"] if fp16 else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return {"error": proc.stdout[-1500:] + proc.stderr[-1500:]}
    m = re.search(r"GPU Compute Time: min = ([\d.]+) ms, max = ([\d.]+) ms, mean = ([\d.]+) ms", proc.stdout)
    return {"fp16": fp16, "mean_ms": float(m.group(3)) if m else None, "built": True}


def onnx_gpu_part(sizes: tuple[int, ...] = (512, 1024), frames: int = 60, warmup: int = 10,
                  config: str = "m4sam_hiera_t") -> dict[str, Any]:
    """The export on the GPU: ORT CUDA / TensorRT EPs (fps, p50/p99, parity with the CPU EP) and
    trtexec FP16 per graph. Without CUDA it returns what it skipped and why."""
    import onnxruntime as ort
    import torch

    have = ort.get_available_providers()
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device: ONNX Runtime CUDA/TensorRT EPs and trtexec FP16 not run here",
                "providers_in_this_build": have}
    from m4sam_ros.data.synth import generate_video
    from m4sam_ros.export.onnx_export import GRAPHS, export_model
    from m4sam_ros.model import build_m4sam
    from m4sam_ros.predictor.onnx_runtime import OrtStreamingPredictor

    res: dict[str, Any] = {"providers_in_this_build": have, "onnxruntime": ort.__version__}
    video = generate_video(5, 30, 640, 480)
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            model_dir = Path(tmp) / "onnx"
            export_model(build_m4sam(config, image_size=size), model_dir)
            ref = OrtStreamingPredictor(model_dir, threads=4)
            ref_logits = [ref.step(video.rgb[i], video.depth[i], stamp=i / 30.0).memory_logits for i in range(4)]
            for ep in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
                key = f"{ep.removesuffix('ExecutionProvider').lower()}_{size}"
                if ep not in have:
                    res[key] = {"skipped": f"{ep} not in this onnxruntime build: pip install onnxruntime-gpu"}
                    continue
                try:
                    pred = OrtStreamingPredictor(model_dir, providers=[ep, "CPUExecutionProvider"])
                    err = max(float(np.abs(pred.step(video.rgb[i], video.depth[i], stamp=i / 30.0).memory_logits
                                           - ref_logits[i]).max()) for i in range(4))
                    pred.reset()
                    times = []
                    for i in range(frames + warmup):
                        t0 = time.perf_counter()
                        pred.step(video.rgb[i % 30], video.depth[i % 30], stamp=i / 30.0)
                        times.append((time.perf_counter() - t0) * 1e3)
                    lat = np.array(times[warmup:])
                    res[key] = {"fps": round(1e3 / float(lat.mean()), 2), "p50_ms": round(float(np.percentile(lat, 50)), 2),
                                "p99_ms": round(float(np.percentile(lat, 99)), 2),
                                "max_abs_logit_diff_vs_cpu_ep": err}
                except Exception as exc:  # noqa: BLE001 - one EP failing must not hide the other's figures
                    res[key] = {"error": f"{type(exc).__name__}: {exc}"}
            res[f"trtexec_fp16_{size}"] = {g: _trtexec(model_dir / f"{g}.onnx") for g in GRAPHS}
    return res

"""Figures for the model report: parameter counts and encode cost vs SAM2 (random weights).

``python -m m4sam_ros.model.report`` prints trainable parameters and their share for Hiera-T and
Hiera-L, the demo model's size and per-frame time at 128 px, and the time of the M4-SAM encode
(RGB + depth in one batched pass) as a ratio to SAM2's ``forward_image`` (RGB only) at 256 px,
measured in the same process (warm-up, then the median of several interleaved runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from .build import build_m4sam
from .checkpoint import save_m4sam_checkpoint
from .config import load_config
from .params import parameter_report


def _median_ms(fns: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, float]:
    """Median wall time of each function in ms; runs interleaved so load changes hit all alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    with torch.inference_mode():
        for _ in range(warmup):
            for f in fns.values():
                f()
        for _ in range(runs):
            for k, f in fns.items():
                t0 = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def param_figures(name: str, size: int = 128) -> dict[str, dict]:
    """Parameter reports for a config, as shipped and with train_sam_modules switched on."""
    out = {}
    for sam_mods in (False, True):
        cfg = load_config(name, image_size=size)
        cfg["train_sam_modules"] = sam_mods
        out["with_sam_modules" if sam_mods else "default"] = parameter_report(build_m4sam(cfg))
    return out


def encode_ratio(name: str = "m4sam_hiera_t", size: int = 256, runs: int = 7,
                 warmup: int = 2) -> dict[str, float]:
    """M4-SAM encode (RGB+depth, batch [rgb; depth]) vs SAM2 forward_image (RGB), batch 1."""
    torch.manual_seed(0)
    model = build_m4sam(name, image_size=size)
    x, d = torch.randn(1, 3, size, size), torch.rand(1, 1, size, size)
    t = _median_ms({"m4sam_encode": lambda: model.encode(x, d),
                    "sam2_forward_image": lambda: model.sam.forward_image(x)}, runs, warmup)
    t["ratio"] = t["m4sam_encode"] / t["sam2_forward_image"]
    return t


def demo_figures(size: int = 128, frames: int = 8, runs: int = 5) -> dict[str, float]:
    """Demo model: parameters, checkpoint bytes, and ms per streamed frame (encode + track_step,
    frame 0 conditioned on its pseudo mask, the rest tracked from memory)."""
    torch.manual_seed(0)
    model = build_m4sam("m4sam_demo", image_size=size)
    rep = parameter_report(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "demo.pt")
        save_m4sam_checkpoint(model, path)
        nbytes = os.path.getsize(path)
    xs, ds = torch.randn(frames, 1, 3, size, size), torch.rand(frames, 1, 1, size, size)
    sam = model.sam

    def stream() -> None:
        od: dict[str, dict] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        for i in range(frames):
            enc = model.encode(xs[i], ds[i])
            _, f, p, s = sam._prepare_backbone_features(enc.backbone_out)
            mask = (enc.coarse_logits.sigmoid() > 0.5).float() if i == 0 else None
            out = sam.track_step(i, i == 0, f, p, s, None, mask, od, frames)
            od["cond_frame_outputs" if i == 0 else "non_cond_frame_outputs"][i] = out

    ms = _median_ms({"stream": stream}, runs, 1)["stream"] / frames
    return {"params": rep["total"], "checkpoint_bytes": nbytes, "ms_per_frame": ms}


def main(argv: list[str] | None = None) -> None:
    """Print the report figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="image size for the encode ratio")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ratio-configs", nargs="+", default=["m4sam_hiera_t", "m4sam_hiera_l"])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in ("m4sam_hiera_t", "m4sam_hiera_l"):
        for mode, rep in param_figures(name).items():
            print(f"{name} [{mode}]: trainable {rep['trainable']:,} / total {rep['total']:,} "
                  f"= {100 * rep['share']:.2f}%")
            if mode == "default":
                print("  by group: " + ", ".join(
                    f"{g} {v['trainable']:,}/{v['total']:,}" for g, v in rep["by_group"].items()))
    demo = demo_figures()
    print(f"m4sam_demo: {demo['params']:,} params, checkpoint {demo['checkpoint_bytes'] / 2**20:.2f}"
          f" MiB, {demo['ms_per_frame']:.1f} ms/frame at 128 px (encode + track_step, "
          f"{torch.get_num_threads()} threads)")
    for name in args.ratio_configs:
        r = encode_ratio(name, size=args.size, runs=args.runs)
        print(f"{name} @ {args.size}px, batch 1: M4-SAM encode (RGB+D) {r['m4sam_encode']:.1f} ms, "
              f"SAM2 forward_image (RGB) {r['sam2_forward_image']:.1f} ms, ratio {r['ratio']:.2f}")


if __name__ == "__main__":
    main()

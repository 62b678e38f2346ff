"""CPU cost of one streaming step, RGB-D vs RGB-only, on *thread CPU time* (load-independent).

``m4sam-bench`` times wall clock, which on a shared, oversubscribed machine measures the other
processes as much as this one. This measures the CPU time the stepping thread itself used
(``time.thread_time``), per stage, so ratios stay meaningful under load:

    OMP_NUM_THREADS=1 python -m m4sam_ros.benchmarks.timing --size 256 --frames 20

RGB-only streaming is within a few percent of SAM2VideoPredictor (README), so the RGB-D/RGB ratio
printed here approximates m4sam-bench's ``ratio_m4sam_vs_sam2_vp``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def measure(config: str = "m4sam_hiera_t", size: int = 256, frames: int = 20, warmup: int = 3,
            seed: int = 0) -> dict[str, float]:
    """Median thread-CPU milliseconds per frame: RGB-only streaming, RGB-D streaming, and the
    parts of RGB-D encode (trunk on [rgb; depth] with and without adapters, post-trunk)."""
    from m4sam_ros.model import build_m4sam
    from m4sam_ros.predictor import StreamingPredictor

    torch.manual_seed(seed)
    model = build_m4sam(config, image_size=size)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(frames + warmup, 1, 3, size, size, generator=g)
    depths = torch.rand(frames + warmup, 1, 1, size, size, generator=g)
    out: dict[str, float] = {}
    for name, rgb_only in (("rgb_only_ms", True), ("rgbd_ms", False)):
        pred = StreamingPredictor(model, rgb_only=rgb_only, reinit_cut_threshold=-1.0)
        prompt = (torch.rand(size, size, generator=g) > 0.7).float() if rgb_only else None
        times = []
        for i in range(frames + warmup):
            t0 = time.thread_time()
            pred.step_tensor(images[i], None if rgb_only else depths[i], (size, size),
                             mask_prompt=prompt if i == 0 else None)
            if i >= warmup:
                times.append(time.thread_time() - t0)
        out[name] = 1e3 * _median(times)
    trunk = model.sam.image_encoder.trunk
    x2 = torch.cat([images[0], images[1]])
    tags = torch.tensor([0, 1])

    def with_adapters() -> None:
        with model.modality(tags):
            trunk(x2)

    with torch.inference_mode():
        for name, fn in (("forward_image_ms", lambda: model.sam.forward_image(images[0])),
                         ("trunk_rgbd_ms", lambda: trunk(x2)), ("trunk_rgbd_adapters_ms", with_adapters),
                         ("encode_rgbd_ms", lambda: model.encode(images[0], depths[0]))):
            fn()
            times = []
            for _ in range(max(3, frames // 2)):
                t0 = time.thread_time()
                fn()
                times.append(time.thread_time() - t0)
            out[name] = 1e3 * _median(times)
    out["adapters_ms"] = out["trunk_rgbd_adapters_ms"] - out["trunk_rgbd_ms"]
    out["post_trunk_ms"] = out["encode_rgbd_ms"] - out["trunk_rgbd_adapters_ms"]
    out["ratio_rgbd_vs_rgb_only"] = out["rgbd_ms"] / out["rgb_only_ms"]
    return out


def main() -> None:
    """CLI: prints the measurement as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="m4sam_hiera_t")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(json.dumps({k: round(v, 3) for k, v in measure(args.config, args.size, args.frames).items()},
                     indent=1))


if __name__ == "__main__":
    main()

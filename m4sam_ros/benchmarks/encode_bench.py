"""`python -m m4sam_ros.benchmarks.encode_bench`: what the compressed outputs cost per frame.

On a synthetic RGB-D frame of the requested size (default VGA) and its salient mask, in one
process, through the node's own code (``pipeline.image_outputs``, i.e. render + encode + message):

- ``raw``: ``~/overlay`` (rgb8) and ``~/mask`` (mono8) as Images: the baseline;
- ``overlay_compressed`` at each ``--quality`` (JPEG, rendering included; the encode alone is
  printed too) and ``mask_compressed`` at each ``--png-level`` (PNG): CPU milliseconds per frame
  (median of ``--frames``), bytes per message,
  MB/s at ``--rate`` Hz, and the ratio against the raw message's size;
- ``unsubscribed``: the node's path with the compressed outputs not wanted (nobody subscribed):
  the encoder count must stay 0 (printed), and the time equals the raw baseline.

Figures depend on the machine and its load; print them with the command that made them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from std_msgs.msg import Header

from m4sam_ros.predictor.streaming import SaliencyResult, boxes_from_mask
from m4sam_ros.ros import messages, pipeline


def synthetic_frame(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, SaliencyResult]:
    """A textured scene (gradient + sensor noise) with two salient blobs: realistic JPEG work."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], axis=2)
    rgb = np.clip(rgb + rng.integers(-12, 12, rgb.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4:height // 2, width // 5:width // 2] = 255
    cy, cx, r = int(height * 0.7), int(width * 0.75), max(height // 8, 2)
    mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 255
    sal = mask.astype(np.float32) / 255
    res = SaliencyResult(mask=mask, saliency=sal, coarse=sal, memory=sal, boxes=boxes_from_mask(mask, sal, 10),
                         object_score=0.9, reinitialized=False, frame_index=0, stamp=0.0)
    return rgb, res


def timed(fn: Callable[[], Any], frames: int) -> tuple[float, Any]:
    """(median CPU milliseconds of this process, last result) of ``frames`` calls after one
    warm-up call. CPU time, not wall time: on a shared machine the wall clock counts the waits
    for a core, which is not what the encoder costs."""
    out = fn()
    times = []
    for _ in range(frames):
        t0 = time.process_time()
        out = fn()
        times.append((time.process_time() - t0) * 1e3)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the frame (default VGA)")
    ap.add_argument("--frames", type=int, default=30, help="timed frames per variant")
    ap.add_argument("--quality", type=int, nargs="+", default=[80, 95], help="JPEG qualities to time")
    ap.add_argument("--png-level", type=int, nargs="+", default=[3, 9], help="PNG levels to time")
    ap.add_argument("--rate", type=float, default=15.0, help="output rate for the MB/s column")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    rgb, res = synthetic_frame(width, height)
    hdr = Header(frame_id="camera_color_optical_frame")

    def run(wanted: list[str], **kw: Any) -> dict[str, Any]:
        return pipeline.image_outputs(res, rgb, hdr, pipeline.OutputSettings(**kw), wanted)

    ms_raw, raw = timed(lambda: run(["overlay", "mask"]), args.frames)
    raw_overlay, raw_mask = len(raw["overlay"].data), len(raw["mask"].data)
    print(f"encode_bench {width}x{height}, {args.frames} frames, medians; MB/s at {args.rate:g} Hz")
    print(f"{'output':34s} {'CPU ms':>9s} {'bytes':>9s} {'MB/s':>7s} {'vs raw':>7s}")
    print(f"{'raw ~/overlay + ~/mask (baseline)':34s} {ms_raw:9.2f} {raw_overlay + raw_mask:9d} "
          f"{(raw_overlay + raw_mask) * args.rate / 1e6:7.2f} {1.0:7.3f}")
    overlay = messages.render_overlay(rgb, res.mask, res.boxes)
    for q in args.quality:
        ms, out = timed(lambda q=q: run(["overlay_compressed"], overlay_jpeg_quality=q), args.frames)
        enc, _ = timed(lambda q=q: messages.compressed_msg(overlay, "rgb8", "jpeg", hdr, quality=q), args.frames)
        n = len(out["overlay_compressed"].data)
        print(f"{f'~/overlay/compressed jpeg q{q}':34s} {ms:9.2f} {n:9d} {n * args.rate / 1e6:7.2f} "
              f"{n / raw_overlay:7.3f}   (JPEG encode alone {enc:.2f} ms)")
    for lvl in args.png_level:
        ms, out = timed(lambda lvl=lvl: run(["mask_compressed"], mask_png_level=lvl), args.frames)
        n = len(out["mask_compressed"].data)
        print(f"{f'~/mask/compressed png level {lvl}':34s} {ms:9.2f} {n:9d} {n * args.rate / 1e6:7.2f} "
              f"{n / raw_mask:7.3f}")
    tracker = _NoIds()
    depth = np.full((height, width), 2000, np.uint16)
    ms_un, frame = timed(lambda: pipeline.frame_outputs(res, rgb, depth, "16UC1", hdr, None,
                                                        pipeline.OutputSettings(), ["overlay", "mask"], tracker),
                         args.frames)
    print(f"{'unsubscribed compressed outputs':34s} {ms_un:9.2f}   encodes: {sum(frame.encoded.values())} "
          f"(node path, compressed not wanted; {ms_un / ms_raw:.2f}x the raw baseline)")
    return 0


class _NoIds:
    """The frame's tracker stand-in: ids are not what this benchmark measures."""

    def update(self, boxes: Any, reinitialized: bool = False) -> list[int]:
        return list(range(1, len(boxes) + 1))


if __name__ == "__main__":
    raise SystemExit(main())

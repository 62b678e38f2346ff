"""What the node tells /diagnostics, decided from counters over the last period (no ROS here but
the message types): OK while masks come out; WARN when no pairs arrive or most recent pairs are
rejected, naming the top reason and its fix; ERROR only when inference itself fails."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

#: What to do about each rejection reason (the WARN message names it).
FIXES: dict[str, str] = {
    "color_unsupported_encoding": "publish colour as rgb8, bgr8, rgba8, bgra8 or mono8",
    "depth_unsupported_encoding": "publish depth as 16UC1 (mm) or 32FC1 (m)",
    "color_unsupported_format": "publish colour through image_transport's compressed plugin as jpeg or png",
    "depth_unsupported_format": "publish depth through the compressedDepth plugin (png or rvl), not compressed",
    "depth_units": "depth values disagree with the encoding: 16UC1 must be millimetres, 32FC1 metres (REP 118)",
    "color_zero_size": "the colour image is empty: check the camera driver",
    "depth_zero_size": "the depth image is empty: check the camera driver",
    "color_bad_step": "colour step is smaller than a row: the driver fills Image.step wrongly",
    "depth_bad_step": "depth step is smaller than a row: the driver fills Image.step wrongly",
    "color_bad_data_length": "colour data length != step x height: a truncated or corrupt message",
    "depth_bad_data_length": "depth data length != step x height: a truncated or corrupt message",
    "too_large": "lower the camera resolution or raise max_image_pixels",
    "size_mismatch": "register depth to colour (RealSense: align_depth.enable:=true)",
    "invalid_depth": "no valid depth pixel: check the depth stream (range, exposure, 0 = invalid)",
    "decode_error": "the image could not be decoded: check encoding and is_bigendian (compressed: a corrupt "
                    "JPEG/PNG/RVL payload)",
    "bad_camera_info": "publish depth/camera_info with finite, positive focal lengths (K)",
    "negative_stamp": "stamps must be valid ROS times: fix the driver's clock",
    "sync_error": "an internal pairing error: please report it with the log",
    "publish_error": "an output could not be published: see the log",
    "predictor_rejected": "the predictor refused the frame: see the log",
    "inference_error": "inference failed: see the log (device memory, model)",
}

#: Reasons that are not the input's fault.
INFERENCE_REASONS = ("inference_error",)


#: where a processed frame's time goes, in order: ``queue`` (pair formed -> worker takes it),
#: ``decode``, ``inference`` (predictor.step), ``mask`` (~/mask built and published), then
#: ``encode`` and ``publish`` of every other output
STAGES = ("queue", "decode", "inference", "mask", "encode", "publish")


class StageClock:
    """One frame's laps on the worker thread: wall ms per stage and the worker thread's CPU ms
    (CPU time tells the node's own cost apart from waiting for a core on a loaded machine)."""

    def __init__(self, t_in: float) -> None:
        self.t_in = t_in
        self._t, self._c = time.perf_counter(), time.thread_time()
        self.wall_ms: dict[str, float] = {"queue": (self._t - t_in) * 1e3}
        self.cpu_ms: dict[str, float] = {}
        self.to_mask_ms: float | None = None  # pair formed -> ~/mask published

    def lap(self, stage: str) -> None:
        t, c = time.perf_counter(), time.thread_time()
        self.wall_ms[stage] = self.wall_ms.get(stage, 0.0) + (t - self._t) * 1e3
        self.cpu_ms[stage] = self.cpu_ms.get(stage, 0.0) + (c - self._c) * 1e3
        self._t, self._c = t, c
        if stage == "mask":
            self.to_mask_ms = (t - self.t_in) * 1e3

    @property
    def total_ms(self) -> float:
        """Pair formed -> the last lap (every output published)."""
        return (self._t - self.t_in) * 1e3


@dataclass
class Timings:
    """Stage totals over every processed frame of the node's life; the means are what the demo
    benchmark compares with the bare predictor."""

    frames: int = 0
    wall_ms: Counter = field(default_factory=Counter)
    cpu_ms: Counter = field(default_factory=Counter)
    total_ms: deque = field(default_factory=lambda: deque(maxlen=1000))
    mask_ms: deque = field(default_factory=lambda: deque(maxlen=1000))

    def add(self, clock: StageClock) -> None:
        self.wall_ms.update(clock.wall_ms)
        self.cpu_ms.update(clock.cpu_ms)
        self.total_ms.append(clock.total_ms)
        if clock.to_mask_ms is not None:
            self.mask_ms.append(clock.to_mask_ms)
        self.frames += 1

    def values(self) -> dict[str, float | int]:
        """``stage_ms_mean_<stage>``, ``stage_cpu_ms_mean_<stage>`` (means over processed frames; a
        stage a frame skipped counts 0), ``pair_to_mask_ms_*`` and ``pair_to_output_ms_*`` (mean, p95)."""
        n = self.frames
        out: dict[str, float | int] = {"timed_frames": n}
        for stage in STAGES:
            out[f"stage_ms_mean_{stage}"] = self.wall_ms[stage] / n if n else float("nan")
            if stage != "queue":
                out[f"stage_cpu_ms_mean_{stage}"] = self.cpu_ms[stage] / n if n else float("nan")
        for name, values in (("pair_to_mask", list(self.mask_ms)), ("pair_to_output", list(self.total_ms))):
            out[f"{name}_ms_mean"] = float(np.mean(values)) if values else float("nan")
            out[f"{name}_ms_p95"] = float(np.percentile(values, 95)) if values else float("nan")
        return out


@dataclass
class Stats:
    """Counters the worker and callbacks share; read by diagnostics and tests."""

    color_in: int = 0
    depth_in: int = 0
    pairs_in: int = 0
    processed: int = 0
    dropped: int = 0  # a pair replaced by a newer one before the worker took it
    rejected: Counter = field(default_factory=Counter)
    reinitialized: int = 0
    stamp_jumps: int = 0
    paused: int = 0        # pairs skipped while ~/enable is false
    rate_limited: int = 0  # pairs skipped by the max_rate cap
    boxes3d_skipped: Counter = field(default_factory=Counter)  # salient components without a 3D box, by reason
    detections_3d: int = 0  # 3D boxes published (or built) so far
    last_ids: tuple = ()    # object ids of the newest processed frame
    last_latency_ms: float = float("nan")
    last_age_ms: float = float("nan")
    last_mask_monotonic: float | None = None
    valid_depth_fraction: float = float("nan")
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=100))
    ages_ms: deque = field(default_factory=lambda: deque(maxlen=100))
    #: (stamp taken by the worker, newest paired stamp at that moment), for checking freshness
    takes: deque = field(default_factory=lambda: deque(maxlen=1000))
    timings: Timings = field(default_factory=Timings)  # per-stage time of processed frames


@dataclass
class Window:
    """Counter values at the previous diagnostics message."""

    t: float
    color: int = 0
    depth: int = 0
    pairs: int = 0
    processed: int = 0
    rejected: Counter = field(default_factory=Counter)


def verdict(active: bool, state_label: str, pairs: int, processed: int, rejected: Counter,
            inference_failed: bool, enabled: bool = True) -> tuple[int, str]:
    """(level, message) for one period: ``pairs``, ``processed`` and ``rejected`` are this
    period's increments; ``inference_failed``: the latest pair failed inside the model;
    ``enabled``: the ~/enable switch (off is a choice, not a fault: OK)."""
    if not active:
        return DiagnosticStatus.OK, f"not processing ({state_label})"
    if not enabled:
        return DiagnosticStatus.OK, f"paused by ~/enable ({state_label}); call it with data: true to resume"
    input_rejects = Counter({k: v for k, v in rejected.items() if k not in INFERENCE_REASONS and v > 0})
    errors = sum(rejected.get(k, 0) for k in INFERENCE_REASONS)
    if errors and processed == 0 and inference_failed:
        return DiagnosticStatus.ERROR, f"inference failing ({errors} pairs in the last period): {FIXES['inference_error']}"
    n_rej = sum(input_rejects.values())
    if n_rej and n_rej >= processed:
        reason, count = input_rejects.most_common(1)[0]
        return DiagnosticStatus.WARN, (f"{n_rej} of {n_rej + processed} recent pairs rejected, mostly {reason} "
                                       f"({count}): {FIXES.get(reason, 'see the log')}")
    if pairs == 0 and processed == 0:
        return DiagnosticStatus.WARN, ("no synchronised colour/depth pairs arriving: check the topics, their "
                                       "stamps (sync_slop) and the QoS")
    return DiagnosticStatus.OK, "processing"


def build(name: str, hardware_id: str, stats: Stats, prev: Window, now: float, active: bool, state_label: str,
          extra: dict[str, str], inference_failed: bool, state_bytes: int | None, enabled: bool = True
          ) -> tuple[DiagnosticArray, Window]:
    """The /diagnostics message for this period, and the window for the next one (stamp unset)."""
    st = stats
    dt = max(now - prev.t, 1e-6)
    rejected_now = Counter(st.rejected)
    period_rej = Counter({k: v - prev.rejected.get(k, 0) for k, v in rejected_now.items()})
    pairs, processed = st.pairs_in - prev.pairs, st.processed - prev.processed
    level, message = verdict(active, state_label, pairs, processed, period_rej, inference_failed, enabled)
    lat, ages = list(st.latencies_ms), list(st.ages_ms)
    color_rate, depth_rate = (st.color_in - prev.color) / dt, (st.depth_in - prev.depth) / dt
    values: dict[str, Any] = {
        "color_rate_hz": color_rate,
        "depth_rate_hz": depth_rate,
        "input_pair_rate_hz": pairs / dt,
        "pair_rate_vs_camera": pairs / dt / min(color_rate, depth_rate) if min(color_rate, depth_rate) > 0
        else float("nan"),
        "processed_rate_hz": processed / dt,
        "pairs_in": st.pairs_in,
        "processed": st.processed,
        "dropped_pairs": st.dropped,
        "valid_depth_fraction": st.valid_depth_fraction,
        "seconds_since_last_mask": (now - st.last_mask_monotonic) if st.last_mask_monotonic is not None
        else float("inf"),
        "inference_latency_ms_last": st.last_latency_ms,
        "inference_latency_ms_mean": float(np.mean(lat)) if lat else float("nan"),
        "inference_latency_ms_max": float(np.max(lat)) if lat else float("nan"),
        "frame_age_at_publish_ms_last": st.last_age_ms,
        "frame_age_at_publish_ms_mean": float(np.mean(ages)) if ages else float("nan"),
        "reinitializations": st.reinitialized,
        "skipped_paused": st.paused,
        "skipped_rate_limit": st.rate_limited,
        "detections_3d_total": st.detections_3d,
        "object_ids": " ".join(str(i) for i in st.last_ids) or "none",
        "stamp_jumps": st.stamp_jumps,
        "rejected_total": sum(rejected_now.values()),
        "rejected_last_period": sum(period_rej.values()),
    }
    values.update(st.timings.values())
    values.update({f"rejected_{k}": v for k, v in sorted(rejected_now.items())})
    values.update({f"boxes3d_skipped_{k}": v for k, v in sorted(st.boxes3d_skipped.items())})
    if state_bytes is not None:
        values["tracker_state_bytes"] = int(state_bytes)
    status = DiagnosticStatus(level=level, name=f"{name}: pipeline", message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=k, value=v) for k, v in extra.items()] + [
        KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
    window = Window(now, st.color_in, st.depth_in, st.pairs_in, st.processed, rejected_now)
    return DiagnosticArray(status=[status]), window


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.3f}"
    return str(v)


def new_window() -> Window:
    return Window(time.monotonic())

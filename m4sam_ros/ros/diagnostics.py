"""What the node tells /diagnostics, in diagnostic_updater's conventions so that the aggregator
and rqt_robot_monitor read it as they read camera drivers. Three statuses per node, each named
``<fully qualified node name>: <task>`` (two instances in two namespaces never collide), all with
``hardware_id`` = ``<camera frame> on <inference device>``:

- ``pipeline``: decided from counters over the last period: OK while masks come out; WARN when no
  pairs arrive or most recent pairs are rejected, naming the top reason and its fix; ERROR only
  when inference itself fails.
- ``input rate``: diagnostic_updater's FrequencyStatus on the synchronised pairs: WARN outside
  ``expected * (1 -/+ input_rate_tolerance)``, ERROR with no pair in the window. The expected rate
  is the ``expected_input_rate`` parameter, or (0) the camera's own rate measured over its first
  ``input_rate_learn_time`` seconds; the WARN message carries the measured and expected rates.
- ``frame age``: diagnostic_updater's TimeStampStatus on every published frame's stamp: ERROR
  when a frame left later than ``frame_age_max`` after its stamp (or earlier than
  ``frame_age_min``: a camera clock ahead of ours).

The real diagnostic_updater is used when importable (``ros/compat.py``), the stand-in otherwise.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus

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
    "bad_camera_info": "publish depth/camera_info with a usable K: finite, focal lengths 1..1e6 px",
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
    no_object: int = 0     # frames SAM2's no-object gate hit (object score <= 0)
    blanked: int = 0       # ... of them left all-black (no confident coarse map to fall back to)
    stamp_jumps: int = 0
    paused: int = 0        # pairs skipped while ~/enable is false
    rate_limited: int = 0  # pairs skipped by the max_rate cap
    encodes: Counter = field(default_factory=Counter)  # compressed outputs encoded, by output
    boxes3d_skipped: Counter = field(default_factory=Counter)  # salient components without a 3D box, by reason
    #: requests and callbacks refused or failed without ending the node (bad_transition, callback_error)
    refused: Counter = field(default_factory=Counter)
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


def pipeline_status(stats: Stats, prev: Window, now: float, active: bool, state_label: str, extra: dict[str, str],
                    inference_failed: bool, state_bytes: int | None, enabled: bool = True
                    ) -> tuple[int, str, list[tuple[str, str]], Window]:
    """(level, message, key/values) of the ``pipeline`` status for this period, and the window
    for the next one."""
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
        "no_object_frames": st.no_object,
        "blanked_frames": st.blanked,
        "blanked_share": st.blanked / st.processed if st.processed else float("nan"),
        "no_object_share": st.no_object / st.processed if st.processed else float("nan"),
        "skipped_paused": st.paused,
        "skipped_rate_limit": st.rate_limited,
        "detections_3d_total": st.detections_3d,
        "object_ids": " ".join(str(i) for i in st.last_ids) or "none",
        "stamp_jumps": st.stamp_jumps,
        "rejected_total": sum(rejected_now.values()),
        "rejected_last_period": sum(period_rej.values()),
    }
    values.update({f"encodes_{k}": v for k, v in sorted(st.encodes.items())})
    values.update(st.timings.values())
    values.update({f"rejected_{k}": v for k, v in sorted(rejected_now.items())})
    values.update({f"boxes3d_skipped_{k}": v for k, v in sorted(st.boxes3d_skipped.items())})
    values.update({f"refused_{k}": v for k, v in sorted(st.refused.items())})
    if state_bytes is not None:
        values["tracker_state_bytes"] = int(state_bytes)
    pairs_kv = list(extra.items()) + [(k, _fmt(v)) for k, v in values.items()]
    window = Window(now, st.color_in, st.depth_in, st.pairs_in, st.processed, rejected_now)
    return level, message, pairs_kv, window


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.3f}"
    return str(v)


def new_window() -> Window:
    return Window(time.monotonic())


class RateBaseline:
    """The camera's own rate, measured over its first ``learn_s`` seconds of pairs (a parameter
    may give it instead): the expected rate the ``input rate`` status compares against."""

    def __init__(self, learn_s: float) -> None:
        self.learn_s = float(learn_s)
        self.first: float | None = None
        self.last: float | None = None
        self.count = 0
        self.rate: float | None = None

    def tick(self, now: float) -> float | None:
        """One pair at monotonic time ``now``; the learned rate once ``learn_s`` have passed."""
        if self.rate is not None:
            return self.rate
        if self.first is None:
            self.first = now
        self.count += 1
        self.last = now
        if now - self.first >= self.learn_s and self.count >= 2:
            self.rate = (self.count - 1) / (now - self.first)
        return self.rate

    def left(self, now: float) -> float:
        """Seconds of learning left (the full time before the first pair)."""
        return self.learn_s if self.first is None else max(self.learn_s - (now - self.first), 0.0)


class NodeDiagnostics:
    """The node's diagnostic_updater Updater and its three tasks (see the module docstring).

    ``du`` is the diagnostic_updater module (real or stand-in, from compat); ``p(name)`` reads a
    node parameter (the rate and age bounds are read at every update, so a change applies at
    once); ``pipeline(stat)`` fills the pipeline status; ``active()`` says whether the node is
    processing (inactive: the rate and age statuses say so at OK instead of alarming)."""

    def __init__(self, node: Any, du: Any, p: Callable[[str], Any], pipeline: Callable[[Any], Any],
                 active: Callable[[], bool]) -> None:
        self.p, self.active = p, active
        self.updater = du.Updater(node, float(p("diagnostics_period")))
        self.updater.node_name = node.get_fully_qualified_name()  # status names carry the namespace
        self.camera_frame = ""
        self.device = "none"
        self.bound: dict[str, float] = {"min": 0.0}
        self.freq = du.FrequencyStatus(du.FrequencyStatusParam(self.bound, float(p("input_rate_tolerance")),
                                                               int(p("input_rate_window"))), "input rate")
        self.age_params = du.TimeStampStatusParam(float(p("frame_age_min")), float(p("frame_age_max")))
        self.age = du.TimeStampStatus(self.age_params, "frame age")
        self.baseline = RateBaseline(float(p("input_rate_learn_time")))
        self._lock = threading.Lock()
        self.set_hardware()
        self.updater.add("pipeline", pipeline)
        self.updater.add("input rate", self._rate)
        self.updater.add("frame age", self._age)

    # --------------------------------------------------------------------------------- events
    def restart(self) -> None:
        """Forget the learned rate and the rate window (on activate: the camera may be another)."""
        with self._lock:
            self.baseline = RateBaseline(float(self.p("input_rate_learn_time")))
        self.freq.clear()

    def tick_pair(self, frame_id: str) -> None:
        """One synchronised pair arrived (subscription thread)."""
        self.freq.tick()
        with self._lock:
            self.baseline.tick(time.monotonic())
        if frame_id and frame_id != self.camera_frame:
            self.camera_frame = frame_id
            self.set_hardware()

    def tick_frame(self, stamp_s: float, clock_offset_s: float = 0.0) -> None:
        """A frame stamped ``stamp_s`` (node clock) was published. diagnostic_updater measures the
        delay against the system clock; ``clock_offset_s`` = system time - node time moves the
        stamp onto it, so sim time (a replayed bag) reads the right age."""
        self.age.tick(float(stamp_s + clock_offset_s))

    def set_device(self, device: str) -> None:
        self.device = device
        self.set_hardware()

    def set_hardware(self) -> None:
        self.updater.setHardwareID(f"{self.camera_frame or 'unknown camera frame'} on {self.device}")

    # ---------------------------------------------------------------------------------- tasks
    def expected_rate(self) -> tuple[float | None, str]:
        """(expected pair rate or None while learning, where it comes from)."""
        given = float(self.p("expected_input_rate"))
        if given > 0:
            return given, "parameter expected_input_rate"
        with self._lock:
            rate, left = self.baseline.rate, self.baseline.left(time.monotonic())
        if rate is None:
            return None, f"measuring the camera: {left:.1f} s left"
        return rate, f"measured over the first {self.baseline.learn_s:g} s"

    def _rate(self, stat: Any) -> Any:
        expected, source = self.expected_rate()
        if expected is None:
            self.bound.pop("max", None)
            self.bound["min"] = 0.0
        else:
            self.bound["min"] = self.bound["max"] = expected
        tol = float(self.p("input_rate_tolerance"))
        self.freq.params.tolerance = tol
        stat = self.freq.run(stat)
        stat.add("Expected frequency source", source)
        if not self.active():
            stat.summary(DiagnosticStatus.OK, "not processing (node not active)")
            return stat
        if stat.level != DiagnosticStatus.OK or expected is not None:
            measured = next((kv.value for kv in stat.values if kv.key == "Actual frequency (Hz)"), "?")
            want = f"expected {expected:.2f} Hz +/- {tol:.0%}" if expected is not None else source
            stat.message = f"{stat.message} measured {float(measured):.2f} Hz, {want}"
        return stat

    def _age(self, stat: Any) -> Any:
        self.age_params.min_acceptable = float(self.p("frame_age_min"))
        self.age_params.max_acceptable = float(self.p("frame_age_max"))
        stat = self.age.run(stat)
        if not self.active():
            stat.summary(DiagnosticStatus.OK, "not processing (node not active)")
        return stat

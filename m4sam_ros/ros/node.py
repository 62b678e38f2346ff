"""The ``m4sam`` lifecycle node: synchronised RGB-D in; mask, saliency, overlay, detections,
3D markers, object points and diagnostics out.

A thin shell around ``StreamingPredictor``: the approximate-time sync callback only stores the
newest pair (``deque(maxlen=1)``, like image_pipeline's calibrator); one worker thread runs the
predictor on it and publishes, with the colour image's header. Bad input is counted and skipped,
never raised. The model lives between configure/activate and deactivate/cleanup.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from m4sam_ros.ros import compat, pipeline

NODE_NAME = "m4sam"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DEMO_MODEL = ASSETS_DIR / "demo_model.pt"

WEIGHTS_HELP = (
    "Official SAM2.1 weights (sam2.1_hiera_tiny/small/base_plus/large.pt) come from Meta's sam2 "
    "release (https://github.com/facebookresearch/sam2, checkpoints/download_ckpts.sh) and go into "
    "'sam2_checkpoint'; an M4-SAM checkpoint for 'checkpoint' is written by `m4sam-train`; or use "
    f"the bundled demo model: model_config:=m4sam_demo checkpoint:={DEMO_MODEL}.")


class ConfigurationError(RuntimeError):
    """A parameter that makes configure impossible; the message names it and what to do."""


# ----------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: default, description, constraints and whether it is read-only."""

    default: Any
    description: str
    read_only: bool = False
    range: tuple[float, float] | tuple[int, int, int] | None = None
    choices: tuple[str, ...] | None = None


#: Every parameter of the node (config/m4sam.yaml lists the same, commented).
PARAMS: dict[str, ParamSpec] = {
    # model: read-only, a change needs a new configure
    "model_config": ParamSpec("m4sam_demo", "Model config: a shipped name (m4sam_demo, m4sam_hiera_t, "
                              "m4sam_hiera_s, m4sam_hiera_b+, m4sam_hiera_l) or a YAML path.", True),
    "checkpoint": ParamSpec("", "M4-SAM checkpoint (.pt from m4sam-train). Empty: the bundled demo model "
                            "m4sam_ros/assets/demo_model.pt (only with model_config m4sam_demo).", True),
    "sam2_checkpoint": ParamSpec("", "Official SAM2.1 weights (sam2.1_hiera_*.pt); needed by configs that "
                                 "do not train the image trunk themselves (all but m4sam_demo).", True),
    "device": ParamSpec("auto", "Torch device: auto (cuda when available), cpu, cuda or cuda:N.", True),
    "image_size": ParamSpec(0, "Model input resolution in pixels (multiple of 32); 0 = the config's.",
                            True, (0, 2048, 32)),
    "autostart": ParamSpec(True, "Configure and activate at start, so a plain `ros2 run` works.", True),
    # input: read-only, subscriptions are made on activate
    "qos_reliability": ParamSpec("best_effort", "Input QoS reliability. best_effort (SensorDataQoS) "
                                 "connects to reliable and best-effort publishers alike.", True,
                                 choices=("best_effort", "reliable")),
    "qos_depth": ParamSpec(5, "Input QoS history depth.", True, (1, 100, 1)),
    "sync_queue_size": ParamSpec(10, "ApproximateTimeSynchronizer queue size per input.", True, (1, 100, 1)),
    "sync_slop": ParamSpec(0.02, "ApproximateTimeSynchronizer slop in seconds (max colour/depth stamp "
                           "difference); ~15-20 ms pairs 30 Hz frames uniquely.", True, (0.0, 1.0)),
    "use_camera_info": ParamSpec(True, "Subscribe to depth/camera_info (needed for markers and points).", True),
    "diagnostics_period": ParamSpec(1.0, "Seconds between /diagnostics messages.", True, (0.1, 60.0)),
    # runtime: thresholds and switches
    "mask_threshold": ParamSpec(0.5, "Saliency above which a pixel is in the mask.", False, (0.0, 1.0)),
    "publish_mask": ParamSpec(True, "Publish ~/mask (mono8 0/255)."),
    "publish_saliency": ParamSpec(True, "Publish ~/saliency (32FC1 in [0,1])."),
    "publish_overlay": ParamSpec(True, "Publish ~/overlay (rgb8 tint + boxes)."),
    "publish_detections": ParamSpec(True, "Publish ~/detections (vision_msgs/Detection2DArray)."),
    "publish_markers": ParamSpec(True, "Publish ~/markers (3D boxes; needs camera_info)."),
    "publish_points": ParamSpec(False, "Publish ~/object_points (PointCloud2 of the salient pixels)."),
    "overlay_alpha": ParamSpec(0.45, "Opacity of the mask tint in ~/overlay.", False, (0.0, 1.0)),
    "depth_scale": ParamSpec(0.001, "Metres per unit of 16UC1/mono16 depth (RealSense: 0.001).",
                             False, (1e-6, 1.0)),
    "max_depth": ParamSpec(10.0, "Points farther than this (metres) are left out of markers and points.",
                           False, (0.05, 1000.0)),
    "points_stride": ParamSpec(2, "Use every n-th row/column for markers and points.", False, (1, 32, 1)),
    "marker_min_points": ParamSpec(20, "Fewest valid depth points a 3D box needs.", False, (1, 100000, 1)),
    "marker_lifetime": ParamSpec(0.5, "Marker lifetime in seconds (0 = forever).", False, (0.0, 60.0)),
    "warn_throttle": ParamSpec(5.0, "Seconds between two warnings for the same rejection reason.",
                               False, (0.0, 3600.0)),
}

#: Node parameters handed to the predictor (name on the node -> predictor keyword/attribute).
PREDICTOR_THRESHOLDS: dict[str, str] = {"mask_threshold": "mask_threshold"}


def _descriptor(name: str, spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(name=name, description=spec.description, read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.range is not None:
        if isinstance(spec.default, float):
            lo, hi = spec.range[:2]
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        else:
            lo, hi, step = spec.range  # type: ignore[misc]
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=int(step))]
    return d


def check_param(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``name`` beyond type/range (which rclpy checks), or None."""
    spec = PARAMS.get(name)
    if spec is None:
        return None
    if spec.choices and value not in spec.choices:
        return f"{name}={value!r}: must be one of {', '.join(spec.choices)}"
    if name == "device" and not (value in ("auto", "cpu", "cuda") or str(value).startswith("cuda:")
                                 and str(value)[5:].isdigit()):
        return f"device={value!r}: must be auto, cpu, cuda or cuda:N"
    if name == "image_size" and value and value % 32:
        return f"image_size={value}: must be 0 or a multiple of 32"
    if spec.range is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = spec.range[:2]
        if not lo <= value <= hi or (isinstance(value, float) and not np.isfinite(value)):
            return f"{name}={value}: must be within [{lo}, {hi}]"
    return None


# ------------------------------------------------------------------------------------- stats
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
    last_latency_ms: float = float("nan")
    last_age_ms: float = float("nan")
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=100))
    ages_ms: deque = field(default_factory=lambda: deque(maxlen=100))
    #: (stamp taken by the worker, newest paired stamp at that moment), for checking freshness
    takes: deque = field(default_factory=lambda: deque(maxlen=1000))


class M4SamNode(LifecycleNode):
    """Lifecycle node ``m4sam``; see the module docstring and config/m4sam.yaml."""

    def __init__(self, node_name: str = NODE_NAME, *, predictor_factory: Any = None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, spec in PARAMS.items():
            self.declare_parameter(name, spec.default, _descriptor(name, spec))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # predictor_factory(node) -> predictor: lets a test wrap the real predictor (e.g. slow it down)
        self._predictor_factory = predictor_factory
        self.predictor: Any = None
        self.stats = Stats()
        self._lock = threading.Condition()
        self._pending: deque = deque(maxlen=1)
        self._newest_pair_ns: int | None = None
        self._worker: threading.Thread | None = None
        self._stop = False
        self._reset_requested = False
        self._camera_info: CameraInfo | None = None
        self._subs: list[Any] = []
        self._sync: Any = None
        self._pubs: dict[str, Any] = {}
        self._reset_srv: Any = None
        self._last_warn: dict[str, float] = {}
        self._said_once: set[str] = set()
        self._bridge = compat.CvBridge()
        self._diag_prev = (time.monotonic(), 0, 0, 0, 0)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(float(self.get_parameter("diagnostics_period").value),
                                             self._publish_diagnostics)
        missing = [k for k, v in compat.BACKENDS.items() if v != "ros"]
        if missing:
            self.get_logger().info("using stand-ins for: " + ", ".join(
                f"{k} ({compat.BACKENDS[k]})" for k in missing))

    # ------------------------------------------------------------------------------ parameters
    def p(self, name: str) -> Any:
        """Current value of a declared parameter."""
        return self.get_parameter(name).value

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Rejects invalid values with a reason; hands accepted thresholds to the predictor."""
        for prm in params:
            if prm.type_ == Parameter.Type.NOT_SET:
                return SetParametersResult(successful=False, reason=f"{prm.name} cannot be undeclared")
            reason = check_param(prm.name, prm.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for prm in params:
            if prm.name in PREDICTOR_THRESHOLDS and self.predictor is not None:
                self._apply_threshold(self.predictor, prm.name, prm.value)
        return SetParametersResult(successful=True)

    @staticmethod
    def _apply_threshold(predictor: Any, name: str, value: Any) -> None:
        attr = PREDICTOR_THRESHOLDS[name]
        target = getattr(predictor, "inner", predictor)
        setter = getattr(target, "set_thresholds", None)
        if setter is not None:
            setter(**{attr: value})
        else:
            setattr(target, attr, value)

    # ------------------------------------------------------------------------------- model
    def _resolve_weights(self) -> tuple[str, str | None, str | None]:
        """(config, m4sam checkpoint, sam2 checkpoint) from the parameters, or ConfigurationError."""
        from m4sam_ros.model.build import load_config

        cfg_name = str(self.p("model_config"))
        try:
            cfg = load_config(cfg_name)
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigurationError(f"parameter 'model_config' = {cfg_name!r}: {exc}") from exc
        ckpt = str(self.p("checkpoint")).strip()
        if not ckpt:
            if cfg.get("name") != "m4sam_demo":
                raise ConfigurationError(
                    f"parameter 'checkpoint' is empty, and model_config {cfg_name!r} has no bundled "
                    f"weights. {WEIGHTS_HELP}")
            ckpt = str(DEMO_MODEL)
        ckpt_path = Path(os.path.expanduser(ckpt))
        if not ckpt_path.is_file():
            raise ConfigurationError(f"parameter 'checkpoint' = {ckpt!r}: no such file. {WEIGHTS_HELP}")
        sam2 = str(self.p("sam2_checkpoint")).strip() or None
        needs_sam2 = not cfg.get("train_base_in_full", False)
        if sam2 is None and needs_sam2:
            raise ConfigurationError(
                f"parameter 'sam2_checkpoint' is empty, but model_config {cfg_name!r} builds on SAM2.1's "
                f"trained image trunk. {WEIGHTS_HELP}")
        if sam2 is not None and not Path(os.path.expanduser(sam2)).is_file():
            raise ConfigurationError(f"parameter 'sam2_checkpoint' = {sam2!r}: no such file. {WEIGHTS_HELP}")
        return cfg_name, str(ckpt_path), (os.path.expanduser(sam2) if sam2 else None)

    def _device(self) -> str:
        import torch

        dev = str(self.p("device"))
        if dev == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigurationError(f"parameter 'device' = {dev!r}: CUDA is not available here "
                                     f"(torch {torch.__version__}); use device:=cpu or auto")
        return dev

    def _build_predictor(self) -> Any:
        """The StreamingPredictor the parameters describe (or the injected factory's)."""
        if self._predictor_factory is not None:
            return self._predictor_factory(self)
        cfg, ckpt, sam2 = self._resolve_weights()  # before importing torch-heavy modules: fail fast
        from m4sam_ros.model.checkpoint import CheckpointError
        from m4sam_ros.predictor import StreamingPredictor

        device = self._device()
        size = int(self.p("image_size")) or None
        thresholds = {attr: self.p(name) for name, attr in PREDICTOR_THRESHOLDS.items()}
        try:
            predictor = StreamingPredictor.from_config(cfg, m4sam_checkpoint=ckpt, sam2_checkpoint=sam2,
                                                       device=device, image_size=size, **thresholds)
            predictor.warm_up()  # the first camera frame should not pay for lazy initialisation
            return predictor
        except CheckpointError as exc:
            name = "sam2_checkpoint" if sam2 and sam2 in str(exc) else "checkpoint"
            raise ConfigurationError(f"parameter '{name}': {exc}. {WEIGHTS_HELP}") from exc

    def _free_model(self) -> None:
        """Drops the predictor (and with it the model and its memory) and returns GPU memory."""
        self.predictor = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - freeing must never fail a transition
            pass

    # ---------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validates parameters and builds the model; a failure names the parameter."""
        try:
            for name in PARAMS:
                reason = check_param(name, self.p(name))
                if reason:
                    raise ConfigurationError(f"invalid parameter: {reason}")
            t0 = time.monotonic()
            self.predictor = self._build_predictor()
            self.get_logger().info(f"model ready in {time.monotonic() - t0:.1f} s "
                                   f"({self.p('model_config')}, device {self.p('device')})")
        except ConfigurationError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._free_model()
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # noqa: BLE001 - a transition reports, it does not raise
            self.get_logger().error(f"configure failed building the model: {type(exc).__name__}: {exc}")
            self._free_model()
            return TransitionCallbackReturn.FAILURE
        self._pubs = {
            "mask": self.create_lifecycle_publisher(Image, "~/mask", 10),
            "saliency": self.create_lifecycle_publisher(Image, "~/saliency", 10),
            "overlay": self.create_lifecycle_publisher(Image, "~/overlay", 10),
            "markers": self.create_lifecycle_publisher(MarkerArray, "~/markers", 10),
            "points": self.create_lifecycle_publisher(PointCloud2, "~/object_points", 10),
        }
        if compat.HAVE_VISION_MSGS:  # pragma: no cover - vision_msgs is not installable here
            self._pubs["detections"] = self.create_lifecycle_publisher(
                compat.Detection2DArray, "~/detections", 10)
        else:
            self.get_logger().info("vision_msgs is not importable: ~/detections is not published "
                                   "(install ros-$ROS_DISTRO-vision-msgs to get it)")
        self._reset_srv = self.create_service(Trigger, "~/reset", self._on_reset)
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """(Re)builds the model if deactivate freed it, subscribes and starts the worker."""
        if self.predictor is None:
            try:
                self.predictor = self._build_predictor()
            except Exception as exc:  # noqa: BLE001
                self.get_logger().error(f"activate failed building the model: {exc}")
                return TransitionCallbackReturn.FAILURE
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(self.p("qos_depth")),
                         reliability=ReliabilityPolicy.BEST_EFFORT if self.p("qos_reliability") == "best_effort"
                         else ReliabilityPolicy.RELIABLE)
        color = compat.Subscriber(self, Image, "color/image_raw", qos_profile=qos)
        depth = compat.Subscriber(self, Image, "depth/image_raw", qos_profile=qos)
        color.registerCallback(self._count_input, "color")
        depth.registerCallback(self._count_input, "depth")
        self._sync = compat.ApproximateTimeSynchronizer([color, depth], int(self.p("sync_queue_size")),
                                                        float(self.p("sync_slop")))
        self._sync.registerCallback(self._on_pair)
        self._subs = [color.sub, depth.sub]
        if self.p("use_camera_info"):
            self._subs.append(self.create_subscription(CameraInfo, "depth/camera_info",
                                                       self._on_camera_info, qos))
        with self._lock:
            self._stop = False
            self._pending.clear()
        self._worker = threading.Thread(target=self._worker_loop, name="m4sam-worker", daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stops input and the worker, then frees the model (GPU memory goes back)."""
        self._stop_io()
        ret = super().on_deactivate(state)
        self._free_model()
        return ret

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroys publishers and the reset service; frees the model if still held."""
        self._stop_io()
        self._destroy_outputs()
        self._free_model()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Releases everything whatever the state."""
        self._stop_io()
        self._destroy_outputs()
        self._free_model()
        return super().on_shutdown(state)

    def _stop_io(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs, self._sync = [], None
        with self._lock:
            self._stop = True
            self._pending.clear()
            self._lock.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        self._worker = None

    def _destroy_outputs(self) -> None:
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self._reset_srv is not None:
            self.destroy_service(self._reset_srv)
            self._reset_srv = None

    # ------------------------------------------------------------------------- callbacks
    def _count_input(self, msg: Any, which: str) -> None:
        if which == "color":
            self.stats.color_in += 1
        else:
            self.stats.depth_in += 1

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_pair(self, color: Image, depth: Image) -> None:
        """Sync callback: keep only the newest pair; a replaced one counts as dropped."""
        with self._lock:
            self.stats.pairs_in += 1
            if self._pending:
                self.stats.dropped += 1
            self._pending.append((color, depth))
            self._newest_pair_ns = compat.stamp_to_ns(color.header.stamp)
            self._lock.notify()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Forget the tracker's memory; the next pair re-initialises."""
        if self.predictor is None:
            response.success, response.message = False, "no model loaded (node not configured)"
            return response
        with self._lock:
            self._reset_requested = True
        response.success = True
        response.message = "memory will be cleared before the next pair"
        return response

    # ---------------------------------------------------------------------------- worker
    def _worker_loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stop:
                    self._lock.wait(0.5)
                if self._stop:
                    return
                color, depth = self._pending.popleft()
                self.stats.takes.append((compat.stamp_to_ns(color.header.stamp), self._newest_pair_ns))
                reset, self._reset_requested = self._reset_requested, False
            predictor = self.predictor
            if predictor is None:
                continue
            try:
                if reset:
                    predictor.reset()
                self._process(predictor, color, depth)
            except Exception as exc:  # noqa: BLE001 - bad input or a model error never kills the node
                self._reject("inference_error", f"{type(exc).__name__}: {exc}")

    def _reject(self, reason: str, detail: str) -> None:
        """Counts a skipped pair by reason and warns, at most once per warn_throttle per reason."""
        self.stats.rejected[reason] += 1
        now = time.monotonic()
        if now - self._last_warn.get(reason, -1e9) >= float(self.p("warn_throttle")):
            self._last_warn[reason] = now
            self.get_logger().warning(f"skipping pair ({reason}): {detail} "
                                      f"[{self.stats.rejected[reason]} so far]")

    def _decode(self, color: Image, depth: Image) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            return pipeline.decode_pair(color, depth, self._bridge)
        except pipeline.RejectedInput as exc:
            self._reject(exc.reason, exc.detail)
            return None

    def _process(self, predictor: Any, color: Image, depth: Image) -> None:
        decoded = self._decode(color, depth)
        if decoded is None:
            return
        rgb, d = decoded
        stamp_s = compat.stamp_to_ns(color.header.stamp) * 1e-9
        t0 = time.perf_counter()
        result = predictor.step(rgb, d, stamp=stamp_s)
        latency = (time.perf_counter() - t0) * 1e3
        if getattr(result, "reinitialized", False):
            self.stats.reinitialized += 1
        self._publish(result, rgb, d, color.header)
        age = (self.get_clock().now() - Time.from_msg(color.header.stamp)).nanoseconds * 1e-6
        st = self.stats
        st.processed += 1
        st.last_latency_ms, st.last_age_ms = latency, age
        st.latencies_ms.append(latency)
        st.ages_ms.append(age)

    def _wants(self, key: str, switch: str) -> bool:
        pub = self._pubs.get(key)
        return pub is not None and bool(self.p(switch)) and pub.get_subscription_count() > 0

    def _publish(self, result: Any, rgb: np.ndarray, depth: np.ndarray, header: Any) -> None:
        """Converts the result to every enabled output (shared with m4sam-bag), all with the colour
        image's header, and publishes them."""
        switches = {"mask": "publish_mask", "saliency": "publish_saliency", "overlay": "publish_overlay",
                    "detections": "publish_detections", "markers": "publish_markers", "points": "publish_points"}
        wanted = [key for key, switch in switches.items() if self._wants(key, switch)]
        info = self._camera_info
        if info is None and ("markers" in wanted or "points" in wanted) and "no_camera_info" not in self._said_once:
            self._said_once.add("no_camera_info")
            self.get_logger().info("no depth/camera_info received yet: ~/markers and ~/object_points wait for it")
        settings = pipeline.OutputSettings(
            overlay_alpha=float(self.p("overlay_alpha")), depth_scale=float(self.p("depth_scale")),
            max_depth=float(self.p("max_depth")), points_stride=int(self.p("points_stride")),
            marker_min_points=int(self.p("marker_min_points")), marker_lifetime=float(self.p("marker_lifetime")))
        outputs, problem = pipeline.result_messages(result, rgb, depth, header, info, settings, wanted)
        for key, msg in outputs.items():
            self._pubs[key].publish(msg)
        if problem is not None:
            self._reject(problem.reason, problem.detail)

    # ------------------------------------------------------------------------- diagnostics
    def model_state(self) -> str:
        """Lifecycle state label plus whether a model is held."""
        label = self._state_machine.current_state[1]
        return f"{label}, model {'loaded' if self.predictor is not None else 'not loaded'}"

    def _publish_diagnostics(self) -> None:
        st = self.stats
        now = time.monotonic()
        t_prev, c_prev, d_prev, p_prev, pr_prev = self._diag_prev
        dt = max(now - t_prev, 1e-6)
        self._diag_prev = (now, st.color_in, st.depth_in, st.pairs_in, st.processed)
        lat = list(st.latencies_ms)
        ages = list(st.ages_ms)
        values = {
            "color_rate_hz": (st.color_in - c_prev) / dt,
            "depth_rate_hz": (st.depth_in - d_prev) / dt,
            "input_pair_rate_hz": (st.pairs_in - p_prev) / dt,
            "processed_rate_hz": (st.processed - pr_prev) / dt,
            "pairs_in": st.pairs_in,
            "processed": st.processed,
            "dropped_pairs": st.dropped,
            "inference_latency_ms_last": st.last_latency_ms,
            "inference_latency_ms_mean": float(np.mean(lat)) if lat else float("nan"),
            "inference_latency_ms_max": float(np.max(lat)) if lat else float("nan"),
            "frame_age_at_publish_ms_last": st.last_age_ms,
            "frame_age_at_publish_ms_mean": float(np.mean(ages)) if ages else float("nan"),
            "reinitializations": st.reinitialized,
            "rejected_total": sum(st.rejected.values()),
        }
        values.update({f"rejected_{k}": v for k, v in sorted(st.rejected.items())})
        predictor = self.predictor
        if predictor is not None and hasattr(predictor, "state_nbytes"):
            try:
                values["tracker_state_bytes"] = int(predictor.state_nbytes())
            except Exception:  # noqa: BLE001 - diagnostics never fail
                pass
        active = self._state_machine.current_state[1] == "active"
        if not active:
            level, message = DiagnosticStatus.OK, f"not processing ({self.model_state()})"
        elif st.rejected.get("inference_error", 0) and values["processed_rate_hz"] == 0:
            level, message = DiagnosticStatus.ERROR, "inference failing"
        elif values["input_pair_rate_hz"] == 0:
            level, message = DiagnosticStatus.WARN, "no synchronised colour/depth pairs arriving"
        else:
            level, message = DiagnosticStatus.OK, "processing"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: pipeline", message=message,
                                  hardware_id=str(self.p("device")))
        status.values = [KeyValue(key="model_state", value=self.model_state())] + [
            KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in values.items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)


def main(args: list[str] | None = None) -> None:
    """Console script ``m4sam_node``: with autostart, configure+activate or exit non-zero."""
    rclpy.init(args=args)
    node = M4SamNode()
    code = 0
    try:
        if node.p("autostart"):
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("autostart: configure failed (see the error above); exiting")
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("autostart: activate failed; exiting")
                code = 1
        if code == 0:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._stop_io()
        node._free_model()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    sys.exit(code)


__all__ = ["PARAMS", "ConfigurationError", "M4SamNode", "check_param", "main"]


if __name__ == "__main__":
    main()

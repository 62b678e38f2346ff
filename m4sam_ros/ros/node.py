"""The ``m4sam`` lifecycle node: synchronised RGB-D in (raw or compressed); mask, saliency,
overlay, 2D and 3D detections with stable ids, 3D markers, object points and diagnostics out.

A thin shell over ``ros/pipeline.py`` (decode, result -> messages, shared with ``m4sam-bag``):
``inputs.RgbdInput`` pairs colour and depth (QoS from ``qos``, Image or CompressedImage from
``transport``), ``control`` applies ``~/enable`` and ``max_rate``, ``worker.NewestWorker`` runs the
predictor on the newest pair only, ``diagnostics`` says how it goes, ``params`` declares every
parameter and ``model_loader`` builds the model. Bad input is counted by reason and skipped,
never raised. The model lives from configure to cleanup; deactivate only pauses.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_srvs.srv import SetBool, Trigger
from visualization_msgs.msg import MarkerArray

from m4sam_ros.msgs.sync import Jump
from m4sam_ros.ros import (
    compat,
    control,
    diagnostics,
    inputs,
    messages,
    model_loader,
    pipeline,
    qos,
    transport,
)
from m4sam_ros.ros.diagnostics import Stats
from m4sam_ros.ros.params import (
    PARAMS,
    ConfigurationError,
    check_param,
    coerce_overrides,
    descriptor,
    help_text,
    type_problem,
)
from m4sam_ros.ros.spin import spin_until
from m4sam_ros.ros.worker import NewestWorker
from m4sam_ros.scene.tracking import OverlapTracker
from m4sam_ros.util.text import clip_line, quote

NODE_NAME = "m4sam"

#: output key -> (topic, message type, switch parameter); detections only with vision_msgs
OUTPUTS: dict[str, tuple[str, Any, str]] = {
    "mask": ("~/mask", Image, "publish_mask"),
    "saliency": ("~/saliency", Image, "publish_saliency"),
    "overlay": ("~/overlay", Image, "publish_overlay"),
    "overlay_compressed": ("~/overlay/compressed", CompressedImage, "publish_overlay_compressed"),
    "mask_compressed": ("~/mask/compressed", CompressedImage, "publish_mask_compressed"),
    "markers": ("~/markers", MarkerArray, "publish_markers"),
    "points": ("~/object_points", PointCloud2, "publish_points"),
    "detections": ("~/detections", compat.Detection2DArray, "publish_detections"),
    "detections_3d": ("~/detections_3d", compat.Detection3DArray,
                      "publish_detections_3d"),
}
#: outputs with their own rate limit parameter (Hz, 0 = every frame)
OUTPUT_RATE_PARAMS = {"overlay_compressed": "overlay_compressed_max_rate",
                      "mask_compressed": "mask_compressed_max_rate"}
#: the camera inputs by side (relative names; remap them like any topic)
INPUT_BASES = {"color": inputs.COLOR_TOPIC, "depth": inputs.DEPTH_TOPIC}


class M4SamNode(LifecycleNode):
    """Lifecycle node ``m4sam``; see the module docstring and config/m4sam.yaml."""

    def __init__(self, node_name: str = NODE_NAME, *, predictor_factory: Any = None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        coerced = coerce_overrides(self._parameter_overrides)
        for name, spec in PARAMS.items():
            self.declare_parameter(name, spec.default, descriptor(name, spec))
        if coerced:
            self.get_logger().info(f"integer value(s) taken as double: {', '.join(coerced)}")
        self.add_on_set_parameters_callback(self._wall_params(self._on_set_parameters))
        # rclpy's ChangeState handler raises RCLError on a transition the current state does not
        # have (id 3 while active, id 99): the exception leaves spin and ends the process
        self._rclpy_change_state = self._service_change_state.callback
        self._service_change_state.callback = self._on_change_state
        # predictor_factory(node) -> predictor: lets a test wrap the real predictor (e.g. slow it down)
        self._predictor_factory = predictor_factory
        self.predictor: Any = None
        self.device_used = "none"
        self.stats = Stats()
        self.input: inputs.RgbdInput | None = None
        self.qos_choice: qos.QosChoice | None = None
        self.streams: dict[str, transport.StreamChoice] | None = None
        self.control = control.Control()
        self.output_gates = control.OutputGates()
        self.tracker = OverlapTracker()  # one per node life: ids are never reused, even across cleanup
        self.worker = NewestWorker(self._process_pair, self._worker_error, self._on_take)
        self.shutdown_requested = threading.Event()
        self._newest_pair_ns: int | None = None
        self._inference_failed = False
        self._pubs: dict[str, Any] = {}
        self._reset_srv: Any = None
        self._enable_srv: Any = None
        self._qos_timer: Any = None
        self._last_warn: dict[str, float] = {}
        self._said_once: set[str] = set()
        self._bridge = compat.CvBridge()
        self._diag_window = diagnostics.new_window()
        self.diag = diagnostics.NodeDiagnostics(
            self, compat.diagnostic_updater, self.p, self._pipeline_status,
            lambda: self._state_machine.current_state[1] == "active")
        missing = [k for k, v in compat.BACKENDS.items() if v != "ros"]
        if missing:
            self.get_logger().info("using stand-ins for: " + ", ".join(
                f"{k} ({compat.BACKENDS[k]})" for k in missing))

    # ------------------------------------------------------------------------------- walls
    def _on_change_state(self, request: Any, response: Any) -> Any:
        """lifecycle ChangeState by id or label: a transition the current state does not offer is
        answered success=false with the reason logged (rclpy would raise and end the process);
        anything raised while transitioning is answered the same way."""
        response.success = False
        try:
            state = self._state_machine.current_state[1]
            offered = {tid: label for tid, label, *_ in self._state_machine.available_transitions}
            tid, label = int(request.transition.id), str(request.transition.label)
            if label:
                match = [i for i, name in offered.items() if name == label]
                if not match:
                    self._refuse_transition(f"transition label {quote(label)} is not available in state {state}",
                                            offered, f"{state}:{label[:16]}")
                    return response
                tid = match[0]
            elif tid not in offered:
                self._refuse_transition(f"transition id {tid} is not available in state {state}", offered,
                                        f"{state}:{tid}")
                return response
            request.transition.id, request.transition.label = tid, ""
            return self._rclpy_change_state(request, response)
        except Exception as exc:  # noqa: BLE001 - a service answers, it never ends the process
            self._callback_error("change_state", exc)
            response.success = False
            return response

    def _refuse_transition(self, why: str, offered: dict[int, str], key: str) -> None:
        self.stats.refused["bad_transition"] += 1
        self._throttled(f"bad_transition:{key}", clip_line(f"change_state refused: {why}; available: " + (", ".join(
            f"{i} ({name})" for i, name in sorted(offered.items())) or "none")))

    def _callback_error(self, where: str, exc: BaseException) -> None:
        """Something a callback did not expect: counted as ``callback_error`` and logged, throttled."""
        self.stats.refused["callback_error"] += 1
        self._throttled(f"callback_error:{where}", clip_line(
            f"{where} callback failed: {type(exc).__name__}: {exc} [{self.stats.refused['callback_error']} so far]"))

    def _wall_service(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """A service handler that always answers: an exception becomes success=false + its text."""
        @functools.wraps(handler)
        def wall(request: Any, response: Any) -> Any:
            try:
                return handler(request, response)
            except Exception as exc:  # noqa: BLE001
                self._callback_error(handler.__name__, exc)
                response.success = False
                response.message = clip_line(f"failed: {type(exc).__name__}: {exc}", 300)
                return response
        return wall

    def _wall_call(self, where: str, fn: Callable[..., None]) -> Callable[..., None]:
        """A timer or subscription callback that never raises into the executor."""
        @functools.wraps(fn)
        def wall(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001
                self._callback_error(where, exc)
        return wall

    def _wall_params(self, fn: Callable[[list[Parameter]], SetParametersResult]
                     ) -> Callable[[list[Parameter]], SetParametersResult]:
        """The parameter callback: an unexpected error refuses the change instead of raising."""
        @functools.wraps(fn)
        def wall(params: list[Parameter]) -> SetParametersResult:
            try:
                return fn(params)
            except Exception as exc:  # noqa: BLE001
                self._callback_error("set_parameters", exc)
                return SetParametersResult(successful=False, reason=clip_line(f"{type(exc).__name__}: {exc}", 300))
        return wall

    # ------------------------------------------------------------------------------ parameters
    def p(self, name: str) -> Any:
        """Current value of a declared parameter."""
        return self.get_parameter(name).value

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Rejects invalid values with a reason; hands accepted thresholds to the predictor."""
        for prm in params:
            if prm.type_ == Parameter.Type.NOT_SET:
                return SetParametersResult(successful=False, reason=f"{prm.name} cannot be undeclared")
            reason = type_problem(prm.name, prm) or check_param(prm.name, prm.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for prm in params:
            if prm.name in model_loader.PREDICTOR_THRESHOLDS and self.predictor is not None:
                model_loader.apply_threshold(self.predictor, prm.name, prm.value)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------- model
    def _resolve_weights(self) -> tuple[str, str, str | None]:
        return model_loader.resolve_weights(self.p)

    def _build_predictor(self) -> Any:
        """The StreamingPredictor the parameters describe (or the injected factory's)."""
        if self._predictor_factory is not None:
            predictor = self._predictor_factory(self)
            self.device_used = model_loader.predictor_device(predictor, str(self.p("device")))
            self.diag.set_device(self.device_used)
            return predictor
        predictor, device = model_loader.build_predictor(self.p)
        self.device_used = model_loader.predictor_device(predictor, device)
        self.diag.set_device(self.device_used)
        return predictor

    def _free_model(self) -> None:
        """Drops the predictor (and with it the model and its memory) and returns GPU memory."""
        self.predictor = None
        self.device_used = "none"
        self.diag.set_device(self.device_used)
        model_loader.release_memory()

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
            # what was built, not what was asked for
            model = (f"onnxruntime, {self.p('model_dir')}" if getattr(self.predictor, "backend", "torch") == "onnxruntime"
                     else f"torch, {self.p('model_config')}")
            self.get_logger().info(f"model ready in {time.monotonic() - t0:.1f} s "
                                   f"({model}, device {self.device_used}, output "
                                   f"{getattr(self.predictor, 'output', self.p('output'))})")
        except ConfigurationError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._free_model()
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # noqa: BLE001 - a transition reports, it does not raise
            self._free_model()
            if STOP_SIGNAL:  # a signal's _Stop that the model code swallowed or replaced: leave, not fail
                raise _Stop(STOP_SIGNAL[0]) from exc
            self.get_logger().error(f"configure failed building the model: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._pubs = {key: self.create_lifecycle_publisher(msg_type, topic, 10)
                      for key, (topic, msg_type, _) in OUTPUTS.items() if msg_type is not None}
        if "detections" not in self._pubs:
            self.get_logger().info("vision_msgs is not importable: ~/detections and ~/detections_3d are not "
                                   "published (install ros-$ROS_DISTRO-vision-msgs to get them)")
        self._reset_srv = self.create_service(Trigger, "~/reset", self._wall_service(self._on_reset))
        self._enable_srv = self.create_service(SetBool, "~/enable", self._wall_service(self._on_enable))
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribes (QoS matched to the publishers) and starts the worker; the model is kept
        from configure (built again only if something freed it)."""
        if self.predictor is None:
            try:
                self.predictor = self._build_predictor()
            except Exception as exc:  # noqa: BLE001
                self.get_logger().error(f"activate failed building the model: {exc}")
                return TransitionCallbackReturn.FAILURE
        self.diag.restart()
        self._subscribe()
        if self.p("qos_reliability") == "auto" or self.p("input_transport") == "auto":
            self._qos_timer = self.create_timer(1.0, self._wall_call("input_recheck", self._recheck_inputs))
        self.worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Pauses: input and the worker stop, the model stays (activate is quick again)."""
        self._stop_io()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroys publishers and the reset service and frees the model."""
        self._stop_io()
        self._destroy_outputs()
        self._free_model()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Releases everything whatever the state, and ends the process (``main`` waits on it)."""
        self._stop_io()
        self._destroy_outputs()
        self._free_model()
        self.shutdown_requested.set()
        return super().on_shutdown(state)

    # ------------------------------------------------------------------------------- input
    def _input_topics(self) -> list[str]:
        return [c.topic for c in self.streams.values()] if self.streams else list(INPUT_BASES.values())

    def _subscribe(self) -> None:
        self.streams = transport.choose_for_node(self, str(self.p("input_transport")), INPUT_BASES)
        setting = str(self.p("qos_reliability"))
        topics = self._input_topics()
        self.qos_choice = qos.choose(setting, qos.publisher_profiles(self, topics) if setting == "auto" else [])
        self.input = inputs.RgbdInput(
            self, reliability=self.qos_choice, qos_depth=int(self.p("qos_depth")),
            queue_size=int(self.p("sync_queue_size")), slop=float(self.p("sync_slop")),
            jump_s=float(self.p("sync_jump_reset")), use_camera_info=bool(self.p("use_camera_info")),
            on_pair=self._on_pair, on_reject=self._reject, on_jump=self._on_jump, on_message=self._count_input,
            streams=self.streams)
        self.get_logger().info(f"input QoS: {self.qos_choice.describe()}; inputs: "
                               + ", ".join(c.describe() for c in self.streams.values()))

    def _recheck_inputs(self) -> None:
        """While on auto: subscribe again when the published topic types (input_transport) or the
        publishers' reliability (qos_reliability) call for another choice."""
        current = self.input
        if current is None or self.streams is None:
            return
        if self.p("input_transport") == "auto" and transport.differs(
                self.streams, transport.choose_for_node(self, "auto", INPUT_BASES)):
            current.destroy()
            self._subscribe()
            return
        if self.p("qos_reliability") != "auto":
            return
        found = qos.publisher_profiles(self, self._input_topics())
        choice = qos.choose("auto", found)
        if found and choice.reliability != current.choice.reliability:
            current.destroy()
            self._subscribe()
        elif found and current.choice.publishers == 0:
            self.qos_choice = current.choice = choice  # best_effort was a guess; now it is the match

    def _stop_io(self) -> None:
        if self._qos_timer is not None:
            self.destroy_timer(self._qos_timer)
            self._qos_timer = None
        if self.input is not None:
            self.input.destroy()
            self.input = None
        self.worker.stop()

    def _destroy_outputs(self) -> None:
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        for srv in (self._reset_srv, self._enable_srv):
            if srv is not None:
                self.destroy_service(srv)
        self._reset_srv = self._enable_srv = None

    @property
    def _camera_info(self) -> Any:
        return self.input.camera_info if self.input is not None else None

    @property
    def _pending(self) -> Any:
        return [None] * self.worker.pending()

    def _count_input(self, which: str) -> None:
        if which == "color":
            self.stats.color_in += 1
        else:
            self.stats.depth_in += 1

    def _on_pair(self, color: Image, depth: Image) -> None:
        """Sync callback: hand the newest pair over; a replaced one counts as dropped."""
        self.stats.pairs_in += 1
        self.diag.tick_pair(str(color.header.frame_id))
        self._newest_pair_ns = compat.stamp_to_ns(color.header.stamp)
        skip = self.control.admit(time.monotonic(), float(self.p("max_rate")))
        if skip is not None:  # paused or over max_rate: skipped before any decoding
            setattr(self.stats, skip, getattr(self.stats, skip) + 1)
            return
        if self.worker.offer((color, depth, time.perf_counter())):  # pair-in time: the node's latency starts here
            self.stats.dropped += 1

    def _on_take(self, item: Any) -> None:
        self.stats.takes.append((compat.stamp_to_ns(item[0].header.stamp), self._newest_pair_ns))

    def _on_jump(self, jump: Jump) -> None:
        """A looping bag or a restarted camera: the pairing restarted, the tracker starts afresh."""
        self.stats.stamp_jumps += 1
        self.worker.request_reset()
        self._throttled("stamp_jump", jump.describe() + "; tracker reset", info=True)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Forget the tracker's memory; the next pair re-initialises."""
        if self.predictor is None:
            response.success, response.message = False, "no model loaded (node not configured)"
            return response
        self.worker.request_reset()
        if self.input is not None:
            self.input.reset()
        response.success = True
        response.message = "memory will be cleared before the next pair"
        return response

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        """Pause (data: false) or resume (data: true) processing; the model stays loaded. On resume
        the tracker re-initialises (the scene may have changed while paused): new object ids."""
        changed = self.control.set_enabled(bool(request.data))
        if request.data and changed:
            self.worker.request_reset()
        state = self._state_machine.current_state[1]
        response.success = True
        response.message = (f"processing {'enabled' if request.data else 'paused'}"
                            f"{'' if changed else ' (already)'}; node {state}, {self.model_state().split(', ')[1]}")
        self.get_logger().info(response.message)
        return response

    # ---------------------------------------------------------------------------- worker
    def _process_pair(self, item: tuple[Image, Image, float], reset: bool) -> None:
        predictor = self.predictor
        if predictor is None:
            return
        color, depth, t_in = item
        clock = diagnostics.StageClock(t_in)  # where a frame's time goes: queue, decode, inference, encode, publish
        try:
            max_pixels = int(self.p("max_image_pixels"))
            color, depth = pipeline.decompress_pair(color, depth, max_pixels)
            rgb, d = pipeline.decode_pair(color, depth, self._bridge, max_pixels)
        except pipeline.RejectedInput as exc:
            if reset:
                self.worker.request_reset()  # the reset is owed to the next good pair
            self._reject(exc.reason, exc.detail)
            return
        self.stats.valid_depth_fraction = pipeline.valid_depth_fraction(d)
        clock.lap("decode")
        stamp_ns = compat.stamp_to_ns(color.header.stamp)
        t0 = time.perf_counter()
        try:
            if reset:  # ~/reset, a stamp jump, a resume: the tracker's ids end with the predictor's memory
                predictor.reset()
                self.tracker.reset()
            result = predictor.step(rgb, d, stamp=stamp_ns * 1e-9)
            clock.lap("inference")
        except Exception as exc:  # noqa: BLE001 - a model error is counted, never kills the node
            if self.worker.stopping:
                return
            self._inference_failed = True
            self._reject("inference_error", f"{type(exc).__name__}: {exc}")
            return
        self._inference_failed = False
        latency = (time.perf_counter() - t0) * 1e3
        if getattr(result, "reinitialized", False):
            self.stats.reinitialized += 1
        if getattr(result, "blanked", False):  # the no-object gate: counted, and blank unless it fell back
            self.stats.no_object += 1
            self.stats.blanked += not getattr(result, "fallback", False)
        counted: list[bool] = []

        def count() -> None:  # once per frame: as ~/mask goes out (first), else when every output has
            if counted:
                return
            counted.append(True)
            now_ns = self.get_clock().now().nanoseconds
            age = (now_ns - stamp_ns) * 1e-6  # plain ints: any stamp works
            self.diag.tick_frame(stamp_ns * 1e-9, (time.time_ns() - now_ns) * 1e-9)
            st = self.stats
            st.processed += 1
            st.last_mask_monotonic = time.monotonic()
            st.last_latency_ms, st.last_age_ms = latency, age
            st.latencies_ms.append(latency)
            st.ages_ms.append(age)

        try:
            self._publish(result, rgb, d, str(depth.encoding), color.header, clock, on_mask=count)
        except Exception as exc:  # noqa: BLE001
            if self.worker.stopping or not self.context.ok():
                return  # shutting down: the publishers are going away, nothing is wrong
            self._reject("publish_error", f"{type(exc).__name__}: {exc}")
            return
        count()
        self.stats.timings.add(clock)

    def _worker_error(self, exc: BaseException) -> None:
        """Anything the pair's own handlers did not expect: counted, the worker goes on."""
        self._reject("worker_error", f"{type(exc).__name__}: {exc}")

    def _reject(self, reason: str, detail: str) -> None:
        """Counts a skipped pair (or message) by reason and warns, throttled per reason."""
        self.stats.rejected[reason] += 1
        self._throttled(reason, clip_line(f"skipping pair ({reason}): {detail} [{self.stats.rejected[reason]} so far]"))

    def _throttled(self, key: str, text: str, info: bool = False) -> None:
        now = time.monotonic()
        if now - self._last_warn.get(key, -1e9) < float(self.p("warn_throttle")) or not self.context.ok():
            return
        if len(self._last_warn) > 512:  # keys from client input (transition labels) stay bounded
            self._last_warn.clear()
        self._last_warn[key] = now
        try:
            (self.get_logger().info if info else self.get_logger().warning)(text)
        except Exception:  # noqa: BLE001 - logging during shutdown must not raise
            pass

    def _publish(self, result: Any, rgb: Any, depth: Any, depth_encoding: str, header: Any,
                 clock: diagnostics.StageClock | None = None, on_mask: Any = None) -> None:
        """Converts the result to every enabled output (shared with m4sam-bag), all with the colour
        image's header and the tracker's ids, and publishes them; ``~/mask`` first (then
        ``on_mask()``), so its latency does not wait for the overlay and the 3D outputs."""
        stamp_s = compat.stamp_to_ns(header.stamp) * 1e-9
        wanted = [key for key, pub in self._pubs.items()  # nobody listening: not built, not encoded
                  if bool(self.p(OUTPUTS[key][2])) and pub.get_subscription_count() > 0
                  and (key not in OUTPUT_RATE_PARAMS
                       or self.output_gates.admit(key, stamp_s, float(self.p(OUTPUT_RATE_PARAMS[key]))))]
        if "mask" in wanted:  # first
            self._pubs["mask"].publish(messages.mask_msg(result.mask, header))
            wanted.remove("mask")
            if clock is not None:
                clock.lap("mask")
            if on_mask is not None:
                on_mask()
        info = self._camera_info
        if info is None and {"markers", "points", "detections_3d"} & set(wanted) and "no_camera_info" not in self._said_once:
            self._said_once.add("no_camera_info")
            self.get_logger().info("no depth/camera_info received yet: ~/markers, ~/detections_3d and "
                                   "~/object_points wait for it")
        settings = pipeline.OutputSettings(
            overlay_alpha=float(self.p("overlay_alpha")), depth_scale=float(self.p("depth_scale")),
            max_depth=float(self.p("max_depth")), points_stride=int(self.p("points_stride")),
            marker_min_points=int(self.p("marker_min_points")), marker_lifetime=float(self.p("marker_lifetime")),
            overlay_jpeg_quality=int(self.p("overlay_jpeg_quality")), mask_png_level=int(self.p("mask_png_level")))
        frame = pipeline.frame_outputs(result, rgb, depth, depth_encoding, header, info, settings, wanted,
                                       self.tracker)
        if clock is not None:
            clock.lap("encode")
        for key, msg in frame.messages.items():
            self._pubs[key].publish(msg)
        if clock is not None:
            clock.lap("publish")
        self.stats.last_ids = tuple(frame.ids)
        self.stats.boxes3d_skipped.update(frame.skipped)
        self.stats.encodes.update(frame.encoded)
        if "detections_3d" in frame.messages:
            self.stats.detections_3d += len(frame.messages["detections_3d"].detections)
        for problem in frame.problems:
            self._reject(problem.reason, problem.detail)

    # ------------------------------------------------------------------------- diagnostics
    def model_state(self) -> str:
        """Lifecycle state label plus whether a model is held."""
        label = self._state_machine.current_state[1]
        return f"{label}, model {'loaded on ' + self.device_used if self.predictor is not None else 'not loaded'}"

    def _pipeline_status(self, stat: Any) -> Any:
        """Fills the ``pipeline`` status (diagnostic_updater task) from this period's counters."""
        predictor, state_bytes = self.predictor, None
        if predictor is not None and hasattr(predictor, "state_nbytes"):
            try:
                state_bytes = int(predictor.state_nbytes())
            except Exception:  # noqa: BLE001 - diagnostics never fail
                pass
        active = self._state_machine.current_state[1] == "active"
        extra = {"model_state": self.model_state(), "device": self.device_used,
                 "input_qos": self.qos_choice.describe() if self.qos_choice is not None else "not subscribed",
                 "input_transport": "; ".join(f"{s}: {c.describe()}" for s, c in self.streams.items())
                 if self.streams and self.input is not None else "not subscribed",
                 "enabled": str(self.control.enabled).lower(),
                 "max_rate_hz": f"{float(self.p('max_rate')):.3f}" + (" (no cap)" if self.p("max_rate") <= 0 else "")}
        level, message, values, self._diag_window = diagnostics.pipeline_status(
            self.stats, self._diag_window, time.monotonic(), active, self.model_state(), extra,
            self._inference_failed, state_bytes, enabled=self.control.enabled)
        stat.summary(level, message)
        for key, value in values:
            stat.add(key, value)
        return stat


def build_parser() -> argparse.ArgumentParser:
    """``m4sam_node --help``: the node's usage and every parameter (no model is loaded)."""
    return argparse.ArgumentParser(
        prog="m4sam_node", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="m4sam_node [-h] [--ros-args -p NAME:=VALUE ... --params-file FILE ...]",
        description=__doc__.split("\n\n")[0].replace("\n", " ")
        + "\n\nros2 run m4sam_ros m4sam_node --ros-args --params-file config/m4sam.yaml -p device:=cpu"
        "\nros2 launch m4sam_ros m4sam.launch.py checkpoint:=model.pt device:=cuda",
        epilog=help_text())


class _Stop(BaseException):
    """Raised in the main thread by SIGTERM (and SIGINT): leave cleanly."""


#: the signal that asked main() to stop, once one has. The handler raises _Stop wherever the main
#: thread is; code it lands in (omegaconf during hydra's compose, seen under load) can swallow it
#: or replace it with an error of its own, so configure checks this too and leaves as asked.
STOP_SIGNAL: list[str] = []


def main(args: list[str] | None = None) -> None:
    """Console script ``m4sam_node``: with autostart, configure+activate or exit non-zero.

    rclpy's own signal handler is off: SIGINT/SIGTERM stop the spin loop, the worker finishes the
    pair in hand, and only then the context goes (no "context is invalid" from a late publish).
    A signal during startup (model loading) exits 0 with one line."""
    from rclpy.signals import SignalHandlerOptions
    from rclpy.utilities import remove_ros_args

    # -h/--help before --ros-args: print the parameters and exit 0, before rclpy or a model starts
    build_parser().parse_known_args(remove_ros_args(sys.argv if args is None else args)[1:])

    def _raise(signum: int, _frame: Any) -> None:
        STOP_SIGNAL.append(signal.Signals(signum).name)
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGTERM, _raise)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node: M4SamNode | None = None
    code = 0
    try:
        node = M4SamNode()
        if node.p("autostart"):
            configured = node.trigger_configure()
            if STOP_SIGNAL:
                raise _Stop(STOP_SIGNAL[0])
            if configured != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("autostart: configure failed (see the error above); exiting")
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("autostart: activate failed; exiting")
                code = 1
        if code == 0:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            spin_until(executor, node.shutdown_requested, node._callback_error)
            node.get_logger().info("shutdown transition: exiting")
    except (_Stop, KeyboardInterrupt) as exc:
        print(f"m4sam_node: {exc or 'SIGINT'} received, shutting down", file=sys.stderr)
    except ExternalShutdownException:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None:
            node._stop_io()
            node._free_model()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    sys.exit(code)


__all__ = ["PARAMS", "ConfigurationError", "M4SamNode", "check_param", "main"]


if __name__ == "__main__":
    main()

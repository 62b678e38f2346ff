"""The node's parameters: one table (default, description, range, read-only), the descriptors
rclpy gets, and the checks a set-parameters callback applies. config/m4sam.yaml lists the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter

from m4sam_ros.util.assets import ASSETS_DIR, DEMO_MODEL  # noqa: F401 - re-exported

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
    "sam2_checkpoint": ParamSpec("", "Official SAM2.1 weights (sam2.1_hiera_*.pt); needed by a checkpoint "
                                 "that holds only its trained parts (it records which file; the demo model and "
                                 "`m4sam-train --export-full` checkpoints need none).", True),
    "device": ParamSpec("auto", "Torch device: auto (cuda when available), cpu, cuda or cuda:N.", True),
    "backend": ParamSpec("torch", "Inference backend: torch (PyTorch on 'device') or onnxruntime (the "
                         "ONNX graphs in 'model_dir', written by m4sam-export; needs neither torch nor sam2; "
                         "'device' cuda picks ONNX Runtime's CUDA execution provider).", True,
                         choices=("torch", "onnxruntime")),
    "model_dir": ParamSpec("", "Folder written by `m4sam-export --checkpoint CK --out DIR` (backend "
                           "onnxruntime only).", True),
    "image_size": ParamSpec(0, "Model input resolution in pixels (multiple of 32); 0 = the config's.",
                            True, (0, 2048, 32)),
    "autostart": ParamSpec(True, "Configure and activate at start, so a plain `ros2 run` works.", True),
    # input: read-only, subscriptions are made on activate
    "qos_reliability": ParamSpec("auto", "Input QoS reliability. auto: match the publishers (reliable "
                                 "when they all offer it, best_effort when one is best-effort; checked "
                                 "again when publishers appear). best_effort or reliable: force it.", True,
                                 choices=("auto", "best_effort", "reliable")),
    "input_transport": ParamSpec("auto", "Image or CompressedImage inputs. auto: per input, the topic "
                                 "that is published (color/image_raw as Image, else color/image_raw/compressed; "
                                 "depth/image_raw, else depth/image_raw/compressedDepth); checked again while "
                                 "nothing publishes. raw or compressed: force it.", True,
                                 choices=("auto", "raw", "compressed")),
    "qos_depth": ParamSpec(5, "Input QoS history depth.", True, (1, 100, 1)),
    "sync_queue_size": ParamSpec(10, "ApproximateTimeSynchronizer queue size per input.", True, (1, 100, 1)),
    "sync_slop": ParamSpec(0.02, "ApproximateTimeSynchronizer slop in seconds (max colour/depth stamp "
                           "difference); ~15-20 ms pairs 30 Hz frames uniquely.", True, (0.0, 1.0)),
    "sync_jump_reset": ParamSpec(1.0, "A colour or depth stamp this many seconds older than its stream's "
                                 "newest (a looping bag, a camera restart) restarts the pairing and the "
                                 "tracker.", True, (0.05, 3600.0)),
    "max_image_pixels": ParamSpec(4096 * 2304, "Largest colour or depth image (width x height) accepted; "
                                  "larger ones are rejected before decoding (default fits 4K).",
                                  False, (1, 2**31 - 1, 1)),
    "use_camera_info": ParamSpec(True, "Subscribe to depth/camera_info (needed for markers and points).", True),
    "diagnostics_period": ParamSpec(1.0, "Seconds between /diagnostics messages (diagnostic_updater's "
                                    "period; diagnostic_updater.period, if given, takes precedence).", True,
                                    (0.1, 60.0)),
    "expected_input_rate": ParamSpec(0.0, "Expected colour/depth pair rate in Hz for the 'input rate' "
                                     "diagnostic; 0 = the camera's own rate, measured over its first "
                                     "input_rate_learn_time seconds.", False, (0.0, 1000.0)),
    "input_rate_learn_time": ParamSpec(3.0, "Seconds of pairs over which the expected input rate is measured "
                                       "(when expected_input_rate is 0), from the first pair after activate.",
                                       True, (0.2, 600.0)),
    "input_rate_tolerance": ParamSpec(0.3, "The 'input rate' diagnostic WARNs outside expected x (1 -/+ this).",
                                      False, (0.0, 1.0)),
    "input_rate_window": ParamSpec(5, "Diagnostics periods over which the input rate is measured "
                                   "(diagnostic_updater FrequencyStatus window).", True, (1, 100, 1)),
    "frame_age_max": ParamSpec(1.0, "The 'frame age' diagnostic is ERROR when an output leaves more than this "
                               "many seconds after its input's stamp (diagnostic_updater TimeStampStatus).",
                               False, (0.0, 3600.0)),
    "frame_age_min": ParamSpec(-1.0, "... or when a stamp lies more than -this seconds in the future (a camera "
                               "clock ahead of this machine's).", False, (-3600.0, 0.0)),
    # runtime: thresholds and switches
    "max_rate": ParamSpec(0.0, "Most pairs processed per second (0 = as fast as pairs come); the rest "
                          "are skipped before decoding. Pause/resume with the ~/enable service.", False,
                          (0.0, 1000.0)),
    "mask_threshold": ParamSpec(0.5, "Saliency above which a pixel is in the mask.", False, (0.0, 1.0)),
    "output": ParamSpec("auto", "Map behind ~/saliency and ~/mask: memory (SAM2's memory branch, the paper's "
                        "output), coarse (the per-frame GMLFF head), combined (their mean), or auto (the branch the "
                        "checkpoint recommends, else memory).", False,
                        choices=("auto", "memory", "coarse", "combined")),
    "no_object_fallback": ParamSpec(True, "On a frame SAM2's no-object gate blanks (object score <= 0: an all-black "
                                    "memory map), use the coarse map instead when it is confident "
                                    "(fallback_confidence). false: keep SAM2's blank."),
    "fallback_confidence": ParamSpec(0.5, "Peak coarse-map probability above which no_object_fallback uses it.",
                                     False, (0.0, 1.0)),
    "publish_mask": ParamSpec(True, "Publish ~/mask (mono8 0/255)."),
    "publish_saliency": ParamSpec(True, "Publish ~/saliency (32FC1 in [0,1])."),
    "publish_overlay": ParamSpec(True, "Publish ~/overlay (rgb8 tint + boxes)."),
    "publish_overlay_compressed": ParamSpec(True, "Publish ~/overlay/compressed (image_transport compressed: "
                                            "JPEG); encoded only while subscribed."),
    "publish_mask_compressed": ParamSpec(True, "Publish ~/mask/compressed (image_transport compressed: PNG, "
                                         "lossless); encoded only while subscribed."),
    "overlay_jpeg_quality": ParamSpec(80, "JPEG quality of ~/overlay/compressed.", False, (1, 100, 1)),
    "mask_png_level": ParamSpec(3, "PNG compression level of ~/mask/compressed (0 fast .. 9 small).",
                                False, (0, 9, 1)),
    "overlay_compressed_max_rate": ParamSpec(0.0, "Most ~/overlay/compressed messages per second, by input "
                                             "stamp (0 = every processed frame).", False, (0.0, 1000.0)),
    "mask_compressed_max_rate": ParamSpec(0.0, "Most ~/mask/compressed messages per second, by input stamp "
                                          "(0 = every processed frame).", False, (0.0, 1000.0)),
    "publish_detections": ParamSpec(True, "Publish ~/detections (vision_msgs/Detection2DArray)."),
    "publish_detections_3d": ParamSpec(True, "Publish ~/detections_3d (vision_msgs/Detection3DArray; "
                                       "needs camera_info)."),
    "publish_markers": ParamSpec(True, "Publish ~/markers (3D boxes with id labels; needs camera_info)."),
    "publish_points": ParamSpec(False, "Publish ~/object_points (PointCloud2 of the salient pixels)."),
    "overlay_alpha": ParamSpec(0.45, "Opacity of the mask tint in ~/overlay.", False, (0.0, 1.0)),
    "depth_scale": ParamSpec(0.001, "Metres per unit of 16UC1/mono16 depth (RealSense: 0.001); applies to "
                             "markers, detections_3d and object_points alike (32FC1 is metres).",
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
PREDICTOR_THRESHOLDS: dict[str, str] = {"mask_threshold": "mask_threshold", "output": "output",
                                        "no_object_fallback": "no_object_fallback",
                                        "fallback_confidence": "fallback_confidence"}


def help_text(width: int = 100) -> str:
    """Every parameter with its default, range or choices and description: what
    ``m4sam_node --help`` prints (the same table the node declares, so the two cannot drift)."""
    import textwrap

    lines = ["parameters (--ros-args -p name:=value, or --params-file config/m4sam.yaml):"]
    for name, spec in PARAMS.items():
        default = f'"{spec.default}"' if isinstance(spec.default, str) else str(spec.default).lower() \
            if isinstance(spec.default, bool) else str(spec.default)
        extra = []
        if spec.choices:
            extra.append("one of " + "|".join(spec.choices))
        if spec.range is not None:
            extra.append(f"range [{spec.range[0]}, {spec.range[1]}]")
        extra.append("read-only: set before configure" if spec.read_only else "settable at run time")
        lines.append(f"  {name} (default {default}; {'; '.join(extra)})")
        lines += textwrap.wrap(spec.description, width, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return "\n".join(lines)


def descriptor(name: str, spec: ParamSpec) -> ParameterDescriptor:
    """The ParameterDescriptor rclpy shows for ``name`` (description, range, read-only)."""
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
        if not lo <= value <= hi:  # NaN fails every comparison, so it is refused here too
            return f"{name}={value}: must be within [{lo}, {hi}]"
    return None


def coerce_overrides(overrides: dict[str, Parameter]) -> list[str]:
    """Integers given for double parameters (``-p max_depth:=5``) become doubles, in place, before
    rclpy declares them (it would refuse the node with a type error); the names changed."""
    changed = []
    for name, prm in list(overrides.items()):
        spec = PARAMS.get(name)
        if spec is not None and isinstance(spec.default, float) and prm.type_ == Parameter.Type.INTEGER:
            overrides[name] = Parameter(name, Parameter.Type.DOUBLE, float(prm.value))
            changed.append(name)
    return changed


def type_problem(name: str, prm: Parameter) -> str | None:
    """A clear reason for a value of the wrong type (rclpy's own says only the enum names)."""
    spec = PARAMS.get(name)
    if spec is None:
        return None
    want = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
            str: Parameter.Type.STRING}[type(spec.default)]
    if prm.type_ == want:
        return None
    hint = f" (write {float(prm.value)!r})" if want == Parameter.Type.DOUBLE and prm.type_ == Parameter.Type.INTEGER else ""
    return f"{name}={prm.value!r}: must be a {type(spec.default).__name__}{hint}"

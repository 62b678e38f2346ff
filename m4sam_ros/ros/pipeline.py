"""The message side of one frame, shared by the live node and the rosbag tool.

``decode_pair``: colour + depth Image messages -> (rgb uint8 HxWx3, depth as sent), or
:class:`RejectedInput` with the reason key the node counts. ``result_messages``: a SaliencyResult
-> every enabled output message, all carrying the colour image's header. The node and
``m4sam-bag`` both call these, so a bag is decoded and converted exactly as live topics are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from m4sam_ros.msgs.compressed import CompressedImageError, decompress
from m4sam_ros.msgs.image_codec import COLOR_ENCODINGS, DEPTH_ENCODINGS, to_rgb
from m4sam_ros.ros import compat, detections3d, messages
from m4sam_ros.scene import geometry

ALL_OUTPUTS = ("mask", "saliency", "overlay", "detections", "markers", "points")
#: outputs that carry the tracker's object ids (built by ros/detections3d.py)
LABELLED_OUTPUTS = ("detections", "detections_3d", "markers")

#: Default largest image (width x height) decoded: 4096 x 2304 fits every 4K format.
MAX_IMAGE_PIXELS = 4096 * 2304


class RejectedInput(ValueError):
    """A pair that cannot be processed; ``reason`` is the counter key, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class OutputSettings:
    """The publishing parameters (the node's ``config/m4sam.yaml`` entries of the same names)."""

    overlay_alpha: float = 0.45
    depth_scale: float = 0.001
    max_depth: float = 10.0
    points_stride: int = 2
    marker_min_points: int = 20
    marker_lifetime: float = 0.5


def is_compressed(msg: Any) -> bool:
    """A sensor_msgs/CompressedImage (rclpy's or rosbags'): it has ``format``, an Image has not."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def decompress_pair(color: Any, depth: Any, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[Any, Any]:
    """Compressed inputs (image_transport's ``compressed`` colour, ``compressedDepth`` depth) as the
    raw Images ``decode_pair`` takes (same header); raw ones pass through. A message that cannot
    be decoded raises RejectedInput with the raw path's reason keys (``color_unsupported_encoding``,
    ``depth_zero_size``, ``decode_error``, ...) plus ``<side>_unsupported_format`` (also for data
    of another codec than the format names). An image over ``max_pixels`` (read from its JPEG
    frame header, PNG IHDR or RVL size words, as tolerantly as the decoders read them) is refused
    as ``too_large`` before decoding: a small JPEG can claim 65535 x 65535 pixels and make the
    decoder allocate 12 GB (msgs/compressed.py)."""
    out = []
    for side, msg in (("color", color), ("depth", depth)):
        if not is_compressed(msg):
            out.append(msg)
            continue
        try:  # the size is read from the payload's header and checked before anything is decoded
            out.append(decompress(msg, side, messages.rclpy_image, max_pixels))
        except CompressedImageError as exc:
            raise RejectedInput(exc.reason, exc.detail) from exc
    return out[0], out[1]


def decode_pair(color: Any, depth: Any, bridge: Any, max_pixels: int = MAX_IMAGE_PIXELS
                ) -> tuple[np.ndarray, np.ndarray]:
    """Validates and converts one colour/depth pair; raises RejectedInput naming the problem.

    Images over ``max_pixels`` are refused before any decoding (a 4096x4096 pair would otherwise
    hold ~200 MB in the decoder and the model's buffers)."""
    for name, msg in (("color", color), ("depth", depth)):
        pixels = int(msg.width) * int(msg.height)
        if pixels > max_pixels:
            raise RejectedInput("too_large", f"{name} image {msg.width}x{msg.height} = {pixels} pixels is over "
                                f"max_image_pixels = {max_pixels}: lower the camera resolution or raise "
                                "max_image_pixels")
    for name, msg, allowed in (("color", color, COLOR_ENCODINGS), ("depth", depth, DEPTH_ENCODINGS)):
        problem = compat.image_problem(msg, allowed)
        if problem:
            raise RejectedInput(f"{name}_{problem}", f"{name} image {msg.width}x{msg.height} encoding "
                                f"{msg.encoding!r} step {msg.step} data {len(msg.data)} B; accepted "
                                f"encodings: {', '.join(allowed)}")
    try:
        rgb = to_rgb(bridge.imgmsg_to_cv2(color, "passthrough"), str(color.encoding))
        d = bridge.imgmsg_to_cv2(depth, "passthrough")
    except Exception as exc:  # noqa: BLE001 - cv_bridge's errors differ between versions
        raise RejectedInput("decode_error", str(exc)) from exc
    if rgb.shape[:2] != d.shape[:2]:
        raise RejectedInput("size_mismatch", f"colour {rgb.shape[1]}x{rgb.shape[0]} vs depth {d.shape[1]}x"
                            f"{d.shape[0]}: depth must be registered to colour (RealSense: "
                            "align_depth.enable:=true)")
    if valid_depth_fraction(d) == 0:
        raise RejectedInput("invalid_depth", "no valid depth pixel in the frame")
    return rgb, d


def valid_depth_fraction(depth: np.ndarray) -> float:
    """Share of pixels with a usable depth (16UC1: > 0; 32FC1: finite and > 0)."""
    d = np.asarray(depth)
    valid = (d > 0) if np.issubdtype(d.dtype, np.integer) else (np.isfinite(d) & (d > 0))
    return float(valid.mean()) if valid.size else 0.0


def result_messages(result: Any, rgb: np.ndarray, depth: np.ndarray, header: Any, camera_info: Any | None,
                    settings: OutputSettings, wanted: Collection[str] = ALL_OUTPUTS
                    ) -> tuple[dict[str, Any], RejectedInput | None]:
    """Every wanted output of one result, keyed like the node's topics (``mask`` -> ``~/mask``).

    Points need ``camera_info``; without it they are left out. A camera_info that cannot describe
    the image leaves them out too and is returned as the problem (the 2D outputs are still good).
    The markers carry object ids and come from ``detections3d.labelled_outputs``."""
    out: dict[str, Any] = {}
    if "mask" in wanted:
        out["mask"] = messages.mask_msg(result.mask, header)
    if "saliency" in wanted:
        out["saliency"] = messages.saliency_msg(result.saliency, header)
    if "overlay" in wanted:
        out["overlay"] = messages.overlay_msg(rgb, result.mask, result.boxes, header, settings.overlay_alpha)
    if "points" not in wanted or camera_info is None:
        return out, None
    try:
        intr = geometry.Intrinsics.from_k(camera_info.k, camera_info.width, camera_info.height).scaled_to(
            depth.shape[1], depth.shape[0])
    except ValueError as exc:
        return out, RejectedInput("bad_camera_info", str(exc))
    depth_m = geometry.depth_to_metres(depth, settings.depth_scale)
    pts = geometry.backproject(result.mask, depth_m, intr, settings.points_stride, settings.max_depth)
    out["points"] = messages.points_msg(pts, header)
    return out, None


@dataclass
class FrameOutputs:
    """Every message of one processed frame, plus what went wrong on the way."""

    messages: dict[str, Any]
    ids: list[int]
    problems: list[RejectedInput] = field(default_factory=list)  # outputs left out this frame, and why
    skipped: Counter = field(default_factory=Counter)            # 3D boxes left out, by reason


def frame_outputs(result: Any, rgb: np.ndarray, depth: np.ndarray, depth_encoding: str, header: Any,
                  camera_info: Any | None, settings: OutputSettings, wanted: Collection[str], tracker: Any
                  ) -> FrameOutputs:
    """``result_messages`` for the plain outputs, ``detections3d.labelled_outputs`` for the ones
    with object ids (``detections``, ``detections_3d``, ``markers``: one id per salient component,
    the same in all three). The tracker is updated on every frame, wanted or not, so ids stay stable
    while nobody listens and are right when somebody starts to."""
    plain = [k for k in wanted if k not in LABELLED_OUTPUTS]
    labelled = [k for k in LABELLED_OUTPUTS if k in wanted]
    out, problem = result_messages(result, rgb, depth, header, camera_info, settings, plain)
    lab = detections3d.labelled_outputs(result, depth, depth_encoding, header, camera_info, tracker, labelled,
                                        max_depth=settings.max_depth, min_points=settings.marker_min_points,
                                        stride=settings.points_stride, marker_lifetime=settings.marker_lifetime)
    out.update(lab.messages)
    frame = FrameOutputs(out, list(lab.ids), skipped=Counter(lab.skipped))
    if problem is not None:
        frame.problems.append(problem)
    if lab.problem is not None and (problem is None or problem.reason != lab.problem.reason):
        frame.problems.append(RejectedInput(lab.problem.reason, lab.problem.detail))
    return frame

"""The message side of one frame, shared by the live node and the rosbag tool.

``decode_pair``: colour + depth Image messages -> (rgb uint8 HxWx3, depth as sent), or
:class:`RejectedInput` with the reason key the node counts. ``frame_outputs``: a SaliencyResult
-> every wanted output message, all carrying the colour image's header. The node and
``m4sam-bag`` both call these, so a bag is decoded and converted exactly as live topics are.

The 3D outputs (``~/object_points``, ``~/detections_3d``, ``~/markers``) share one reading of the
frame (``scene_inputs``): depth in metres with ``depth_scale`` applied once, and one camera model
(``compat.camera_model``: image_geometry's, with distortion, binning and ROI) scaled to the depth
image; so an object has the same extent in all three.
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
from m4sam_ros.scene.camera import CameraModel, CameraModelError

ALL_OUTPUTS = ("mask", "saliency", "overlay", "detections", "markers", "points")
#: image_transport ``compressed`` outputs (``~/overlay/compressed`` JPEG, ``~/mask/compressed`` PNG)
COMPRESSED_OUTPUTS = ("overlay_compressed", "mask_compressed")
#: outputs that need depth in metres and the camera model
SCENE_OUTPUTS = ("points", "detections_3d", "markers")
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
    overlay_jpeg_quality: int = 80
    mask_png_level: int = 3


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


def image_outputs(result: Any, rgb: np.ndarray, header: Any, settings: OutputSettings, wanted: Collection[str]
                  ) -> dict[str, Any]:
    """The 2D outputs of one result: ``mask``, ``saliency``, ``overlay`` and the compressed
    ``overlay_compressed`` (JPEG) / ``mask_compressed`` (PNG). An output not in ``wanted`` costs
    nothing (the overlay is rendered once for both its raw and compressed forms)."""
    out: dict[str, Any] = {}
    if "mask" in wanted:
        out["mask"] = messages.mask_msg(result.mask, header)
    if "saliency" in wanted:
        out["saliency"] = messages.saliency_msg(result.saliency, header)
    if "overlay" in wanted or "overlay_compressed" in wanted:
        overlay = messages.render_overlay(rgb, result.mask, result.boxes, alpha=settings.overlay_alpha)
        if "overlay" in wanted:
            out["overlay"] = messages.image_msg(overlay, "rgb8", header)
        if "overlay_compressed" in wanted:
            out["overlay_compressed"] = messages.compressed_msg(overlay, "rgb8", "jpeg", header,
                                                                quality=settings.overlay_jpeg_quality)
    if "mask_compressed" in wanted:
        out["mask_compressed"] = messages.compressed_msg(result.mask, "mono8", "png", header,
                                                         png_level=settings.mask_png_level)
    return out


def scene_inputs(depth: np.ndarray, depth_encoding: str, camera_info: Any, settings: OutputSettings
                 ) -> tuple[np.ndarray, CameraModel]:
    """(depth in metres, camera model for this depth image): ``depth_scale`` applied here, once;
    a camera_info of another resolution scaled per axis. Raises RejectedInput
    (``bad_camera_info``, ``depth_units``) naming the problem."""
    h, w = np.asarray(depth).shape[:2]
    try:
        camera = compat.camera_model(camera_info).scaled_to(w, h)
        depth_m = geometry.depth_in_metres(depth, depth_encoding, settings.depth_scale)
    except (CameraModelError, geometry.DepthUnitsError) as exc:
        raise RejectedInput(exc.reason, exc.detail) from exc
    return depth_m, camera


@dataclass
class FrameOutputs:
    """Every message of one processed frame, plus what went wrong on the way."""

    messages: dict[str, Any]
    ids: list[int]
    problems: list[RejectedInput] = field(default_factory=list)  # outputs left out this frame, and why
    skipped: Counter = field(default_factory=Counter)            # 3D boxes left out, by reason
    encoded: Counter = field(default_factory=Counter)            # compressed outputs encoded
    boxes3d: list = field(default_factory=list)                  # the 3D boxes behind markers/detections_3d


def frame_outputs(result: Any, rgb: np.ndarray, depth: np.ndarray, depth_encoding: str, header: Any,
                  camera_info: Any | None, settings: OutputSettings, wanted: Collection[str], tracker: Any
                  ) -> FrameOutputs:
    """Every wanted output of one frame, keyed like the node's topics (``mask`` -> ``~/mask``,
    ``overlay_compressed`` -> ``~/overlay/compressed``, ``points`` -> ``~/object_points``).

    2D outputs from ``image_outputs``; the 3D ones need ``camera_info`` (left out without it) and
    read depth and camera once (``scene_inputs``; a camera_info or depth that cannot be used
    leaves them out and is returned as a problem, the 2D outputs still go). The id-carrying ones
    (``detections``, ``detections_3d``, ``markers``) come from ``detections3d.labelled_outputs``;
    the tracker is updated on every frame, wanted or not, so ids stay stable while nobody
    listens and are right when somebody starts to."""
    wanted = set(wanted)
    out = image_outputs(result, rgb, header, settings, wanted)
    frame = FrameOutputs(out, [])
    frame.encoded.update(k for k in COMPRESSED_OUTPUTS if k in out)
    depth_m = camera = None
    if camera_info is not None and wanted & set(SCENE_OUTPUTS):
        try:
            depth_m, camera = scene_inputs(depth, depth_encoding, camera_info, settings)
        except RejectedInput as exc:
            frame.problems.append(exc)
    if "points" in wanted and camera is not None:
        pts = geometry.backproject(result.mask, depth_m, camera, settings.points_stride, settings.max_depth)
        out["points"] = messages.points_msg(pts, header)
    labelled = [k for k in LABELLED_OUTPUTS if k in wanted]
    lab = detections3d.labelled_outputs(result, depth_m, camera, header, tracker, labelled,
                                        max_depth=settings.max_depth, min_points=settings.marker_min_points,
                                        stride=settings.points_stride, marker_lifetime=settings.marker_lifetime)
    out.update(lab.messages)
    frame.ids = list(lab.ids)
    frame.skipped.update(lab.skipped)
    frame.boxes3d = lab.boxes3d
    return frame

"""The one importer of message_filters, sensor_msgs_py, vision_msgs, image_geometry and
diagnostic_updater, and the image bridge.

On a ROS 2 install the real message_filters, sensor_msgs_py and vision_msgs are used. Where they
are missing (a pip-only install) an API-compatible stand-in takes their place: ``Subscriber`` /
``ApproximateTimeSynchronizer`` on ``m4sam_ros.msgs.sync.ApproximateTimePairer`` (message_filters' own
policy), ``create_cloud_xyz32`` on numpy, ``camera_model`` on ``scene.camera.CameraModel``'s own
copy of image_geometry's CameraInfo arithmetic, ``diagnostic_updater`` on
``ros/diagnostic_standins.py`` (its Updater, FrequencyStatus, TimeStampStatus); without
vision_msgs ``HAVE_VISION_MSGS`` is False and no Detection2DArray is published. Tests hold each
stand-in to the real package's numbers. ``BACKENDS`` says which one each resolved to, for the log.

Images never go through cv_bridge: ``CvBridge`` here is always the project's own numpy codec
(``m4sam_ros.msgs.image_codec``). apt's cv_bridge needs its compiled helper built against numpy 1.x
(every call fails next to numpy 2) and decodes rows padded by a non-multiple of the pixel size as
a skewed image; the codec has neither problem and is checked against cv_bridge's Python core.

Forcing the stand-ins (tests, or to rule a ROS package out): ``M4SAM_ROS_STANDINS=all`` or a comma
list of ``message_filters,sensor_msgs_py,vision_msgs,image_geometry,diagnostic_updater`` in the environment before this module is
imported. The stand-in implementations are always importable under ``StandIn*`` names, so a test
can run both side by side on the same messages.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sensor_msgs.msg import Image, PointCloud2, PointField

from m4sam_ros.msgs.image_codec import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    image_to_numpy,
    numpy_to_image,
    to_rgb,
)
from m4sam_ros.msgs.sync import ApproximateTimePairer
from m4sam_ros.ros import diagnostic_standins
from m4sam_ros.scene.camera import CameraModel, CameraModelError

#: The optional ROS packages this module resolves, in order.
OPTIONAL_PACKAGES = ("message_filters", "sensor_msgs_py", "vision_msgs", "image_geometry", "diagnostic_updater")
#: Environment variable that forces stand-ins: "all", or a comma list of OPTIONAL_PACKAGES.
STANDINS_ENV = "M4SAM_ROS_STANDINS"

#: Which implementation each optional package resolved to: "ros" (the real package), "stand-in",
#: or for vision_msgs "missing" (nothing to stand in: ~/detections is then not published).
BACKENDS: dict[str, str] = {}


def forced_standins(value: str | None = None) -> frozenset[str]:
    """The packages for which the stand-in is forced (``value`` defaults to $M4SAM_ROS_STANDINS)."""
    raw = os.environ.get(STANDINS_ENV, "") if value is None else value
    names = {n.strip() for n in raw.split(",") if n.strip()}
    if "all" in names:
        return frozenset(OPTIONAL_PACKAGES)
    unknown = names - set(OPTIONAL_PACKAGES)
    if unknown:
        raise ValueError(f"{STANDINS_ENV}={raw!r}: unknown package(s) {', '.join(sorted(unknown))}; "
                         f"use 'all' or a comma list of {', '.join(OPTIONAL_PACKAGES)}")
    return frozenset(names)


_FORCED = forced_standins()


# ------------------------------------------------------------------------------------ image bridge
class CvBridgeError(TypeError):
    """Raised when a message cannot be converted; cv_bridge's own exception type is a TypeError."""


class CvBridge:
    """cv_bridge.CvBridge's image half, on image_codec (all accepted encodings, row padding, byte
    order). Deliberately not the real cv_bridge: see the module docstring."""

    def imgmsg_to_cv2(self, img_msg: Any, desired_encoding: str = "passthrough") -> np.ndarray:
        """Image -> array; ``desired_encoding`` 'passthrough', 'rgb8', 'bgr8', 'mono8' or the message's own."""
        try:
            arr = image_to_numpy(img_msg)
        except ImageDecodeError as exc:
            raise CvBridgeError(str(exc)) from exc
        enc = str(img_msg.encoding)
        if desired_encoding in ("passthrough", enc):
            return arr
        try:
            if desired_encoding == "rgb8":
                return to_rgb(arr, enc)
            if desired_encoding == "bgr8":
                return np.ascontiguousarray(to_rgb(arr, enc)[..., ::-1])
            if desired_encoding == "mono8" and enc in ("rgb8", "bgr8", "rgba8", "bgra8"):
                rgb = to_rgb(arr, enc).astype(np.float32)
                return np.round(rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
        except ImageDecodeError as exc:
            raise CvBridgeError(str(exc)) from exc
        raise CvBridgeError(f"conversion {enc} -> {desired_encoding} is not supported; decode with "
                            "'passthrough' and convert the array")

    def cv2_to_imgmsg(self, cvim: np.ndarray, encoding: str = "passthrough", header: Any = None) -> Image:
        """Array -> Image; 'passthrough' picks the encoding from dtype and channel count."""
        if encoding == "passthrough":
            encoding = _encoding_for(np.asarray(cvim))
        try:
            msg = numpy_to_image(cvim, encoding, factory=_image_factory)
        except ImageDecodeError as exc:
            raise CvBridgeError(str(exc)) from exc
        if header is not None:
            msg.header = header
        return msg


def _image_factory(**fields: Any) -> Image:
    data = fields.pop("data")
    msg = Image(**fields)
    msg.data = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    return msg


def _encoding_for(arr: np.ndarray) -> str:
    chans = 1 if arr.ndim == 2 else arr.shape[2]
    table = {(np.dtype(np.uint8), 1): "mono8", (np.dtype(np.uint8), 3): "bgr8",
             (np.dtype(np.uint8), 4): "bgra8", (np.dtype(np.uint16), 1): "16UC1",
             (np.dtype(np.float32), 1): "32FC1"}
    try:
        return table[(arr.dtype, chans)]
    except KeyError:
        raise CvBridgeError(f"no passthrough encoding for dtype {arr.dtype} with {chans} channel(s)") from None


# --------------------------------------------------------------------- message_filters stand-ins
class _StandInFilter:
    """message_filters.SimpleFilter: callbacks registered by id, each called with the output."""

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callable[..., None], tuple[Any, ...]]] = {}

    def registerCallback(self, cb: Callable[..., None], *args: Any) -> int:  # noqa: N802 - real API
        """Adds a callback (called with the output, then ``args``); returns its connection id."""
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg: Any) -> None:  # noqa: N802 - real API
        """Hands ``msg`` (one message, or one per input) to every registered callback."""
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class StandInSubscriber(_StandInFilter):
    """message_filters.Subscriber: a subscription whose messages go to registered callbacks."""

    def __init__(self, node: Any, msg_type: Any, topic: str, **kwargs: Any) -> None:
        super().__init__()
        self.node = node
        self.topic = topic
        kwargs.setdefault("qos_profile", 10)
        self.sub = node.create_subscription(msg_type, topic, self.callback, **kwargs)

    def callback(self, msg: Any) -> None:
        """The subscription's callback."""
        self.signalMessage(msg)

    def getTopic(self) -> str:  # noqa: N802 - real API
        """The topic name as given."""
        return self.topic

    def __getattr__(self, key: str) -> Any:
        if key == "sub":  # not yet set: avoid recursion during __init__
            raise AttributeError(key)
        return getattr(self.sub, key)


class StandInApproximateTimeSynchronizer(_StandInFilter):
    """message_filters.ApproximateTimeSynchronizer(fs, queue_size, slop) on ApproximateTimePairer."""

    def __init__(self, fs: Sequence[Any], queue_size: int, slop: float,
                 allow_headerless: bool = False) -> None:
        super().__init__()
        self.queue_size = int(queue_size)
        self.slop = float(slop)
        self.allow_headerless = allow_headerless
        self.pairer = ApproximateTimePairer(len(fs), queue_size, slop, callback=self.signalMessage)
        self.input_connections = [f.registerCallback(self.add, None, i) for i, f in enumerate(fs)]

    def add(self, msg: Any, my_queue: Any = None, my_queue_index: int | None = None) -> None:
        """Offers one message of input ``my_queue_index``; headerless messages are ignored."""
        stamp = getattr(getattr(msg, "header", None), "stamp", None)
        if stamp is None:
            return
        self.pairer.add(int(my_queue_index or 0), stamp_to_ns(stamp), msg)


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rclpy or rosbags) -> integer nanoseconds."""
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


Subscriber: Any
ApproximateTimeSynchronizer: Any
try:
    if "message_filters" in _FORCED:
        raise ImportError("stand-in forced by " + STANDINS_ENV)
    from message_filters import ApproximateTimeSynchronizer, Subscriber

    BACKENDS["message_filters"] = "ros"
except ImportError:
    Subscriber, ApproximateTimeSynchronizer = StandInSubscriber, StandInApproximateTimeSynchronizer
    BACKENDS["message_filters"] = "stand-in"


# ---------------------------------------------------------------------------------- sensor_msgs_py
def standin_create_cloud_xyz32(header: Any, points: Any) -> PointCloud2:
    """sensor_msgs_py.point_cloud2.create_cloud_xyz32: an unorganised x, y, z float32 cloud."""
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float32).reshape(-1, 3))
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate("xyz")]
    cloud = PointCloud2(header=header, height=1, width=len(pts), fields=fields,
                        is_bigendian=sys.byteorder == "big", point_step=12,
                        row_step=12 * len(pts), is_dense=bool(np.isfinite(pts).all()))
    cloud.data = pts.tobytes()
    return cloud


create_cloud_xyz32: Callable[[Any, Any], PointCloud2]
try:
    if "sensor_msgs_py" in _FORCED:
        raise ImportError("stand-in forced by " + STANDINS_ENV)
    from sensor_msgs_py.point_cloud2 import create_cloud_xyz32

    BACKENDS["sensor_msgs_py"] = "ros"
except ImportError:
    create_cloud_xyz32 = standin_create_cloud_xyz32
    BACKENDS["sensor_msgs_py"] = "stand-in"


def cloud_xyz(cloud: Any) -> np.ndarray:
    """The x, y, z columns of a PointCloud2 as (N, 3) float32 (reader for tests and tools)."""
    names = {f.name: f.offset for f in cloud.fields}
    order = ">" if cloud.is_bigendian else "<"
    dtype = np.dtype({"names": ["x", "y", "z"], "formats": [order + "f4"] * 3,
                      "offsets": [names["x"], names["y"], names["z"]], "itemsize": cloud.point_step})
    rec = np.frombuffer(bytes(cloud.data), dtype=dtype, count=cloud.width * cloud.height)
    return np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float32)


# -------------------------------------------------------------------------------------- vision_msgs
try:
    if "vision_msgs" in _FORCED:
        raise ImportError("stand-in forced by " + STANDINS_ENV)
    from vision_msgs.msg import (
        BoundingBox2D,
        Detection2D,
        Detection2DArray,
        Detection3D,
        Detection3DArray,
        ObjectHypothesisWithPose,
    )

    HAVE_VISION_MSGS = True
    BACKENDS["vision_msgs"] = "ros"
except ImportError:
    BoundingBox2D = Detection2D = Detection2DArray = Detection3D = Detection3DArray = None  # type: ignore[misc]
    ObjectHypothesisWithPose = None  # type: ignore[misc]
    HAVE_VISION_MSGS = False
    BACKENDS["vision_msgs"] = "missing"


# ----------------------------------------------------------------------------------- image_geometry
PinholeCameraModel: Any
try:
    if "image_geometry" in _FORCED:
        raise ImportError("stand-in forced by " + STANDINS_ENV)
    from image_geometry import PinholeCameraModel

    BACKENDS["image_geometry"] = "ros"
except ImportError:
    PinholeCameraModel = None
    BACKENDS["image_geometry"] = "stand-in"


def standin_camera_model(info: Any) -> CameraModel:
    """CameraModel from CameraInfo by this project's numpy copy of fromCameraInfo."""
    return CameraModel.from_camera_info(info)


def ros_camera_model(info: Any) -> CameraModel:
    """CameraModel from CameraInfo through the real image_geometry.PinholeCameraModel (binning
    and ROI applied by it); an all-zero P is taken as [K | 0] of the adjusted K."""
    if PinholeCameraModel is None:
        raise ImportError("image_geometry is not importable")
    model = PinholeCameraModel()
    model.fromCameraInfo(info)
    k = np.asarray(model.intrinsicMatrix(), np.float64)
    p = np.asarray(model.projectionMatrix(), np.float64)
    if not np.asarray(model.fullProjectionMatrix()).any():
        p = np.concatenate([k, np.zeros((3, 1))], axis=1)
    d = model.distortionCoeffs()
    roi = model.raw_roi
    width, height = int(roi.width) // model.binning_x, int(roi.height) // model.binning_y
    return CameraModel.from_matrices(k, [] if d is None else np.asarray(d).reshape(-1), model.rotationMatrix(), p,
                                     width, height, str(info.distortion_model), str(model.tfFrame() or ""))


_LAST_CAMERA: list[tuple[tuple, CameraModel]] = []  # (info key, model): one entry, replaced whole


def _info_key(info: Any) -> tuple:
    roi = info.roi
    return (tuple(float(v) for v in info.k), tuple(float(v) for v in info.d), tuple(float(v) for v in info.r),
            tuple(float(v) for v in info.p), int(info.width), int(info.height), int(info.binning_x),
            int(info.binning_y), int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height),
            str(info.distortion_model), str(getattr(getattr(info, "header", None), "frame_id", "")))


def camera_model(info: Any) -> CameraModel:
    """The camera model of a CameraInfo (rclpy's or rosbags'), by image_geometry when importable.
    The last one is kept, so a static camera_info is parsed (and its undistortion grid built)
    once. Raises ``scene.camera.CameraModelError`` (reason ``bad_camera_info``) naming the problem."""
    key = _info_key(info)
    last = _LAST_CAMERA[0] if _LAST_CAMERA else None
    if last is None or last[0] != key:
        build = ros_camera_model if PinholeCameraModel is not None else standin_camera_model
        try:
            model = build(info)
        except CameraModelError:
            raise
        except (ValueError, TypeError, IndexError) as exc:  # a malformed message (wrong K length, ...)
            raise CameraModelError(f"{type(exc).__name__}: {exc}; K must have 9 entries, P 12, R 9") from exc
        last = (key, model)
        _LAST_CAMERA[:] = [last]
    return last[1]


# ------------------------------------------------------------------------------- diagnostic_updater
diagnostic_updater: Any
try:
    if "diagnostic_updater" in _FORCED:
        raise ImportError("stand-in forced by " + STANDINS_ENV)
    import diagnostic_updater

    BACKENDS["diagnostic_updater"] = "ros"
except ImportError:
    diagnostic_updater = diagnostic_standins
    BACKENDS["diagnostic_updater"] = "stand-in"


# ------------------------------------------------------------------------------ input validation
def image_problem(msg: Any, allowed: Sequence[str] = SUPPORTED_ENCODINGS) -> str | None:
    """Why an Image message cannot be used (a short reason key), or None when it decodes.

    The keys are the node's rejection counters: unsupported_encoding, zero_size, bad_step,
    bad_data_length. Checked here so that the real cv_bridge and the stand-in reject alike.
    """
    enc = str(msg.encoding)
    if enc not in allowed:
        return "unsupported_encoding"
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        return "zero_size"
    _, _, nbytes = _pixel_layout(enc)
    if step < w * nbytes:
        return "bad_step"
    if len(msg.data) != step * h:
        return "bad_data_length"
    return None


def _pixel_layout(encoding: str) -> tuple[str, int, int]:
    table = {"rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4),
             "mono8": ("u1", 1), "mono16": ("u2", 1), "16UC1": ("u2", 1), "32FC1": ("f4", 1)}
    kind, chans = table[encoding]
    return kind, chans, chans * np.dtype(kind).itemsize


__all__ = [
    "BACKENDS", "HAVE_VISION_MSGS", "CameraModel", "PinholeCameraModel", "camera_model", "diagnostic_updater",
    "ros_camera_model", "standin_camera_model", "OPTIONAL_PACKAGES", "STANDINS_ENV", "ApproximateTimeSynchronizer",
    "BoundingBox2D", "CvBridge", "CvBridgeError", "Detection2D", "Detection2DArray", "Detection3D",
    "Detection3DArray",
    "ObjectHypothesisWithPose", "StandInApproximateTimeSynchronizer", "StandInSubscriber", "Subscriber",
    "cloud_xyz", "create_cloud_xyz32", "forced_standins", "image_problem", "standin_create_cloud_xyz32",
    "stamp_to_ns",
]

"""sensor_msgs/Image <-> numpy without cv_bridge, for any object with the Image fields.

Works on rclpy messages and rosbags messages alike (duck-typed on ``height``, ``width``,
``encoding``, ``is_bigendian``, ``step``, ``data``). Encoding facts come from rosbags-image's
table; unlike ``rosbags.image.image_to_cvimage`` this honours row padding (``step``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from rosbags.image.image import ImageFormatError, to_cvtype

#: Encodings RealSense and REP 118 use; the node accepts exactly these.
SUPPORTED_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "32FC1")
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


class ImageDecodeError(ValueError):
    """An Image message that cannot be turned into an array; the message says why."""


def _layout(encoding: str) -> tuple[np.dtype, int]:
    if encoding not in SUPPORTED_ENCODINGS:
        raise ImageDecodeError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    try:
        _, _, typestr, nchan = to_cvtype(encoding)
    except ImageFormatError as exc:  # pragma: no cover - table and list agree
        raise ImageDecodeError(str(exc)) from exc
    return np.dtype(typestr), nchan


def image_to_numpy(msg: Any) -> np.ndarray:
    """Returns an (H, W) or (H, W, C) array that owns its data, in the message's own channel order."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    dtype, nchan = _layout(str(msg.encoding))
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"zero-size image ({width}x{height})")
    row_bytes = width * nchan * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} is shorter than a row ({width} px x {nchan * dtype.itemsize} B = {row_bytes} B)")
    data = msg.data
    buf = data if isinstance(data, (bytes, bytearray, memoryview, np.ndarray)) else bytes(data)
    flat = np.frombuffer(buf, dtype=np.uint8)
    if flat.size != step * height:
        raise ImageDecodeError(f"data length {flat.size} != step*height = {step}*{height} = {step * height}")
    rows = flat.reshape(height, step)[:, :row_bytes]
    be = bool(msg.is_bigendian)
    arr = np.ascontiguousarray(rows).view(dtype.newbyteorder(">" if be else "<"))
    arr = arr.astype(dtype.newbyteorder("="), copy=True) if dtype.itemsize > 1 else arr.copy()
    return arr.reshape(height, width) if nchan == 1 else arr.reshape(height, width, nchan)


def to_rgb(arr: np.ndarray, encoding: str) -> np.ndarray:
    """A colour image of any supported colour encoding as uint8 HxWx3 RGB."""
    if encoding == "rgb8":
        return arr
    if encoding == "bgr8":
        return np.ascontiguousarray(arr[..., ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(arr[..., :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(arr[..., 2::-1])
    if encoding == "mono8":
        return np.repeat(arr[..., None], 3, axis=2)
    raise ImageDecodeError(f"{encoding!r} is not a colour encoding; expected one of {', '.join(COLOR_ENCODINGS)}")


def numpy_to_image(arr: np.ndarray, encoding: str, factory: Callable[..., Any] | None = None,
                   header: Any = None) -> Any:
    """Builds an Image (``factory(**fields)``, e.g. rclpy's ``sensor_msgs.msg.Image`` or a rosbags
    class) from an array; returns the fields as a dict when no factory is given."""
    dtype, nchan = _layout(encoding)
    arr = np.asarray(arr)
    expect_ndim = 2 if nchan == 1 else 3
    if arr.ndim != expect_ndim or (nchan > 1 and arr.shape[2] != nchan):
        raise ImageDecodeError(f"array of shape {arr.shape} does not fit encoding {encoding!r} ({nchan} channel(s))")
    if arr.dtype != dtype:
        raise ImageDecodeError(f"array dtype {arr.dtype} does not fit encoding {encoding!r} ({dtype})")
    h, w = arr.shape[:2]
    fields = {
        "height": h, "width": w, "encoding": encoding,
        "is_bigendian": sys.byteorder == "big" and dtype.itemsize > 1,
        "step": w * nchan * dtype.itemsize,
        "data": np.ascontiguousarray(arr).view(np.uint8).reshape(-1),
    }
    if header is not None:
        fields["header"] = header
    return factory(**fields) if factory is not None else fields

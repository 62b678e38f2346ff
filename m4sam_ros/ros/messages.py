"""A SaliencyResult (plus the frame it came from) -> ROS messages. No decisions, only conversion.

Every message carries the header it is given: the node passes the colour image's header, so
outputs line up with their input in RViz, TF and ``message_filters`` downstream. Image builders
take a ``factory`` so the bag tool can build rosbags' Image class instead of rclpy's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from m4sam_ros.msgs.compressed import encode_color
from m4sam_ros.msgs.image_codec import numpy_to_image
from m4sam_ros.ros import compat
from m4sam_ros.viz.visualize import render_overlay

__all__ = ["compressed_msg", "image_msg", "mask_msg", "overlay_msg", "points_msg", "rclpy_image",
           "render_overlay", "saliency_msg"]


def rclpy_image(**fields: Any) -> Image:
    """Factory for ``numpy_to_image``: rclpy's Image with ``data`` set as bytes (fast path)."""
    data = fields.pop("data")
    msg = Image(**fields)
    msg.data = np.ascontiguousarray(data).tobytes() if isinstance(data, np.ndarray) else bytes(data)
    return msg


def image_msg(arr: np.ndarray, encoding: str, header: Any,
              factory: Callable[..., Any] = rclpy_image) -> Any:
    """An Image of ``arr`` in ``encoding`` with ``header``."""
    return numpy_to_image(arr, encoding, factory=factory, header=header)


def mask_msg(mask: np.ndarray, header: Any, factory: Callable[..., Any] = rclpy_image) -> Any:
    """``~/mask``: mono8, 0 background / 255 salient."""
    m = np.asarray(mask)
    if m.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 {{0,255}}, got {m.dtype}")
    return image_msg(m, "mono8", header, factory)


def saliency_msg(saliency: np.ndarray, header: Any, factory: Callable[..., Any] = rclpy_image) -> Any:
    """``~/saliency``: 32FC1 in [0, 1]."""
    return image_msg(np.asarray(saliency, dtype=np.float32), "32FC1", header, factory)


def overlay_msg(rgb: np.ndarray, mask: np.ndarray, boxes: Sequence[Any], header: Any, alpha: float = 0.45,
                factory: Callable[..., Any] = rclpy_image) -> Any:
    """``~/overlay``: rgb8 tint of the mask plus the 2D boxes and their scores."""
    return image_msg(render_overlay(rgb, mask, boxes, alpha=alpha), "rgb8", header, factory)


def compressed_msg(arr: np.ndarray, encoding: str, codec: str, header: Any, quality: int = 80,
                   png_level: int = 3) -> CompressedImage:
    """image_transport's ``compressed`` message of an rgb8 or mono8 array: ``format`` as
    compressed_image_transport writes it (``rgb8; jpeg compressed bgr8``, ``mono8; png compressed ``)
    so ``republish``, RViz and Foxglove decode it; ``data`` the JPEG/PNG file."""
    fmt, data = encode_color(arr, encoding, codec, quality=quality, png_level=png_level)
    msg = CompressedImage(header=header, format=fmt)
    msg.data = data
    return msg


def points_msg(points: np.ndarray, header: Any) -> PointCloud2:
    """``~/object_points``: the salient pixels as an x, y, z float32 cloud (camera frame)."""
    return compat.create_cloud_xyz32(header, np.asarray(points, dtype=np.float32).reshape(-1, 3))

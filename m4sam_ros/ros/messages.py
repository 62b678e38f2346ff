"""A SaliencyResult (plus the frame it came from) -> ROS messages. No decisions, only conversion.

Every message carries the header it is given: the node passes the colour image's header, so
outputs line up with their input in RViz, TF and ``message_filters`` downstream. Image builders
take a ``factory`` so the bag tool can build rosbags' Image class instead of rclpy's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from m4sam_ros.geometry import Box3D
from m4sam_ros.image_codec import numpy_to_image
from m4sam_ros.ros import compat
from m4sam_ros.visualize import DEFAULT_COLOR, render_overlay


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


def markers_msg(boxes3d: Sequence[Box3D], header: Any, lifetime_s: float = 0.5,
                color: Sequence[int] = DEFAULT_COLOR, alpha: float = 0.4, ns: str = "m4sam") -> MarkerArray:
    """``~/markers``: DELETEALL (so boxes of the previous frame vanish), then one CUBE per box."""
    arr = MarkerArray()
    arr.markers.append(Marker(header=header, ns=ns, action=Marker.DELETEALL))
    sec = int(lifetime_s)
    life = Duration(sec=sec, nanosec=int(round((lifetime_s - sec) * 1e9)))
    rgba = ColorRGBA(r=color[0] / 255.0, g=color[1] / 255.0, b=color[2] / 255.0, a=float(alpha))
    for i, b in enumerate(boxes3d):
        m = Marker(header=header, ns=ns, id=i, type=Marker.CUBE, action=Marker.ADD, lifetime=life,
                   color=rgba, frame_locked=False)
        m.pose = Pose(position=Point(x=b.center[0], y=b.center[1], z=b.center[2]),
                      orientation=Quaternion(w=1.0))
        m.scale = Vector3(x=b.size[0], y=b.size[1], z=b.size[2])
        arr.markers.append(m)
    return arr


def points_msg(points: np.ndarray, header: Any) -> PointCloud2:
    """``~/object_points``: the salient pixels as an x, y, z float32 cloud (camera frame)."""
    return compat.create_cloud_xyz32(header, np.asarray(points, dtype=np.float32).reshape(-1, 3))

"""Labelled outputs: Detection3DArray, Detection2DArray and markers that share one id per object.

``labelled_outputs`` is the one call the node and ``m4sam-bag`` make per processed frame: it
assigns stable ids (``m4sam_ros.scene.tracking``), computes one 3D box per salient component
(``m4sam_ros.scene.boxes3d``) and builds ``~/detections`` (vision_msgs 4.x Detection2DArray),
``~/detections_3d`` (Detection3DArray) and ``~/markers`` (MarkerArray: a CUBE and a TEXT label per
box whose marker ``id`` is the object id), every message with the colour image's header and the
same id string in ``Detection2D.id``, ``Detection3D.id`` and the marker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

# vision_msgs 4.x (rosidl-generated, from a ROS install) or None: compat decides, so that
# M4SAM_ROS_STANDINS=vision_msgs takes this module down the same path as a pip-only install
from m4sam_ros.ros.compat import (
    HAVE_VISION_MSGS,
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    ObjectHypothesisWithPose,
)
from m4sam_ros.scene.boxes3d import Box3DDetection, boxes_3d
from m4sam_ros.scene.camera import CameraModel
from m4sam_ros.scene.tracking import OverlapTracker
from m4sam_ros.viz.visualize import DEFAULT_COLOR

#: class_id of every detection: the model finds "the salient object", it has no classes.
CLASS_ID = "salient"
DETECTIONS_3D_TYPE = "vision_msgs/msg/Detection3DArray"


def _hypothesis(score: float, pose: Pose | None = None) -> Any:
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = CLASS_ID
    hyp.hypothesis.score = float(score)
    if pose is not None:
        hyp.pose.pose = pose
    return hyp


def _pose(center: Sequence[float]) -> Pose:
    return Pose(position=Point(x=float(center[0]), y=float(center[1]), z=float(center[2])),
                orientation=Quaternion(w=1.0))


def detection3d_array(dets: Sequence[Box3DDetection], ids: Sequence[int | str], header: Any) -> Any:
    """Detection3DArray: per box ``id`` (string), ``bbox`` (centre pose, size), one result with
    class_id ``salient``, the score and the centre as its pose. Needs vision_msgs."""
    if not HAVE_VISION_MSGS:
        raise ImportError("vision_msgs is not installed: Detection3DArray cannot be built")
    if len(dets) != len(ids):
        raise ValueError(f"{len(dets)} boxes but {len(ids)} ids")
    out = Detection3DArray(header=header)
    for d, oid in zip(dets, ids, strict=True):
        det = Detection3D(header=header, id=str(oid))
        det.bbox.center = _pose(d.center)
        det.bbox.size = Vector3(x=float(d.size[0]), y=float(d.size[1]), z=float(d.size[2]))
        det.results.append(_hypothesis(d.score, _pose(d.center)))
        out.detections.append(det)
    return out


def detection2d_array(boxes: Sequence[Any], ids: Sequence[int | str], header: Any) -> Any:
    """Detection2DArray of predictor boxes (x1, y1 exclusive) with the tracker's ids. Needs vision_msgs."""
    if not HAVE_VISION_MSGS:
        raise ImportError("vision_msgs is not installed: Detection2DArray cannot be built")
    if len(boxes) != len(ids):
        raise ValueError(f"{len(boxes)} boxes but {len(ids)} ids")
    out = Detection2DArray(header=header)
    for b, oid in zip(boxes, ids, strict=True):
        det = Detection2D(header=header, id=str(oid))
        det.bbox.center.position.x = (float(b.x0) + float(b.x1)) / 2
        det.bbox.center.position.y = (float(b.y0) + float(b.y1)) / 2
        det.bbox.size_x = float(b.x1) - float(b.x0)
        det.bbox.size_y = float(b.y1) - float(b.y0)
        det.results.append(_hypothesis(b.score))
        out.detections.append(det)
    return out


def markers_with_ids(dets: Sequence[Box3DDetection], ids: Sequence[int], header: Any, lifetime_s: float = 0.5,
                     color: Sequence[int] = DEFAULT_COLOR, alpha: float = 0.4, ns: str = "m4sam") -> MarkerArray:
    """DELETEALL, then per box a CUBE (marker id = object id) and a TEXT_VIEW_FACING label
    ``id <n>`` above it (namespace ``<ns>_labels``), so RViz shows the same id as the detections."""
    arr = MarkerArray()
    arr.markers.append(Marker(header=header, ns=ns, action=Marker.DELETEALL))
    sec = int(lifetime_s)
    life = Duration(sec=sec, nanosec=int(round((lifetime_s - sec) * 1e9)))
    rgba = ColorRGBA(r=color[0] / 255.0, g=color[1] / 255.0, b=color[2] / 255.0, a=float(alpha))
    white = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    for d, oid in zip(dets, ids, strict=True):
        cube = Marker(header=header, ns=ns, id=int(oid), type=Marker.CUBE, action=Marker.ADD, lifetime=life,
                      color=rgba, frame_locked=False, pose=_pose(d.center),
                      scale=Vector3(x=float(d.size[0]), y=float(d.size[1]), z=float(d.size[2])))
        above = (d.center[0], d.center[1] - d.size[1] / 2 - 0.05, d.center[2])  # optical frame: -y is up
        text = Marker(header=header, ns=f"{ns}_labels", id=int(oid), type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, lifetime=life, color=white, pose=_pose(above),
                      scale=Vector3(z=0.08), text=f"id {oid}")
        arr.markers += [cube, text]
    return arr


@dataclass
class LabelledOutputs:
    """What :func:`labelled_outputs` made for one frame."""

    ids: list[int]
    boxes3d: list[Box3DDetection]
    messages: dict[str, Any]
    skipped: Counter[str] = field(default_factory=Counter)  # 3D boxes left out, by reason


def labelled_outputs(result: Any, depth_m: np.ndarray | None, camera: CameraModel | None, header: Any,
                     tracker: OverlapTracker, wanted: Collection[str] = ("detections", "detections_3d", "markers"),
                     *, max_depth: float = 10.0, min_points: int = 20, stride: int = 1,
                     marker_lifetime: float = 0.5) -> LabelledOutputs:
    """Ids, 3D boxes and the id-carrying messages of one SaliencyResult.

    The tracker is updated with ``result.boxes`` and ``result.reinitialized`` (new ids after a
    re-initialisation). The 3D outputs need ``depth_m`` (metres, ``geometry.depth_in_metres``) and
    ``camera`` (the one camera model, ``pipeline.scene_inputs``); with either None they are left out
    and the 2D detections still go. A component without a 3D box keeps every other box on its
    own id (``Box3DDetection.index``), so ids never shift between the arrays."""
    ids = tracker.update(result.boxes, reinitialized=bool(result.reinitialized))
    msgs: dict[str, Any] = {}
    if "detections" in wanted and HAVE_VISION_MSGS:
        msgs["detections"] = detection2d_array(result.boxes, ids, header)
    out = LabelledOutputs(ids, [], msgs)
    if not ({"detections_3d", "markers"} & set(wanted)) or depth_m is None or camera is None:
        return out
    dets = boxes_3d(result.mask, result.boxes, depth_m, camera, max_depth=max_depth, min_points=min_points,
                    stride=stride, skipped=out.skipped)
    out.boxes3d = dets
    det_ids = [ids[d.index] for d in dets]
    if "detections_3d" in wanted and HAVE_VISION_MSGS:
        msgs["detections_3d"] = detection3d_array(dets, det_ids, header)
    if "markers" in wanted:
        msgs["markers"] = markers_with_ids(dets, det_ids, header, marker_lifetime)
    return out


__all__ = ["CLASS_ID", "DETECTIONS_3D_TYPE", "HAVE_VISION_MSGS", "LabelledOutputs", "detection2d_array",
           "detection3d_array", "labelled_outputs", "markers_with_ids"]

"""`m4sam-bag`: run the streaming predictor over a recorded rosbag2 and write the results beside it.

The bag is the node's pipeline run offline: rosbags reads and writes the files, rclpy (de)serialises
the messages, colour and depth are paired by the same approximate-time policy as the live node
(``m4sam_ros.sync``), and results become messages through the node's own conversion code
(``m4sam_ros.ros.pipeline``). The output holds the input topics plus ``/m4sam/*`` stamped like
their colour frames, so ``ros2 bag play OUT`` shows everything in RViz and Foxglove reads it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402

from m4sam_ros.atomic import building_dir, building_file  # noqa: E402

DEFAULT_COLOR_TOPIC = "/camera/camera/color/image_raw"
DEFAULT_DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"
DEFAULT_INFO_TOPIC = "/camera/camera/aligned_depth_to_color/camera_info"
OUTPUT_NAMESPACE = "/m4sam"
DEMO_MODEL = Path(__file__).resolve().parent / "assets" / "demo_model.pt"
#: what each output is, as the node publishes it under ~/<name>
OUTPUT_TYPES = {"mask": "sensor_msgs/msg/Image", "saliency": "sensor_msgs/msg/Image",
                "overlay": "sensor_msgs/msg/Image", "detections": "vision_msgs/msg/Detection2DArray",
                "markers": "visualization_msgs/msg/MarkerArray", "points": "sensor_msgs/msg/PointCloud2"}


class BagError(RuntimeError):
    """A bag that cannot be processed; the message names the problem and the fix."""


@dataclass
class BagSummary:
    """What one run did; printed at the end and returned to callers."""

    input: str
    output: str
    pairs: int = 0
    processed: int = 0
    unpaired_color: int = 0
    unpaired_depth: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    frames_per_second: float = 0.0
    reinitializations: int = 0

    def to_text(self) -> str:
        rej = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())) or "none"
        return (f"{self.pairs} pairs, {self.processed} processed, unpaired colour {self.unpaired_color}, "
                f"unpaired depth {self.unpaired_depth}, rejected {rej}, re-initialisations "
                f"{self.reinitializations}; {self.seconds:.1f} s, {self.frames_per_second:.2f} frames/s\n"
                f"wrote {self.output}")


def _open_reader(path: Path) -> Any:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not path.exists():
        raise BagError(f"input bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED))
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for broken files
        raise BagError(f"cannot read {path} as a rosbag2 (.mcap or .db3): {exc}. "
                       "Is the recording complete? A truncated file can sometimes be repaired with "
                       "`ros2 bag reindex`.") from exc
    return reader


def _storage_plugin(name: str) -> Any:
    from rosbags.rosbag2 import StoragePlugin

    return {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[name]


def process_bag(input_path: str | Path, output_path: str | Path, predictor: Any, *,
                color_topic: str = DEFAULT_COLOR_TOPIC, depth_topic: str = DEFAULT_DEPTH_TOPIC,
                info_topic: str | None = DEFAULT_INFO_TOPIC, slop_s: float = 0.02, queue_size: int = 10,
                storage: str = "mcap", video: str | Path | None = None, video_fps: float | None = None,
                overwrite: bool = False, progress: bool = True, points: bool = False) -> BagSummary:
    """Runs ``predictor`` on every synchronised colour/depth pair of the input bag."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, Image
    from tqdm import tqdm

    from m4sam_ros.ros import compat
    from m4sam_ros.ros.pipeline import OutputSettings, RejectedInput, decode_pair, result_messages
    from m4sam_ros.sync import ApproximateTimePairer
    from m4sam_ros.visualize import render_overlay

    input_path, output_path = Path(input_path), Path(output_path)
    reader = _open_reader(input_path)
    try:
        topics = {c.topic: c for c in reader.connections}
        wanted = [t for t in (color_topic, depth_topic) if t]
        missing = [t for t in wanted if t not in topics]
        if info_topic and info_topic not in topics:
            missing.append(info_topic)
        if missing:
            have = "\n  ".join(f"{t} ({c.msgtype})" for t, c in sorted(topics.items())) or "(none)"
            raise BagError(f"topic(s) {', '.join(missing)} not in {input_path}; the bag has:\n  {have}\n"
                           "choose with --color-topic/--depth-topic/--info-topic (--info-topic '' for none)")
        for t, want in ((color_topic, "sensor_msgs/msg/Image"), (depth_topic, "sensor_msgs/msg/Image")):
            if topics[t].msgtype != want:
                raise BagError(f"{t} carries {topics[t].msgtype}, expected {want}")
        from rosbags.rosbag2 import Writer
        from rosbags.typesys import Stores, get_typestore

        typestore = get_typestore(Stores.ROS2_KILTED)
        if output_path.exists() and not overwrite:
            raise BagError(f"output {output_path} exists already; remove it or pass --overwrite")
        with ExitStack() as outputs_in_progress:  # all or nothing: renamed into place only on success
            built = outputs_in_progress.enter_context(building_dir(output_path))
            video_tmp = outputs_in_progress.enter_context(building_file(video)) if video is not None else None
            writer = Writer(built, version=9, storage_plugin=_storage_plugin(storage))
            writer.open()
            copied = {c.id: writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data,
                                                  rihs01=c.digest if c.digest.startswith("RIHS01") else None)
                      for c in reader.connections}
            out_conns: dict[str, Any] = {}

            def out_conn(name: str, msgtype: str) -> Any:
                if name not in out_conns:
                    topic = f"{OUTPUT_NAMESPACE}/{'object_points' if name == 'points' else name}"
                    if msgtype in typestore.types:
                        out_conns[name] = writer.add_connection(topic, msgtype, typestore=typestore)
                    else:  # vision_msgs: take its definition from the installed package
                        out_conns[name] = writer.add_connection(topic, msgtype, msgdef=_msgdef(msgtype),
                                                                rihs01=None)
                return out_conns[name]

            pairer = ApproximateTimePairer(2, queue_size, slop_s)
            bridge = compat.CvBridge()
            settings = OutputSettings()
            wanted = [o for o in OUTPUT_TYPES if o != "points" or points]
            summary = BagSummary(input=str(input_path), output=str(output_path))
            rejected: Counter[str] = Counter()
            info_msg = None
            if info_topic:  # intrinsics are static: start with the first one, even if it comes after frame 0
                for _, _, raw in reader.messages(connections=[topics[info_topic]]):
                    info_msg = deserialize_message(bytes(raw), CameraInfo)
                    break
            color_count = depth_count = 0
            video_writer = None
            t0 = time.perf_counter()
            total = sum(c.msgcount for c in reader.connections)
            bar = tqdm(total=total, unit="msg", disable=not progress, desc="m4sam-bag")
            for conn, logtime, raw in reader.messages():
                writer.write(copied[conn.id], logtime, raw)
                bar.update(1)
                if conn.topic == info_topic:
                    info_msg = deserialize_message(bytes(raw), CameraInfo)
                    continue
                if conn.topic not in (color_topic, depth_topic):
                    continue
                msg = deserialize_message(bytes(raw), Image)
                index = 0 if conn.topic == color_topic else 1
                if index == 0:
                    color_count += 1
                else:
                    depth_count += 1
                pair = pairer.add(index, compat.stamp_to_ns(msg.header.stamp), (msg, logtime))
                if pair is None:
                    continue
                summary.pairs += 1
                (color_msg, color_time), (depth_msg, _) = pair
                try:
                    rgb, depth = decode_pair(color_msg, depth_msg, bridge)
                    result = predictor.step(rgb, depth, stamp=compat.stamp_to_ns(color_msg.header.stamp) * 1e-9)
                    outputs, problem = result_messages(result, rgb, depth, color_msg.header, info_msg, settings,
                                                       wanted)
                    if problem is not None:
                        rejected[problem.reason] += 1
                except RejectedInput as exc:
                    rejected[exc.reason] += 1
                    bar.write(f"skipped pair at {compat.stamp_to_ns(color_msg.header.stamp)} ns: {exc}")
                    continue
                except ValueError as exc:  # the predictor refused the input (e.g. depth of another shape)
                    rejected["predictor_rejected"] += 1
                    bar.write(f"skipped pair at {compat.stamp_to_ns(color_msg.header.stamp)} ns: {exc}")
                    continue
                summary.processed += 1
                summary.reinitializations += int(result.reinitialized)
                for name, out_msg in outputs.items():
                    writer.write(out_conn(name, OUTPUT_TYPES[name]), color_time, serialize_message(out_msg))
                if video is not None:
                    overlay = render_overlay(rgb, result.mask, result.boxes, alpha=settings.overlay_alpha)
                    if video_writer is None:
                        video_writer = _open_video(video_tmp, overlay.shape, video_fps or 15.0)
                    video_writer.write(np.ascontiguousarray(overlay[..., ::-1]))
            bar.close()
            summary.unpaired_color = color_count - summary.pairs
            summary.unpaired_depth = depth_count - summary.pairs
            summary.rejected = dict(rejected)
            summary.seconds = time.perf_counter() - t0
            summary.frames_per_second = summary.processed / max(summary.seconds, 1e-9)
            writer.close()
            if video_writer is not None:
                video_writer.release()
            if summary.processed == 0:
                raise BagError(f"no colour/depth pair of {input_path} could be processed "
                               f"({summary.pairs} pairs, rejected: {dict(rejected) or 'none'}); nothing written")
            return summary
    finally:
        reader.close()


def _msgdef(msgtype: str) -> str:  # pragma: no cover - needs vision_msgs from a ROS install
    """The .msg text of an installed ROS message package (for types rosbags does not ship)."""
    from ament_index_python.packages import get_package_share_directory

    pkg, _, name = msgtype.split("/")
    return (Path(get_package_share_directory(pkg)) / "msg" / f"{name}.msg").read_text()


def _open_video(path: Path, shape: tuple[int, ...], fps: float) -> Any:
    import cv2

    h, w = shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not vw.isOpened():
        raise BagError(f"cannot write video {path}: OpenCV has no mp4v encoder here")
    return vw


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="m4sam-bag", description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="input rosbag2 (folder with metadata.yaml, .mcap or .db3)")
    p.add_argument("--output", required=True, help="output rosbag2 folder (written atomically)")
    p.add_argument("--checkpoint", help="M4-SAM checkpoint (default: the bundled demo model)")
    p.add_argument("--config", help="model config name or YAML (default: the checkpoint's own config)")
    p.add_argument("--sam2-checkpoint", help="official SAM2.1 weights (sam2.1_hiera_*.pt) for the base")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--color-topic", default=DEFAULT_COLOR_TOPIC)
    p.add_argument("--depth-topic", default=DEFAULT_DEPTH_TOPIC)
    p.add_argument("--info-topic", default=DEFAULT_INFO_TOPIC, help="camera_info for 3D markers ('' for none)")
    p.add_argument("--slop", type=float, default=0.02, help="max colour/depth stamp difference in seconds")
    p.add_argument("--queue", type=int, default=10, help="synchroniser queue size per topic")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="output storage plugin")
    p.add_argument("--video", help="also write the overlay as an MP4 here")
    p.add_argument("--video-fps", type=float, default=15.0)
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--points", action="store_true", help="also write /m4sam/object_points (PointCloud2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from m4sam_ros.predictor import StreamingPredictor

    try:
        _open_reader(Path(args.input)).close()  # a bad bag fails before a model is built
        checkpoint = args.checkpoint
        if checkpoint is None and args.config is None:
            if not DEMO_MODEL.exists():
                raise BagError(f"no model given and the bundled demo model {DEMO_MODEL} is missing: pass "
                               "--checkpoint (an M4-SAM checkpoint from m4sam-train) or --config")
            checkpoint = str(DEMO_MODEL)
        predictor = StreamingPredictor.from_config(args.config, m4sam_checkpoint=checkpoint,
                                                   sam2_checkpoint=args.sam2_checkpoint, device=args.device)
        summary = process_bag(args.input, args.output, predictor, color_topic=args.color_topic,
                              depth_topic=args.depth_topic, info_topic=args.info_topic or None,
                              slop_s=args.slop, queue_size=args.queue, storage=args.storage,
                              video=args.video, video_fps=args.video_fps, overwrite=args.overwrite,
                              progress=not args.quiet, points=args.points)
    except (BagError, FileNotFoundError, ValueError) as exc:
        print(f"m4sam-bag: error: {exc}", file=sys.stderr)
        return 2
    print(summary.to_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

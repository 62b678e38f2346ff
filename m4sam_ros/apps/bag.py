"""`m4sam-bag`: run the streaming predictor over a recorded rosbag2 and write the results beside it.

The bag is the node's pipeline run offline: rosbags reads and writes the files, rclpy (de)serialises
the messages, colour and depth are paired by the same approximate-time policy as the live node
(``m4sam_ros.msgs.sync``), and results become messages through the node's own conversion code
(``m4sam_ros.ros.pipeline``). The output holds the input topics plus ``/m4sam/*`` stamped like
their colour frames, so ``ros2 bag play OUT`` shows everything in RViz and Foxglove reads it.

Inputs may be raw ``sensor_msgs/Image`` or image_transport's ``sensor_msgs/CompressedImage``
(``.../compressed`` JPEG/PNG colour, ``.../compressedDepth`` PNG/RVL depth), told apart by each
topic's type; ``--transport auto`` (the default) also finds ``<topic>/compressed`` and
``<topic>/compressedDepth`` when the raw topic is not in the bag. Every output is all or nothing:
an error or a signal (SIGINT, SIGTERM, SIGHUP) removes what was being built, and staging left by a
killed run (SIGKILL, power loss) is swept at the next start on the same output.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402

from m4sam_ros.util.atomic import building_dir, building_file  # noqa: E402

DEFAULT_COLOR_TOPIC = "/camera/camera/color/image_raw"
DEFAULT_DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"
DEFAULT_INFO_TOPIC = "/camera/camera/aligned_depth_to_color/camera_info"
OUTPUT_NAMESPACE = "/m4sam"
DEMO_MODEL = Path(__file__).resolve().parents[1] / "assets" / "demo_model.pt"
#: what each output is, as the node publishes it under ~/<name>
OUTPUT_TYPES = {"mask": "sensor_msgs/msg/Image", "saliency": "sensor_msgs/msg/Image",
                "overlay": "sensor_msgs/msg/Image", "detections": "vision_msgs/msg/Detection2DArray",
                "detections_3d": "vision_msgs/msg/Detection3DArray",
                "markers": "visualization_msgs/msg/MarkerArray", "points": "sensor_msgs/msg/PointCloud2"}
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
#: image_transport's topic suffixes: <base>/compressed (colour), <base>/compressedDepth (depth)
TRANSPORT_SUFFIX = {"color": "/compressed", "depth": "/compressedDepth"}


class BagError(RuntimeError):
    """A bag that cannot be processed; the message names the problem and the fix."""


class Stopped(BaseException):
    """A signal asked the run to stop; unwinding removes every output in progress."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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
    color_topic: str = ""
    depth_topic: str = ""
    boxes3d_skipped: dict[str, int] = field(default_factory=dict)
    stale_removed: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        rej = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())) or "none"
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.boxes3d_skipped.items())) or "none"
        return (f"{self.color_topic} + {self.depth_topic}: "
                f"{self.pairs} pairs, {self.processed} processed, unpaired colour {self.unpaired_color}, "
                f"unpaired depth {self.unpaired_depth}, rejected {rej}, re-initialisations "
                f"{self.reinitializations}, 3D boxes left out {skipped}; {self.seconds:.1f} s, "
                f"{self.frames_per_second:.2f} frames/s\n"
                + "".join(f"removed staging of an interrupted run: {p}\n" for p in self.stale_removed)
                + f"wrote {self.output}")


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


def resolve_topics(topics: dict[str, str], color_topic: str, depth_topic: str, transport: str = "auto"
                   ) -> tuple[str, str]:
    """The colour and depth topics to read, given the bag's ``{topic: msgtype}``.

    ``raw`` reads the topics as named, ``compressed`` appends image_transport's suffixes
    (``/compressed``, ``/compressedDepth``) unless the name already ends in them, ``auto`` takes the
    named topic when the bag has it and else the suffixed one."""
    if transport not in ("auto", "raw", "compressed"):
        raise BagError(f"--transport must be auto, raw or compressed, got {transport!r}")
    out = []
    for side, topic in (("color", color_topic), ("depth", depth_topic)):
        suffixed = topic if topic.endswith(TRANSPORT_SUFFIX[side]) else topic + TRANSPORT_SUFFIX[side]
        if transport == "compressed" or (transport == "auto" and topic not in topics and suffixed in topics):
            topic = suffixed
        out.append(topic)
    return out[0], out[1]


def check_video_path(video: str | Path | None) -> Path | None:
    """``--video`` must name an .mp4 file (not a folder): the mp4v encoder writes MP4 containers."""
    if video is None:
        return None
    path = Path(video)
    if path.is_dir() or str(video).endswith(os.sep):
        raise BagError(f"--video {video} is a folder; give a file name ending in .mp4, e.g. {path / 'overlay.mp4'}")
    if path.suffix.lower() != ".mp4":
        raise BagError(f"--video {video} does not end in .mp4; the overlay is written as MP4 (mp4v), "
                       f"e.g. --video {path.with_suffix('.mp4')}")
    return path


def _locked(path: Path) -> int:
    """An open descriptor of ``path`` holding an exclusive lock: marks staging as in use."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def sweep_stale(output: Path, video: Path | None = None) -> list[Path]:
    """Removes staging left by a killed run on the same output (``.<name>.*.partial`` folders) and
    video (``.<stem>.*.partial.mp4``). A live run holds a lock on its staging, so only orphans go."""
    candidates = list(output.parent.glob(f".{output.name}.*.partial")) if output.parent.is_dir() else []
    if video is not None and video.parent.is_dir():
        candidates += video.parent.glob(f".{video.stem}.*.partial{video.suffix}")
    removed = []
    for path in candidates:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another run is building it right now
            os.close(fd)
            continue
        try:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


def vision_msgs_typestore() -> Any:
    """rosbags' Kilted typestore plus vision_msgs (when installed), read from its .msg files."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    msg_dir = _share_dir("vision_msgs")
    if msg_dir is None:
        return ts
    types: dict[str, Any] = {}
    for f in sorted((msg_dir / "msg").glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"vision_msgs/msg/{f.stem}"))
    ts.register(types)
    return ts


def _share_dir(pkg: str) -> Path | None:
    """share/<pkg> of an installed ROS package: the ament index, else beside its Python package."""
    import importlib.util

    if os.environ.get("AMENT_PREFIX_PATH"):
        try:
            from ament_index_python.packages import get_package_share_directory

            return Path(get_package_share_directory(pkg))
        except Exception:  # noqa: BLE001 - not in the index: look beside the module
            pass
    spec = importlib.util.find_spec(pkg)
    if spec is None or spec.origin is None:
        return None
    here = Path(spec.origin).resolve()  # <prefix>/lib/pythonX.Y/site-packages/<pkg>/__init__.py
    for prefix in (here.parents[4], Path(sys.prefix)):
        if (prefix / "share" / pkg / "msg").is_dir():
            return prefix / "share" / pkg
    return None


def process_bag(input_path: str | Path, output_path: str | Path, predictor: Any, *,
                color_topic: str = DEFAULT_COLOR_TOPIC, depth_topic: str = DEFAULT_DEPTH_TOPIC,
                info_topic: str | None = DEFAULT_INFO_TOPIC, slop_s: float = 0.02, queue_size: int = 10,
                storage: str = "mcap", video: str | Path | None = None, video_fps: float | None = None,
                overwrite: bool = False, progress: bool = True, points: bool = False,
                transport: str = "auto") -> BagSummary:
    """Runs ``predictor`` on every synchronised colour/depth pair of the input bag."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from tqdm import tqdm

    from m4sam_ros.msgs.sync import ApproximateTimePairer
    from m4sam_ros.ros import compat
    from m4sam_ros.ros.detections3d import HAVE_VISION_MSGS
    from m4sam_ros.ros.pipeline import (
        OutputSettings,
        RejectedInput,
        decode_pair,
        decompress_pair,
        frame_outputs,
    )
    from m4sam_ros.scene.tracking import OverlapTracker
    from m4sam_ros.viz.visualize import render_overlay

    input_path, output_path = Path(input_path), Path(output_path)
    video = check_video_path(video)
    if output_path.exists() and not output_path.is_dir():
        raise BagError(f"output {output_path} is a file; a rosbag2 output is a folder")
    stale = sweep_stale(output_path, video)
    reader = _open_reader(input_path)
    try:
        topics = {c.topic: c for c in reader.connections}
        color_topic, depth_topic = resolve_topics({t: c.msgtype for t, c in topics.items()}, color_topic,
                                                  depth_topic, transport)
        wanted = [t for t in (color_topic, depth_topic) if t]
        missing = [t for t in wanted if t not in topics]
        if info_topic and info_topic not in topics:
            missing.append(info_topic)
        if missing:
            have = "\n  ".join(f"{t} ({c.msgtype})" for t, c in sorted(topics.items())) or "(none)"
            raise BagError(f"topic(s) {', '.join(missing)} not in {input_path}; the bag has:\n  {have}\n"
                           "choose with --color-topic/--depth-topic/--info-topic (--info-topic '' for none); "
                           "--transport compressed reads <topic>/compressed and <topic>/compressedDepth")
        compressed = []
        for t in (color_topic, depth_topic):
            if topics[t].msgtype not in (IMAGE_TYPE, COMPRESSED_TYPE):
                raise BagError(f"{t} carries {topics[t].msgtype}, expected {IMAGE_TYPE} or {COMPRESSED_TYPE}")
            compressed.append(topics[t].msgtype == COMPRESSED_TYPE)
        from rosbags.rosbag2 import Writer

        typestore = vision_msgs_typestore()
        if output_path.exists() and not overwrite:
            raise BagError(f"output {output_path} exists already; remove it or pass --overwrite")
        with ExitStack() as outputs_in_progress:  # all or nothing: renamed into place only on success
            built = outputs_in_progress.enter_context(building_dir(output_path))
            locks = [_locked(built.parent)]  # marks the staging as live for sweep_stale
            outputs_in_progress.callback(lambda: [os.close(fd) for fd in locks])
            video_tmp = None
            if video is not None:
                video_tmp = outputs_in_progress.enter_context(building_file(video))
                locks.append(_locked(video_tmp))
            writer = Writer(built, version=9, storage_plugin=_storage_plugin(storage))
            writer.open()
            video_writer = None
            closed = []

            def close_quietly() -> None:  # on any error or signal; a no-op after the explicit close
                if closed:
                    return
                for close in (writer.close, getattr(video_writer, "release", None)):
                    try:
                        if close is not None:
                            close()
                    except Exception:  # noqa: BLE001, S110 - the staging is removed next anyway
                        pass

            outputs_in_progress.callback(close_quietly)
            copied = {c.id: writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data,
                                                  rihs01=c.digest if c.digest.startswith("RIHS01") else None)
                      for c in reader.connections}
            out_conns: dict[str, Any] = {}

            def out_conn(name: str, msgtype: str) -> Any:
                if name not in out_conns:
                    topic = f"{OUTPUT_NAMESPACE}/{'object_points' if name == 'points' else name}"
                    out_conns[name] = writer.add_connection(topic, msgtype, typestore=typestore)
                return out_conns[name]

            pairer = ApproximateTimePairer(2, queue_size, slop_s)
            bridge = compat.CvBridge()
            settings = OutputSettings()
            wanted = [o for o in OUTPUT_TYPES if o != "points" or points]
            if not HAVE_VISION_MSGS:
                wanted = [o for o in wanted if o not in ("detections", "detections_3d")]
            tracker = OverlapTracker()
            summary = BagSummary(input=str(input_path), output=str(output_path), color_topic=color_topic,
                                 depth_topic=depth_topic, stale_removed=[str(p) for p in stale])
            rejected: Counter[str] = Counter()
            skipped: Counter[str] = Counter()
            info_msg = None
            if info_topic:  # intrinsics are static: start with the first one, even if it comes after frame 0
                for _, _, raw in reader.messages(connections=[topics[info_topic]]):
                    info_msg = deserialize_message(bytes(raw), CameraInfo)
                    break
            color_count = depth_count = 0
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
                index = 0 if conn.topic == color_topic else 1
                msg = deserialize_message(bytes(raw), CompressedImage if compressed[index] else Image)
                if index == 0:
                    color_count += 1
                else:
                    depth_count += 1
                pair = pairer.add(index, compat.stamp_to_ns(msg.header.stamp), (msg, logtime))
                if pair is None:
                    continue
                summary.pairs += 1
                (color_msg, color_time), (depth_msg, _) = pair
                stamp_ns = compat.stamp_to_ns(color_msg.header.stamp)
                try:  # the node's own calls (pipeline.py), so a bag is processed exactly as live topics are
                    color_msg, depth_msg = decompress_pair(color_msg, depth_msg)
                    rgb, depth = decode_pair(color_msg, depth_msg, bridge)
                    result = predictor.step(rgb, depth, stamp=stamp_ns * 1e-9)
                    frame = frame_outputs(result, rgb, depth, str(depth_msg.encoding), color_msg.header, info_msg,
                                          settings, wanted, tracker)
                    outputs = frame.messages
                    skipped.update(frame.skipped)
                    for problem in frame.problems:
                        rejected[problem.reason] += 1
                except RejectedInput as exc:
                    rejected[exc.reason] += 1
                    bar.write(f"skipped pair at {stamp_ns} ns: {exc}")
                    continue
                except ValueError as exc:  # the predictor refused the input (e.g. depth of another shape)
                    rejected["predictor_rejected"] += 1
                    bar.write(f"skipped pair at {stamp_ns} ns: {exc}")
                    continue
                summary.processed += 1
                summary.reinitializations += int(result.reinitialized)
                for name, out_msg in outputs.items():
                    writer.write(out_conn(name, OUTPUT_TYPES[name]), color_time, serialize_message(out_msg))
                if video_tmp is not None:
                    overlay = render_overlay(rgb, result.mask, result.boxes, alpha=settings.overlay_alpha)
                    if video_writer is None:
                        video_writer = _open_video(video_tmp, overlay.shape, video_fps or 15.0)
                    video_writer.write(np.ascontiguousarray(overlay[..., ::-1]))
            bar.close()
            summary.unpaired_color = color_count - summary.pairs
            summary.unpaired_depth = depth_count - summary.pairs
            summary.rejected = dict(rejected)
            summary.boxes3d_skipped = dict(skipped)
            summary.seconds = time.perf_counter() - t0
            summary.frames_per_second = summary.processed / max(summary.seconds, 1e-9)
            if summary.processed == 0:
                raise BagError(f"no colour/depth pair of {input_path} could be processed "
                               f"({summary.pairs} pairs, rejected: {dict(rejected) or 'none'}); nothing written")
            closed.append(True)
            writer.close()
            if video_writer is not None:
                video_writer.release()
            return summary
    finally:
        reader.close()


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
    p.add_argument("--branch", choices=["auto", "memory", "coarse", "combined"], default="auto",
                   help="map behind /m4sam/saliency and /m4sam/mask (the node's `output` parameter; auto: the "
                        "checkpoint's recommended branch, else memory)")
    p.add_argument("--mask-threshold", type=float, default=0.5, help="saliency above which a pixel is in the mask")
    p.add_argument("--color-topic", default=DEFAULT_COLOR_TOPIC,
                   help="sensor_msgs/Image or CompressedImage (jpeg/png) topic")
    p.add_argument("--depth-topic", default=DEFAULT_DEPTH_TOPIC,
                   help="sensor_msgs/Image (16UC1/32FC1) or CompressedImage (compressedDepth png/rvl) topic")
    p.add_argument("--transport", choices=["auto", "raw", "compressed"], default="auto",
                   help="compressed: read <topic>/compressed and <topic>/compressedDepth; auto: those when the "
                        "named topics are not in the bag (a topic's type decides how it is decoded)")
    p.add_argument("--info-topic", default=DEFAULT_INFO_TOPIC, help="camera_info for 3D outputs ('' for none)")
    p.add_argument("--slop", type=float, default=0.02, help="max colour/depth stamp difference in seconds")
    p.add_argument("--queue", type=int, default=10, help="synchroniser queue size per topic")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="output storage plugin")
    p.add_argument("--video", help="also write the overlay as an MP4 file here (name ending in .mp4)")
    p.add_argument("--video-fps", type=float, default=15.0)
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--points", action="store_true", help="also write /m4sam/object_points (PointCloud2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop(signum: int, frame: Any) -> None:
    """First stop signal: ignore further ones (so the clean-up cannot be cut short) and unwind."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(signum)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def main(argv: list[str] | None = None) -> int:
    """The command; exit codes: 0 done, 2 error (one line on stderr, nothing written), 128+N on signal N."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.mask_threshold <= 1.0:
        parser.error(f"--mask-threshold {args.mask_threshold}: must be within [0, 1]")
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _stop)
    try:
        summary = _run(args)
    except Stopped as exc:
        print(f"m4sam-bag: stopped by {signal.Signals(exc.signum).name}; nothing written "
              "(output in progress removed)", file=sys.stderr)
        return 128 + exc.signum
    except (BagError, OSError, ValueError) as exc:
        print(f"m4sam-bag: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(summary.to_text())
    return 0


def _run(args: argparse.Namespace) -> BagSummary:
    from m4sam_ros.model.checkpoint import CheckpointError
    from m4sam_ros.predictor import StreamingPredictor

    check_video_path(args.video)  # before a model is built
    _open_reader(Path(args.input)).close()  # a bad bag fails before a model is built
    checkpoint = args.checkpoint
    if checkpoint is None and args.config is None:
        if not DEMO_MODEL.exists():
            raise BagError(f"no model given and the bundled demo model {DEMO_MODEL} is missing: pass "
                           "--checkpoint (an M4-SAM checkpoint from m4sam-train) or --config")
        checkpoint = str(DEMO_MODEL)
    try:
        predictor = StreamingPredictor.from_config(args.config, m4sam_checkpoint=checkpoint,
                                                   sam2_checkpoint=args.sam2_checkpoint, device=args.device,
                                                   output=args.branch, mask_threshold=args.mask_threshold)
    except (CheckpointError, RuntimeError, KeyError, EOFError) as exc:  # torch.load / state-dict errors
        raise BagError(f"cannot build the model from checkpoint {checkpoint} (config {args.config}): "
                       f"{_one_line(exc)}") from exc
    return process_bag(args.input, args.output, predictor, color_topic=args.color_topic,
                       depth_topic=args.depth_topic, info_topic=args.info_topic or None,
                       slop_s=args.slop, queue_size=args.queue, storage=args.storage,
                       video=args.video, video_fps=args.video_fps, overwrite=args.overwrite,
                       progress=not args.quiet, points=args.points, transport=args.transport)


if __name__ == "__main__":
    sys.exit(main())

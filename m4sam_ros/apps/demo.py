"""`make demo`: the real node on a replayed synthetic RGB-D bag, recorded and scored.

Steps: generate a held-out synthetic table-top scene (``DEMO_SCENE``: objects resting on a table in
front of a wall, the camera looking down at it at an angle, a look-alike picture of an object lying
at background depth, small clutter) as a rosbag2 (and keep its ground truth), start the real
``m4sam_node`` process with the bundled demo model, replay the bag into it over DDS at its recorded
rate (localhost only), record everything the node publishes into a bag, then write
``demo_output/``: the recorded bag, ``overlay.mp4``, ``contact_sheet.png`` and ``summary.json``
(pairs sent, masks received, dropped pairs, latency, frames/s, S-measure and MAE).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 50))

import numpy as np  # noqa: E402

from m4sam_ros.ros.compat import stamp_to_ns  # noqa: E402
from m4sam_ros.util.atomic import building_dir  # noqa: E402
from m4sam_ros.util.cli import DefaultsHelpFormatter  # noqa: E402

COLOR_TOPIC = "/camera/camera/color/image_raw"
DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"
INFO_TOPIC = "/camera/camera/aligned_depth_to_color/camera_info"
DEMO_SCENE = {"layout": "tabletop", "distractors": ("poster", "clutter"), "rest": True}
OUTPUT_TOPICS = {"mask": "sensor_msgs/msg/Image", "saliency": "sensor_msgs/msg/Image",
                 "overlay": "sensor_msgs/msg/Image", "markers": "visualization_msgs/msg/MarkerArray"}


def get_message(msgtype: str) -> type:
    """The rclpy class of ``pkg/msg/Name`` (rosidl_runtime_py's helper, which PyPI lacks)."""
    import importlib

    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


@dataclass
class BagPlayer:
    """Publishes a rosbag2's messages on their topics at the recorded rate (``ros2 bag play``'s job,
    which is not installable from PyPI). Returns the wall time each colour stamp was published."""

    bag: Path
    topics: list[str]
    rate: float = 1.0
    published_at: dict[int, float] = field(default_factory=dict)
    count: int = 0

    def play(self, node: Any) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        with AnyReader([self.bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
            conns = [c for c in reader.connections if c.topic in self.topics]
            types = {c.topic: get_message(c.msgtype) for c in conns}
            pubs = {c.topic: node.create_publisher(types[c.topic], c.topic, qos) for c in conns}
            _wait_for_subscribers(pubs, timeout=15.0)
            start_wall = start_bag = None
            for conn, logtime, raw in reader.messages(connections=conns):
                if start_wall is None:
                    start_wall, start_bag = time.monotonic(), logtime
                due = start_wall + (logtime - start_bag) * 1e-9 / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                msg = deserialize_message(bytes(raw), types[conn.topic])
                pubs[conn.topic].publish(msg)
                self.count += 1
                if conn.topic == COLOR_TOPIC:
                    self.published_at[stamp_to_ns(msg.header.stamp)] = time.monotonic()


def _wait_for_subscribers(pubs: dict[str, Any], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(p.get_subscription_count() > 0 for t, p in pubs.items() if t != INFO_TOPIC):
            time.sleep(0.5)  # let the other side's matching settle too
            return
        time.sleep(0.1)
    raise TimeoutError("the node did not subscribe to the camera topics within "
                       f"{timeout:.0f} s; is it running with the same ROS_DOMAIN_ID?")


class Recorder:
    """Subscribes to the node's outputs and writes them into a rosbag2, keeping arrays for scoring."""

    def __init__(self, node: Any, namespace: str, out_bag: Path) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.writer = Writer(out_bag, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        ts = get_typestore(Stores.ROS2_KILTED)
        self.lock = threading.Lock()
        self.received_at: dict[int, float] = {}
        self.masks: dict[int, np.ndarray] = {}
        self.overlays: dict[int, np.ndarray] = {}
        self.counts: dict[str, int] = {k: 0 for k in OUTPUT_TOPICS}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.subs = []
        for name, msgtype in OUTPUT_TOPICS.items():
            topic = f"{namespace}/{name}"
            conn = self.writer.add_connection(topic, msgtype, typestore=ts)
            self.subs.append(node.create_subscription(
                get_message(msgtype), topic, self._callback(name, conn), qos, raw=True))

    def _callback(self, name: str, conn: Any):
        from rclpy.serialization import deserialize_message

        cls = get_message(OUTPUT_TOPICS[name])

        def on_msg(raw: bytes) -> None:
            now = time.monotonic()
            msg = deserialize_message(raw, cls)
            stamp = stamp_to_ns(msg.markers[0].header.stamp) if name == "markers" and msg.markers else None
            if name != "markers":
                stamp = stamp_to_ns(msg.header.stamp)
            with self.lock:
                self.writer.write(conn, stamp if stamp is not None else time.time_ns(), raw)
                self.counts[name] += 1
                if name == "mask":
                    from m4sam_ros.msgs.image_codec import image_to_numpy

                    self.received_at[stamp] = now
                    self.masks[stamp] = image_to_numpy(msg)
                elif name == "overlay":
                    from m4sam_ros.msgs.image_codec import image_to_numpy, to_rgb

                    self.overlays[stamp] = to_rgb(image_to_numpy(msg), msg.encoding)
        return on_msg

    def close(self) -> None:
        with self.lock:
            self.writer.close()


def summarize(published_at: dict[int, float], received_at: dict[int, float], masks: dict[int, np.ndarray],
              ground_truth: dict[int, np.ndarray], pairs_sent: int, wall_s: float) -> dict[str, Any]:
    """The demo's figures: delivery, latency, throughput and accuracy against the scene's truth."""
    from m4sam_ros.evaluation.metrics import score_pairs

    latencies = [1e3 * (received_at[s] - published_at[s]) for s in received_at if s in published_at]
    scored = [(masks[s], ground_truth[s]) for s in masks if s in ground_truth]
    scores = score_pairs(scored) if scored else {}
    return {
        "pairs_sent": pairs_sent,
        "masks_received": len(received_at),
        "dropped_pairs": pairs_sent - len(received_at),
        "latency_ms_mean": float(np.mean(latencies)) if latencies else None,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "frames_per_second": len(received_at) / wall_s if wall_s > 0 else 0.0,
        "s_measure": scores.get("S"),
        "mae": scores.get("MAE"),
        "frames_scored": len(scored),
    }


def start_node(checkpoint: Path | None, log_path: Path, extra_params: dict[str, str] | None = None
               ) -> subprocess.Popen:
    """The real ``m4sam_node`` in its own process, remapped onto the RealSense topics."""
    params = {"model_config": "m4sam_demo", "device": "cpu", "qos_reliability": "reliable",
              "publish_points": "false", **(extra_params or {})}
    if checkpoint is not None:
        params["checkpoint"] = str(checkpoint)
    cmd = [sys.executable, "-m", "m4sam_ros.ros.node", "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    cmd += ["-r", f"color/image_raw:={COLOR_TOPIC}", "-r", f"depth/image_raw:={DEPTH_TOPIC}",
            "-r", f"depth/camera_info:={INFO_TOPIC}"]
    # one torch thread: the player/recorder process shares the two cores, and OpenMP threads that
    # spin-wait for a busy core made inference several times slower than one thread
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS=os.environ.get("M4SAM_NODE_THREADS", "1"))
    log = open(log_path, "w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_node(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGINT (a clean shutdown), then SIGKILL if it does not end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def build_parser() -> argparse.ArgumentParser:
    """The `make demo` command line (test/test_cli_help.py reads every flag's help)."""
    p = argparse.ArgumentParser(prog="m4sam-demo", description=__doc__.splitlines()[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--out", default="demo_output", help="folder for the bags, contact sheet and summary")
    p.add_argument("--frames", type=int, default=90, help="frames of the synthetic scene replayed")
    p.add_argument("--seed", type=int, default=90213, help="scene seed (held out from training)")
    p.add_argument("--checkpoint", default=None, help="M4-SAM checkpoint (default: the bundled demo model)")
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                   help="onnxruntime: export the model (m4sam-export) and run the node on ONNX Runtime")
    return p


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - exercised by `make demo`
    args = build_parser().parse_args(argv)
    summary = run_demo(Path(args.out), frames=args.frames, seed=args.seed,
                       checkpoint=Path(args.checkpoint) if args.checkpoint else None, backend=args.backend)
    print(json.dumps(summary, indent=2))
    return 0 if summary["masks_received"] > 0 else 1


def run_demo(out: Path, frames: int = 90, seed: int = 90213, checkpoint: Path | None = None,
             width: int = 320, height: int = 240, fps: float = 15.0, backend: str = "torch") -> dict[str, Any]:
    """The whole demo; writes ``out`` (replaced only when the run succeeded) and returns the summary.
    ``backend="onnxruntime"``: the model is exported to ``out/onnx`` and the node runs it there."""
    if backend not in ("torch", "onnxruntime"):
        raise ValueError(f"backend must be torch or onnxruntime, got {backend!r}")
    with building_dir(Path(out)) as stage:
        stage.mkdir()
        return _run_demo_in(stage, frames, seed, checkpoint, width, height, fps, backend)


def export_demo_model(checkpoint: Path | None, out: Path) -> Path:
    """``m4sam-export`` of ``checkpoint`` (default: the bundled demo model) into ``out``."""
    from m4sam_ros.export.onnx_export import main as export_main
    from m4sam_ros.ros.params import DEMO_MODEL

    if export_main(["--checkpoint", str(checkpoint or DEMO_MODEL), "--out", str(out)]) != 0:
        raise RuntimeError("m4sam-export failed")
    return out


def _run_demo_in(stage: Path, frames: int, seed: int, checkpoint: Path | None, width: int, height: int,
                 fps: float, backend: str = "torch") -> dict[str, Any]:
    import cv2
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from m4sam_ros.data.synth import DEPTH_STAMP_OFFSET_NS, frame_stamps_ns, generate_video, write_bag
    from m4sam_ros.model.depth import normalize_depth
    from m4sam_ros.msgs.sync import pair_sequence
    from m4sam_ros.viz.visualize import contact_sheet

    video = generate_video(seed, frames, width, height, fps, **DEMO_SCENE)
    input_bag = write_bag(video, stage / "input_bag")
    stamps = frame_stamps_ns(video)
    truth = dict(zip(stamps, video.gt, strict=True))
    events = sorted([(0, s, s) for s in stamps] + [(1, s + DEPTH_STAMP_OFFSET_NS, s) for s in stamps],
                    key=lambda e: e[1])
    pairs_sent = len(pair_sequence(events, queue_size=10, slop_s=0.02))

    extra = None
    if backend == "onnxruntime":
        extra = {"backend": "onnxruntime", "model_dir": str(export_demo_model(checkpoint, stage / "onnx"))}
    node_proc = start_node(checkpoint, stage / "node.log", extra)
    rclpy.init()
    demo_node = rclpy.create_node("m4sam_demo_player")
    recorder = Recorder(demo_node, "/m4sam", stage / "output_bag")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(demo_node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    player = BagPlayer(input_bag, [COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC])
    try:
        if node_proc.poll() is not None:
            raise RuntimeError(f"m4sam_node exited at start; see {stage / 'node.log'}")
        player.play(demo_node)
        t_first = min(player.published_at.values())
        t_last = max(player.published_at.values())
        # drain: the node may still be working on the last pair
        deadline = time.monotonic() + 20.0
        last_count, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = len(recorder.received_at)
            if n >= pairs_sent:
                break
            if n != last_count:
                last_count, quiet_since = n, time.monotonic()
            elif time.monotonic() - quiet_since > 3.0:
                break
            time.sleep(0.1)
        wall = max(max(recorder.received_at.values(), default=t_last), t_last) - t_first
    finally:
        code = stop_node(node_proc)
        executor.shutdown()
        demo_node.destroy_node()
        rclpy.shutdown()
        recorder.close()
    summary = summarize(player.published_at, recorder.received_at, recorder.masks, truth, pairs_sent, wall)
    summary["node_exit_code"] = code
    summary["frames"] = frames
    summary["scene_seed"] = seed
    summary["image_size"] = [width, height]
    summary["fps"] = fps
    summary["checkpoint"] = str(checkpoint) if checkpoint else "bundled demo model"
    summary["backend"] = backend

    ordered = sorted(recorder.overlays)
    if ordered:
        vw = cv2.VideoWriter(str(stage / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        for s in ordered:
            vw.write(np.ascontiguousarray(recorder.overlays[s][..., ::-1]))
        vw.release()
        index = {s: i for i, s in enumerate(stamps)}
        picks = [ordered[int(round(k * (len(ordered) - 1) / 3))] for k in range(4)]
        rows = []
        for s in picks:
            i = index[s]
            depth = cv2.applyColorMap((normalize_depth(video.depth[i]) * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
            rows.append([video.rgb[i], depth[..., ::-1], recorder.masks[s], recorder.overlays[s]])
        sheet = contact_sheet(rows)
        cv2.imwrite(str(stage / "contact_sheet.png"), sheet[..., ::-1])
    (stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    sys.exit(main())

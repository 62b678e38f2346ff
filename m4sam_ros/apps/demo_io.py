"""The demo's player and recorder, each in its own process beside the node (``make demo``).

Why separate processes: on a 2-core machine a player, a recorder and their executor threads in one
Python process share one GIL, and every millisecond the recorder spends deserialising a 230 kB
overlay is a millisecond the player publishes late. Here each side does the least it can while the
replay runs:

- ``play``: reads the whole bag and deserialises every message *before* the replay, waits for the
  node's subscriptions and for ``go`` on stdin, then only sleeps and publishes, on an absolute
  schedule (a late message never delays the next one's due time). It writes when each colour stamp
  was published and how late each message went out.
- ``record``: subscribes to the node's outputs with ``raw=True`` and only appends
  ``(topic, arrival time, bytes)``; nothing is deserialised until the replay is over. It also keeps
  the node's latest ``/diagnostics`` counters, so the demo can tell the node's own drops from the
  harness's. On ``done`` (stdin) it drains until the node says it has nothing left, then writes
  the rosbag2 and its JSON.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC, the same clock in every process on the machine).

    python -m m4sam_ros.apps.demo_io play --bag IN --out player.json
    python -m m4sam_ros.apps.demo_io record --bag OUT --out recorder.json --expected 90
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

COLOR_TOPIC = "/camera/camera/color/image_raw"
DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"
INFO_TOPIC = "/camera/camera/aligned_depth_to_color/camera_info"
INPUT_TOPICS = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
OUTPUT_TOPICS = {"mask": "sensor_msgs/msg/Image", "saliency": "sensor_msgs/msg/Image",
                 "overlay": "sensor_msgs/msg/Image", "markers": "visualization_msgs/msg/MarkerArray"}


def get_message(msgtype: str) -> type:
    """The rclpy class of ``pkg/msg/Name`` (rosidl_runtime_py's helper, which PyPI lacks)."""
    import importlib

    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _stdin_line(expected: str, event: threading.Event) -> threading.Thread:
    """Sets ``event`` when stdin gives ``expected`` (or closes: the parent went away)."""

    def read() -> None:
        for line in sys.stdin:
            if line.strip() == expected:
                break
        event.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


# ------------------------------------------------------------------------------------------ player
def load_messages(bag: Path, topics: tuple[str, ...]) -> tuple[list[tuple[str, int, Any]], dict[str, type]]:
    """Every message of ``topics`` as (topic, log time ns, rclpy message), deserialised up front."""
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        conns = [c for c in reader.connections if c.topic in topics]
        missing = sorted(set(topics) - {c.topic for c in conns})
        if missing:
            raise ValueError(f"{bag} lacks topic(s) {', '.join(missing)}: write it with m4sam-synth's write_bag")
        types = {c.topic: get_message(c.msgtype) for c in conns}
        msgs = [(c.topic, t, deserialize_message(bytes(raw), types[c.topic]))
                for c, t, raw in reader.messages(connections=conns)]
    return msgs, types


def _wait_for_subscribers(node: Any, pubs: dict[str, Any], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(p.get_subscription_count() > 0 for t, p in pubs.items() if t != INFO_TOPIC):
            time.sleep(0.5)  # let the other side's matching settle too
            return
        time.sleep(0.05)
    raise TimeoutError("the node did not subscribe to the camera topics within "
                       f"{timeout:.0f} s; is it running with the same ROS_DOMAIN_ID?")


def replay(msgs: list[tuple[str, int, Any]], publish: dict[str, Any], rate: float = 1.0,
           clock: Any = time.monotonic, sleep: Any = time.sleep) -> tuple[dict[int, float], list[float]]:
    """Publishes ``msgs`` at their recorded spacing / ``rate`` from now; returns the wall time each
    colour stamp went out and each message's lateness (s) against its own due time."""
    from m4sam_ros.ros.compat import stamp_to_ns

    published_at: dict[int, float] = {}
    late: list[float] = []
    if not msgs:
        return published_at, late
    start_wall, start_bag = clock(), msgs[0][1]
    for topic, logtime, msg in msgs:
        due = start_wall + (logtime - start_bag) * 1e-9 / rate
        delay = due - clock()
        if delay > 0:
            sleep(delay)
        publish[topic](msg)
        now = clock()
        late.append(max(0.0, now - due))
        if topic == COLOR_TOPIC:
            published_at[stamp_to_ns(msg.header.stamp)] = now
    return published_at, late


def run_player(bag: Path, out: Path, rate: float = 1.0, wait_s: float = 120.0, gate: bool = True) -> int:
    """The ``play`` process: load, wait for the node (and ``go``), replay, write ``out``."""
    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from m4sam_ros.util.atomic import write_text

    msgs, types = load_messages(bag, INPUT_TOPICS)
    rclpy.init()
    node = rclpy.create_node("m4sam_demo_player")
    try:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pubs = {t: node.create_publisher(cls, t, qos) for t, cls in types.items()}
        _wait_for_subscribers(node, pubs, wait_s)
        if gate:
            go = threading.Event()
            _stdin_line("go", go)
            print("subscribed", flush=True)
            go.wait()
        c0 = time.process_time()
        t0 = time.monotonic()
        published_at, late = replay(msgs, {t: p.publish for t, p in pubs.items()}, rate)
        t1, cpu = time.monotonic(), time.process_time() - c0
        # stay until the node has every sample: a 150 kB depth image goes out in fragments after
        # publish() returns, and a process that exits at once loses the last pair
        acked = all(p.wait_for_all_acked(Duration(seconds=10.0)) for p in pubs.values())
        result = {"published_at": {str(k): v for k, v in published_at.items()}, "late_s": late,
                  "messages": len(msgs), "replay_start": t0, "replay_end": t1, "cpu_s": cpu, "all_acked": acked}
        write_text(out, json.dumps(result) + "\n")
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return 0


# ---------------------------------------------------------------------------------------- recorder
class RawRecorder:
    """Subscribes to the node's outputs and /diagnostics; a callback only appends the raw bytes."""

    def __init__(self, node: Any, namespace: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.node = node
        self.topics = {name: f"{namespace}/{name}" for name in OUTPUT_TOPICS}
        self.arrivals: list[tuple[str, float, bytes]] = []
        self.masks = 0
        self.last_mask_at: float | None = None
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_at: float | None = None
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.subs = [node.create_subscription(get_message(msgtype), self.topics[name], self._callback(name),
                                              qos, raw=True) for name, msgtype in OUTPUT_TOPICS.items()]
        self.subs.append(node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10))

    def _callback(self, name: str) -> Any:
        arrivals = self.arrivals

        def on_msg(raw: bytes) -> None:
            now = time.monotonic()
            arrivals.append((name, now, raw))
            if name == "mask":
                self.masks += 1
                self.last_mask_at = now
        return on_msg

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith(": pipeline"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                self.diagnostics_at = time.monotonic()

    def publishers_up(self) -> bool:
        return all(self.node.count_publishers(t) > 0 for t in self.topics.values())

    def node_finished(self, expected: int = 0) -> bool:
        """The node's own counters say it received ``expected`` pairs (if given) and every pair it
        received is accounted for (processed, dropped, rejected or skipped) and its mask recorded."""
        d = self.diagnostics
        try:
            pairs, processed = int(d["pairs_in"]), int(d["processed"])
            gone = sum(int(d.get(k, 0)) for k in ("dropped_pairs", "rejected_total", "skipped_rate_limit",
                                                   "skipped_paused"))
        except (KeyError, ValueError):
            return False
        return pairs >= max(expected, 1) and processed + gone >= pairs and self.masks >= processed

    def write_bag(self, out_bag: Path) -> dict[int, float]:
        """Writes every recorded message (stamped with its header stamp) and returns each mask's
        arrival time by stamp. Deserialisation happens here, after the replay."""
        from rclpy.serialization import deserialize_message
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        from m4sam_ros.ros.compat import stamp_to_ns
        from m4sam_ros.util.atomic import building_dir

        ts = get_typestore(Stores.ROS2_KILTED)
        classes = {name: get_message(t) for name, t in OUTPUT_TOPICS.items()}
        received_at: dict[int, float] = {}
        with building_dir(out_bag) as built:
            with Writer(built, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
                conns = {name: writer.add_connection(self.topics[name], t, typestore=ts)
                         for name, t in OUTPUT_TOPICS.items()}
                for name, at, raw in self.arrivals:
                    msg = deserialize_message(raw, classes[name])
                    if name == "markers":
                        stamp = stamp_to_ns(msg.markers[0].header.stamp) if msg.markers else None
                    else:
                        stamp = stamp_to_ns(msg.header.stamp)
                    writer.write(conns[name], stamp if stamp is not None else time.time_ns(), raw)
                    if name == "mask":
                        received_at.setdefault(stamp, at)
        return received_at


def run_recorder(out_bag: Path, out: Path, namespace: str = "/m4sam", expected: int = 0, wait_s: float = 120.0,
                 drain_s: float = 20.0, quiet_s: float = 3.0) -> int:
    """The ``record`` process: subscribe, say ``ready``, record until ``done`` + drain, write."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from m4sam_ros.util.atomic import write_text

    rclpy.init()
    node = rclpy.create_node("m4sam_demo_recorder")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        rec = RawRecorder(node, namespace)
        end = time.monotonic() + wait_s
        while not rec.publishers_up():
            if time.monotonic() > end:
                print(f"the node's outputs under {namespace} did not appear within {wait_s:.0f} s", file=sys.stderr)
                return 2
            ex.spin_once(timeout_sec=0.05)
        settle = time.monotonic() + 0.5
        while time.monotonic() < settle:
            ex.spin_once(timeout_sec=0.05)
        done = threading.Event()
        _stdin_line("done", done)
        print("ready", flush=True)
        c0 = time.process_time()
        while not done.is_set():
            ex.spin_once(timeout_sec=0.05)
        # drain: the node may still be working on the last pairs; its diagnostics say when it is done
        t_done = time.monotonic()
        while time.monotonic() - t_done < drain_s:
            ex.spin_once(timeout_sec=0.05)
            last = max(rec.last_mask_at or t_done, t_done)
            fresh = rec.diagnostics_at is not None and rec.diagnostics_at > last  # counters after the last mask
            if fresh and (rec.node_finished(expected) or time.monotonic() - last > quiet_s):
                break
        cpu = time.process_time() - c0
        received_at = rec.write_bag(out_bag)
        counts = {name: sum(1 for n, _, _ in rec.arrivals if n == name) for name in OUTPUT_TOPICS}
        write_text(out, json.dumps({"received_at": {str(k): v for k, v in received_at.items()}, "counts": counts,
                                    "diagnostics": rec.diagnostics, "cpu_s": cpu}) + "\n")
    finally:
        ex.shutdown(timeout_sec=2)
        node.destroy_node()
        rclpy.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="m4sam-demo-io", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="role", required=True)
    play = sub.add_parser("play", help="replay a bag's camera topics at their recorded rate")
    play.add_argument("--bag", required=True)
    play.add_argument("--out", required=True, help="JSON: publish time per colour stamp, lateness")
    play.add_argument("--rate", type=float, default=1.0)
    play.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the node's subscriptions")
    play.add_argument("--no-gate", action="store_true", help="start as soon as the node subscribed (no 'go')")
    rec = sub.add_parser("record", help="record the node's outputs and diagnostics")
    rec.add_argument("--bag", required=True, help="output rosbag2 folder")
    rec.add_argument("--out", required=True, help="JSON: arrival time per mask stamp, counts, diagnostics")
    rec.add_argument("--namespace", default="/m4sam")
    rec.add_argument("--expected", type=int, default=0, help="masks that end the drain early")
    rec.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the node's publishers")
    args = p.parse_args(argv)
    try:
        if args.role == "play":
            return run_player(Path(args.bag), Path(args.out), args.rate, args.wait, gate=not args.no_gate)
        return run_recorder(Path(args.bag), Path(args.out), args.namespace, args.expected, args.wait)
    except (TimeoutError, ValueError) as exc:
        print(f"m4sam-demo-io {args.role}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Delivery benchmark: pairs reaching the node's synchroniser / pairs sent, over real DDS.

A publisher process sends colour (rgb8) + depth (16UC1) at 30 Hz with a reliable or best-effort
QoS; this process subscribes exactly as the node does (``inputs.RgbdInput``, the QoS from
``qos.choose``) and counts the pairs its synchroniser emits. No model: this measures transport.

    python -m m4sam_ros.benchmarks.delivery_bench --seconds 20            # 640x480 and 1280x720
    python -m m4sam_ros.benchmarks.delivery_bench --sizes 640x480 --subscriber best_effort

Loopback only (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST); set ROS_DOMAIN_ID to a free domain.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from m4sam_ros.util.cli import DefaultsHelpFormatter

FRAME_NS = 33_333_333


def _publish(width: int, height: int, reliability: str, seconds: float, rate: float) -> None:
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("delivery_bench_publisher")
    rel = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=rel)
    pc = node.create_publisher(Image, "color/image_raw", profile)
    pd = node.create_publisher(Image, "depth/image_raw", profile)
    deadline = time.monotonic() + 30
    while (pc.get_subscription_count() < 1 or pd.get_subscription_count() < 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let both endpoints finish matching
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8).tobytes()
    depth = rng.integers(300, 5000, (height, width), dtype=np.uint16).tobytes()
    t0_ns = 1_700_000_000 * 10**9
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        stamp = t0_ns + sent * FRAME_NS
        for pub, enc, data, step, lag in ((pc, "rgb8", rgb, width * 3, 0), (pd, "16UC1", depth, width * 2, 3_000_000)):
            msg = Image(height=height, width=width, encoding=enc, step=step)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp + lag, 10**9)
            msg.header.frame_id = "camera"
            msg.data = data
            pub.publish(msg)
        sent += 1
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    time.sleep(1.0)  # let the last ones arrive
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - start}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def run_one(width: int, height: int, publisher: str, subscriber: str, seconds: float,
            rate: float = 30.0) -> dict[str, Any]:
    """One measurement: a publisher process, this process's node-equivalent input side."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from m4sam_ros.ros import inputs, qos

    child = subprocess.Popen([sys.executable, "-m", "m4sam_ros.benchmarks.delivery_bench", "--_publish",
                              f"{width}x{height}", publisher, str(seconds), str(rate)],
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("delivery_bench_node", context=ctx)
    counts = {"pairs": 0, "color": 0, "depth": 0}
    try:
        deadline = time.monotonic() + 30
        while (node.count_publishers(inputs.COLOR_TOPIC) < 1 or node.count_publishers(inputs.DEPTH_TOPIC) < 1):
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError("the publisher process did not come up")
            time.sleep(0.05)
        choice = qos.choose(subscriber, qos.publisher_profiles(node, (inputs.COLOR_TOPIC, inputs.DEPTH_TOPIC)))

        def count(which: str) -> None:
            counts[which] += 1

        def pair(c: Any, d: Any) -> None:
            counts["pairs"] += 1

        rgbd = inputs.RgbdInput(node, reliability=choice, qos_depth=5, queue_size=10, slop=0.02, jump_s=1.0,
                                use_camera_info=False, on_pair=pair, on_reject=lambda r, d: None,
                                on_jump=lambda j: None, on_message=count)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        while child.poll() is None:
            ex.spin_once(timeout_sec=0.05)
        for _ in range(20):
            ex.spin_once(timeout_sec=0.01)
        out = json.loads(child.stdout.read().strip().splitlines()[-1])
        rgbd.destroy()
    finally:
        if child.poll() is None:
            child.kill()
        node.destroy_node()
        ctx.try_shutdown()
    sent = out["sent"]
    return {"size": f"{width}x{height}", "publisher": publisher, "subscriber": choice.describe(),
            "sent": sent, "color": counts["color"], "depth": counts["depth"], "pairs": counts["pairs"],
            "delivery": counts["pairs"] / sent if sent else float("nan")}


def build_parser() -> argparse.ArgumentParser:
    """The m4sam-delivery-bench command line (test/test_cli_help.py reads every flag's help)."""
    ap = argparse.ArgumentParser(prog="m4sam-delivery-bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="publishing time per measurement")
    ap.add_argument("--sizes", default="640x480,1280x720", help="image sizes WxH, comma-separated")
    ap.add_argument("--publishers", default="reliable,best_effort", help="publisher reliabilities, comma-separated")
    ap.add_argument("--subscriber", default="auto", choices=["auto", "reliable", "best_effort"],
                    help="the node's qos_reliability (auto: match the publisher)")
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second published")
    ap.add_argument("--json", default=None, help="also write the results here")
    return ap


def main(argv: list[str] | None = None) -> None:
    """Console entry: prints one line per (size, publisher QoS) and a JSON summary."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_publish":
        w, h = (int(v) for v in argv[1].split("x"))
        _publish(w, h, argv[2], float(argv[3]), float(argv[4]))
        return
    args = build_parser().parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    results = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        for pub in args.publishers.split(","):
            if args.subscriber == "reliable" and pub == "best_effort":
                continue  # cannot connect: nothing to measure
            r = run_one(w, h, pub, args.subscriber, args.seconds, args.rate)
            results.append(r)
            print(f"{r['size']:>9} publisher {pub:<11} subscriber {r['subscriber']:<45} sent {r['sent']:4d} "
                  f"colour {r['color']:4d} depth {r['depth']:4d} pairs {r['pairs']:4d}  "
                  f"delivery {100 * r['delivery']:5.1f} %", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

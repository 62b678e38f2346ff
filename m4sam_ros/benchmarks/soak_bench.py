"""Soak benchmark: N minutes of 30 Hz RGB-D into the real node process, printing its resident
memory, output rate, frame age at arrival and the longest stall between two masks.

    python -m m4sam_ros.benchmarks.soak_bench --minutes 10            # VGA, bundled demo model, CPU
    python -m m4sam_ros.benchmarks.soak_bench --minutes 2 --size 640x480 -- -p device:=cuda

Everything after ``--`` goes to the node's ``--ros-args``. Loopback only; pick a free ROS_DOMAIN_ID.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np

from m4sam_ros.util.cli import DefaultsHelpFormatter


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def build_parser() -> argparse.ArgumentParser:
    """The m4sam-soak command line (node parameters go after ``--``: ``-- -p device:=cuda``)."""
    ap = argparse.ArgumentParser(prog="m4sam-soak", description=__doc__.split("\n\n")[0],
                                 formatter_class=DefaultsHelpFormatter,
                                 epilog="Arguments after -- go to the node (--ros-args ...), e.g. -- -p device:=cpu; "
                                        "its device parameter defaults to auto.")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    ap.add_argument("--size", default="640x480", help="image size WxH")
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second published")
    ap.add_argument("--report", type=float, default=15.0, help="seconds between two printed lines")
    return ap


def main(argv: list[str] | None = None) -> None:
    """Console entry; exits non-zero if the node dies during the soak."""
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    args = build_parser().parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("soak_bench")
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    pc = node.create_publisher(Image, "color/image_raw", reliable)
    pd = node.create_publisher(Image, "depth/image_raw", reliable)
    arrivals: list[tuple[float, float]] = []  # (arrival monotonic, frame age ms)
    lock = threading.Lock()

    def on_mask(msg: Image) -> None:
        now_ns = time.time_ns()
        age = (now_ns - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) * 1e-6
        with lock:
            arrivals.append((time.monotonic(), age))

    node.create_subscription(Image, "/m4sam/mask", on_mask, 10)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    proc = subprocess.Popen([sys.executable, "-m", "m4sam_ros.ros.node", "--ros-args", *extra],
                            env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))
    code = 0
    try:
        deadline = time.monotonic() + 120
        while pc.get_subscription_count() < 1 or node.count_publishers("/m4sam/mask") < 1:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the node did not come up")
            time.sleep(0.1)
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], axis=2).astype(np.uint8)
        depth = np.full((h, w), 3000, np.uint16) + rng.integers(0, 50, (h, w)).astype(np.uint16)
        print(f"soak: {args.minutes} min of {w}x{h} at {args.rate:g} Hz into node pid {proc.pid}", flush=True)
        print(f"{'t_s':>6} {'rss_mb':>8} {'out_hz':>7} {'age_ms_mean':>11} {'age_ms_max':>10} {'stall_s_max':>11}",
              flush=True)
        start = time.monotonic()
        sent, last_report, seen = 0, start, 0
        worst_stall, rss0 = 0.0, None
        while time.monotonic() - start < args.minutes * 60:
            if proc.poll() is not None:
                print(f"node died with exit code {proc.returncode}", flush=True)
                code = 1
                break
            rgb = np.roll(base, 4 * (sent % 100), axis=1)
            stamp = time.time_ns()
            for pub, enc, arr in ((pc, "rgb8", rgb), (pd, "16UC1", depth)):
                msg = Image(height=h, width=w, encoding=enc, step=arr.strides[0])
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
                msg.header.frame_id = "camera"
                msg.data = arr.tobytes()
                pub.publish(msg)
            sent += 1
            now = time.monotonic()
            if now - last_report >= args.report:
                with lock:
                    window = arrivals[seen:]
                    times = [t for t, _ in arrivals]
                    seen = len(arrivals)
                gaps = np.diff([start, *times, now]) if times else np.array([now - start])
                worst_stall = max(worst_stall, float(gaps.max()))
                ages = [a for _, a in window]
                rss = _rss_mb(proc.pid)
                rss0 = rss if rss0 is None else rss0
                print(f"{now - start:6.0f} {rss:8.1f} {len(window) / (now - last_report):7.2f} "
                      f"{(np.mean(ages) if ages else float('nan')):11.0f} {(max(ages) if ages else float('nan')):10.0f} "
                      f"{worst_stall:11.2f}", flush=True)
                last_report = now
            time.sleep(max(0.0, start + sent / args.rate - time.monotonic()))
        with lock:
            n = len(arrivals)
        rss = _rss_mb(proc.pid)
        print(f"sent {sent} pairs, {n} masks ({n / max(time.monotonic() - start, 1e-9):.2f} Hz), "
              f"rss {rss0} -> {rss:.1f} MB, longest stall {worst_stall:.2f} s", flush=True)
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
            try:
                print(f"node exited with code {proc.wait(timeout=30)} after SIGINT", flush=True)
            except subprocess.TimeoutExpired:
                proc.kill()
                print("node did not exit within 30 s of SIGINT: killed", flush=True)
                code = 1
        # stop the spin thread before the context goes: a thread still inside rcl's wait at
        # interpreter exit aborts the process ("terminate called without an active exception")
        ex.shutdown(timeout_sec=5)
        spinner.join(timeout=5)
        node.destroy_node()
        rclpy.shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()

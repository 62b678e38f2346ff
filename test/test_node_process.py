"""The real `m4sam_node` process (python -m m4sam_ros.ros.node, default QoS) against a reliable
publisher: it matches reliable QoS by itself, survives the stamp sequences that used to kill or
freeze the pairing (issue 13), reads WARN naming the reason when every pair is rejected, and
exits 0 with one line on SIGTERM, also during startup."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from test_node import FRAME_NS, T0, color_msg, depth_msg, frame, header
from waiting import Deadline, load_scale

from m4sam_ros.model.build import build_m4sam
from m4sam_ros.model.checkpoint import save_m4sam_checkpoint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "m4sam_demo_random.pt"
    save_m4sam_checkpoint(build_m4sam("m4sam_demo"), path)
    return path


def start_node(checkpoint, name):
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "m4sam_ros.ros.node", "--ros-args", "-p", f"checkpoint:={checkpoint}",
         "-p", "device:=cpu", "-p", "diagnostics_period:=0.3", "-p", "max_depth:=5", "-r", f"__node:={name}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def test_node_process_qos_stamp_sequences_warn_and_sigterm(checkpoint):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    test = rclpy.create_node("m4sam_process_io", context=ctx)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pc = test.create_publisher(Image, "color/image_raw", reliable)  # before the node: auto sees it
    pd = test.create_publisher(Image, "depth/image_raw", reliable)
    masks, diags = [], []
    test.create_subscription(Image, "/m4sam_p/mask", masks.append, 50)
    test.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: diags.extend(s for s in m.status if s.name == "/m4sam_p: pipeline"), 50)
    ex = MultiThreadedExecutor(context=ctx)
    ex.add_node(test)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    proc = start_node(checkpoint, "m4sam_p")
    rgb, depth = frame(0)
    try:
        deadline = Deadline(90)
        while pc.get_subscription_count() < 1 or pd.get_subscription_count() < 1 or \
                test.count_publishers("/m4sam_p/mask") < 1 or not diags:
            assert proc.poll() is None and not deadline.expired(), "node did not come up"
            time.sleep(0.05)
        time.sleep(0.5)
        kv = {v.key: v.value for v in diags[-1].values}
        assert kv["input_qos"] == "reliable (matches the publishers)"
        assert pc.get_subscription_count() == 1  # and the subscription is reliable: it matched

        def pair(i, depth_first=False, d=depth):
            c, dm = color_msg(rgb, "rgb8", header(T0 + i * FRAME_NS)), depth_msg(d, "16UC1", header(T0 + i * FRAME_NS))
            if depth_first:
                pd.publish(dm)
                time.sleep(0.02)
                pc.publish(c)
            else:
                pc.publish(c)
                pd.publish(dm)

        def masks_for(stamps, timeout=30):
            deadline = Deadline(timeout)
            while not set(stamps) <= {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in masks}:
                assert proc.poll() is None, proc.stdout.read()
                assert not deadline.expired(), "the node stalled"
                time.sleep(0.05)

        # 1. ten unpaired colour frames stamped 100 s in the future, then pairs with depth first
        for k in range(10):
            pc.publish(color_msg(rgb, "rgb8", header(T0 + 100 * 10**9 + k * FRAME_NS)))
        time.sleep(0.2)
        for i in range(3):
            pair(i, depth_first=True)
            masks_for([T0 + i * FRAME_NS])
        # 2. eleven unpaired colour frames, then an older pair (a bag loop)
        for k in range(11):
            pc.publish(color_msg(rgb, "rgb8", header(T0 + (10 + k) * FRAME_NS)))
        time.sleep(0.2)
        pair(-60)
        masks_for([T0 - 60 * FRAME_NS])
        # 3. every pair rejected (all-zero depth): WARN naming the reason and its fix
        n = len(diags)
        deadline = Deadline(20)
        i = 100
        while not any(s.level == DiagnosticStatus.WARN and "invalid_depth" in s.message for s in diags[n:]):
            assert not deadline.expired(), [s.message for s in diags[-3:]]
            pair(i, d=np.zeros_like(depth))
            i += 1
            time.sleep(0.05)
        assert any("check the depth stream" in s.message for s in diags[n:])
        # 4. SIGTERM: exit 0, one line, no traceback, no rclpy complaints
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30 * load_scale())[0]
        assert proc.returncode == 0, out
        assert "SIGTERM received, shutting down" in out and "Traceback" not in out, out
        assert "context is invalid" not in out and "inference_error" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ex.shutdown()
        spinner.join(timeout=5)
        test.destroy_node()
        ctx.try_shutdown()


def test_sigterm_during_startup_exits_cleanly(checkpoint):
    proc = start_node(checkpoint, "m4sam_startup")
    time.sleep(3.0)  # imports and model loading
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60 * load_scale())[0]
    assert proc.returncode == 0, out
    assert "FATAL" not in out and "Traceback" not in out and "configure failed" not in out, out
    assert out.count("SIGTERM received") == 1, out


SWALLOWING_BUILD = """
import sys, time
from m4sam_ros.ros import model_loader
def build(p):  # as omegaconf did under load: the signal's exception replaced by an error of its own
    print("building", flush=True)
    try:
        time.sleep(60)
    except BaseException:
        raise RuntimeError("'NoneType' object has no attribute '_invalidate_flags_cache'") from None
model_loader.build_predictor = build
from m4sam_ros.ros.node import main
main()
"""


def test_sigterm_swallowed_by_the_model_code_still_exits_cleanly(checkpoint):
    """SIGTERM while the model builds, in code that turns the signal's exception into its own
    error: exit 0 with the one SIGTERM line, not "configure failed" + FATAL + exit 1."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", SWALLOWING_BUILD, "--ros-args", "-p", f"checkpoint:={checkpoint}",
                             "-p", "device:=cpu", "-r", "__node:=m4sam_swallow"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    first = proc.stdout.readline()
    assert first.strip() == "building" or "building" in first, first
    proc.send_signal(signal.SIGTERM)
    out = first + proc.communicate(timeout=60 * load_scale())[0]
    assert proc.returncode == 0, out
    assert "FATAL" not in out and "configure failed" not in out and out.count("SIGTERM received") == 1, out


def test_soak_benchmark_runs_and_ends_cleanly() -> None:
    """`m4sam-soak` for a few seconds: figures printed, the node exits 0 on SIGINT and the bench
    itself exits 0 without an abort from a spin thread left in rcl at interpreter exit."""
    domain = (int(os.environ.get("ROS_DOMAIN_ID", "42")) + 37) % 100 + 1  # not this process's domain
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain),
               OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "m4sam_ros.benchmarks.soak_bench", "--minutes", "0.1", "--report", "2",
                          "--size", "160x120"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240 * load_scale())
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "node exited with code 0 after SIGINT" in out and "terminate called" not in out
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.strip() and ln.split()[0].isdigit()]
    assert rows and all(float(r[1]) > 50 and float(r[2]) > 0 for r in rows), out  # rss MB, masks/s

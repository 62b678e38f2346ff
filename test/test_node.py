"""The m4sam lifecycle node over real rclpy/DDS with the real predictor (demo config at 128 px,
random weights written as a real M4-SAM checkpoint): pairs in -> masks out with the colour
header and the predictor's own result, every encoding, fuzzed bad input, newest-only under load,
reset, parameters, lifecycle, markers, diagnostics, and a failing configure."""

import gc
import os
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray
from waiting import Deadline, load_scale

from m4sam_ros.model.build import build_m4sam, load_config
from m4sam_ros.model.checkpoint import save_m4sam_checkpoint
from m4sam_ros.predictor.streaming import StreamingPredictor
from m4sam_ros.ros import compat
from m4sam_ros.ros.detections3d import Detection3DArray
from m4sam_ros.ros.node import ConfigurationError, M4SamNode, check_param
from m4sam_ros.ros.spin import spin_until

H, W = 120, 160
T0 = 1_700_000_000 * 10**9
FRAME_NS = 33_333_333
DEPTH_LAG_NS = 3_000_000  # depth stamped 3 ms after colour, as without enable_sync
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ synthetic frames
def frame(i: int, seed: int = 0):
    """RGB uint8 and depth (mm uint16, 0 = invalid) of a near square moving over a textured wall."""
    rng = np.random.default_rng(seed * 1000 + i)
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([(xx * 255 // W), (yy * 255 // H), np.full_like(xx, 90)], axis=2).astype(np.uint8)
    rgb = np.clip(rgb.astype(int) + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
    depth = np.full((H, W), 3000, np.uint16) + rng.integers(0, 50, (H, W)).astype(np.uint16)
    x0, y0 = 30 + 4 * i, 35 + 2 * i
    rgb[y0:y0 + 45, x0:x0 + 50] = (230, 200, 40)
    depth[y0:y0 + 45, x0:x0 + 50] = 1000
    depth[:6, :10] = 0  # a hole
    return rgb, depth


def header(stamp_ns: int, frame_id: str = "camera_color_optical_frame") -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return h


def image(arr: np.ndarray, encoding: str, hdr: Header, pad: int = 0) -> Image:
    """An Image of arr in encoding, with `pad` extra bytes at the end of every row."""
    h, w = arr.shape[:2]
    rows = np.ascontiguousarray(arr).view(np.uint8).reshape(h, -1)
    if pad:
        rows = np.concatenate([rows, np.full((h, pad), 0xCD, np.uint8)], axis=1)
    return Image(header=hdr, height=h, width=w, encoding=encoding, is_bigendian=sys.byteorder == "big",
                 step=rows.shape[1], data=rows.tobytes())


def color_msg(rgb, encoding, hdr, pad=0):
    arr = {"rgb8": rgb, "bgr8": rgb[..., ::-1],
           "rgba8": np.concatenate([rgb, np.full((H, W, 1), 255, np.uint8)], axis=2)}[encoding]
    return image(np.ascontiguousarray(arr), encoding, hdr, pad)


def depth_msg(depth_mm, encoding, hdr, pad=0):
    if encoding == "32FC1":
        d = depth_mm.astype(np.float32) / 1000.0
        d[depth_mm == 0] = np.nan
        return image(d, encoding, hdr, pad)
    return image(depth_mm, encoding, hdr, pad)


def depth_as_node_sees(depth_mm, encoding):
    """What the node hands the predictor after decoding a depth message of this encoding."""
    if encoding == "32FC1":
        d = depth_mm.astype(np.float32) / 1000.0
        d[depth_mm == 0] = np.nan
        return d
    return depth_mm


def camera_info(hdr: Header) -> CameraInfo:
    info = CameraInfo(header=hdr, width=W, height=H, distortion_model="plumb_bob")
    info.k = [120.0, 0.0, 79.5, 0.0, 120.0, 59.5, 0.0, 0.0, 1.0]
    return info


# ------------------------------------------------------------------------------------ harness
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random-weight demo model saved in M4-SAM's checkpoint format (what m4sam-train writes)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "m4sam_demo_random.pt"
    save_m4sam_checkpoint(build_m4sam("m4sam_demo"), path)
    return path


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


#: the node's outputs the harness leaves without a subscriber (they are encoded only while subscribed)
UNSUBSCRIBED = ("overlay_compressed", "mask_compressed")


class Harness:
    """The node under test plus a test node that publishes inputs and collects every output."""

    OUTPUTS = {"mask": Image, "saliency": Image, "overlay": Image, "markers": MarkerArray,
               "object_points": PointCloud2,
               **({"detections": compat.Detection2DArray, "detections_3d": Detection3DArray}
                  if compat.HAVE_VISION_MSGS else {})}

    def __init__(self, context, checkpoint, predictor_factory=None, compressed=False, **params):
        """``compressed``: publish colour and depth as image_transport's compressed topics
        (CompressedImage on color/image_raw/compressed and depth/image_raw/compressedDepth)."""
        overrides = {"checkpoint": str(checkpoint), "device": "cpu", "autostart": False,
                     "diagnostics_period": 0.2, "warn_throttle": 0.0, **params}
        self.node = M4SamNode(context=context, predictor_factory=predictor_factory,
                              parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        self.test = rclpy.create_node("m4sam_test_io", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        if compressed:
            self.pub_color = self.test.create_publisher(CompressedImage, "color/image_raw/compressed", qos)
            self.pub_depth = self.test.create_publisher(CompressedImage, "depth/image_raw/compressedDepth", qos)
        else:
            self.pub_color = self.test.create_publisher(Image, "color/image_raw", qos)
            self.pub_depth = self.test.create_publisher(Image, "depth/image_raw", qos)
        self.pub_info = self.test.create_publisher(CameraInfo, "depth/camera_info", qos)
        self.got = {k: [] for k in [*self.OUTPUTS, "diagnostics"]}
        self.cond = threading.Condition()
        self._subs = [self.test.create_subscription(t, f"/m4sam/{k}", self._collector(k), 50)
                      for k, t in self.OUTPUTS.items()]
        self._subs.append(self.test.create_subscription(DiagnosticArray, "/diagnostics",
                                                        self._collector("diagnostics"), 50))
        self.executor = MultiThreadedExecutor(num_threads=3, context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.test)
        # spun as the node process spins (ros/spin.py): rclpy's executor can raise when an entity is
        # destroyed while another thread builds its wait set; Executor.spin() would die of it
        self.stop = threading.Event()
        self.spin_errors: list[BaseException] = []
        self.spinner = threading.Thread(target=spin_until, args=(self.executor, self.stop, self._spin_error),
                                        daemon=True)
        self.spinner.start()

    def _spin_error(self, _where: str, exc: BaseException) -> None:
        self.spin_errors.append(exc)

    def _collector(self, key):
        def cb(msg):
            with self.cond:
                self.got[key].append(msg)
                self.cond.notify_all()
        return cb

    def start(self):
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        self.wait_for(lambda: self.pub_color.get_subscription_count() >= 1
                      and self.pub_depth.get_subscription_count() >= 1 and self.outputs_matched(),
                      "discovery")

    def outputs_matched(self) -> bool:
        """Every output this harness subscribes to has matched its subscription (a message sent
        before that is lost); the compressed outputs have no subscriber here, by design."""
        return all(p.get_subscription_count() >= 1 for k, p in self.node._pubs.items() if k not in UNSUBSCRIBED)

    def wait_for(self, pred, what, timeout=20.0):
        """Until ``pred()`` holds, woken by every output; ``timeout`` is the idle-machine bound,
        stretched by the load (waiting.Deadline), so a busy runner does not flake."""
        deadline = Deadline(timeout)
        with self.cond:
            while not pred():
                left = deadline.left()
                assert left > 0, f"timed out waiting for {what} after {deadline.describe()}"
                self.cond.wait(min(left, 0.05))

    def send(self, color: Image, depth: Image):
        self.pub_color.publish(color)
        self.pub_depth.publish(depth)

    def handled(self) -> int:
        s = self.node.stats
        return s.processed + sum(s.rejected.values())

    def close(self):
        self.stop.set()
        self.executor.shutdown(timeout_sec=5)
        self.spinner.join(timeout=5)
        self.node._stop_io()
        self.node._free_model()
        self.node.destroy_node()
        self.test.destroy_node()


@pytest.fixture
def harness_factory(context, checkpoint):
    made = []

    def make(**kw):
        h = Harness(context, checkpoint, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def fresh_predictor(checkpoint, **kw):
    return StreamingPredictor.from_config("m4sam_demo", m4sam_checkpoint=str(checkpoint), device="cpu", **kw)


def wait_processed(h: Harness, n: int, key: str = "mask", timeout: float = 30.0):
    h.wait_for(lambda: len(h.got[key]) >= n, f"{n} {key} messages", timeout)


# -------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("color_enc,depth_enc,pad", [("rgb8", "16UC1", 0), ("bgr8", "32FC1", 8),
                                                     ("rgba8", "16UC1", 3)])
def test_pairs_in_masks_out_equal_to_direct_predictor(harness_factory, checkpoint, color_enc, depth_enc, pad):
    h = harness_factory()
    h.start()
    n = 5
    sent = []
    for i in range(n):
        rgb, depth = frame(i)
        hc = header(T0 + i * FRAME_NS)
        hd = header(T0 + i * FRAME_NS + DEPTH_LAG_NS, "camera_depth_optical_frame")
        h.send(color_msg(rgb, color_enc, hc, pad), depth_msg(depth, depth_enc, hd, pad))
        wait_processed(h, i + 1)  # one at a time: nothing is dropped, so all N come back in order
        sent.append((rgb, depth, hc))
    wait_processed(h, n, "saliency")
    wait_processed(h, n, "overlay")
    direct = fresh_predictor(checkpoint)
    for i, (rgb, depth, hc) in enumerate(sent):
        mask, sal, ov = h.got["mask"][i], h.got["saliency"][i], h.got["overlay"][i]
        for msg in (mask, sal, ov):
            assert msg.header == hc  # the colour image's header, stamp and frame
        assert (mask.encoding, sal.encoding, ov.encoding) == ("mono8", "32FC1", "rgb8")
        bridge = compat.CvBridge()
        got_mask = bridge.imgmsg_to_cv2(mask)
        assert set(np.unique(got_mask)) <= {0, 255}
        want = direct.step(rgb, depth_as_node_sees(depth, depth_enc), stamp=(T0 + i * FRAME_NS) * 1e-9)
        assert np.array_equal(got_mask, want.mask)
        np.testing.assert_allclose(bridge.imgmsg_to_cv2(sal), want.saliency, atol=1e-6)
        assert bridge.imgmsg_to_cv2(ov).shape == (H, W, 3)
    s = h.node.stats
    assert (s.processed, s.dropped, sum(s.rejected.values())) == (n, 0, 0)


def test_markers_need_camera_info_then_appear(harness_factory):
    h = harness_factory(publish_points=True, mask_threshold=0.0)
    h.start()
    rgb, depth = frame(0)
    h.send(color_msg(rgb, "rgb8", header(T0)), depth_msg(depth, "16UC1", header(T0)))
    wait_processed(h, 1)
    time.sleep(0.3 * load_scale())  # a negative check: as strong under load as idle
    assert h.got["markers"] == [] and h.got["object_points"] == []  # no camera_info yet
    h.pub_info.publish(camera_info(header(T0)))
    h.wait_for(lambda: h.node._camera_info is not None, "camera_info")
    hc = header(T0 + FRAME_NS)
    h.send(color_msg(rgb, "rgb8", hc), depth_msg(depth, "16UC1", header(T0 + FRAME_NS)))
    wait_processed(h, 1, "markers")
    wait_processed(h, 1, "object_points")
    markers = h.got["markers"][-1].markers
    assert markers[0].action == Marker.DELETEALL
    cubes = [m for m in markers if m.type == Marker.CUBE]
    assert cubes and all(m.header == hc for m in cubes)
    # threshold 0: every pixel is salient, so the boxes span the valid depth range 1 m .. 3.05 m
    for m in cubes:
        assert 0.9 <= m.pose.position.z - m.scale.z / 2 and m.pose.position.z + m.scale.z / 2 <= 3.1
    cloud = h.got["object_points"][-1]
    assert cloud.header == hc
    pts = compat.cloud_xyz(cloud)
    assert len(pts) > 1000 and np.isfinite(pts).all()
    assert set(np.round(np.unique(pts[:, 2]), 1)) >= {1.0, 3.0}


def send_frame(h: Harness, i: int, key: str) -> None:
    """Frame ``i`` of the test scene as raw rgb8 + 16UC1, then wait for one more ``key`` output."""
    rgb, depth = frame(i)
    n = len(h.got[key])
    h.send(color_msg(rgb, "rgb8", header(T0 + i * FRAME_NS)), depth_msg(depth, "16UC1", header(T0 + i * FRAME_NS)))
    wait_processed(h, n + 1, key)


def test_runtime_threshold_switches_and_invalid_parameters(harness_factory):
    h = harness_factory()
    h.start()
    bridge = compat.CvBridge()

    def one(i):
        send_frame(h, i, "overlay")

    assert all(r.successful for r in h.node.set_parameters([Parameter("mask_threshold", value=0.0)]))
    one(0)
    assert (bridge.imgmsg_to_cv2(h.got["mask"][-1]) == 255).all()
    assert all(r.successful for r in h.node.set_parameters([Parameter("mask_threshold", value=1.0)]))
    one(1)
    assert (bridge.imgmsg_to_cv2(h.got["mask"][-1]) == 0).all()
    # a threshold between 0 and 1 (the extremes above cannot tell "saliency > t" from a node that
    # only knows "all" and "nothing", or from one that thresholds another branch): the mask is the
    # published saliency above 0.37, which is not the mask at the default 0.5
    assert h.node.set_parameters([Parameter("mask_threshold", value=0.37)])[0].successful
    n_sal = len(h.got["saliency"])
    send_frame(h, 3, "overlay")
    h.wait_for(lambda: len(h.got["saliency"]) > n_sal, "the saliency of that frame")
    sal = bridge.imgmsg_to_cv2(h.got["saliency"][-1])
    mask = bridge.imgmsg_to_cv2(h.got["mask"][-1])
    assert np.array_equal(mask, np.where(sal > 0.37, 255, 0).astype(np.uint8))
    assert not np.array_equal(mask, np.where(sal > 0.5, 255, 0).astype(np.uint8))
    # a switch: no more masks, the overlay goes on
    n_masks = len(h.got["mask"])
    assert h.node.set_parameters([Parameter("publish_mask", value=False)])[0].successful
    one(2)
    time.sleep(0.2 * load_scale())
    assert len(h.got["mask"]) == n_masks
    # invalid values are rejected with a reason, and the old value stays
    bad = [Parameter("mask_threshold", value=1.5), Parameter("qos_reliability", value="reliable"),
           Parameter("model_config", value="m4sam_hiera_l"), Parameter("overlay_alpha", value=float("nan")),
           Parameter("points_stride", value=0)]
    for prm in bad:
        res = h.node.set_parameters([prm])[0]
        assert not res.successful and res.reason, prm.name
    assert h.node.p("mask_threshold") == 0.37 and h.node.p("model_config") == "m4sam_demo"
    res = h.node._on_set_parameters([Parameter("qos_reliability", value="sometimes")])
    assert not res.successful and "best_effort" in res.reason


def test_output_parameter_picks_the_branch(harness_factory):
    """``output``: on a tracked frame the memory branch (SAM2's decoder) and the coarse head give
    different maps; switching the parameter switches which one ~/saliency carries (the frame-0 map
    cannot tell them apart: a conditioning frame outputs its soft coarse map on both branches)."""
    h = harness_factory()
    h.start()
    bridge = compat.CvBridge()

    def published(i, slot):  # frame i's images at stamp slot: stamps only go forward
        rgb, depth = frame(i)
        n = len(h.got["saliency"])
        stamp = header(T0 + slot * FRAME_NS)
        h.send(color_msg(rgb, "rgb8", stamp), depth_msg(depth, "16UC1", stamp))
        wait_processed(h, n + 1, "saliency")
        return bridge.imgmsg_to_cv2(h.got["saliency"][-1]).astype(np.float32)

    def reference(output):
        p = StreamingPredictor(h.node.predictor.model, "cpu", output=output)
        for i in range(2):
            rgb, depth = frame(i)
            res = p.step(rgb, depth)
        return res.saliency

    assert h.node.predictor.output == "memory"
    published(0, 0)
    memory = published(1, 1)
    assert h.node.set_parameters([Parameter("output", value="coarse")])[0].successful
    assert h.node.predictor.output == "coarse"
    h.node.predictor.reset()
    published(0, 2)  # a fresh start: frame 0 conditions again
    coarse = published(1, 3)
    want_memory, want_coarse = reference("memory"), reference("coarse")
    assert np.abs(want_memory - want_coarse).max() > 0.05  # the two branches differ on a tracked frame
    assert np.abs(memory - want_memory).max() < 1e-5 and np.abs(coarse - want_coarse).max() < 1e-5
    res = h.node.set_parameters([Parameter("output", value="both")])[0]
    assert not res.successful and "combined" in res.reason and h.node.predictor.output == "coarse"


def test_reset_service_reinitialises(harness_factory):
    h = harness_factory()
    h.start()
    client = h.test.create_client(Trigger, "/m4sam/reset")
    assert client.wait_for_service(timeout_sec=10 * load_scale())
    for i in range(3):
        rgb, depth = frame(i)
        h.send(color_msg(rgb, "rgb8", header(T0 + i * FRAME_NS)), depth_msg(depth, "16UC1", header(T0 + i * FRAME_NS)))
        wait_processed(h, i + 1)
    before = h.node.stats.reinitialized
    fut = client.call_async(Trigger.Request())
    h.wait_for(fut.done, "reset response")
    assert fut.result().success
    rgb, depth = frame(3)
    h.send(color_msg(rgb, "rgb8", header(T0 + 3 * FRAME_NS)), depth_msg(depth, "16UC1", header(T0 + 3 * FRAME_NS)))
    wait_processed(h, 4)
    assert h.node.stats.reinitialized == before + 1
    # a stamp that jumps backwards (a looping bag) re-initialises too: the predictor sees seconds
    h.send(color_msg(rgb, "rgb8", header(T0)), depth_msg(depth, "16UC1", header(T0)))
    wait_processed(h, 5)
    assert h.node.stats.reinitialized == before + 2
    # after ~/reset the input path starts afresh too: a stream 100 s older (another bag) is no
    # "stamp jump". Wrong code: the reset clears the queues but keeps the newest stamps
    fut = client.call_async(Trigger.Request())
    h.wait_for(fut.done, "second reset response")
    earlier = T0 - 100 * 10**9
    h.send(color_msg(rgb, "rgb8", header(earlier)), depth_msg(depth, "16UC1", header(earlier)))
    wait_processed(h, 6)
    assert h.node.stats.stamp_jumps == 0 and h.node.stats.reinitialized == before + 3


def test_stamp_jump_in_the_input_path_is_counted_once_and_resets_the_tracker(harness_factory, checkpoint):
    """A colour stream whose clock ran 100 s ahead for three frames and came back: the pairs the
    predictor sees still go forward (it would not restart by itself), so only the input path's
    jump detector can restart the tracker. Rules out a jump that is counted but does not reset
    (the next mask would be tracked, not the fresh predictor's), a reset without the count, and a
    count per stale message instead of per jump, and (the future frames fill the queue of 2) a
    jump that leaves the other epoch queued: message_filters then evicts each new colour frame
    as the oldest stamp, and nothing pairs again."""
    h = harness_factory(diagnostics_period=0.1, sync_queue_size=2)
    h.start()
    for i in range(3):
        send_frame(h, i, "mask")
    before = h.node.stats.reinitialized
    rgb, _ = frame(0)
    for k in range(3):
        h.pub_color.publish(color_msg(rgb, "rgb8", header(T0 + 100 * 10**9 + k * FRAME_NS)))
    h.wait_for(lambda: h.node.stats.color_in == 6, "the three future colour frames")
    assert h.node.stats.stamp_jumps == 0
    send_frame(h, 3, "mask")
    s = h.node.stats
    assert (s.stamp_jumps, s.reinitialized) == (1, before + 1)
    rgb3, depth3 = frame(3)
    fresh = fresh_predictor(checkpoint).step(rgb3, depth3, stamp=(T0 + 3 * FRAME_NS) * 1e-9)
    assert np.array_equal(compat.CvBridge().imgmsg_to_cv2(h.got["mask"][3]), fresh.mask)
    send_frame(h, 4, "mask")  # no jump: tracked on
    assert (s.stamp_jumps, s.reinitialized) == (1, before + 1)
    rgb, depth = frame(5)  # a looping bag: back 4 s
    h.send(color_msg(rgb, "rgb8", header(T0 - 120 * FRAME_NS)), depth_msg(depth, "16UC1", header(T0 - 120 * FRAME_NS)))
    wait_processed(h, 6)
    assert (s.stamp_jumps, s.reinitialized) == (2, before + 2)
    n = len(h.got["diagnostics"])
    h.wait_for(lambda: len(h.got["diagnostics"]) > n, "diagnostics")
    kv = {v.key: v.value for v in h.got["diagnostics"][-1].status[0].values}
    assert kv["stamp_jumps"] == "2"


def test_input_path_parameters_take_effect(harness_factory):
    """Non-default input parameters, each with an input the default would handle differently:
    ``qos_depth`` 3 (the subscription's history), ``sync_slop`` 1 ms (a pair 3 ms apart, which the
    default 20 ms pairs, is not one), ``sync_jump_reset`` 200 s (a 100 s jump, a reset by default,
    is none), ``max_image_pixels`` exactly the frame (accepted: the limit is inclusive), then one
    pixel less at run time (refused as too_large). Rules out a parameter that is declared but not
    passed on."""
    h = harness_factory(qos_depth=3, sync_slop=0.001, sync_jump_reset=200.0, max_image_pixels=H * W)
    h.start()
    assert [f.sub.qos_profile.depth for f in h.node.input._filters] == [3, 3]  # the graph does not carry it
    s = h.node.stats
    rgb, depth = frame(0)
    h.send(color_msg(rgb, "rgb8", header(T0)), depth_msg(depth, "16UC1", header(T0 + DEPTH_LAG_NS)))
    h.wait_for(lambda: s.color_in == 1 and s.depth_in == 1, "the 3 ms apart pair's messages")
    for i in range(3):  # colour from a clock 100 s ahead: within sync_jump_reset
        h.pub_color.publish(color_msg(rgb, "rgb8", header(T0 + 100 * 10**9 + i * FRAME_NS)))
    h.wait_for(lambda: s.color_in == 4, "the future colour frames")
    t = T0 + 2 * FRAME_NS
    h.send(color_msg(rgb, "rgb8", header(t)), depth_msg(depth, "16UC1", header(t + 500_000)))
    wait_processed(h, 1)
    assert s.pairs_in == 1 and s.stamp_jumps == 0 and s.processed == 1  # the 3 ms pair never paired
    assert h.node.set_parameters([Parameter("max_image_pixels", value=H * W - 1)])[0].successful
    t = T0 + 3 * FRAME_NS
    h.send(color_msg(rgb, "rgb8", header(t)), depth_msg(depth, "16UC1", header(t)))
    h.wait_for(lambda: s.rejected["too_large"] == 1, "the pair one pixel over the limit refused")
    assert s.processed == 1


def test_lifecycle_deactivate_pauses_cleanup_frees(harness_factory):
    h = harness_factory()
    h.start()
    rgb, depth = frame(0)
    h.send(color_msg(rgb, "rgb8", header(T0)), depth_msg(depth, "16UC1", header(T0)))
    wait_processed(h, 1)
    predictor = h.node.predictor
    model_ref = weakref.ref(predictor.model)
    del predictor
    assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    gc.collect()
    assert model_ref() is not None and "inactive, model loaded on cpu" == h.node.model_state()
    for i in range(1, 4):
        h.send(color_msg(rgb, "rgb8", header(T0 + i * FRAME_NS)), depth_msg(depth, "16UC1", header(T0 + i * FRAME_NS)))
    time.sleep(0.5 * load_scale())
    assert len(h.got["mask"]) == 1 and h.node.stats.pairs_in == 1
    # diagnostics keep reporting the state while inactive, with the device actually used
    n = len(h.got["diagnostics"])
    wait_processed(h, n + 1, "diagnostics")
    status = h.got["diagnostics"][-1].status[0]
    kv = {v.key: v.value for v in status.values}
    assert kv["model_state"].startswith("inactive") and kv["device"] == "cpu"
    assert status.name == "/m4sam: pipeline" and status.hardware_id == "camera_color_optical_frame on cpu"
    # activate again: the same model, output resumes at once
    assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert h.node.predictor.model is model_ref()
    h.wait_for(lambda: h.pub_color.get_subscription_count() >= 1, "resubscription")
    h.send(color_msg(rgb, "rgb8", header(T0 + 9 * FRAME_NS)), depth_msg(depth, "16UC1", header(T0 + 9 * FRAME_NS)))
    wait_processed(h, 2)
    assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert h.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    gc.collect()
    assert h.node.predictor is None and h.node._pubs == {} and model_ref() is None
    assert h.node.model_state() == "unconfigured, model not loaded"


def test_diagnostics_states_with_the_real_node(harness_factory, checkpoint):
    """OK while masks come out; WARN with no pairs; WARN naming the top rejection and its fix
    when every pair is rejected; ERROR only when inference fails; the rates and depth fraction."""
    h = harness_factory(predictor_factory=lambda node: FailsOnStamp(fresh_predictor(checkpoint)))
    h.start()

    def next_status(pred, what):
        def ok():
            return any(pred(d.status[0]) for d in h.got["diagnostics"][start:])
        start = len(h.got["diagnostics"])
        h.wait_for(ok, what, timeout=15)
        return next(d.status[0] for d in h.got["diagnostics"][start:] if pred(d.status[0]))

    st = next_status(lambda s: True, "diagnostics")
    assert st.level == DiagnosticStatus.WARN and "no synchronised" in st.message
    kv = {v.key: v.value for v in st.values}
    assert kv["input_qos"] == "reliable (matches the publishers)"
    rgb, depth = frame(0)
    i = 0

    def send(d=depth, stamp=None):
        nonlocal i
        i += 1
        t = T0 + i * FRAME_NS if stamp is None else stamp
        h.send(color_msg(rgb, "rgb8", header(t)), depth_msg(d, "16UC1", header(t)))

    # every pair rejected: WARN, naming the reason and the fix
    zero = np.zeros_like(depth)
    deadline = Deadline(15)
    while not any(d.status[0].level == DiagnosticStatus.WARN and "invalid_depth" in d.status[0].message
                  for d in h.got["diagnostics"][-3:]):
        assert not deadline.expired(), [d.status[0].message for d in h.got["diagnostics"][-3:]]
        send(zero)
        time.sleep(0.05)
    st = h.got["diagnostics"][-1].status[0]
    assert "rejected, mostly invalid_depth" in st.message and "check the depth stream" in st.message
    assert h.got["mask"] == []
    # good pairs: OK, with the rates, the valid-depth share and the time since the last mask.
    # Good pairs keep coming until an OK period after the third mask is seen: stopping at the
    # third mask raced with the diagnostics timer (an OK published before the watch began was
    # missed, and every period after it, with no pairs, is WARN)
    n = h.node.stats.processed
    after = None

    def oks():
        with h.cond:
            return [d.status[0] for d in h.got["diagnostics"][after:] if d.status[0].level == DiagnosticStatus.OK]

    deadline = Deadline(30)
    while after is None or not oks():
        assert not deadline.expired(), f"{h.node.stats.processed - n} good pairs processed, no OK status after 3"
        if after is None and h.node.stats.processed >= n + 3:
            after = len(h.got["diagnostics"])
        send()
        time.sleep(0.1)
    st = oks()[0]
    kv = {v.key: float(v.value) for v in st.values if v.key in (
        "valid_depth_fraction", "seconds_since_last_mask", "pair_rate_vs_camera", "input_pair_rate_hz")}
    assert kv["valid_depth_fraction"] == pytest.approx(1 - 60 / (H * W), abs=1e-3)  # the 6x10 hole
    assert 0 <= kv["seconds_since_last_mask"] < 5
    # inference itself failing: ERROR
    poison = int(FailsOnStamp.POISON * 1e9)
    deadline = Deadline(15)
    while not any(d.status[0].level == DiagnosticStatus.ERROR for d in h.got["diagnostics"][-2:]):
        assert not deadline.expired()
        send(stamp=poison)
        time.sleep(0.05)
    assert "inference failing" in h.got["diagnostics"][-1].status[0].message or any(
        "inference failing" in d.status[0].message for d in h.got["diagnostics"][-2:])


def test_no_object_frames_are_counted_and_the_fallback_switch_reaches_the_predictor(context, tmp_path):
    """Issue 20: the bundled demo model with SAM2's object-score head forced to -5, so every tracked
    frame is a "no object" frame. With the fallback they are counted but not blank; switched off at
    run time, each one is blank; /diagnostics carries the counts."""
    from m4sam_ros.ros.params import DEMO_MODEL

    model = build_m4sam("m4sam_demo", m4sam_checkpoint=DEMO_MODEL)
    last = model.sam.sam_mask_decoder.pred_obj_score_head.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-5.0)
    gated = tmp_path / "no_objects.pt"
    save_m4sam_checkpoint(model, gated)
    h = Harness(context, gated, fallback_confidence=0.0)  # 0: any coarse map is confident enough
    try:
        h.start()
        for i in range(3):  # frame 0 is conditioned on its pseudo mask (never gated), 1-2 are tracked
            send_frame(h, i, "mask")
        assert (h.node.stats.no_object, h.node.stats.blanked) == (2, 0)
        assert h.node.set_parameters([Parameter("no_object_fallback", value=False)])[0].successful
        for i in range(3, 5):
            send_frame(h, i, "mask")
        assert (h.node.stats.no_object, h.node.stats.blanked) == (4, 2)
        start = len(h.got["diagnostics"])
        h.wait_for(lambda: len(h.got["diagnostics"]) > start, "diagnostics")
        kv = {v.key: v.value for v in h.got["diagnostics"][-1].status[0].values}
        assert kv["no_object_frames"] == "4" and kv["blanked_frames"] == "2" and kv["blanked_share"] == "0.400"
    finally:
        h.close()


def test_negative_stamps_are_refused_not_inference_errors(harness_factory):
    h = harness_factory()
    h.start()
    rgb, depth = frame(0)
    neg = Header(frame_id="cam")
    neg.stamp.sec, neg.stamp.nanosec = -5, 0
    h.send(color_msg(rgb, "rgb8", neg), depth_msg(depth, "16UC1", neg))
    h.wait_for(lambda: h.node.stats.rejected["negative_stamp"] >= 2, "negative stamps refused")
    h.send(color_msg(rgb, "rgb8", header(T0)), depth_msg(depth, "16UC1", header(T0)))
    wait_processed(h, 1)
    assert "inference_error" not in h.node.stats.rejected and h.node.stats.processed == 1


# ------------------------------------------------------------------------------ bad input
REASONS = {"color_unsupported_encoding", "depth_unsupported_encoding", "color_zero_size", "depth_zero_size",
           "color_bad_step", "depth_bad_step", "color_bad_data_length", "depth_bad_data_length",
           "size_mismatch", "invalid_depth", "too_large", "inference_error"}
BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "16UC1": 2, "32FC1": 4}


def expected_reason(color: Image, depth: Image) -> str:
    """The reason a pair must be refused with, worked out here from REP 118 and not by the node's
    code: the first broken rule, colour before depth."""
    for name, msg, allowed in (("color", color, ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")),
                               ("depth", depth, ("16UC1", "mono16", "32FC1"))):  # mono16 = 16UC1 (mm)
        if msg.encoding not in allowed:
            return f"{name}_unsupported_encoding"
        if msg.height == 0 or msg.width == 0:
            return f"{name}_zero_size"
        if msg.step < msg.width * BYTES_PER_PIXEL[msg.encoding]:
            return f"{name}_bad_step"
        if len(msg.data) != msg.step * msg.height:
            return f"{name}_bad_data_length"
    if (color.height, color.width) != (depth.height, depth.width):
        return "size_mismatch"
    return "invalid_depth"  # the fuzzer's valid-looking depth is random: all-zero is likely, else processed


class FailsOnStamp:
    """The real predictor, except that one poisoned stamp raises (an exception in inference)."""

    POISON = 123.0

    def __init__(self, inner):
        self.inner = inner
        self.model = inner.model

    def step(self, rgb, depth, stamp=None):
        if stamp is not None and abs(stamp - self.POISON) < 1e-6:
            raise RuntimeError("simulated CUDA out of memory")
        return self.inner.step(rgb, depth, stamp=stamp)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_each_bad_input_is_skipped_and_counted_by_reason(harness_factory, checkpoint):
    h = harness_factory(predictor_factory=lambda node: FailsOnStamp(fresh_predictor(checkpoint)))
    h.start()
    rgb, depth = frame(0)
    good_c, good_d = color_msg(rgb, "rgb8", header(T0)), depth_msg(depth, "16UC1", header(T0))

    def hdr_of(i):
        return header(T0 + (i + 1) * 10**9)

    def no_valid_metres() -> np.ndarray:
        """32FC1 with no usable pixel, though finite numbers: negative, zero, NaN and inf (REP 118:
        only finite values > 0 are depths). Wrong code: count every finite value as valid."""
        d = np.full((H, W), -1.5, np.float32)
        d[::2] = np.nan
        d[1::4] = 0.0
        d[:, ::5] = np.inf
        return d

    cases = [
        ("color_unsupported_encoding", lambda hd: (image(rgb[..., 0].copy(), "mono8", hd), depth_msg(depth, "16UC1", hd)),
         lambda c, d: setattr(c, "encoding", "yuv422")),
        ("depth_unsupported_encoding", None, lambda c, d: setattr(d, "encoding", "8UC1")),
        ("color_bad_data_length", None, lambda c, d: setattr(c, "data", bytes(c.data)[:-5])),
        ("depth_bad_data_length", None, lambda c, d: setattr(d, "step", d.step + 2)),
        ("depth_zero_size", None, lambda c, d: (setattr(d, "height", 0), setattr(d, "data", b""))),
        ("size_mismatch", lambda hd: (color_msg(rgb, "rgb8", hd), image(depth[:60].copy(), "16UC1", hd)), None),
        ("invalid_depth", lambda hd: (color_msg(rgb, "rgb8", hd), image(np.zeros_like(depth), "16UC1", hd)), None),
        ("invalid_depth", lambda hd: (color_msg(rgb, "rgb8", hd), image(no_valid_metres(), "32FC1", hd)), None),
        ("too_large", lambda hd: (Image(header=hd, height=4000, width=4000, encoding="rgb8", step=12000),
                                  depth_msg(depth, "16UC1", hd)), None),
        ("inference_error", lambda hd: (color_msg(rgb, "rgb8", header(int(FailsOnStamp.POISON * 1e9))),
                                        depth_msg(depth, "16UC1", header(int(FailsOnStamp.POISON * 1e9)))), None),
    ]
    for i, (reason, build, mutate) in enumerate(cases):
        hd = hdr_of(i)
        c, d = build(hd) if build else (color_msg(rgb, "rgb8", hd), depth_msg(depth, "16UC1", hd))
        if mutate:
            mutate(c, d)
        before = dict(h.node.stats.rejected)
        h.send(c, d)
        h.wait_for(lambda r=reason, b=before: h.node.stats.rejected[r] > b.get(r, 0), reason)
        time.sleep(0.05)
        assert {k: v - before.get(k, 0) for k, v in h.node.stats.rejected.items() if v != before.get(k, 0)} \
            == {reason: 1}, reason
    assert set(h.node.stats.rejected) <= REASONS
    assert h.node.stats.processed == 0 and h.got["mask"] == []
    # still alive and well: a good pair goes through
    h.send(good_c, good_d)
    wait_processed(h, 1)
    # diagnostics carry the counters by reason
    n = len(h.got["diagnostics"])
    wait_processed(h, n + 1, "diagnostics")
    kv = {v.key: v.value for v in h.got["diagnostics"][-1].status[0].values}
    assert kv["rejected_inference_error"] == "1" and kv["rejected_invalid_depth"] == "2"


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "32FC1", "yuv422", "8UC3", "", "64FC1"]


@st.composite
def bad_images(draw):
    h = draw(st.integers(0, 9))
    w = draw(st.integers(0, 9))
    enc = draw(st.sampled_from(ENCODINGS))
    step = draw(st.integers(0, 40))
    data = draw(st.binary(min_size=0, max_size=draw(st.sampled_from([0, 16, 64, 400]))))
    return dict(height=h, width=w, encoding=enc, step=step, data=data, is_bigendian=draw(st.booleans()))


@pytest.fixture
def fuzz_harness(harness_factory):
    """One node for all examples (hypothesis runs them inside one call of the test)."""
    h = harness_factory()
    h.start()
    return h


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(c=bad_images(), d=bad_images(), valid_color=st.booleans())
def test_fuzzed_messages_are_refused_for_their_specific_reason(fuzz_harness, c, d, valid_color):
    h = fuzz_harness
    stamp = T0 + 10**9 * (1 + h.handled())
    hd = header(stamp)
    if valid_color:  # one half valid, so the other half's checks are reached too
        rgb, _ = frame(0)
        color = color_msg(rgb, "rgb8", hd)
    else:
        color = Image(header=hd, **c)
    depth = Image(header=header(stamp), **d)
    want = expected_reason(color, depth)
    before = dict(h.node.stats.rejected)
    processed = h.node.stats.processed
    handled = h.handled()
    h.send(color, depth)
    h.wait_for(lambda: h.handled() > handled, "the fuzzed pair to be handled")
    time.sleep(0.02)
    delta = {k: v - before.get(k, 0) for k, v in h.node.stats.rejected.items() if v != before.get(k, 0)}
    if want == "invalid_depth" and h.node.stats.processed > processed:  # random depth with a valid pixel
        assert delta == {} and depth.encoding in ("16UC1", "mono16", "32FC1")
    else:
        assert delta == {want: 1}, (want, delta, color.encoding, depth.encoding)
    assert h.node.worker.alive()


# ------------------------------------------------------------------------------ load
class Slow:
    """The real predictor made slower than the camera (a big model on a small GPU)."""

    def __init__(self, inner, seconds):
        self.inner, self.seconds = inner, seconds
        self.model = inner.model

    def step(self, rgb, depth, stamp=None):
        time.sleep(self.seconds)
        return self.inner.step(rgb, depth, stamp=stamp)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@pytest.fixture
def one_torch_thread():
    """The node shares this process and its 2 cores with the DDS executor threads here; two OpenMP
    threads then spin-wait for a busy core and one inference can take seconds (the demo runs the
    node with one thread for the same reason)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_slow_predictor_takes_newest_pair_counts_drops_memory_flat(harness_factory, checkpoint, one_torch_thread):
    inner = fresh_predictor(checkpoint)
    inner.warm_up(H, W)  # as the node does for a model it builds: no lazy initialisation in the timed part
    h = harness_factory(predictor_factory=lambda node: Slow(inner, 0.15))
    h.start()
    h.pub_info.publish(camera_info(header(T0)))
    msgs = [frame(i) for i in range(8)]
    n_pub = 100  # 3.3 s at 30 Hz
    rss, state = [], []
    t_start = time.monotonic()
    for i in range(n_pub):
        rgb, depth = msgs[i % len(msgs)]
        stamp = T0 + i * FRAME_NS
        h.send(color_msg(rgb, "rgb8", header(stamp)), depth_msg(depth, "16UC1", header(stamp + DEPTH_LAG_NS)))
        if i % 10 == 9:
            rss.append(_rss_mb())
            pred = h.node.predictor
            if pred is not None:
                state.append(pred.state_nbytes())
        time.sleep(max(0.0, t_start + (i + 1) / 30.0 - time.monotonic()))
    s = h.node.stats
    deadline = Deadline(15.0)  # let the last taken pair finish (a fresh machine can stall)
    while len(s.takes) != s.processed and not deadline.expired():
        time.sleep(0.05)
    # SensorDataQoS input connected and pairs formed (best effort drops messages while this
    # process is busy; what matters below is which pairs the worker takes and that drops are counted)
    assert s.pairs_in >= n_pub // 3
    assert 0 < s.processed < s.pairs_in / 2
    # every processed pair was the newest paired one when the worker took it
    assert len(s.takes) == s.processed
    assert all(taken == newest for taken, newest in s.takes)
    # every pair is either processed, dropped (replaced by a newer one) or still pending
    assert s.pairs_in == len(s.takes) + s.dropped + len(h.node._pending)
    assert s.dropped > s.pairs_in / 2
    # outputs came with stamps in increasing order and only from taken pairs
    stamps = [compat.stamp_to_ns(m.header.stamp) for m in h.got["mask"]]
    assert stamps == sorted(stamps) and set(stamps) <= {t for t, _ in s.takes}
    # memory flat: no queue of stale frames, bounded tracker state
    assert rss[-1] - rss[1] < 8, rss  # a 10 MB leak over the run fails this
    bound = h.node.predictor.max_state_nbytes()
    assert bound is not None and max(state) <= bound, (state, bound)
    n = len(h.got["diagnostics"])
    wait_processed(h, n + 1, "diagnostics")
    kv = {v.key: v.value for v in h.got["diagnostics"][-1].status[0].values}
    assert int(kv["dropped_pairs"]) == s.dropped and float(kv["inference_latency_ms_mean"]) >= 150
    for key in ("input_pair_rate_hz", "processed_rate_hz", "frame_age_at_publish_ms_last", "model_state",
                "rejected_total", "color_rate_hz", "depth_rate_hz"):
        assert key in kv


# --------------------------------------------------------------------------- configuration
def test_missing_or_wrong_checkpoint_fails_configure(context, tmp_path):
    node = M4SamNode(context=context, parameter_overrides=[
        Parameter("checkpoint", value=str(tmp_path / "nope.pt")), Parameter("autostart", value=False),
        Parameter("device", value="cpu")])
    try:
        with pytest.raises(ConfigurationError, match="'checkpoint'.*no such file.*sam2"):
            node._resolve_weights()
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.predictor is None
    finally:
        node.destroy_node()
    bogus = tmp_path / "bogus.pt"
    torch.save({"model": {"x": torch.zeros(1)}}, bogus)
    node = M4SamNode(context=context, parameter_overrides=[
        Parameter("checkpoint", value=str(bogus)), Parameter("autostart", value=False),
        Parameter("device", value="cpu")])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        node.destroy_node()
    # a checkpoint trained on SAM2 weights (it records them): the loader's one message, naming the parameter
    cfg = dict(load_config("m4sam_demo", image_size=64), train_base_in_full=False, train_sam_modules=False)
    sam2 = tmp_path / "sam2.pt"
    torch.save({"model": build_m4sam(cfg).sam.state_dict()}, sam2)
    peft = tmp_path / "peft.pt"
    save_m4sam_checkpoint(build_m4sam(cfg, sam2_checkpoint=sam2), peft)
    node = M4SamNode(context=context, parameter_overrides=[
        Parameter("checkpoint", value=str(peft)), Parameter("autostart", value=False)])
    try:
        with pytest.raises(ConfigurationError, match="'sam2_checkpoint' is empty.*holds only the parts M4-SAM "
                                                     "trained.*sam2.pt"):
            node._resolve_weights()
    finally:
        node.destroy_node()


def test_parameter_values_are_checked_and_integers_coerced(context):
    """What `ros2 run ... -p max_depth:=5` and `ros2 param set` meet: an integer for a double
    parameter is taken as that double (rclpy alone refuses to declare it and the node dies at
    start); a NaN or out-of-range double and an image_size that is not a multiple of 32 are
    refused with the bound named; the range's own ends are accepted. Wrong code ruled out: no
    coercion, NaN accepted, an open range, any even size."""
    node = M4SamNode(context=context, parameter_overrides=[
        Parameter("max_depth", value=5), Parameter("overlay_alpha", value=1), Parameter("autostart", value=False)])
    try:
        for name, want in (("max_depth", 5.0), ("overlay_alpha", 1.0)):
            prm = node.get_parameter(name)
            assert prm.type_ == Parameter.Type.DOUBLE and prm.value == want
        for value, ok in ((float("nan"), False), (float("inf"), False), (1.5, False), (0.0, True), (1.0, True)):
            [res] = node.set_parameters([Parameter("overlay_alpha", value=value)])
            assert res.successful == ok, (value, res.reason)
            assert ok or "1.0" in res.reason  # rclpy's descriptor range, or check_param's
        [res] = node.set_parameters([Parameter("overlay_alpha", value=1)])
        assert not res.successful  # at run time rclpy keeps the declared type
    finally:
        node.destroy_node()
    assert "multiple of 32" in check_param("image_size", 48)
    assert "within [0.0, 1.0]" in check_param("overlay_alpha", float("nan"))  # a params file checked offline
    assert check_param("image_size", 0) is None and check_param("image_size", 96) is None


def test_autostart_with_missing_checkpoint_exits_non_zero(tmp_path):
    domain = (int(os.environ.get("ROS_DOMAIN_ID", "42")) + 50) % 100 + 1  # not this process's domain
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain))
    proc = subprocess.run(
        [sys.executable, "-m", "m4sam_ros.ros.node", "--ros-args", "--params-file", str(ROOT / "config/m4sam.yaml"),
         "-p", f"checkpoint:={tmp_path / 'missing.pt'}", "-p", "device:=cpu"],
        env=env, capture_output=True, text=True, timeout=120 * load_scale(), cwd=ROOT)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "'checkpoint'" in out and "sam2.1_hiera" in out and "m4sam-train" in out


def test_console_script_runs_with_the_params_file(context, checkpoint):
    """`m4sam_node --ros-args --params-file config/m4sam.yaml` (what `ros2 run` starts) comes up
    active by itself, answers a pair with a mask, and exits 0 on SIGINT."""
    import signal

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")  # same domain as `context`
    proc = subprocess.Popen(
        [sys.executable, "-m", "m4sam_ros.ros.node", "--ros-args", "--params-file", str(ROOT / "config/m4sam.yaml"),
         "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu", "-r", "__node:=m4sam_proc"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    test = rclpy.create_node("m4sam_proc_io", context=context)
    got = []
    test.create_subscription(Image, "/m4sam_proc/mask", got.append, 10)
    pc = test.create_publisher(Image, "color/image_raw", 10)
    pd = test.create_publisher(Image, "depth/image_raw", 10)
    ex = MultiThreadedExecutor(context=context)
    ex.add_node(test)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    try:
        deadline = Deadline(60)
        while (pc.get_subscription_count() < 1 or pd.get_subscription_count() < 1
               or test.count_publishers("/m4sam_proc/mask") < 1):
            assert proc.poll() is None and not deadline.expired(), "node did not come up"
            time.sleep(0.05)
        rgb, depth = frame(0)
        i = 0
        while not got:  # the mask subscription may match a moment after the node's inputs
            assert not deadline.expired(), "no mask from the process"
            stamp = T0 + i * FRAME_NS
            pc.publish(color_msg(rgb, "rgb8", header(stamp)))
            pd.publish(depth_msg(depth, "16UC1", header(stamp)))
            i += 1
            time.sleep(0.3)
        assert got[0].encoding == "mono8" and got[0].header.frame_id == "camera_color_optical_frame"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20 * load_scale()) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ex.shutdown()
        spinner.join(timeout=5)
        test.destroy_node()

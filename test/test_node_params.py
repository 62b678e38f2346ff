"""The node's publishing and input parameters at non-default values, on the running node (real
rclpy/DDS, the bundled demo model): each test picks a value and an input for which the default
(or a parameter wired to the wrong output) gives a different message, so a parameter that is
declared but never passed on, or passed to the wrong place, fails here.

Ruled out, per test: a ``publish_*`` switch that is ignored or silences another topic; output
settings (``overlay_alpha``, ``marker_lifetime``, ``mask_png_level``, ``marker_min_points``) built
from the default or from a neighbouring parameter; ``sync_queue_size`` not reaching the
synchroniser; ``use_camera_info:=false`` still subscribing (and so still publishing 3D outputs)."""

import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage
from test_node import FRAME_NS, T0, Harness, camera_info, color_msg, depth_msg, frame, header
from visualization_msgs.msg import Marker
from waiting import load_scale

from m4sam_ros.ros import compat
from m4sam_ros.ros.node import OUTPUTS
from m4sam_ros.ros.params import DEMO_MODEL, PARAMS
from m4sam_ros.viz.visualize import DEFAULT_COLOR

needs_vision_msgs = pytest.mark.skipif(not compat.HAVE_VISION_MSGS, reason="detections need vision_msgs")

#: harness key (what the test collects) of each node output key
GOT_KEY = {"points": "object_points"}
COMPRESSED_TOPICS = {"overlay_compressed": "/m4sam/overlay/compressed", "mask_compressed": "/m4sam/mask/compressed"}


@pytest.fixture
def make(context):
    made = []

    def build(**kw):
        h = Harness(context, DEMO_MODEL, **kw)
        for key, topic in COMPRESSED_TOPICS.items():  # the harness leaves these unsubscribed
            h.got[key] = []
            h._subs.append(h.test.create_subscription(CompressedImage, topic, h._collector(key), 50))
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()


def start_with_camera_info(h: Harness) -> None:
    h.start()
    h.wait_for(lambda: all(p.get_subscription_count() >= 1 for p in h.node._pubs.values()), "every output matched")
    h.pub_info.publish(camera_info(header(T0)))
    h.wait_for(lambda: h.node._camera_info is not None, "camera_info")


def stamps(h: Harness, key: str) -> set[int]:
    """The stamps of ``key``'s messages so far (a MarkerArray's: its markers')."""
    with h.cond:
        msgs = list(h.got[GOT_KEY.get(key, key)])
    return {compat.stamp_to_ns(x.header.stamp) for m in msgs for x in (m.markers if hasattr(m, "markers") else [m])}


def send_and_wait(h: Harness, i: int, expect: list[str]) -> int:
    """Frame ``i`` (everything salient at mask_threshold 0), then until each key in ``expect``
    has a message with its stamp; returns the stamp."""
    rgb, depth = frame(i)
    t = T0 + (i + 1) * FRAME_NS
    h.send(color_msg(rgb, "rgb8", header(t)), depth_msg(depth, "16UC1", header(t)))
    h.wait_for(lambda: all(t in stamps(h, k) for k in expect), f"frame {i}'s outputs {expect}")
    return t


@needs_vision_msgs
def test_each_publish_switch_silences_its_own_topic_and_no_other(make):
    """Frame k goes out with ``publish_<k>`` false and every other switch true; at the end every
    topic has every frame's stamp but the one frame its own switch was off. A switch that is
    ignored, or that reads another output's parameter, leaves a different set of stamps."""
    h = make(publish_points=True, mask_threshold=0.0)
    start_with_camera_info(h)
    keys = list(OUTPUTS)
    switches = [OUTPUTS[k][2] for k in keys]
    assert set(switches) == {n for n in PARAMS if n.startswith("publish_")}  # no switch left out here
    off_at: dict[str, int] = {}
    for i, key in enumerate(keys):
        assert all(r.successful for r in h.node.set_parameters(
            [Parameter(s, value=s != OUTPUTS[key][2]) for s in switches]))
        off_at[key] = send_and_wait(h, i, [k for k in keys if k != key])
    assert all(r.successful for r in h.node.set_parameters([Parameter(s, value=True) for s in switches]))
    last = send_and_wait(h, len(keys), keys)  # all on: a late message of a silenced frame is in by now
    everything = {*off_at.values(), last}
    for key in keys:
        assert stamps(h, key) == everything - {off_at[key]}, key


@needs_vision_msgs
def test_output_settings_reach_the_messages(make):
    """Non-default ``overlay_alpha`` (0.8: the tint's share of a salient pixel), ``marker_lifetime``
    (2.25 s on every marker), ``mask_png_level`` (0 and 9: read back from the zlib header of
    ``~/mask/compressed``, FLEVEL 0 and 3; the default 3 writes 1) and ``marker_min_points``
    (more points than the frame has: no 3D box, counted as too few points)."""
    h = make(mask_threshold=0.0, overlay_alpha=0.8, marker_lifetime=2.25,
             mask_png_level=0)
    start_with_camera_info(h)
    rgb, _ = frame(0)
    t = send_and_wait(h, 0, ["mask", "overlay", "markers", "mask_compressed", "detections_3d"])
    bridge = compat.CvBridge()
    mask = bridge.imgmsg_to_cv2(h.got["mask"][-1])
    assert (mask == 255).all()  # threshold 0: every pixel salient, so the tint covers the frame
    overlay = bridge.imgmsg_to_cv2(h.got["overlay"][-1])
    inner = (slice(40, 100), slice(40, 140))  # away from the outline, the box and its score text
    want = np.clip(rgb.astype(np.float32) * (1 - 0.8) + np.array(DEFAULT_COLOR, np.float32) * 0.8, 0, 255)
    np.testing.assert_array_equal(overlay[inner], want.astype(np.uint8)[inner])
    cubes = [m for m in h.got["markers"][-1].markers if m.type == Marker.CUBE]
    labels = [m for m in h.got["markers"][-1].markers if m.type == Marker.TEXT_VIEW_FACING]
    assert cubes and len(labels) == len(cubes)
    assert {(m.lifetime.sec, m.lifetime.nanosec) for m in cubes + labels} == {(2, 250_000_000)}
    assert h.got["detections_3d"][0].detections and h.got["detections_3d"][0].header.stamp == header(t).stamp

    def flevel(msg: CompressedImage) -> int:
        data = bytes(msg.data)
        at = data.index(b"IDAT") + 4
        return data[at + 1] >> 6  # zlib's FLEVEL: 0 fastest (level 0-1) .. 3 best (7-9)

    assert flevel(h.got["mask_compressed"][-1]) == 0
    assert h.node.set_parameters([Parameter("mask_png_level", value=9)])[0].successful
    send_and_wait(h, 1, ["mask_compressed"])
    assert flevel(h.got["mask_compressed"][-1]) == 3
    before = sum(h.node.stats.boxes3d_skipped.values())
    assert h.node.set_parameters([Parameter("marker_min_points", value=100_000)])[0].successful
    send_and_wait(h, 2, ["detections_3d", "markers"])
    assert h.got["detections_3d"][-1].detections == []
    assert [m.action for m in h.got["markers"][-1].markers] == [Marker.DELETEALL]  # only the clear-all
    assert sum(h.node.stats.boxes3d_skipped.values()) > before


def test_sync_queue_size_bounds_the_pairs_a_burst_can_make(make):
    """Four colour frames, then their four depth frames: with a queue of 2 per input only the two
    newest colours are still queued when the depths come, so 2 pairs form (the default 10: 4).
    Mirrors ``pair_sequence`` (msgs/sync.py), which the real message_filters policy matches."""
    from m4sam_ros.msgs.sync import pair_sequence

    h = make(sync_queue_size=2, qos_reliability="reliable")
    h.start()
    s = h.node.stats
    rgb, depth = frame(0)
    for i in range(4):
        h.pub_color.publish(color_msg(rgb, "rgb8", header(T0 + i * FRAME_NS)))
    h.wait_for(lambda: s.color_in == 4, "the four colour frames")
    for i in range(4):
        h.pub_depth.publish(depth_msg(depth, "16UC1", header(T0 + i * FRAME_NS)))
    h.wait_for(lambda: s.depth_in == 4, "the four depth frames")
    events = [(0, T0 + i * FRAME_NS, i) for i in range(4)] + [(1, T0 + i * FRAME_NS, i) for i in range(4)]
    assert s.pairs_in == len(pair_sequence(events, 2, 0.02)) == 2
    assert len(pair_sequence(events, PARAMS["sync_queue_size"].default, 0.02)) == 4


def test_without_camera_info_nothing_subscribes_to_it_and_2d_outputs_still_flow(make):
    """``use_camera_info:=false``: no depth/camera_info subscription (a published CameraInfo is
    never taken), so the 3D outputs stay silent while masks go out."""
    h = make(use_camera_info=False, publish_points=True, mask_threshold=0.0)
    h.start()
    h.pub_info.publish(camera_info(header(T0)))
    send_and_wait(h, 0, ["mask", "overlay"])
    send_and_wait(h, 1, ["mask", "overlay"])
    assert h.pub_info.get_subscription_count() == 0 and h.node._camera_info is None
    time.sleep(0.3 * load_scale())  # a negative check: as strong under load as idle
    assert h.got["markers"] == [] and h.got["object_points"] == [] and h.got.get("detections_3d", []) == []

"""~/overlay/compressed (JPEG) and ~/mask/compressed (PNG) in image_transport's ``compressed``
format: decoded with the project's own decoder (msgs/compressed.py, what the node's compressed
input uses) and with OpenCV; encoded only while somebody subscribes (counted: zero encodes
without a subscriber); each with its own rate limit by input stamp.

Discriminating inputs: a coloured overlay (an encoder that skips the RGB -> BGR swap gives a
blue tint where the scene is yellow), a mask with thin structures (any lossy step changes
pixels), stamps 33 ms apart against a 10 Hz cap (every third passes, not every second), and a
stamp that jumps back (a looping bag must not silence the output).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header
from test_node import FRAME_NS, T0, Harness, color_msg, depth_msg, frame, header

from m4sam_ros.msgs.compressed import decode_color, parse_format
from m4sam_ros.predictor.streaming import SaliencyResult, boxes_from_mask
from m4sam_ros.ros import control, pipeline
from m4sam_ros.ros.params import DEMO_MODEL
from m4sam_ros.viz.visualize import render_overlay


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def scene():
    rgb, _ = frame(0)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    mask[35:80, 30:80] = 255
    mask[90:92, 10:150] = 255     # a 2-px line: lossy coding would smear it
    mask[5:40:3, 120] = 255       # isolated pixels
    sal = mask.astype(np.float32) / 255
    res = SaliencyResult(mask=mask, saliency=sal, coarse=sal, memory=sal, boxes=boxes_from_mask(mask, sal, 10),
                         object_score=0.9, reinitialized=True, frame_index=0, stamp=0.0)
    return rgb, res


def test_compressed_outputs_decode_with_the_projects_decoder_and_opencv() -> None:
    rgb, res = scene()
    hdr = Header(frame_id="camera_color_optical_frame")
    settings = pipeline.OutputSettings(overlay_jpeg_quality=90)
    out = pipeline.image_outputs(res, rgb, hdr, settings, ["overlay", "overlay_compressed", "mask_compressed"])
    ov, mk = out["overlay_compressed"], out["mask_compressed"]
    assert isinstance(ov, CompressedImage) and ov.header == hdr and mk.header == hdr
    # image_transport's compressed_image_transport writes exactly these formats
    assert ov.format == "rgb8; jpeg compressed bgr8" and mk.format == "mono8; png compressed "
    assert parse_format(ov.format).codec == "jpeg" and parse_format(mk.format).codec == "png"
    overlay = render_overlay(rgb, res.mask, res.boxes, alpha=settings.overlay_alpha)
    # the project's decoder (RGB out) and OpenCV (BGR out) both give the overlay as a plain OpenCV
    # JPEG round trip at that quality gives it (the scene's pixel noise is what JPEG loses)
    ours = decode_color(ov)
    theirs = cv2.imdecode(np.frombuffer(bytes(ov.data), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(ours, theirs) and np.array_equal(ours, jpeg_round_trip(overlay, 90))
    assert np.abs(ours.astype(int) - overlay.astype(int)).mean() < 12
    assert np.abs(ours[..., ::-1].astype(int) - overlay.astype(int)).mean() > 30  # channel order matters
    # the mask: lossless, bit for bit, one channel
    png = cv2.imdecode(np.frombuffer(bytes(mk.data), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == res.mask.shape and np.array_equal(png, res.mask)
    assert np.array_equal(decode_color(mk)[..., 0], res.mask)
    # quality is a real knob
    low = pipeline.image_outputs(res, rgb, hdr, pipeline.OutputSettings(overlay_jpeg_quality=20),
                                 ["overlay_compressed"])["overlay_compressed"]
    assert len(low.data) < 0.6 * len(ov.data)


def test_nothing_is_encoded_unless_wanted() -> None:
    rgb, res = scene()
    frame_out = pipeline.frame_outputs(res, rgb, np.full(res.mask.shape, 2000, np.uint16), "16UC1", Header(), None,
                                       pipeline.OutputSettings(), ["mask", "overlay"], _Tracker())
    assert not frame_out.encoded and "overlay_compressed" not in frame_out.messages
    frame_out = pipeline.frame_outputs(res, rgb, np.full(res.mask.shape, 2000, np.uint16), "16UC1", Header(), None,
                                       pipeline.OutputSettings(), ["mask_compressed"], _Tracker())
    assert frame_out.encoded == {"mask_compressed": 1} and set(frame_out.messages) == {"mask_compressed"}


class _Tracker:
    def update(self, boxes, reinitialized=False):
        return list(range(1, len(boxes) + 1))


def test_output_gates_cap_each_output_by_stamp_and_restart_on_a_loop() -> None:
    gates = control.OutputGates()
    stamps = [100.0 + i / 30 for i in range(12)]  # 30 Hz
    passed = [i for i, t in enumerate(stamps) if gates.admit("overlay_compressed", t, 10.0)]
    assert passed == [0, 3, 6, 9]                  # 10 Hz: every third frame
    assert all(gates.admit("mask_compressed", t, 0.0) for t in stamps)  # its own gate, uncapped
    assert gates.admit("overlay_compressed", 50.0, 10.0)  # the bag looped: not silenced
    assert not gates.admit("overlay_compressed", 50.0 + 1 / 30, 10.0)


# ----------------------------------------------------------------------------------- the node
@pytest.fixture
def harness(context):
    h = Harness(context, DEMO_MODEL, overlay_compressed_max_rate=10.0, overlay_jpeg_quality=85)
    yield h
    h.close()


def test_node_encodes_only_while_subscribed_and_caps_the_rate(harness) -> None:
    h = harness
    h.start()
    sent = []

    def send(i):
        rgb, depth = frame(i)
        hc = header(T0 + i * FRAME_NS)
        h.send(color_msg(rgb, "rgb8", hc), depth_msg(depth, "16UC1", hc))
        sent.append(hc)
        h.wait_for(lambda: len(h.got["mask"]) >= len(sent), f"mask {i}")

    for i in range(3):  # nobody on the compressed topics: masks go out, nothing is encoded
        send(i)
    assert h.node.stats.encodes == {} and h.node.stats.processed == 3
    got = {"overlay": [], "mask": []}
    subs = [h.test.create_subscription(CompressedImage, f"/m4sam/{k}/compressed", got[k].append, 20) for k in got]
    h.wait_for(lambda: all(h.node._pubs[f"{k}_compressed"].get_subscription_count() >= 1 for k in got),
               "compressed subscribers")
    for i in range(3, 9):  # 6 frames 33 ms apart; the overlay capped at 10 Hz by stamp
        send(i)
    h.wait_for(lambda: len(got["mask"]) >= 6 and len(got["overlay"]) >= 2, "compressed outputs")
    time.sleep(0.3)
    mask_stamps = [m.header.stamp for m in got["mask"]]
    assert mask_stamps == [hc.stamp for hc in sent[3:]]
    assert [m.header.stamp for m in got["overlay"]] == [sent[3].stamp, sent[6].stamp]
    assert h.node.stats.encodes == {"mask_compressed": 6, "overlay_compressed": 2}
    # what arrived decodes to what the raw topics carry (the mask bit for bit)
    raw_masks = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in h.got["mask"]}
    for m in got["mask"]:
        raw = raw_masks[(m.header.stamp.sec, m.header.stamp.nanosec)]
        png = cv2.imdecode(np.frombuffer(bytes(m.data), np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(png, np.frombuffer(bytes(raw.data), np.uint8).reshape(raw.height, raw.width))
    raw_ov = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in h.got["overlay"]}
    for m in got["overlay"]:
        raw = raw_ov[(m.header.stamp.sec, m.header.stamp.nanosec)]
        ref = np.frombuffer(bytes(raw.data), np.uint8).reshape(raw.height, raw.width, 3)
        assert np.array_equal(decode_color(m), jpeg_round_trip(ref, 85))
    # unsubscribed again: encoding stops
    for s in subs:
        h.test.destroy_subscription(s)
    h.wait_for(lambda: all(h.node._pubs[f"{k}_compressed"].get_subscription_count() == 0 for k in got),
               "subscribers gone")
    before = dict(h.node.stats.encodes)
    for i in range(9, 11):
        send(i)
    assert dict(h.node.stats.encodes) == before
    # the cap is a run-time parameter
    assert h.node.set_parameters([Parameter("mask_compressed_max_rate", value=5.0)])[0].successful


def test_encode_bench_runs_and_counts_no_encodes_when_unsubscribed(capsys) -> None:
    from m4sam_ros.benchmarks import encode_bench

    assert encode_bench.main(["--size", "64x48", "--frames", "1", "--quality", "80", "--png-level", "3"]) == 0
    out = capsys.readouterr().out
    assert "~/overlay/compressed jpeg q80" in out and "~/mask/compressed png level 3" in out
    assert "encodes: 0" in out

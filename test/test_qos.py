"""The input QoS choice with *mixed* publishers: one best-effort publisher among reliable ones
makes the subscription best-effort (a reliable one could not connect to it), wherever it sits in
the list and whenever it appears. All-reliable or all-best-effort inputs cannot tell this rule
from "take the first publisher's" or "the majority's"; the lists here can."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import rclpy
from hypothesis import given
from hypothesis import strategies as st
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from test_node import FRAME_NS, T0, Harness, color_msg, depth_msg, frame, header

from m4sam_ros.ros import qos
from m4sam_ros.ros.params import DEMO_MODEL

R, B = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT


def profiles(*rel):
    return [SimpleNamespace(reliability=r) for r in rel]


@pytest.mark.parametrize("mixed", [(B, R, R), (R, B, R), (R, R, B), (R, B, B)])
def test_one_best_effort_publisher_among_reliable_ones_gives_best_effort(mixed):
    """Rules out following the first (or last) publisher, or the majority."""
    c = qos.choose("auto", profiles(*mixed))
    assert (c.reliability, c.publishers) == (qos.BEST_EFFORT, len(mixed)) and "best-effort" in c.why


def test_reliable_only_when_every_publisher_is_and_the_parameter_wins():
    assert qos.choose("auto", profiles(R, R, R)).reliability == qos.RELIABLE
    assert qos.choose("auto", []).reliability == qos.BEST_EFFORT  # nobody yet: connects to anyone
    assert qos.choose("auto", []).publishers == 0
    assert qos.choose("reliable", profiles(B, B)).reliability == qos.RELIABLE  # forced: the publishers don't matter
    assert qos.choose("best_effort", profiles(R)).reliability == qos.BEST_EFFORT
    with pytest.raises(ValueError, match="auto, reliable or best_effort"):
        qos.choose("Reliable", profiles(R))


@given(st.lists(st.sampled_from([R, B]), max_size=8))
def test_auto_is_reliable_exactly_when_every_publisher_is(rels):
    """For every list of publishers: reliable iff there is one and none is best-effort."""
    want = qos.RELIABLE if rels and all(r == R for r in rels) else qos.BEST_EFFORT
    assert qos.choose("auto", profiles(*rels)).reliability == want
    assert qos.profile(qos.choose("auto", profiles(*rels)), 7).reliability == (R if want == qos.RELIABLE else B)


def test_publisher_profiles_reads_every_publisher_of_both_topics():
    """The graph query over real rclpy: two reliable colour publishers and a best-effort depth one
    (remapped through the node's namespace) are three profiles, and the choice is best-effort."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("qos_probe", namespace="/cam", context=ctx)
        pubs = rclpy.create_node("qos_pubs", context=ctx)
        pubs.create_publisher(Image, "/cam/color/image_raw", QoSProfile(depth=5, reliability=R))
        pubs.create_publisher(Image, "/cam/color/image_raw", QoSProfile(depth=5, reliability=R))
        pubs.create_publisher(Image, "/cam/depth/image_raw", QoSProfile(depth=5, reliability=B))
        pubs.create_publisher(Image, "/depth/image_raw", QoSProfile(depth=5, reliability=R))  # another namespace
        found = qos.publisher_profiles(node, ["color/image_raw", "depth/image_raw"])
        assert sorted(p.reliability.name for p in found) == ["BEST_EFFORT", "RELIABLE", "RELIABLE"]
        assert qos.choose("auto", found).reliability == qos.BEST_EFFORT
        node.destroy_node()
        pubs.destroy_node()
    finally:
        ctx.try_shutdown()


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


def test_running_node_turns_best_effort_when_a_best_effort_publisher_joins(context):
    """The node starts reliable (every publisher is); a best-effort depth publisher joins the
    reliable ones: the node re-subscribes best-effort and pairs that publisher's depth. A node that
    kept reliable would never receive it (incompatible QoS), so no mask would come."""
    h = Harness(context, DEMO_MODEL)
    try:
        h.start()
        assert h.node.qos_choice.reliability == qos.RELIABLE
        rgb, depth = frame(0)
        h.send(color_msg(rgb, "rgb8", header(T0)), depth_msg(depth, "16UC1", header(T0)))
        h.wait_for(lambda: len(h.got["mask"]) >= 1, "a mask over reliable QoS")
        late = h.test.create_publisher(Image, "depth/image_raw", QoSProfile(depth=10, reliability=B))
        h.wait_for(lambda: h.node.qos_choice.reliability == qos.BEST_EFFORT and late.get_subscription_count() >= 1
                   and h.pub_color.get_subscription_count() >= 1, "the node re-subscribing best-effort", 30)
        assert h.node.qos_choice.publishers == 3 and "best-effort" in h.node.qos_choice.why
        # best-effort over loopback may lose a message: send until one mask comes back
        for i in range(1, 40):
            rgb, depth = frame(i)
            h.pub_color.publish(color_msg(rgb, "rgb8", header(T0 + i * FRAME_NS)))
            late.publish(depth_msg(depth, "16UC1", header(T0 + i * FRAME_NS)))
            try:
                h.wait_for(lambda: len(h.got["mask"]) >= 2, "a mask with the best-effort depth", 3)
                break
            except AssertionError:
                continue
        assert len(h.got["mask"]) >= 2
        subs = h.test.get_subscriptions_info_by_topic("/depth/image_raw")
        assert [s.qos_profile.reliability for s in subs] == [B]
    finally:
        h.close()

"""The node's input side: colour + depth subscriptions, approximate-time pairing, camera_info.

Every message passes a guard before the synchroniser (the real message_filters one or the
stand-in): a negative stamp is rejected (rclpy's Time refuses it, message_filters would raise),
a stamp gone back by more than ``jump_s`` drops the other epoch's queued messages once and tells
the node (which resets the tracker), and nothing raised in pairing or in the pair callback
escapes the subscription callback. Each input is an Image or a CompressedImage topic
(``transport.StreamChoice``); pairing only reads headers, so both go through the same guard and
synchroniser, and the worker decompresses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sensor_msgs.msg import CameraInfo, Image

from m4sam_ros.msgs.sync import Jump, JumpDetector, drop_stale
from m4sam_ros.ros import compat, qos
from m4sam_ros.ros.transport import StreamChoice

COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC = "color/image_raw", "depth/image_raw", "depth/camera_info"


class _Guard:
    """A message_filters-style filter between a Subscriber and the synchroniser."""

    def __init__(self, owner: RgbdInput, index: int) -> None:
        self.owner, self.index = owner, index
        self.callbacks: dict[int, tuple[Callable[..., None], tuple[Any, ...]]] = {}

    def registerCallback(self, cb: Callable[..., None], *args: Any) -> int:  # noqa: N802 - message_filters API
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg: Any) -> None:  # noqa: N802 - message_filters API
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))

    def add(self, msg: Any, *_: Any) -> None:
        self.owner._offer(self, msg)


class RgbdInput:
    """Subscriptions + synchroniser with the guard; calls ``on_pair(color, depth)`` per pair.

    ``on_reject(reason, detail)`` gets refused messages and caught errors; ``on_jump(Jump)`` a
    backwards stamp jump; ``on_message(which)`` every colour/depth arrival (for rates)."""

    def __init__(self, node: Any, *, reliability: qos.QosChoice, qos_depth: int, queue_size: int, slop: float,
                 jump_s: float, use_camera_info: bool, on_pair: Callable[[Any, Any], None],
                 on_reject: Callable[[str, str], None], on_jump: Callable[[Jump], None],
                 on_message: Callable[[str], None], streams: dict[str, StreamChoice] | None = None) -> None:
        self.node, self.choice = node, reliability
        self.streams = streams or {}
        color_type, color_topic = self._stream("color", COLOR_TOPIC)
        depth_type, depth_topic = self._stream("depth", DEPTH_TOPIC)
        self.on_pair, self.on_reject, self.on_jump, self.on_message = on_pair, on_reject, on_jump, on_message
        self.camera_info: CameraInfo | None = None
        self.jumps = JumpDetector(2, jump_s)
        self._jump_lock = threading.Lock()
        profile = qos.profile(reliability, qos_depth)
        self._filters = [compat.Subscriber(node, color_type, color_topic, qos_profile=profile),
                         compat.Subscriber(node, depth_type, depth_topic, qos_profile=profile)]
        self._guards = [_Guard(self, 0), _Guard(self, 1)]
        for f, g in zip(self._filters, self._guards, strict=True):
            f.registerCallback(self._safe_add, g)
        self.sync = compat.ApproximateTimeSynchronizer(self._guards, int(queue_size), float(slop))
        pairer = getattr(self.sync, "pairer", None)
        if pairer is not None:
            pairer.jumps = None  # the stand-in: this guard is the one jump detector, as with the real one
        self.sync.registerCallback(self._pair)
        self.subscriptions = [f.sub for f in self._filters]
        if use_camera_info:
            self.subscriptions.append(node.create_subscription(CameraInfo, INFO_TOPIC, self._info, profile))

    def _stream(self, side: str, default_topic: str) -> tuple[Any, str]:
        choice = self.streams.get(side)
        return (Image, default_topic) if choice is None else (choice.msg_type, choice.topic)

    # ------------------------------------------------------------------------------- callbacks
    def _safe_add(self, msg: Any, guard: _Guard) -> None:
        try:
            self.on_message("color" if guard.index == 0 else "depth")
            guard.add(msg)
        except Exception as exc:  # noqa: BLE001 - a subscription callback must never raise
            self.on_reject("sync_error", f"{type(exc).__name__}: {exc}")

    def _offer(self, guard: _Guard, msg: Any) -> None:
        stamp = compat.stamp_to_ns(msg.header.stamp)
        if stamp < 0:
            which = "colour" if guard.index == 0 else "depth"
            self.on_reject("negative_stamp", f"{which} stamp sec={msg.header.stamp.sec} is negative: not a "
                           "ROS time; fix the driver's clock (or use_sim_time with a valid /clock)")
            return
        with self._jump_lock:
            jump = self.jumps.check(guard.index, stamp)
            if jump is not None:
                self._drop_stale(stamp)
        if jump is not None:
            self.on_jump(jump)
        guard.signalMessage(msg)

    def _drop_stale(self, stamp: int) -> None:
        pairer = getattr(self.sync, "pairer", None)
        queues, lock = (pairer.queues, pairer._lock) if pairer is not None else (self.sync.queues, self.sync.lock)
        with lock:
            drop_stale(queues, stamp, self.jumps)

    def _pair(self, color: Any, depth: Any) -> None:
        self.on_pair(color, depth)

    def _info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    # --------------------------------------------------------------------------------- control
    def reset(self) -> None:
        """Forgets queued messages and stamps (the ~/reset service)."""
        with self._jump_lock:
            self.jumps.newest = [None, None]
            pairer = getattr(self.sync, "pairer", None)
            if pairer is not None:
                pairer.reset()
            else:
                with self.sync.lock:
                    for q in self.sync.queues:
                        q.clear()

    def publishers_changed(self, count: int) -> bool:
        """Whether the publisher count differs from the one the choice was made with."""
        return count != self.choice.publishers

    def destroy(self) -> None:
        """Destroys every subscription (callbacks stop)."""
        for sub in self.subscriptions:
            self.node.destroy_subscription(sub)
        self.subscriptions = []

"""Approximate-time pairing of colour and depth streams, free of ROS.

The same policy as ``message_filters.ApproximateTimeSynchronizer`` (ROS 2's Python port): every
stream keeps a bounded queue keyed by stamp; when a message arrives, the candidates of the other
streams within ``slop`` of it are searched, closest first, for a set whose spread is below
``slop``; the first such set is emitted and removed from the queues. The node's message_filters
stand-in and the rosbag tool both use this class, so a bag is paired exactly as live topics are.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any


class ApproximateTimePairer:
    """Pairs N streams by stamp (integer nanoseconds). Thread-safe."""

    def __init__(self, num_streams: int, queue_size: int, slop_s: float,
                 callback: Callable[..., None] | None = None) -> None:
        if num_streams < 2:
            raise ValueError(f"need at least 2 streams to pair, got {num_streams}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if slop_s < 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop_s}")
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop_s * 1e9))
        self.queues: list[dict[int, Any]] = [{} for _ in range(num_streams)]
        self.callbacks: list[Callable[..., None]] = [callback] if callback else []
        self.evicted = 0  # messages pushed out of a full queue without a partner
        self._lock = threading.Lock()

    def register_callback(self, callback: Callable[..., None]) -> None:
        self.callbacks.append(callback)

    def add(self, index: int, stamp_ns: int, msg: Any) -> tuple[Any, ...] | None:
        """Offer one message of stream ``index``; returns the emitted set (and calls back) or None."""
        with self._lock:
            matched = self._add_locked(index, int(stamp_ns), msg)
        if matched is not None:
            for cb in self.callbacks:
                cb(*matched)
        return matched

    def pending(self) -> int:
        """Messages still waiting for a partner."""
        with self._lock:
            return sum(len(q) for q in self.queues)

    def _add_locked(self, index: int, stamp: int, msg: Any) -> tuple[Any, ...] | None:
        my_queue = self.queues[index]
        my_queue[stamp] = msg
        while len(my_queue) > self.queue_size:
            del my_queue[min(my_queue)]
            self.evicted += 1
        others = [i for i in range(len(self.queues)) if i != index]
        candidates: list[list[int]] = []
        for i in others:
            near = sorted((abs(s - stamp), s) for s in self.queues[i] if abs(s - stamp) <= self.slop_ns)
            if not near:
                return None
            candidates.append([s for _, s in near])
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < self.slop_ns or self.slop_ns == 0 and len(set(stamps)) == 1:
                msgs = tuple(self.queues[i].pop(s) for i, s in enumerate(stamps))
                return msgs
        return None


def pair_sequence(events: Sequence[tuple[int, int, Any]], queue_size: int, slop_s: float,
                  num_streams: int = 2) -> list[tuple[Any, ...]]:
    """Pairs an ordered list of (stream index, stamp_ns, msg) offline, as a live run would."""
    pairer = ApproximateTimePairer(num_streams, queue_size, slop_s)
    out = []
    for index, stamp, msg in events:
        matched = pairer.add(index, stamp, msg)
        if matched is not None:
            out.append(matched)
    return out

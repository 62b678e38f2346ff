"""Approximate-time pairing of colour and depth streams, free of ROS.

The same policy as ``message_filters.ApproximateTimeSynchronizer`` (ROS 2's Python port): every
stream keeps a bounded queue keyed by stamp; when a message arrives, the candidates of the other
streams within ``slop`` of it are searched, closest first, for a set whose spread is below
``slop``; the first such set is emitted and removed from the queues. The node's message_filters
stand-in and the rosbag tool both use this class, so a bag is paired exactly as live topics are.

Two differences make it unable to die or stick, whatever the stamps do (message_filters gives the
same pairs on every stream where neither matters):

- A full queue evicts its oldest-stamped message *other than the one just offered*. message_filters
  evicts the oldest-stamped one, which is the new message itself when the queue is full of
  later-stamped ones (a clock glitch into the future): from then on no message pairs until the
  stream catches up with the glitch.
- A stream whose stamp goes back by more than ``jump_s`` (a looping bag, a camera restart) resets
  the pairing (:class:`JumpDetector`): every queued message further than ``jump_s`` from the new
  stamp is dropped, once, and ``on_jump`` is told. Forward jumps need nothing: older messages are
  evicted as new ones arrive.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: Default bound of a backwards stamp jump that resets the pairing (seconds).
DEFAULT_JUMP_S = 1.0


@dataclass(frozen=True)
class Jump:
    """A backwards stamp jump of stream ``index`` from ``previous_ns`` (its newest) to ``stamp_ns``."""

    index: int
    previous_ns: int
    stamp_ns: int

    def describe(self) -> str:
        """One log line: what happened and what the pairing did."""
        return (f"input {self.index} stamp jumped back {(self.previous_ns - self.stamp_ns) * 1e-9:.3f} s "
                f"({self.previous_ns * 1e-9:.3f} -> {self.stamp_ns * 1e-9:.3f} s; a looping bag or a camera "
                "restart): pairing restarted")


class JumpDetector:
    """Per-stream newest stamp; flags a stamp more than ``jump_s`` older than its stream's newest.

    Per stream (not across streams), so two cameras with offset clocks never trigger it."""

    def __init__(self, num_streams: int, jump_s: float = DEFAULT_JUMP_S) -> None:
        if not jump_s > 0:
            raise ValueError(f"jump bound must be > 0 seconds, got {jump_s}")
        self.jump_ns = int(round(jump_s * 1e9))
        self.newest: list[int | None] = [None] * num_streams
        self.jumps = 0

    def check(self, index: int, stamp_ns: int) -> Jump | None:
        """Records ``stamp_ns``; a Jump (and every stream forgotten) when it went back too far."""
        prev = self.newest[index]
        if prev is not None and stamp_ns < prev - self.jump_ns:
            self.newest = [None] * len(self.newest)
            self.newest[index] = stamp_ns
            self.jumps += 1
            return Jump(index, prev, stamp_ns)
        self.newest[index] = stamp_ns if prev is None else max(prev, stamp_ns)
        return None

    def stale(self, stamp_ns: int, queued: int) -> bool:
        """Whether a queued stamp belongs to another epoch than ``stamp_ns`` (dropped on a jump)."""
        return abs(queued - stamp_ns) > self.jump_ns


class ApproximateTimePairer:
    """Pairs N streams by stamp (integer nanoseconds). Thread-safe; never raises on a stamp."""

    def __init__(self, num_streams: int, queue_size: int, slop_s: float,
                 callback: Callable[..., None] | None = None, jump_s: float | None = DEFAULT_JUMP_S,
                 on_jump: Callable[[Jump], None] | None = None) -> None:
        if num_streams < 2:
            raise ValueError(f"need at least 2 streams to pair, got {num_streams}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not slop_s >= 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop_s}")
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop_s * 1e9))
        self.queues: list[dict[int, Any]] = [{} for _ in range(num_streams)]
        self.callbacks: list[Callable[..., None]] = [callback] if callback else []
        self.evicted = 0  # messages pushed out of a full queue without a partner
        self.kept_newest = 0  # evictions where message_filters would have dropped the new message
        self.jumps = JumpDetector(num_streams, jump_s) if jump_s is not None else None
        self.on_jump = on_jump
        self._lock = threading.Lock()

    def register_callback(self, callback: Callable[..., None]) -> None:
        self.callbacks.append(callback)

    def add(self, index: int, stamp_ns: int, msg: Any) -> tuple[Any, ...] | None:
        """Offer one message of stream ``index``; returns the emitted set (and calls back) or None."""
        if not 0 <= index < len(self.queues):
            raise IndexError(f"stream index {index} outside 0..{len(self.queues) - 1}")
        with self._lock:
            jump = self._check_jump(index, int(stamp_ns))
            matched = self._add_locked(index, int(stamp_ns), msg)
        if jump is not None and self.on_jump is not None:
            self.on_jump(jump)
        if matched is not None:
            for cb in self.callbacks:
                cb(*matched)
        return matched

    def reset(self) -> None:
        """Forgets every queued message and stamp (the node's reset, a new bag)."""
        with self._lock:
            for q in self.queues:
                q.clear()
            if self.jumps is not None:
                self.jumps.newest = [None] * len(self.queues)

    def pending(self) -> int:
        """Messages still waiting for a partner."""
        with self._lock:
            return sum(len(q) for q in self.queues)

    def _check_jump(self, index: int, stamp: int) -> Jump | None:
        if self.jumps is None:
            return None
        jump = self.jumps.check(index, stamp)
        if jump is not None:
            drop_stale(self.queues, stamp, self.jumps)
        return jump

    def _add_locked(self, index: int, stamp: int, msg: Any) -> tuple[Any, ...] | None:
        my_queue = self.queues[index]
        my_queue.pop(stamp, None)  # a duplicate stamp replaces the older message and becomes the newest
        my_queue[stamp] = msg
        while len(my_queue) > self.queue_size:
            oldest = min(s for s in my_queue if s != stamp)
            if min(my_queue) == stamp:
                self.kept_newest += 1
            del my_queue[oldest]
            self.evicted += 1
        candidates: list[list[int]] = []
        for i, queue in enumerate(self.queues):
            if i == index:
                continue
            near = sorted((abs(s - stamp), s) for s in queue if abs(s - stamp) <= self.slop_ns)
            if not near:
                return None
            candidates.append([s for _, s in near])
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < self.slop_ns or self.slop_ns == 0 and len(set(stamps)) == 1:
                return tuple(self.queues[i].pop(s) for i, s in enumerate(stamps))
        return None


def drop_stale(queues: Sequence[dict[int, Any]], stamp_ns: int, detector: JumpDetector) -> int:
    """Removes, in place, every queued message of another epoch than ``stamp_ns``; how many.

    In place so that it also works on message_filters' own queue dicts (the node's guard)."""
    dropped = 0
    for q in queues:
        for s in [s for s in q if detector.stale(stamp_ns, s)]:
            del q[s]
            dropped += 1
    return dropped


def pair_sequence(events: Sequence[tuple[int, int, Any]], queue_size: int, slop_s: float,
                  num_streams: int = 2, jump_s: float | None = DEFAULT_JUMP_S) -> list[tuple[Any, ...]]:
    """Pairs an ordered list of (stream index, stamp_ns, msg) offline, as a live run would."""
    pairer = ApproximateTimePairer(num_streams, queue_size, slop_s, jump_s=jump_s)
    out = []
    for index, stamp, msg in events:
        matched = pairer.add(index, stamp, msg)
        if matched is not None:
            out.append(matched)
    return out

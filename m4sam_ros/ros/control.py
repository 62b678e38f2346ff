"""Run-time control of processing: the ``~/enable`` switch, the ``max_rate`` cap, and the
per-output rate limits (``OutputGates``).

Both act where a pair is handed to the worker, so a paused or throttled pair costs nothing (no
decoding, no inference) and the model stays loaded. The cap keeps a schedule (next slot = previous
slot + period) instead of "period since the last one", so 30 Hz input capped at 10 Hz gives 10 Hz,
not the 7.5 Hz that arrival jitter would leave; an item late by half a period or more restarts the
schedule (no burst of catch-up pairs after a stall).
"""

from __future__ import annotations

import threading

#: an item this share of a period early still takes its slot (camera stamps and delivery jitter by
#: a few ms; without it, 30 Hz capped at 10 Hz would alternate 67 ms and 133 ms gaps)
JITTER = 0.25


class RateGate:
    """Admits at most ``max_rate`` items per second (0 or less: every item)."""

    def __init__(self) -> None:
        self._next: float | None = None
        self._lock = threading.Lock()

    def admit(self, now: float, max_rate: float) -> bool:
        """Whether an item arriving at monotonic time ``now`` may pass."""
        if max_rate <= 0:
            self._next = None
            return True
        period = 1.0 / max_rate
        with self._lock:
            if self._next is not None and now < self._next - JITTER * period:
                return False
            slot = self._next if self._next is not None and now - self._next < period / 2 else now
            self._next = slot + period
            return True

    def reset(self) -> None:
        with self._lock:
            self._next = None


class Control:
    """Whether processing is enabled (``~/enable``) and the rate gate, shared by callbacks."""

    def __init__(self) -> None:
        self.enabled = True
        self.gate = RateGate()

    def set_enabled(self, enabled: bool) -> bool:
        """Sets the switch; True when it changed."""
        changed = bool(enabled) != self.enabled
        self.enabled = bool(enabled)
        if changed:
            self.gate.reset()
        return changed

    def admit(self, now: float, max_rate: float) -> str | None:
        """None when a pair may go to the worker, else the counter it is skipped under
        (``paused`` or ``rate_limited``)."""
        if not self.enabled:
            return "paused"
        if not self.gate.admit(now, max_rate):
            return "rate_limited"
        return None


class OutputGates:
    """A ``RateGate`` per output (``~/overlay/compressed`` at 5 Hz while ``~/mask`` keeps every
    frame), clocked by the frames' stamps so a replayed bag is thinned the same as live input;
    a stamp that goes backwards (a looping bag) restarts that output's schedule."""

    def __init__(self) -> None:
        self._gates: dict[str, RateGate] = {}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, stamp_s: float, max_rate: float) -> bool:
        """Whether output ``key`` goes out for the frame stamped ``stamp_s`` (0 rate: always)."""
        with self._lock:
            gate = self._gates.setdefault(key, RateGate())
            if stamp_s < self._last.get(key, float("-inf")):
                gate.reset()
            self._last[key] = stamp_s
        return gate.admit(stamp_s, max_rate)


__all__ = ["Control", "OutputGates", "RateGate"]

"""Waits for the process tests (real nodes, real DDS) that stretch with the machine's load.

A fixed timeout is either long enough for a busy 2-core CI runner - and then it hides nothing
on an idle one - or it flakes there (issue 22: a 20 s wait for a mask that takes 3 s alone).
So every wait here is event-driven (it returns as soon as its condition holds) and its timeout is
the idle-machine bound times ``load_scale()``: the 1-minute load average per core, measured again
at every check, so a load spike during the wait extends it. ``M4SAM_TEST_TIMEOUT_SCALE`` sets a
floor for the factor (a slow emulated runner)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

MAX_SCALE = 8.0


def load_scale() -> float:
    """How many times slower than idle this machine may run a test now: the 1-minute load average
    per core, at least 1 (and at least ``M4SAM_TEST_TIMEOUT_SCALE``), at most 8."""
    floor = float(os.environ.get("M4SAM_TEST_TIMEOUT_SCALE", "1") or 1)
    try:
        per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        per_core = 1.0
    return min(MAX_SCALE, max(1.0, floor, per_core))


class Deadline:
    """``seconds`` on an idle machine, stretched by the load while it runs."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.seconds = float(seconds)

    def left(self) -> float:
        return self.start + self.seconds * load_scale() - time.monotonic()

    def expired(self) -> bool:
        return self.left() <= 0

    def describe(self) -> str:
        return f"{time.monotonic() - self.start:.1f} s (bound {self.seconds:.0f} s x load {load_scale():.1f})"


def wait_until(pred: Callable[[], bool], what: str, timeout: float, poll: float = 0.05,
               alive: Callable[[], object] | None = None) -> None:
    """Poll ``pred`` until it holds; AssertionError naming ``what`` after the load-scaled timeout.
    ``alive`` is called on every round (e.g. to assert a subprocess is still running)."""
    deadline = Deadline(timeout)
    while not pred():
        if alive is not None:
            alive()
        assert not deadline.expired(), f"timed out waiting for {what} after {deadline.describe()}"
        time.sleep(poll)

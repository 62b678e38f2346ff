"""The node's newest-only worker thread: it survives anything a pair's processing raises, hands
over only the newest item, and passes a requested reset to the next item."""

from __future__ import annotations

import threading
import time

from m4sam_ros.ros.worker import NewestWorker


def _wait(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_worker_survives_errors_and_keeps_processing():
    done, errors = [], []

    def process(item, reset):
        if item == "bad-value":
            raise ValueError("broken pair")
        if item == "bad-system":
            raise SystemExit(3)  # even a BaseException must not end the worker
        done.append((item, reset))

    worker = NewestWorker(process, errors.append)
    worker.start()
    try:
        for item in ("bad-value", "ok-1", "bad-system", "ok-2"):
            worker.offer(item)
            assert _wait(lambda: worker.pending() == 0 and len(done) + len(errors) >= 1)
            time.sleep(0.05)
        assert _wait(lambda: [d for d, _ in done] == ["ok-1", "ok-2"])
        assert [type(e) for e in errors] == [ValueError, SystemExit]
        assert worker.alive()
    finally:
        worker.stop(timeout=5)
    assert not worker.alive()


def test_worker_keeps_only_the_newest_item_and_passes_the_reset():
    gate = threading.Event()
    seen = []

    def process(item, reset):
        gate.wait(5)
        seen.append((item, reset))

    worker = NewestWorker(process, lambda exc: None)
    worker.start()
    try:
        worker.offer("first")
        assert _wait(lambda: worker.pending() == 0)  # taken, blocked on the gate
        assert worker.offer("second") is False
        assert worker.offer("third") is True  # replaced "second" before the worker took it
        worker.request_reset()
        gate.set()
        assert _wait(lambda: len(seen) == 2)
        assert seen == [("first", False), ("third", True)]
    finally:
        worker.stop(timeout=5)

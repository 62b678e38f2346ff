"""Newest-only hand-off from the pair callback to one inference thread (image_pipeline's
calibrator does the same with ``deque(maxlen=1)``): a pair replaced before the worker took it is
counted as dropped, never queued. The thread runs ``process(item, reset)`` and survives anything
it raises (the node counts it); it stops between two items, so a shutdown never cuts one short."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class NewestWorker:
    """``offer`` from any thread; ``process`` runs on the worker thread, one item at a time."""

    def __init__(self, process: Callable[[Any, bool], None], on_error: Callable[[BaseException], None],
                 on_take: Callable[[Any], None] | None = None, name: str = "m4sam-worker") -> None:
        self._process, self._on_error, self._on_take = process, on_error, on_take
        self._name = name
        self._cond = threading.Condition()
        self._pending: deque = deque(maxlen=1)
        self._stop = False
        self._reset = False
        self._busy = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            self._stop = False
            self._pending.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def offer(self, item: Any) -> bool:
        """Hands over the newest item; True when it replaced one the worker had not taken."""
        with self._cond:
            replaced = bool(self._pending)
            self._pending.append(item)
            self._cond.notify()
            return replaced

    def request_reset(self) -> None:
        """The next item is processed with ``reset=True`` (the tracker starts afresh)."""
        with self._cond:
            self._reset = True

    @property
    def stopping(self) -> bool:
        return self._stop

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Stops taking items, waits for the one in progress (never from the worker itself)."""
        with self._cond:
            self._stop = True
            self._pending.clear()
            self._cond.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                item = self._pending.popleft()
                reset, self._reset = self._reset, False
                if self._on_take is not None:
                    self._on_take(item)
            try:
                self._process(item, reset)
            except BaseException as exc:  # noqa: BLE001 - nothing may end the worker but stop()
                if self._stop:
                    return  # shutting down: an error now is the shutdown's, not the pair's
                self._on_error(exc)

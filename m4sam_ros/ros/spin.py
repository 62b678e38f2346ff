"""The spin loop of the node process (and of every test that hosts the node in-process).

rclpy's executors can raise out of ``spin_once`` when an entity is destroyed while another thread
builds the wait set (``InvalidHandle: cannot use Destroyable because destruction was requested``
from a subscription's event handler, or a guard condition gone to ``None``: ros2/rclpy#1206,
#1284, #1355, open). ``Executor.spin()`` lets that exception end the spinning thread, and with it
every callback of every node on it: a lifecycle transition or an input-transport switch from one
thread then silences the node for good. ``spin_until`` reports the exception and spins on; the
executor starts a fresh wait on the next call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rclpy.executors import Executor, ExternalShutdownException


def spin_until(executor: Executor, stop: threading.Event, on_error: Callable[[str, BaseException], None],
               timeout_sec: float = 0.1) -> None:
    """Spins ``executor`` until ``stop`` is set or its context shuts down; an exception out of one
    spin is passed to ``on_error("executor", exc)`` and spinning goes on. Shutdown and
    KeyboardInterrupt still end the loop (raised)."""
    context = executor.context
    while not stop.is_set() and context.ok():
        try:
            executor.spin_once(timeout_sec=timeout_sec)
        except (ExternalShutdownException, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the last wall: no callback and no race ends the spin
            on_error("executor", exc)

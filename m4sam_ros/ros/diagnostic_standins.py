"""diagnostic_updater's Python API where the package is missing (a pip-only install).

The part the node uses, with the real package's names, keys, levels and arithmetic (ros2-jazzy
branch, 4.0.0): ``DiagnosticStatusWrapper`` (summary, mergeSummary, add), ``DiagnosticTask``,
``FunctionDiagnosticTask``, ``FrequencyStatusParam`` / ``FrequencyStatus`` (events over a window
of ``window_size`` updates; ERROR with no events, WARN outside ``min * (1 - tolerance)`` ..
``max * (1 + tolerance)``), ``TimeStampStatusParam`` / ``TimeStampStatus`` (stamp delay bounds,
ERROR outside them, WARN with no data) and ``Updater`` (publishes every task on /diagnostics
as ``<node name>: <task name>`` with one hardware_id, on a timer of ``period`` seconds).
``ros/compat.py`` picks the real package when importable; ``test/test_diagnostics.py`` feeds both
the same events and compares what they publish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType


class DiagnosticStatusWrapper(DiagnosticStatus):
    """DiagnosticStatus with summary / mergeSummary / add, as diagnostic_updater's."""

    def summary(self, *args: Any) -> None:
        """summary(status) copies level and message; summary(level, message) sets them."""
        if len(args) == 1:
            self.level, self.message = args[0].level, args[0].message
        elif len(args) == 2:
            self.level, self.message = args[0], str(args[1])

    def clearSummary(self) -> None:  # noqa: N802 - diagnostic_updater's API
        self.summary(DiagnosticStatus.OK, "")

    def mergeSummary(self, *args: Any) -> None:  # noqa: N802
        """The greater level wins; two non-OK (or two OK) messages are joined with '; '."""
        lvl, msg = (args[0].level, args[0].message) if len(args) == 1 else (args[0], args[1])
        if (lvl > DiagnosticStatus.OK) == (self.level > DiagnosticStatus.OK):
            if len(self.message) > 0:
                self.message += "; "
            self.message += msg
        elif lvl > self.level:
            self.message = msg
        if lvl > self.level:
            self.level = lvl

    def add(self, key: str, val: Any) -> None:
        self.values.append(KeyValue(key=key, value=str(val)))


class DiagnosticTask:
    """A named producer of one status."""

    def __init__(self, name: str) -> None:
        self.name = name

    def getName(self) -> str:  # noqa: N802
        return self.name

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        return stat


class FunctionDiagnosticTask(DiagnosticTask):
    """A task that calls ``fn(stat)``."""

    def __init__(self, name: str, fn: Callable[[Any], Any]) -> None:
        super().__init__(name)
        self.fn = fn

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        return self.fn(stat)


class FrequencyStatusParam:
    """``freq_bound`` a dict with 'min' and optionally 'max' (read at every run, so a change
    takes effect), ``tolerance``, ``window_size`` (updates)."""

    def __init__(self, freq_bound: dict, tolerance: float = 0.1, window_size: int = 5) -> None:
        self.freq_bound, self.tolerance, self.window_size = freq_bound, tolerance, window_size


def _now() -> Any:
    return Clock(clock_type=ClockType.ROS_TIME).now()


class FrequencyStatus(DiagnosticTask):
    """The frequency of ``tick`` calls over the last ``window_size`` runs."""

    def __init__(self, params: FrequencyStatusParam, name: str = "FrequencyStatus") -> None:
        super().__init__(name)
        self.params = params
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.count = 0
            now = _now()
            self.times = [now for _ in range(self.params.window_size)]
            self.seq_nums = [0 for _ in range(self.params.window_size)]
            self.hist_indx = 0

    def tick(self) -> None:
        with self.lock:
            self.count += 1

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        with self.lock:
            now = _now()
            events = self.count - self.seq_nums[self.hist_indx]
            window = (now - self.times[self.hist_indx]).nanoseconds * 1e-9
            freq = events / window
            self.seq_nums[self.hist_indx] = self.count
            self.times[self.hist_indx] = now
            self.hist_indx = (self.hist_indx + 1) % self.params.window_size
            bound, tol = self.params.freq_bound, self.params.tolerance
            if events == 0:
                stat.summary(DiagnosticStatus.ERROR, "No events recorded.")
            elif freq < bound["min"] * (1 - tol):
                stat.summary(DiagnosticStatus.WARN, "Frequency too low.")
            elif "max" in bound and freq > bound["max"] * (1 + tol):
                stat.summary(DiagnosticStatus.WARN, "Frequency too high.")
            else:
                stat.summary(DiagnosticStatus.OK, "Desired frequency met")
            stat.add("Events in window", f"{events:d}")
            stat.add("Events since startup", f"{self.count:d}")
            stat.add("Duration of window (s)", f"{window:f}")
            stat.add("Actual frequency (Hz)", f"{freq:f}")
            if "max" in bound and bound["min"] == bound["max"]:
                stat.add("Target frequency (Hz)", f"{bound['min']:f}")
            if bound["min"] > 0:
                stat.add("Minimum acceptable frequency (Hz)", f"{bound['min'] * (1 - tol):f}")
            if "max" in bound:
                stat.add("Maximum acceptable frequency (Hz)", f"{bound['max'] * (1 + tol):f}")
        return stat


class TimeStampStatusParam:
    """Acceptable delay of a stamp behind now, in seconds (negative: in the future)."""

    def __init__(self, min_acceptable: float = -1, max_acceptable: float = 5) -> None:
        self.max_acceptable, self.min_acceptable = max_acceptable, min_acceptable


class TimeStampStatus(DiagnosticTask):
    """The delay of ticked stamps behind the clock since the last run."""

    def __init__(self, params: TimeStampStatusParam | None = None, name: str = "Timestamp Status") -> None:
        super().__init__(name)
        self.params = params if params is not None else TimeStampStatusParam()
        self.lock = threading.Lock()
        self.early_count = self.late_count = self.zero_count = 0
        self.zero_seen = False
        self.max_delta = self.min_delta = 0.0
        self.deltas_valid = False

    def tick(self, stamp: Any) -> None:
        """``stamp`` in seconds (float) or an rclpy Time."""
        if not isinstance(stamp, float):
            stamp = stamp.nanoseconds * 1e-9
        with self.lock:
            if stamp == 0:
                self.zero_seen = True
            else:
                delta = (_now().nanoseconds - stamp * 1e9) * 1e-9
                if not self.deltas_valid or delta > self.max_delta:
                    self.max_delta = delta
                if not self.deltas_valid or delta < self.min_delta:
                    self.min_delta = delta
                self.deltas_valid = True

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        with self.lock:
            stat.summary(DiagnosticStatus.OK, "Timestamps are reasonable.")
            if not self.deltas_valid:
                stat.summary(DiagnosticStatus.WARN, "No data since last update.")
            else:
                if self.min_delta < self.params.min_acceptable:
                    stat.summary(DiagnosticStatus.ERROR, "Timestamps too far in future seen.")
                    self.early_count += 1
                if self.max_delta > self.params.max_acceptable:
                    stat.summary(DiagnosticStatus.ERROR, "Timestamps too far in past seen.")
                    self.late_count += 1
                if self.zero_seen:
                    stat.summary(DiagnosticStatus.ERROR, "Zero timestamp seen.")
                    self.zero_count += 1
            stat.add("Earliest timestamp delay:", f"{self.min_delta:f}")
            stat.add("Latest timestamp delay:", f"{self.max_delta:f}")
            stat.add("Earliest acceptable timestamp delay:", f"{self.params.min_acceptable:f}")
            stat.add("Latest acceptable timestamp delay:", f"{self.params.max_acceptable:f}")
            stat.add("Late diagnostic update count:", f"{self.late_count:d}")
            stat.add("Early diagnostic update count:", f"{self.early_count:d}")
            stat.add("Zero seen diagnostic update count:", f"{self.zero_count:d}")
            self.deltas_valid = False
            self.min_delta = self.max_delta = 0.0
            self.zero_seen = False
        return stat


class Updater:
    """Runs every task each ``period`` s and publishes them as one DiagnosticArray on
    /diagnostics, names prefixed ``<node_name>: ``; declares ``diagnostic_updater.period`` and
    ``diagnostic_updater.use_fqn`` like the real one."""

    def __init__(self, node: Any, period: float = 1.0) -> None:
        self.node = node
        self.tasks: list[tuple[str, Callable[[Any], Any]]] = []
        self.lock = threading.Lock()
        self.publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 1)
        self.period_parameter = "diagnostic_updater.period"
        self._period = node.declare_parameter(self.period_parameter, period).value
        self.timer = node.create_timer(self._period, self.update)
        self.verbose = False
        self.hwid = ""
        self.use_fqn_parameter = "diagnostic_updater.use_fqn"
        if node.has_parameter(self.use_fqn_parameter):
            use_fqn = node.get_parameter(self.use_fqn_parameter).value
        else:
            use_fqn = node.declare_parameter(self.use_fqn_parameter, False).value
        self.node_name = "/".join([node.get_namespace(), node.get_name()]) if use_fqn else node.get_name()

    def add(self, *args: Any) -> None:
        """add(task) or add(name, fn); publishes 'Node starting up' for it at once."""
        name, fn = (args[0].getName(), args[0].run) if len(args) == 1 else (args[0], args[1])
        with self.lock:
            self.tasks.append((name, fn))
            stat = DiagnosticStatusWrapper()
            stat.name = name
            stat.summary(DiagnosticStatus.OK, "Node starting up")
            self.publish(stat)

    def update(self) -> None:
        statuses = []
        with self.lock:
            for name, fn in self.tasks:
                stat = DiagnosticStatusWrapper()
                stat.level, stat.name, stat.message = DiagnosticStatus.ERROR, name, "No message was set"
                stat.hardware_id = self.hwid
                statuses.append(fn(stat))
        self.publish(statuses)

    def force_update(self) -> None:
        self.update()

    def setHardwareID(self, hwid: str) -> None:  # noqa: N802
        self.hwid = hwid

    def publish(self, msg: Any) -> None:
        msgs = msg if isinstance(msg, list) else [msg]
        arr = DiagnosticArray()
        arr.header.stamp = self.node.get_clock().now().to_msg()
        for stat in msgs:
            arr.status.append(DiagnosticStatus(level=stat.level, name=self.node_name + ": " + stat.name,
                                               message=stat.message, hardware_id=stat.hardware_id,
                                               values=stat.values))
        self.publisher.publish(arr)


__all__ = ["DiagnosticStatusWrapper", "DiagnosticTask", "FrequencyStatus", "FrequencyStatusParam",
           "FunctionDiagnosticTask", "TimeStampStatus", "TimeStampStatusParam", "Updater"]

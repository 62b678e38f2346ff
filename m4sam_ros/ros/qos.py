"""Which reliability the input subscriptions take: the publishers' own, unless a parameter forces one.

A best-effort subscription connects to every publisher, but on loopback a large image sent
reliably and received best-effort loses most of its fragments (issue 13: 7 % of VGA pairs arrived).
A reliable subscription gets every frame from a reliable publisher (RealSense publishes images
reliable) but cannot connect to a best-effort one. So: ask the graph who publishes
(``get_publishers_info_by_topic``), take reliable when every publisher offers it, best-effort when
one does not; with no publisher yet, best-effort (connects to whatever comes) and ask again later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABLE, BEST_EFFORT = "reliable", "best_effort"


@dataclass(frozen=True)
class QosChoice:
    """The reliability taken and why (shown in /diagnostics and the log)."""

    reliability: str  # RELIABLE or BEST_EFFORT
    why: str
    publishers: int  # publishers seen when it was chosen

    def describe(self) -> str:
        return f"{self.reliability} ({self.why})"


def choose(setting: str, publisher_qos: Iterable[Any]) -> QosChoice:
    """The choice for parameter value ``setting`` (auto, reliable, best_effort) given the QoS
    profiles of the publishers found on the input topics."""
    profiles = list(publisher_qos)
    if setting in (RELIABLE, BEST_EFFORT):
        return QosChoice(setting, "qos_reliability parameter", len(profiles))
    if setting != "auto":
        raise ValueError(f"qos_reliability={setting!r}: must be auto, reliable or best_effort")
    if not profiles:
        return QosChoice(BEST_EFFORT, "no publisher yet: connects to any, checked again", 0)
    if any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in profiles):
        return QosChoice(BEST_EFFORT, "a publisher is best-effort", len(profiles))
    return QosChoice(RELIABLE, "matches the publishers", len(profiles))


def publisher_profiles(node: Any, topics: Iterable[str]) -> list[Any]:
    """QoS profiles of every publisher of ``topics`` (relative names, remapped like the node's)."""
    out = []
    for topic in topics:
        name = node.resolve_topic_name(topic)
        out.extend(info.qos_profile for info in node.get_publishers_info_by_topic(name))
    return out


def profile(choice: QosChoice, depth: int) -> QoSProfile:
    """The subscription profile: keep-last ``depth``, volatile, the chosen reliability."""
    rel = ReliabilityPolicy.RELIABLE if choice.reliability == RELIABLE else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=rel)

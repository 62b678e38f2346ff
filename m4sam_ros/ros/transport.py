"""Which topic and message type each camera input is read from: raw ``sensor_msgs/Image`` or
image_transport's ``sensor_msgs/CompressedImage`` (``<base>/compressed`` colour,
``<base>/compressedDepth`` depth).

Most recorded RealSense bags keep only the compressed topics (raw VGA RGB-D at 30 Hz is ~45 MB/s),
so ``input_transport: auto`` asks the graph who publishes what: per input, the raw topic when an
Image publisher is on it, else ``<base>/compressed(Depth)`` when a CompressedImage publisher is
there, else the base name itself when it carries CompressedImage (a remap straight onto a
compressed topic); with no publisher yet, raw, asked again later. ``raw`` and ``compressed`` force
one. As image_transport does, the compressed name is the *resolved* base name plus the suffix, so
a remap of ``color/image_raw`` moves its compressed topic with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sensor_msgs.msg import CompressedImage, Image

RAW_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
#: image_transport's topic suffix per input
SUFFIX = {"color": "/compressed", "depth": "/compressedDepth"}
SETTINGS = ("auto", "raw", "compressed")


@dataclass(frozen=True)
class StreamChoice:
    """One input's topic (fully resolved), whether it is compressed, and why it was taken."""

    side: str          # "color" or "depth"
    topic: str
    compressed: bool
    why: str
    found: bool = True  # False: auto saw no publisher yet (a guess, checked again)

    @property
    def msg_type(self) -> Any:
        return CompressedImage if self.compressed else Image

    def describe(self) -> str:
        kind = "CompressedImage" if self.compressed else "Image"
        return f"{self.topic} ({kind}: {self.why})"


def compressed_name(resolved_base: str, side: str) -> str:
    """``<base>/compressed`` or ``<base>/compressedDepth``, unless the base already ends in it."""
    suffix = SUFFIX[side]
    return resolved_base if resolved_base.endswith(suffix) else resolved_base + suffix


def choose(setting: str, side: str, resolved_base: str, publisher_types: Callable[[str], Iterable[str]]
           ) -> StreamChoice:
    """The choice for ``setting`` (auto, raw, compressed) on one input. ``publisher_types(topic)``
    gives the message types of the publishers on a resolved topic name."""
    if setting not in SETTINGS:
        raise ValueError(f"input_transport={setting!r}: must be one of {', '.join(SETTINGS)}")
    if side not in SUFFIX:
        raise ValueError(f"side must be 'color' or 'depth', got {side!r}")
    comp = compressed_name(resolved_base, side)
    if setting == "raw":
        return StreamChoice(side, resolved_base, False, "input_transport parameter")
    if setting == "compressed":
        return StreamChoice(side, comp, True, "input_transport parameter")
    base_types = set(publisher_types(resolved_base))
    if RAW_TYPE in base_types:
        return StreamChoice(side, resolved_base, False, "an Image publisher is on it")
    if COMPRESSED_TYPE in base_types:
        return StreamChoice(side, resolved_base, True, "its publisher sends CompressedImage")
    if comp != resolved_base and COMPRESSED_TYPE in set(publisher_types(comp)):
        return StreamChoice(side, comp, True, "only the compressed topic is published")
    return StreamChoice(side, resolved_base, False, "no publisher yet: raw assumed, checked again", found=False)


def choose_for_node(node: Any, setting: str, bases: dict[str, str]) -> dict[str, StreamChoice]:
    """Per input side, the choice for a node's relative base topics (``{"color": "color/image_raw", ...}``)."""

    def types(topic: str) -> list[str]:
        return [info.topic_type for info in node.get_publishers_info_by_topic(topic)]

    return {side: choose(setting, side, node.resolve_topic_name(base), types) for side, base in bases.items()}


def differs(old: dict[str, StreamChoice], new: dict[str, StreamChoice]) -> bool:
    """Whether a fresh auto choice calls for other subscriptions (a new guess is not a reason)."""
    return any(new[s].found and (new[s].topic, new[s].compressed) != (old[s].topic, old[s].compressed)
               for s in new)


__all__ = ["COMPRESSED_TYPE", "RAW_TYPE", "SETTINGS", "SUFFIX", "StreamChoice", "choose", "choose_for_node",
           "compressed_name", "differs"]

"""Untrusted strings (a message's ``format``, a topic name from a bag, an exception's text) as
they may appear in one log line: escaped (no newlines or control characters that forge or break
lines) and cut to a bounded length, so a 1 MB field never becomes a 2 MB log line."""

from __future__ import annotations

from typing import Any

#: longest quoted untrusted string in a log line (characters, quotes and escapes included)
MAX_QUOTED = 80
#: longest log line built from untrusted parts
MAX_LINE = 600


def quote(value: Any, limit: int = MAX_QUOTED) -> str:
    """``repr`` of ``str(value)`` (control characters escaped), cut to ``limit`` characters with
    the original length said when it was cut."""
    text = value if isinstance(value, str) else str(value)
    head = repr(text[: limit + 1])  # repr of a bounded prefix: never escapes megabytes
    if len(head) <= limit and len(text) <= limit:
        return head
    return f"{head[: max(limit - 1, 8)]}…' ({len(text)} chars)"


def clip_line(text: str, limit: int = MAX_LINE) -> str:
    """One log line: newlines and control characters escaped, cut to ``limit`` characters."""
    flat = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[: limit + 1])
    if len(flat) <= limit and len(text) <= limit:
        return flat
    return flat[:limit] + f"… ({len(text)} chars)"


__all__ = ["MAX_LINE", "MAX_QUOTED", "clip_line", "quote"]

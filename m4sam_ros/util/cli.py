"""What every command-line tool shares: help that shows each flag's default, and one meaning of
``--device`` (auto = cuda when available, else cpu, as the node's ``device`` parameter).

Why here: the tools live in apps/, benchmarks/, training/, evaluation/ and data/; a flag must read
the same in all of them (test/test_cli_help.py walks every console script's parser).
"""

from __future__ import annotations

import argparse

DEVICE_HELP = "torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults formatter, except that a help text which already states its default
    (``default: ...`` in words) is left alone and an unset one reads ``(default: none)``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default is argparse.SUPPRESS:
            return text
        if action.required or (not action.option_strings
                               and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)):
            return text  # required: no default to show
        if action.default is None:
            return text + " (default: none)"
        return text + " (default: %(default)s)"


def add_device_argument(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device`` with the shared help; resolve it with :func:`resolve_device`."""
    parser.add_argument("--device", default=default, help=DEVICE_HELP)


def resolve_device(setting: str) -> str:
    """The torch device ``setting`` means here; ValueError naming the problem and the fix."""
    import torch

    dev = str(setting).strip()
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not (dev in ("cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ValueError(f"device {dev!r}: must be auto, cpu, cuda or cuda:N")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {dev!r}: CUDA is not available here (torch {torch.__version__}); "
                         "use auto or cpu")
    return dev

"""PNG plots for training and evaluation (matplotlib, Agg: no display is ever needed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig: Any, out: Path) -> Path:
    """Writes atomically so a reader never sees half a PNG (plots are refreshed during training)."""
    from m4sam_ros.util.atomic import replace_file

    try:
        return replace_file(out, lambda tmp: fig.savefig(tmp, dpi=100))
    finally:
        plt.close(fig)


def plot_loss_curve(log_path: str | Path, out: str | Path, keys: tuple[str, ...] = ("total", "coarse", "memory")
                    ) -> Path | None:
    """Loss per step from a training run's JSONL log (log scale); None when the log is empty."""
    lines = Path(log_path).read_text().splitlines() if Path(log_path).exists() else []
    rows = [json.loads(ln) for ln in lines if ln.strip()]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in rows]
    for key in keys:
        vals = [r.get(key) for r in rows]
        if all(v is not None for v in vals):
            ax.plot(steps, vals, label=key, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(out))


def plot_pr_curves(curves: Mapping[str, Mapping[str, list[float]]], out: str | Path, title: str = "") -> Path:
    """Precision-recall curves, one line per method (``curves[method]`` has ``precision``/``recall``)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for method, c in curves.items():
        ax.plot(c["recall"], c["precision"], label=method, linewidth=1.5)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return _save(fig, Path(out))


def plot_f_threshold(curves: Mapping[str, Mapping[str, list[float]]], out: str | Path, title: str = "") -> Path:
    """F-measure (beta^2 0.3) against the binarisation threshold 0..255, one line per method."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, c in curves.items():
        ax.plot(range(len(c["f_curve"])), c["f_curve"], label=method, linewidth=1.5)
    ax.set_xlabel("threshold")
    ax.set_ylabel("F-measure")
    ax.set_xlim(0, 255)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return _save(fig, Path(out))

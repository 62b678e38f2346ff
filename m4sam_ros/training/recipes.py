"""Benchmark recipes: named sets of ``m4sam-train`` arguments (``m4sam-train --recipe rdvs``).

A recipe is a YAML mapping of argument names (as in ``--lr-heads`` -> ``lr_heads``) to values,
shipped in ``m4sam_ros/recipes/``; it sets defaults, so any flag given on the command line wins.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from m4sam_ros.training import TrainError

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The recipe ``name`` (a shipped name or a YAML path), checked against ``parser``'s arguments."""
    path = Path(name)
    if not path.suffix:
        path = RECIPE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise TrainError(f"recipe {name!r} not found; shipped recipes: {', '.join(available_recipes())} "
                         f"(or give a YAML path)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise TrainError(f"recipe {path} must be a mapping of argument names to values")
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(data) - known - {"recipe"})
    if unknown:
        raise TrainError(f"recipe {path}: unknown argument(s) {unknown}; use m4sam-train's argument names "
                         f"with '_' for '-' (e.g. lr_heads)")
    return data

"""All-or-nothing outputs: a file or folder appears under its final name only once it is complete.

Every tool writes through these (checkpoints, metrics, plots, bags, datasets, the demo), so an
interrupted or failed run never leaves a half-written output where a reader would take it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def building_file(path: str | Path) -> Iterator[Path]:
    """Yields a hidden sibling of ``path`` (same suffix) to write; renamed to ``path`` on success,
    removed on any exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_file(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Calls ``write(tmp)`` on a hidden sibling of ``path``, then renames it to ``path``."""
    with building_file(path) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return replace_file(path, lambda tmp: tmp.write_text(text))


def torch_save(obj: Any, path: str | Path) -> Path:
    import torch

    return replace_file(path, lambda tmp: torch.save(obj, tmp))


@contextmanager
def building_dir(final: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yields a folder path to build ``final`` in (inside a hidden sibling); on success it replaces
    ``final``, on any exception it is removed and ``final`` is left as it was."""
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists already")
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    built = stage / final.name
    try:
        yield built
        old = None
        if final.exists():
            old = stage / f"{final.name}.old"
            os.replace(final, old)
        try:
            os.replace(built, final)
        except BaseException:
            if old is not None:
                os.replace(old, final)
            raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)

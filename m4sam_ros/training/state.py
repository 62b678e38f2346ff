"""Checkpoint and train state as ONE atomic unit, so a run killed at any instant can resume.

A save builds ``RUN/checkpoints/.step-<N>.<rand>.partial/`` holding ``checkpoint.pt`` (the M4-SAM
weights format) and ``train_state.pt`` (optimiser, schedule, step, RNG), fsyncs both and renames
the folder to ``RUN/checkpoints/step-<N>/`` in one ``os.replace``: a unit either exists complete or
not at all. Only then is ``RUN/checkpoint.pt`` (a hard link to the newest unit's weights, for
``m4sam-eval`` and the node) switched, and units older than the newest ``KEEP`` are removed
(renamed hidden first, so a kill mid-delete never leaves a half unit under a visible name). The
previous good unit therefore survives until the next one is complete.

On resume the newest complete unit is loaded, ``log.jsonl`` is cut back to its step (no step is
logged twice) and hidden ``.partial`` leftovers of killed saves are swept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from m4sam_ros.model import CheckpointError, load_m4sam_checkpoint, save_m4sam_checkpoint
from m4sam_ros.model.checkpoint import UnreadableCheckpointError, safe_load
from m4sam_ros.training import TrainError
from m4sam_ros.util.atomic import write_text

CHECKPOINTS = "checkpoints"
CHECKPOINT = "checkpoint.pt"
STATE = "train_state.pt"
LOG = "log.jsonl"
KEEP = 2
STATE_FORMAT = "m4sam-train-state"
_UNIT = re.compile(r"^step-(\d{8})$")


def _no_fault(point: str) -> None:
    return None


#: Called after every file operation of a save with the operation's name. A no-op; the kill tests
#: replace it to end the process (``os._exit``) at each point in turn.
save_point: Callable[[str], None] = _no_fault


def _point(name: str) -> None:
    save_point(name)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


EPOCHS = "epochs"


def epoch_checkpoint(run: Path, epoch: int) -> Path:
    """RUN/epochs/epoch-<EEEE>.pt: the weights at the end of one epoch (kept, never pruned; read
    by ``m4sam_ros.evaluation.epochs``)."""
    return Path(run) / EPOCHS / f"epoch-{epoch:04d}.pt"


def unit_dir(run: Path, step: int) -> Path:
    return Path(run) / CHECKPOINTS / f"step-{step:08d}"


def list_units(run: Path) -> list[tuple[int, Path]]:
    """Complete units, oldest first (a unit is complete by construction: it is renamed into place
    only after both files are written; the file check guards against hand edits)."""
    root = Path(run) / CHECKPOINTS
    if not root.is_dir():
        return []
    units = []
    for d in root.iterdir():
        m = _UNIT.match(d.name)
        if m and d.is_dir() and (d / CHECKPOINT).is_file() and (d / STATE).is_file():
            units.append((int(m.group(1)), d))
    return sorted(units)


def _export(src: Path, dst: Path) -> None:
    """``dst`` becomes the same file as ``src`` in one rename (hard link; a copy where links fail)."""
    if dst.exists() and os.path.samefile(src, dst):
        return  # linked already (rename between two links of one file would be a no-op)
    tmp = dst.parent / f".{dst.stem}.{os.getpid()}.partial{dst.suffix}"
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _prune(run: Path, keep: int) -> None:
    for _, d in list_units(run)[:-keep]:
        doomed = d.parent / f".{d.name}.pruned.partial"
        os.replace(d, doomed)  # invisible as a unit before any file of it is removed
        shutil.rmtree(doomed, ignore_errors=True)


def save_unit(run: Path, model: torch.nn.Module, train_state: dict[str, Any], extra: dict[str, Any],
              keep: int = KEEP) -> Path:
    """Writes the unit of ``train_state['step']`` (see the module docstring); returns its folder.
    A unit of the same step that exists already is complete and kept as it is."""
    run = Path(run)
    step = int(train_state["step"])
    root = run / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = unit_dir(run, step)
    if not final.is_dir():
        stage = Path(tempfile.mkdtemp(prefix=f".step-{step:08d}.", suffix=".partial", dir=root))
        _point("stage created")
        try:
            save_m4sam_checkpoint(model, stage / CHECKPOINT, extra=extra | {"step": step})
            _point("checkpoint written")
            torch.save({"format": STATE_FORMAT, **train_state}, stage / STATE)
            _point("train state written")
            for f in (CHECKPOINT, STATE):
                _fsync(stage / f)
            os.replace(stage, final)
            _fsync(root)
            _point("unit renamed")
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    _export(final / CHECKPOINT, run / CHECKPOINT)
    _point("checkpoint exported")
    _prune(run, keep)
    _point("old units pruned")
    return final


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def load_train_state(path: Path) -> dict[str, Any]:
    """The train state at ``path`` (weights_only: a file needing code to unpickle is refused)."""
    try:
        state = safe_load(path)
    except UnreadableCheckpointError as exc:  # damaged: the run folder's problem, as below
        raise TrainError(f"{path}: cannot read the train state ({exc})") from None
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file is the run folder's problem, said in one line
        raise TrainError(f"{path}: cannot read the train state ({_first_line(exc)})") from None
    if not isinstance(state, dict) or not {"step", "optimizer", "scheduler", "torch_rng"} <= set(state):
        raise TrainError(f"{path}: not an m4sam-train train state (needs step, optimizer, scheduler, torch_rng)")
    return state


def load_latest(run: Path, model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Loads the newest complete unit's weights into ``model``; returns (train state, checkpoint
    extra, unit folder). Runs written before units existed (``RUN/{checkpoint,train_state}.pt``)
    load too, refused when the two files disagree on the step."""
    run = Path(run)
    units = list_units(run)
    if units:
        where = units[-1][1]
    elif (run / STATE).is_file():
        where = run  # the old layout: two files side by side
    else:
        raise TrainError(f"{run} holds no complete checkpoint ({CHECKPOINTS}/step-*/ with {CHECKPOINT} and "
                         f"{STATE}); is it a training run folder?")
    try:
        extra = load_m4sam_checkpoint(model, where / CHECKPOINT)
    except UnreadableCheckpointError as exc:
        raise TrainError(f"{where / CHECKPOINT}: cannot read the checkpoint ({exc})") from None
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise TrainError(f"{where / CHECKPOINT}: cannot read the checkpoint ({_first_line(exc)})") from None
    state = load_train_state(where / STATE)
    if int(extra.get("step", -1)) != int(state["step"]):
        raise TrainError(f"{where / CHECKPOINT} is at step {extra.get('step')} but {where / STATE} at step "
                         f"{state['step']} (the run was killed while saving); copy a consistent pair back")
    return state, extra, where


def sweep_partials(run: Path) -> list[str]:
    """Removes hidden ``.partial`` leftovers of killed saves from the run folder and its units'
    folder; returns their names."""
    swept = []
    for folder in (Path(run), Path(run) / CHECKPOINTS):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.name.startswith(".") and ".partial" in p.name:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                swept.append(p.name)
    return sorted(swept)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL log; a torn last line (a kill mid-write) is skipped."""
    if not Path(path).is_file():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def truncate_log(path: Path, step: int) -> int:
    """Keeps one row per step up to ``step`` (the last written wins), in step order; rewrites the
    log atomically. Returns how many rows were dropped."""
    rows = read_log(path)
    by_step = {r["step"]: r for r in rows if r["step"] <= step}
    kept = [by_step[s] for s in sorted(by_step)]
    total_lines = len(Path(path).read_text().splitlines()) if Path(path).is_file() else 0
    if total_lines != len(kept) or rows != kept:
        write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return total_lines - len(kept)

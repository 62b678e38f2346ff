"""A training run killed at ANY point of a save resumes: checkpoint and train state are one atomic
unit, the previous unit survives until the next is complete, leftovers are swept, the log holds
each step once. Kills are real: a child process saving a unit ends with ``os._exit`` at each
instrumented point (no ``finally``, no cleanup runs, as with SIGKILL)."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from m4sam_ros.model import CheckpointError, build_m4sam
from m4sam_ros.training import TrainError, state
from m4sam_ros.training.step import draw_cond_select, gt_cond_probability

SIZE = 64


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_m4sam("m4sam_demo", image_size=SIZE)


def _train_state(model: torch.nn.Module, step: int) -> dict:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
            "torch_rng": torch.get_rng_state()}


def _head_weight(model: torch.nn.Module) -> torch.Tensor:
    return next(p for n, p in model.named_parameters() if n.startswith("head.")).detach().clone()


_CHILD = """
import os, sys, torch
from m4sam_ros.model import build_m4sam
from m4sam_ros.training import state
run, step, point = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(step)
model = build_m4sam("m4sam_demo", image_size=64)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
state.save_point = lambda name: os._exit(137) if name == point else None
state.save_unit(run, model, {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
                             "torch_rng": torch.get_rng_state()}, extra={})
"""


def _killed_save(run: Path, step: int, point: str) -> int:
    """Saves the unit of ``step`` (weights of ``_model(step)``) in a child killed at ``point``."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", _CHILD, str(run), str(step), point], env=env,
                          timeout=120).returncode


@pytest.fixture(scope="module")
def models() -> dict[int, torch.nn.Module]:
    return {step: _model(step) for step in (1, 2, 3)}  # different weights per step


def _save(run: Path, model: torch.nn.Module, step: int) -> Path:
    return state.save_unit(run, model, _train_state(model, step), extra={})


def _points(run: Path, model: torch.nn.Module) -> list[str]:
    seen: list[str] = []
    state.save_point = seen.append
    try:
        _save(run, model, 99)
    finally:
        state.save_point = state._no_fault
    return seen


def test_kill_at_every_point_of_a_save_then_resume(models: dict, tmp_path: Path) -> None:
    base = tmp_path / "base"
    _save(base, models[1], 1)
    _save(base, models[2], 2)
    points = _points(tmp_path / "probe", models[3])
    assert points == ["stage created", "checkpoint written", "train state written", "unit renamed",
                      "checkpoint exported", "old units pruned"]
    for k, point in enumerate(points):
        run = tmp_path / f"kill{k}"
        shutil.copytree(base, run)

        assert _killed_save(run, 3, point) == 137, point
        done = k >= points.index("unit renamed")
        # the previous good unit always survives the kill
        assert (run / "checkpoints" / "step-00000002" / "train_state.pt").is_file(), point
        if k < points.index("stage created") + 3:
            assert any(".partial" in p.name for p in (run / "checkpoints").iterdir()), point
        swept = state.sweep_partials(run)
        assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")], point
        assert not [p for p in run.iterdir() if p.name.startswith(".")], point
        assert bool(swept) == (k < points.index("unit renamed")), (point, swept)
        fresh = _model(0)
        st, extra, where = state.load_latest(run, fresh)
        want = 3 if done else 2
        assert st["step"] == extra["step"] == want and where.name == f"step-{want:08d}", point
        torch.testing.assert_close(_head_weight(fresh), _head_weight(models[want]), rtol=0, atol=0)
        # RUN/checkpoint.pt, the file eval and the node read, is always a complete checkpoint
        exported = torch.load(run / "checkpoint.pt", weights_only=True)["extra"]["step"]
        assert exported == (3 if k >= points.index("checkpoint exported") else 2), point
        # and the run goes on: the next save completes and keeps the two newest units
        _save(run, models[1], 4)
        assert [s for s, _ in state.list_units(run)] == ([3, 4] if done else [2, 4]), point


def test_refused_and_damaged_units_are_one_line_errors(models: dict, tmp_path: Path) -> None:
    run = tmp_path / "run"
    unit = _save(run, models[1], 1)

    class Payload:
        def __reduce__(self):  # would run a command if unpickled without weights_only
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with open(unit / "train_state.pt", "wb") as f:
        pickle.dump({"step": 1, "x": Payload()}, f)
    with pytest.raises(CheckpointError, match="refused to load") as err:
        state.load_latest(run, _model(0))
    assert "\n" not in str(err.value) and not (tmp_path / "pwned").exists()
    (unit / "train_state.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(TrainError, match="cannot read the train state") as err:
        state.load_latest(run, _model(0))
    assert "\n" not in str(err.value)
    with pytest.raises(TrainError, match="no complete checkpoint"):
        state.load_latest(tmp_path / "empty", _model(0))


def test_incomplete_unit_is_passed_over_and_a_torn_old_layout_refused(models: dict, tmp_path: Path) -> None:
    """A unit folder without its train state (a hand copy, a sync tool) is not a unit: resume
    takes the newest *complete* one. The old layout (RUN/checkpoint.pt + RUN/train_state.pt) is
    refused when its two files disagree on the step (killed between the two writes). Wrong code:
    a unit is any folder with a checkpoint (resume dies on the missing state), or the steps are
    not compared (weights of step 2 resumed with the optimiser and schedule of step 1)."""
    run = tmp_path / "run"
    _save(run, models[1], 1)
    unit2 = _save(run, models[2], 2)
    (unit2 / "train_state.pt").unlink()
    assert [s for s, _ in state.list_units(run)] == [1]
    st, extra, where = state.load_latest(run, _model(0))
    assert st["step"] == extra["step"] == 1 and where.name == "step-00000001"
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(unit2 / "checkpoint.pt", old / "checkpoint.pt")
    shutil.copy(run / "checkpoints" / "step-00000001" / "train_state.pt", old / "train_state.pt")
    with pytest.raises(TrainError, match="is at step 2 but .* at step 1"):
        state.load_latest(old, _model(0))


def test_log_keeps_each_step_once(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "total": 1}\n{"step": 2, "total": 2}\n{"step": 3, "total": 3}\n'
                   '{"step": 2, "total": 22}\n{"step": 3, "tot')  # steps redone after a resume, a torn line
    assert state.truncate_log(log, 2) == 3
    assert [r["total"] for r in state.read_log(log)] == [1, 22]
    assert state.truncate_log(log, 2) == 0


def test_gt_conditioning_is_per_clip_decaying_and_reproducible() -> None:
    assert gt_cond_probability(0, 101, 0.5, 0.0) == 0.5
    assert gt_cond_probability(50, 101, 0.5, 0.0) == pytest.approx(0.25)
    assert gt_cond_probability(100, 101, 0.5, 0.0) == 0.0
    valid = torch.tensor([True] * 63 + [False])
    a = draw_cond_select(3407, 0, 7, 0, valid, 0.5)
    assert torch.equal(a, draw_cond_select(3407, 0, 7, 0, valid, 0.5))   # from the step alone
    assert not torch.equal(a, draw_cond_select(3407, 0, 8, 0, valid, 0.5))
    assert 10 < int(a.sum()) < 54 and not bool(a[-1])                    # mixed per clip; never without GT
    assert not draw_cond_select(3407, 0, 7, 0, valid, 0.0).any()
    assert draw_cond_select(3407, 0, 7, 0, valid, 1.0).sum() == 63

"""`m4sam-eval-epochs`: score every per-epoch checkpoint of a training run with `m4sam-eval`.

``m4sam-train`` keeps ``RUN/epochs/epoch-<E>.pt`` at the end of every epoch (the authors save one
per epoch and report a chosen one). This command runs ``m4sam-eval`` on each, with the same
arguments for all (everything after the known flags is passed through, e.g. ``--protocol``,
``--sam2-checkpoint``, ``--device``), and writes ``OUT/epochs.json`` and ``OUT/epochs.md``: one row
per epoch, and the best epoch by S.

Why the table says "test-set selection": picking the epoch with the best score on the split you
then report (RDVS and ViDSOD-100 have no validation split; the authors evaluate on test) is model
selection on the test set, so the best row is an optimistic figure. The table names it so and
also gives the last epoch, the unselected figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from m4sam_ros.data.datasets import DatasetError
from m4sam_ros.evaluation import evaluate
from m4sam_ros.util.atomic import write_text
from m4sam_ros.util.cli import DefaultsHelpFormatter

EPOCHS = "epochs"
SCORES = ("S", "meanE", "adpF", "MAE")


def list_epoch_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of RUN/epochs/epoch-<E>.pt, in epoch order (the layout ``m4sam-train`` writes)."""
    found = []
    for p in (Path(run) / EPOCHS).glob("epoch-*.pt"):
        stem = p.stem.removeprefix("epoch-")
        if stem.isdigit():
            found.append((int(stem), p))
    return sorted(found)


def selection_note(split: str) -> str:
    """What choosing the best epoch on ``split`` means, in one sentence."""
    if split == "test":
        return ("Best epoch chosen on the TEST split: this is test-set selection (as the authors' per-epoch "
                "choice); its figure is optimistic. The last epoch's row is the unselected figure.")
    return f"Best epoch chosen on the {split!r} split (not the test split): report the test score of that epoch."


def score_epochs(run: Path, out: Path, eval_args: list[str], epochs: list[int] | None = None) -> dict[str, Any]:
    """Runs ``m4sam-eval --checkpoint <epoch ckpt> --out OUT/epoch-<E> EVAL_ARGS`` per epoch;
    returns (and writes) the summary."""
    found = list_epoch_checkpoints(run)
    if epochs:
        found = [(e, p) for e, p in found if e in set(epochs)]
    if not found:
        raise evaluate.EvalError(f"{run}: no per-epoch checkpoints under {Path(run) / EPOCHS} "
                                 f"(m4sam-train writes them unless --no-epoch-checkpoints)")
    rows: list[dict[str, Any]] = []
    split = "test"
    for epoch, path in found:
        args = evaluate.build_parser().parse_args(
            ["--checkpoint", str(path), "--out", str(out / f"epoch-{epoch:04d}"), *eval_args])
        split = args.split
        results = evaluate.run(args)
        for method, r in sorted(results.items()):
            rows.append({"epoch": epoch, "method": method, "checkpoint": str(path), "frames": r["frames"],
                         **{k: r[k] for k in SCORES}})
    best = max(rows, key=lambda r: r["S"])
    last_epoch = found[-1][0]
    summary = {"run": str(run), "split": split, "rows": rows, "best": best,
               "last": [r for r in rows if r["epoch"] == last_epoch], "selection": selection_note(split)}
    write_text(out / "epochs.json", json.dumps(summary, indent=1))
    md = ["# m4sam-eval-epochs", "", f"run `{run}`, split `{split}`", "",
          "| epoch | method | " + " | ".join(SCORES) + " | frames |",
          "|---:|---|" + "---:|" * (len(SCORES) + 1)]
    md += [f"| {r['epoch']} | {r['method']} | " + " | ".join(f"{r[k]:.4f}" for k in SCORES) + f" | {r['frames']} |"
           for r in rows]
    md += ["", f"Best by S: epoch {best['epoch']} ({best['method']}, S {best['S']:.4f}); last epoch {last_epoch}.",
           "", summary["selection"], ""]
    write_text(out / "epochs.md", "\n".join(md))
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The command line (test/test_cli_help.py reads every flag's help)."""
    p = argparse.ArgumentParser(prog="m4sam-eval-epochs", description=__doc__.splitlines()[0],
                                epilog="Other arguments go to m4sam-eval (required there: --dataset, --data-root).",
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("run", help="training run folder (holds epochs/epoch-<E>.pt)")
    p.add_argument("--out", required=True, help="folder for one m4sam-eval output per epoch and epochs.json/.md")
    p.add_argument("--epochs", type=int, nargs="+", help="only these epochs (default: every one saved)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args, rest = p.parse_known_args(argv)
    try:
        summary = score_epochs(Path(args.run), Path(args.out), rest, args.epochs)
    except (evaluate.EvalError, DatasetError) as exc:
        print(f"m4sam-eval-epochs: error: {exc}", file=sys.stderr)
        return 2
    b = summary["best"]
    print(f"best by S: epoch {b['epoch']} ({b['method']}): S {b['S']:.4f}; {summary['selection']}")
    print(f"wrote {Path(args.out) / 'epochs.json'} and {Path(args.out) / 'epochs.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

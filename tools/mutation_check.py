#!/usr/bin/env python3
"""Mutation check: does the test suite notice deliberate bugs?

Each mutant below is one deliberate bug (a regular expression and its replacement in one file)
plus the tests that should catch it. The script copies the repository (tracked and untracked,
non-ignored files) to a temporary folder - the working tree is never touched - runs the union of
the selected tests once on the unmodified copy (they must pass, or nothing below means anything),
then for each mutant writes the bug into the copy, runs that mutant's tests (stopping at the first
failure) and restores the file. A mutant whose tests still pass SURVIVED: the suite does not pin
that behaviour. A mutant whose pattern no longer matches the code exactly once is STALE: edit its
pattern when you change the code it targets, so the list stays in step.

    .venv/bin/python tools/mutation_check.py              # every mutant (minutes; OMP_NUM_THREADS=1)
    .venv/bin/python tools/mutation_check.py --list       # the mutants and whether each still matches
    .venv/bin/python tools/mutation_check.py --only predictor-memory-fp32 --only depth-minmax

Exit status: 0 when every mutant was killed; 1 when one survived, is stale or errored; 2 when the
unmodified copy already fails its tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug: ``pattern`` (a regex that must match ``path`` exactly once) is replaced by
    ``replacement`` (``re.sub`` syntax); ``tests`` are pytest arguments that must then fail."""

    name: str
    path: str
    pattern: str
    replacement: str
    tests: tuple[str, ...]
    why: str
    owner: str


P = "test/test_predictor.py"
MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- the seven of issue 15's table
    Mutant("predictor-memory-fp32", "m4sam_ros/predictor/memory_bank.py",
           r'out\["maskmem_features"\]\.to\(torch\.bfloat16\)', 'out["maskmem_features"]',
           (f"{P}::test_parity_with_sam2_video_predictor",),
           "frame memories stored in fp32 instead of bf16 (SAM2's video predictor storage)", "MODEL"),
    Mutant("predictor-bound-report", "m4sam_ros/predictor/streaming.py",
           r"(def max_state_nbytes\(self\)[^\n]*:\n)", r"\1        return 10**12\n",
           (P, "-k", "bound"), "max_state_nbytes() reports 10**12", "MODEL"),
    Mutant("predictor-no-low-score-reinit", "m4sam_ros/predictor/reinit_policy.py",
           r"object_score < self\.score_threshold", "False",
           (P, "-k", "low_object_score"), "low-object-score re-initialisation removed", "MODEL"),
    Mutant("predictor-keeps-failed-track", "m4sam_ros/predictor/memory_bank.py",
           r"self\.non_cond\.clear\(\)", "pass",
           (P, "-k", "reconditioning or bound"), "re-conditioning keeps the failed track's frames", "MODEL"),
    Mutant("depth-minmax", "m4sam_ros/model/depth.py",
           r"near, far = np\.percentile\(values, \[LOW_PERCENTILE, HIGH_PERCENTILE\]\)",
           "near, far = values.min(), values.max()",
           ("test/test_depth_norm.py",), "metric depth normalised with min/max, not the 1st/99th percentiles",
           "TRAIN"),
    Mutant("depth-relative-minmax", "m4sam_ros/model/depth.py",
           r"low, high = np\.percentile\(values, \[LOW_PERCENTILE, HIGH_PERCENTILE\]\)",
           "low, high = values.min(), values.max()",
           ("test/test_depth_norm.py",), "16-bit benchmark depth stretched between min/max, not percentiles",
           "TRAIN"),
    Mutant("eval-resize-nearest", "m4sam_ros/evaluation/metrics.py",
           r"interpolation=cv2\.INTER_LINEAR", "interpolation=cv2.INTER_NEAREST",
           ("test/test_eval_resize.py",), "predictions resized to the GT with nearest, not bilinear", "TESTS"),
    Mutant("jitter-on-depth", "m4sam_ros/data/clips.py",
           r"depth01 = normalize_depth\(([^)\n]*)\)",
           r"depth01 = np.clip(normalize_depth(\1) * aug.brightness, 0.0, 1.0)",
           ("test/test_augment.py",), "brightness jitter applied to depth too", "TRAIN"),
    # ---------------------------------------------------------------- the other gaps issue 15 names
    Mutant("bag-output-without-pairs", "m4sam_ros/apps/bag.py",
           r"if summary\.processed == 0:", "if False:",
           ("test/test_bag_io.py", "-k", "no_processable_pair"), "a bag with no processable pair still writes output",
           "IO"),
    Mutant("node-no-input-validation", "m4sam_ros/ros/pipeline.py",
           r"problem = compat\.image_problem\(msg, allowed\)", "problem = None",
           ("test/test_node.py", "-k", "fuzz or bad_input"),
           "Image messages no longer validated (step, data length, encoding, size)", "NODE"),
    Mutant("node-no-worker-catch-all", "m4sam_ros/ros/worker.py",
           r"(def _loop\(self\)[\s\S]*?)except BaseException as exc:", r"\1except ZeroDivisionError as exc:",
           ("test/test_worker.py",),
           "the worker thread's catch-all removed (one bad pair ends the worker)", "NODE"),
    Mutant("node-model-error-uncaught", "m4sam_ros/ros/node.py",
           r"(result = predictor\.step\([\s\S]*?)except Exception as exc:", r"\1except ZeroDivisionError as exc:",
           ("test/test_node.py", "-k", "bad_input"),
           "a model error in the node is no longer counted as inference_error", "NODE"),
    Mutant("predictor-import-error", "m4sam_ros/predictor/streaming.py",
           r"(from __future__ import annotations\n)", r"\1import m4sam_ros._mutant_no_such_module  # noqa\n",
           ("test/test_bag.py",), "the predictor cannot be imported (importorskip would hide it)", "IO"),
    # ---------------------------------------------------------------- more on the predictor
    Mutant("predictor-unbounded-history", "m4sam_ros/predictor/memory_bank.py",
           r"while len\(self\.non_cond\) > self\.keep_non_cond:", "while False:",
           (P, "-k", "constant"), "tracked frames never evicted: the state grows forever", "MODEL"),
    Mutant("predictor-one-frame-short", "m4sam_ros/predictor/streaming.py",
           r"self\.sam\.max_obj_ptrs_in_encoder - 1\)", "self.sam.max_obj_ptrs_in_encoder - 2)",
           (P, "-k", "constant"), "keeps 14 tracked frames where SAM2 reads 15 object pointers", "MODEL"),
    Mutant("predictor-cond-uncapped", "m4sam_ros/predictor/memory_bank.py",
           r"while cond and len\(self\.cond\) > self\.max_cond_frames:", "while False:",
           (P, "-k", "bound"), "conditioning frames never dropped", "MODEL"),
    Mutant("predictor-pos-enc-per-frame", "m4sam_ros/predictor/memory_bank.py",
           r'"maskmem_pos_enc": self\.pos_enc,',
           '"maskmem_pos_enc": [x.clone() for x in self.pos_enc],',
           (P, "-k", "constant"), "one positional encoding copy per frame instead of one shared", "MODEL"),
    Mutant("predictor-no-stamp-reset", "m4sam_ros/predictor/streaming.py",
           r"stamp < self\._last_stamp", "False",
           (P, "-k", "backwards"), "a stamp going backwards (looping bag) no longer restarts", "MODEL"),
    Mutant("predictor-no-iou-reinit", "m4sam_ros/predictor/reinit_policy.py",
           r"iou < self\.iou_threshold", "False",
           (P, "-k", "bound"), "memory/coarse disagreement no longer re-initialises", "MODEL"),
    Mutant("predictor-no-scene-cut", "m4sam_ros/predictor/reinit_policy.py",
           r"return float\(np\.mean\(prev \* thumb\)\) < self\.cut_threshold", "return False",
           (P, "-k", "scene_cut"), "scene cuts no longer re-condition", "MODEL"),
    Mutant("predictor-box-min-area", "m4sam_ros/predictor/streaming.py",
           r"if area < min_area:", "if area < 0:",
           (P, "-k", "boxes"), "boxes below the minimum area kept", "MODEL"),
    # ---------------------------------------------------------------- data and metrics
    Mutant("depth-holes-not-zero", "m4sam_ros/model/depth.py",
           r"out\[valid\] = np\.clip\(nearness\[valid\], 0\.0, 1\.0\)", "out[:] = np.clip(nearness, 0.0, 1.0)",
           ("test/test_depth_norm.py",), "invalid depth pixels get a nearness instead of 0", "TRAIN"),
    Mutant("depth-polarity", "m4sam_ros/model/depth.py",
           r"nearness = 1\.0 - \(", "nearness = 0.0 + (",
           ("test/test_depth_norm.py",), "far pixels map to 1 (farness instead of nearness)", "TRAIN"),
    Mutant("metrics-floor-quantise", "m4sam_ros/evaluation/metrics.py",
           r"np\.round\(np\.clip\(", "np.floor(np.clip(",
           ("test/test_metrics.py",), "maps quantised by truncation, not rounding", "TESTS"),
    Mutant("metrics-beta", "m4sam_ros/evaluation/metrics.py",
           r"BETA2 = 0\.3", "BETA2 = 1.0",
           ("test/test_metrics.py",), "F-measure with beta^2 = 1 instead of 0.3", "TESTS"),
    Mutant("metrics-mean-e", "m4sam_ros/evaluation/metrics.py",
           r'"meanE": float\(e_curve\.mean\(\)\)', '"meanE": float(e_curve.max())',
           ("test/test_metrics.py",), "mean E-measure reports the maximum", "TESTS"),
    # ---------------------------------------------------------------- colour/depth pairing
    Mutant("sync-evicts-newest", "m4sam_ros/msgs/sync.py",
           r"oldest = min\(s for s in my_queue if s != stamp\)", "oldest = max(s for s in my_queue if s != stamp)",
           ("test/test_sync.py", "-k", "real_message_filters or full_queue"),
           "a full queue drops its newest message instead of its oldest", "NODE"),
    Mutant("sync-farthest-first", "m4sam_ros/msgs/sync.py",
           r"sorted\(\(abs\(s - stamp\), s\)", "sorted((-abs(s - stamp), s)",
           ("test/test_sync.py", "-k", "real_message_filters or closest"),
           "partner candidates tried farthest first", "NODE"),
    # ---------------------------------------------------------------- fine-tuning and the output branch
    Mutant("train-init-ignored", "m4sam_ros/training/train.py",
           r"m4sam_checkpoint=None if args\.resume else args\.init\)", "m4sam_checkpoint=None)",
           ("test/test_train.py", "-k", "init_fine"), "--init weights are not loaded (training starts from scratch)",
           "TRAIN"),
    Mutant("output-auto-ignores-checkpoint", "m4sam_ros/predictor/streaming.py",
           r'kwargs\.setdefault\("recommended_output", recommended_output\(m4sam_checkpoint\)\)', "pass",
           ("test/test_model_checkpoint.py", "-k", "recommended"),
           "output auto ignores the checkpoint's recommended branch", "MODEL"),
    # ---- issue 19 (i19)
    Mutant("find-python-accepts-310", "tools/find_python.py",
           r"SUPPORTED = \(\(3, 12\), \(3, 11\)\)", "SUPPORTED = ((3, 12), (3, 11), (3, 10))",
           ("test/test_setup_python.py",), "make setup accepts Python 3.10 (no wheels for the pins)", "I19"),
    Mutant("find-python-not-312-first", "tools/find_python.py",
           r"min\(found, key=lambda f: f\[0\]\)", "found[-1]",
           ("test/test_setup_python.py",), "make setup takes the last interpreter found, not 3.12 first", "I19"),
    Mutant("rosbag-plays-before-active", "launch/rosbag.launch.py",
           r"LaunchDescription\(\[\*args, \*players, resume_when_active, m4sam\]\)",
           "LaunchDescription([*args, *players, resume, m4sam])",
           ("test/test_launch.py", "-k", "waits_for_the_model"),
           "the paused player is resumed at once, while the model still loads", "I19"),
    Mutant("rviz-missing-not-checked", "launch/m4sam.launch.py",
           r"    if problem:\n        warn\(problem\)\n        return \[\]\n", "",
           ("test/test_launch.py", "-k", "without_rviz2"), "rviz:=true without rviz2 kills the launch", "I19"),
    Mutant("realsense-missing-not-checked", "launch/realsense.launch.py",
           r"if problem is None:", "if True:",
           ("test/test_launch.py", "-k", "without_the_driver"),
           "realsense.launch.py without realsense2_camera fails with a traceback", "I19"),
    Mutant("launch-model-args-ignored", "launch/m4sam.launch.py",
           r"                    overrides\],", "                    {}],",
           ("test/test_launch.py", "-k", "override_the_params_file"),
           "checkpoint/sam2_checkpoint/device/output launch arguments never reach the node", "I19"),
    Mutant("node-help-starts-the-node", "m4sam_ros/ros/node.py",
           r"    build_parser\(\)\.parse_known_args\(remove_ros_args\(sys\.argv if args is None else args\)\[1:\]\)\n",
           "", ("test/test_cli_help.py", "-k", "node_help_starts"),
           "m4sam_node --help starts rclpy and loads the model", "I19"),
    Mutant("cli-help-hides-defaults", "m4sam_ros/util/cli.py",
           r'return text \+ " \(default: %\(default\)s\)"', "return text",
           ("test/test_cli_help.py", "-k", "every_flag"), "flag help does not show the default", "I19"),
    Mutant("cli-device-default-cpu", "m4sam_ros/util/cli.py",
           r'default: str = "auto"\) -> None', 'default: str = "cpu") -> None',
           ("test/test_cli_help.py", "-k", "device_defaults"), "--device defaults to cpu instead of auto", "I19"),
)


# ------------------------------------------------------------------------------------ machinery

def repo_files(root: Path) -> list[str]:
    """Tracked and untracked, non-ignored files (what a fresh checkout plus work in progress has)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         check=True, capture_output=True).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (root / f).is_file()})


def copy_repo(root: Path, dest: Path) -> None:
    for rel in repo_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def apply(m: Mutant, source: str) -> str:
    """The mutated text; ValueError (stale) unless the pattern matches exactly once."""
    n = len(re.findall(m.pattern, source))
    if n != 1:
        raise ValueError(f"pattern matches {n} times in {m.path} (must be exactly once): {m.pattern!r}")
    mutated = re.sub(m.pattern, m.replacement, source, count=1)
    if mutated == source:
        raise ValueError("the replacement changes nothing")
    compile(mutated, m.path, "exec")  # a mutant must still be Python
    return mutated


def check_patterns(root: Path, mutants: list[Mutant]) -> dict[str, str | None]:
    """name -> None when the mutant applies to the code under ``root``, else why it does not."""
    problems: dict[str, str | None] = {}
    for m in mutants:
        path = root / m.path
        try:
            if not path.is_file():
                raise ValueError(f"{m.path} does not exist")
            apply(m, path.read_text())
            problems[m.name] = None
        except (ValueError, SyntaxError) as exc:
            problems[m.name] = str(exc)
    return problems


def test_env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file must never run from a mutant's bytecode
    env.setdefault("OMP_NUM_THREADS", "1")
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # the copy lives elsewhere: point test/conftest.py at this checkout's ../shared/ros
    env.setdefault("M4SAM_SHARED_ROS", str(ROOT.parent / "shared" / "ros"))
    return env


def run_pytest(copy: Path, args: list[str], timeout: float, stop_first: bool = True) -> tuple[int, float, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
           "-W", "ignore::UserWarning", *(["-x"] if stop_first else []), *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=test_env(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return -1, time.perf_counter() - t0, out
    return proc.returncode, time.perf_counter() - t0, proc.stdout + proc.stderr


def selections(mutants: list[Mutant]) -> list[list[str]]:
    """The baseline runs: per test file, the union of the mutants' selections in that file (the
    whole file, the named tests, or the -k expressions joined with "or")."""
    whole: set[str] = set()
    ids: dict[str, set[str]] = {}
    exprs: dict[str, set[str]] = {}
    for m in mutants:
        if len(m.tests) == 3 and m.tests[1] == "-k":
            exprs.setdefault(m.tests[0], set()).add(m.tests[2])
        elif len(m.tests) == 1 and "::" in m.tests[0]:
            ids.setdefault(m.tests[0].split("::")[0], set()).add(m.tests[0])
        elif len(m.tests) == 1:
            whole.add(m.tests[0])
        else:
            raise ValueError(f"{m.name}: tests must be (file,), (file::test,) or (file, '-k', expr)")
    runs = [[f] for f in sorted(whole)]
    for f in sorted(set(ids) | set(exprs)):
        if f in whole:
            continue
        if f in exprs:
            names = [i.split("::", 1)[1] for i in ids.get(f, ())]
            expr = " or ".join(f"({e})" for e in sorted(exprs[f]) + sorted(names))
            runs.append([f, "-k", expr])
        else:
            runs.append(sorted(ids[f]))
    return runs


def summary_line(output: str) -> str:
    """pytest's last line, plus the first failed test and its first error line (what caught it)."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    failed = next((ln for ln in lines if ln.startswith(("FAILED ", "ERROR "))), "")
    error = next((ln.strip() for ln in lines if ln.startswith("E ")), "")
    parts = [lines[-1][:100], failed[:160], error[:160]]
    return " | ".join(p for p in parts if p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list the mutants and whether each still applies")
    ap.add_argument("--only", action="append", default=[], help="run only this mutant (repeatable)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmodified run (you just did it)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run (a hang counts killed)")
    ap.add_argument("--json", help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = ap.parse_args(argv)

    names = {m.name for m in MUTANTS}
    unknown = [n for n in args.only if n not in names]
    if unknown:
        print(f"unknown mutant(s): {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 1
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    stale = check_patterns(ROOT, mutants)
    if args.list:
        for m in mutants:
            state = "ok" if stale[m.name] is None else f"STALE: {stale[m.name]}"
            print(f"{m.name:32s} {m.owner:6s} {m.path:28s} {state}\n{'':32s} {m.why}\n{'':32s} tests: "
                  f"{' '.join(m.tests)}")
        return 0 if all(v is None for v in stale.values()) else 1

    tmp = Path(tempfile.mkdtemp(prefix="m4sam-mutants-"))
    copy = tmp / "repo"
    results: list[dict] = []
    try:
        copy_repo(ROOT, copy)
        probe = subprocess.run([sys.executable, "-c", "import m4sam_ros; print(m4sam_ros.__file__)"], cwd=copy,
                               env=test_env(copy), capture_output=True, text=True)
        if not probe.stdout.strip().startswith(str(copy)):
            print(f"the copy does not import its own m4sam_ros ({probe.stdout.strip()} {probe.stderr.strip()})",
                  file=sys.stderr)
            return 2
        runnable = [m for m in mutants if stale[m.name] is None]
        if runnable and not args.no_baseline:
            for base_args in selections(runnable):
                print(f"baseline (unmodified copy): pytest {' '.join(base_args)}", flush=True)
                rc, secs, out = run_pytest(copy, base_args, timeout=args.timeout * 3, stop_first=False)
                print(f"  rc {rc}, {secs:.0f} s: {summary_line(out)}", flush=True)
                if rc != 0:
                    print(out[-6000:], file=sys.stderr)
                    print("the unmodified code fails these tests: fix that first", file=sys.stderr)
                    return 2
        for m in mutants:
            row = {"name": m.name, "owner": m.owner, "path": m.path, "why": m.why, "tests": " ".join(m.tests)}
            if stale[m.name] is not None:
                row |= {"result": "STALE", "seconds": 0.0, "detail": stale[m.name]}
                results.append(row)
                print(f"{m.name:32s} STALE     {stale[m.name]}", flush=True)
                continue
            target = copy / m.path
            original = target.read_text()
            try:
                target.write_text(apply(m, original))
                rc, secs, out = run_pytest(copy, list(m.tests), timeout=args.timeout)
            finally:
                target.write_text(original)
            if rc == -1:
                result = "killed"
                detail = f"timeout after {secs:.0f} s"
            elif rc in (1, 2, 3):  # failures, or an import/collection error the mutant caused
                result, detail = "killed", summary_line(out)
            elif rc == 0:
                result, detail = "SURVIVED", summary_line(out)
            else:  # 4 usage error, 5 nothing collected: the selection itself is wrong
                result, detail = "ERROR", f"pytest rc {rc}: {summary_line(out)}"
            row |= {"result": result, "seconds": round(secs, 1), "detail": detail}
            results.append(row)
            print(f"{m.name:32s} {result:9s} {secs:6.1f} s  {detail}", flush=True)
    finally:
        if args.keep:
            print(f"copy kept at {copy}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print("\n| mutant | file (owner) | result | s | tests |\n|---|---|---|---:|---|")
    for r in results:
        print(f"| {r['name']} | {r['path']} ({r['owner']}) | {r['result']} | {r['seconds']} | {r['tests']} |")
    bad = [r for r in results if r["result"] != "killed"]
    killed = len(results) - len(bad)
    print(f"\n{killed} of {len(results)} mutants killed" + (f"; not killed: {', '.join(r['name'] for r in bad)}"
                                                           if bad else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The interpreter `make setup` builds the venv with: prints its path on stdout, says on stderr
which one and why, or exits 1 with the fix.

Why a script: Ubuntu 24.04 (ROS 2 Jazzy's platform) has only python3.12, Debian 12 / this CI
python3.11; a hard-coded name fails on one of them. The ROS wheels and torch are tested on 3.11
and 3.12 (README "Install"), so those two are accepted, 3.12 first; older ones are refused
(the code needs 3.10+ syntax and the pins have no wheels for them), newer ones too (untested pins).
A name on PATH is not enough: a pyenv shim exists for every version and fails when run, so each
candidate is run once and asked its version (and whether it can create a venv).

    tools/find_python.py                 # python3.12, else python3.11, else python3
    tools/find_python.py --python X      # check X (PYTHON=X make setup) and print it

Written for any Python 3 (it may be run by an old python3 that it then refuses).
"""
# ruff: noqa: UP021, UP022, UP031 - no text=/capture_output (3.7+): Ubuntu 18.04's python3 runs this too

import argparse
import os
import shutil
import subprocess
import sys

SUPPORTED = ((3, 12), (3, 11))  # preference order
CANDIDATES = ("python3.12", "python3.11", "python3")
PROBE = ("import sys; print('%d.%d.%d' % sys.version_info[:3]); "
         "import venv, ensurepip")  # a venv needs ensurepip (Debian/Ubuntu: the python3.X-venv package)


def fix_text():
    """What to do when no supported interpreter is found (Ubuntu first: the robot platform)."""
    return ("m4sam_ros needs Python 3.12 or 3.11 (with venv). Ubuntu 24.04: sudo apt install python3.12-venv; "
            "Ubuntu 22.04 / Debian 12: sudo apt install python3.11 python3.11-venv (22.04: from the "
            "deadsnakes PPA); or name one: make setup PYTHON=/path/to/python3.12")


def probe(exe):
    """(version tuple, has venv) of the interpreter ``exe``, or (None, reason) when it does not run."""
    try:
        out = subprocess.run([exe, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, "does not run (%s)" % exc
    first = out.stdout.strip().splitlines()[:1]
    try:
        version = tuple(int(x) for x in first[0].split("."))
    except (IndexError, ValueError):
        err = (out.stderr.strip().splitlines() or ["exit status %d" % out.returncode])[-1]
        return None, "does not run (%s)" % err
    return version, out.returncode == 0


def describe(exe, version):
    return "%s (Python %s)" % (exe, ".".join(str(v) for v in version))


def choose(requested=None):
    """(path, message) of the interpreter to use; SystemExit(1) with the fix when there is none."""
    names = [requested] if requested else list(CANDIDATES)
    seen = []
    found = []
    for name in names:
        path = shutil.which(name) if os.sep not in name else (name if os.access(name, os.X_OK) else None)
        if path is None:
            seen.append("%s: not found" % name)
            continue
        version, ok = probe(path)
        if version is None:
            seen.append("%s: %s" % (path, ok))
            continue
        if version[:2] not in SUPPORTED:
            seen.append("%s: not supported" % describe(path, version))
            continue
        if not ok:
            seen.append("%s: cannot create a venv (sudo apt install python%d.%d-venv)"
                        % (describe(path, version), version[0], version[1]))
            continue
        found.append((SUPPORTED.index(version[:2]), path, version))
    if not found:
        sys.exit("no usable Python for the venv: %s.\n%s" % ("; ".join(seen), fix_text()))
    rank, path, version = min(found, key=lambda f: f[0])
    how = "PYTHON=%s" % requested if requested else "the newest supported Python on PATH"
    return path, "make setup: using %s (%s)" % (describe(path, version), how)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--python", default="",
                    help="the interpreter to check instead of searching PATH (empty: search)")
    args = ap.parse_args(argv)
    path, message = choose(args.python or None)
    print(message, file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

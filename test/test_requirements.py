"""The pinned requirement files install where the README says they do (its tested matrix):

* every file resolves for CPython 3.11 and 3.12 on manylinux x86_64, and the runtime file (what
  a robot installs) also on aarch64 (Jetson, ARM robots) - with uv's resolver for another
  interpreter and platform, wheels only except the pure-Python packages that publish no wheel
  (pip's --python-version needs --only-binary=:all: for everything, which those fail);
* the runtime file leaves Ubuntu 24.04's apt numpy 1.26 alone: `pip install --dry-run --report`
  into an environment that already holds numpy 1.26.4 installs no other numpy.

torch and sam2 are in no requirement file (the Makefile and the README install them first), so
no run downloads torch; uv and pip cache the index metadata (~/.cache), a second run takes seconds.
The tests need the package index: they skip, saying so, only when it cannot be reached.
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: pure-Python packages that publish only an sdist: uv may build them (for their metadata only)
SDIST_ONLY = ("iopath", "antlr4-python3-runtime", "empy")
INDEX = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or "https://pypi.org/simple"


def _index_reachable() -> str | None:
    try:
        with urllib.request.urlopen(f"{INDEX.rstrip('/')}/pip/", timeout=10) as resp:
            resp.read(1)
        return None
    except OSError as exc:
        return f"package index {INDEX} unreachable ({exc}); these tests need it"


_UNREACHABLE = _index_reachable()
pytestmark = pytest.mark.skipif(_UNREACHABLE is not None, reason=_UNREACHABLE or "")


def uv_compile(req: Path, python: str, platform: str, *extra: str) -> subprocess.CompletedProcess:
    """`uv pip compile` of ``req`` for CPython ``python`` on ``platform`` (wheels only, but SDIST_ONLY)."""
    from uv import find_uv_bin  # requirements-dev.txt

    no_binary = [arg for name in SDIST_ONLY for arg in ("--no-binary", name)]
    cmd = [find_uv_bin(), "pip", "compile", str(req), "--python-version", python, "--python-platform", platform,
           "--only-binary", ":all:", *no_binary, "--no-header", "--no-annotate", "--quiet",
           "--default-index", INDEX, *extra]
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")  # sdists' metadata are built with this Python
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


def pins(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.split(";")[0].strip()
    return out


CASES = [(f"requirements-{dist}.txt", py, "x86_64-manylinux_2_28")
         for dist in ("jazzy", "kilted") for py in ("3.11", "3.12")]
CASES += [("requirements-runtime.txt", py, "aarch64-manylinux_2_28") for py in ("3.11", "3.12")]


@pytest.mark.parametrize("req, python, platform", CASES, ids=lambda v: str(v))
def test_requirement_file_resolves(req, python, platform):
    """Each file's pins (and their dependencies) have wheels for that interpreter and platform."""
    out = uv_compile(ROOT / req, python, platform)
    assert out.returncode == 0, f"{req} does not resolve for cp{python.replace('.', '')} {platform}:\n{out.stderr}"
    resolved = pins(out.stdout)
    for name, version in pins((ROOT / req).read_text()).items():
        assert resolved.get(name) == version, f"{name}: pinned {version}, resolved {resolved.get(name)}"


@pytest.mark.parametrize("platform", ["x86_64-manylinux_2_28", "aarch64-manylinux_2_28"])
def test_runtime_file_resolves_beside_ubuntu_2404_numpy(tmp_path, platform):
    """Ubuntu 24.04 (Python 3.12, apt numpy 1.26.4): a resolution with numpy held at 1.26.4 exists."""
    held = tmp_path / "apt.txt"
    held.write_text("numpy==1.26.4\n")
    out = uv_compile(ROOT / "requirements-runtime.txt", "3.12", platform, "--constraint", str(held))
    assert out.returncode == 0, out.stderr
    assert pins(out.stdout)["numpy"] == "1.26.4"


def test_pip_keeps_an_installed_numpy_126(tmp_path):
    """What `pip install -r requirements-runtime.txt` does in a --system-site-packages venv on
    Ubuntu 24.04: numpy 1.26.4 is already there; pip must not plan to install another numpy."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    pip = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "--disable-pip-version-check"]
    inst = subprocess.run([*pip, "install", "-q", "--no-deps", "numpy==1.26.4"], capture_output=True, text=True,
                          timeout=600)
    assert inst.returncode == 0, inst.stderr
    report = tmp_path / "report.json"
    dry = subprocess.run([*pip, "install", "-q", "--dry-run", "--report", str(report), "-r",
                          str(ROOT / "requirements-runtime.txt")], capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr
    planned = {item["metadata"]["name"].lower(): item["metadata"]["version"]
               for item in json.loads(report.read_text())["install"]}
    assert "opencv-python-headless" in planned and "pysodmetrics" in planned  # the report is the real plan
    assert "numpy" not in planned, f"pip would replace apt's numpy 1.26.4 by numpy {planned['numpy']}"

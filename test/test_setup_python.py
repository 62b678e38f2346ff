"""`make setup` picks the interpreter the machine has (tools/find_python.py): fake interpreters on
PATH play Ubuntu 24.04 (python3.12 only), this CI (python3.11, a pyenv shim for 3.12 that fails
when run), an old system (python3.10) and an explicit PYTHON=; through the script and through
`make which-python` (the same code path `make setup` takes, without building anything)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FINDER = ROOT / "tools" / "find_python.py"
MAKE = shutil.which("make")


def fake_bin(tmp_path: Path, **versions: str) -> Path:
    """A PATH folder with python3.X scripts that answer the probe as that version does.
    A value "shim" is a pyenv shim of an uninstalled version; "novenv" lacks ensurepip."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, version in versions.items():
        exe = folder / name.replace("_", ".")
        if version == "shim":
            body = f'echo "pyenv: {exe.name}: command not found" >&2; exit 127'
        elif version.endswith("novenv"):
            body = f"echo {version.split('-')[0]}; echo 'No module named ensurepip' >&2; exit 1"
        else:
            body = f"echo {version}"
        exe.write_text(f"#!/bin/sh\n{body}\n")
        exe.chmod(0o755)
    return folder


def find(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(FINDER), *args], env={"PATH": str(folder)},
                          capture_output=True, text=True, timeout=60)


def test_prefers_python312_when_both_are_there(tmp_path):
    folder = fake_bin(tmp_path, python3_11="3.11.9", python3_12="3.12.3", python3="3.11.9")
    out = find(folder)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(folder / "python3.12")
    assert "using " + str(folder / "python3.12") + " (Python 3.12.3)" in out.stderr


def test_ubuntu_2404_has_only_python3_at_312(tmp_path):
    folder = fake_bin(tmp_path, python3="3.12.3")
    out = find(folder)
    assert out.returncode == 0 and out.stdout.strip() == str(folder / "python3"), out.stderr


def test_accepts_python311_beside_a_failing_312_shim(tmp_path):
    folder = fake_bin(tmp_path, python3_12="shim", python3_11="3.11.7")
    out = find(folder)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(folder / "python3.11")
    assert "(Python 3.11.7)" in out.stderr


@pytest.mark.parametrize("old", ["3.10.12", "3.9.18", "3.13.0"])
def test_refuses_other_versions_with_the_fix(tmp_path, old):
    folder = fake_bin(tmp_path, python3=old)
    out = find(folder)
    assert out.returncode == 1 and out.stdout == ""
    assert f"{folder / 'python3'} (Python {old}): not supported" in out.stderr
    assert "apt install python3.12-venv" in out.stderr and "PYTHON=" in out.stderr


def test_python_without_venv_module_names_the_apt_package(tmp_path):
    folder = fake_bin(tmp_path, python3_12="3.12.3-novenv")
    out = find(folder)
    assert out.returncode == 1
    assert "cannot create a venv (sudo apt install python3.12-venv)" in out.stderr


def test_explicit_python_overrides_the_search(tmp_path):
    folder = fake_bin(tmp_path, python3_12="3.12.3", python3_11="3.11.9")
    out = find(folder, "--python", "python3.11")
    assert out.returncode == 0 and out.stdout.strip() == str(folder / "python3.11"), out.stderr
    assert "PYTHON=python3.11" in out.stderr
    (tmp_path / "old").mkdir()
    old = fake_bin(tmp_path / "old", python3_10="3.10.12")
    refused = find(old, "--python", str(old / "python3.10"))
    assert refused.returncode == 1 and "not supported" in refused.stderr


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
@pytest.mark.parametrize("python, expect", [("", "python3.12"), ("python3.11", "python3.11"), ("python3.9", None)])
def test_make_uses_the_finder(tmp_path, python, expect):
    folder = fake_bin(tmp_path, python3_12="3.12.3", python3_11="3.11.9", python3_9="3.9.18")
    out = subprocess.run([MAKE, "-s", "-C", str(ROOT), "which-python", f"FINDER_PYTHON={sys.executable}",
                          f"PYTHON={python}", "VENV=/nonexistent-venv"], env={"PATH": str(folder)},
                         capture_output=True, text=True, timeout=60)
    if expect is None:
        assert out.returncode != 0 and "Python 3.12 or 3.11" in out.stderr
    else:
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == str(folder / expect)
        assert f"make setup: using {folder / expect}" in out.stderr

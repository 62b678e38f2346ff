"""All-or-nothing outputs (util/atomic.py): a folder or file is replaced whole or left as it was.

Ruled out: a failed replacement that has already moved the previous output aside and then
deletes it with the staging folder (the user loses the old export and gets no new one); a
failed write that leaves a partial file or a hidden staging entry behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from m4sam_ros.util.atomic import building_dir, building_file, write_text


def test_a_replacement_that_fails_at_the_rename_keeps_the_previous_folder(tmp_path: Path) -> None:
    """The writer finishes without building anything (nothing to rename into place): the rename
    fails after the old folder was moved aside, and the old folder must come back, whole."""
    final = tmp_path / "export"
    with building_dir(final) as built:
        built.mkdir()
        (built / "model.onnx").write_text("old")
    with pytest.raises(FileNotFoundError), building_dir(final):
        pass  # nothing built
    assert sorted(p.name for p in final.iterdir()) == ["model.onnx"]
    assert (final / "model.onnx").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no staging folder left


def test_a_failed_build_or_write_leaves_the_old_output_and_no_partial(tmp_path: Path) -> None:
    final = tmp_path / "export"
    with building_dir(final) as built:
        built.mkdir()
        (built / "a").write_text("1")
    with pytest.raises(RuntimeError), building_dir(final) as built:
        built.mkdir()
        (built / "a").write_text("2")
        raise RuntimeError("interrupted")
    assert (final / "a").read_text() == "1"
    target = tmp_path / "metrics.json"
    write_text(target, "{}")
    with pytest.raises(RuntimeError), building_file(target) as tmp:
        tmp.write_text('{"half')
        raise RuntimeError("interrupted")
    assert target.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "metrics.json"]
    with pytest.raises(FileExistsError), building_dir(final, overwrite=False):
        pass

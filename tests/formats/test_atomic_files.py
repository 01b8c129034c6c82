"""formats/atomic_files: files appear whole or not at all, and the commands that write beside a run
(score, report, units --csv) leave the previous file, never a half one, when interrupted."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hybridkit.formats.atomic_files import AtomicFiles
from tests.helpers import main


def test_targets_are_replaced_together_at_the_end(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    with AtomicFiles() as files:
        files.temp(tmp_path / "a.txt").write_text("new a")
        files.temp(tmp_path / "sub" / "b.txt").write_text("new b")
        # inside the block the targets still hold what they held (the new bytes are elsewhere)
        assert (tmp_path / "a.txt").read_text() == "old a" and not (tmp_path / "sub" / "b.txt").exists()
    assert (tmp_path / "a.txt").read_text() == "new a" and (tmp_path / "sub" / "b.txt").read_text() == "new b"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.txt", "sub"]


def test_an_interrupted_block_leaves_the_old_files_and_no_partial_one(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    with pytest.raises(KeyboardInterrupt):
        with AtomicFiles() as files:
            files.temp(tmp_path / "a.txt").write_text("half of the new")
            files.temp(tmp_path / "new" / "deeper" / "b.txt").write_text("b")
            raise KeyboardInterrupt
    assert (tmp_path / "a.txt").read_text() == "old a"
    # the folders made for b.txt are gone again, as are the temporary files
    assert [p.name for p in tmp_path.rglob("*")] == ["a.txt"]


def _sums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", ["score", "report", "units"])
def test_a_command_interrupted_while_writing_leaves_the_previous_file(generated, tmp_path, capsys,
                                                                     monkeypatch, command):
    """Interrupted after its content was written to the temporary name but before the rename
    (os.replace raises): the previous output is byte for byte what it was, no partial file."""
    import os

    sorting = generated.parent / "demo" / "kilosort4"
    out = tmp_path / "out"
    argv = {"score": ["score", generated, sorting, "--no-signal", "-o", out],
            "report": ["report", generated, "-o", out / "report.html"],
            "units": ["units", sorting, "--csv", out / "units.csv"]}[command]
    code, _, err = main(capsys, *argv)
    assert code == 0, err
    before = _sums(out)
    assert before

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    code, _, err = main(capsys, *argv)
    assert code == 130 and "interrupted" in err, (code, err)  # the CLI's Ctrl-C exit
    assert _sums(out) == before  # no new, half or partial file

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


def test_a_target_that_cannot_be_written_is_one_output_error_naming_it(tmp_path):
    """Permission denied, a file where a folder goes, a full disk: the user's to fix, so one
    OutputError line naming the target (the CLI prints it and exits 2), never an internal error;
    an OSError about something else passes through unchanged."""
    import errno

    from hybridkit.errors import OutputError

    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "out.csv"  # its folder is a file
    with pytest.raises(OutputError, match=rf"^{target}: cannot write \("):
        with AtomicFiles() as files:
            files.temp(target).write_text("a")
    good = tmp_path / "good.csv"
    with pytest.raises(OutputError, match=rf"^{good}: cannot write \(permission denied: choose a writable path\)$"):
        with AtomicFiles() as files:
            tmp = files.temp(good)
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    with pytest.raises(FileNotFoundError):  # not about the targets: left as it is
        with AtomicFiles() as files:
            files.temp(good).write_text("a")
            open(tmp_path / "missing-input.txt")


def test_units_csv_in_a_place_it_cannot_write_is_one_line_exit_2(tmp_path, capsys):
    from hybridkit.example import write_example

    write_example(tmp_path / "ex", seed=1, duration_s=2.0)
    (tmp_path / "file").write_text("x")
    code, _, err = main(capsys, "units", tmp_path / "ex" / "kilosort4", "--csv", tmp_path / "file" / "u.csv")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"hybridkit: error: {tmp_path / 'file' / 'u.csv'}: cannot write (")

"""output.in_place: the source patched in place, every original byte journaled first, and an exact
``hybridkit reset`` (SHA-256 before == after), also after ``kill -9`` mid-run."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hybridkit.cli import main
from hybridkit.config.run_config import load_config
from hybridkit.example import write_example
from hybridkit.formats import in_place
from hybridkit.run.pipeline import generate

from .helpers import config_with, planned_sum

N_CH = 385
BIN = "demo_g0_t0.imec0.ap.bin"


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    write_example(root / "demo", seed=3, duration_s=4.0)
    return root / "demo"


@pytest.fixture
def example(pristine, tmp_path) -> Path:
    """A private copy of the example: in-place runs modify it."""
    return Path(shutil.copytree(pristine, tmp_path / "demo"))


def _config(example: Path, tmp: Path, name: str = BIN) -> Path:
    return config_with(example, tmp, output={"directory": str(tmp / "out"), "in_place": name})


def test_in_place_is_exact_and_reset_restores_bit_for_bit(example, tmp_path, capsys):
    source = example / "demo_g0" / BIN
    original = np.fromfile(source, np.int16).reshape(-1, N_CH)
    before = sha(source)
    result = generate(load_config(_config(example, tmp_path)))
    out = result.output_dir

    hybrid = np.fromfile(source, np.int16).reshape(-1, N_CH)  # the source IS the hybrid now
    rec, plan = result.truth.recording, result.truth.plan
    planned = planned_sum(plan, rec.n_samples, N_CH, rec.gain_to_uV)
    assert result.truth.clipped_samples == 0
    assert np.abs(hybrid.astype(float) - original - planned).max() <= 0.5 + 1e-3
    assert np.abs(planned).max() > 20
    link = out / "demo_g0_t0.imec0.ap.GT.bin"
    assert link.is_symlink() and link.resolve() == source.resolve()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source_modified_in_place"]["source"] == str(source)
    assert "in place" in in_place.notice(out) and "hybridkit reset" in in_place.notice(out)

    capsys.readouterr()
    assert main(["reset", str(out)]) == 0
    assert "restored" in capsys.readouterr().out
    assert sha(source) == before
    assert in_place.notice(out) is None and not in_place.journal_dir(out).exists()
    assert not link.exists() and not link.is_symlink()
    assert json.loads((out / "manifest.json").read_text())["source_modified_in_place"]["restored"]
    assert main(["reset", str(out)]) == 2  # nothing left to reset
    assert "no in-place journal" in capsys.readouterr().err


def test_reset_refuses_a_source_changed_since(example, tmp_path, capsys):
    source = example / "demo_g0" / BIN
    out = generate(load_config(_config(example, tmp_path))).output_dir
    state = in_place.read_state(out)
    patched_at, original = next(in_place._records(in_place.journal_dir(out) / in_place.UNDO))
    for where, keep_mtime in ((patched_at + 10, True), (0, False)):
        with open(source, "r+b") as fh:  # someone writes into the hybrid after the run
            fh.seek(where)
            fh.write(b"\x01\x02")
        if keep_mtime:  # a patched byte changed: caught even with the run's mtime
            os.utime(source, ns=(state["mtime_ns"], state["mtime_ns"]))
        changed = sha(source)
        capsys.readouterr()
        assert main(["reset", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "changed since" in err and str(source) in err and len(err.splitlines()) == 1
        assert sha(source) == changed  # reset touched nothing
        assert in_place.read_state(out) is not None


def test_score_and_report_say_the_source_is_modified(example, tmp_path, capsys):
    out = generate(load_config(_config(example, tmp_path))).output_dir
    capsys.readouterr()
    main(["report", str(out), "-o", str(tmp_path / "r.html")])
    assert "modified in place" in capsys.readouterr().err


def test_wrong_file_name_is_refused_and_nothing_is_written(example, tmp_path, capsys):
    source = example / "demo_g0" / BIN
    before = sha(source)
    assert main(["generate", str(_config(example, tmp_path, name="other.bin"))]) == 2
    err = capsys.readouterr().err.strip()
    assert "output.in_place" in err and "'other.bin'" in err and BIN in err
    assert sha(source) == before
    assert not (tmp_path / "out").exists() and not in_place.journal_dir(tmp_path / "out").exists()


def test_second_in_place_run_before_reset_is_refused(example, tmp_path, capsys):
    cfg = _config(example, tmp_path)
    generate(load_config(cfg))
    source = example / "demo_g0" / BIN
    modified = sha(source)
    (tmp_path / "b").mkdir()
    other = config_with(example, tmp_path / "b", output={"directory": str(tmp_path / "out"), "in_place": BIN, "overwrite": True})
    assert main(["generate", str(other)]) == 2
    assert "reset" in capsys.readouterr().err
    assert sha(source) == modified


KILLER = textwrap.dedent("""
    import os, signal, sys
    from hybridkit.formats import in_place
    from hybridkit.cli import main

    real_save = in_place.UndoJournal.save
    calls = [0]

    def save(self, fd, offset, length):
        real_save(self, fd, offset, length)
        calls[0] += 1
        if calls[0] == int(sys.argv[2]):  # journaled, not yet written: the harshest moment
            os.kill(os.getpid(), signal.SIGKILL)

    in_place.UndoJournal.save = save
    sys.exit(main(["generate", sys.argv[1]]))
""")


def test_kill_9_mid_run_leaves_a_journal_that_restores_exactly(example, tmp_path):
    source = example / "demo_g0" / BIN
    before = sha(source)
    cfg = _config(example, tmp_path)
    proc = subprocess.run([sys.executable, "-c", KILLER, str(cfg), "40"], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    out = tmp_path / "out"
    assert not out.exists()  # no output folder looking complete
    state = in_place.read_state(out)
    assert state is not None and state["complete"] is False
    assert sha(source) != before  # 39 blocks were patched before the kill
    assert "did not complete" in in_place.notice(out)
    assert main(["reset", str(out)]) == 0
    assert sha(source) == before

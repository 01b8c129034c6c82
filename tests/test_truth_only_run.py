"""A run whose writers write no hybrid samples (a third-party truth writer alone): it works, warns,
and its summary says that no hybrid recording was written and which files were."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from hybridkit.registry import build_registry

from .helpers import main

TRUTH_CSV_WRITER = '''
from typing import Literal
import numpy as np
from hybridkit import hookimpl, PluginOptions, Writer

class Opts(PluginOptions):
    type: Literal["truth_csv"] = "truth_csv"

class TruthCsv(Writer):
    """Only the injected spike times, as a sorting benchmark suite might want them."""
    name = "truth_csv"
    Options = Opts
    def begin(self, recording, out_dir): pass
    def finish(self, truth, out_dir):
        path = out_dir / "truth.csv"
        np.savetxt(path, np.c_[truth.plan.times, truth.plan.unit_index], fmt="%d", delimiter=",")
        return [path]

@hookimpl
def hybridkit_writers():
    return [TruthCsv]
'''


@pytest.fixture
def registry(tmp_path, monkeypatch):
    (tmp_path / "truth_csv_writer.py").write_text(TRUTH_CSV_WRITER)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = build_registry(extra_modules=("truth_csv_writer",), entry_points_too=False)
    import hybridkit.config.run_config as run_config
    import hybridkit.run.pipeline as pipeline

    monkeypatch.setattr(run_config, "get_registry", lambda: reg)
    monkeypatch.setattr(pipeline, "get_registry", lambda: reg)
    return reg


def _config(tmp_path, writers):
    from hybridkit.example import write_example

    write_example(tmp_path / "demo", seed=3, duration_s=1.0)
    cfg = json.loads((tmp_path / "demo" / "config.json").read_text())
    for key in ("sorting", "units"):
        cfg.pop(key)
    cfg["templates"] = {"type": "synthetic", "n_units": 2}
    cfg["injection"]["trains"] = {"mode": "poisson", "rate_hz": 20.0}
    cfg["engine"] = {"progress": False}
    cfg["writers"] = writers
    path = tmp_path / "demo" / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def test_truth_only_run_warns_and_says_what_it_wrote(registry, tmp_path, capsys, caplog):
    cfg = _config(tmp_path, [{"type": "truth_csv"}])
    with caplog.at_level(logging.WARNING, logger="hybridkit"):
        code, out, err = main(capsys, "generate", cfg)
    assert code == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no writer in writers (truth_csv) writes the hybrid recording" in m for m in warned)
    assert "no hybrid recording: no writer in this run writes the hybrid samples" in out
    files = next(line for line in out.splitlines() if line.strip().startswith("files ("))
    assert "truth.csv" in files and "manifest.json" in files and ".bin" not in files
    folder = tmp_path / "demo" / "hybrid"
    assert not list(folder.glob("*.bin")) and np.loadtxt(folder / "truth.csv", delimiter=",").size > 0


def test_run_with_a_recording_names_its_writer(registry, tmp_path, capsys, caplog):
    cfg = _config(tmp_path, [{"type": "truth_csv"}, {"type": "legacy"}])
    with caplog.at_level(logging.WARNING, logger="hybridkit"):
        code, out, _ = main(capsys, "generate", cfg)
    assert code == 0 and "hybrid recording written by: legacy" in out
    assert "no hybrid recording" not in out
    assert not [r for r in caplog.records if "writes the hybrid recording" in r.getMessage()]

"""`hybridkit config check`: every input path exists and is the right kind, named by its field."""
from __future__ import annotations


import pytest

from hybridkit.config.input_paths import check_input_paths
from hybridkit.config.run_config import load_config
from tests.conftest import write_config
from tests.helpers import main


@pytest.fixture
def inputs(tmp_path, minimal_config):
    """The minimal config with its recording file and phy folder present."""
    (tmp_path / "rec.bin").write_bytes(b"\0" * 64)
    (tmp_path / "ks").mkdir()
    return minimal_config


def _check(capsys, tmp_path, cfg):
    code, out, err = main(capsys, "config", "check", write_config(tmp_path / "c.json", cfg))
    return code, out, err.strip()


@pytest.mark.parametrize("mutate, expected", [
    # the two cases: a missing phy folder given with and without its type
    (lambda c, d: c["sorting"].update(path="nope"), "sorting.path: folder '{d}/nope' does not exist"),
    (lambda c, d: c["sorting"].pop("type") and c["sorting"].update(path="nope"),
     "sorting.path: '{d}/nope' does not exist (sorting.type is detected from what is there)"),
    (lambda c, d: c["sorting"].update(path="rec.bin"), "sorting.path: '{d}/rec.bin' is a file; a folder is expected"),
    (lambda c, d: c["recording"].update(path="ks"), "recording.path: '{d}/ks' is a folder; a file is expected"),
    (lambda c, d: c["recording"].update(geometry="geom.prb"), "recording.geometry: file '{d}/geom.prb' does not exist"),
    (lambda c, d: c.update(recording={"type": "spikeglx", "path": "run_g0_t*.imec0.ap.bin"}),
     "recording.path: no file matches the pattern '{d}/run_g0_t*.imec0.ap.bin'"),
    (lambda c, d: c.update(sorting={"type": "kilosort", "path": "rez.mat"}),
     "sorting.path: file or folder '{d}/rez.mat' does not exist"),
    (lambda c, d: c.update(motion={"source": {"type": "spikeinterface", "path": "motion"}}),
     "motion.source.path: folder '{d}/motion' does not exist"),
])
def test_missing_or_wrong_kind_names_the_field(tmp_path, inputs, capsys, mutate, expected):
    mutate(inputs, tmp_path)
    code, out, err = _check(capsys, tmp_path, inputs)
    assert code == 2 and out == "" and err.count("\n") == 0
    assert err == f"hybridkit: error: {tmp_path / 'c.json'}: " + expected.format(d=tmp_path)


def test_existing_inputs_pass(tmp_path, inputs, capsys):
    (tmp_path / "motion").mkdir()
    inputs["motion"] = {"source": {"type": "spikeinterface", "path": "motion"}}
    code, out, err = _check(capsys, tmp_path, inputs)
    assert code == 0, err
    assert "valid, 4 input path(s) found" in out
    # outputs are not inputs: a missing output folder is fine
    inputs["output"] = {"directory": "not/yet"}
    assert _check(capsys, tmp_path, inputs)[0] == 0


def test_spikeglx_glob_that_matches(tmp_path, capsys):
    for t in (0, 1):
        (tmp_path / f"run_g0_t{t}.imec0.ap.bin").write_bytes(b"")
    (tmp_path / "ks").mkdir()
    cfg = load_config(write_config(tmp_path / "c.json", {
        "recording": {"type": "spikeglx", "path": "run_g0_t*.imec0.ap.bin"},
        "sorting": {"type": "phy", "path": "ks"}, "units": {"ids": [1]}}))
    assert check_input_paths(cfg) == 2
    assert cfg.recording.path == tmp_path / "run_g0_t*.imec0.ap.bin"  # the pattern, resolved

"""An NWB source keeps what its makers wrote: its start time runs through the truth and the NWB
output, and the nwb writer takes session_start_time, subject and electrode location from it (the
config overrides). Sources are written here with pynwb in neuroconv's layout (starting_time, chunked
gzip series)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.errors import ConfigError, OutputError
from hybridkit.results.truth import load_truth
from hybridkit.run.pipeline import generate

from .plugins.nwb_testutil import START, write_nwb

FS = 30000.0
SUBJECT = {"subject_id": "m7", "species": "Mus musculus", "sex": "F", "age": "P70D"}


def _source(tmp_path, start=3.05, timestamps=False, subject=SUBJECT):
    data = (np.random.default_rng(3).normal(size=(30000, 16)) * 20).astype(np.int16)
    pos = np.c_[np.tile([0.0, 32.0], 8), np.repeat(np.arange(8) * 20.0, 2)]
    return write_nwb(tmp_path / "source.nwb", data, fs=FS, positions=pos, start=start,
                     timestamps=timestamps, subject=subject, chunks=(7500, 16), compression="gzip")


def _config(tmp_path, src, writer):
    cfg = {"seed": 2, "recording": {"type": "nwb", "path": str(src)},
           "templates": {"type": "synthetic", "n_units": 2},
           "injection": {"trains": {"mode": "poisson", "rate_hz": 30.0},
                         "placement": {"min_distance_um": 0.0}},
           "writers": [{"type": "nwb", "inspect": "off", **writer}], "engine": {"progress": False},
           "output": {"directory": str(tmp_path / "out")}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("timestamps", [False, True], ids=["starting_time", "timestamps"])
def test_start_time_and_metadata_come_from_the_source(tmp_path, timestamps):
    start = 12.5 if timestamps else 3.05
    src = _source(tmp_path, start=start, timestamps=timestamps)
    # dandi is on (the default) and the config gives no subject, start time or location
    result = generate(load_config(_config(tmp_path, src, {})))
    path = result.output_dir / f"{result.truth.session.replace('_', '-')}.nwb"
    plan = result.truth.plan
    with h5py.File(path, "r") as f:
        assert float(f["acquisition/ElectricalSeries/starting_time"][()]) == start
        st = f["units/spike_times"][()]
        assert datetime.fromisoformat(f["session_start_time"][()].decode()) == START
        assert f["general/subject/subject_id"][()].decode() == "m7"
        assert f["general/subject/species"][()].decode() == "Mus musculus"
        assert {v.decode() for v in f["general/extracellular_ephys/electrodes/location"][()]} == {"CA1"}
    idx = np.argsort(plan.unit_index, kind="stable")
    fs = result.truth.recording.sampling_rate  # from timestamps: their median step, within 1e-12
    assert fs == FS or (timestamps and abs(fs - FS) < 1e-6)
    np.testing.assert_array_equal(st, start + plan.times[idx] / fs)
    truth = load_truth(path)  # score/report read the samples back on the 0-based clock
    np.testing.assert_array_equal(np.sort(truth.times), np.sort(plan.times))

    import spikeinterface.extractors as se

    si = se.read_nwb_sorting(str(path), electrical_series_path="acquisition/ElectricalSeries")
    got = np.sort(np.concatenate([si.get_unit_spike_train(u) for u in si.unit_ids]))
    np.testing.assert_array_equal(got, np.sort(plan.times))


def test_config_overrides_the_source(tmp_path):
    src = _source(tmp_path)
    mine = {"subject_id": "override", "species": "Mus musculus", "sex": "M", "age": "P90D"}
    when = "2023-01-02T03:04:05+00:00"
    result = generate(load_config(_config(tmp_path, src, {"subject": mine, "session_start_time": when,
                                                         "electrode_location": "VISp"})))
    [path] = result.output_dir.glob("*.nwb")
    with h5py.File(path, "r") as f:
        assert f["general/subject/subject_id"][()].decode() == "override"
        assert datetime.fromisoformat(f["session_start_time"][()].decode()) == \
            datetime(2023, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        assert {v.decode() for v in f["general/extracellular_ephys/electrodes/location"][()]} == {"VISp"}


def test_missing_everywhere_is_one_line_before_any_trace(tmp_path):
    """No subject in the source nor the config: the writer says so when it begins."""
    src = _source(tmp_path, subject=None)
    cfg = load_config(_config(tmp_path, src, {}))
    with pytest.raises(OutputError, match=r"writers nwb: subject: required for DANDI: .* \(neither the config "
                                          r"nor the source NWB source.nwb gives a valid one\)"):
        generate(cfg)
    assert not (tmp_path / "out").exists()
    # with a SpikeGLX or binary source, the config must say it at config check as before
    data = json.loads((tmp_path / "config.json").read_text())
    data["recording"] = {"type": "binary", "path": "x.bin", "dtype": "int16", "n_channels": 4,
                         "sampling_rate": 30000.0, "gain_to_uV": 1.0, "geometry": "probe.json"}
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"writers\[0\].session_start_time = null: required for DANDI"):
        load_config(tmp_path / "config.json")

"""Writer ``nwb``: traces streamed chunk by chunk, the ground-truth Units table, config-time checks."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.errors import ConfigError, OutputError
from hybridkit.hookspecs import RunContext
from hybridkit.model import GroundTruth
from hybridkit.plugins.writers.legacy.tables import firings_true
from hybridkit.plugins.writers.nwb.writer import NwbWriter

from tests.helpers import make_plan, make_recording, make_template

FS = 30000.0
META = {"session_start_time": "2024-03-04T12:00:00+00:00", "experimenter": ["Doe, Jane"],
        "institution": "Test U", "subject": {"subject_id": "rat1", "species": "Rattus norvegicus",
                                              "sex": "F", "age": "P60D"}}


def options(**changes):
    return NwbWriter.Options(**{"type": "nwb", **META, **changes})


@pytest.fixture
def run(tmp_path):
    """A 10-channel recording (last column a sync word), two units, and its hybrid samples."""
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(20011, 10)) * 30).astype(np.int16)
    rec = make_recording(tmp_path, data, fs=FS, gain=0.5, sync_last=True)
    t1 = make_template(7, [2, 3, 4], positions=rec.channel_positions, seed=1)
    t2 = make_template(9, [5, 6, 7, 8], n_times=50, peak_index=20, positions=rec.channel_positions, seed=2)
    plan = make_plan([t1, t2], [np.array([100, 5003, 19990]), np.array([42, 7000])],
                     [np.array([1.0, 0.8, 1.2], np.float32), np.array([0.9, 1.1], np.float32)])
    hybrid = data.copy()
    hybrid[:, :9] += 1  # stands for the injected spikes: the writer must store what it is given
    truth = GroundTruth(plan=plan, recording=rec, clipped_per_channel=np.zeros(10, np.int64), seed=5,
                        session="my_run/1")
    return {"rec": rec, "truth": truth, "hybrid": hybrid, "out": tmp_path / "out"}


def stream(writer, run, sizes=(777, 4096, 3)):
    rec, hybrid = run["rec"], run["hybrid"]
    run["out"].mkdir(exist_ok=True)
    writer.begin(rec, run["out"])
    start, k = 0, 0
    while start < rec.n_samples:
        stop = min(start + sizes[k % len(sizes)], rec.n_samples)
        writer.write(start, hybrid[start:stop].copy(), None)
        start, k = stop, k + 1
    return writer.finish(run["truth"], run["out"])


def test_traces_and_units(run):
    ctx = RunContext(base_dir=Path("."), rng=np.random.default_rng(0), seed=5, session="my_run/1")
    writer = NwbWriter(options(chunk_mb=0.02, inspect="off"), ctx)  # 1165-sample chunks (0.02 MB / 18 B): blocks straddle them
    assert writer.needs_every_sample is True
    [path] = stream(writer, run)
    assert path.name == "my-run-1.nwb"
    plan, fs = run["truth"].plan, FS
    with h5py.File(path, "r") as f:
        d = f["acquisition/ElectricalSeries/data"]
        assert d.shape == (20011, 9) and d.dtype == np.int16 and d.chunks == (1165, 9)
        assert d.compression == "gzip" and d.shuffle
        np.testing.assert_array_equal(d[()], run["hybrid"][:, :9])
        assert d.attrs["conversion"] == pytest.approx(0.5e-6, rel=1e-15)
        np.testing.assert_array_equal(f["acquisition/NonNeuralChannels/data"][()], run["hybrid"][:, 9:])
        assert f["acquisition/ElectricalSeries/starting_time"].attrs["rate"] == fs
        u = f["units"]
        assert list(u["id"][()]) == [100, 101]
        st, idx = u["spike_times"][()], u["spike_times_index"][()]
        np.testing.assert_array_equal(st[:idx[0]], np.array([100, 5003, 19990]) / fs)  # exact, not approx
        np.testing.assert_array_equal(st[idx[0]:], np.array([42, 7000]) / fs)
        assert u["spike_times"].attrs["resolution"] == 1 / fs
        np.testing.assert_array_equal(u["amplitude_scale"][()], np.array([1.0, 0.8, 1.2, 0.9, 1.1], np.float32))
        assert [x.decode() if isinstance(x, bytes) else x for x in u["gt_unit_id"][()]] == ["100", "101"]
        assert list(u["source_unit"][()]) == [7, 9] and list(u["is_injected"][()]) == [True, True]
        assert list(u["peak_channel"][()]) == [t.template.peak_channel for t in plan.units]
        np.testing.assert_array_equal(u["electrodes"][()], [2, 3, 4, 5, 6, 7, 8])
        np.testing.assert_array_equal(u["obs_intervals"][()], [[0.0, 20011 / fs]] * 2)
        wm = u["waveform_mean"][()]
        assert wm.shape == (2, 50, 9) and u["waveform_mean"].attrs["unit"] == "volts"
        # unit 100: peak_index 12 lands on the common peak sample 20 (8 samples of padding first)
        np.testing.assert_allclose(wm[0, 8:48, [2, 3, 4]], plan.units[0].template.waveform.T * 1e-6, rtol=1e-6)
        assert not wm[0, :8].any() and not wm[0, :, 5:].any()
        assert u["waveform_mean"].attrs["time_before_peak_in_ms"] == pytest.approx(20 / fs * 1e3)
        assert np.all(u["snr"][()] > 0) and np.all(np.isfinite(u["snr"][()]))
        notes = json.loads(f["general/notes"][()])
        assert notes["hybridkit"]["traces"] == "acquisition/ElectricalSeries"
        assert f["general/session_id"][()].decode() == "my-run-1"


def test_spikeinterface_reads_truth_to_the_sample(run):
    import spikeinterface.extractors as se

    writer = NwbWriter(options(inspect="off"), None)
    [path] = stream(writer, run)
    sorting = se.read_nwb_sorting(str(path), electrical_series_path="acquisition/ElectricalSeries")
    ft = firings_true(run["truth"])
    new_ids = np.array([u.new_unit_id for u in run["truth"].plan.units])[run["truth"].plan.unit_index]
    for uid in sorting.unit_ids:
        np.testing.assert_array_equal(sorting.get_unit_spike_train(uid), ft[1][new_ids == int(uid)].astype(np.int64))
    assert list(sorting.get_property("source_unit")) == [7, 9]
    rec = se.read_nwb_recording(str(path), electrical_series_path="acquisition/ElectricalSeries")
    np.testing.assert_array_equal(rec.get_traces(), run["hybrid"][:, :9])
    np.testing.assert_allclose(rec.get_channel_gains(), 0.5)


def test_ground_truth_only(run):
    writer = NwbWriter(options(traces=False, units_location="processing/ecephys", inspect="off"), None)
    assert writer.needs_every_sample is False
    run["out"].mkdir()
    writer.begin(run["rec"], run["out"])
    writer.write(0, run["hybrid"][:50, [2]], np.array([2]))  # event blocks are ignored
    [path] = writer.finish(run["truth"], run["out"])
    with h5py.File(path, "r") as f:
        assert "ElectricalSeries" not in f["acquisition"] and "units" not in f
        assert list(f["processing/ecephys/units/id"][()]) == [100, 101]
        traces = json.loads(f["general/notes"][()])["hybridkit"]["traces"]
        assert traces["hybrid_binaries"] == ["rec_0.GT.bin"] and traces["n_channels"] == 10
    import spikeinterface.extractors as se

    s = se.read_nwb_sorting(str(path), unit_table_path="processing/ecephys/units", sampling_frequency=FS)
    np.testing.assert_array_equal(s.get_unit_spike_train(s.unit_ids[1]), [42, 7000])


def test_inspector_finds_no_issue_ground_truth_only(run):
    """(The full file is inspected with inspect: error in tests/test_nwb_end_to_end.py.)"""
    from hybridkit.plugins.writers.nwb.inspection import inspect_issues

    writer = NwbWriter(options(traces=False, units_location="processing/ecephys", inspect="off"), None)
    run["out"].mkdir()
    writer.begin(run["rec"], run["out"])
    [path] = writer.finish(run["truth"], run["out"])
    assert inspect_issues(path) == []


def test_out_of_order_blocks_fail(run):
    writer = NwbWriter(options(inspect="off"), None)
    run["out"].mkdir()
    writer.begin(run["rec"], run["out"])
    writer.write(0, run["hybrid"][:100], None)
    with pytest.raises(OutputError, match="got samples from 200 .* needs every channel from sample 100"):
        writer.write(200, run["hybrid"][200:300], None)


# -- config-time checks ---------------------------------------------------------------------------
def load_writer(tmp_path, minimal_config, **writer):
    cfg = {**minimal_config, "writers": [{"type": "nwb", **writer}]}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    return load_config(tmp_path / "c.json")


MOUSE = {"subject_id": "m1", "species": "Mus musculus", "sex": "M", "age": "P90D"}


@pytest.mark.parametrize("writer, expected", [
    ({"subject": MOUSE, "electrode_location": "CA1"}, "writers[0].session_start_time = null: required for DANDI"),
    ({**META, "subject": None}, "writers[0].subject = null: required for DANDI"),
    ({**META, "session_start_time": "2024-03-04T12:00:00"}, "writers[0].session_start_time = "
     "\"2024-03-04T12:00:00\": Input should have timezone info"),
    ({**META, "session_start_time": "1970-01-02T00:00:00Z"}, "must be after 1980-01-01"),
    ({**META, "subject": {**MOUSE, "species": "mouse"}}, "writers[0].subject.species = \"mouse\": DANDI needs a Latin binomial"),
    ({**META, "subject": {**MOUSE, "sex": "male"}}, "writers[0].subject.sex = \"male\": DANDI needs one of M, F, U, O"),
    ({**META, "subject": {**MOUSE, "age": "90 days"}}, "writers[0].subject.age = \"90 days\": an age is an ISO-8601 duration"),
    ({**META, "subject": {**MOUSE, "age": None}}, "DANDI needs the subject's age"),
    ({**META, "subject": {**MOUSE, "subject_id": "a/b"}}, "without '/'"),
    ({**META, "subject": MOUSE}, "writers[0].electrode_location = null: required when species is mouse"),
    ({**META, "subject": MOUSE, "electrode_location": "hippocampus-ish"}, "not an Allen Mouse Brain CCF term"),
    ({**META, "file_name": "../x.nwb"}, "a plain file name ending in .nwb"),
])
def test_dandi_fields_checked_at_config_time(tmp_path, minimal_config, writer, expected):
    with pytest.raises(ConfigError) as info:
        load_writer(tmp_path, minimal_config, **writer)
    msg = str(info.value)
    assert expected in msg and "\n" not in msg


def test_valid_and_non_dandi_configs(tmp_path, minimal_config):
    cfg = load_writer(tmp_path, minimal_config, **{**META, "subject": MOUSE, "electrode_location": "VISp"})
    assert cfg.writers[0].subject.species == "Mus musculus"
    cfg = load_writer(tmp_path, minimal_config, dandi=False)
    assert cfg.writers[0].subject is None and cfg.writers[0].session_start_time is None


@pytest.mark.parametrize("compression, threads", [(None, 1), ("gzip", 1), ("gzip", 3)])
def test_chunk_filler_matches_hdf5(tmp_path, compression, threads):
    """Direct chunk writes (our shuffle + deflate, threaded) read back exactly as HDF5 would write them."""
    from hybridkit.plugins.writers.nwb.chunks import ChunkFiller

    x = (np.random.default_rng(3).normal(size=(5003, 7)) * 100).astype(np.int16)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        d = f.create_dataset("d", shape=x.shape, dtype=x.dtype, chunks=(512, 7), compression=compression,
                             compression_opts=2 if compression else None, shuffle=bool(compression))
        filler = ChunkFiller(d, threads)
        assert (filler.level is not None) == (compression == "gzip")
        for a, b in [(0, 1), (1, 600), (600, 1624), (1624, 5003)]:
            filler.append(x[a:b])
        assert filler.close() == 5003
    with h5py.File(tmp_path / "c.h5", "r") as f:
        np.testing.assert_array_equal(f["d"][()], x)


def test_inspect_error_fails_the_run(run):
    """dandi: false lets a file without a subject through the config; the inspector gate catches it."""
    writer = NwbWriter(NwbWriter.Options(type="nwb", dandi=False, traces=False, inspect="error"), None)
    run["out"].mkdir()
    writer.begin(run["rec"], run["out"])
    with pytest.raises(OutputError, match=r"fails nwbinspector --config dandi: CRITICAL check_subject_exists"):
        writer.finish(run["truth"], run["out"])

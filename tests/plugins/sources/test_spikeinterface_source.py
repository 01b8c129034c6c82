"""Source reader ``spikeinterface``: Open Ephys binary (two recordings = two segments) and Neuroscope
written from their specifications (tests/si_files.py), a SpikeInterface save() folder, and a run
end to end: the legacy writer's flat hybrid per segment, phy and NWB outputs, exact invariant."""
from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.errors import ConfigError, SourceError
from hybridkit.hookspecs import RunContext
from hybridkit.plugins.sources.spikeinterface import SpikeInterfaceReader
from hybridkit.run.pipeline import generate
from tests.helpers import main, planned_sum
from tests.si_files import (OE_BIT_VOLTS, neuroscope_gain_uV, noise, open_ephys_run_config, write_neuroscope,
                            write_open_ephys)

N_CH = 32


def geometry(tmp: Path, n: int = N_CH) -> Path:
    """Two columns 32 um apart, rows 20 um apart, row i = channel i."""
    path = tmp / "geom.npy"
    np.save(path, np.c_[(np.arange(n) % 2) * 32.0, (np.arange(n) // 2) * 20.0])
    return path


def open_reader(section: dict, base: Path):
    options = SpikeInterfaceReader.Options.model_validate(section, context={"base_dir": base})
    return SpikeInterfaceReader(options, RunContext(base, np.random.default_rng(0), 0)).open()


@pytest.fixture(scope="module")
def open_ephys(tmp_path_factory):
    root = tmp_path_factory.mktemp("oe")
    segments = [noise(60000, N_CH, seed=1), noise(45000, N_CH, seed=2)]
    node = write_open_ephys(root, segments)
    return root, node, segments


def test_open_ephys_two_recordings_are_two_files_of_one_run(open_ephys):
    root, node, segments = open_ephys
    rec = open_reader({"type": "spikeinterface", "extractor": "openephys",
                       "folder_path": node.name, "geometry": str(geometry(root))}, root)
    assert [f.n_samples for f in rec.files] == [60000, 45000]
    assert rec.file_starts.tolist() == [0, 60000, 105000]
    assert rec.n_channels == N_CH and rec.dtype == np.int16 and rec.sampling_rate == 30000.0
    assert np.allclose(rec.gain_to_uV, OE_BIT_VOLTS) and np.all(rec.offset_to_uV == 0)
    assert rec.channel_positions[3].tolist() == [32.0, 20.0] and rec.neural.all()
    assert rec.probe.get_contact_count() == N_CH
    whole = np.concatenate(segments)
    # a read across the segment edge, one sample either side
    assert np.array_equal(rec.read(59999, 60001), whole[59999:60001])
    assert np.array_equal(rec.read(59000, 61000, np.array([0, 5, 31])), whole[59000:61000][:, [0, 5, 31]])
    assert rec.read(0, 0).shape == (0, N_CH)
    assert not rec.flat_binary


def test_neuroscope_gain_from_its_xml(tmp_path):
    data = noise(20000, 6, seed=4)
    dat = write_neuroscope(tmp_path / "ns", data, voltage_range=20.0, n_bits=16, amplification=1000.0)
    np.save(tmp_path / "g.npy", np.c_[np.zeros(6), np.arange(6) * 25.0])
    rec = open_reader({"type": "spikeinterface", "extractor": "neuroscope",
                       "file_path": str(dat.relative_to(tmp_path)), "geometry": "g.npy"}, tmp_path)
    assert rec.sampling_rate == 20000.0 and len(rec.files) == 1
    assert np.allclose(rec.gain_to_uV, neuroscope_gain_uV(20.0, 16, 1000.0))  # 0.305 uV per bit
    assert np.array_equal(rec.read(123, 4567), data[123:4567])


def test_saved_folder_probe_and_gains(tmp_path):
    import probeinterface as pi
    import spikeinterface.core as si

    data = noise(9000, 8, seed=5)
    src = si.NumpyRecording([data], sampling_frequency=25000.0, channel_ids=[f"ch{i}" for i in range(8)])
    probe = pi.generate_linear_probe(num_elec=8, ypitch=15.0)
    probe.set_device_channel_indices(np.arange(8)[::-1])  # wired in reverse: channel 0 = top contact
    src = src.set_probe(probe) or src  # in place (None) in SpikeInterface >= 0.105
    src.set_channel_gains(0.25)
    src.set_channel_offsets(-3.0)
    src.save(folder=tmp_path / "saved", format="binary", verbose=False)
    rec = open_reader({"type": "spikeinterface", "folder": "saved"}, tmp_path)
    expected = np.asarray(src.get_channel_locations(), float)[:, :2]
    assert np.allclose(rec.channel_positions, expected)
    assert np.allclose(rec.gain_to_uV, 0.25) and np.allclose(rec.offset_to_uV, -3.0)
    assert np.array_equal(rec.read(0, 9000), src.get_traces())
    assert rec.meta["spikeinterface"]["channel_ids"] == [str(c) for c in src.channel_ids]


# -- bad input: one line naming the field, the value and what is valid -----------------------------
def _config(tmp: Path, recording: dict) -> Path:
    cfg = {"seed": 1, "recording": recording, "templates": {"type": "synthetic", "n_units": 2},
           "injection": {"trains": {"mode": "poisson", "rate_hz": 5}}}
    path = tmp / "config.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("recording, words", [
    ({"extractor": "openephyz", "folder_path": "x"}, ["'openephyz'", "openephys", "intan"]),
    ({"extractor": "neuroscope", "file_path": "x", "folder": "y"}, ["either extractor"]),
    ({"extractor": "neuroscope", "filepath": "x"}, ["'filepath'", "file_path"]),
    ({"folder": "saved", "stream_id": "0"}, ["'stream_id'", "extractor"]),
])
def test_config_errors_are_one_line(tmp_path, capsys, recording, words):
    code, out, err = main(capsys, "config", "check", _config(tmp_path, {"type": "spikeinterface", **recording}))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err
    assert "recording" in err


def test_unsafe_and_pickled_inputs_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="'phy' is refused"):
        load_config(_config(tmp_path, {"type": "spikeinterface", "extractor": "phy", "folder_path": "."}))
    # a save() folder whose JSON names a class outside SpikeInterface would run it: refused
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "si_folder.json").write_text(json.dumps({"class": "subprocess.Popen", "kwargs": {"args": ["true"]}}))
    with pytest.raises(SourceError, match="'subprocess.Popen'.*not a SpikeInterface extractor"):
        open_reader({"type": "spikeinterface", "folder": "bad"}, tmp_path)
    nested = {"class": "spikeinterface.core.channelslice.ChannelSliceRecording",
              "kwargs": {"parent_recording": {"class": "os.system", "kwargs": {}}}}
    (bad / "si_folder.json").write_text(json.dumps(nested))
    with pytest.raises(SourceError, match="'os.system'"):
        open_reader({"type": "spikeinterface", "folder": "bad"}, tmp_path)
    pickled = tmp_path / "old"
    pickled.mkdir()
    (pickled / "cached.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(SourceError, match="cached.pkl: pickles are refused"):
        open_reader({"type": "spikeinterface", "folder": "old"}, tmp_path)


def test_object_property_file_is_refused(tmp_path):
    import spikeinterface.core as si

    si.NumpyRecording([noise(100, 2)], 1000.0).save(folder=tmp_path / "saved", verbose=False)
    (tmp_path / "saved" / "properties").mkdir(exist_ok=True)
    np.save(tmp_path / "saved" / "properties" / "evil.npy", np.array([{"a": 1}, None], object),
            allow_pickle=True)
    with pytest.raises(SourceError, match="evil.npy: holds Python objects"):
        open_reader({"type": "spikeinterface", "folder": "saved", "gain_to_uV": 1.0}, tmp_path)


def test_without_spikeinterface_one_line_names_the_extra(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_si(name, *args, **kwargs):
        if name == "spikeinterface" or name.startswith("spikeinterface."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_si)
    code, out, err = main(capsys, "config", "check", _config(tmp_path, {
        "type": "spikeinterface", "extractor": "openephys", "folder_path": "x"}))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'pip install "hybridkit[spikeinterface]"' in err and "recording" in err
    options = SpikeInterfaceReader.Options.model_construct(type="spikeinterface", folder=tmp_path)
    with pytest.raises(SourceError, match=r'recording.type .spikeinterface. needs SpikeInterface.*hybridkit\[spikeinterface\]'):
        SpikeInterfaceReader(options).open()


def test_no_gains_and_no_probe_name_the_fields(tmp_path):
    import spikeinterface.core as si

    si.NumpyRecording([noise(100, 2)], 1000.0).save(folder=tmp_path / "saved", verbose=False)
    with pytest.raises(SourceError, match="recording.gain_to_uV: .* has no gains"):
        open_reader({"type": "spikeinterface", "folder": "saved"}, tmp_path)
    with pytest.raises(SourceError, match="recording.geometry: .* has no probe"):
        open_reader({"type": "spikeinterface", "folder": "saved", "gain_to_uV": 0.5}, tmp_path)


# -- a run from a multi-segment Open Ephys source -----------------------------------------------------
@pytest.fixture(scope="module")
def oe_run(open_ephys, tmp_path_factory):
    root, node, segments = open_ephys
    out = tmp_path_factory.mktemp("oe_run") / "out"
    path = open_ephys_run_config(root, node, out, N_CH, writers=[
        {"type": "legacy"}, {"type": "phy"}, {"type": "nwb", "dandi": False, "inspect": "off"}])
    return generate(load_config(path)), segments


def test_run_writes_one_flat_hybrid_per_segment_exactly(oe_run):
    result, segments = oe_run
    out, plan = result.output_dir, result.truth.plan
    names = ["Record_Node_101_seg0.GT.bin", "Record_Node_101_seg1.GT.bin"]
    hybrid = [np.fromfile(out / n, np.int16).reshape(-1, N_CH) for n in names]
    assert [h.shape[0] for h in hybrid] == [60000, 45000]
    assert plan.n_events > 100 and result.truth.clipped_samples == 0
    # events on both sides of the segment edge: the second file is not a copy of the source
    assert plan.times.min() < 60000 < plan.times.max()
    source = np.concatenate(segments).astype(np.float64)
    expected = planned_sum(plan, source.shape[0], N_CH, result.truth.recording.gain_to_uV)
    diff = np.concatenate(hybrid).astype(np.float64) - source
    assert np.abs(diff - expected).max() <= 0.5 + 1e-3
    untouched = np.abs(expected).max(axis=1) == 0
    assert untouched.any() and np.all(diff[untouched] == 0)
    from hybridkit.results.verify import verify

    proof = verify(out)  # hybridkit verify proves the flat hybrid of a SpikeInterface source too
    assert proof.ok and "2 hybrid copies" in proof.summary(), [d.line() for d in proof.findings.listed]
    # the probe travels with the flat binary, wired to its columns
    import probeinterface as pi

    probe = pi.read_probeinterface(out / "probe-oe.json").probes[0]
    assert np.array_equal(probe.device_channel_indices, np.arange(N_CH))


def test_phy_and_nwb_writers_work_from_it(oe_run):
    result, _ = oe_run
    out = result.output_dir
    from hybridkit.plugins.sorters.phy import read_params_py

    params = read_params_py(out / "phy" / "params.py")
    assert params["dat_path"] == ["../Record_Node_101_seg0.GT.bin", "../Record_Node_101_seg1.GT.bin"]
    assert params["offset"] == 0 and params["n_channels_dat"] == N_CH
    import h5py

    with h5py.File(out / "oe.nwb", "r") as f:
        data = f["acquisition/ElectricalSeries/data"]
        flat = np.fromfile(out / "Record_Node_101_seg1.GT.bin", np.int16).reshape(-1, N_CH)
        assert data.shape == (105000, N_CH)
        assert np.array_equal(data[60000:61000], flat[:1000])


def test_its_output_reads_back_for_score_and_spikeinterface(oe_run):
    """score's traces and read_hybrid open the flat hybrid of a source that is not a flat file."""
    from hybridkit.results.traces import open_traces
    from hybridkit.results.truth import load_truth
    from hybridkit.spikeinterface import read_hybrid

    result, _ = oe_run
    out = result.output_dir
    flat = [np.fromfile(out / f"Record_Node_101_seg{k}.GT.bin", np.int16).reshape(-1, N_CH) for k in range(2)]
    traces = open_traces(load_truth(out))
    cols = np.array([0, 7, 31])
    assert np.allclose(traces.read_uV(59990, 60010, cols),
                       np.concatenate(flat)[59990:60010][:, cols] * OE_BIT_VOLTS, rtol=1e-6)
    recording, gt = read_hybrid(out)
    assert recording.get_num_segments() == 2 and np.allclose(recording.get_channel_gains(), OE_BIT_VOLTS)
    assert np.array_equal(recording.get_traces(segment_index=1), flat[1])
    plan = result.truth.plan
    late = plan.times >= 60000
    assert sum(gt.get_unit_spike_train(u, segment_index=1).size for u in gt.unit_ids) == late.sum()
    first = plan.times[late].min() - 60000
    assert first in np.concatenate([gt.get_unit_spike_train(u, segment_index=1) for u in gt.unit_ids])


def test_every_entry_point_names_the_extra_without_spikeinterface(tmp_path, monkeypatch):
    from hybridkit.errors import SortingError, TruthError
    from hybridkit.plugins.sorters.spikeinterface import SpikeInterfaceAdapter
    from hybridkit.spikeinterface import lazy_hybrid

    real_import = builtins.__import__

    def no_si(name, *args, **kwargs):
        if name == "spikeinterface" or name.startswith("spikeinterface."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_si)
    options = SpikeInterfaceAdapter.Options.model_validate({"type": "spikeinterface", "path": str(tmp_path)})
    with pytest.raises(SortingError, match=r'^sorting.type .spikeinterface. needs SpikeInterface.*'
                                           r'pip install "hybridkit\[spikeinterface\]"$'):
        SpikeInterfaceAdapter(options).load()
    with pytest.raises(TruthError, match=r'lazy_hybrid needs SpikeInterface.*hybridkit\[spikeinterface\]'):
        lazy_hybrid(tmp_path)


def test_output_inside_the_extractors_folder_is_refused(open_ephys, tmp_path):
    """The output guard knows the folders an extractor's arguments name: an output folder inside
    the Open Ephys folder (which overwrite could delete with it) is refused before any work."""
    from hybridkit.errors import OutputError

    root, node, _ = open_ephys
    path = open_ephys_run_config(root, node, tmp_path / "unused", N_CH)
    cfg = json.loads(path.read_text())
    cfg["output"] = {"directory": str(node / "experiment1" / "hybrid")}
    path.write_text(json.dumps(cfg))
    with pytest.raises(OutputError, match="recording.folder_path"):
        generate(load_config(path))
    assert not (node / "experiment1" / "hybrid").exists()

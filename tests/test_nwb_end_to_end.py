"""``generate`` with NWB in and out, on the example dataset, checked with the clients users open it with.

Run A: the SpikeGLX example -> writers legacy + nwb: the NWB traces equal the legacy hybrid binary,
the Units spike times equal firings_true / rate to the sample (SpikeInterface), nwbinspector (DANDI
config) finds nothing, and ``dandi validate`` passes after ``dandi organize``.
Run B: the same recording converted to NWB -> writers nwb (traces) + nwb (ground truth only): the
same plan, so the same hybrid traces and ground truth as run A.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.run.pipeline import generate
from hybridkit.plugins.writers.legacy.tables import firings_true

from tests.helpers import config_with, run_cli
from tests.plugins.nwb_testutil import example_to_nwb

N_CH = 385
NWB_META = {"session_start_time": "2024-03-04T12:00:00+00:00", "experimenter": ["Doe, Jane"],
            "institution": "Test University", "electrode_location": "CA1", "compression_level": 1,
            "subject": {"subject_id": "mouse01", "species": "Mus musculus", "sex": "U", "age": "P90D"}}


def run_config(example: Path, out: Path, recording: dict, writers: list) -> Path:
    return config_with(example, out, recording=recording, writers=writers,
                       engine={"chunk_duration_s": 0.3}, output={"directory": str(out / "hybrid")})


@pytest.fixture(scope="module")
def run_a(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_a")
    rec = {"type": "spikeglx", "path": str(example / "demo_g0" / "demo_g0_t0.imec0.ap.bin")}
    # inspect: error -> the run fails on any nwbinspector issue (DANDI config) at BEST_PRACTICE_VIOLATION+
    writers = [{"type": "legacy"}, {"type": "nwb", **NWB_META, "inspect": "error"},
               {"type": "nwb", **NWB_META, "inspect": "off", "traces": False, "file_name": "ground_truth.nwb"}]
    result = generate(load_config(run_config(example, out, rec, writers)))
    return result


@pytest.fixture(scope="module")
def run_b(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_b")
    src = example_to_nwb(example, out / "source.nwb")
    writers = [{"type": "nwb", **NWB_META, "inspect": "off"}]
    return generate(load_config(run_config(example, out, {"type": "nwb", "path": str(src)}, writers)))


def hybrid_bin(result) -> np.ndarray:
    return np.fromfile(result.output_dir / "demo_g0_t0.imec0.ap.GT.bin", np.int16).reshape(-1, N_CH)


def test_nwb_traces_equal_legacy_binary(run_a):
    gt = hybrid_bin(run_a)
    with h5py.File(run_a.output_dir / "demo.nwb", "r") as f:
        np.testing.assert_array_equal(f["acquisition/ElectricalSeries/data"][()], gt[:, :384])
        np.testing.assert_array_equal(f["acquisition/NonNeuralChannels/data"][()], gt[:, 384:])
    assert run_a.truth.plan.n_events > 50


def test_spikeinterface_reads_recording_and_truth(run_a):
    import spikeinterface.extractors as se

    path = str(run_a.output_dir / "demo.nwb")
    rec = se.read_nwb_recording(path)
    assert rec.get_num_channels() == 384 and rec.get_sampling_frequency() == run_a.truth.recording.sampling_rate
    gt = hybrid_bin(run_a)
    np.testing.assert_array_equal(rec.get_traces(start_frame=30000, end_frame=36000), gt[30000:36000, :384])
    np.testing.assert_allclose(rec.get_channel_locations(), run_a.truth.recording.channel_positions[:384])
    sorting = se.read_nwb_sorting(path, electrical_series_path="acquisition/ElectricalSeries")
    ft = firings_true(run_a.truth)
    plan = run_a.truth.plan
    new_of_event = np.array([u.new_unit_id for u in plan.units])[plan.unit_index]
    assert sorted(int(u) for u in sorting.unit_ids) == [u.new_unit_id for u in plan.units]
    for uid in sorting.unit_ids:
        np.testing.assert_array_equal(sorting.get_unit_spike_train(uid),
                                      ft[1][new_of_event == int(uid)].astype(np.int64))
    peak = dict(zip(sorting.unit_ids, sorting.get_property("peak_channel")))
    for uid in sorting.unit_ids:  # firings_true row 0 = the unit's peak channel on every event
        assert set(ft[0][new_of_event == int(uid)].tolist()) == {int(peak[uid])}
    with h5py.File(path, "r") as f:  # seconds exactly = samples / rate, not just to the sample
        st, idx = f["units/spike_times"][()], f["units/spike_times_index"][()]
        ids = f["units/id"][()]
    fs = run_a.truth.recording.sampling_rate
    for k, uid in enumerate(ids):
        lo = 0 if k == 0 else idx[k - 1]
        np.testing.assert_array_equal(st[lo:idx[k]], ft[1][new_of_event == uid].astype(np.float64) / fs)


def test_dandi_organize_and_validate(run_a, tmp_path, monkeypatch):
    """The dandi CLI, in process (its import costs seconds per subprocess); offline with DANDI_NO_ET."""
    from click.testing import CliRunner
    from dandi.cli.command import main as dandi

    monkeypatch.setenv("DANDI_NO_ET", "1")  # no etelemetry version check: the only network use here
    ds = tmp_path / "dandiset"
    ds.mkdir()
    (ds / "dandiset.yaml").write_text("identifier: '000999'\nname: hybridkit test\n"
                                      "description: hybrid ground truth written by the tests\n")
    org = CliRunner().invoke(dandi, ["organize", "-f", "copy", "-d", str(ds), str(run_a.output_dir / "demo.nwb")])
    assert org.exit_code == 0, org.output
    organized = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*.nwb"))
    assert organized == ["sub-mouse01/sub-mouse01_ecephys.nwb"]
    val = CliRunner().invoke(dandi, ["validate", str(ds)])
    assert val.exit_code == 0, val.output
    assert "No errors found" in val.output


def test_nwb_source_to_nwb_output(run_a, run_b):
    """Same recording, same seed -> same plan -> the same hybrid traces and truth as from SpikeGLX."""
    pa, pb = run_a.truth.plan, run_b.truth.plan
    np.testing.assert_array_equal(pa.times, pb.times)
    np.testing.assert_array_equal(pa.event_channels(), pb.event_channels())
    with h5py.File(run_a.output_dir / "demo.nwb", "r") as fa, h5py.File(run_b.output_dir / "demo.nwb", "r") as fb:
        np.testing.assert_array_equal(fa["acquisition/ElectricalSeries/data"][()],
                                      fb["acquisition/ElectricalSeries/data"][()])
        assert "NonNeuralChannels" not in fb["acquisition"]  # the NWB source had no sync column
        np.testing.assert_array_equal(fa["units/spike_times"][()], fb["units/spike_times"][()])
        names = [n.decode() for n in fb["general/extracellular_ephys/electrodes/channel_name"][()][:3]]
        assert names == ["AP0", "AP1", "AP2"]  # the source's channel names carry over
    with h5py.File(run_a.output_dir / "ground_truth.nwb", "r") as fg, \
            h5py.File(run_b.output_dir / "demo.nwb", "r") as fb:
        assert "ElectricalSeries" not in fg["acquisition"]
        for col in ("spike_times", "spike_times_index", "peak_channel", "source_unit", "amplitude_scale"):
            np.testing.assert_array_equal(fg[f"units/{col}"][()], fb[f"units/{col}"][()])
    manifest = json.loads((run_a.output_dir / "manifest.json").read_text())
    assert {"demo.nwb", "ground_truth.nwb"} <= {f["path"] for f in manifest["files"]}


def _strings(path: Path) -> list[str]:
    """Every text value in an HDF5 file: string datasets and attributes."""
    found: list[str] = []

    def text(value):
        for v in np.ravel(np.asarray(value, dtype=object)):
            if isinstance(v, bytes):
                found.append(v.decode("utf-8", "replace"))
            elif isinstance(v, str):
                found.append(v)

    def visit(name, obj):
        if name.startswith("specifications"):  # the NWB schema's own docs, cached by pynwb
            return
        text([*obj.attrs.values()] if obj.attrs else [])
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "OSU":
            text(obj[()])

    with h5py.File(path, "r") as f:
        text(list(f.attrs.values()))
        f.visititems(visit)
    return found


def test_nwb_source_with_legacy_writer_fails_before_any_copy(example, tmp_path):
    """The legacy writer copies a flat binary: with an NWB source that is one clear line, exit 2,
    said when the writer begins (not after the source was copied), and no output folder."""

    src = example_to_nwb(example, tmp_path / "source.nwb")
    cfg = run_config(example, tmp_path, {"type": "nwb", "path": str(src)}, [{"type": "legacy"}])
    out = run_cli("generate", cfg)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a flat binary file" in lines[0] and '"nwb"' in lines[0]
    assert not (tmp_path / "hybrid").exists()
    assert not any(p.name.startswith(".hybrid") for p in tmp_path.iterdir())


def test_failed_run_with_nwb_writer_leaves_nothing(example, tmp_path):
    """A run failing after the writers began (unknown unit id): one clear error, no output."""
    from hybridkit.errors import UnitSelectionError

    cfg = load_config(config_with(example, tmp_path, units={"ids": [999]},
                                  writers=[{"type": "nwb", **NWB_META, "inspect": "off"}],
                                  output={"directory": str(tmp_path / "hybrid")}))
    with pytest.raises(UnitSelectionError, match="999"):
        generate(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_nwb_writer_abort_mid_stream_stops_its_threads(example, tmp_path):
    """Blocks already written (compression threads running), then the run fails: abort stops the
    threads and closes the file."""
    import threading

    from hybridkit.plugins.writers.nwb.writer import NwbWriter
    from hybridkit.plugins.sources.spikeglx import SpikeGLXOptions, SpikeGLXReader

    rec = SpikeGLXReader(SpikeGLXOptions(type="spikeglx", path=example / "demo_g0" /
                                         "demo_g0_t0.imec0.ap.bin")).open()
    w = NwbWriter(NwbWriter.Options(type="nwb", **NWB_META, compression_threads=2))
    w.begin(rec, tmp_path)
    for start in range(0, 40000, 10000):
        w.write(start, rec.read(start, start + 10000))
    assert any(t.name.startswith("nwb-gzip") for t in threading.enumerate())
    w.abort()
    assert not any(t.name.startswith("nwb-gzip") for t in threading.enumerate())
    assert w._h5 is None




def test_no_absolute_path_in_the_nwb_files(run_a, run_b, example):
    """Neither the machine's folders (output, source, temporary) nor any absolute path."""
    for result in (run_a, run_b):
        for name in ("demo.nwb", "ground_truth.nwb"):
            path = result.output_dir / name
            if not path.exists():
                continue
            strings = _strings(path)
            assert any("hybridkit" in s for s in strings)  # the walk does see the notes
            for s in strings:
                for folder in (result.output_dir, example, Path.home()):
                    assert str(folder) not in s, (name, s[:200])
                # any absolute path of this machine ('/sorting/path' is a JSON pointer, not one)
                for token in re.findall(r"""(?:^|[\s"'=])(/[^\s"',;]+)""", s):
                    assert not Path(token).exists(), (name, token)
            raw = path.read_bytes()
            assert str(result.output_dir.parent).encode() not in raw and str(example).encode() not in raw


def test_ground_truth_only_file_opens_its_traces(run_a, tmp_path):
    """The hybrid binaries are named relative to the NWB file: a copy of the output folder
    elsewhere opens, through hybridkit and SpikeInterface, the exact samples of the binary."""
    import shutil

    from hybridkit.results.traces import nwb_hybrid_spikeinterface, open_nwb_hybrid

    moved = tmp_path / "moved"
    shutil.copytree(run_a.output_dir, moved)
    with h5py.File(moved / "ground_truth.nwb", "r") as f:
        traces = json.loads(f["general/notes"][()])["hybridkit"]["traces"]
    assert traces["hybrid_binaries"] == ["demo_g0_t0.imec0.ap.GT.bin"]
    gt = hybrid_bin(run_a)
    rec = open_nwb_hybrid(moved / "ground_truth.nwb")
    assert rec.files[0].path == moved / "demo_g0_t0.imec0.ap.GT.bin"
    np.testing.assert_array_equal(rec.read(0, rec.n_samples), gt)
    np.testing.assert_array_equal(rec.gain_to_uV, run_a.truth.recording.gain_to_uV)
    np.testing.assert_array_equal(rec.neural, run_a.truth.recording.neural)
    np.testing.assert_array_equal(rec.channel_positions[rec.neural],
                                  run_a.truth.recording.channel_positions[rec.neural])
    si = nwb_hybrid_spikeinterface(moved / "ground_truth.nwb")
    assert si.get_num_channels() == 384 and si.get_sampling_frequency() == rec.sampling_rate
    np.testing.assert_array_equal(si.get_traces(start_frame=990, end_frame=2010), gt[990:2010, :384])
    np.testing.assert_allclose(si.get_channel_gains(), rec.gain_to_uV[:384])
    np.testing.assert_array_equal(si.get_channel_locations(), rec.channel_positions[:384])
    (moved / "demo_g0_t0.imec0.ap.GT.bin").unlink()
    from hybridkit.errors import TruthError

    with pytest.raises(TruthError, match=r"hybrid binary demo_g0_t0.imec0.ap.GT.bin \(relative to the NWB "
                                         r"file\) is missing"):
        open_nwb_hybrid(moved / "ground_truth.nwb")

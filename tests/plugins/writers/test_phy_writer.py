"""The ``phy`` writer: a phy folder over the hybrid binary that phylib opens headless."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hybridkit.errors import OutputError
from hybridkit.model import GroundTruth, PlacedUnit, Plan, Recording, SourceFile, Template
from hybridkit.formats.hybrid_binary import hybrid_file_name
from hybridkit.formats.phy_layout import dense_templates
from hybridkit.plugins.writers.phy import PhyWriter
from tests.conftest import DATA as TEST_DATA

DATA = TEST_DATA / "kilosort4_cpu_10s_32ch"
N_NEURAL, N_CHANNELS, FS = 32, 34, 30000.0  # an aux column, 32 contacts, a sync word
NEURAL = np.arange(1, 33)  # file columns of the contacts
FILE_SAMPLES = (2000, 1500)


def make_recording(tmp_path: Path, offset: int = 0) -> tuple[Recording, list[np.ndarray]]:
    """Two int16 files of 34 columns (aux, KS4 geometry, sync); returns the data too."""
    rng = np.random.default_rng(7)
    src = tmp_path / "src"
    src.mkdir()
    files, data = [], []
    for t, n in enumerate(FILE_SAMPLES):
        arr = rng.integers(-300, 300, size=(n, N_CHANNELS), dtype=np.int16)
        path = src / f"run_g0_t{t}.imec0.ap.bin"
        with open(path, "wb") as fh:
            fh.write(b"\x01" * offset)
            fh.write(arr.tobytes())
        files.append(SourceFile(path, n, offset_bytes=offset))
        data.append(arr)
    pos = np.full((N_CHANNELS, 2), np.nan)
    pos[NEURAL] = np.load(DATA / "channel_locations_um.npy")
    neural = np.isin(np.arange(N_CHANNELS), NEURAL)
    rec = Recording(
        files=files, dtype=np.int16, n_channels=N_CHANNELS, sampling_rate=FS,
        gain_to_uV=np.where(neural, 0.195, 0.0), offset_to_uV=np.zeros(N_CHANNELS),
        channel_positions=pos, neural=neural, name="rec",
    )
    return rec, data


def placed(new_id: int, source_id: int, n_times: int, peak: int, channels: list[int], scale: float) -> PlacedUnit:
    t = np.arange(n_times, dtype=np.float32)[:, None]
    wave = scale * np.sin(t / 3.0 + np.arange(len(channels))[None, :]).astype(np.float32)
    tpl = Template(unit_id=source_id, waveform=wave, channels=np.array(channels), peak_index=peak,
                   peak_channel=channels[0], position=np.zeros(2), source="test")
    return PlacedUnit(new_unit_id=new_id, source_unit_id=source_id, template=tpl, shift_um=np.zeros(2))


def make_truth(rec: Recording) -> GroundTruth:
    units = [
        placed(100, 3, 61, 20, [4, 5, 6, 7], 50.0),
        placed(101, 7, 41, 30, [31, 32], -80.0),
        placed(105, 0, 82, 10, [1, 12, 20], 30.0),
    ]
    # given out of order on purpose: Plan sorts by time; 1999/2000 straddle the file boundary
    times = [3100, 150, 2000, 1999, 150, 700, 3400]
    unit_index = [1, 0, 2, 0, 2, 1, 0]
    gains = [1.0, 0.5, 1.25, 0.75, 2.0, 1.5, 0.66]
    plan = Plan(units=units, times=times, unit_index=unit_index, gains=gains)
    return GroundTruth(plan=plan, recording=rec, clipped_per_channel=np.zeros(N_CHANNELS, np.int64))


def write_hybrid(rec: Recording, data: list[np.ndarray], out_dir: Path) -> list[np.ndarray]:
    """Stand in for the legacy writer: the source plus a marker, under its hybrid file name."""
    hybrid = []
    for f, arr in zip(rec.files, data):
        h = arr.copy()
        h[::97, :] += 1000  # so traces read from the source would not match
        with open(out_dir / hybrid_file_name(f.path), "wb") as fh:
            fh.write(b"\x01" * f.offset_bytes)
            fh.write(h.tobytes())
        hybrid.append(h)
    return hybrid


def run_writer(tmp_path: Path, offset: int = 0, **options):
    rec, data = make_recording(tmp_path, offset)
    out = tmp_path / "out"
    out.mkdir()
    hybrid = write_hybrid(rec, data, out)
    truth = make_truth(rec)
    writer = PhyWriter(PhyWriter.Options(type="phy", **options))
    writer.begin(rec, out)
    written = writer.finish(truth, out)
    return rec, truth, out, written, np.concatenate(hybrid)


def test_class_contract():
    assert PhyWriter.name == "phy" and PhyWriter.requires == ("legacy",)
    assert PhyWriter.needs_every_sample is False
    assert PhyWriter.Options(type="phy").folder == "phy"
    for bad in ("../phy", "/abs/phy", "", "."):
        with pytest.raises(Exception):
            PhyWriter.Options(type="phy", folder=bad)


def test_registered_as_builtin_writer():
    from hybridkit.registry import build_registry

    assert build_registry().get("writer", "phy") is PhyWriter


def test_files_and_params(tmp_path):
    rec, truth, out, written, _ = run_writer(tmp_path)
    folder = out / "phy"
    assert sorted(p.name for p in written) == sorted(p.name for p in folder.iterdir())
    assert {p.name for p in written} == {
        "params.py", "spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "amplitudes.npy",
        "templates.npy", "channel_map.npy", "channel_positions.npy", "similar_templates.npy",
        "whitening_mat.npy", "whitening_mat_inv.npy", "cluster_group.tsv", "cluster_source_unit.tsv",
    }
    params: dict = {}
    exec((folder / "params.py").read_text(), {}, params)  # as phy does, on our own output
    assert params == {
        "dat_path": ["../run_g0_t0.imec0.ap.GT.bin", "../run_g0_t1.imec0.ap.GT.bin"],
        "n_channels_dat": 34, "dtype": "int16", "offset": 0, "sample_rate": 30000.0,
        "hp_filtered": False,
    }
    np.testing.assert_array_equal(np.load(folder / "spike_times.npy"), [150, 150, 700, 1999, 2000, 3100, 3400])
    assert np.load(folder / "spike_times.npy").dtype == np.int64
    assert np.load(folder / "spike_clusters.npy").dtype == np.int32
    np.testing.assert_array_equal(np.load(folder / "spike_templates.npy"), truth.plan.unit_index)
    np.testing.assert_array_equal(np.load(folder / "amplitudes.npy"), truth.plan.gains)
    assert (folder / "cluster_group.tsv").read_text() == "cluster_id\tgroup\n100\tgood\n101\tgood\n105\tgood\n"
    assert (folder / "cluster_source_unit.tsv").read_text() == (
        "cluster_id\tsource_unit\n100\t3\n101\t7\n105\t0\n")


def test_dense_templates_align_peaks(tmp_path):
    rec, truth, out, _, _ = run_writer(tmp_path)
    dense = np.load(out / "phy" / "templates.npy")
    # peaks at 20, 30, 10; tails 41, 11, 72 -> common length 30 + 72, peak at sample 30
    assert dense.shape == (3, 102, N_NEURAL) and dense.dtype == np.float32
    again, peak = dense_templates(truth.plan.units, rec.neural_channels)
    assert peak == 30
    np.testing.assert_array_equal(again, dense)
    for k, unit in enumerate(truth.plan.units):
        t = unit.template
        start = 30 - t.peak_index
        np.testing.assert_array_equal(dense[k, start : start + t.n_times][:, t.channels - 1], t.waveform)
        rest = dense[k].copy()
        rest[start : start + t.n_times, t.channels - 1] = 0
        assert not rest.any()


def test_phylib_opens_the_folder(tmp_path):
    model_mod = pytest.importorskip("phylib.io.model")
    rec, truth, out, _, hybrid = run_writer(tmp_path)
    model = model_mod.load_model(out / "phy" / "params.py")
    try:
        assert not any(m.startswith(("PyQt", "PySide")) for m in sys.modules)
        np.testing.assert_array_equal(model.spike_samples, [150, 150, 700, 1999, 2000, 3100, 3400])
        ids = np.array([100, 101, 105])[truth.plan.unit_index]
        np.testing.assert_array_equal(model.spike_clusters, ids)
        np.testing.assert_array_equal(model.cluster_ids, [100, 101, 105])
        np.testing.assert_array_equal(model.spike_templates, truth.plan.unit_index)
        np.testing.assert_array_equal(model.channel_mapping, NEURAL)
        np.testing.assert_array_equal(model.channel_positions, np.load(DATA / "channel_locations_um.npy"))
        np.testing.assert_array_equal(model.amplitudes, truth.plan.gains)
        assert model.metadata["group"] == {100: "good", 101: "good", 105: "good"}
        assert model.sample_rate == FS and model.n_channels_dat == N_CHANNELS
        # traces: the hybrid files, concatenated, neural columns only
        # (phylib's lazily channel-mapped reader reports the file's column count in .shape)
        assert model.traces.shape[0] == sum(FILE_SAMPLES) and model.duration == sum(FILE_SAMPLES) / FS
        assert model.traces[:].shape == (sum(FILE_SAMPLES), N_NEURAL)
        np.testing.assert_array_equal(model.traces[:], hybrid[:, NEURAL])
        np.testing.assert_array_equal(model.traces[1990:2010], hybrid[1990:2010, NEURAL])
        np.testing.assert_array_equal(model.sparse_templates.data, np.load(out / "phy" / "templates.npy"))
        assert model.sparse_templates.data.shape == (3, 102, N_NEURAL)
    finally:
        model.close()


def test_nested_folder_and_offset(tmp_path):
    model_mod = pytest.importorskip("phylib.io.model")
    rec, truth, out, written, hybrid = run_writer(tmp_path, offset=8, folder="views/phy")
    assert all(p.parent == out / "views" / "phy" for p in written)
    model = model_mod.load_model(out / "views" / "phy" / "params.py")
    assert model.offset == 8
    try:
        np.testing.assert_array_equal(model.traces[:], hybrid[:, NEURAL])
    finally:
        model.close()


def test_error_channels_major_recording(tmp_path):
    rec, _ = make_recording(tmp_path)
    rec.order = "channels"
    with pytest.raises(OutputError, match="channels-major"):
        PhyWriter(PhyWriter.Options(type="phy")).begin(rec, tmp_path)


def test_error_different_offsets(tmp_path):
    rec, _ = make_recording(tmp_path)
    rec.files[1] = SourceFile(rec.files[1].path, rec.files[1].n_samples, offset_bytes=16)
    with pytest.raises(OutputError, match=r"different header offsets \[0, 16\]"):
        PhyWriter(PhyWriter.Options(type="phy")).begin(rec, tmp_path)


def test_error_template_on_non_neural_channel(tmp_path):
    rec, _ = make_recording(tmp_path)
    truth = make_truth(rec)
    truth.plan.units[1] = placed(101, 7, 41, 30, [32, 33], -80.0)  # 33 is the sync column
    writer = PhyWriter(PhyWriter.Options(type="phy"))
    writer.begin(rec, tmp_path)
    with pytest.raises(OutputError, match=r"unit 101 uses channel\(s\) \[33\]"):
        writer.finish(truth, tmp_path)


def test_error_duplicate_unit_ids(tmp_path):
    rec, _ = make_recording(tmp_path)
    truth = make_truth(rec)
    truth.plan.units[2] = placed(100, 0, 82, 10, [1, 12, 20], 30.0)
    writer = PhyWriter(PhyWriter.Options(type="phy"))
    writer.begin(rec, tmp_path)
    with pytest.raises(OutputError, match=r"ids \[100, 101, 100\] must be distinct"):
        writer.finish(truth, tmp_path)

"""hybridkit.spikeinterface: the lazy hybrid equals the file generate writes, sample for sample (the
example dataset, with drift, a two-file source; several chunk sizes; SpikeInterface worker
processes), and read_hybrid returns what run_sorter and compare_sorter_to_ground_truth need, from
legacy and NWB outputs."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.errors import TruthError
from hybridkit.results.truth import load_truth
from hybridkit.run.pipeline import generate
from hybridkit.spikeinterface import lazy_hybrid, read_hybrid
from tests.helpers import config_with
from tests.si_files import noise, open_ephys_run_config, write_open_ephys

N_CH = 385
BIN = "demo_g0_t0.imec0.ap.GT.bin"
NWB = {"type": "nwb", "dandi": False, "inspect": "off", "compression_level": 1}


def run(example: Path, tmp: Path, **changes):
    changes.setdefault("writers", [{"type": "legacy"}])
    return generate(load_config(config_with(example, tmp, output={"directory": str(tmp / "out")}, **changes)))


@pytest.fixture(scope="module")
def static(example, tmp_path_factory):
    return run(example, tmp_path_factory.mktemp("static"))


@pytest.fixture(scope="module")
def drifting(example, tmp_path_factory):
    # a rigid 30 um step at 2 s (one and a half rows) on top of a zigzag: variants differ per event
    motion = {"source": {"type": "table", "times_s": [0.0, 2.0], "displacement_um": [0.0, 30.0],
                         "interpolation": "previous"}, "reference": "zero",
              "synthetic": [{"kind": "zigzag", "amplitude_um": 8, "period_s": 1.5}]}
    return run(example, tmp_path_factory.mktemp("drift"), motion=motion)


def chunked(recording, segment: int, chunk: int) -> np.ndarray:
    n = recording.get_num_samples(segment)
    return np.concatenate([recording.get_traces(segment_index=segment, start_frame=a,
                                                end_frame=min(a + chunk, n)) for a in range(0, n, chunk)])


@pytest.mark.parametrize("chunk", [1009, 30000, 120000])
def test_lazy_equals_generate_on_the_example(static, chunk):
    lazy = lazy_hybrid(static.output_dir)
    written = np.fromfile(static.output_dir / BIN, np.int16).reshape(-1, N_CH)
    assert lazy.get_num_segments() == 1 and lazy.get_num_channels() == N_CH
    assert lazy.get_dtype() == np.int16 and lazy.get_num_samples(0) == written.shape[0]
    assert static.truth.plan.n_events > 100
    # a SpikeGLX file: the compiled path into rows copied from the mapped file
    assert lazy._recording_segments[0].mapped is not None
    assert np.array_equal(chunked(lazy, 0, chunk), written)


def test_lazy_window_edges_and_channel_subsets(static):
    lazy = lazy_hybrid(static.output_dir)
    written = np.fromfile(static.output_dir / BIN, np.int16).reshape(-1, N_CH)
    t = int(static.truth.plan.times[10])  # windows that cut an event in two, one sample either side
    for a, b in ((t - 1, t), (t, t + 1), (t - 40, t + 3), (0, 1), (written.shape[0] - 1, written.shape[0])):
        assert np.array_equal(lazy.get_traces(start_frame=a, end_frame=b), written[a:b])
    ids = lazy.channel_ids[[5, 100, 384]]
    assert np.array_equal(lazy.get_traces(start_frame=t - 50, end_frame=t + 50, channel_ids=ids),
                          written[t - 50:t + 50][:, [5, 100, 384]])
    # and the source is not the hybrid: the test above could not pass by reading the source
    source = np.fromfile(static.truth.recording.files[0].path, np.int16).reshape(-1, N_CH)
    assert not np.array_equal(source[t - 50:t + 50], written[t - 50:t + 50])


@pytest.mark.parametrize("chunk", [997, 45000])
def test_lazy_equals_generate_with_drift(drifting, chunk):
    plan = drifting.truth.plan
    assert plan.drifting and np.unique(plan.variant_index).size > 3
    lazy = lazy_hybrid(drifting.output_dir)
    written = np.fromfile(drifting.output_dir / BIN, np.int16).reshape(-1, N_CH)
    assert np.array_equal(chunked(lazy, 0, chunk), written)


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    """A run over a two-recording Open Ephys source (two files of one run), legacy writer."""
    root = tmp_path_factory.mktemp("oe2")
    node = write_open_ephys(root, [noise(50000, 32, seed=7), noise(37000, 32, seed=8)])
    return generate(load_config(open_ephys_run_config(root, node, root / "out", 32)))


@pytest.mark.parametrize("chunk", [1000, 7919, 50000])
def test_lazy_equals_generate_on_a_two_file_source(two_files, chunk):
    lazy = lazy_hybrid(two_files.output_dir)
    assert lazy.get_num_segments() == 2
    # read through SpikeInterface's Open Ephys reader: the compiled path into what it returns
    assert all(seg.packed is not None and seg.mapped is None for seg in lazy._recording_segments)
    assert two_files.truth.plan.times.min() < 50000 < two_files.truth.plan.times.max()
    for k in range(2):
        written = np.fromfile(two_files.output_dir / f"Record_Node_101_seg{k}.GT.bin", np.int16).reshape(-1, 32)
        assert np.array_equal(chunked(lazy, k, chunk), written)


def test_lazy_pickles_to_worker_processes(two_files, tmp_path):
    """SpikeInterface's save with n_jobs=2 ships the recording to worker processes by its kwargs."""
    rec, _ = read_hybrid(two_files.output_dir, lazy=True)
    clone = pickle.loads(pickle.dumps(rec))
    assert np.array_equal(clone.get_traces(segment_index=1, end_frame=3000),
                          rec.get_traces(segment_index=1, end_frame=3000))
    saved = rec.save(folder=tmp_path / "saved", format="binary", n_jobs=2, chunk_size=6000,
                     progress_bar=False, verbose=False)
    for k in range(2):
        written = np.fromfile(two_files.output_dir / f"Record_Node_101_seg{k}.GT.bin", np.int16).reshape(-1, 32)
        assert np.array_equal(saved.get_traces(segment_index=k), written)



def test_lazy_mapped_source_in_worker_processes(static, tmp_path):
    """The compiled path over a mapped file in SpikeInterface's worker processes (each maps the file
    and runs the compiled loop itself)."""
    lazy = lazy_hybrid(static.output_dir)
    assert lazy._recording_segments[0].mapped is not None
    saved = lazy.save(folder=tmp_path / "saved", format="binary", n_jobs=2, chunk_size=10007,
                      progress_bar=False, verbose=False)
    written = np.fromfile(static.output_dir / BIN, np.int16).reshape(-1, N_CH)
    assert np.array_equal(saved.get_traces(), written)


# -- read_hybrid -------------------------------------------------------------------------------------
def test_read_hybrid_from_legacy(static):
    from spikeinterface.comparison import compare_sorter_to_ground_truth

    rec, gt = read_hybrid(static.output_dir)
    truth = load_truth(static.output_dir)
    src = static.truth.recording
    neural = src.neural_channels
    assert rec.get_num_channels() == neural.size == 384  # the sync word is not a contact
    assert np.allclose(rec.get_channel_locations(), src.channel_positions[neural])
    assert np.allclose(rec.get_channel_gains(), src.gain_to_uV[neural])
    assert rec.has_probe()
    written = np.fromfile(static.output_dir / BIN, np.int16).reshape(-1, N_CH)
    assert np.array_equal(rec.get_traces(start_frame=1000, end_frame=3000), written[1000:3000][:, neural])
    assert gt.get_unit_ids().tolist() == truth.unit_ids.tolist()
    for u in truth.unit_ids.tolist():
        assert np.array_equal(gt.get_unit_spike_train(u), truth.times_of(u))
    plan = static.truth.plan
    for i, unit in enumerate(plan.units):
        u = unit.new_unit_id
        assert gt.get_unit_property(u, "source_unit") == unit.source_unit_id
        assert gt.get_unit_property(u, "peak_channel") == unit.template.peak_channel
        assert gt.get_unit_property(u, "y_um") == pytest.approx(unit.template.position[1])
        gain = plan.gains[plan.unit_index == i].mean()
        assert gt.get_unit_property(u, "amplitude_uV") == pytest.approx(unit.template.peak_amplitude_uV * gain, rel=1e-5)
        assert 3 < gt.get_unit_property(u, "snr") < 200
    cmp = compare_sorter_to_ground_truth(gt, gt, exhaustive_gt=True)
    assert np.all(cmp.get_performance()["accuracy"] == 1.0)


def test_read_hybrid_from_nwb_and_lazy_without_traces(example, static, tmp_path_factory):
    with_traces = run(example, tmp_path_factory.mktemp("nwb"), writers=[NWB])
    written = np.fromfile(static.output_dir / BIN, np.int16).reshape(-1, N_CH)
    neural = static.truth.recording.neural_channels
    rec, gt = read_hybrid(with_traces.output_dir / "demo.nwb")
    assert rec.get_num_channels() == 384 and np.allclose(rec.get_channel_gains(), 2.34375)
    assert np.array_equal(rec.get_traces(start_frame=5000, end_frame=9000), written[5000:9000][:, neural])
    plan = static.truth.plan
    assert gt.get_unit_ids().tolist() == [u.new_unit_id for u in plan.units]
    for i, unit in enumerate(plan.units):
        assert np.array_equal(gt.get_unit_spike_train(unit.new_unit_id), plan.times[plan.unit_index == i])

    truth_only = run(example, tmp_path_factory.mktemp("nwb_truth"), writers=[{**NWB, "traces": False}])
    rec, gt = read_hybrid(truth_only.output_dir)
    assert "hybridkit.results.lazy_hybrid.LazyHybridRecording" in str(rec.to_dict(recursive=True))
    assert np.array_equal(rec.get_traces(start_frame=0, end_frame=120000), written[:, neural])
    with pytest.raises(TruthError, match="no hybrid traces"):
        read_hybrid(truth_only.output_dir, lazy=False)


def test_lazy_refuses_an_output_without_plan_file_or_a_changed_source(static, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(static.output_dir, out, ignore=shutil.ignore_patterns("*.bin"))
    (out / "templates-demo.npz").unlink()
    with pytest.raises(TruthError, match="templates-demo.npz: missing"):
        lazy_hybrid(out)
    shutil.copy(static.output_dir / "templates-demo.npz", out)
    cfg = json.loads((out / "config.resolved.json").read_text())
    short = tmp_path / "short.bin"
    short.write_bytes(Path(cfg["recording"]["path"]).read_bytes()[: N_CH * 2 * 1000])
    cfg["recording"] = {"type": "binary", "path": str(short), "dtype": "int16", "n_channels": N_CH,
                        "sampling_rate": 30000, "geometry": str(out / "probe-demo.json")}
    (out / "config.resolved.json").write_text(json.dumps(cfg))
    with pytest.raises(TruthError, match="not the same source"):
        lazy_hybrid(out)

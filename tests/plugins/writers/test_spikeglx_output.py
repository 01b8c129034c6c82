"""The legacy writer's SpikeGLX output opens in SpikeInterface (neo) for every fixture meta that
SpikeInterface reads as a source: same geometry, same gains, the exact samples of the hybrid file."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.formats.spikeglx_meta import read_meta
from hybridkit.run.pipeline import generate

from tests.helpers import planned_sum
from tests.plugins.sources.test_spikeglx import IMEC_METAS, IBL, SI_UNREADABLE, make_stream

SI_READABLE = [m for m in IMEC_METAS if m.name not in SI_UNREADABLE]


def _run(tmp_path, bin_path, session="hyb", rate_hz=200.0, n_units=2):
    cfg = {
        "session": session, "seed": 5,
        # LF streams too: their 2.5 kHz is refused by default (min_sampling_rate_hz)
        "recording": {"type": "spikeglx", "path": str(bin_path), "min_sampling_rate_hz": 0},
        "templates": {"type": "synthetic", "n_units": n_units, "ms_before": 0.5, "ms_after": 1.0},
        "injection": {"trains": {"mode": "poisson", "rate_hz": rate_hz},
                      "placement": {"min_distance_um": 0.0}},  # NP-Ultra: a 48 x 96 um probe
        "output": {"directory": str(tmp_path / "out")},
        "writers": [{"type": "legacy"}],
        "engine": {"progress": False},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return generate(load_config(path))


def _read_si(folder, stream_id):
    import spikeinterface.extractors as se

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return se.read_spikeglx(folder, stream_id=stream_id)


@pytest.mark.parametrize("meta_src", SI_READABLE, ids=lambda p: p.name)
def test_spikeinterface_opens_the_hybrid(meta_src, tmp_path):
    band = "lf" if ".lf." in meta_src.name else "ap"
    n_chan = int(read_meta(meta_src)["nSavedChans"])
    data = np.random.default_rng(0).integers(-200, 200, (1500, n_chan))
    src = make_stream(meta_src, tmp_path / "src", data=data, stem=f"x_g0_t0.imec0.{band}")
    result = _run(tmp_path, src)
    out, rec = result.output_dir, result.truth.recording
    assert result.truth.plan.n_events > 0

    gt = out / "x_g0_t0.imec0.GT.bin".replace("imec0.", f"imec0.{band}.")
    link = out / "spikeglx" / f"x_g0_t0.imec0.{band}.bin"
    assert os.path.samefile(gt, link)  # one file, two names: no disk space
    hybrid = np.fromfile(gt, "<i2").reshape(-1, n_chan)
    assert not np.array_equal(hybrid, data)  # something was injected

    si = _read_si(out / "spikeglx", f"imec0.{band}")
    neural = rec.neural_channels
    assert si.get_num_channels() == neural.size and si.get_num_samples() == 1500
    assert si.get_sampling_frequency() == rec.sampling_rate
    np.testing.assert_allclose(si.get_channel_gains(), rec.gain_to_uV[neural], rtol=1e-9)
    if si.has_probe():  # SpikeInterface attaches no probe to LF streams
        np.testing.assert_array_equal(si.get_channel_locations(), rec.channel_positions[neural])
        source_si = _read_si(src.parent, f"imec0.{band}")
        np.testing.assert_array_equal(si.get_channel_locations(), source_si.get_channel_locations())
    traces = si.get_traces()
    # SpikeInterface 0.105 returns the quad-base probe's 4 sync words after its 1536 channels
    assert np.array_equal(neural, np.arange(neural.size)) and traces.shape[1] in (neural.size, n_chan)
    np.testing.assert_array_equal(traces, hybrid[:, :traces.shape[1]])

    meta = read_meta(link.with_suffix(".meta"))
    assert meta["fileName"] == link.name and int(meta["fileSizeBytes"]) == gt.stat().st_size
    assert "fileSHA1" not in meta
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {f["path"] for f in manifest["files"]}
    assert {f"spikeglx/{link.name}", f"spikeglx/{link.with_suffix('.meta').name}", gt.name} <= listed


def test_renamed_source_gets_a_spikeglx_name(tmp_path):
    """A source named outside SpikeGLX's convention (CatGT export, renamed by hand) is written
    as <session>_g0_t0.imec0.ap.bin, which neo can parse; the .GT names stay as they were."""
    src = make_stream(IBL / "sample3B_catgt.ap.meta", tmp_path / "src", 900, stem="my_catgt.ap")
    out = _run(tmp_path, src, session="hyb run").output_dir
    assert (out / "my_catgt.ap.GT.bin").is_file() and (out / "my_catgt.ap.GT.meta").is_file()
    assert sorted(p.name for p in (out / "spikeglx").iterdir()) == [
        "hyb-run_g0_t0.imec0.ap.bin", "hyb-run_g0_t0.imec0.ap.meta"]
    si = _read_si(out / "spikeglx", "imec0.ap")
    hybrid = np.fromfile(out / "my_catgt.ap.GT.bin", "<i2").reshape(-1, 385)
    np.testing.assert_array_equal(si.get_traces(), hybrid[:, :384])


def test_two_triggers_open_as_two_segments(tmp_path):
    src_meta = IBL / "sample3B_g0_t0.imec1.ap.meta"
    rng = np.random.default_rng(1)
    a, b = rng.integers(-300, 300, (1200, 385)), rng.integers(-300, 300, (900, 385))
    make_stream(src_meta, tmp_path / "src", data=a, stem="run_g0_t0.imec1.ap", updates={"firstSample": "0"})
    make_stream(src_meta, tmp_path / "src", data=b, stem="run_g0_t1.imec1.ap", updates={"firstSample": "1200"})
    out = _run(tmp_path, tmp_path / "src" / "run_g0_t*.imec1.ap.bin").output_dir
    si = _read_si(out / "spikeglx", "imec1.ap")
    assert si.get_num_segments() == 2
    for seg, name in enumerate(["run_g0_t0.imec1.ap.GT.bin", "run_g0_t1.imec1.ap.GT.bin"]):
        hybrid = np.fromfile(out / name, "<i2").reshape(-1, 385)
        np.testing.assert_array_equal(si.get_traces(segment_index=seg), hybrid[:, :384])


@pytest.mark.parametrize("gap", [0, 15000], ids=["contiguous", "half-second-gap"])
def test_event_windows_stay_inside_a_file_across_a_gap(tmp_path, gap):
    """t1 starts `gap` samples after t0 ends on the acquisition clock: with a gap no injected
    window spans the two files (the samples either side are 0.5 s apart); contiguous files may be
    spanned. The hybrid minus the source is the planned templates everywhere, in both cases."""
    src_meta = IBL / "sample3B_g0_t0.imec1.ap.meta"
    rng = np.random.default_rng(2)
    a, b = rng.integers(-50, 50, (6000, 385)), rng.integers(-50, 50, (6000, 385))
    make_stream(src_meta, tmp_path / "src", data=a, stem="run_g0_t0.imec1.ap", updates={"firstSample": "3000"})
    make_stream(src_meta, tmp_path / "src", data=b, stem="run_g0_t1.imec1.ap",
                updates={"firstSample": str(3000 + 6000 + gap)})
    result = _run(tmp_path, tmp_path / "src" / "run_g0_t*.imec1.ap.bin", rate_hz=500.0, n_units=4)
    plan, rec = result.truth.plan, result.truth.recording
    assert list(rec.clock_breaks) == ([6000] if gap else [])
    starts = np.array([plan.times[i] - plan.units[u].template.peak_index
                       for i, u in enumerate(plan.unit_index)])
    stops = starts + np.array([plan.units[u].template.n_times for u in plan.unit_index])
    spanning = (starts < 6000) & (stops > 6000)
    if gap:
        assert not spanning.any() and (stops <= 6000).any() and (starts >= 6000).any()
    else:
        assert spanning.any()  # the same seed does span contiguous files
    hybrid = np.concatenate([np.fromfile(result.output_dir / f"run_g0_t{i}.imec1.ap.GT.bin", "<i2")
                             .reshape(-1, 385) for i in (0, 1)])
    expected = planned_sum(plan, 12000, 385, rec.gain_to_uV)
    assert np.abs(hybrid - np.concatenate([a, b]) - expected).max() <= 0.5 + 1e-3

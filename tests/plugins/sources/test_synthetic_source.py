"""Source reader ``synthetic``: no file, block-deterministic noise on offline probeinterface probes,
and a fully synthetic ground-truth run through `generate` (legacy flat binary, phy, motion)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.engine.noise_model import distance_covariance
from hybridkit.errors import SourceError
from hybridkit.plugins.sources.synthetic import SyntheticOptions, SyntheticReader
from hybridkit.run.pipeline import generate
from tests.helpers import main, planned_sum


def open_synthetic(**kw):
    kw.setdefault("manufacturer", "generic")
    return SyntheticReader(SyntheticOptions(type="synthetic", **kw)).open()


def test_any_block_reads_alone_and_the_same_every_time():
    kw = dict(model="linear-16", duration_s=0.5, block_s=0.01, correlation_um=30, seed=4)
    whole = open_synthetic(**kw).read(0, 15000)
    rec = open_synthetic(**kw)
    # windows across block edges (300 samples per block), in any order, any channels
    for start, stop in ((7000, 7700), (299, 301), (0, 1), (14000, 15000), (600, 900)):
        assert np.array_equal(rec.read(start, stop), whole[start:stop])
    cols = np.array([5, 2, 9])
    assert np.array_equal(rec.read(1234, 1700, cols), whole[1234:1700, cols])
    assert np.array_equal(rec.block(3), whole[900:1200])
    # a block depends on the seed and its index only: not on the block's neighbours
    other = open_synthetic(**{**kw, "duration_s": 0.05})
    assert np.array_equal(other.read(0, 1500), whole[:1500])
    assert not np.array_equal(open_synthetic(**{**kw, "seed": 5}).read(0, 300), whole[:300])


def test_noise_level_and_spatial_correlation():
    rec = open_synthetic(model="linear-8", duration_s=4, noise_uV=12, correlation_um=25, gain_uV=0.5)
    uv = rec.read(0, rec.n_samples).astype(np.float64) * 0.5
    expected = distance_covariance(rec.channel_positions, 12.0, 25.0)
    assert np.allclose(np.cov(uv.T), expected, atol=0.05 * 144)
    white = open_synthetic(model="linear-8", duration_s=2, noise_uV=12, gain_uV=0.5)
    c = np.corrcoef(white.read(0, white.n_samples).T)
    assert np.abs(c - np.eye(8)).max() < 0.03


def test_probes_offline():
    np1 = open_synthetic(manufacturer="imec", model="NP1000", duration_s=0.01)
    assert np1.n_channels == 384 and np1.probe.model_name == "NP1000"
    assert np.array_equal(np1.channel_positions[:2], [[16.0, 0.0], [48.0, 0.0]])
    np2 = open_synthetic(manufacturer="imec", model="NP2000", duration_s=0.01)
    assert np2.n_channels == 384
    cols = open_synthetic(manufacturer="generic", model="columns-4x8", duration_s=0.01)
    assert cols.n_channels == 32 and len(np.unique(cols.channel_positions[:, 0])) == 4
    with pytest.raises(SourceError, match="recording.model: 'NP9999' is not a Neuropixels part"):
        open_synthetic(manufacturer="imec", model="NP9999")
    with pytest.raises(SourceError, match="not a generic probe; valid: 'linear-<n>'"):
        open_synthetic(manufacturer="generic", model="tetrode")
    with pytest.raises(SourceError, match="not available offline"):
        open_synthetic(manufacturer="cambridgeneurotech", model="ASSY-doesnotexist")


def test_measured_covariance_file(tmp_path):
    pos = open_synthetic(model="linear-4", duration_s=0.01).channel_positions
    spatial = distance_covariance(pos, 8.0, 40.0)
    np.savez(tmp_path / "cov.npz", spatial=spatial)
    rec = open_synthetic(model="linear-4", duration_s=3, covariance=str(tmp_path / "cov.npz"),
                         gain_uV=0.25)
    uv = rec.read(0, rec.n_samples) * 0.25
    assert np.allclose(np.cov(uv.T), spatial, atol=0.05 * 64)
    np.savez(tmp_path / "bad.npz", spatial=np.eye(3))
    with pytest.raises(SourceError, match=r"has 'spatial' of shape \(3, 3\); valid: \(4, 4\)"):
        open_synthetic(model="linear-4", covariance=str(tmp_path / "bad.npz"))


def _config(tmp_path, **extra) -> str:
    cfg = {"seed": 3,
           "recording": {"type": "synthetic", "manufacturer": "generic", "model": "columns-2x32",
                         "duration_s": 2.0, "correlation_um": 20, "block_s": 0.1},
           "templates": {"type": "synthetic", "n_units": 4},
           "injection": {"trains": {"mode": "poisson", "rate_hz": 10}},
           "writers": [{"type": "legacy"}, {"type": "phy"}],
           "engine": {"progress": False, "chunk_duration_s": 0.07},
           "output": {"directory": "out"}, **extra}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def test_fully_synthetic_run_is_exact(tmp_path):
    result = generate(load_config(_config(tmp_path)))
    rec, plan = result.truth.recording, result.truth.plan
    hyb = np.fromfile(result.output_dir / "synthetic.GT.bin", np.int16).reshape(-1, rec.n_channels)
    src = rec.read(0, rec.n_samples)  # regenerated: the source is its seed
    assert hyb.shape == src.shape and plan.n_events > 20
    expected = planned_sum(plan, rec.n_samples, rec.n_channels, rec.gain_to_uV)
    assert result.truth.clipped_samples == 0
    assert np.abs(hyb - src - expected).max() <= 0.5 + 1e-3
    touched = np.unique(np.concatenate([u.template.channels for u in plan.units]))
    assert np.array_equal(np.delete(hyb, touched, 1), np.delete(src, touched, 1))
    params = (result.output_dir / "phy" / "params.py").read_text()
    assert "synthetic.GT.bin" in params


def test_fully_synthetic_drifting_run(tmp_path, capsys):
    path = _config(tmp_path, motion={"synthetic": [{"kind": "zigzag", "amplitude_um": 30,
                                                   "period_s": 1.0}]})
    code, out, err = main(capsys, "generate", path)
    assert code == 0, err
    from hybridkit.results.truth import load_truth

    truth = load_truth(tmp_path / "out")
    assert len(truth.unit_ids) == 4
    events = (tmp_path / "out").glob("hybrid_events-*.csv")
    rows = next(events).read_text().splitlines()
    assert len(rows) > 20

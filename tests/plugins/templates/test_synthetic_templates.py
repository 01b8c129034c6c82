"""Template source ``synthetic``: seeded parametric templates with a spatial decay."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from hybridkit.config.run_config import load_config
from hybridkit.example import np1_positions, write_example
from hybridkit.hookspecs import RunContext
from hybridkit.run.pipeline import generate
from hybridkit.plugins.templates.synthetic import SyntheticOptions, SyntheticTemplates, waveform_shape
from tests.helpers import assert_generate_invariant, make_recording


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rng = np.random.default_rng(0)
    data = np.rint(rng.normal(0, 20, (30000, 384))).astype(np.int16)  # 20 raw x 0.5 uV = 10 uV noise std
    return make_recording(tmp_path_factory.mktemp("syn"), data, positions=np1_positions())


def build(recording, seed=7, **kw):
    ctx = RunContext(base_dir=recording.files[0].path.parent, rng=np.random.default_rng(seed), seed=seed)
    return SyntheticTemplates(SyntheticOptions(**kw), ctx).build(recording, None, [])


def test_seeded_and_reproducible(recording):
    a, b, c = build(recording, 7), build(recording, 7), build(recording, 8)
    assert list(a.templates) == [0, 1, 2, 3, 4]
    for k in a.templates:
        assert np.array_equal(a.templates[k].waveform, b.templates[k].waveform)
        assert np.array_equal(a.templates[k].channels, b.templates[k].channels)
    assert any(a.templates[k].peak_channel != c.templates[k].peak_channel for k in a.templates)


def test_shape_window_and_spatial_decay(recording):
    bank = build(recording, n_units=4, ms_before=1.0, ms_after=2.0,
                 scaling={"mode": "amplitude", "min": 60, "max": 180})
    pos = recording.channel_positions
    for t in bank.templates.values():
        assert t.waveform.shape[0] == 90 and t.peak_index == 30 and t.source == "synthetic"
        assert 60 <= t.peak_amplitude_uV <= 180
        soma = np.array(t.provenance["soma_um"])
        d = np.sqrt(((pos - soma[:2]) ** 2).sum(axis=1) + soma[2] ** 2)
        assert t.peak_channel == int(np.argmin(d))  # the nearest contact carries the peak
        assert np.array_equal(t.position, pos[t.peak_channel])
        # every contact sees the same (delayed) waveform scaled by exp(-extra distance / decay)
        extra = d[t.channels] - d.min()
        expect = t.peak_amplitude_uV * np.exp(-extra / t.provenance["spatial_decay_um"])
        assert np.allclose(np.abs(t.waveform).max(axis=0), expect, rtol=0.02)
        # the trough of the peak channel is at peak_index
        col = list(t.channels).index(t.peak_channel)
        assert int(np.argmin(t.waveform[:, col])) == t.peak_index
        assert np.abs(t.waveform[[0, -1]]).max() < 1e-6 * t.peak_amplitude_uV  # tapered ends
        assert t.channels.size > 4


def test_waveform_shape_is_a_trough_then_a_positive_phase():
    t = np.linspace(-1, 2, 301)
    w = waveform_shape(t, 0.1, 0.2, 0.5, 0.3)
    assert w[100] == pytest.approx(-1.0) and np.argmin(w) == 100
    # the after-potential peaks (0.3) at recovery_ms, on the trough's tail
    assert w[150] == pytest.approx(0.3 - np.exp(-0.5 * (0.5 / 0.2) ** 2), rel=1e-6)


def test_snr_scaling_uses_the_measured_noise(recording):
    bank = build(recording, n_units=3, scaling={"mode": "snr", "min": 5, "max": 5})
    raw = recording.read(0, recording.n_samples).astype(float)
    mad = np.median(np.abs(raw - np.median(raw, axis=0)), axis=0) / 0.6745 * 0.5  # whole file, uV
    for t in bank.templates.values():
        noise = t.provenance["noise_uV"]
        assert noise == pytest.approx(np.median(mad), rel=0.02)
        assert t.peak_amplitude_uV == pytest.approx(5 * noise, rel=1e-5)


def test_options_validated():
    with pytest.raises(ValidationError, match="scaling.mode"):
        SyntheticOptions(scaling={"mode": "none"})
    with pytest.raises(ValidationError, match=r"min \(40.0\) is larger than max \(20.0\)"):
        SyntheticOptions(spatial_decay_um=(40, 20))


def test_generate_with_synthetic_templates(tmp_path):
    write_example(tmp_path / "demo", seed=3, duration_s=2.0)
    cfg_path = tmp_path / "demo" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("sorting", "units"):
        cfg.pop(key)
    cfg["templates"] = {"type": "synthetic", "n_units": 3}
    cfg["injection"]["trains"] = {"mode": "poisson", "rate_hz": 10.0}
    cfg["engine"] = {"progress": False}
    cfg_path.write_text(json.dumps(cfg))
    result = generate(load_config(cfg_path))
    plan = result.truth.plan
    assert [u.source_unit_id for u in plan.units] == [0, 1, 2]
    assert all(u.template.provenance["generator"] == "hybridkit synthetic" for u in plan.units)
    assert plan.n_events > 20
    assert_generate_invariant(result)
    # a second run with the same seed injects the same templates
    again = generate(load_config(cfg_path).model_copy(
        update={"output": load_config(cfg_path).output.model_copy(
            update={"directory": tmp_path / "again"})}))
    for u, v in zip(plan.units, again.truth.plan.units):
        assert np.array_equal(u.template.waveform, v.template.waveform)


def test_default_window_lets_the_after_potential_recover(recording):
    """With the default window the taper meets a recovered waveform: no kink. The old 2-ms window
    (still allowed when asked for) tapers a positive phase at a fifth of the trough to zero."""
    from hybridkit.plugins.templates.synthetic import _TAPER_FRACTION, default_ms_after

    assert default_ms_after(1.0, 0.8) == 7.0
    slow = {"recovery_ms": (0.8, 0.8), "positive_ratio": (0.4, 0.4), "n_units": 3}

    def edge_and_jump(bank):
        """Per template: |value| where the end taper starts, and the largest change of slope
        inside the taper, both over the trough depth, on the peak channel."""
        out = []
        for t in bank.templates.values():
            wf = t.waveform[:, list(t.channels).index(t.peak_channel)].astype(np.float64)
            depth = -wf.min()
            ramp = int(round(wf.size * _TAPER_FRACTION))
            start = wf.size - ramp
            out.append((abs(wf[start - 1]) / depth,
                        np.abs(np.diff(wf[start - 2:], 2)).max() / depth))
        return np.array(out)

    new = edge_and_jump(build(recording, **slow))
    assert build(recording, **slow).templates[0].waveform.shape[0] == 240  # (1 + 7) ms at 30 kHz
    assert (new[:, 0] < 0.005).all() and (new[:, 1] < 1e-3).all()
    old = edge_and_jump(build(recording, ms_after=2.0, **slow))
    assert (old[:, 0] > 0.1).all() and (old[:, 1] > 5 * new[:, 1].max()).all()

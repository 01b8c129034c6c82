"""Issue 14: one noise estimate per run, one SNR definition, the same number in every output.

One run of the example (three units, the templates high-passed at 300 Hz, every amplitude scale
1, unit 7 placed at its own place): each injected unit's SNR must be the same number in the NWB
units table (pynwb), the report's unit table, read_hybrid's sorting, `hybridkit units OUTPUT` and
the plan file; unit 7's must equal its selection-table template_snr; and the noise every one of
them divides by is the run's estimate of the source, high-passed at the run's band.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hybridkit import generate, load_config
from hybridkit.engine.noise import (
    NOISE_CHUNK_SAMPLES,
    injected_snr,
    noise_chunk_starts,
    recording_noise_uV,
    snr,
)
from tests.helpers import config_with, run_cli

UNITS = [6, 7, 8]
AT_HOME = 7  # placed at its own place (channel_offset 0)
HIGHPASS_HZ = 300.0


def _config(example, tmp, amplitude=1.0, highpass=HIGHPASS_HZ):
    tmp.mkdir(parents=True, exist_ok=True)
    templates = {"type": "local", **({"highpass_hz": highpass} if highpass else {})}
    return config_with(
        example, tmp, units={"ids": UNITS}, templates=templates,
        injection={"placement": {"mode": "random", "min_distance_um": 60,
                                 "per_unit": {str(AT_HOME): {"channel_offset": 0}}},
                   "trains": {"mode": "source", "jitter_ms": 1.0},
                   "amplitude": {"min": amplitude, "max": amplitude}},
        output={"directory": str(tmp / "out")},
        writers=[{"type": "legacy"}, {"type": "nwb", "traces": False, "dandi": False,
                                       "inspect": "off"}])


@pytest.fixture(scope="module")
def run(example, tmp_path_factory):
    return generate(load_config(_config(example, tmp_path_factory.mktemp("run"))))


def _stored(result) -> dict[int, float]:
    """new unit id -> the SNR the run computed (once, from its noise estimate)."""
    s = injected_snr(result.truth.plan, result.truth.noise_uV)
    return dict(zip([u.new_unit_id for u in result.truth.plan.units], s.snr.tolist()))


def test_the_noise_is_the_runs_one_estimate_of_the_source_in_its_band(run):
    truth = run.truth
    rec = truth.recording
    noise = truth.noise_uV
    assert noise.shape == (rec.n_channels,) and noise.dtype == np.float64
    assert np.isnan(noise[~rec.neural]).all() and (noise[rec.neural] > 0).all()
    # exactly the engine's estimate of the source high-passed at the run's band, not unfiltered
    assert np.array_equal(noise, recording_noise_uV(rec, HIGHPASS_HZ), equal_nan=True)
    plain = recording_noise_uV(rec, None)
    assert not np.allclose(noise[rec.neural], plain[rec.neural], rtol=1e-3)
    # stored with the output: the plan file holds the array and the per-unit numbers
    [npz] = run.output_dir.glob("templates-*.npz")
    with np.load(npz) as z:
        assert np.array_equal(z["plan_noise_uV"], noise, equal_nan=True)
        assert dict(zip(z["plan_unit_ids"].tolist(), z["plan_unit_snr"].tolist())) == _stored(run)
    # the local templates were sparsified against the same noise
    for u in truth.plan.units:
        if u.source_unit_id == AT_HOME:
            prov = u.template.provenance
            assert prov["noise_uV_peak_channel"] == noise[u.template.peak_channel]


def test_every_output_reports_the_same_snr(run, example, monkeypatch):
    pynwb = pytest.importorskip("pynwb")
    expected = _stored(run)
    assert len(expected) == len(UNITS) and all(np.isfinite(list(expected.values())))

    [nwb] = run.output_dir.glob("*.nwb")
    with pynwb.NWBHDF5IO(str(nwb), "r") as io:
        units = io.read().units.to_dataframe()
    nwb_snr = dict(zip(units.index.tolist(), units["snr"].tolist()))
    assert nwb_snr == expected
    for uid, row in units.iterrows():  # the column's own definition holds
        peak = int(row["peak_channel"])
        assert row["noise_uv"] == run.truth.noise_uV[peak]
        assert row["snr"] == row["amplitude_uv"] * np.mean(row["amplitude_scale"]) / row["noise_uv"]
    # the whole estimate travels with the file (processing/hybridkit/noise)
    with pynwb.NWBHDF5IO(str(nwb), "r") as io:
        table = io.read().processing["hybridkit"]["noise"].to_dataframe()
    neural = run.truth.recording.neural_channels
    assert table["file_column"].tolist() == neural.tolist()
    assert np.array_equal(table["noise_uv"].to_numpy(), run.truth.noise_uV[neural])

    # the report: the data its unit table renders
    from hybridkit.results.report import build_report
    from hybridkit.results.report.html import Page

    rendered = {}
    real_table = Page.table

    def spy(self, table_id, columns, rows, titles=None):
        rendered[table_id] = rows
        return real_table(self, table_id, columns, rows, titles)

    monkeypatch.setattr(Page, "table", spy)
    build_report(run.output_dir)
    assert {r["unit"]: r["SNR"] for r in rendered["table-units"]} == expected

    # read_hybrid (the legacy output's truth, and the NWB file's)
    pytest.importorskip("spikeinterface")
    from hybridkit.spikeinterface import read_hybrid

    for source in (run.output_dir, nwb):
        _, gt = read_hybrid(source, lazy=True if source == run.output_dir else None)
        assert {int(u): gt.get_unit_property(u, "snr") for u in gt.unit_ids} == expected

    # `hybridkit score`'s unit rows and its units.csv (without reading the hybrid: the SNR is
    # the stored one; the CSV writes floats exactly)
    from hybridkit.results.scoring import score, write_score

    scored = score(run.output_dir, example / "kilosort4", signal_metrics=False, write=False)
    assert {r["gt_unit"]: r["snr"] for r in scored.units} == expected
    (run.output_dir.parent / "score").mkdir(exist_ok=True)
    write_score(scored, run.output_dir.parent / "score")
    with open(run.output_dir.parent / "score" / "units.csv", encoding="utf-8") as fh:
        assert {int(r["gt_unit"]): float(r["snr"]) for r in csv.DictReader(fh)} == expected

    # `hybridkit units OUTPUT`: printed, and exact in its CSV
    out = run_cli("units", run.output_dir, "--csv", run.output_dir.parent / "injected.csv")
    assert out.returncode == 0, out.stderr
    assert "3 injected units" in out.stdout.splitlines()[0]
    with open(run.output_dir.parent / "injected.csv", encoding="utf-8") as fh:
        table = {int(r["unit"]): float(r["snr"]) for r in csv.DictReader(fh)}
    assert table == expected
    printed = {int(line.split()[0]): float(line.split()[-1]) for line in out.stdout.splitlines()[2:]}
    assert printed == pytest.approx(expected, rel=5e-4)  # printed to 4 significant digits


def test_a_unit_at_its_own_place_with_scale_1_has_its_selection_snr(run):
    truth = run.truth
    [home] = [u for u in truth.plan.units if u.source_unit_id == AT_HOME]
    assert np.array_equal(home.shift_um, [0.0, 0.0])
    assert np.all(truth.plan.gains == 1.0)
    with open(run.output_dir / f"units_selection-{truth.session}.csv", encoding="utf-8") as fh:
        rows = {int(r["unit_id"]): r for r in csv.DictReader(fh)}
    assert float(rows[AT_HOME]["template_snr"]) == _stored(run)[home.new_unit_id]
    assert float(rows[AT_HOME]["template_amplitude_uV"]) == home.template.peak_amplitude_uV
    # every chosen unit has its template's numbers; ids without criteria measure nothing else
    assert all(rows[u]["template_snr"] and not rows[u]["snr"] for u in UNITS)


def test_the_estimate_is_deterministic_and_a_scale_moves_the_snr(run, example, tmp_path):
    """Another run with the same seed: the same noise bit for bit; at amplitude scale 0.5 every
    unit's SNR is half (the mean scale enters the definition), its noise the same."""
    again = generate(load_config(_config(example, tmp_path / "half", amplitude=0.5)))
    assert np.array_equal(again.truth.noise_uV, run.truth.noise_uV, equal_nan=True)
    half = _stored(again)
    assert half == {u: v * 0.5 for u, v in _stored(run).items()}


def test_the_estimate_honours_highpass_hz(example):
    from hybridkit.plugins.sources.spikeglx import SpikeGLXOptions, SpikeGLXReader

    config = json.loads((example / "config.json").read_text())
    path = example / config["recording"]["path"]
    rec = SpikeGLXReader(SpikeGLXOptions(type="spikeglx", path=path)).open()
    neural = rec.neural_channels
    with rec.opened():
        at = {hz: recording_noise_uV(rec, hz)[neural] for hz in (None, 300.0, 1000.0)}
        assert np.array_equal(recording_noise_uV(rec, 300.0)[neural], at[300.0])
    # a higher corner takes more of the example's (pink-ish) noise away
    assert np.all(at[1000.0] < at[300.0]) and not np.array_equal(at[None], at[300.0])


def test_noise_chunks_are_fixed_by_the_length_alone():
    starts = noise_chunk_starts(120_000)
    assert starts.tolist() == [int(np.floor((k + 0.5) * 6000 - NOISE_CHUNK_SAMPLES / 2))
                               for k in range(20)]
    assert noise_chunk_starts(999).tolist() == [0]  # shorter than a chunk: the whole recording
    assert noise_chunk_starts(1500, n_chunks=2).tolist() == [0, 500]  # clipped inside


def test_snr_definition():
    assert snr(50.0, 10.0) == 5.0
    assert snr(50.0, 0.0) == float("inf")
    assert np.isnan(snr(50.0, float("nan"))) and np.isnan(snr(float("nan"), 10.0))
    np.testing.assert_array_equal(snr(np.array([10.0, 20.0]), np.array([2.0, 0.0])), [5.0, np.inf])


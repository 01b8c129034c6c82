"""Ground-truth units by explicit ids and/or quality criteria; the selection table; `hybridkit units`."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hybridkit.config.run_config import UnitsConfig, load_config
from hybridkit.errors import UnitSelectionError
from hybridkit.model import Sorting
from hybridkit.run.pipeline import generate
from hybridkit.run.selection import choose_units, evaluate, select_units, write_table
from tests.helpers import run_cli

FS = 1000.0
N = 100_000  # 100 s


def _sorting() -> Sorting:
    """Five units over 100 s at 1 kHz (1 sample = 1 ms):
    1 good, 10 Hz regular; 2 good, 1 Hz; 3 mua, 10 Hz; 4 good, 10 Hz with 300 1-ms ISIs (contaminated);
    5 good, 100 Hz during the first 10 s only (10 Hz on average; presence 0.1 with 10-s bins)."""
    regular = np.arange(1000) * 100
    trains = {
        1: regular,
        2: np.arange(100) * 1000 + 7,
        3: regular + 3,
        4: np.sort(np.concatenate([regular[:700] + 5, regular[:300] + 6])),
        5: np.arange(1000) * 10 + 1,
    }
    times = np.concatenate(list(trains.values()))
    units = np.concatenate([np.full(t.size, u) for u, t in trains.items()])
    labels = {1: "good", 2: "good", 3: "mua", 4: "good", 5: "Good"}
    return Sorting(spike_times=times, spike_units=units, unit_ids=np.arange(1, 7), labels=labels)


def rows_of(**criteria):
    return {r.unit_id: r for r in evaluate(_sorting(), UnitsConfig(**criteria), fs=FS, n_samples=N)}


def test_first_failed_criterion_is_reported():
    rows = rows_of(label="good", min_firing_rate_hz=5, max_contamination=0.2, min_presence_ratio=0.5,
                   presence_bin_s=10)
    assert sorted(rows) == [1, 2, 3, 4, 5]  # unit 6 has no spikes: not a candidate
    assert rows[1].selected and rows[1].failed == ""
    assert (rows[2].failed, rows[2].detail) == ("min_firing_rate_hz", "1 Hz < 5")
    assert (rows[3].failed, rows[3].detail) == ("label", "label 'mua' not in ['good']")
    assert rows[4].failed == "max_contamination" and rows[4].metrics.isi_violations == 300
    assert rows[4].metrics.contamination == 1.0  # 300 violations in 1000 spikes: beyond Hill's range
    assert (rows[5].failed, rows[5].detail) == ("min_presence_ratio", "0.1 < 0.5")  # label is case-insensitive


def test_max_count_keeps_the_best_by_rank():
    rows = rows_of(max_count=2, rank_by="firing_rate_hz")
    chosen = sorted(u for u, r in rows.items() if r.selected)
    # rates: 1, 3, 4, 5 = 10 Hz; 2 = 1 Hz: ties broken by the lower id
    assert chosen == [1, 3]
    assert rows[4].failed == "max_count" and rows[4].detail == "rank 3 by firing_rate_hz, max_count 2"
    rows = rows_of(max_count=1, rank_by="contamination", label="mua")
    assert [u for u, r in rows.items() if r.selected] == [3]


def test_explicit_ids_restrict_the_candidates_and_keep_their_order():
    rows = evaluate(_sorting(), UnitsConfig(ids=[4, 1, 2], min_firing_rate_hz=5), fs=FS, n_samples=N)
    assert [(r.unit_id, r.selected) for r in rows] == [(4, True), (1, True), (2, False)]
    with pytest.raises(UnitSelectionError, match=r"units.ids: unit\(s\) \[9\] not in the sorting"):
        evaluate(_sorting(), UnitsConfig(ids=[9]), fs=FS, n_samples=N)
    with pytest.raises(UnitSelectionError, match=r"unit\(s\) \[6\] have no spikes"):
        select_units(_sorting(), [1, 6])


def test_amplitude_criteria_need_the_recording():
    with pytest.raises(UnitSelectionError, match="need the recording"):
        evaluate(_sorting(), UnitsConfig(min_snr=5), fs=FS, n_samples=N)


def test_table_csv(tmp_path):
    rows = evaluate(_sorting(), UnitsConfig(min_firing_rate_hz=5), fs=FS, n_samples=N)
    write_table(rows, tmp_path / "t.csv")
    table = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert list(table[0]) == ["unit_id", "label", "n_spikes", "firing_rate_hz", "isi_violations",
                              "isi_violations_ratio", "contamination", "presence_ratio", "amplitude_uV",
                              "snr", "peak_channel", "template_amplitude_uV", "template_snr",
                              "selected", "failed", "detail"]
    assert table[0] == {"unit_id": "1", "label": "good", "n_spikes": "1000", "firing_rate_hz": "10",
                        "isi_violations": "0", "isi_violations_ratio": "0", "contamination": "0",
                        "presence_ratio": "1", "amplitude_uV": "", "snr": "", "peak_channel": "",
                        "template_amplitude_uV": "", "template_snr": "", "selected": "true",
                        "failed": "", "detail": ""}
    assert (table[1]["selected"], table[1]["failed"], table[1]["detail"]) == ("false", "min_firing_rate_hz", "1 Hz < 5")


@pytest.mark.parametrize("units, message", [
    ({}, "give ids or at least one criterion"),
    ({"label": "good", "censored_ms": 2.0}, "censored_ms (2.0) must be below refractory_ms (1.5)"),
    ({"max_contamination": 1.5}, "less than or equal to 1"),
    ({"ids": [1, 1]}, "unit ids listed twice: [1]"),
])
def test_units_config_validation(units, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        UnitsConfig(**units)


# -- in a run ------------------------------------------------------------------------------------------
def _config(example, tmp_path, units):
    cfg = json.loads((example / "config.json").read_text())
    cfg["recording"]["path"] = str(example / cfg["recording"]["path"])
    cfg["sorting"]["path"] = str(example / cfg["sorting"]["path"])
    cfg["engine"] = {"progress": False}
    cfg["units"] = units
    cfg["writers"] = [{"type": "legacy"}]
    cfg["output"] = {"directory": str(tmp_path / "out")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def test_generate_selects_by_quality_and_records_it(example, tmp_path):
    path = _config(example, tmp_path, {"label": "good", "min_firing_rate_hz": 8, "max_count": 3,
                                       "rank_by": "snr"})
    result = generate(load_config(path))
    table = list(csv.DictReader(open(result.output_dir / "units_selection-demo.csv")))
    labels = dict(line.split("\t") for line in (example / "kilosort4" / "cluster_group.tsv").read_text().split("\n")[1:] if line)
    spikes = np.load(example / "kilosort4" / "spike_clusters.npy")
    assert [int(r["unit_id"]) for r in table] == sorted(set(spikes.tolist()))
    for r in table:
        uid = int(r["unit_id"])
        rate = np.sum(spikes == uid) / (result.truth.recording.n_samples / result.truth.recording.sampling_rate)
        assert float(r["firing_rate_hz"]) == pytest.approx(rate, rel=1e-5)
        if labels[str(uid)] != "good":
            assert r["failed"] == "label"
        elif rate < 8:
            assert r["failed"] == "min_firing_rate_hz"
    chosen = [int(r["unit_id"]) for r in table if r["selected"] == "true"]
    passed = [r for r in table if r["failed"] in ("", "max_count")]
    best = sorted(passed, key=lambda r: -float(r["snr"]))[:3]
    assert len(chosen) == 3 and sorted(chosen) == sorted(int(r["unit_id"]) for r in best)
    assert sorted(u.source_unit_id for u in result.truth.plan.units) == sorted(chosen)
    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    assert "units_selection-demo.csv" in json.dumps(manifest)


def test_no_unit_passes(example, tmp_path):
    path = _config(example, tmp_path, {"label": "good", "min_firing_rate_hz": 1000})
    cfg = load_config(path)
    with pytest.raises(UnitSelectionError, match=r"no unit passes .*\(2 failed label, 10 failed min_firing_rate_hz\)"):
        sorting, rec = _sorting_and_recording(cfg)
        choose_units(sorting, cfg.units, rec)
    out = run_cli("generate", path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no unit passes" in out.stderr
    assert not (tmp_path / "out").exists()


def _sorting_and_recording(cfg):
    from hybridkit.plugins.sorters.phy import PhyAdapter
    from hybridkit.plugins.sources.spikeglx import SpikeGLXReader

    rec = SpikeGLXReader(cfg.recording).open()
    return PhyAdapter(cfg.sorting).load(rec), rec


def test_units_command(example, tmp_path):
    path = _config(example, tmp_path, {"ids": [1], "label": "good"})
    out = run_cli("units", example / "kilosort4", "--recording", path, "--max-count", "2",
                  "--csv", tmp_path / "u.csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    seed = json.loads(path.read_text())["seed"]
    # the config's ids are applied, as the run applies them: the table is the run's
    assert lines[0].endswith(f"1 units, 29999.9712 Hz, 4.000 s (duration from the recording); 1 chosen; "
                             f"the run's selection and placement (seed {seed})")
    assert lines[1].split()[:4] == ["unit", "label", "spikes", "rate_Hz"]
    table = list(csv.DictReader(open(tmp_path / "u.csv")))
    assert [r["unit_id"] for r in table] == ["1"] and table[0]["selected"] == "true"
    assert table[0]["amplitude_uV"] and float(table[0]["snr"]) > 0
    # the run would stop building unit 1's template (11 spikes in 4 s): the preview says so
    assert lines[-1].startswith("# note: generate would stop: unit 1: 11 spikes") and "min_spikes" in lines[-1]
    # a SpikeGLX .bin is not a run: every unit is measured, with the criteria given
    out = run_cli("units", example / "kilosort4", "--recording",
                  example / "demo_g0" / "demo_g0_t0.imec0.ap.bin", "--label", "good", "--max-count", "2",
                  "--csv", tmp_path / "u.csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].endswith("12 units, 29999.9712 Hz, 4.000 s (duration from the recording); 2 pass")
    table = list(csv.DictReader(open(tmp_path / "u.csv")))
    assert len(table) == 12 and all(r["amplitude_uV"] and float(r["snr"]) > 0 for r in table)
    assert sum(r["selected"] == "true" for r in table) == 2
    assert {r["failed"] for r in table if r["label"] == "mua"} == {"label"}
    # without a recording, amplitude/SNR criteria are refused in one line
    out = run_cli("units", example / "kilosort4", "--min-snr", "3")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "need the recording" in out.stderr


def test_generate_measures_selection_in_the_templates_band(example, tmp_path):
    """templates.highpass_hz reaches unit selection: the run's table holds the high-passed SNRs."""
    path = _config(example, tmp_path, {"label": "good", "max_count": 2, "rank_by": "snr"})
    cfg = json.loads(path.read_text())
    cfg["templates"] = {"type": "local", "highpass_hz": 300}
    path.write_text(json.dumps(cfg))
    result = generate(load_config(path))
    table = {int(r["unit_id"]): r for r in csv.DictReader(open(result.output_dir / "units_selection-demo.csv"))}
    loaded = load_config(path)
    sorting, rec = _sorting_and_recording(loaded)
    filtered = {r.unit_id: r for r in evaluate(sorting, loaded.units, fs=rec.sampling_rate,
                                               n_samples=rec.n_samples, recording=rec,
                                               seed=loaded.seed, highpass_hz=300)}
    plain = {r.unit_id: r for r in evaluate(sorting, loaded.units, fs=rec.sampling_rate,
                                            n_samples=rec.n_samples, recording=rec, seed=loaded.seed)}
    good = [u for u, r in table.items() if r["failed"] != "label"]
    assert len(good) == 10
    for u in good:
        assert float(table[u]["snr"]) == pytest.approx(filtered[u].metrics.snr, rel=1e-5)
        assert float(table[u]["snr"]) != pytest.approx(plain[u].metrics.snr, rel=1e-3)
    assert {u for u, r in table.items() if r["selected"] == "true"} == \
        {u for u, r in filtered.items() if r.selected}


def test_units_command_highpass(example, tmp_path):
    path = _config(example, tmp_path, {"label": "good"})
    cfg = json.loads(path.read_text())
    cfg["templates"] = {"type": "local", "highpass_hz": 300}
    path.write_text(json.dumps(cfg))
    units = ("units", example / "kilosort4")
    # the config's templates band is used; --highpass-hz overrides it
    for extra, hz in (([], "300"), (["--highpass-hz", "500"], "500")):
        out = run_cli(*units, "--recording", path, *extra)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[0].endswith(f"amplitude/SNR high-passed at {hz} Hz")
    out = run_cli(*units, "--highpass-hz", "300")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "give the recording too" in out.stderr
    out = run_cli(*units, "--recording", path, "--highpass-hz", "20000")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "--highpass-hz = 20000.0 Hz" in out.stderr and "Nyquist" in out.stderr

"""``hybridkit score`` end to end: example -> generate -> a perturbed sorting -> score.

The sorting is made from the ground truth with known perturbations (dropped, added and shifted
spikes, a split, a merge) plus the source sorting's own units, so the expected numbers are known
exactly; the tables are also checked against SpikeInterface's compare_sorter_to_ground_truth run
on the same spikes. The ground truth is read back from every writer's output (legacy, phy, NWB).
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hybridkit.results.truth import load_truth
from hybridkit.results.traces import open_traces
from tests.helpers import DELTA, main, read_csv, write_phy

def test_known_answers(scored):
    out, e, stdout = scored
    units = read_csv(out / "units.csv")
    ra = units[str(e["a"])]
    tp, fn, fp = e["a_tp"], e["a_fn"], e["a_fp"]
    assert (int(ra["tp"]), int(ra["fn"]), int(ra["fp"])) == (tp, fn, fp)
    assert ra["matched_unit"] == "500" and int(ra["n_sorted_spikes"]) == e["a_n_sorted"]
    assert float(ra["recall"]) == pytest.approx(tp / (tp + fn), abs=5e-7)
    assert float(ra["precision"]) == pytest.approx(tp / (tp + fp), abs=5e-7)
    assert float(ra["accuracy"]) == pytest.approx(tp / (tp + fn + fp), abs=5e-7)
    doc = json.loads((out / "score.json").read_text())
    ja = next(r for r in doc["units"] if r["gt_unit"] == e["a"])
    assert ja["recall"] == tp / (tp + fn) and ja["precision"] == tp / (tp + fp)  # exact in JSON
    assert doc["settings"]["tolerance_samples"] == DELTA

    rb = units[str(e["b"])]
    assert rb["matched_unit"] == "600"
    assert ja["template_correlation"] > 0.95                  # matched unit's waveform = the template
    assert float(rb["template_correlation"]) > 0.95 and float(rb["snr"]) > 3
    assert float(rb["agreement"]) == pytest.approx(e["b_first"] / e["b_n"], abs=5e-7)
    big, small = (e["c"], e["d"]) if e["nc"] >= e["nd"] else (e["d"], e["c"])
    assert units[str(big)]["matched_unit"] == "700" and units[str(small)]["matched_unit"] == ""
    assert units[str(small)]["precision"] == "" and units[str(small)]["accuracy"] == "0"

    srt = read_csv(out / "sorted_units.csv")
    assert srt["601"]["category"] == "redundant" and srt["601"]["best_gt_unit"] == str(e["b"])
    smaller = min(e["nc"], e["nd"]) / (e["nc"] + e["nd"])
    assert srt["700"]["overmerged"] == ("true" if smaller > 0.2 else "false")
    assert srt["500"]["category"] == "matched"   # agreement below 0.8
    assert srt["600"]["category"] == "matched"
    assert "tolerance 0.4 ms = 11 samples" in stdout and "wrote" in stdout
    agr = list(csv.reader(open(out / "agreement.csv")))
    assert agr[0][0] == "gt_unit" and len(agr) == 5


def test_tables_agree_with_spikeinterface(generated, perturbed, scored):
    pytest.importorskip("numba", reason="SpikeInterface's comparison needs numba (test extra)")
    from spikeinterface.comparison import compare_sorter_to_ground_truth
    from spikeinterface.core import NumpySorting

    folder, _ = perturbed
    out, _, _ = scored
    truth = load_truth(generated)
    st, sc = np.load(folder / "spike_times.npy"), np.load(folder / "spike_clusters.npy")
    gt = {int(u): truth.times_of(u) for u in truth.unit_ids}
    srt = {int(u): st[sc == u] for u in np.unique(sc)}
    fs = truth.sampling_rate
    ref = compare_sorter_to_ground_truth(NumpySorting.from_unit_dict([gt], fs),
                                         NumpySorting.from_unit_dict([srt], fs),
                                         delta_time=0.4, exhaustive_gt=True)
    perf = ref.get_performance()
    doc = json.loads((out / "score.json").read_text())
    for r in doc["units"]:
        u = r["gt_unit"]
        assert r["accuracy"] == float(perf.loc[u, "accuracy"])
        assert r["recall"] == float(perf.loc[u, "recall"])
        if r["matched_unit"] is not None:
            assert r["precision"] == float(perf.loc[u, "precision"])
        assert (r["matched_unit"] if r["matched_unit"] is not None else -1) == int(ref.hungarian_match_12[u])
    counts = ref.count_units_categories()
    s = doc["summary"]
    assert (s["n_well_detected"], s["n_redundant"], s["n_overmerged"], s["n_false_positive"], s["n_bad"]) == \
        (counts["num_well_detected"], counts["num_redundant"], counts["num_overmerged"],
         counts["num_false_positive"], counts["num_bad"])


def test_ground_truth_reads_the_same_from_every_writer(generated):
    legacy = load_truth(generated)
    phy = load_truth(generated / "phy")
    nwb = load_truth(next(generated.glob("*.nwb")))
    assert (legacy.format, phy.format, nwb.format) == ("legacy", "phy", "nwb")
    ft = np.load(generated / "firings_true.npy")
    assert np.array_equal(legacy.times, ft[1].astype(np.int64))
    for other in (phy, nwb):
        assert np.array_equal(other.times, legacy.times) and np.array_equal(other.units, legacy.units)
        assert other.sampling_rate == legacy.sampling_rate
        assert other.source_units == legacy.source_units
        np.testing.assert_allclose(other.gains, legacy.gains, atol=1e-6)
        for u, t in legacy.templates.items():
            o = other.templates[u]
            assert o.peak_index == t.peak_index and o.peak_channel == t.peak_channel
            np.testing.assert_array_equal(o.channels, t.channels)
            np.testing.assert_allclose(o.waveform, t.waveform, atol=1e-4)
    for u, s in legacy.shifts_um.items():
        np.testing.assert_array_equal(nwb.shifts_um[u], s)
    assert legacy.clipped == {} and legacy.n_samples == 4 * 30000 or legacy.n_samples > 0
    tr = open_traces(legacy)
    assert tr is not None and tr.n_samples == legacy.n_samples


def test_perfect_sorting_through_every_truth_format(generated, tmp_path, capsys):
    for i, gt in enumerate([generated, generated / "phy", next(generated.glob("*.nwb"))]):
        code, _, err = main(capsys, "score", gt, generated / "phy", "--type", "phy", "-o", tmp_path / str(i),
                            "--no-signal")
        assert code == 0, err
        doc = json.loads((tmp_path / str(i) / "score.json").read_text())
        assert doc["summary"]["n_well_detected"] == 4 and doc["summary"]["mean_accuracy"] == 1.0
        assert all(r["accuracy"] == r["precision"] == r["recall"] == 1.0 for r in doc["units"])
        assert all(r["template_correlation"] is None for r in doc["units"])  # --no-signal


def test_default_output_folder_and_detection(generated, capsys):
    code, _, err = main(capsys, "score", generated, generated / "phy")
    assert code == 0, err
    assert (generated / "scores" / "phy" / "score.json").is_file()


def test_user_errors_are_one_line_exit_2(generated, tmp_path, capsys):
    cases = [
        (("score", tmp_path / "nope", generated / "phy"), "does not exist"),
        (("score", generated, generated / "phy", "--type", "nosuch"), "no sorter adapter named 'nosuch'"),
        (("score", generated, tmp_path), "give --type"),
        (("score", generated, generated / "phy", "--tolerance-ms", "0"), "--tolerance-ms"),
        (("report", generated, "--score", tmp_path / "missing.json"), "--score"),
    ]
    wrong_rate = write_phy(tmp_path / "rate", np.array([10, 20]), np.array([1, 1]), 20000.0)
    cases.append((("score", generated, wrong_rate), "sampling rate 20000.0 Hz"))
    for args, text in cases:
        code, _, err = main(capsys, *args)
        assert code == 2, (args, err)
        assert text in err and err.count("\n") == 1, err


def test_summary_names_the_injected_units_own_sources(generated, perturbed, scored, tmp_path, capsys):
    """The perturbed sorting holds the source sorting's units under their own ids: each injected
    unit's source is found among the sorted units, and can be left out of the FP count."""
    folder, _ = perturbed
    out, _, stdout = scored
    doc = json.loads((out / "score.json").read_text())
    truth = load_truth(generated)
    sources = doc["summary"]["source_units"]
    assert [r["gt_unit"] for r in sources] == truth.unit_ids.tolist()
    agr = {int(r[0]): r[1:] for r in list(csv.reader(open(out / "agreement.csv")))[1:]}
    header = list(csv.reader(open(out / "agreement.csv")))[0][1:]
    for r in sources:
        assert r["sorted_unit"] == r["source_unit"] == truth.source_units[r["gt_unit"]]
        assert r["agreement_with_source"] == 1.0  # the source unit's own spikes, unchanged
        assert r["agreement_with_gt_unit"] == pytest.approx(
            float(agr[r["gt_unit"]][header.index(str(r["sorted_unit"]))]), abs=5e-7)
        assert r["agreement_with_gt_unit"] < 0.5  # the jittered copy: far below a match
    srt = read_csv(out / "sorted_units.csv")
    own = {str(r["sorted_unit"]): str(r["gt_unit"]) for r in sources}
    assert {k: v["source_of_gt_unit"] for k, v in srt.items() if v["source_of_gt_unit"]} == own
    assert "sorted units that are the injected units' own sources: " in stdout
    assert doc["summary"]["n_source_units_excluded"] == 0  # by default, SpikeInterface's classes

    code, text, err = main(capsys, "score", generated, folder, "--no-signal", "--exclude-source-units",
                           "-o", tmp_path / "excl")
    assert code == 0, err
    excl = json.loads((tmp_path / "excl" / "score.json").read_text())
    flagged = [k for k in own if srt[k]["category"] in ("redundant", "false_positive")]
    assert flagged  # the example's source units are classed by chance: the point of the option
    s0, s1 = doc["summary"], excl["summary"]
    assert s1["n_source_units_excluded"] == len(flagged)
    assert s0["n_false_positive"] + s0["n_redundant"] - len(flagged) == s1["n_false_positive"] + s1["n_redundant"]
    rows = read_csv(tmp_path / "excl" / "sorted_units.csv")
    assert all(rows[k]["category"] == "source_unit" and rows[k]["false_positive"] == "false" for k in flagged)
    assert {k: r["category"] for k, r in rows.items() if k not in own} == \
        {k: r["category"] for k, r in srt.items() if k not in own}
    assert [u["accuracy"] for u in excl["units"]] == [u["accuracy"] for u in doc["units"]]


def test_sources_unknown_without_the_legacy_tables(generated, perturbed, tmp_path, capsys):
    folder, _ = perturbed
    code, text, err = main(capsys, "score", generated / "phy", folder, "--no-signal", "-o", tmp_path)
    assert code == 0, err
    assert json.loads((tmp_path / "score.json").read_text())["summary"]["source_units"] is None
    assert "own source units among the sorted units: unknown" in text

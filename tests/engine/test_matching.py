"""Spike matching, agreement, Hungarian assignment, performance and unit classes.

Known answers (perfect sorting, exact fractions of dropped / added / shifted spikes, merges and
splits), an exhaustive check of the pairing against a maximum bipartite matching, and a run of
SpikeInterface's compare_sorter_to_ground_truth on the same inputs.
"""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.engine.matching import compare, match_count_matrix, ordered_agreement, tolerance_samples

DELTA = 12


def train(n: int, start: int = 1000, step: int = 100) -> np.ndarray:
    """A regular train: spikes ``step`` samples apart (far more than 2 * DELTA)."""
    return start + step * np.arange(n, dtype=np.int64)


def pack(trains: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    times = np.concatenate([np.asarray(t, np.int64) for t in trains.values()])
    units = np.concatenate([np.full(len(t), u, np.int64) for u, t in trains.items()])
    return times, units


def test_tolerance_in_samples_truncates_like_spikeinterface():
    assert tolerance_samples(0.4, 30000.0) == 12
    assert tolerance_samples(0.4, 29999.9712) == 11  # truncated, not rounded
    assert tolerance_samples(1.0, 20000.0) == 20


def test_perfect_sorting_scores_one_everywhere():
    gt = {1: train(50), 2: train(40, start=1033), 3: train(30, start=1066)}
    t, u = pack(gt)
    srt_u = u + 100  # the sorter's own ids
    cmp = compare(t, u, t, srt_u, DELTA)
    assert cmp.sorted_ids[cmp.match_12].tolist() == [101, 102, 103]
    for name in ("accuracy", "recall", "precision"):
        assert getattr(cmp, name).tolist() == [1.0, 1.0, 1.0]
    assert cmp.false_discovery_rate.tolist() == [0.0, 0.0, 0.0]
    assert np.diag(cmp.agreement).tolist() == [1.0, 1.0, 1.0]
    assert cmp.well_detected.all() and not cmp.false_positive.any() and not cmp.redundant.any()
    assert not cmp.overmerged.any()
    assert cmp.category() == ["well_detected"] * 3


def test_dropped_added_and_shifted_spikes_give_exact_precision_and_recall():
    gt = train(100)
    kept = np.delete(gt, np.arange(0, 100, 10))          # drop 10 of 100
    shifted_in = kept.copy()
    shifted_in[:7] += DELTA                              # 7 shifted by exactly the tolerance: match
    shifted_in[7:10] -= DELTA                            # (either direction)
    shifted_in[10:13] += DELTA + 1                       # 3 shifted by one sample more: miss + false
    added = 50 + np.arange(5) * 30                       # 5 spikes far before any gt spike
    srt = np.sort(np.concatenate([shifted_in, added]))
    cmp = compare(gt, np.ones(100), srt, np.full(srt.size, 7), DELTA)
    tp, fn, fp = 100 - 10 - 3, 10 + 3, 5 + 3
    assert (cmp.tp[0], cmp.fn[0], cmp.fp[0]) == (tp, fn, fp)
    assert cmp.recall[0] == tp / (tp + fn) == 0.87
    assert cmp.precision[0] == tp / (tp + fp) == 87 / 95
    assert cmp.accuracy[0] == tp / (tp + fn + fp) == 87 / 108
    assert cmp.false_discovery_rate[0] == fp / (tp + fp)
    assert cmp.agreement[0, 0] == 87 / (100 + 95 - 87)


def test_merged_units_are_overmerged_and_matched_to_the_larger():
    a, b = train(100), train(60, start=1050)
    t, u = pack({1: a, 2: b})
    srt_t = np.sort(np.concatenate([a, b]))
    cmp = compare(t, u, srt_t, np.full(srt_t.size, 9), DELTA)
    assert cmp.agreement[:, 0].tolist() == [100 / 160, 60 / 160]
    assert cmp.match_12.tolist() == [0, -1]                 # 9 -> gt 1 only
    assert cmp.overmerged.tolist() == [True]
    assert cmp.category() == ["overmerged"]
    assert cmp.recall.tolist() == [1.0, 0.0]
    assert cmp.precision[0] == 100 / 160 and np.isnan(cmp.precision[1])


@pytest.mark.parametrize("first, kind2", [(70, "redundant"), (85, "false_positive")])
def test_split_unit_second_part_is_redundant_or_false_positive(first, kind2):
    gt = train(100)
    srt_t = gt.copy()
    srt_u = np.where(np.arange(100) < first, 5, 6)
    cmp = compare(gt, np.zeros(100), srt_t, srt_u, DELTA)
    assert cmp.agreement[0].tolist() == [first / 100, (100 - first) / 100]
    assert cmp.match_12.tolist() == [0]
    assert cmp.category() == ["matched" if first < 80 else "well_detected", kind2]
    assert cmp.redundant.tolist() == [False, kind2 == "redundant"]
    assert cmp.false_positive.tolist() == [False, kind2 == "false_positive"]


def test_unit_far_from_every_spike_is_a_false_positive_and_empty_inputs_work():
    gt = train(20)
    noise = 500_000 + np.arange(30) * 97
    t = np.concatenate([gt, noise])
    u = np.r_[np.zeros(20), np.ones(30)]
    cmp = compare(gt, np.zeros(20), t, u, DELTA, gt_ids=[0, 4])   # gt unit 4 has no spikes
    assert cmp.gt_ids.tolist() == [0, 4] and cmp.n_gt_spikes.tolist() == [20, 0]
    assert cmp.false_positive.tolist() == [False, True]
    assert cmp.match_12.tolist() == [0, -1] and cmp.accuracy.tolist() == [1.0, 0.0]
    empty = compare(gt, np.zeros(20), np.zeros(0), np.zeros(0), DELTA)
    assert empty.sorted_ids.size == 0 and empty.fn.tolist() == [20] and empty.recall.tolist() == [0.0]
    none = compare(np.zeros(0), np.zeros(0), t, u, DELTA)
    assert none.false_positive.tolist() == [True, True]


def test_pairing_is_a_maximum_one_to_one_matching_even_for_bursts():
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    rng = np.random.default_rng(1)
    for _ in range(200):
        na, nb = rng.integers(0, 25, 2)
        a, b = np.sort(rng.integers(0, 200, na)), np.sort(rng.integers(0, 200, nb))
        au, bu = rng.integers(0, 3, na), rng.integers(0, 3, nb)
        d = int(rng.integers(0, 6))
        got = match_count_matrix(a, au, 3, b, bu, 3, d)
        for i in range(3):
            for j in range(3):
                m = np.abs(a[au == i][:, None] - b[bu == j][None, :]) <= d
                want = int((maximum_bipartite_matching(csr_matrix(m.astype(int)), perm_type="column") >= 0).sum()) \
                    if m.any() else 0
                assert got[i, j] == want


def test_ordered_agreement_puts_matches_on_the_diagonal():
    gt = {1: train(50), 2: train(40, start=1033)}
    t, u = pack(gt)
    cmp = compare(t, u, t, np.where(u == 1, 20, 10), DELTA)   # sorted ids in the other order
    rows, cols = ordered_agreement(cmp)
    assert np.diag(cmp.agreement[np.ix_(rows, cols)]).tolist() == [1.0, 1.0]


def _perturbed_case(seed: int = 7):
    """Refractory ground truth and a sorting with drops, additions, jitter, a merge, splits, noise."""
    rng = np.random.default_rng(seed)
    fs, n = 30000.0, 30000 * 60
    gt = {}
    for unit in range(8):
        isi = rng.exponential(fs / rng.uniform(3, 15), 2000).astype(np.int64) + 45  # >= 1.5 ms
        t = np.cumsum(isi)
        gt[unit] = t[t < n]
    srt: dict[int, np.ndarray] = {}
    srt[100] = gt[0]                                                          # perfect
    keep = rng.random(gt[1].size) > 0.3
    srt[101] = np.sort(np.r_[gt[1][keep], rng.integers(0, n, 40)])            # drops + additions
    srt[102] = gt[2] + rng.integers(-15, 16, gt[2].size)                      # jitter around +-delta
    srt[103] = np.sort(np.r_[gt[3], gt[4]])                                   # merge 3 + 4
    half = rng.random(gt[5].size) < 0.6
    srt[104], srt[105] = gt[5][half], gt[5][~half]                            # split 60/40
    tiny = rng.random(gt[6].size) < 0.9
    srt[106], srt[107] = gt[6][tiny], gt[6][~tiny]                            # split 90/10
    srt[108] = np.sort(rng.integers(0, n, 500))                               # noise unit
    srt[109] = np.sort(np.r_[gt[7][: gt[7].size // 3], rng.integers(0, n, 200)])
    return fs, gt, srt


def test_numbers_agree_with_spikeinterface():
    pytest.importorskip("numba", reason="SpikeInterface's comparison needs numba (test extra)")
    pytest.importorskip("spikeinterface")
    from spikeinterface.comparison import compare_sorter_to_ground_truth
    from spikeinterface.core import NumpySorting

    fs, gt, srt = _perturbed_case()
    si_gt = NumpySorting.from_unit_dict([gt], sampling_frequency=fs)
    si_srt = NumpySorting.from_unit_dict([srt], sampling_frequency=fs)
    ref = compare_sorter_to_ground_truth(si_gt, si_srt, delta_time=0.4, exhaustive_gt=True)

    t1, u1 = pack(gt)
    t2, u2 = pack(srt)
    cmp = compare(t1, u1, t2, u2, tolerance_samples(0.4, fs))
    assert cmp.delta == ref.delta_frames
    np.testing.assert_array_equal(cmp.agreement, ref.agreement_scores.loc[cmp.gt_ids, cmp.sorted_ids].values)
    perf = ref.get_performance(method="by_unit")
    matched = cmp.match_12 >= 0
    assert [int(cmp.sorted_ids[j]) if j >= 0 else -1 for j in cmp.match_12] == \
        [int(ref.hungarian_match_12[u]) for u in cmp.gt_ids]
    for name in ("accuracy", "recall"):
        np.testing.assert_array_equal(getattr(cmp, name), perf.loc[cmp.gt_ids, name].astype(float).values)
    for name in ("precision", "false_discovery_rate"):  # SpikeInterface writes 0 where undefined
        np.testing.assert_array_equal(getattr(cmp, name)[matched],
                                      perf.loc[cmp.gt_ids[matched], name].astype(float).values)
    counts = ref.count_units_categories()
    assert int(cmp.well_detected.sum()) == counts["num_well_detected"]
    assert int(cmp.redundant.sum()) == counts["num_redundant"]
    assert int(cmp.overmerged.sum()) == counts["num_overmerged"]
    assert int(cmp.false_positive.sum()) == counts["num_false_positive"]
    assert int(cmp.bad.sum()) == counts["num_bad"]
    assert sorted(cmp.sorted_ids[cmp.well_detected].tolist()) == sorted(ref.get_well_detected_units())
    assert sorted(cmp.sorted_ids[cmp.redundant].tolist()) == sorted(ref.get_redundant_units())
    assert sorted(cmp.sorted_ids[cmp.overmerged].tolist()) == sorted(ref.get_overmerged_units())
    assert sorted(cmp.sorted_ids[cmp.false_positive].tolist()) == sorted(ref.get_false_positive_units())
    # the case exercises every class
    assert counts["num_redundant"] >= 1 and counts["num_overmerged"] >= 1
    assert counts["num_false_positive"] >= 2 and counts["num_well_detected"] >= 2

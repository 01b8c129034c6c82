"""Duplicate units: excess coincidence at the scoring tolerance, and waveform similarity."""
import numpy as np
import pytest

from hybridkit.engine.duplicates import excess_coincidence, find_duplicates, footprint_similarity

T = 100_000  # samples
DELTA = 5


def test_excess_coincidence_by_hand():
    a = np.arange(1000) * 100  # 1000 spikes
    half = a[:500] + DELTA  # paired with a at the tolerance's edge (inclusive)
    b = np.sort(np.r_[half, a[500:] + 50])  # and 500 far from any spike of a
    ids, k = excess_coincidence({1: a, 2: b}, DELTA, T)
    assert ids == [1, 2] and np.isnan(k[0, 0]) and np.isnan(k[1, 1])
    chance = 1000 * 1000 * (2 * DELTA + 1) / T  # 110 pairs expected of independent trains
    assert k[0, 1] == k[1, 0] == pytest.approx((500 - chance) / (1000 - chance))
    # one sample past the tolerance: no pair at all, clipped at 0 (not negative)
    _, k = excess_coincidence({1: a, 2: a + DELTA + 1}, DELTA, T)
    assert k[0, 1] == 0.0
    _, k = excess_coincidence({1: a, 2: a[::3] - DELTA}, DELTA, T)
    assert k[0, 1] == 1.0  # every spike of the smaller train has a partner


def test_independent_trains_are_near_zero():
    rng = np.random.default_rng(0)
    trains = {u: np.sort(rng.choice(T * 10, 3000, replace=False)) for u in range(4)}
    _, k = excess_coincidence(trains, DELTA, T * 10)
    off = k[~np.eye(4, dtype=bool)]
    assert np.all(np.abs(off) < 0.05)


def test_footprint_similarity_on_common_channels():
    rng = np.random.default_rng(1)
    wf = rng.normal(size=(30, 4)).astype(np.float32)
    a = (np.array([10, 11, 12, 13]), wf)
    b = (np.array([12, 13, 14]), np.c_[2.5 * wf[:, 2:], rng.normal(size=30)].astype(np.float32))
    assert footprint_similarity(a, b) == pytest.approx(1.0)  # channels 12, 13 only; scale-free
    assert footprint_similarity(a, (b[0], -b[1])) == pytest.approx(-1.0)
    assert footprint_similarity(a, (np.array([20]), wf[:, :1])) == 0.0  # nothing in common
    assert footprint_similarity(a, None) == 0.0


def test_duplicates_best_ranked_kept_and_no_chains():
    x = np.arange(500) * 200
    chans = np.array([0, 1])
    t = np.linspace(-1, 1, 20)[:, None].astype(np.float32)
    prints = {1: (chans, t * [1.0, 0.0]), 2: (chans, t * [1.0, 1.0]), 3: (chans, t * [0.0, 1.0]),
              4: (chans, t * [1.0, 0.0])}
    trains = {1: x, 2: x + 2, 3: x - 2, 4: x + 100}  # 4 shares the waveform of 1 but not its spikes
    found = find_duplicates([1, 2, 3, 4], trains, prints, DELTA, T, 0.5, 0.7)
    # 2 duplicates 1 (cosine 0.71); 3 is similar to 2 only (0.71) and not to 1 (0): 2 was dropped,
    # so 3 stays; 4 has 1's waveform but not its spikes
    assert [(d.unit_id, d.kept_id) for d in found] == [(2, 1)]
    assert found[0].coincidence == 1.0 and found[0].similarity == pytest.approx(np.sqrt(0.5))
    # ranked the other way round, 3 is kept and 2 goes as its duplicate
    found = find_duplicates([3, 2, 1, 4], trains, prints, DELTA, T, 0.5, 0.7)
    assert [(d.unit_id, d.kept_id) for d in found] == [(2, 3)]
    assert find_duplicates([1, 2], trains, prints, DELTA, T, 0.5, 0.72) == []

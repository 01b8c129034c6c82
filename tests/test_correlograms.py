"""Correlograms and ISI histograms against brute-force pair counts."""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.engine.correlograms import correlogram, correlogram_edges, isi_histogram


def brute_force(a, b, fs, window_ms, bin_ms, auto):
    """Every pair, one at a time, into the bin whose [left, right) edges hold its lag."""
    edges = correlogram_edges(window_ms, bin_ms, fs)
    counts = np.zeros(edges.size - 1, np.int64)
    for i, ta in enumerate(a):
        for j, tb in enumerate(b):
            if auto and i == j:
                continue
            lag = int(tb) - int(ta)
            for k in range(counts.size):
                if edges[k] <= lag < edges[k + 1]:
                    counts[k] += 1
    return counts


@pytest.mark.parametrize("fs", [30000.0, 29999.9712, 10000.0])
def test_cross_and_auto_correlograms_equal_brute_force(fs):
    rng = np.random.default_rng(5)
    a = np.sort(rng.integers(0, int(fs * 0.3), 160))
    b = np.sort(np.concatenate([a[::3] + rng.integers(-40, 41, a[::3].size), rng.integers(0, int(fs * 0.3), 60)]))
    a = np.concatenate([a, a[:4]])  # duplicate times: two spikes at one sample are a real lag-0 pair
    for window, width in ((50.0, 1.0), (20.0, 0.5), (10.0, 10.0)):
        cc, edges_ms = correlogram(a, b, fs, window, width)
        assert np.array_equal(cc, brute_force(np.sort(a), b, fs, window, width, auto=False))
        acg, _ = correlogram(a, None, fs, window, width)
        assert np.array_equal(acg, brute_force(np.sort(a), np.sort(a), fs, window, width, auto=True))
        assert edges_ms[0] == pytest.approx(-window / 2) and edges_ms[-1] == pytest.approx(window / 2)
        assert cc.size == round(window / width)


def test_correlogram_bins_at_the_edges():
    # 30 kHz, 1-ms bins over +-2 ms: edges -60, -30, 0, 30, 60 samples
    a = np.array([1000])
    b = np.array([1000 - 61, 1000 - 60, 1000 - 31, 1000 - 30, 1000 - 1, 1000, 1029, 1030, 1059, 1060])
    cc, edges = correlogram(a, b, 30000.0, 4.0, 1.0)
    assert edges.tolist() == pytest.approx([-2, -1, 0, 1, 2])
    assert cc.tolist() == [2, 2, 2, 2]  # -61 and +60 fall outside; every edge belongs to its right bin
    # the ACG leaves out each spike paired with itself but keeps a second spike at the same sample
    acg, _ = correlogram(np.array([500, 500, 530]), None, 30000.0, 4.0, 1.0)
    assert acg.tolist() == [0, 2, 2, 2]  # lags -30 x2 | 0 x2 (the two at 500) | +30 x2


def test_blocks_do_not_change_the_counts(monkeypatch):
    import hybridkit.engine.correlograms as C

    rng = np.random.default_rng(1)
    a = np.sort(rng.integers(0, 30000 * 60, 20_000))
    b = np.sort(rng.integers(0, 30000 * 60, 3_000))
    whole = correlogram(a, b, 30000.0, 10.0, 1.0)[0], correlogram(a, None, 30000.0, 10.0, 1.0)[0]
    monkeypatch.setattr(C, "_BLOCK", 7)  # blocks that split runs of close spikes
    assert np.array_equal(correlogram(a, b, 30000.0, 10.0, 1.0)[0], whole[0])
    assert np.array_equal(correlogram(a, None, 30000.0, 10.0, 1.0)[0], whole[1])
    assert whole[1].sum() > 0 and whole[0].sum() > 0


def test_isi_histogram():
    t = np.array([0, 30, 90, 90, 1590, 3090])  # ISIs 1, 2, 0, 50, 50 ms at 30 kHz
    counts, edges = isi_histogram(t, 30000.0, max_ms=50.0, bin_ms=1.0)
    assert edges[0] == 0 and edges[-1] == 50 and counts.size == 50
    assert counts[0] == 1 and counts[1] == 1 and counts[2] == 1 and counts.sum() == 3

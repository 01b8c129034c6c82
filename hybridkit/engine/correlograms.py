"""Spike-train correlograms and ISI histograms, as phy and SpikeInterface define them.

A correlogram of trains A and B counts the pairs (a in A, b in B) whose lag ``b - a`` falls in
each bin of ``[-window_ms / 2, +window_ms / 2)``; bins are ``bin_ms`` wide, so ``window_ms /
bin_ms`` bins, the middle two flanking lag 0. The autocorrelogram is the correlogram of a train
with itself without the pairs of a spike with itself (the zero-lag self pair); two different spikes
at the same sample still count at lag 0. Times are integer samples; ``fs`` converts ms to samples.
"""
from __future__ import annotations

import numpy as np

#: spikes of A processed at once: bounds the lag buffer (pairs of one block) for long trains
_BLOCK = 65536


def correlogram_edges(window_ms: float, bin_ms: float, fs: float) -> np.ndarray:
    """(n_bins + 1,) bin edges in samples (float) for a window of ``window_ms`` and bins of ``bin_ms``."""
    if not (bin_ms > 0 and window_ms >= bin_ms):
        raise ValueError(f"bin_ms={bin_ms} and window_ms={window_ms}: need 0 < bin_ms <= window_ms")
    n_bins = int(round(window_ms / bin_ms))
    return (np.arange(n_bins + 1) * bin_ms - n_bins * bin_ms / 2.0) * fs / 1000.0


def correlogram(times_a: np.ndarray, times_b: np.ndarray | None, fs: float, window_ms: float = 50.0,
                bin_ms: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Counts of pairs (a, b) per lag bin; ``times_b=None`` gives A's autocorrelogram.

    Args:
        times_a, times_b: (n,) integer sample times (any order).
        fs: sampling rate, Hz.
        window_ms, bin_ms: the whole window and the bin width, ms.

    Returns:
        (counts (n_bins,) int64, bin edges (n_bins + 1,) in ms).
    """
    edges = correlogram_edges(window_ms, bin_ms, fs)
    auto = times_b is None
    a = np.sort(np.asarray(times_a, np.int64))
    b = a if auto else np.sort(np.asarray(times_b, np.int64))
    counts = np.zeros(edges.size - 1, np.int64)
    # b indices with edges[0] <= b - a < edges[-1]: lag >= lo  <=>  b >= a + ceil(lo)
    lo_off, hi_off = int(np.ceil(edges[0])), int(np.ceil(edges[-1]))
    for s in range(0, a.size, _BLOCK):
        blk = a[s:s + _BLOCK]
        lo = np.searchsorted(b, blk + lo_off, side="left")
        hi = np.searchsorted(b, blk + hi_off, side="left")
        n = hi - lo
        if n.sum() == 0:
            continue
        # pair k of spike i: b index lo[i] + k (k < n[i])
        owner = np.repeat(np.arange(blk.size), n)
        j = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        if auto:
            keep = j != owner + s  # the spike paired with itself
            owner, j = owner[keep], j[keep]
        lag = b[j] - blk[owner]
        k = np.searchsorted(edges, lag, side="right") - 1
        counts += np.bincount(k, minlength=counts.size)[: counts.size]
    return counts, edges * 1000.0 / fs


def isi_histogram(times: np.ndarray, fs: float, max_ms: float = 50.0,
                  bin_ms: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Counts of inter-spike intervals in bins of ``bin_ms`` over ``[0, max_ms)``; edges in ms."""
    t = np.sort(np.asarray(times, np.int64))
    n_bins = int(round(max_ms / bin_ms))
    edges_ms = np.arange(n_bins + 1) * bin_ms
    isi_ms = np.diff(t) * 1000.0 / fs
    # np.histogram closes its last bin; an interval of exactly max_ms is outside [0, max_ms)
    counts, _ = np.histogram(isi_ms[isi_ms < edges_ms[-1]], edges_ms)
    return counts.astype(np.int64), edges_ms

"""Spike trains of injected units: source times with jitter, or Poisson with a dead time.

All times are int64 samples on the recording's clock; ``[lo, hi]`` bounds are inclusive and are
chosen by the caller so that a whole waveform fits in the recording
(``lo = n_before``, ``hi = n_samples - n_after``).
"""
from __future__ import annotations

import numpy as np


def enforce_refractory(times: np.ndarray, refractory_samples: int) -> np.ndarray:
    """Sorted ``times`` without refractory violations.

    Greedy in time order: a spike is kept when it is at least ``refractory_samples`` after the
    previously KEPT spike (so [0, 5, 9, 10] with 10 keeps [0, 10]). Duplicates are dropped
    whenever ``refractory_samples >= 1``.

    Returns:
        (n_kept,) int64.
    """
    times = np.sort(np.asarray(times, dtype=np.int64).ravel())
    refractory = int(refractory_samples)
    if times.size < 2 or refractory <= 0 or (np.diff(times) >= refractory).all():
        return times
    keep = np.zeros(times.size, dtype=bool)
    last = None
    # a plain loop is exact and fast enough (~1e6 spikes/s); violations are the rare case
    for i, t in enumerate(times.tolist()):
        if last is None or t - last >= refractory:
            keep[i] = True
            last = t
    return times[keep]


def _check_bounds(lo: int, hi: int) -> None:
    if int(hi) < int(lo):
        raise ValueError(f"empty time range: lo={lo} > hi={hi} (recording too short for the window?)")


def jittered_train(source_times: np.ndarray, jitter_std_samples: float, refractory_samples: int,
                   lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """The source unit's times, each moved by seeded normal jitter.

    Each time gets ``round(N(0, jitter_std_samples))`` added; times outside ``[lo, hi]`` are
    dropped; then the refractory period is enforced (greedy, see :func:`enforce_refractory`).

    Returns:
        (n,) int64 sorted times in ``[lo, hi]``.
    """
    _check_bounds(lo, hi)
    times = np.asarray(source_times, dtype=np.int64).ravel()
    if jitter_std_samples < 0 or not np.isfinite(jitter_std_samples):
        raise ValueError(f"jitter std must be a finite number >= 0 samples, got {jitter_std_samples}")
    if jitter_std_samples > 0:
        times = times + np.rint(rng.normal(0.0, jitter_std_samples, size=times.size)).astype(np.int64)
    times = times[(times >= lo) & (times <= hi)]
    return enforce_refractory(times, refractory_samples)


def poisson_train(rate_hz: float, sampling_rate: float, refractory_samples: int, lo: int, hi: int,
                  rng: np.random.Generator) -> np.ndarray:
    """A Poisson process with dead time, at mean rate ``rate_hz``, in ``[lo, hi]``.

    Inter-spike intervals are ``d + G`` samples, where ``d = max(refractory_samples, 1)`` and
    ``G`` is geometric on {0, 1, ...} (the discrete exponential) with mean
    ``sampling_rate / rate_hz - d``: the mean rate is ``rate_hz`` and no interval is shorter
    than the refractory period, by construction. The first spike is at ``lo + G``.

    Raises:
        ValueError: ``rate_hz`` is not positive, or is too high for the refractory period
            (``rate_hz * d / sampling_rate`` must stay below 1).

    Returns:
        (n,) int64 sorted times in ``[lo, hi]``.
    """
    _check_bounds(lo, hi)
    if not (rate_hz > 0 and np.isfinite(rate_hz)):
        raise ValueError(f"firing rate must be a positive number of Hz, got {rate_hz}")
    dead = max(int(refractory_samples), 1)
    mean_isi = float(sampling_rate) / float(rate_hz)
    extra = mean_isi - dead
    if extra <= 0:
        raise ValueError(
            f"firing rate {rate_hz} Hz is impossible with a refractory period of {dead} samples at "
            f"{sampling_rate} Hz; it must be below {float(sampling_rate) / dead:g} Hz"
        )
    p = 1.0 / (extra + 1.0)  # geometric on {1, 2, ...} has mean 1/p; minus 1 gives mean `extra`
    chunks = []
    t = int(lo) + int(rng.geometric(p)) - 1
    if t > hi:
        return np.zeros(0, dtype=np.int64)
    chunks.append(np.array([t], dtype=np.int64))
    while t <= hi:
        n = int(1.1 * (hi - t) / mean_isi) + 16
        isi = dead + rng.geometric(p, size=n).astype(np.int64) - 1
        block = t + np.cumsum(isi)
        chunks.append(block)
        t = int(block[-1])
    times = np.concatenate(chunks)
    return times[times <= hi]


def drop_windows_across(times: np.ndarray, before: int, after: int, breaks: np.ndarray) -> np.ndarray:
    """``times`` without the events whose window ``[t - before, t + after)`` holds a break.

    A break ``b`` is a sample where the recording's clock jumps (the first sample of a file that
    does not continue its predecessor): a window holds it when ``t - before < b < t + after``
    (a window that starts at ``b`` lies wholly after it). Sorted input stays sorted.

    Returns:
        (n_kept,) int64.
    """
    times = np.asarray(times, dtype=np.int64)
    breaks = np.sort(np.asarray(breaks, dtype=np.int64))
    if times.size == 0 or breaks.size == 0:
        return times
    # the first break after the window's first sample must not come before the window's end
    nxt = np.searchsorted(breaks, times - int(before), side="right")
    inside = nxt < breaks.size
    spans = np.zeros(times.size, bool)
    spans[inside] = breaks[nxt[inside]] < times[inside] + int(after)
    return times[~spans]

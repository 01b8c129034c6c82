"""Duplicate units: two sorted units that fire on the same spikes with the same waveform.

A sorter sometimes reports one neuron twice (Kilosort can split a neuron into two templates that
both claim many of its spikes). Injecting both puts two ground-truth units on one set of source
spikes. Two units are duplicates when both hold:

* **coincidence beyond chance.** ``c`` = spikes paired within ``delta`` samples, counted with
  the scoring's matching (:func:`hybridkit.engine.matching.match_count_matrix`, each spike paired
  at most once). Two independent trains of ``n_a`` and ``n_b`` spikes over ``T`` samples pair by
  chance about ``E = n_a n_b (2 delta + 1) / T`` times. The excess coincidence is
  ``(c - E) / (min(n_a, n_b) - E)``: 0 for independent trains, 1 when every spike of the smaller
  train has a partner (clipped to [0, 1]).
* **similar waveforms.** The cosine similarity of the two mean waveforms on the channels both
  footprints hold (:attr:`hybridkit.engine.quality.UnitMetrics.footprint`); 0 when they share no
  channel.

Units are taken best-ranked first; a unit that duplicates a unit already kept is a duplicate of
it (so in a chain a-b-c, b goes and c is compared with a only).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridkit.engine.matching import match_count_matrix


@dataclass(frozen=True)
class Duplicate:
    """One unit found to duplicate a better-ranked one."""

    unit_id: int
    kept_id: int  # the better-ranked unit it duplicates
    coincidence: float  # excess coincidence, 0-1
    similarity: float  # cosine similarity of the waveforms on the common channels, -1..1


def excess_coincidence(trains: dict[int, np.ndarray], delta: int, n_samples: int
                       ) -> tuple[list[int], np.ndarray]:
    """(unit ids, (n, n) float64 excess coincidence of every pair; diagonal NaN).

    ``trains``: unit id -> int64 spike samples; ``delta``: tolerance in samples (inclusive);
    ``n_samples``: the recording's length (for the chance level).
    """
    ids = list(trains)
    n = len(ids)
    counts = np.array([np.size(trains[u]) for u in ids], np.int64)
    times = np.concatenate([np.asarray(trains[u], np.int64) for u in ids]) if n else np.zeros(0, np.int64)
    index = np.repeat(np.arange(n, dtype=np.int64), counts)
    c = match_count_matrix(times, index, n, times, index, n, int(delta)).astype(np.float64)
    expected = np.outer(counts, counts) * (2 * int(delta) + 1) / max(int(n_samples), 1)
    smaller = np.minimum.outer(counts, counts).astype(np.float64)
    expected = np.minimum(expected, smaller)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(smaller > expected, (c - expected) / (smaller - expected), 0.0)
    k = np.clip(k, 0.0, 1.0)
    np.fill_diagonal(k, np.nan)
    return ids, k


def footprint_similarity(a: tuple[np.ndarray, np.ndarray] | None,
                         b: tuple[np.ndarray, np.ndarray] | None) -> float:
    """Cosine similarity of two footprints (columns, (n_times, k) waveform) on their common columns."""
    if a is None or b is None:
        return 0.0
    common, ia, ib = np.intersect1d(a[0], b[0], return_indices=True)
    if common.size == 0:
        return 0.0
    x = a[1][:, ia].astype(np.float64).ravel()
    y = b[1][:, ib].astype(np.float64).ravel()
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y) / denom if denom > 0 else 0.0


def find_duplicates(ranked: list[int], trains: dict[int, np.ndarray],
                    footprints: dict[int, tuple[np.ndarray, np.ndarray] | None], delta: int,
                    n_samples: int, min_coincidence: float, min_similarity: float,
                    coincidence: tuple[list[int], np.ndarray] | None = None) -> list[Duplicate]:
    """The duplicates among ``ranked`` (unit ids, best first), each against a kept better unit.

    A unit is a duplicate of the best-ranked kept unit with excess coincidence >=
    ``min_coincidence`` and footprint similarity >= ``min_similarity``. ``coincidence``: the
    :func:`excess_coincidence` of these units (in any order), when the caller has it already.
    """
    if len(ranked) < 2:
        return []
    ids, k = coincidence if coincidence is not None else \
        excess_coincidence({u: trains[u] for u in ranked}, delta, n_samples)
    pos = {u: i for i, u in enumerate(ids)}
    kept: list[int] = []
    found: list[Duplicate] = []
    for u in ranked:
        for v in kept:
            coinc = float(k[pos[u], pos[v]])
            if coinc < min_coincidence:
                continue
            sim = footprint_similarity(footprints.get(u), footprints.get(v))
            if sim >= min_similarity:
                found.append(Duplicate(u, v, coinc, sim))
                break
        else:
            kept.append(u)
    return found

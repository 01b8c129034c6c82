"""Noise snippets for a training set, in microvolts.

Two sources (``augment.noise``):

* ``recording``: windows of the source recording that no sorted spike comes near (the window
  ``[start, start + n_times)`` keeps ``quiet_margin_ms`` from every sorted spike; without a
  sorting every window counts as noise);
* ``model``: draws from the Kronecker (spatial x temporal) covariance measured on such windows
  over all neural channels (:mod:`hybridkit.engine.noise_model`); a neighbourhood's draw uses the
  spatial covariance's sub-matrix of its channels (the Gaussian's marginal).
"""
from __future__ import annotations

import numpy as np

from hybridkit.engine.noise_model import KroneckerEstimator, KroneckerNoise
from hybridkit.engine.snippets import gather_snippets
from hybridkit.errors import SourceError
from hybridkit.model import Recording, Sorting

#: raw bytes read per batch of all-channel windows while measuring the covariance
_ESTIMATE_BATCH_BYTES = 64 * 1024 * 1024


def quiet_starts(recording: Recording, sorting: Sorting | None, n: int, n_times: int,
                 margin: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) int64 window starts drawn uniformly among windows with no sorted spike within
    ``margin`` samples; rejection sampling, so the draw is exact and seeded."""
    last = recording.n_samples - n_times
    if last < 0:
        raise SourceError(f"recording {recording.name}: {recording.n_samples} samples, shorter "
                          f"than one snippet of {n_times}")
    spikes = np.sort(sorting.spike_times) if sorting is not None else np.zeros(0, np.int64)
    out: list[np.ndarray] = []
    have, tries = 0, 0
    while have < n:
        cand = rng.integers(0, last + 1, size=max(2 * (n - have), 64))
        # a spike in [start - margin, start + n_times + margin) disqualifies the window
        lo = np.searchsorted(spikes, cand - margin, side="left")
        hi = np.searchsorted(spikes, cand + n_times + margin, side="left")
        ok = cand[hi == lo]
        out.append(ok[: n - have])
        have += min(ok.size, n - have)
        tries += 1
        if tries > 100 and have < n:
            raise SourceError(f"recording {recording.name}: fewer than {n} windows of {n_times} "
                              f"samples without a sorted spike within {margin} samples were found "
                              "in 100 draws; lower augment.quiet_margin_ms or the counts")
    return np.concatenate(out).astype(np.int64)


def read_uV(recording: Recording, starts: np.ndarray, n_times: int, channels: np.ndarray) -> np.ndarray:
    """(n, n_times, len(channels)) float32 microvolts of the windows at ``starts``."""
    raw = gather_snippets(recording, starts, 0, n_times, channels)
    gain = recording.gain_to_uV[channels].astype(np.float32)
    offset = recording.offset_to_uV[channels].astype(np.float32)
    return raw * gain + offset


def measure_model(recording: Recording, sorting: Sorting | None, n: int, n_times: int,
                  margin: int, rng: np.random.Generator) -> KroneckerNoise:
    """The Kronecker noise model of the neural channels, from ``n`` quiet windows, read in
    batches of at most ~64 MB so memory does not grow with ``n``."""
    cols = recording.neural_channels
    starts = quiet_starts(recording, sorting, n, n_times, margin, rng)
    per = max(1, _ESTIMATE_BATCH_BYTES // (n_times * cols.size * 4))
    est = KroneckerEstimator()
    for i in range(0, n, per):
        est.add(read_uV(recording, starts[i:i + per], n_times, cols))
    return est.result()


class NoiseSupply:
    """Noise snippets on given neighbourhoods, from the recording or the model."""

    def __init__(self, recording: Recording, sorting: Sorting | None, n_times: int, margin: int,
                 model: KroneckerNoise | None = None) -> None:
        self.recording, self.sorting = recording, sorting
        self.n_times, self.margin, self.model = n_times, margin, model
        self._cols = {int(c): i for i, c in enumerate(recording.neural_channels.tolist())}

    def draw(self, rng: np.random.Generator, nbhds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise for each row of ``nbhds`` (n, n_channels) file columns.

        Returns:
            (n, n_times, n_channels) float32 uV, and (n,) int64 window starts in the recording
            (-1 for model draws).
        """
        n = nbhds.shape[0]
        out = np.empty((n, self.n_times, nbhds.shape[1]), np.float32)
        if self.model is None:
            starts = quiet_starts(self.recording, self.sorting, n, self.n_times, self.margin, rng)
            # one read per window over the batch's channels, in time order (a generated source
            # then makes each of its blocks once per batch)
            union, where = np.unique(nbhds, return_inverse=True)
            allch = read_uV(self.recording, starts, self.n_times, union)
            where = where.reshape(nbhds.shape)
            for i in range(n):
                out[i] = allch[i][:, where[i]]
            return out, starts
        for rows in _groups(nbhds):
            idx = np.array([self._cols[int(c)] for c in nbhds[rows[0]]])
            out[rows] = self.model.restricted(idx).sample(rng, rows.size)
        return out, np.full(n, -1, np.int64)


def _groups(nbhds: np.ndarray) -> list[np.ndarray]:
    """Row indices grouped by identical neighbourhood, in first-appearance order (deterministic)."""
    _, first, inverse = np.unique(nbhds, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    return [np.flatnonzero(inverse == g) for g in np.argsort(first)]

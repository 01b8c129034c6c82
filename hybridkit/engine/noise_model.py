"""Noise as a separable (Kronecker) Gaussian: spatial (channels) x temporal (samples) covariance.

Model: a noise snippet ``X`` (n_times, n_channels) has ``vec(X) ~ N(0, T ⊗ S)`` with ``T`` the
(n_times, n_times) temporal and ``S`` the (n_channels, n_channels) spatial covariance (row-major
``vec``, so element ``(t, c)`` pairs with ``(t', c')`` through ``T[t, t'] * S[c, c']``).

Estimator (moments, one pass, no iteration): from ``N`` snippets centred on their mean snippet,

    A = mean_n X_n X_n^T            (n_times, n_times)      E[A] = T * tr(S)
    B = mean_n X_n^T X_n            (n_channels, n_channels) E[B] = S * tr(T)

and ``tr(A) = tr(B) = E||X||_F^2 = tr(T) tr(S)``, so ``T ⊗ S = (A ⊗ B) / tr(A)``. The split of the
scale between the factors is arbitrary; :func:`estimate` puts it as ``T = A / mean(diag A)`` (unit
mean variance in time) and ``S = B * mean(diag A) / tr(A)`` (``S``'s diagonal is the per-channel
variance in the snippets' units). Sampling draws ``X = L_T Z L_S^T`` with ``Z`` i.i.d. N(0, 1) and
``L L^T`` the symmetric square roots, so the draws have exactly the model's covariance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KroneckerNoise:
    """A separable noise covariance.

    Attributes:
        temporal: (n_times, n_times) float64, mean diagonal 1.
        spatial: (n_channels, n_channels) float64, units^2 (e.g. uV^2): per-channel variance on
            the diagonal.
    """

    temporal: np.ndarray
    spatial: np.ndarray

    @property
    def n_times(self) -> int:
        return int(self.temporal.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.spatial.shape[0])

    def full(self) -> np.ndarray:
        """(n_times * n_channels,)^2 covariance of row-major ``vec(X)``; only for small sizes."""
        return np.kron(self.temporal, self.spatial)

    def restricted(self, channels: np.ndarray) -> "KroneckerNoise":
        """The model on a subset of channels (a Gaussian's marginal: the spatial sub-matrix)."""
        ch = np.asarray(channels, dtype=np.int64)
        return KroneckerNoise(self.temporal, self.spatial[np.ix_(ch, ch)])

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, n_times, n_channels) float64 snippets drawn from the model."""
        lt, ls = psd_sqrt(self.temporal), psd_sqrt(self.spatial)
        z = rng.standard_normal((n, self.n_times, self.n_channels))
        return np.einsum("ts,nsc,dc->ntd", lt, z, ls, optimize=True)


class KroneckerEstimator:
    """The moment estimate of :class:`KroneckerNoise`, accumulated over batches of snippets (so
    memory is one batch, whatever the number of snippets)."""

    def __init__(self) -> None:
        self._a = self._b = self._sum = None
        self.n = 0

    def add(self, snippets: np.ndarray) -> None:
        """Add (n, n_times, n_channels) noise-only snippets (any units)."""
        x = np.asarray(snippets, dtype=np.float64)
        if x.ndim != 3:
            raise ValueError(f"need (n, n_times, n_channels) snippets, got shape {x.shape}")
        a = np.einsum("ntc,nsc->ts", x, x, optimize=True)
        b = np.einsum("ntc,ntd->cd", x, x, optimize=True)
        total = x.sum(axis=0)
        if self._a is None:
            self._a, self._b, self._sum = a, b, total
        else:
            self._a, self._b, self._sum = self._a + a, self._b + b, self._sum + total
        self.n += x.shape[0]

    def result(self) -> KroneckerNoise:
        if self.n < 2:
            raise ValueError(f"need at least 2 noise snippets, got {self.n}")
        # centred on the mean snippet M (a DC offset is not noise): sum (X-M)(X-M)^T = sum X X^T - n M M^T
        m = self._sum / self.n
        a = self._a / self.n - m @ m.T
        b = self._b / self.n - m.T @ m
        total = float(np.trace(a))
        if not total > 0:
            raise ValueError("the noise snippets are constant: no covariance to estimate")
        scale = float(np.mean(np.diag(a)))
        return KroneckerNoise(temporal=a / scale, spatial=b * scale / total)


def estimate(snippets: np.ndarray) -> KroneckerNoise:
    """The moment estimate of :class:`KroneckerNoise` from (n, n_times, n_channels) noise snippets."""
    est = KroneckerEstimator()
    est.add(snippets)
    return est.result()


def empirical_covariance(snippets: np.ndarray) -> np.ndarray:
    """(n_times * n_channels,)^2 sample covariance of row-major ``vec`` of snippets centred on
    their mean snippet (the unstructured reference the Kronecker model is checked against)."""
    x = np.asarray(snippets, dtype=np.float64)
    v = x.reshape(x.shape[0], -1)
    v = v - v.mean(axis=0)
    return v.T @ v / v.shape[0]


def relative_frobenius(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b||_F / ||b||_F."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance (negative rounding eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def distance_covariance(positions: np.ndarray, sigma: float, length_um: float) -> np.ndarray:
    """(n, n) spatial covariance ``sigma^2 exp(-d / length_um)`` of contacts at ``positions`` (n, 2)
    um; ``length_um`` 0 gives independent channels."""
    pos = np.asarray(positions, dtype=np.float64)
    if length_um <= 0:
        return np.eye(len(pos)) * sigma ** 2
    d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    return sigma ** 2 * np.exp(-d / length_um)

"""engine/noise_model: the Kronecker (temporal ⊗ spatial) noise estimator and sampler."""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.engine.noise_model import (KroneckerEstimator, KroneckerNoise, distance_covariance,
                                          empirical_covariance, estimate, relative_frobenius)


def _truth(n_times=10, n_channels=4) -> KroneckerNoise:
    lag = np.abs(np.subtract.outer(np.arange(n_times), np.arange(n_times)))
    temporal = 0.6 ** lag  # AR(1)-like, unit diagonal
    pos = np.c_[np.zeros(n_channels), np.arange(n_channels) * 20.0]
    return KroneckerNoise(temporal, distance_covariance(pos, 12.0, 30.0))


def test_draws_have_the_model_covariance_and_the_estimate_recovers_it():
    model = _truth()
    x = model.sample(np.random.default_rng(0), 20000)
    # the unstructured (40 x 40) sample covariance of the draws: relative Frobenius error < 0.1
    assert relative_frobenius(empirical_covariance(x), model.full()) < 0.05
    est = estimate(x)
    assert relative_frobenius(est.full(), model.full()) < 0.05
    assert relative_frobenius(est.spatial, model.spatial) < 0.05
    assert np.mean(np.diag(est.temporal)) == pytest.approx(1.0)
    # the estimator is exactly the moments: A = mean X X^T, B = mean X^T X, T ⊗ S = A ⊗ B / tr A
    xc = x - x.mean(axis=0)
    a = np.einsum("ntc,nsc->ts", xc, xc) / len(x)
    b = np.einsum("ntc,ntd->cd", xc, xc) / len(x)
    assert np.allclose(est.full(), np.kron(a, b) / np.trace(a), rtol=1e-10, atol=1e-12)


def test_batches_give_the_one_pass_estimate_and_restriction_is_the_marginal():
    x = _truth().sample(np.random.default_rng(1), 300)
    acc = KroneckerEstimator()
    for i in range(0, 300, 70):
        acc.add(x[i:i + 70])
    assert np.allclose(acc.result().full(), estimate(x).full())
    model = _truth()
    sub = model.restricted(np.array([3, 1]))
    assert np.array_equal(sub.spatial, model.spatial[np.ix_([3, 1], [3, 1])])


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        estimate(np.zeros((1, 5, 2)) + np.arange(5)[:, None])
    with pytest.raises(ValueError, match="constant"):
        estimate(np.ones((4, 5, 2)))
    assert np.array_equal(distance_covariance(np.zeros((3, 2)), 2.0, 0.0), 4.0 * np.eye(3))

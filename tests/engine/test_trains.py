"""Spike trains: refractory enforcement, jittered source times, Poisson with dead time."""
import numpy as np
import pytest

from hybridkit.engine.trains import enforce_refractory, jittered_train, poisson_train

FS = 30000.0


def test_enforce_refractory_is_greedy_on_kept_spikes():
    out = enforce_refractory(np.array([31, 0, 9, 5, 10, 30, 30]), 10)
    assert out.dtype == np.int64
    assert out.tolist() == [0, 10, 30]
    # exactly the refractory period apart is allowed, one sample less is not
    assert enforce_refractory(np.array([0, 10, 19, 29]), 10).tolist() == [0, 10, 29]
    assert enforce_refractory(np.array([3, 1, 2]), 0).tolist() == [1, 2, 3]
    assert enforce_refractory(np.array([5, 5, 6]), 1).tolist() == [5, 6]
    assert enforce_refractory(np.zeros(0), 10).tolist() == []


def test_jittered_train_statistics_and_bounds():
    source = np.arange(1000, 3_000_000, 300)  # 300 samples apart: no collisions after jitter
    lo, hi = 30, 3_000_000 - 60
    out = jittered_train(source, 5.0, 60, lo, hi, np.random.default_rng(1))
    assert out.dtype == np.int64 and out.size == source.size
    assert (np.diff(out) >= 60).all()
    delta = out - source
    assert abs(delta.mean()) < 0.1
    assert delta.std() == pytest.approx(np.sqrt(25.0 + 1.0 / 12.0), rel=0.03)  # rounding adds 1/12
    again = jittered_train(source, 5.0, 60, lo, hi, np.random.default_rng(1))
    np.testing.assert_array_equal(out, again)
    other = jittered_train(source, 5.0, 60, lo, hi, np.random.default_rng(2))
    assert not np.array_equal(out, other)


def test_jittered_train_clips_range_and_enforces_refractory():
    source = np.array([0, 5, 100, 130, 150, 200, 990, 1000])
    out = jittered_train(source, 0.0, 40, 5, 990, np.random.default_rng(0))
    assert out.tolist() == [5, 100, 150, 200, 990]
    dense = np.sort(np.random.default_rng(5).integers(0, 100_000, 5000))
    out = jittered_train(dense, 3.0, 45, 100, 99_000, np.random.default_rng(0))
    assert out.min() >= 100 and out.max() <= 99_000
    assert (np.diff(out) >= 45).all()


def test_poisson_rate_refractory_and_bounds():
    lo, hi = 30, int(600 * FS)
    out = poisson_train(10.0, FS, 60, lo, hi, np.random.default_rng(0))
    assert out.dtype == np.int64
    assert out.min() >= lo and out.max() <= hi
    assert (np.diff(out) >= 60).all()
    assert out.size / ((hi - lo) / FS) == pytest.approx(10.0, rel=0.03)
    isi = np.diff(out)
    assert isi.min() == 60  # the dead time is reached, not exceeded by a margin
    # beyond the dead time the intervals are exponential: std == mean - dead time
    assert (isi - 60).std() == pytest.approx((isi - 60).mean(), rel=0.05)
    again = poisson_train(10.0, FS, 60, lo, hi, np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, poisson_train(10.0, FS, 60, lo, hi, np.random.default_rng(1)))


def test_poisson_high_rate_and_errors():
    out = poisson_train(200.0, FS, 60, 0, int(100 * FS), np.random.default_rng(3))
    assert out.size / 100.0 == pytest.approx(200.0, rel=0.03)
    assert (np.diff(out) >= 60).all()
    with pytest.raises(ValueError, match="must be below 500 Hz"):
        poisson_train(500.0, FS, 60, 0, 10_000, np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive"):
        poisson_train(0.0, FS, 60, 0, 10_000, np.random.default_rng(0))
    tiny = poisson_train(1.0, FS, 60, 500, 500, np.random.default_rng(0))
    assert tiny.size <= 1 and (tiny == 500).all()


def test_drop_windows_across_breaks_off_by_one():
    from hybridkit.engine.trains import drop_windows_across

    # window [t - 3, t + 5): with a break at 100, t = 103 starts at 100 (kept), t = 104 too;
    # t = 102 starts at 99 and holds 100 (dropped); t = 95 ends at 99 (kept), t = 96 holds 100
    times = np.array([10, 95, 96, 97, 102, 103, 104, 199, 200, 300], np.int64)
    kept = drop_windows_across(times, 3, 5, np.array([100, 203]))
    np.testing.assert_array_equal(kept, [10, 95, 103, 104, 300])
    np.testing.assert_array_equal(drop_windows_across(times, 3, 5, np.array([], np.int64)), times)
    assert drop_windows_across(np.array([], np.int64), 3, 5, np.array([100])).size == 0

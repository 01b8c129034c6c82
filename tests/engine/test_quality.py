"""Quality metrics against values computed by hand on tiny trains (fs = 1000 Hz: 1 sample = 1 ms)."""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.engine.quality import (
    amplitude_and_snr,
    compute_metrics,
    firing_rate,
    hill_contamination,
    isi_violations,
    isi_violations_ratio,
    presence_ratio,
)
from tests.helpers import make_recording

FS = 1000.0
# sorted: 0, 1, 5, 100, 101, 102, 5000, 9999 -> ISIs (ms): 1, 4, 95, 1, 1, 4898, 4999
TRAIN = np.array([101, 0, 1, 5, 100, 102, 5000, 9999])


def test_firing_rate():
    assert firing_rate(TRAIN, 10_000, FS) == 0.8  # 8 spikes in 10 s
    assert firing_rate(TRAIN, 20_000, 2 * FS) == 0.8


def test_isi_violations_strictly_shorter_than_the_refractory_period():
    assert isi_violations(TRAIN, FS, 1.5) == 3  # the three 1-ms ISIs
    assert isi_violations(TRAIN, FS, 4.0) == 3  # 4 ms is not < 4 ms
    assert isi_violations(TRAIN, FS, 4.5) == 4  # and the 4-ms one
    assert isi_violations(TRAIN[:1], FS, 4.5) == 0


def test_isi_violations_ratio_and_hill_contamination_by_hand():
    # SpikeInterface's ratio: (v / (2 N (r - c))) / (N / T) = (3 / (2*8*0.0015)) / (8/10) = 156.25
    assert isi_violations_ratio(3, 8, 10.0, 1.5) == pytest.approx(156.25)
    # with a censored period of 0.5 ms: (3 / (2*8*0.001)) / 0.8 = 234.375
    assert isi_violations_ratio(3, 8, 10.0, 1.5, 0.5) == pytest.approx(234.375)
    # Hill: k = v T / (2 (r - c) N^2) = 3*10 / (2*0.0015*64) = 156.25 > 1/4: no fraction fits
    assert hill_contamination(3, 8, 10.0, 1.5) == 1.0
    # 1000 spikes in 100 s, 1 violation, r = 2 ms: k = 100 / 4000 = 0.025,
    # f = (1 - sqrt(1 - 0.1)) / 2 = 0.0256583509747431
    assert hill_contamination(1, 1000, 100.0, 2.0) == pytest.approx(0.0256583509747431, rel=1e-12)
    assert hill_contamination(0, 1000, 100.0, 2.0) == 0.0
    # k exactly 1/4 -> f = 1/2: v = 10, T = 100 s, N = 1000, r - c = 2 ms: k = 1000 / 4000
    assert hill_contamination(10, 1000, 100.0, 2.5, 0.5) == pytest.approx(0.5)


def test_metrics_of_a_regular_train_with_one_violation():
    times = np.arange(1000) * 100  # every 100 ms for 100 s
    times[500] = times[499] + 1  # one 1-ms ISI (and one 199-ms one)
    m = compute_metrics({7: times}, FS, 100_000, refractory_ms=2.0)[7]
    assert (m.unit_id, m.n_spikes, m.isi_violations) == (7, 1000, 1)
    assert m.firing_rate_hz == 10.0
    assert m.isi_violations_ratio == pytest.approx(0.025)  # (1 / (2*1000*0.002)) / 10
    assert m.contamination == pytest.approx(0.0256583509747431)
    assert m.presence_ratio == 1.0
    assert np.isnan(m.amplitude_uV) and np.isnan(m.snr) and m.peak_channel == -1


def test_presence_ratio_bins():
    # 10.5 s at 1 kHz, 1-s bins: floor(10.5) = 10 bins, the last 0.5 s joins bin 9
    assert presence_ratio(TRAIN, 10_500, FS, 1.0) == 0.3  # bins 0, 5, 9
    assert presence_ratio(np.array([10_400]), 10_500, FS, 1.0) == 0.1  # the remainder counts
    assert presence_ratio(np.array([999]), 10_000, FS, 1.0) == 0.1
    assert presence_ratio(np.array([999, 1000]), 10_000, FS, 1.0) == 0.2  # 1000 starts bin 1
    assert presence_ratio(np.array([3]), 500, FS, 1.0) == 1.0  # shorter than a bin: one bin
    assert presence_ratio(np.array([], np.int64), 10_000, FS, 1.0) == 0.0


def _spiky_recording(tmp_path):
    """fs 10 kHz, 3 channels, gain 0.5 uV/bit. Noise: +4/-4 bits alternating (+4 on even samples).
    Unit: -100 bits on channel 1 at each (even) spike sample, nothing else."""
    n = 20_000
    data = np.where(np.arange(n) % 2 == 0, 4, -4).astype(np.int16)[:, None].repeat(3, axis=1)
    times = np.arange(100, n - 100, 400)  # even samples
    data[times, 1] -= 100
    return make_recording(tmp_path, data, fs=10_000.0, gain=0.5), times


def test_amplitude_and_snr_by_hand(tmp_path):
    rec, times = _spiky_recording(tmp_path)
    # window [t-10, t+20) starts on an even sample: +4, -4, +4, ...; the baseline is the mean of
    # its first 10 // 2 = 5 samples, (3 x 4 - 2 x 4) / 5 = 0.8 bits, so the spike sample (-96 on
    # channel 1) becomes -96.8 bits = -48.4 uV; the quiet samples are +3.2 / -4.8 bits (2.4 uV)
    amp, snr, peak = amplitude_and_snr(rec, times, 10, 20, np.array([1.0, 2.5, 1.0]),
                                       np.random.default_rng(0), max_spikes=10)
    assert peak == 1
    assert amp == pytest.approx(48.4)
    assert snr == pytest.approx(48.4 / 2.5)
    # spikes whose window leaves the recording are ignored; none left -> NaN
    amp, snr, peak = amplitude_and_snr(rec, np.array([5, 19_995]), 10, 20, np.ones(3),
                                       np.random.default_rng(0))
    assert np.isnan(amp) and np.isnan(snr) and peak == -1


def test_compute_metrics_with_recording(tmp_path):
    rec, times = _spiky_recording(tmp_path)
    m = compute_metrics({3: times, 4: times[:5]}, rec.sampling_rate, rec.n_samples, recording=rec,
                        rng=np.random.default_rng(1), units_for_amplitude=[3])
    assert m[3].peak_channel == 1 and m[3].amplitude_uV == pytest.approx(48.4)
    assert m[3].snr > 5  # noise MAD estimate is a few uV: 46 uV stands well above it
    assert np.isnan(m[4].amplitude_uV)  # not asked for
    assert m[3].firing_rate_hz == pytest.approx(times.size / 2.0)

"""Unit quality metrics used to choose ground-truth units: rate, ISI contamination, presence, SNR.

Definitions (times are int64 0-based samples, ``fs`` in Hz, ``n_samples`` the recording's length):

* firing rate (Hz) = n_spikes / (n_samples / fs).
* ISI violations: inter-spike intervals (of the sorted train) strictly shorter than the refractory
  period ``r`` (``isi < r * fs`` samples). ``isi_violations_ratio`` is SpikeInterface's
  (UMS2000/Hill) ratio ``(v / (2 N (r - c))) / (N / T)``; ``contamination`` is Hill, Mehta &
  Kleinfeld (2011, J Neurosci 31:8699) solved for the contaminating fraction:
  ``v = 2 (r - c) N^2 f (1 - f) / T`` -> ``f = (1 - sqrt(1 - 4 k)) / 2`` with
  ``k = v T / (2 (r - c) N^2)``; when ``4 k > 1`` no fraction explains that many violations and
  the contamination is 1. ``c`` is the censored period (the sorter's dead time) and ``T`` the
  duration in s.
* presence ratio: the recording is cut into ``floor(T / bin)`` bins of ``bin_s`` (at least one; the
  remainder joins the last bin), and the ratio is the fraction of bins holding a spike.
* amplitude (uV): the peak |value| of the unit's mean waveform (from at most ``max_spikes`` spikes,
  each channel's baseline removed: its mean over the first ``max(1, n_before // 2)`` samples of
  the window, the templates' baseline, :func:`hybridkit.engine.templates.build_template` step 3)
  over the neural channels; its channel is the peak channel. SNR = amplitude / the run's noise
  std of the peak channel (:mod:`hybridkit.engine.noise`: the one estimate and definition).
  With a high-pass ``band`` (the local template source's ``highpass_hz``), the snippets are
  filtered first, as the run's noise is, so a wideband recording's LFP counts neither as spike
  amplitude nor as noise. The unit's footprint (the mean waveform on the channels whose peak
  |value| is at least ``FOOTPRINT_FRACTION`` of the amplitude) is kept for the duplicate check.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from hybridkit.model import Recording
from hybridkit.engine.filtering import Highpass
from hybridkit.engine.snippets import gather_band_snippets, windows_inside
from hybridkit.engine.noise import noise_per_column, snr as snr_of


@dataclass
class UnitMetrics:
    """Quality metrics of one unit (NaN where not computed)."""

    unit_id: int
    n_spikes: int
    firing_rate_hz: float
    isi_violations: int
    isi_violations_ratio: float
    contamination: float
    presence_ratio: float
    amplitude_uV: float = float("nan")
    snr: float = float("nan")
    peak_channel: int = -1
    #: (file columns (k,), mean waveform (n_times, k) float32 uV) on the footprint, or None
    footprint: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        """The scalar metrics by name (the footprint is not a table column)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "footprint"}


#: a channel belongs to a unit's footprint when its peak |mean| is at least this fraction of the
#: unit's amplitude (20 %: the channels a sorter's template visibly spans)
FOOTPRINT_FRACTION = 0.2


def firing_rate(times: np.ndarray, n_samples: int, fs: float) -> float:
    """Spikes per second over the whole recording."""
    if n_samples <= 0:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    return float(np.size(times) / (n_samples / fs))


def isi_violations(times: np.ndarray, fs: float, refractory_ms: float) -> int:
    """Number of inter-spike intervals shorter than ``refractory_ms`` (times in samples, any order)."""
    t = np.sort(np.asarray(times, np.int64))
    if t.size < 2:
        return 0
    return int(np.count_nonzero(np.diff(t) < refractory_ms * 1e-3 * fs))


def isi_violations_ratio(n_violations: int, n_spikes: int, duration_s: float,
                         refractory_ms: float, censored_ms: float = 0.0) -> float:
    """SpikeInterface's ``isi_violations_ratio``: violation rate over the unit's mean rate."""
    window_s = (refractory_ms - censored_ms) * 1e-3
    if n_spikes == 0 or window_s <= 0:
        return float("nan")
    violation_rate = n_violations / (2.0 * n_spikes * window_s)
    return float(violation_rate / (n_spikes / duration_s))


def hill_contamination(n_violations: int, n_spikes: int, duration_s: float,
                       refractory_ms: float, censored_ms: float = 0.0) -> float:
    """Fraction of spikes from other neurons (Hill et al. 2011), in [0, 1]; 1 when unexplainable."""
    window_s = (refractory_ms - censored_ms) * 1e-3
    if n_spikes == 0 or window_s <= 0:
        return float("nan")
    k = n_violations * duration_s / (2.0 * window_s * n_spikes**2)
    if 4.0 * k > 1.0:
        return 1.0
    return float((1.0 - np.sqrt(1.0 - 4.0 * k)) / 2.0)


def presence_ratio(times: np.ndarray, n_samples: int, fs: float, bin_s: float) -> float:
    """Fraction of ``bin_s`` bins (floor(T / bin), at least 1; remainder in the last) with a spike."""
    bin_samples = bin_s * fs
    n_bins = max(1, int(n_samples // bin_samples))
    t = np.asarray(times, np.int64)
    t = t[(t >= 0) & (t < n_samples)]
    idx = np.minimum((t // bin_samples).astype(np.int64), n_bins - 1)
    return float(np.unique(idx).size / n_bins)


def mean_waveform_uV(recording: Recording, times: np.ndarray, n_before: int, n_after: int,
                     rng: np.random.Generator, max_spikes: int = 100,
                     band: Highpass | None = None) -> np.ndarray | None:
    """(n_before + n_after, n_neural) float32 uV mean of at most ``max_spikes`` windows, or None.

    The spikes averaged are drawn from ``rng`` among those whose window (``band.pad`` wider with
    a band) lies inside the recording. Each channel's baseline, its mean over the first
    ``max(1, n_before // 2)`` samples (the part of the window furthest from the spike, as the
    templates' baseline), is removed from the mean: the same as removing each window's own,
    since both are means. None when no window fits or there are no neural channels.
    """
    neural = recording.neural_channels
    t = np.asarray(times, np.int64)
    t = t[windows_inside(t, n_before, n_after, recording.n_samples, band)]
    if t.size == 0 or neural.size == 0:
        return None
    if t.size > max_spikes:
        t = np.sort(rng.choice(t, size=max_spikes, replace=False))
    snips = gather_band_snippets(recording, t, n_before, n_after, neural, band)
    mean = snips.mean(axis=0, dtype=np.float64)
    mean -= mean[: max(1, n_before // 2)].mean(axis=0)
    return mean.astype(np.float32) * recording.gain_to_uV[neural].astype(np.float32)


def amplitude_and_snr(recording: Recording, times: np.ndarray, n_before: int, n_after: int,
                      noise_uV: np.ndarray, rng: np.random.Generator,
                      max_spikes: int = 100, band: Highpass | None = None
                      ) -> tuple[float, float, int]:
    """(amplitude uV, SNR, peak file column) of one unit's mean waveform on the neural channels.

    ``noise_uV`` is (n_channels,) noise std per file column, the run's
    (:func:`hybridkit.engine.noise.recording_noise_uV`, in the same ``band``). Spikes whose window (``band.pad`` wider with a band) leaves the recording are
    ignored; with none left, (NaN, NaN, -1).
    """
    amp, snr, peak, _ = _measure(recording, times, n_before, n_after, noise_uV, rng, max_spikes, band)
    return amp, snr, peak


def _measure(recording, times, n_before, n_after, noise_uV, rng, max_spikes, band):
    """amplitude_and_snr plus the footprint (columns, waveform) (None without a waveform)."""
    mean = mean_waveform_uV(recording, times, n_before, n_after, rng, max_spikes, band)
    if mean is None:
        return float("nan"), float("nan"), -1, None
    neural = recording.neural_channels
    peaks = np.abs(mean).max(axis=0)
    peak = int(np.argmax(peaks))
    amp = float(peaks[peak])
    snr = snr_of(amp, noise_uV[neural[peak]])
    on = peaks >= FOOTPRINT_FRACTION * amp
    return amp, snr, int(neural[peak]), (neural[on].astype(np.int64), mean[:, on].copy())


def compute_metrics(
    trains: dict[int, np.ndarray], fs: float, n_samples: int, *, refractory_ms: float = 1.5,
    censored_ms: float = 0.0, presence_bin_s: float = 60.0, recording: Recording | None = None,
    ms_before: float = 1.0, ms_after: float = 2.0, max_spikes: int = 100,
    rng: np.random.Generator | None = None, units_for_amplitude: list[int] | None = None,
    band: Highpass | None = None, unit_rng: Callable[[int], np.random.Generator] | None = None,
    noise_uV: np.ndarray | None = None,
) -> dict[int, UnitMetrics]:
    """Metrics of every unit in ``trains`` (unit id -> spike samples).

    Amplitude and SNR need ``recording``; they are computed for ``units_for_amplitude`` (default:
    every unit) and NaN for the others, high-passed by ``band`` when it is given, over
    ``noise_uV`` ((n_channels,) uV per file column, the run's estimate in the same band; made
    here by :func:`hybridkit.engine.noise.noise_per_column` when not given).
    ``unit_rng(unit_id)``, when given, is the generator that draws that unit's spike sample, so a
    unit's numbers do not depend on which other units were measured (else ``rng`` draws every
    sample in turn).
    """
    duration_s = n_samples / fs
    out: dict[int, UnitMetrics] = {}
    for uid, times in trains.items():
        n = int(np.size(times))
        v = isi_violations(times, fs, refractory_ms)
        out[int(uid)] = UnitMetrics(
            unit_id=int(uid), n_spikes=n, firing_rate_hz=firing_rate(times, n_samples, fs),
            isi_violations=v,
            isi_violations_ratio=isi_violations_ratio(v, n, duration_s, refractory_ms, censored_ms),
            contamination=hill_contamination(v, n, duration_s, refractory_ms, censored_ms),
            presence_ratio=presence_ratio(times, n_samples, fs, presence_bin_s),
        )
    if recording is not None:
        rng = rng if rng is not None else np.random.default_rng(0)
        wanted = list(trains) if units_for_amplitude is None else units_for_amplitude
        if wanted:
            noise = noise_uV if noise_uV is not None else noise_per_column(recording, band)
            n_before = max(1, int(round(ms_before * 1e-3 * recording.sampling_rate)))
            n_after = max(1, int(round(ms_after * 1e-3 * recording.sampling_rate)))
            for uid in wanted:
                m = out[int(uid)]
                draw = unit_rng(int(uid)) if unit_rng is not None else rng
                m.amplitude_uV, m.snr, m.peak_channel, m.footprint = _measure(
                    recording, trains[uid], n_before, n_after, noise, draw, max_spikes, band)
    return out

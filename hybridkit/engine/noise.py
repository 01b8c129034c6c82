"""The run's one noise estimate and the one SNR definition.

Every SNR hybridkit reports (the selection table, the templates' sparsity, the NWB units table,
the plan file, ``hybridkit report``, ``score``, ``read_hybrid`` and ``hybridkit units``) divides
by the same numbers: :func:`recording_noise_uV`, computed once per run and stored with its output.

* Noise: each neural channel's robust standard deviation in uV of the *source* recording,
  high-passed at the run's ``highpass_hz`` (the template source's band) exactly as the templates
  and the selection's snippets are: ``median(|x - median(x)|) / 0.6745`` (the MAD estimate, which
  spikes barely move) over :data:`NOISE_CHUNKS` chunks of :data:`NOISE_CHUNK_SAMPLES` samples at
  fixed places: chunk ``k`` is centred on ``(k + 0.5) / NOISE_CHUNKS`` of the recording
  (:func:`noise_chunk_starts`). The places depend on the recording's length only: no seed, so a
  preview (`hybridkit units --recording CONFIG`) and the run measure the same noise.
* SNR = peak |amplitude| (uV) of a waveform on its peak channel / that channel's noise (uV)
  (:func:`snr`); infinite when the noise is 0. Which waveform: for a source unit in the
  selection table, its mean waveform at its source place (``snr``, the criteria's) and its
  template as built (``template_snr``); for an injected unit (:func:`injected_snr`: the NWB units
  table, the plan file, and all that read them back), its placed template on the template's peak
  channel times the unit's mean amplitude scale (the mean of its events' gains), so a unit
  injected at its own place with scale 1 has ``snr == template_snr``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridkit.errors import TemplateError
from hybridkit.model import Plan, Recording
from hybridkit.engine.filtering import Highpass

#: MAD of a standard normal distribution: std = MAD / 0.6745
MAD_TO_STD = 0.6745
#: chunks of the run's noise estimate, evenly spread over the recording
NOISE_CHUNKS = 20
#: samples per chunk (20 x 1000 at 30 kHz, 0.7 s: a standard error of ~1 % of the noise level,
#: ample for sparsity thresholds and SNRs)
NOISE_CHUNK_SAMPLES = 1000


def noise_chunk_starts(n_samples: int, n_chunks: int = NOISE_CHUNKS,
                       chunk_samples: int = NOISE_CHUNK_SAMPLES) -> np.ndarray:
    """(n_chunks,) sorted int64 starts of the noise chunks: chunk ``k`` centred on sample
    ``(k + 0.5) * n_samples / n_chunks`` (clipped inside the recording; one chunk, the whole
    recording, when it is shorter than a chunk). A function of the length alone."""
    n_samples = int(n_samples)
    if n_samples <= 0:
        raise TemplateError("no samples to estimate the noise from")
    length = min(int(chunk_samples), n_samples)
    if length == n_samples:
        return np.zeros(1, np.int64)
    centres = (np.arange(max(int(n_chunks), 1)) + 0.5) * (n_samples / max(int(n_chunks), 1))
    return np.clip(np.floor(centres - length / 2), 0, n_samples - length).astype(np.int64)


def noise_block_bounds(n_samples: int, starts: np.ndarray, length: int,
                       band: Highpass | None) -> list[tuple[int, int]]:
    """The samples ``[a, b)`` read per chunk start: the chunk, and with ``band`` ``band.pad``
    more on each side where the recording allows (the filter's edge effects are cut off)."""
    pad = band.pad if band is not None else 0
    return [(max(0, int(s) - pad), min(int(n_samples), int(s) + length + pad)) for s in starts]


def estimate_noise_uV(recording: Recording, channels: np.ndarray, *, band: Highpass | None = None,
                      n_chunks: int = NOISE_CHUNKS, chunk_samples: int = NOISE_CHUNK_SAMPLES
                      ) -> np.ndarray:
    """(len(channels),) float64 robust noise std in uV of ``channels`` (file columns).

    Reads the chunks of :func:`noise_chunk_starts` (``band``: each ``band.pad`` wider, filtered,
    cut back), removes each chunk's per-channel median (offsets and slow drifts between chunks
    are not noise; for unfiltered 8/16-bit integer recordings the lower median, which keeps the
    arithmetic exact integer), and returns ``median(|x|) / 0.6745`` per channel over all chunks
    times the channel's gain.
    Memory: the chunks of ``channels`` (20 x 1000 samples), whatever the recording's length.
    """
    channels = np.asarray(channels, dtype=np.int64).ravel()
    if channels.size == 0:
        return np.zeros(0, dtype=np.float64)
    if recording.n_samples <= 0:
        raise TemplateError(f"recording {recording.name}: no samples to estimate the noise from")
    starts = noise_chunk_starts(recording.n_samples, n_chunks, chunk_samples)
    length = min(int(chunk_samples), recording.n_samples)
    gain = np.abs(recording.gain_to_uV[channels]).astype(np.float64)
    bounds = noise_block_bounds(recording.n_samples, starts, length, band)
    recording.will_need(bounds)  # 20 reads spread over the file: on a cold disk, all at once
    blocks = (recording.read(int(a), int(b), channels) for a, b in bounds)
    if band is not None:
        return robust_std(band.apply(raw.astype(np.float32), axis=0)[s - a : s - a + length]
                          for raw, s, (a, _) in zip(blocks, starts.tolist(), bounds)) * gain
    if recording.dtype.kind in "iu" and recording.dtype.itemsize <= 2:
        dev = np.concatenate([_int_deviations(raw.T) for raw in blocks], axis=1)
        return _median_rows(dev) / MAD_TO_STD * gain
    return robust_std(blocks) * gain


def recording_noise_uV(recording: Recording, highpass_hz: float | None) -> np.ndarray:
    """The run's noise estimate: (n_channels,) float64 uV per file column, NaN off the neural
    channels, high-passed at ``highpass_hz`` (None: the recording's own band)."""
    band = Highpass.for_recording(highpass_hz, recording.sampling_rate) if highpass_hz else None
    return noise_per_column(recording, band)


def noise_per_column(recording: Recording, band: Highpass | None) -> np.ndarray:
    """:func:`estimate_noise_uV` of the neural channels in ``band``, as (n_channels,) float64 uV
    per file column, NaN off the neural channels."""
    out = np.full(recording.n_channels, np.nan)
    neural = recording.neural_channels
    out[neural] = estimate_noise_uV(recording, neural, band=band)
    return out


def snr(amplitude_uV, noise_uV):
    """The one SNR: peak |amplitude| (uV) / noise std (uV) of the same channel; inf where the
    noise is 0, NaN where either is NaN. Scalars or arrays (float64)."""
    a = np.asarray(amplitude_uV, np.float64)
    n = np.asarray(noise_uV, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(n > 0, a / np.where(n > 0, n, 1.0), np.where(np.isnan(n), np.nan, np.inf))
    out = np.where(np.isnan(a), np.nan, out)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class InjectedSnr:
    """Per injected unit (in ``plan.units`` order), (n_units,) float64 each."""

    amplitude_uV: np.ndarray  # peak |amplitude| of the placed template, scale 1
    mean_scale: np.ndarray  # mean amplitude scale of the unit's events (1 without events)
    noise_uV: np.ndarray  # the run's noise on the template's peak channel
    snr: np.ndarray  # amplitude_uV * mean_scale / noise_uV


def injected_snr(plan: Plan, noise_uV: np.ndarray) -> InjectedSnr:
    """The SNR of every injected unit: its placed template's peak |amplitude| x its mean amplitude
    scale / the run's noise (``noise_uV``, (n_channels,) per file column) on the template's peak
    channel. Computed once by the run and stored (plan file, NWB units table); readers read it."""
    n = len(plan.units)
    amp = np.array([u.template.peak_amplitude_uV for u in plan.units], np.float64)
    sums = np.bincount(plan.unit_index, weights=plan.gains.astype(np.float64), minlength=n)[:n]
    counts = np.bincount(plan.unit_index, minlength=n)[:n]
    scale = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)
    peaks = np.array([u.template.peak_channel for u in plan.units], np.int64)
    noise = np.asarray(noise_uV, np.float64)[peaks] if n else np.zeros(0)
    return InjectedSnr(amp, scale, noise, np.asarray(snr(amp * scale, noise), np.float64).reshape(n))


def robust_std(chunks) -> np.ndarray:
    """(n_ch,) float64 MAD noise std over ``chunks`` of (n_samples_i, n_ch) samples, in their units.

    Each chunk's per-channel median is removed first (offsets and slow drifts between chunks are
    not noise); then ``median(|x|) / 0.6745`` per channel over all chunks.
    """
    parts = []
    for x in chunks:
        # channel-major float32 copy: medians along the contiguous axis are ~10x faster
        x = np.ascontiguousarray(np.asarray(x).T, dtype=np.float32)
        x -= np.median(x, axis=1, keepdims=True)
        parts.append(np.abs(x))
    return (np.median(np.concatenate(parts, axis=1), axis=1) / MAD_TO_STD).astype(np.float64)


def _int_deviations(raw: np.ndarray) -> np.ndarray:
    """|x - lower median| per row of 8/16-bit integer samples, as uint16 (exact, no overflow).

    numpy sorts 16-bit integers with a radix sort (``kind="stable"``), ~4x faster than the
    partition behind ``np.median`` on float32; the lower median (an actual sample) keeps the
    deviations integers, and centring half a raw unit off changes a MAD of tens of units by
    nothing measurable.
    """
    x = np.ascontiguousarray(raw, dtype=np.int32)
    srt = np.sort(np.ascontiguousarray(raw), axis=1, kind="stable")
    med = srt[:, (srt.shape[1] - 1) // 2].astype(np.int32)
    return np.abs(x - med[:, None]).astype(np.uint16)


def _median_rows(values: np.ndarray) -> np.ndarray:
    """Exact median of each row of a 16-bit integer array (mean of the two middles when even)."""
    srt = np.sort(values, axis=1, kind="stable")
    n = srt.shape[1]
    return (srt[:, (n - 1) // 2].astype(np.float64) + srt[:, n // 2]) / 2.0

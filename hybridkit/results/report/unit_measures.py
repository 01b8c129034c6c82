"""What the report measures per injected unit, on the hybrid recording and on the trains.

Trains are counted whole (correlograms, ISIs, rates: cheap even for an hour). Signal measures
read windows of the hybrid recording, so they use at most :data:`MAX_AMPLITUDE_EVENTS` events per
unit, drawn with a fixed seed (the page says when events were subsampled): each event's amplitude
in uV on the unit's peak channel and a few individual waveforms. Mean waveforms come from
:mod:`hybridkit.results.scoring`, windows from
:func:`hybridkit.results.traces.iter_windows`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridkit.engine.correlograms import correlogram, isi_histogram
from hybridkit.engine.snippets import windows_inside
from hybridkit.results.traces import Traces, iter_windows
from hybridkit.results.truth import Truth

#: events per unit whose amplitude is measured on the hybrid recording
MAX_AMPLITUDE_EVENTS = 500
#: individual waveforms drawn over each template
N_WAVEFORMS = 12
#: seed of every subsample the report draws (the same page for the same output)
REPORT_SEED = 0
#: correlograms: whole window and bin, ms (SpikeInterface's defaults)
CCG_WINDOW_MS, CCG_BIN_MS = 50.0, 1.0
#: ISI histogram: range and bin, ms
ISI_MAX_MS, ISI_BIN_MS = 50.0, 1.0


def subsample(n: int, k: int, seed: int = REPORT_SEED, salt: int = 0) -> np.ndarray:
    """Sorted indices of ``k`` of ``n`` items drawn without replacement (all when ``n <= k``)."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, salt]).choice(n, k, replace=False))


@dataclass
class UnitMeasures:
    """One injected unit, as the report shows it.

    Attributes:
        acg, ccg: (n_bins,) pair counts; ``ccg`` against the source unit's own spikes (lag =
            source - injected), or None when the source train is unknown; ``ccg_edges_ms``.
        isi: (n_bins,) interval counts over ``isi_edges_ms``.
        amp_times_s, amp_uV: (k,) the measured events' times (s) and amplitudes (uV, positive in
            the template's peak direction: value at the template's peak sample minus the window's
            median, on the peak channel); ``planned_uV`` (k,) gain x template peak amplitude.
        waveforms: (N_WAVEFORMS, n_t) uV individual hybrid windows on the peak channel, each minus
            its median; ``template_uV`` (n_t,) the template there x the unit's mean gain;
            ``waveform_t_ms`` (n_t,) time of each sample from the template's peak, ms.
        n_measured, n_events: events measured / injected.
    """

    unit: int
    acg: np.ndarray
    ccg: np.ndarray | None
    ccg_edges_ms: np.ndarray
    isi: np.ndarray
    isi_edges_ms: np.ndarray
    rate_hz: float
    n_events: int
    amp_times_s: np.ndarray | None = None
    amp_uV: np.ndarray | None = None
    planned_uV: np.ndarray | None = None
    waveforms: np.ndarray | None = None
    template_uV: np.ndarray | None = None
    waveform_t_ms: np.ndarray | None = None
    n_measured: int = 0


def source_train(truth: Truth, unit: int, source_sorting) -> np.ndarray | None:
    """The source unit's own spikes (samples) for a unit made from a source unit, else None."""
    if truth.template_sources.get(unit, "local") != "local":
        return None  # database / synthetic templates have no source unit in this recording
    src = truth.source_units.get(unit)
    if src is None:
        return None
    if truth.source_trains is not None and src in truth.source_trains:
        return truth.source_trains[src]
    if source_sorting is not None and np.any(source_sorting.spike_units == src):
        return source_sorting.times_of(src)
    return None


def measure_unit(truth: Truth, unit: int, traces: Traces | None, duration_s: float,
                 source_sorting=None) -> UnitMeasures:
    """Correlograms and ISIs of ``unit``'s train; amplitudes and waveforms when ``traces`` is open."""
    fs = truth.sampling_rate
    t = truth.times_of(unit)
    acg, edges = correlogram(t, None, fs, CCG_WINDOW_MS, CCG_BIN_MS)
    src = source_train(truth, unit, source_sorting)
    ccg = correlogram(t, src, fs, CCG_WINDOW_MS, CCG_BIN_MS)[0] if src is not None else None
    isi, isi_edges = isi_histogram(t, fs, ISI_MAX_MS, ISI_BIN_MS)
    m = UnitMeasures(unit=unit, acg=acg, ccg=ccg, ccg_edges_ms=edges, isi=isi, isi_edges_ms=isi_edges,
                     rate_hz=t.size / duration_s if duration_s > 0 else float("nan"), n_events=int(t.size))
    tpl = truth.templates.get(unit)
    if traces is None or tpl is None or t.size == 0:
        return m
    gains = truth.gains[truth.units == unit] if truth.gains is not None else np.ones(t.size, np.float32)
    pick = subsample(t.size, MAX_AMPLITUDE_EVENTS, salt=unit)
    k = int(np.flatnonzero(tpl.channels == tpl.peak_channel)[0])
    peak_wf = tpl.waveform[:, k].astype(np.float64)
    sign = 1.0 if peak_wf[tpl.peak_index] >= 0 else -1.0
    before, after = tpl.peak_index, tpl.n_times - tpl.peak_index
    pick = pick[windows_inside(t[pick], before, after, traces.n_samples)]  # what iter_windows reads
    times, amps, planned, wfs = [], [], [], []
    windows = iter_windows(traces, t[pick], np.array([tpl.peak_channel]), before, after)
    for i, (s, w) in zip(pick.tolist(), windows):
        w = w[:, 0] - np.median(w[:, 0])
        times.append(s)
        amps.append(sign * float(w[before]))
        planned.append(abs(float(peak_wf[tpl.peak_index])) * float(gains[i]))
        wfs.append(w)
    if not times:
        return m
    show = subsample(len(wfs), N_WAVEFORMS, salt=unit + 1)
    m.amp_times_s = np.asarray(times, np.float64) / fs
    m.amp_uV = np.asarray(amps, np.float64)
    m.planned_uV = np.asarray(planned, np.float64)
    m.waveforms = np.asarray(wfs, np.float32)[show]
    m.template_uV = (peak_wf * float(gains.mean())).astype(np.float32)
    m.waveform_t_ms = (np.arange(tpl.n_times) - tpl.peak_index) * 1000.0 / fs
    m.n_measured = len(times)
    return m


def clipped_on_channels(truth: Truth, unit: int) -> int | None:
    """Clipped samples counted on the unit's template channels (None when not recorded).

    The engine counts saturation per channel, not per unit: a sample clipped on a shared channel
    counts for every unit whose template covers that channel.
    """
    tpl = truth.templates.get(unit)
    if truth.clipped is None or tpl is None:
        return None
    return int(sum(truth.clipped.get(int(c), 0) for c in tpl.channels.tolist()))

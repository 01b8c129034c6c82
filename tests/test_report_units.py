"""The report's per-unit measures, trace panels, labels and drift, on small truths built here.

The hybrid recording is an in-memory array holding exactly the injected templates (no background),
so measured amplitudes and waveforms must equal the planned ones.
"""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.engine.correlograms import correlogram
from hybridkit.model import Template
from hybridkit.results.report import figures as F
from hybridkit.results.report import unit_measures as UM
from hybridkit.results.report.html import Page
from hybridkit.results.report.sections_units import (
    drift_section,
    origin,
    trace_panel,
    unit_sections,
)
from hybridkit.results.traces import Traces
from hybridkit.results.truth import Truth

FS = 30000.0


class ArrayTraces(Traces):
    """A hybrid recording held in memory, (n_samples, n_channels) uV."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.n_samples = data.shape[0]
        self.sampling_rate = FS

    def read_uV(self, start, stop, channels):
        return self.data[start:stop][:, np.asarray(channels)].astype(np.float32)


def _template(unit: int, channels, positions, n_times: int = 60, peak: int = 20, amp: float = -100.0):
    t = np.arange(n_times)
    shape = amp * np.exp(-0.5 * ((t - peak) / 3.0) ** 2)
    wf = np.stack([shape * (0.5 ** k) for k in range(len(channels))], axis=1).astype(np.float32)
    ch = np.asarray(channels, np.int64)
    return Template(unit_id=unit, waveform=wf, channels=ch, peak_index=peak, peak_channel=int(ch[0]),
                    position=positions[ch[0]].copy(), source="legacy")


def make_truth(n_samples: int = int(FS * 20)):
    """Unit 1 on channels 0-2 (y 0-40 um), unit 2 on channels 20-21 (y 1700 um), both firing
    together at some times; unit 1 made from source unit 7, whose own train is known."""
    positions = np.c_[np.zeros(22), np.r_[np.arange(20) * 20.0, 1700.0, 1720.0]]
    rng = np.random.default_rng(3)
    t1 = np.sort(rng.choice(np.arange(100, n_samples - 100, 97), 400, replace=False))
    t2 = np.r_[t1[:5], np.sort(rng.choice(np.arange(150, n_samples - 100, 89), 100, replace=False))]
    templates = {1: _template(1, [0, 1, 2], positions), 2: _template(2, [20, 21], positions, amp=-60.0)}
    times = np.r_[t1, t2]
    units = np.r_[np.ones(t1.size, np.int64), np.full(t2.size, 2, np.int64)]
    gains = rng.uniform(0.8, 1.2, times.size).astype(np.float32)
    order = np.argsort(times, kind="stable")
    times, units, gains = times[order], units[order], gains[order]
    data = np.zeros((n_samples, 22), np.float32)
    for s, u, g in zip(times, units, gains):
        tpl = templates[int(u)]
        data[s - tpl.peak_index:s - tpl.peak_index + tpl.n_times, tpl.channels] += g * tpl.waveform
    source = np.sort(t1 + rng.integers(-30, 31, t1.size))
    truth = Truth(times=times, units=units, unit_ids=np.array([1, 2]), sampling_rate=FS, gains=gains,
                  source_units={1: 7, 2: 3}, templates=templates,
                  shifts_um={1: np.array([0.0, 40.0]), 2: np.array([0.0, 0.0])},
                  channel_positions=positions, clipped={}, n_samples=n_samples,
                  source_trains={7: source}, template_sources={1: "local", 2: "template_database"},
                  event_positions=positions[[templates[int(u)].peak_channel for u in units]])
    return truth, ArrayTraces(data)


def test_measured_amplitudes_and_waveforms_equal_the_planned_ones(monkeypatch):
    truth, traces = make_truth()
    monkeypatch.setattr(UM, "MAX_AMPLITUDE_EVENTS", 150)
    m = UM.measure_unit(truth, 1, traces, 20.0, None)
    t1, g1 = truth.times_of(1), truth.gains[truth.units == 1]
    assert m.n_events == 400 and m.n_measured == 150 and m.rate_hz == pytest.approx(20.0)
    # where unit 2 fires within a window (its channels are others) nothing is added on channel 0,
    # so every measured amplitude is the event's gain x 100 uV, to float32 rounding
    assert np.allclose(m.amp_uV, m.planned_uV, rtol=1e-5)
    picked = np.isin(t1, np.rint(m.amp_times_s * FS).astype(np.int64))
    assert picked.sum() == 150 and np.allclose(np.sort(m.planned_uV), np.sort(100.0 * g1[picked]), rtol=1e-6)
    # individual waveforms: each is gain x the template's peak channel (its median is 0 here)
    tpl = truth.templates[1].waveform[:, 0]
    for w in m.waveforms:
        g = float(w[20] / tpl[20])
        assert 0.8 <= g <= 1.2 and np.allclose(w, g * tpl, atol=1e-3)
    assert m.waveforms.shape == (UM.N_WAVEFORMS, 60)
    assert m.waveform_t_ms[20] == 0 and m.waveform_t_ms[21] == pytest.approx(1000 / FS)
    # the same subsample every time (fixed seed), and a different one per unit
    again = UM.measure_unit(truth, 1, traces, 20.0, None)
    assert np.array_equal(again.amp_times_s, m.amp_times_s)
    # correlograms of the whole train; the CCG against the source unit's own spikes
    assert np.array_equal(m.acg, correlogram(t1, None, FS, UM.CCG_WINDOW_MS, UM.CCG_BIN_MS)[0])
    assert np.array_equal(m.ccg, correlogram(t1, truth.source_trains[7], FS, UM.CCG_WINDOW_MS, UM.CCG_BIN_MS)[0])
    assert m.ccg.sum() >= 400  # every injected spike is within 1 ms of its source spike
    # a database template has no source unit in the recording: no CCG
    assert UM.measure_unit(truth, 2, traces, 20.0, None).ccg is None


def test_trace_panel_marks_only_events_whose_templates_reach_its_contacts():
    truth, traces = make_truth()
    both = int(truth.times_of(1)[2])  # unit 2 fires at the same sample, 1.7 mm away
    assert both in truth.times_of(2).tolist()
    panel = trace_panel(truth, traces, 1, both, {1: "r", 2: "b"})
    t1 = truth.times_of(1)
    near = [(int(s), 1) for s in t1[(t1 >= both - 120) & (t1 < both + 120)]]  # +-4 ms at 30 kHz
    assert (both, 1) in near and [(s, u) for s, u, _ in panel["events"]] == near
    assert 20 not in panel["channels"] and 21 not in panel["channels"]
    # the injected overlay is exactly the hybrid here (no background)
    assert np.allclose(panel["injected"], panel["data"], atol=1e-3)


def test_trace_axes_have_no_offset_notation():
    truth, traces = make_truth()
    t = int(truth.times_of(1)[-1])  # ~20 s: absolute ms ticks would carry a "+1.99e4" offset
    fig = F.traces_figure([trace_panel(truth, traces, 1, t, {1: "r", 2: "b"})], FS)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    assert ax.xaxis.get_offset_text().get_text() == ""
    lo, hi = ax.get_xlim()
    assert lo < 0 < hi < 10  # ms from the event


def test_database_templates_are_labelled_so_and_drawn_alone():
    truth, traces = make_truth()
    assert origin(truth, 1) == ("source unit 7", True)
    assert origin(truth, 2) == ("database template 3", False)
    page = Page("t")
    unit_sections(page, truth, traces, [1, 2], {1: "r", 2: "b"}, 20.0)
    html = "\n".join(page.parts)
    assert "injected unit 2 (database template 3: no source unit in this recording)" in html.replace(
        "Template of injected unit 2 (", "injected unit 2 (")
    assert "source unit 3" not in html and "source unit 7" in html
    assert page.figure_ids == ["fig-template-1", "fig-unit-1", "fig-template-2", "fig-unit-2"]
    fig = F.template_figure(("u2", None, "injected unit 2"), truth.templates[2], truth.channel_positions,
                            truth.shifts_um[2], None, None, "b")
    assert len(fig.axes) == 1


def test_long_templates_stay_inside_their_contact_column():
    pos = np.c_[np.tile([0.0, 32.0, 16.0, 48.0], 4), np.repeat(np.arange(4) * 20.0, 4)]
    assert F.um_per_sample(pos, 90) == pytest.approx(0.15)  # 3 ms at 30 kHz: the usual scale
    ups = F.um_per_sample(pos, 240)  # 8 ms (template database): 16-um columns
    assert 240 * ups <= 0.85 * 16 + 1e-9 and ups < 0.15


def test_drift_section_only_for_moving_units():
    truth, traces = make_truth()
    page = Page("t")
    drift_section(page, truth, traces, [1, 2], {1: "r", 2: "b"})
    assert page.figure_ids == []  # static run: no drift figure
    moving = truth.event_positions.copy()
    on1 = truth.units == 1
    moving[on1, 1] += np.linspace(0, 30, on1.sum())  # unit 1 drifts 30 um over the run
    truth.event_positions = moving
    drift_section(page, truth, traces, [1, 2], {1: "r", 2: "b"})
    assert page.figure_ids == ["fig-drift"]
    assert "synthetic motion only" in "\n".join(page.parts)

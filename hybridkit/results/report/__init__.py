"""``hybridkit report``: one self-contained HTML page about the injected units (and a score).

The page shows what phy and SpikeInterface would show a person about the injected units: the
probe with the source and injected places; a unit table; per unit its template on the probe layout
beside its source unit, autocorrelogram, ISI histogram, cross-correlogram with its source unit,
amplitudes measured on the hybrid recording and individual waveforms (:mod:`.sections_units`);
drift; the hybrid traces around injected events; rasters and rates, gains and clipped samples;
with a score, the score table, matched waveforms, where missed spikes went, the agreement matrix
and accuracy against SNR (:mod:`.sections_score`). Long runs are subsampled with a fixed seed and
the page says so. Figures are PNG images embedded as base64 data URLs: the file opens offline,
alone. matplotlib is imported only by this package's figure modules.
"""
from __future__ import annotations

import logging
from pathlib import Path

from hybridkit.results.report import figures as F
from hybridkit.results.report.html import Page
from hybridkit.results.report.sections_score import score_section
from hybridkit.results.report.sections_units import (
    drift_section,
    origin,
    trace_section,
    unit_sections,
)
from hybridkit.results.report.unit_measures import subsample
from hybridkit.results.traces import open_traces
from hybridkit.results.truth import Truth, load_truth

log = logging.getLogger(__name__)

#: events drawn in the raster and the gain scatter (all units together); rates use every event
MAX_RASTER_EVENTS = 20000


def build_report(output: str | Path | Truth, score: str | Path | dict | None = None) -> str:
    """The report's HTML text for the output at ``output`` (and a score.json, path or dict)."""
    from matplotlib import rc_context

    # no "+1.544e4" offset on any axis: a reader must see each tick's value as it is
    with rc_context({"axes.formatter.useoffset": False}):
        return _build(output, score)


def _build(output, score) -> str:
    from hybridkit.results.scoring import load_score

    truth = output if isinstance(output, Truth) else load_truth(output)
    score_doc = load_score(score) if isinstance(score, (str, Path)) else score
    traces = open_traces(truth)
    units = truth.unit_ids.tolist()
    cols = dict(zip(units, F.colors(len(units))))
    labels = {u: f"{u} ({origin(truth, u)[0].replace('source unit', 'src')})" for u in units}
    fs = truth.sampling_rate
    n_samples = truth.n_samples or (traces.n_samples if traces is not None else
                                    int(truth.times.max(initial=0)) + 1)
    duration = n_samples / fs

    page = Page(f"hybridkit report: {truth.session or truth.path.name}")
    page.intro(truth, traces is not None, duration)
    shown = subsample(truth.times.size, MAX_RASTER_EVENTS)
    if shown.size < truth.times.size:
        page.note(f"Long run: the raster and the gain scatter draw {shown.size} of "
                  f"{truth.times.size} events, drawn at random with a fixed seed (the same page for "
                  "the same output); rates, correlograms and tables count every event.")

    pos = truth.channel_positions
    if pos is not None:
        inj = {u: truth.templates[u].position for u in units if u in truth.templates}
        src = {u: inj[u] - truth.shifts_um[u] for u in inj
               if u in truth.shifts_um and origin(truth, u)[1]}
        page.heading("Probe", "Contacts (grey), each injected unit at its injected place (filled) "
                     "and its source unit's place (open), arrows from source to injected place.")
        page.figure("fig-probe", F.probe_figure(pos, list(inj), inj, src, labels),
                    "The probe with source and injected unit positions.")
    else:
        page.note("This output has no probe geometry: probe and template figures are left out.")
    unit_sections(page, truth, traces, units, cols, duration)
    drift_section(page, truth, traces, units, cols)
    if traces is not None and pos is not None:
        trace_section(page, truth, traces, units, cols)
    else:
        page.note("The hybrid recording could not be opened: trace figures and measured "
                  "amplitudes are left out.")

    page.heading("Spike trains", "Raster and firing rate of each injected unit.")
    times_s = {u: truth.times_of(u) / fs for u in units}
    sub_units, sub_times = truth.units[shown], truth.times[shown] / fs
    shown_s = {u: sub_times[sub_units == u] for u in units}
    page.figure("fig-raster", F.raster_figure(times_s, units, duration, labels, shown_s),
                "Raster and firing rate of each injected unit.")
    page.heading("Amplitudes and clipping", "The amplitude gain of every injected event, and the "
                 "samples that saturated at the recording dtype's limits.")
    if truth.gains is not None:
        sub_gains = truth.gains[shown]
        gains = {u: truth.gains[truth.units == u] for u in units}
        page.figure("fig-gains", F.gains_figure(shown_s, {u: sub_gains[sub_units == u] for u in units},
                                                units, gains), "Amplitude gain per event.")
    else:
        page.note("This output does not record per-event gains.")
    if truth.clipped:
        page.figure("fig-clipped", F.clipped_figure(truth.clipped), "Clipped samples per channel.")
    elif truth.clipped is None:
        page.note("This output does not record clipped samples.")
    else:
        page.note("No sample clipped: every injected sample fit the recording's dtype.")
    if score_doc is not None:
        score_section(page, truth, traces, score_doc)
    return page.render()


def write_report(output: str | Path, score: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Write the report; ``out`` defaults to ``<output folder>/report.html``. Returns its path.

    ``out`` is checked first: never an input (the output's files, its source, the score), and
    written whole or not at all (a temporary file renamed over it)."""
    from hybridkit.formats.atomic_files import AtomicFiles
    from hybridkit.run.output_guard import check_output_file, output_inputs

    truth = load_truth(output)
    out_path = truth.folder / "report.html" if out is None else Path(out)
    inputs = output_inputs(Path(output)) if truth.remote is None else []
    if score is not None:
        inputs.append(("the score", Path(score).absolute()))
    check_output_file("report --out", out_path, inputs)  # before any work
    html = build_report(truth, score)
    with AtomicFiles() as pending:
        pending.temp(out_path).write_text(html, encoding="utf-8")
    return out_path

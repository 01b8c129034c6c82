"""``hybridkit report``: one self-contained HTML page about the injected units (and a score).

The page shows what phy would show a person about the injected units: the probe with the source
and injected places, each injected template on the probe layout beside its source unit, the
hybrid traces around injected events, rasters and firing rates, amplitude gains and clipped
samples; with a score, the accuracy table, the agreement matrix and accuracy against SNR.
Figures are PNG images embedded as base64 data URLs: the file opens offline, alone.
matplotlib is imported only here (and in :mod:`.figures`).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hybridkit.errors import OutputError
from hybridkit.results.truth import Truth, load_truth
from hybridkit.results.traces import Traces, open_traces
from hybridkit.results.report import figures as F
from hybridkit.results.report.html import Page

log = logging.getLogger(__name__)

#: the report draws templates of at most this many units (the others are listed)
MAX_TEMPLATE_UNITS = 40
#: trace panels around injected events
N_TRACE_EVENTS = 4
#: half-width of a trace panel, ms
TRACE_HALF_MS = 4.0
#: channels drawn per trace panel (nearest the event's peak contact)
TRACE_CHANNELS = 12


def _source_sorting(truth: Truth):
    """The source sorting named in config.resolved.json, or None."""
    from hybridkit.config.sections import load_sorting
    from hybridkit.results.truth import read_json

    section = read_json(truth.folder / "config.resolved.json").get("sorting") or {}
    if not section.get("path"):
        return None
    try:
        return load_sorting(section["path"], section.get("type"))[1]
    except Exception as exc:  # the report still works without it
        log.info("source sorting %s not readable (%s); source panels show the template only",
                 section.get("path"), exc)
        return None


def _source_channels(tpl, positions: np.ndarray, shift: np.ndarray) -> np.ndarray | None:
    """The contacts at the template's channel positions minus ``shift`` (None if one is missing)."""
    ok = np.all(np.isfinite(positions), axis=1)
    out = []
    for c in tpl.channels.tolist():
        d = np.linalg.norm(np.where(ok[:, None], positions, np.inf) - (positions[c] - shift), axis=1)
        k = int(np.argmin(d))
        if d[k] > 1.0:
            return None
        out.append(k)
    return np.asarray(out, np.int64)


def _template_section(page: Page, truth: Truth, traces: Traces | None, units: list[int], cols: dict) -> None:
    from hybridkit.results.scoring import mean_waveform

    pos = truth.channel_positions
    source = _source_sorting(truth) if traces is not None else None
    page.heading("Injected templates beside their source units",
                 "Each injected unit's template (black) on the probe layout at its injected place "
                 "(right) and at its source unit's place (left). Coloured: the mean hybrid waveform "
                 "at the injected events; grey: the mean of the source unit's own spikes.")
    drawn = [u for u in units if u in truth.templates][:MAX_TEMPLATE_UNITS]
    for u in drawn:
        tpl = truth.templates[u]
        shift = truth.shifts_um.get(u)
        obs_inj = obs_src = None
        before, after = tpl.peak_index, tpl.n_times - tpl.peak_index
        if traces is not None:
            obs_inj, n = mean_waveform(traces, truth.times_of(u), tpl.channels, before, after)
            obs_inj = obs_inj if n else None
            src = truth.source_units.get(u)
            if source is not None and shift is not None and src is not None:
                chans = _source_channels(tpl, pos, shift)
                if chans is not None and np.any(source.spike_units == src):
                    obs_src, n = mean_waveform(traces, source.times_of(src), chans, before, after)
                    obs_src = obs_src if n else None
        src = truth.source_units.get(u, "?")
        titles = (f"injected unit {u} (from source unit {src})", f"source unit {src}",
                  f"injected unit {u}")
        page.figure(f"fig-template-{u}", F.template_figure(titles, tpl, pos, shift, obs_inj, obs_src, cols[u]),
                    f"Template of injected unit {u} and its source unit {src}.")
    rest = [u for u in units if u not in drawn]
    if rest:
        page.note(f"Templates not drawn (no template in this output, or more than "
                  f"{MAX_TEMPLATE_UNITS} units): {', '.join(map(str, rest))}.")


def _trace_section(page: Page, truth: Truth, traces: Traces, units: list[int], cols: dict) -> None:
    fs = truth.sampling_rate
    half = int(round(TRACE_HALF_MS * fs / 1000))
    pos = truth.channel_positions
    candidates = [u for u in units if u in truth.templates]
    panels = []
    for u in candidates[:N_TRACE_EVENTS]:
        t_u = truth.times_of(u)
        t_u = t_u[(t_u - half >= 0) & (t_u + half <= traces.n_samples)]
        if t_u.size == 0:
            continue
        t = int(t_u[t_u.size // 2])
        tpl = truth.templates[u]
        peak = pos[tpl.peak_channel]
        ok = np.flatnonzero(np.all(np.isfinite(pos), axis=1))
        chans = ok[np.argsort(np.linalg.norm(pos[ok] - peak, axis=1), kind="stable")[:TRACE_CHANNELS]]
        chans = chans[np.argsort(pos[chans, 1], kind="stable")]
        start, stop = t - half, t + half
        data = traces.read_uV(start, stop, chans)
        injected = np.zeros_like(data)
        events = []
        window = (truth.times >= start - 200) & (truth.times < stop + 200)
        for s, v, g in zip(truth.times[window], truth.units[window],
                           truth.gains[window] if truth.gains is not None else np.ones(window.sum())):
            other = truth.templates.get(int(v))
            if other is None:
                continue
            if start <= s < stop:
                events.append((int(s), int(v), cols.get(int(v), "k")))
            a = int(s) - other.peak_index
            for k, c in enumerate(chans.tolist()):
                hit = np.flatnonzero(other.channels == c)
                if hit.size == 0:
                    continue
                lo, hi = max(a, start), min(a + other.n_times, stop)
                if lo < hi:
                    injected[lo - start:hi - start, k] += float(g) * other.waveform[lo - a:hi - a, hit[0]]
        panels.append({"data": data, "injected": injected, "ys": pos[chans, 1], "t0": start,
                       "channels": chans.tolist(),
                       "events": events, "color": cols[u],
                       "title": f"unit {u}, event at {t / fs:.4f} s"})
    page.heading("Hybrid traces around injected events",
                 "The hybrid recording (grey) on the contacts nearest each event's peak, with the "
                 "injected, scaled templates overlaid in colour; dashed lines mark injected events.")
    if panels:
        page.figure("fig-traces", F.traces_figure(panels, fs), "Hybrid traces around injected events.")
    else:
        page.note("No injected event has a full window inside the recording.")


def _score_section(page: Page, truth: Truth, score: dict) -> None:
    from hybridkit.engine.matching import Comparison, ordered_agreement

    rows = score["units"]
    s = score["summary"]
    st = score["settings"]
    page.heading("Score", f"Sorting {score['sorting']['path']} ({score['sorting']['format']}), "
                 f"tolerance {st['tolerance_ms']} ms ({st['tolerance_samples']} samples), "
                 f"match score {st['match_score']}. {s['n_matched']}/{s['n_gt_units']} ground-truth "
                 f"units matched, {s['n_well_detected']} well detected; sorted units: "
                 f"{s['n_redundant']} redundant, {s['n_overmerged']} overmerged, "
                 f"{s['n_false_positive']} false positive of {s['n_sorted_units']}.")
    cols = ["gt_unit", "source_unit", "matched_unit", "n_gt_spikes", "n_sorted_spikes", "accuracy",
            "recall", "precision", "false_discovery_rate", "template_correlation",
            "template_frobenius_uV", "snr"]
    page.table("table-accuracy", cols, rows)
    page.figure("fig-accuracy", F.accuracy_figure(rows), "Accuracy, recall and precision per ground-truth unit.")
    agr = score["agreement"]
    matrix = np.asarray(agr["matrix"], float).reshape(len(agr["gt_units"]), len(agr["sorted_units"]))
    if matrix.size:
        stub = Comparison.__new__(Comparison)
        stub.agreement = matrix
        r, c = ordered_agreement(stub)
        keep = c[matrix[:, c].max(axis=0) > 0][: max(len(r) + 20, 30)] if matrix.shape[1] else c
        if keep.size == 0:
            keep = c[: max(len(r), 1)]
        fig = F.agreement_figure(matrix[np.ix_(r, keep)], [agr["gt_units"][i] for i in r],
                                 [agr["sorted_units"][j] for j in keep])
        note = "" if keep.size == matrix.shape[1] else \
            f" Only the {keep.size} sorted units with the highest agreement are shown (of {matrix.shape[1]})."
        page.figure("fig-agreement", fig, "Agreement matrix, ordered so matches lie on the diagonal." + note)
    else:
        page.note("The agreement matrix is empty (no ground-truth or no sorted units).")
    page.figure("fig-snr", F.snr_figure(rows), "Accuracy against SNR, one point per ground-truth unit.")


def build_report(output: str | Path | Truth, score: str | Path | dict | None = None) -> str:
    """The report's HTML text for the output at ``output`` (and a score.json, path or dict)."""
    from hybridkit.results.scoring import load_score

    truth = output if isinstance(output, Truth) else load_truth(output)
    score_doc = load_score(score) if isinstance(score, (str, Path)) else score
    traces = open_traces(truth)
    units = truth.unit_ids.tolist()
    cols = dict(zip(units, F.colors(len(units))))
    labels = {u: f"{u} (src {truth.source_units.get(u, '?')})" for u in units}
    fs = truth.sampling_rate
    n_samples = truth.n_samples or (traces.n_samples if traces is not None else
                                    int(truth.times.max(initial=0)) + 1)
    duration = n_samples / fs

    page = Page(f"hybridkit report: {truth.session or truth.path.name}")
    page.intro(truth, traces is not None, duration)

    pos = truth.channel_positions
    if pos is not None:
        inj = {u: truth.templates[u].position for u in units if u in truth.templates}
        src = {u: inj[u] - truth.shifts_um[u] for u in inj if u in truth.shifts_um}
        page.heading("Probe", "Contacts (grey), each injected unit at its injected place (filled) "
                     "and its source unit's place (open), arrows from source to injected place.")
        page.figure("fig-probe", F.probe_figure(pos, list(inj), inj, src, labels),
                    "The probe with source and injected unit positions.")
        _template_section(page, truth, traces, units, cols)
    else:
        page.note("This output has no probe geometry: probe and template figures are left out.")
    if traces is not None and pos is not None:
        _trace_section(page, truth, traces, units, cols)
    else:
        page.note("The hybrid recording could not be opened: trace figures are left out.")

    page.heading("Spike trains", "Raster and firing rate of each injected unit.")
    times_s = {u: truth.times_of(u) / fs for u in units}
    page.figure("fig-raster", F.raster_figure(times_s, units, duration, labels),
                "Raster and firing rate of each injected unit.")
    page.heading("Amplitudes and clipping", "The amplitude gain of every injected event, and the "
                 "samples that saturated at the recording dtype's limits.")
    if truth.gains is not None:
        gains = {u: truth.gains[truth.units == u] for u in units}
        page.figure("fig-gains", F.gains_figure(times_s, gains, units), "Amplitude gain per event.")
    else:
        page.note("This output does not record per-event gains.")
    page.figure("fig-clipped", F.clipped_figure(truth.clipped, pos), "Clipped samples per channel.")
    if score_doc is not None:
        _score_section(page, truth, score_doc)
    return page.render()


def write_report(output: str | Path, score: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Write the report; ``out`` defaults to ``<output folder>/report.html``. Returns its path."""
    truth = load_truth(output)
    html = build_report(truth, score)
    out_path = truth.folder / "report.html" if out is None else Path(out)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write the report {out_path} ({exc.strerror})") from None
    return out_path

"""Report sections about the injected units: the unit table, each unit's template and activity,
drift, and the traces around events."""
from __future__ import annotations

import logging

import numpy as np

from hybridkit.results.report import figures as F
from hybridkit.results.report import figures_units as FU
from hybridkit.results.report import unit_measures as UM
from hybridkit.results.report.html import Page
from hybridkit.results.report.unit_measures import (
    CCG_BIN_MS,
    CCG_WINDOW_MS,
    UnitMeasures,
    clipped_on_channels,
    measure_unit,
    subsample,
)
from hybridkit.results.traces import Traces
from hybridkit.results.truth import Truth

log = logging.getLogger(__name__)

#: the report draws templates and activity of at most this many units (the others are listed)
MAX_TEMPLATE_UNITS = 64
#: trace panels around injected events
N_TRACE_EVENTS = 4
#: half-width of a trace panel, ms
TRACE_HALF_MS = 4.0
#: channels drawn per trace panel (nearest the event's peak contact)
TRACE_CHANNELS = 12
#: events drawn per unit in the drift figure
MAX_DRIFT_EVENTS = 2000


def source_sorting(truth: Truth):
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


def origin(truth: Truth, unit: int) -> tuple[str, bool]:
    """How to name where ``unit``'s template came from, and whether that is a source unit here."""
    kind = truth.template_sources.get(unit, "local")
    src = truth.source_units.get(unit, "?")
    if kind == "local":
        return f"source unit {src}", True
    return f"{kind.replace('template_', '')} template {src}", False


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


def unit_table(page: Page, truth: Truth, measures: dict[int, UnitMeasures], snr: dict) -> None:
    """One row per injected unit: where, how big, how often, how clipped."""
    rows = []
    for u in truth.unit_ids.tolist():
        tpl = truth.templates.get(u)
        m = measures.get(u)
        g = truth.gains[truth.units == u] if truth.gains is not None else None
        mean_gain = float(g.mean()) if g is not None and g.size else 1.0
        rows.append({
            "unit": u, "template": origin(truth, u)[0],
            "peak channel": tpl.peak_channel if tpl is not None else None,
            "x, y (um)": f"{tpl.position[0]:.0f}, {tpl.position[1]:.0f}" if tpl is not None else None,
            "amplitude (uV)": tpl.peak_amplitude_uV * mean_gain if tpl is not None else None,
            "measured (uV)": float(np.median(m.amp_uV)) if m is not None and m.amp_uV is not None else None,
            "SNR": snr.get(u), "channels": tpl.channels.size if tpl is not None else None,
            "rate (Hz)": m.rate_hz if m is not None else None,
            "events": int((truth.units == u).sum()), "clipped": clipped_on_channels(truth, u),
        })
    page.table("table-units", list(rows[0]) if rows else ["unit"], rows,
               titles={"amplitude (uV)": "template peak amplitude x the unit's mean gain",
                       "measured (uV)": "median amplitude measured on the hybrid recording's peak channel",
                       "SNR": "amplitude / the run's noise std of the source on the peak channel",
                       "clipped": "clipped samples on the unit's template channels"})


def unit_sections(page: Page, truth: Truth, traces: Traces | None, units: list[int], cols: dict,
                  duration_s: float) -> None:
    """The unit table, then per unit its template figure and its activity figure."""
    from hybridkit.results.scoring import mean_waveform

    pos = truth.channel_positions
    source = source_sorting(truth) if traces is not None or truth.source_trains is None else None
    drawn = units[:MAX_TEMPLATE_UNITS]
    measures = {u: measure_unit(truth, u, traces, duration_s, source) for u in drawn}
    snr = {u: truth.snr[u] for u in units if u in truth.snr}  # the run's, as stored
    page.heading("Injected units", "One row per injected unit. Amplitude: the template's peak x the "
                 "unit's mean gain; measured: the median amplitude on the hybrid recording's peak "
                 "channel; SNR: the run's (template peak x mean gain over the run's noise estimate "
                 "of the source on that channel, as in the NWB units table); clipped: saturated "
                 "samples on the unit's channels.")
    unit_table(page, truth, measures, snr)
    page.heading("Each injected unit", "Its template on the probe layout at its injected place (and "
                 "at its source unit's place), then what phy shows of a unit: autocorrelogram, "
                 f"ISI histogram and the cross-correlogram with its source unit's own spikes "
                 f"({CCG_BIN_MS:g}-ms bins over {CCG_WINDOW_MS:g} ms, all spikes), the amplitude of "
                 "each event measured on the hybrid recording beside the planned one, and individual "
                 "hybrid waveforms over the template on the peak channel.")
    if any(m.n_measured < m.n_events for m in measures.values()):
        page.note(f"Amplitudes and waveforms use at most {UM.MAX_AMPLITUDE_EVENTS} events per unit, "
                  "drawn at random with a fixed seed; correlograms, ISIs and rates use every event.")
    for u in drawn:
        name, is_source = origin(truth, u)
        if pos is not None and u in truth.templates:
            tpl = truth.templates[u]
            shift = truth.shifts_um.get(u)
            obs_inj = obs_src = None
            before, after = tpl.peak_index, tpl.n_times - tpl.peak_index
            if traces is not None:
                obs_inj, n = mean_waveform(traces, truth.times_of(u), tpl.channels, before, after)
                obs_inj = obs_inj if n else None
                src = truth.source_units.get(u)
                if is_source and source is not None and shift is not None and src is not None:
                    chans = _source_channels(tpl, pos, shift)
                    if chans is not None and np.any(source.spike_units == src):
                        obs_src, n = mean_waveform(traces, source.times_of(src), chans, before, after)
                        obs_src = obs_src if n else None
            titles = (f"injected unit {u} (from {name})", name if is_source else None,
                      f"injected unit {u}")
            page.figure(f"fig-template-{u}",
                        F.template_figure(titles, tpl, pos, shift, obs_inj, obs_src, cols[u]),
                        f"Template of injected unit {u}" + (" and its source unit." if is_source else
                                                            f" ({name}: no source unit in this recording)."))
        page.figure(f"fig-unit-{u}", FU.unit_activity_figure(measures[u], cols[u], name if is_source else None),
                    f"Injected unit {u}: autocorrelogram, ISI histogram, cross-correlogram with "
                    f"{name if is_source else 'its source (none)'}, amplitude over time, waveforms.")
    rest = [u for u in units if u not in drawn]
    if rest:
        page.note(f"Units not drawn (more than {MAX_TEMPLATE_UNITS} units): {', '.join(map(str, rest))}.")
    without = [u for u in drawn if u not in truth.templates or pos is None]
    if without:
        page.note(f"No template figure (no template or probe geometry in this output): "
                  f"{', '.join(map(str, without))}.")


def _motion_at(truth: Truth, units: list[int], traces: Traces | None) -> tuple[dict, str]:
    """unit -> (times_s, y_um) of the run's motion estimate at the unit's reference depth."""
    from hybridkit.results.truth import read_json

    section = read_json(truth.folder / "config.resolved.json").get("motion") or {}
    if not section.get("source"):
        return {}, "synthetic motion only: the injected positions are the motion"
    try:
        from hybridkit.run.motion import MotionConfig, read_motion

        cfg = MotionConfig.model_validate(section, context={"base_dir": truth.folder})
        recording = getattr(traces, "recording", None)
        motion = read_motion(cfg.source, recording)
    except Exception as exc:  # a report without the estimate is still useful
        log.info("motion estimate not readable (%s)", exc)
        return {}, f"the motion estimate could not be read ({exc})"
    out = {}
    for u in units:
        if u not in truth.templates:
            continue
        y0 = float(truth.templates[u].position[1])
        ref = 0.0
        if cfg.reference != "zero":
            stat = np.median if cfg.reference == "median" else np.mean
            ref = float(stat(motion.displacement_at(motion.times_s, y0)))
        out[u] = (motion.times_s, y0 + motion.displacement_at(motion.times_s, y0) - ref)
    return out, f"lines: the motion estimate ({motion.name}) at each unit's depth"


def drift_section(page: Page, truth: Truth, traces: Traces | None, units: list[int], cols: dict) -> None:
    """Each unit's injected depth over time beside the motion estimate (drift runs only)."""
    if truth.event_positions is None:
        return
    y = truth.event_positions[:, 1]
    moved = [u for u in units if np.unique(y[truth.units == u]).size > 1]
    if not moved:
        return
    fs = truth.sampling_rate
    times_s, ys = {}, {}
    for u in moved:
        idx = np.flatnonzero(truth.units == u)
        idx = idx[subsample(idx.size, MAX_DRIFT_EVENTS, salt=u)]
        times_s[u], ys[u] = truth.times[idx] / fs, truth.event_positions[idx, 1]
    motion, what = _motion_at(truth, moved, traces)
    page.heading("Drift", "Each moving unit's injected depth at its events (dots) over time; "
                 f"{what}. Plus or minus a contact pitch is the template grid's rounding.")
    page.figure("fig-drift", FU.drift_figure(moved, [cols[u] for u in moved], times_s, ys, motion),
                f"Injected depth over time (at most {MAX_DRIFT_EVENTS} events per unit, fixed seed).")


def trace_panel(truth: Truth, traces: Traces, unit: int, t: int, cols: dict) -> dict:
    """The traces_figure panel of ``unit``'s event at sample ``t``: the hybrid recording on the
    TRACE_CHANNELS contacts nearest the unit's peak, every injected template's part on them, and
    the events whose templates reach them."""
    fs = truth.sampling_rate
    half = int(round(TRACE_HALF_MS * fs / 1000))
    pos = truth.channel_positions
    tpl = truth.templates[unit]
    ok = np.flatnonzero(np.all(np.isfinite(pos), axis=1))
    chans = ok[np.argsort(np.linalg.norm(pos[ok] - pos[tpl.peak_channel], axis=1), kind="stable")[:TRACE_CHANNELS]]
    chans = chans[np.argsort(pos[chans, 1], kind="stable")]
    start, stop = t - half, t + half
    data = traces.read_uV(start, stop, chans)
    injected = np.zeros_like(data)
    events = []
    longest = max(x.n_times for x in truth.templates.values())
    window = np.flatnonzero((truth.times >= start - longest) & (truth.times < stop + longest))
    for i in window.tolist():
        s, v = int(truth.times[i]), int(truth.units[i])
        g = float(truth.gains[i]) if truth.gains is not None else 1.0
        other = truth.templates.get(v)
        if other is None:
            continue
        a = s - other.peak_index
        touched = False
        for k, c in enumerate(chans.tolist()):
            hit = np.flatnonzero(other.channels == c)
            if hit.size == 0:
                continue
            lo, hi = max(a, start), min(a + other.n_times, stop)
            if lo < hi:
                injected[lo - start:hi - start, k] += g * other.waveform[lo - a:hi - a, hit[0]]
                touched = True
        # mark only events whose template reaches the drawn contacts: a unit 1.7 mm away
        # firing in the same milliseconds is not in this panel
        if touched and start <= s < stop:
            events.append((s, v, cols.get(v, "k")))
    return {"data": data, "injected": injected, "ys": pos[chans, 1], "t0": start, "centre": t,
            "channels": chans.tolist(), "events": events, "color": cols[unit],
            "title": f"unit {unit}, event at {t / fs:.4f} s"}


def trace_section(page: Page, truth: Truth, traces: Traces, units: list[int], cols: dict) -> None:
    """Hybrid traces around one event of each of the first units, injected waveforms overlaid."""
    fs = truth.sampling_rate
    half = int(round(TRACE_HALF_MS * fs / 1000))
    panels = []
    for u in [u for u in units if u in truth.templates][:N_TRACE_EVENTS]:
        t_u = truth.times_of(u)
        t_u = t_u[(t_u - half >= 0) & (t_u + half <= traces.n_samples)]
        if t_u.size:
            panels.append(trace_panel(truth, traces, u, int(t_u[t_u.size // 2]), cols))
    page.heading("Hybrid traces around injected events",
                 "The hybrid recording (grey) on the contacts nearest each event's peak, with the "
                 "injected, scaled templates overlaid in colour; dashed lines mark the injected "
                 "events whose templates reach these contacts.")
    if panels:
        page.figure("fig-traces", F.traces_figure(panels, fs), "Hybrid traces around injected events.")
    else:
        page.note("No injected event has a full window inside the recording.")

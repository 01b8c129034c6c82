"""Per-unit figures of the report: what phy's views show of one unit, and drift.

Each function takes the numbers of :mod:`.unit_measures` (or plain arrays) and returns a
matplotlib Figure; nothing here reads files.
"""
from __future__ import annotations

import numpy as np

from hybridkit.results.report.figures import new_figure


def _bars(ax, counts: np.ndarray, edges_ms: np.ndarray, color) -> None:
    # one filled step artist, not one Rectangle per bin: a hundred figures draw several times faster
    ax.stairs(counts, edges_ms, fill=True, color=color)
    ax.set_xlim(edges_ms[0], edges_ms[-1])


def unit_activity_figure(m, color, source_label: str | None):
    """One row for unit ``m`` (a UnitMeasures): ACG, ISI, CCG with its source, amplitude, waveforms.

    ``source_label`` names the source train of the CCG ("source unit 6"), None when there is none.
    """
    fig = new_figure(11.0, 2.3, constrained=False)
    ax_acg, ax_isi, ax_ccg, ax_amp, ax_wf = fig.subplots(1, 5, width_ratios=[1, 1, 1, 1.6, 1])
    fig.subplots_adjust(left=0.045, right=0.99, bottom=0.19, top=0.82, wspace=0.32)
    _bars(ax_acg, m.acg, m.ccg_edges_ms, color)
    ax_acg.set_title("autocorrelogram", fontsize=8)
    ax_acg.set_xlabel("lag (ms)", fontsize=7)
    ax_acg.set_ylabel("pairs per bin", fontsize=7)
    _bars(ax_isi, m.isi, m.isi_edges_ms, color)
    ax_isi.set_title("ISI histogram", fontsize=8)
    ax_isi.set_xlabel("interval (ms)", fontsize=7)
    if m.ccg is not None:
        _bars(ax_ccg, m.ccg, m.ccg_edges_ms, "0.35")
        ax_ccg.set_title(f"CCG with {source_label}", fontsize=8)
        ax_ccg.set_xlabel("lag of source spike (ms)", fontsize=7)
    else:
        ax_ccg.set_axis_off()
        ax_ccg.text(0.5, 0.5, "no source unit train\n(database or synthetic template,\nor sorting unreadable)",
                    ha="center", va="center", fontsize=7, transform=ax_ccg.transAxes)
    if m.amp_uV is not None:
        ax_amp.scatter(m.amp_times_s, m.planned_uV, s=3, color="0.6", label="planned (gain x template)")
        ax_amp.scatter(m.amp_times_s, m.amp_uV, s=3, color=color, label="measured on hybrid")
        ax_amp.set_xlabel("time (s)", fontsize=7)
        ax_amp.set_ylabel("amplitude (uV)", fontsize=7)
        ax_amp.set_ylim(bottom=min(0.0, float(np.min(m.amp_uV))))
        ax_amp.legend(fontsize=6, loc="lower right", markerscale=3)
        sub = "" if m.n_measured == m.n_events else f", {m.n_measured} of {m.n_events} events"
        ax_amp.set_title(f"amplitude on peak channel{sub}", fontsize=8)
        for w in m.waveforms:
            ax_wf.plot(m.waveform_t_ms, w, color=color, lw=0.5, alpha=0.5)
        ax_wf.plot(m.waveform_t_ms, m.template_uV, color="k", lw=1.2)
        ax_wf.set_title(f"{len(m.waveforms)} waveforms; template", fontsize=8)
        ax_wf.set_xlabel("time from peak (ms)", fontsize=7)
        ax_wf.set_ylabel("uV", fontsize=7)
    else:
        for ax in (ax_amp, ax_wf):
            ax.set_axis_off()
        ax_amp.text(0.5, 0.5, "hybrid recording not readable:\nno measured amplitudes",
                    ha="center", va="center", fontsize=7, transform=ax_amp.transAxes)
    for ax in (ax_acg, ax_isi, ax_ccg, ax_amp, ax_wf):
        ax.tick_params(labelsize=6)
    fig.suptitle(f"injected unit {m.unit}: {m.n_events} events, {m.rate_hz:.2f} Hz", fontsize=9)
    return fig


def drift_figure(units: list[int], colors: list, times_s: dict, y_um: dict, motion: dict):
    """Each unit's injected depth over time (dots) and the motion estimate at its depth (line).

    ``times_s``/``y_um``: unit -> (k,) event times (s) and injected y (um); ``motion``: unit ->
    (times_s, y_um) of the motion estimate at the unit's depth (its reference y plus the
    displacement), or absent when the motion is not readable.
    """
    fig = new_figure(9.0, 3.6)
    ax = fig.add_subplot()
    for u, c in zip(units, colors):
        ax.scatter(times_s[u], y_um[u], s=3, color=c, label=str(u))
        if u in motion:
            ax.plot(*motion[u], color=c, lw=1.0, alpha=0.7)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("injected y (um)")
    if len(units) <= 12:
        ax.legend(fontsize=7, ncol=min(len(units), 6), loc="upper left", bbox_to_anchor=(1.0, 1.0),
                  title="unit", title_fontsize=7, markerscale=3)
    return fig

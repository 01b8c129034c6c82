"""Report sections of a score: the table, accuracy, matched waveforms, where missed spikes went,
agreement and SNR."""
from __future__ import annotations

import logging

import numpy as np

from hybridkit.results.report import figures_score as FS
from hybridkit.results.report.html import Page
from hybridkit.results.traces import Traces
from hybridkit.results.truth import Truth

log = logging.getLogger(__name__)

#: score table: column in score.json -> (header, hover text)
SCORE_COLUMNS = {
    "gt_unit": ("unit", "ground-truth (injected) unit"),
    "source_unit": ("source", "source unit (or template id)"),
    "matched_unit": ("matched", "sorted unit matched by the Hungarian assignment"),
    "n_gt_spikes": ("gt spikes", "injected events"),
    "n_sorted_spikes": ("sorted spikes", "spikes of the matched sorted unit"),
    "accuracy": ("accuracy", "tp / (tp + fn + fp)"),
    "recall": ("recall", "tp / (tp + fn)"),
    "precision": ("precision", "tp / (tp + fp)"),
    "false_discovery_rate": ("FDR", "false discovery rate, fp / (tp + fp)"),
    "template_correlation": ("template r", "correlation of the template with the matched unit's mean waveform"),
    "template_frobenius_uV": ("template diff (uV)", "Frobenius norm of their difference"),
    "snr": ("SNR", "the run's: template peak x mean gain / the run's noise std of the source"),
}
#: sorted units named per missed or merged unit (the rest are summed as "other")
N_FATE_PARTS = 3
#: matched-waveform panels: at most this many units, on the template's strongest channels
MAX_MATCHED_PANELS, MATCHED_CHANNELS = 24, 3


def fate_rows(truth: Truth, sorting, score: dict) -> list[dict]:
    """For each unit not well detected: the sorted units that took its spikes, largest first.

    A sorted unit coincides with a ground-truth spike when it has a spike within the score's
    tolerance. Greedily: the sorted unit that coincides with the most of the unit's spikes takes
    them, then the one that coincides with the most of the rest, and so on (the smaller id on a
    tie); so a split shows each part whole, and the parts and ``unmatched`` add up to the unit's
    spikes. Rows: gt_unit, n_gt_spikes, parts [(sorted unit, spikes)] (at most N_FATE_PARTS),
    other (spikes of further sorted units), unmatched.
    """
    well = score["settings"].get("well_detected_score", 0.8)
    delta = int(score["settings"]["tolerance_samples"])
    order = np.argsort(sorting.spike_times, kind="stable")
    st, su = sorting.spike_times[order].astype(np.int64), sorting.spike_units[order].astype(np.int64)
    rows = []
    for r in score["units"]:
        if (r.get("accuracy") or 0.0) >= well:
            continue
        t = truth.times_of(r["gt_unit"])
        lo = np.searchsorted(st, t - delta, side="left")
        n = np.searchsorted(st, t + delta, side="right") - lo
        spike = np.repeat(np.arange(t.size), n)  # (gt spike, sorted unit) of every coincidence
        unit = su[np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)]
        pairs = np.unique(np.c_[spike, unit], axis=0).reshape(-1, 2)
        taken: list[tuple[int, int]] = []
        while pairs.size:
            ids, counts = np.unique(pairs[:, 1], return_counts=True)
            k = int(np.argmax(counts))  # first of the largest: the smaller id on a tie
            mine = np.unique(pairs[pairs[:, 1] == ids[k], 0])
            taken.append((int(ids[k]), int(mine.size)))
            pairs = pairs[~np.isin(pairs[:, 0], mine)]
        n_taken = sum(m for _, m in taken)
        rows.append({"gt_unit": r["gt_unit"], "n_gt_spikes": int(t.size), "parts": taken[:N_FATE_PARTS],
                     "other": sum(m for _, m in taken[N_FATE_PARTS:]), "unmatched": int(t.size - n_taken)})
    return rows


def load_scored_sorting(score: dict):
    """The scored sorting (from score.json's path and format), or None when it is not readable."""
    from hybridkit.config.sections import load_sorting

    try:
        return load_sorting(score["sorting"]["path"], score["sorting"].get("format"))[1]
    except Exception as exc:  # the rest of the score section needs only score.json
        log.info("sorting %s not readable (%s)", score["sorting"]["path"], exc)
        return None


def _matched_panels(truth: Truth, traces: Traces, sorting, score: dict) -> list[dict]:
    from hybridkit.results.scoring import mean_waveform

    panels = []
    for r in score["units"][:MAX_MATCHED_PANELS]:
        u, sid = r["gt_unit"], r["matched_unit"]
        tpl = truth.templates.get(u)
        if tpl is None:
            continue
        strongest = np.argsort(-np.abs(tpl.waveform).max(axis=0), kind="stable")[:MATCHED_CHANNELS]
        strongest = np.sort(strongest)
        g = truth.gains[truth.units == u] if truth.gains is not None else None
        gain = float(g.mean()) if g is not None and g.size else 1.0
        observed = None
        if sid is not None:
            observed, n = mean_waveform(traces, sorting.times_of(sid), tpl.channels[strongest],
                                        tpl.peak_index, tpl.n_times - tpl.peak_index)
            observed = observed if n else None
        panels.append({"title": f"unit {u}: " + (f"sorted unit {sid}" if sid is not None else "no match"),
                       "template": tpl.waveform[:, strongest] * gain, "sorted": observed,
                       "peak_index": tpl.peak_index, "channels": tpl.channels[strongest].tolist()})
    return panels


def score_section(page: Page, truth: Truth, traces: Traces | None, score: dict) -> None:
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
    table = [{SCORE_COLUMNS[k][0]: r.get(k) for k in SCORE_COLUMNS} for r in rows]
    page.table("table-accuracy", [h for h, _ in SCORE_COLUMNS.values()], table,
               titles={h: t for h, t in SCORE_COLUMNS.values()})
    page.figure("fig-accuracy", FS.accuracy_figure(rows), "Accuracy, recall and precision per ground-truth unit.")
    sorting = load_scored_sorting(score)
    if sorting is None:
        page.note(f"The sorting {score['sorting']['path']} could not be read: no matched waveforms "
                  "and no account of where missed spikes went.")
    if sorting is not None and traces is not None:
        panels = _matched_panels(truth, traces, sorting, score)
        if panels:
            more = "" if len(rows) <= MAX_MATCHED_PANELS else f" (the first {MAX_MATCHED_PANELS} units)"
            page.figure("fig-matched", FS.matched_waveforms_figure(panels, truth.sampling_rate),
                        "Each injected template x its mean gain (black) and the mean hybrid waveform at "
                        f"the matched sorted unit's spikes (red), on the template's {MATCHED_CHANNELS} "
                        f"strongest channels{more}.")
    fates = fate_rows(truth, sorting, score) if sorting is not None else []
    if fates:
        page.figure("fig-fate", FS.spike_fate_figure(fates),
                    "Where the spikes of each unit not well detected (accuracy below "
                    f"{st.get('well_detected_score', 0.8)}: missed, split or merged) went: the sorted unit "
                    "with a spike within the tolerance of most of them took those, the next most of "
                    "the rest, and so on; grey: other sorted units, light: no sorted spike near.")
    agr = score["agreement"]
    matrix = np.asarray(agr["matrix"], float).reshape(len(agr["gt_units"]), len(agr["sorted_units"]))
    if matrix.size:
        stub = Comparison.__new__(Comparison)
        stub.agreement = matrix
        r, c = ordered_agreement(stub)
        keep = c[matrix[:, c].max(axis=0) > 0][: max(len(r) + 20, 30)] if matrix.shape[1] else c
        if keep.size == 0:
            keep = c[: max(len(r), 1)]
        fig = FS.agreement_figure(matrix[np.ix_(r, keep)], [agr["gt_units"][i] for i in r],
                                  [agr["sorted_units"][j] for j in keep])
        note = "" if keep.size == matrix.shape[1] else \
            f" Only the {keep.size} sorted units with the highest agreement are shown (of {matrix.shape[1]})."
        page.figure("fig-agreement", fig, "Agreement matrix, ordered so matches lie on the diagonal." + note)
    else:
        page.note("The agreement matrix is empty (no ground-truth or no sorted units).")
    page.figure("fig-snr", FS.snr_figure(rows), "Accuracy against SNR, one point per ground-truth unit.")

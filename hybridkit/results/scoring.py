"""``hybridkit score``: a sorter's output on the hybrid recording against the ground truth.

    truth    = truth_io.load_truth(OUTPUT)            any writer's output (legacy, phy, NWB)
    sorting  = a sorter adapter's load()              format detected, or given
    cmp      = engine.matching.compare(...)           tolerance, agreement, Hungarian, classes
    per unit: template similarity from the hybrid traces (when they can be opened); the SNR the
    run stored (hybridkit.engine.noise: one noise estimate per run, one SNR definition)
    write units.csv, sorted_units.csv, agreement.csv, score.json

The numbers follow SpikeInterface's ``compare_sorter_to_ground_truth`` (see
:mod:`hybridkit.engine.matching` and docs/scoring.md).
"""
from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hybridkit.config.sections import load_sorting
from hybridkit.engine import matching
from hybridkit.engine.snippets import windows_inside
from hybridkit.errors import OutputError, SortingError
from hybridkit.formats.atomic_files import AtomicFiles
from hybridkit.formats.csv_cells import cell
from hybridkit.model import Sorting, Template
from hybridkit.results.truth import Truth, load_truth
from hybridkit.results.traces import Traces, iter_windows, open_traces

log = logging.getLogger(__name__)

#: spikes averaged for a unit's observed waveform (evenly spread over the recording)
MAX_WAVEFORM_SPIKES = 300
#: a sorting's rate may differ from the truth's by this fraction (sorters round rates)
RATE_TOLERANCE = 0.01

UNIT_COLUMNS = [
    "gt_unit", "source_unit", "n_gt_spikes", "matched_unit", "n_sorted_spikes", "agreement",
    "tp", "fn", "fp", "accuracy", "recall", "precision", "false_discovery_rate", "best_unit",
    "template_correlation", "template_frobenius_uV", "template_lag_samples", "snr",
    "peak_channel", "x_um", "y_um", "peak_amplitude_uV",
]
SORTED_COLUMNS = [
    "sorted_unit", "n_spikes", "label", "matched_gt_unit", "agreement", "best_gt_unit",
    "best_agreement", "well_detected", "redundant", "overmerged", "false_positive", "category",
    "source_of_gt_unit",
]


@dataclass
class ScoreSettings:
    """Matching parameters (SpikeInterface's names and defaults)."""

    tolerance_ms: float = 0.4
    match_score: float = matching.MATCH_SCORE
    chance_score: float = matching.CHANCE_SCORE
    well_detected_score: float = matching.WELL_DETECTED_SCORE
    redundant_score: float = matching.REDUNDANT_SCORE
    overmerged_score: float = matching.OVERMERGED_SCORE
    #: not SpikeInterface's: sorted units found to be an injected unit's own source neuron are
    #: counted neither redundant nor false positive (category "source_unit"); see docs/scoring.md
    exclude_source_units: bool = False


@dataclass
class ScoreResult:
    truth: Truth
    sorting: Sorting
    comparison: matching.Comparison
    settings: ScoreSettings
    units: list[dict]
    sorted_units: list[dict]
    summary: dict
    files: list[Path] = field(default_factory=list)
    out_dir: Path | None = None


# -- the sorting ---------------------------------------------------------------------------------------
def _check_sorting(sorting: Sorting, truth: Truth) -> None:
    rate = sorting.sampling_rate
    if rate is not None and abs(rate - truth.sampling_rate) > RATE_TOLERANCE * truth.sampling_rate:
        raise SortingError(f"{sorting.path}: sampling rate {rate} Hz but the ground truth's is "
                           f"{truth.sampling_rate} Hz; score a sorting of the hybrid recording")
    if truth.n_samples and sorting.spike_times.size and sorting.spike_times.max() >= truth.n_samples:
        raise SortingError(f"{sorting.path}: spike time {int(sorting.spike_times.max())} is past the end "
                           f"of the hybrid recording ({truth.n_samples} samples)")


# -- signal-derived metrics ----------------------------------------------------------------------------
def mean_waveform(traces: Traces, times: np.ndarray, channels: np.ndarray, n_before: int,
                  n_after: int, max_spikes: int = MAX_WAVEFORM_SPIKES) -> tuple[np.ndarray, int]:
    """Mean (n_before + n_after, n_channels) float32 uV window around up to ``max_spikes`` times.

    The times used are evenly spread over ``times`` (deterministic); windows that leave the
    recording are skipped. Returns the mean and the number of windows averaged (0: all NaN).
    """
    times = np.asarray(times, np.int64)
    times = times[windows_inside(times, n_before, n_after, traces.n_samples)]
    if times.size > max_spikes:
        times = times[np.linspace(0, times.size - 1, max_spikes).round().astype(np.int64)]
    acc = np.zeros((n_before + n_after, len(channels)), np.float64)
    for _, window in iter_windows(traces, times, channels, n_before, n_after):
        acc += window
    if times.size == 0:
        return np.full(acc.shape, np.nan, np.float32), 0
    return (acc / times.size).astype(np.float32), int(times.size)


def template_similarity(reference: np.ndarray, observed: np.ndarray, max_lag: int) -> tuple[float, float, int]:
    """Pearson correlation, Frobenius norm of the difference (uV) and lag (samples) at the best lag.

    ``reference`` is (n_t, n_ch); ``observed`` is (n_t + 2 * max_lag, n_ch), centred. Each
    channel's median is removed from both first (a DC offset is not a shape difference).
    """
    n_t = reference.shape[0]
    ref = reference - np.median(reference, axis=0)
    best = (float("nan"), float("nan"), 0)
    for lag in range(-max_lag, max_lag + 1):
        obs = observed[max_lag + lag : max_lag + lag + n_t]
        obs = obs - np.median(obs, axis=0)
        a, b = ref.ravel() - ref.mean(), obs.ravel() - obs.mean()
        denom = math.sqrt(float(a @ a) * float(b @ b))
        r = float(a @ b) / denom if denom > 0 else float("nan")
        if not math.isnan(r) and (math.isnan(best[0]) or r > best[0]):
            best = (r, float(np.linalg.norm(obs - ref)), lag)
    return best


def _similarity(tpl: Template, gain: float, sorted_times: np.ndarray, traces: Traces,
                sorter_channels: np.ndarray | None, max_lag: int) -> tuple[float, float, int]:
    chans = tpl.channels
    keep = np.ones(chans.size, bool) if sorter_channels is None else np.isin(chans, sorter_channels)
    if not keep.any():
        return float("nan"), float("nan"), 0
    observed, n = mean_waveform(traces, sorted_times, chans[keep], tpl.peak_index + max_lag,
                                tpl.n_times - tpl.peak_index + max_lag)
    if n == 0:
        return float("nan"), float("nan"), 0
    return template_similarity(tpl.waveform[:, keep] * gain, observed, max_lag)


# -- scoring --------------------------------------------------------------------------------------------
def _num(x):
    """JSON/CSV-friendly scalar: numpy -> Python, NaN -> None."""
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    return x


def score(output: str | Path, sorting: str | Path | Sorting, sorting_type: str | None = None,
          settings: ScoreSettings | None = None, out_dir: str | Path | None = None,
          signal_metrics: bool = True, write: bool = True) -> ScoreResult:
    """Score ``sorting`` against the ground truth in ``output``; write the tables unless ``write`` is False.

    ``out_dir`` defaults to ``<output folder>/scores/<sorting name>/``. ``signal_metrics`` adds
    template similarity, read from the hybrid recording when it can be opened; the SNR is the
    one the run stored (always given when the output has it).
    """
    settings = settings or ScoreSettings()
    if settings.tolerance_ms <= 0:
        raise SortingError(f"--tolerance-ms {settings.tolerance_ms}: must be > 0 (ms)")
    truth = load_truth(output)
    srt = sorting if isinstance(sorting, Sorting) else load_sorting(sorting, sorting_type)[1]
    _check_sorting(srt, truth)
    out = None
    if write:  # checked before any work: the tables must never land on an input
        from hybridkit.run.output_guard import check_not_an_input, output_inputs

        name = srt.path.stem if srt.path is not None else "sorting"
        out = Path(out_dir) if out_dir is not None else truth.folder / "scores" / name
        inputs = output_inputs(Path(output)) if not str(output).startswith(("http", "dandi:")) else []
        if srt.path is not None:
            inputs.append(("the sorting", Path(srt.path).absolute()))
        check_not_an_input(out, inputs, "score --out")
    delta = matching.tolerance_samples(settings.tolerance_ms, truth.sampling_rate)
    cmp = matching.compare(
        truth.times, truth.units, srt.spike_times, srt.spike_units, delta,
        gt_ids=truth.unit_ids, sorted_ids=np.union1d(srt.unit_ids, np.unique(srt.spike_units)),
        match_score=settings.match_score, chance_score=settings.chance_score,
        well_detected_score=settings.well_detected_score, redundant_score=settings.redundant_score,
        overmerged_score=settings.overmerged_score)

    # a streamed NWB is read for its Units table only: the traces would have to be fetched
    traces = open_traces(truth) if signal_metrics and truth.remote is None else None
    units = _unit_rows(truth, srt, cmp, traces)
    sources = source_sorted_units(truth, srt, cmp, settings.match_score)
    sorted_units = _sorted_rows(srt, cmp, sources, settings.exclude_source_units)
    summary = _summary(cmp, units, traces is not None, sorted_units, sources)
    result = ScoreResult(truth=truth, sorting=srt, comparison=cmp, settings=settings, units=units,
                         sorted_units=sorted_units, summary=summary)
    if out is not None:
        result.out_dir = out
        result.files = write_score(result, out)
    return result


def _unit_rows(truth: Truth, srt: Sorting, cmp: matching.Comparison, traces: Traces | None) -> list[dict]:
    rows = []
    for i, u in enumerate(cmp.gt_ids.tolist()):
        j = int(cmp.match_12[i])
        tpl = truth.templates.get(u)
        gain = float(truth.gains[truth.units == u].mean()) if truth.gains is not None and cmp.n_gt_spikes[i] else 1.0
        corr = frob = float("nan")
        lag = None
        if tpl is not None and traces is not None and j >= 0:
            sid = int(cmp.sorted_ids[j])
            corr, frob, lag = _similarity(tpl, gain, srt.spike_times[srt.spike_units == sid],
                                          traces, srt.channel_map, cmp.delta)
        rows.append({
            "gt_unit": u, "source_unit": truth.source_units.get(u), "n_gt_spikes": cmp.n_gt_spikes[i],
            "matched_unit": int(cmp.sorted_ids[j]) if j >= 0 else None,
            "n_sorted_spikes": cmp.n_sorted_spikes[j] if j >= 0 else None,
            "agreement": cmp.agreement[i, j] if j >= 0 else float(cmp.agreement[i].max(initial=0.0)),
            "tp": cmp.tp[i], "fn": cmp.fn[i], "fp": cmp.fp[i], "accuracy": cmp.accuracy[i],
            "recall": cmp.recall[i], "precision": cmp.precision[i],
            "false_discovery_rate": cmp.false_discovery_rate[i],
            "best_unit": int(cmp.sorted_ids[cmp.best_12[i]]) if cmp.best_12[i] >= 0 else None,
            "template_correlation": corr, "template_frobenius_uV": frob, "template_lag_samples": lag,
            "snr": truth.snr.get(u, float("nan")),  # the run's, as stored
            "peak_channel": tpl.peak_channel if tpl is not None else None,
            "x_um": tpl.position[0] if tpl is not None else float("nan"),
            "y_um": tpl.position[1] if tpl is not None else float("nan"),
            "peak_amplitude_uV": tpl.peak_amplitude_uV if tpl is not None else float("nan"),
        })
    return [{k: _num(v) for k, v in r.items()} for r in rows]


def source_sorted_units(truth: Truth, srt: Sorting, cmp: matching.Comparison,
                        match_score: float) -> list[dict] | None:
    """Which sorted units are the injected units' own source neurons, or None when unknown.

    The source neurons still fire in the hybrid recording at their own times; with ``trains:
    source`` each injected copy fires at those times plus jitter, so a sorter's unit for the
    source neuron agrees ~0.2 with the copy (docs/scoring.md). A sorted unit is a gt unit's
    source when the Hungarian matching of the source units' own spikes (``truth.source_trains``)
    against the sorting, with the score's tolerance and ``match_score``, pairs them. One row per
    gt unit whose source has spikes: gt_unit, source_unit, sorted_unit (None when no sorted unit
    matches), agreement with the source's spikes and with the injected unit.
    """
    if truth.source_trains is None:
        return None
    srcs = [(g, truth.source_units[g]) for g in cmp.gt_ids.tolist()
            if truth.source_units.get(g) in truth.source_trains]
    if not srcs:
        return []
    ids = sorted({s for _, s in srcs})
    times = np.concatenate([truth.source_trains[s] for s in ids])
    units = np.concatenate([np.full(truth.source_trains[s].size, s, np.int64) for s in ids])
    own = matching.compare(times, units, srt.spike_times, srt.spike_units, cmp.delta,
                           gt_ids=np.array(ids), sorted_ids=cmp.sorted_ids, match_score=match_score)
    rows = []
    for g, s in srcs:
        i, gi = ids.index(s), int(np.flatnonzero(cmp.gt_ids == g)[0])
        j = int(own.match_12[i])
        rows.append({"gt_unit": g, "source_unit": s,
                     "sorted_unit": int(cmp.sorted_ids[j]) if j >= 0 else None,
                     "agreement_with_source": float(own.agreement[i, j]) if j >= 0 else None,
                     "agreement_with_gt_unit": float(cmp.agreement[gi, j]) if j >= 0 else None})
    return rows


def _sorted_rows(srt: Sorting, cmp: matching.Comparison, sources: list[dict] | None,
                 exclude_sources: bool) -> list[dict]:
    cats = cmp.category()
    source_of: dict[int, list[int]] = {}
    for r in sources or []:
        if r["sorted_unit"] is not None:
            source_of.setdefault(r["sorted_unit"], []).append(r["gt_unit"])
    rows = []
    n_gt = cmp.gt_ids.size
    for j, s in enumerate(cmp.sorted_ids.tolist()):
        i, b = int(cmp.match_21[j]), int(cmp.best_21[j])
        best_any = int(np.argmax(cmp.agreement[:, j])) if n_gt else -1
        redundant, false_pos, cat = cmp.redundant[j], cmp.false_positive[j], cats[j]
        if exclude_sources and s in source_of and cat in ("redundant", "false_positive"):
            redundant, false_pos, cat = False, False, "source_unit"
        rows.append({
            "sorted_unit": s, "n_spikes": cmp.n_sorted_spikes[j], "label": srt.labels.get(s, ""),
            "matched_gt_unit": int(cmp.gt_ids[i]) if i >= 0 else None,
            "agreement": cmp.agreement[i, j] if i >= 0 else None,
            "best_gt_unit": int(cmp.gt_ids[b]) if b >= 0 else None,
            "best_agreement": cmp.agreement[best_any, j] if n_gt else 0.0,
            "well_detected": cmp.well_detected[j], "redundant": redundant,
            "overmerged": cmp.overmerged[j], "false_positive": false_pos,
            "category": cat, "source_of_gt_unit": " ".join(map(str, source_of.get(s, []))) or None,
        })
    return [{k: _num(v) for k, v in r.items()} for r in rows]


def _summary(cmp: matching.Comparison, units: list[dict], signal: bool, sorted_rows: list[dict],
             sources: list[dict] | None) -> dict:
    def avg(key):
        vals = [u[key] for u in units if u[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "n_gt_units": int(cmp.gt_ids.size), "n_sorted_units": int(cmp.sorted_ids.size),
        "n_gt_spikes": int(cmp.n_gt_spikes.sum()), "n_sorted_spikes": int(cmp.n_sorted_spikes.sum()),
        "n_matched": int((cmp.match_12 >= 0).sum()),
        "n_well_detected": int(cmp.well_detected.sum()),
        "n_redundant": sum(bool(r["redundant"]) for r in sorted_rows),
        "n_overmerged": int(cmp.overmerged.sum()),
        "n_false_positive": sum(bool(r["false_positive"]) for r in sorted_rows),
        "n_bad": int(cmp.bad.sum()),
        # the sorted units that are the injected units' own source neurons (None: the output
        # holds no source sorting); with exclude_source_units they are neither redundant nor FP
        "source_units": sources,
        "n_source_units_excluded": sum(r["category"] == "source_unit" for r in sorted_rows),
        # averages over ground-truth units, unmatched ones counting 0 (SpikeInterface's
        # "pooled_with_average"); precision over matched units only (undefined otherwise)
        "mean_accuracy": avg("accuracy"), "mean_recall": avg("recall"), "mean_precision": avg("precision"),
        "signal_metrics": signal,
    }


# -- outputs ----------------------------------------------------------------------------------------------
def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([cell(r[c]) for c in columns])
    return path


def write_score(result: ScoreResult, out: Path) -> list[Path]:
    """Write units.csv, sorted_units.csv, agreement.csv and score.json into ``out``, all four
    replaced together at the end (an interrupted run leaves the previous tables or none)."""
    files = [out / "units.csv", out / "sorted_units.csv", out / "agreement.csv", out / "score.json"]
    with AtomicFiles() as pending:
        _write_score_files(result, *[pending.temp(f) for f in files])
    return files


def _write_score_files(result: ScoreResult, units: Path, sorted_units: Path, agreement: Path,
                       score_json: Path) -> None:
    from hybridkit import __version__

    cmp, truth, srt = result.comparison, result.truth, result.sorting
    _write_csv(units, UNIT_COLUMNS, result.units)
    _write_csv(sorted_units, SORTED_COLUMNS, result.sorted_units)
    with open(agreement, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["gt_unit"] + cmp.sorted_ids.tolist())
        for i, u in enumerate(cmp.gt_ids.tolist()):
            w.writerow([u] + [cell(float(v)) for v in cmp.agreement[i]])
    doc = {
        "tool": "hybridkit", "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ground_truth": {"path": str(truth.path), "format": truth.format, "session": truth.session,
                         "sampling_rate_hz": truth.sampling_rate, "n_units": int(truth.unit_ids.size),
                         "n_events": int(truth.times.size)},
        "sorting": {"path": str(srt.path) if srt.path else None, "format": srt.format,
                    "n_units": int(cmp.sorted_ids.size), "n_spikes": int(srt.spike_times.size)},
        "settings": {**result.settings.__dict__, "tolerance_samples": cmp.delta},
        "summary": result.summary, "units": result.units, "sorted_units": result.sorted_units,
        "agreement": {"gt_units": cmp.gt_ids.tolist(), "sorted_units": cmp.sorted_ids.tolist(),
                      "matrix": np.round(cmp.agreement, 6).tolist()},
    }
    score_json.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def load_score(path: str | Path) -> dict:
    """Read a score.json (or the folder holding one), as written by :func:`write_score`."""
    path = Path(path)
    if path.is_dir():
        path = path / "score.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"--score {path}: not a readable score.json ({exc})") from None
    if not isinstance(doc, dict) or "units" not in doc or "agreement" not in doc:
        raise OutputError(f"--score {path}: not a hybridkit score.json (no 'units'/'agreement')")
    return doc


def summary_text(result: ScoreResult) -> str:
    """A few lines for the terminal: what was compared, the headline numbers, one line per unit."""
    s, cmp = result.summary, result.comparison
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        f"{result.sorting.path} ({result.sorting.format}, {s['n_sorted_units']} units, "
        f"{s['n_sorted_spikes']} spikes) against {result.truth.path} ({result.truth.format}, "
        f"{s['n_gt_units']} injected units, {s['n_gt_spikes']} spikes); tolerance "
        f"{result.settings.tolerance_ms} ms = {cmp.delta} samples",
        f"  ground-truth units matched {s['n_matched']}/{s['n_gt_units']}, well detected "
        f"{s['n_well_detected']}; mean accuracy {fmt(s['mean_accuracy'])}, recall "
        f"{fmt(s['mean_recall'])}, precision {fmt(s['mean_precision'])}",
        f"  sorted units: {s['n_redundant']} redundant, {s['n_overmerged']} overmerged, "
        f"{s['n_false_positive']} false positive (of {s['n_sorted_units']}; units of the source "
        "recording's own neurons count as false positive: the hybrid truth is not exhaustive)",
        _sources_line(s),
        f"  {'gt_unit':>8} {'matched':>8} {'accuracy':>8} {'recall':>8} {'precision':>9} "
        f"{'corr':>6} {'snr':>6}",
    ]
    for u in result.units:
        lines.append(
            f"  {u['gt_unit']:>8} {'-' if u['matched_unit'] is None else u['matched_unit']:>8} "
            f"{fmt(u['accuracy']):>8} {fmt(u['recall']):>8} {fmt(u['precision']):>9} "
            f"{'-' if u['template_correlation'] is None else format(u['template_correlation'], '.2f'):>6} "
            f"{'-' if u['snr'] is None else format(u['snr'], '.1f'):>6}")
    return "\n".join(lines)


def _sources_line(s: dict) -> str:
    """Which sorted units are the injected units' own sources, for the terminal summary."""
    sources = s.get("source_units")
    if sources is None:
        return ("  the injected units' own source units among the sorted units: unknown (this "
                "output holds no source sorting; score the output folder, whose legacy tables do)")
    found = [r for r in sources if r["sorted_unit"] is not None]
    if not found:
        return "  no sorted unit matches an injected unit's own source unit"
    pairs = ", ".join(f"{r['sorted_unit']} (source of gt {r['gt_unit']}, agreement "
                      f"{r['agreement_with_gt_unit']:.2f} with it)" for r in found)
    tail = (f"; {s['n_source_units_excluded']} of them left out of redundant/false positive "
            "(--exclude-source-units)" if s.get("n_source_units_excluded") else
            "; --exclude-source-units leaves them out of redundant/false positive")
    return f"  sorted units that are the injected units' own sources: {pairs}{tail}"

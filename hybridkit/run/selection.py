"""Choosing ground-truth units: explicit ids and/or quality criteria, and the selection table.

Criteria are applied in a fixed order and a unit's row names the first one it fails:
``ids`` (which units are candidates) -> ``label`` -> ``min_firing_rate_hz`` -> ``max_contamination``
-> ``min_presence_ratio`` -> ``min_amplitude_uV`` -> ``min_snr`` -> ``max_count`` (best by
``rank_by``). The metrics are :mod:`hybridkit.engine.quality`'s. Amplitude and SNR read the recording
(a few dozen snippets per unit), so they are computed only where a criterion or the ranking needs
them, and only for units that passed the cheaper criteria; elsewhere they are left blank (NaN).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridkit.engine.filtering import Highpass
from hybridkit.engine.quality import UnitMetrics, compute_metrics
from hybridkit.errors import UnitSelectionError
from hybridkit.hookspecs import named_stream
from hybridkit.model import Recording, Sorting

#: the columns of the selection table, in order
COLUMNS = ("unit_id", "label", "n_spikes", "firing_rate_hz", "isi_violations", "isi_violations_ratio",
           "contamination", "presence_ratio", "amplitude_uV", "snr", "peak_channel", "selected",
           "failed", "detail")
#: the criteria in the order they are applied
CRITERIA = ("label", "min_firing_rate_hz", "max_contamination", "min_presence_ratio",
            "min_amplitude_uV", "min_snr", "max_count")


@dataclass
class SelectionRow:
    """One candidate unit: its label, metrics, and why it was (not) selected."""

    unit_id: int
    label: str
    metrics: UnitMetrics
    selected: bool = True
    failed: str = ""  # the first criterion failed ("" when selected)
    detail: str = ""  # the values that failed it

    def as_dict(self) -> dict:
        row = {"unit_id": self.unit_id, "label": self.label}
        row.update({k: v for k, v in self.metrics.as_dict().items() if k != "unit_id"})
        row.update(selected=self.selected, failed=self.failed, detail=self.detail)
        return row


def select_units(sorting: Sorting, ids: list[int]) -> list[int]:
    """Check that the requested ids exist in the sorting, exactly as the sorter names them."""
    known = set(sorting.unit_ids.tolist())
    missing = [i for i in ids if i not in known]
    if missing:
        shown = sorted(known)
        listing = ", ".join(map(str, shown[:40])) + (f", ... ({len(shown)} units)" if len(shown) > 40 else "")
        raise UnitSelectionError(
            f"units.ids: unit(s) {missing} not in the sorting {sorting.path or ''}; units that "
            f"exist: {listing}")
    empty = [i for i in ids if not np.any(sorting.spike_units == i)]
    if empty:
        raise UnitSelectionError(f"units.ids: unit(s) {empty} have no spikes in the sorting")
    return list(ids)


def _labels_wanted(label) -> set[str] | None:
    if label is None:
        return None
    return {label.lower()} if isinstance(label, str) else {x.lower() for x in label}


def _needs_recording(units) -> bool:
    return (units.min_amplitude_uV is not None or units.min_snr is not None
            or (units.max_count is not None and units.rank_by in ("snr", "amplitude_uV")))


def evaluate(sorting: Sorting, units, *, fs: float, n_samples: int,
             recording: Recording | None = None, seed: int = 0,
             all_amplitudes: bool = False, highpass_hz: float | None = None) -> list[SelectionRow]:
    """Metrics and verdict of every candidate unit under ``units`` (a UnitsConfig).

    ``all_amplitudes``: compute amplitude/SNR for every candidate (the ``units`` command), not only
    where the criteria need them. ``highpass_hz``: measure amplitude and SNR high-passed at this
    corner (the template source's band, for wideband recordings). Raises UnitSelectionError for
    unknown explicit ids, or when amplitude/SNR criteria are given without a recording.
    """
    if units.ids is not None:
        candidates = select_units(sorting, units.ids)
    else:
        candidates = [int(u) for u in np.unique(sorting.spike_units)]
    needs_rec = _needs_recording(units)
    if needs_rec and recording is None:
        raise UnitSelectionError("units: min_amplitude_uV, min_snr and rank_by snr/amplitude_uV need "
                                 "the recording (give the recording, e.g. --recording CONFIG)")
    trains = {u: sorting.times_of(u) for u in candidates}
    metrics = compute_metrics(trains, fs, n_samples, refractory_ms=units.refractory_ms,
                              censored_ms=units.censored_ms, presence_bin_s=units.presence_bin_s)
    rows = [SelectionRow(u, sorting.labels.get(u, ""), metrics[u]) for u in candidates]

    wanted = _labels_wanted(units.label)
    cheap = [
        ("label", lambda r: wanted is None or r.label.lower() in wanted,
         lambda r: f"label {r.label or '(none)'!r} not in {sorted(wanted or [])}"),
        ("min_firing_rate_hz", lambda r: units.min_firing_rate_hz is None
         or r.metrics.firing_rate_hz >= units.min_firing_rate_hz,
         lambda r: f"{r.metrics.firing_rate_hz:.3g} Hz < {units.min_firing_rate_hz:g}"),
        ("max_contamination", lambda r: units.max_contamination is None
         or r.metrics.contamination <= units.max_contamination,
         lambda r: f"{r.metrics.contamination:.3g} > {units.max_contamination:g}"),
        ("min_presence_ratio", lambda r: units.min_presence_ratio is None
         or r.metrics.presence_ratio >= units.min_presence_ratio,
         lambda r: f"{r.metrics.presence_ratio:.3g} < {units.min_presence_ratio:g}"),
    ]
    _apply(rows, cheap)
    if recording is not None and (needs_rec or all_amplitudes):
        todo = [r.unit_id for r in rows if r.selected or all_amplitudes]
        rng = named_stream(seed, "selection")  # the run's table and `hybridkit units` agree
        band = Highpass.for_recording(highpass_hz, recording.sampling_rate) if highpass_hz else None
        amp = compute_metrics({u: trains[u] for u in todo}, fs, n_samples, recording=recording, rng=rng,
                              refractory_ms=units.refractory_ms, censored_ms=units.censored_ms,
                              presence_bin_s=units.presence_bin_s, band=band)
        for r in rows:
            if r.unit_id in amp:
                m = amp[r.unit_id]
                r.metrics.amplitude_uV, r.metrics.snr, r.metrics.peak_channel = m.amplitude_uV, m.snr, m.peak_channel
    _apply(rows, [
        ("min_amplitude_uV", lambda r: units.min_amplitude_uV is None
         or r.metrics.amplitude_uV >= units.min_amplitude_uV,
         lambda r: f"{r.metrics.amplitude_uV:.3g} uV < {units.min_amplitude_uV:g}"),
        ("min_snr", lambda r: units.min_snr is None or r.metrics.snr >= units.min_snr,
         lambda r: f"{r.metrics.snr:.3g} < {units.min_snr:g}"),
    ])
    if units.max_count is not None:
        passed = [r for r in rows if r.selected]
        sign = 1.0 if units.rank_by == "contamination" else -1.0

        def key(r):
            v = getattr(r.metrics, units.rank_by)
            return (math.isnan(v), sign * v if not math.isnan(v) else 0.0, r.unit_id)

        for rank, r in enumerate(sorted(passed, key=key), start=1):
            if rank > units.max_count:
                r.selected, r.failed = False, "max_count"
                r.detail = f"rank {rank} by {units.rank_by}, max_count {units.max_count}"
    return rows


def _apply(rows: list[SelectionRow], checks) -> None:
    for r in rows:
        if not r.selected:
            continue
        for name, ok, why in checks:
            if not ok(r):
                r.selected, r.failed, r.detail = False, name, why(r)
                break


def choose_units(sorting: Sorting, units, recording: Recording, seed: int = 0,
                 highpass_hz: float | None = None) -> tuple[list[int], list[SelectionRow]]:
    """The ground-truth unit ids for a run (explicit ids keep their order) and the table.

    ``highpass_hz``: the template source's band (:attr:`TemplateSource.highpass_hz`), in which
    amplitude and SNR are measured. Raises UnitSelectionError when no unit passes, naming how many
    failed each criterion.
    """
    rows = evaluate(sorting, units, fs=recording.sampling_rate, n_samples=recording.n_samples,
                    recording=recording, seed=seed, highpass_hz=highpass_hz)
    chosen = [r.unit_id for r in rows if r.selected]
    if not chosen:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.failed] = counts.get(r.failed, 0) + 1
        why = ", ".join(f"{counts[c]} failed {c}" for c in CRITERIA if c in counts) or \
            "the sorting has no units with spikes"
        raise UnitSelectionError(f"units: no unit passes the selection criteria ({why}); relax them "
                                 "(`hybridkit units SORTING` shows every unit's metrics)")
    return chosen, rows


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_table(rows: list[SelectionRow], path: Path) -> Path:
    """Write the selection table as CSV (one row per candidate, :data:`COLUMNS`)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            d = r.as_dict()
            d["peak_channel"] = d["peak_channel"] if d["peak_channel"] >= 0 else ""
            w.writerow([_fmt(d[c]) for c in COLUMNS])
    return Path(path)


def format_table(rows: list[SelectionRow]) -> str:
    """The selection table as aligned text columns (for the terminal)."""
    heads = ("unit", "label", "spikes", "rate_Hz", "isi_viol", "contam", "presence", "amp_uV",
             "snr", "peak_ch", "selected")
    body = []
    for r in rows:
        m = r.metrics
        body.append((str(r.unit_id), r.label or "-", str(m.n_spikes), f"{m.firing_rate_hz:.2f}",
                     str(m.isi_violations), _num(m.contamination, 3), _num(m.presence_ratio, 2),
                     _num(m.amplitude_uV, 1), _num(m.snr, 1), str(m.peak_channel) if m.peak_channel >= 0 else "-",
                     "yes" if r.selected else f"no: {r.failed} ({r.detail})"))
    table = [heads] + body
    widths = [max(len(row[i]) for row in table) for i in range(len(heads) - 1)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1]
                     for row in table)


def _num(v: float, digits: int) -> str:
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


# -- the `hybridkit units` command -------------------------------------------------------------------
@dataclass
class UnitsReport:
    """What `hybridkit units` prints: where the numbers come from, and the table."""

    sorting: Sorting
    sorting_type: str
    fs: float
    n_samples: int
    duration_from: str  # "recording" or "last spike"
    rows: list[SelectionRow]
    highpass_hz: float | None = None  # the band amplitude and SNR were measured in


def _open_recording(arg: Path, reg, base_dir: Path):
    """A Recording from a run config (its ``recording`` section) or a SpikeGLX .bin/.meta path.

    Returns (recording, config or None).
    """
    from hybridkit.config.run_config import load_config
    from hybridkit.config.sections import plugin_from_section
    from hybridkit.errors import ConfigError

    arg = Path(arg)
    if arg.suffix.lower() in (".json", ".yaml", ".yml"):
        cfg = load_config(arg, reg)
        return plugin_from_section(reg, "source_reader", cfg.recording, base_dir).open(), cfg
    if arg.suffix.lower() in (".bin", ".meta") and arg.with_suffix(".meta").is_file():
        section = {"type": "spikeglx", "path": str(arg.with_suffix(".bin"))}
        return plugin_from_section(reg, "source_reader", section, base_dir,
                                   what=f"--recording {arg}").open(), None
    raise ConfigError(f"--recording {arg}: expected a run config (.json/.yaml) whose recording "
                      "section is used, or a SpikeGLX .bin/.meta")


def units_report(sorting_path: Path, sorting_type: str | None = None, recording: Path | None = None,
                 sampling_rate: float | None = None, criteria: dict | None = None,
                 base_dir: Path | None = None, reg=None,
                 highpass_hz: float | None = None) -> UnitsReport:
    """Load a sorting (type given or detected), optionally its recording, and evaluate every unit.

    ``criteria`` are UnitsConfig fields; without any, every unit with spikes is listed as selected.
    A run config given as ``recording`` also lends its ``units`` criteria but not its ids
    (``criteria`` override them), its seed, its template source's high-pass band, and its sorting
    options when its sorting path is ``sorting_path``. ``highpass_hz`` (Hz) overrides the band.
    """
    from pydantic import ValidationError

    from hybridkit.config.run_config import UnitsConfig
    from hybridkit.config.sections import load_sorting, plugin_from_section
    from hybridkit.errors import ConfigError, SortingError
    from hybridkit.registry import get_registry

    reg = reg or get_registry()
    base_dir = Path(base_dir or Path.cwd())
    path = Path(sorting_path)
    path = path if path.is_absolute() else base_dir / path
    if not path.exists():
        raise SortingError(f"{path}: no such file or folder (the sorting to list)")
    rec, cfg = (None, None)
    if recording is not None:
        rec, cfg = _open_recording(recording, reg, base_dir)
    if highpass_hz is not None:  # given on the command line: checked here, to name the option
        if rec is None:
            raise ConfigError(f"hybridkit units: --highpass-hz {highpass_hz:g} filters the "
                              "recording's snippets; give the recording too (--recording ...)")
        Highpass.for_recording(highpass_hz, rec.sampling_rate, field="--highpass-hz")
    elif cfg is not None:  # measure in the band the run's templates use
        highpass_hz = plugin_from_section(reg, "template_source", cfg.templates, base_dir).highpass_hz
    # the run config's own sorting section when it names this path (it may hold more options)
    same = (cfg is not None and cfg.sorting is not None
            and (sorting_type is None or cfg.sorting.type == sorting_type)
            and Path(cfg.sorting.path).resolve() == path.resolve())
    stype, sorting = load_sorting(path, sorting_type or (cfg.sorting.type if same else None),
                                  base_dir=base_dir, recording=rec,
                                  options=cfg.sorting if same else None,
                                  what="hybridkit units", reg=reg)

    fs = rec.sampling_rate if rec is not None else (sampling_rate or sorting.sampling_rate)
    if not fs:
        raise ConfigError(f"{path}: this {stype} output does not state its sampling rate; give "
                          "--sampling-rate HZ or --recording CONFIG")
    if rec is not None:
        n_samples, source = rec.n_samples, "recording"
    else:
        n_samples, source = int(sorting.spike_times.max(initial=0)) + 1, "last spike"
    # the config's criteria, not its ids: the point is to see every unit before choosing
    fields = (cfg.units.model_dump(exclude_unset=True, exclude={"ids"})
              if cfg is not None and cfg.units is not None else {})
    fields.update({k: v for k, v in (criteria or {}).items() if v is not None})
    if not any(k in fields for k in ("ids", "label", "min_firing_rate_hz", "max_contamination",
                                     "min_presence_ratio", "min_amplitude_uV", "min_snr", "max_count")):
        fields["min_firing_rate_hz"] = 0.0  # no criterion: list every unit as passing
    try:
        units = UnitsConfig.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(map(str, err["loc"])) or "units"
        raise ConfigError(f"hybridkit units: {field}: {err['msg'].removeprefix('Value error, ')}") from None
    rows = evaluate(sorting, units, fs=fs, n_samples=n_samples, recording=rec,
                    seed=cfg.seed or 0 if cfg is not None else 0, all_amplitudes=rec is not None,
                    highpass_hz=highpass_hz)
    return UnitsReport(sorting, stype, float(fs), n_samples, source, rows, highpass_hz)

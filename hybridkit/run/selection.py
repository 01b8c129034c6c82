"""Choosing ground-truth units: explicit ids and/or quality criteria, and the selection table.

Criteria are applied in a fixed order and a unit's row names the first one it fails:
``ids`` (which units are candidates) -> ``label`` -> ``min_firing_rate_hz`` -> ``max_contamination``
-> ``min_presence_ratio`` -> ``min_amplitude_uV`` -> ``min_snr`` -> ``duplicate`` (of a better
ranked unit, :mod:`hybridkit.engine.duplicates`) -> ``max_count`` (best by ``rank_by``); a run then
marks ``no_place`` on units it could not place (:mod:`hybridkit.run.choosing`). The metrics are
:mod:`hybridkit.engine.quality`'s. Amplitude and SNR read the recording (a hundred snippets per
unit), so they are measured only where something uses them: for the units that passed the
cheaper criteria when an amplitude/SNR criterion (``min_amplitude_uV``, ``min_snr``, or
``max_count`` ranked by ``snr``/``amplitude_uV``) asks, and for the units whose trains coincide
enough to be duplicate candidates (the duplicate check compares their waveforms and ranks them);
blank elsewhere. Each unit is measured from its own random stream (the run seed and the unit
id), over the run's one noise estimate (:mod:`hybridkit.engine.noise`): a unit's numbers never
depend on which other units were measured, and `hybridkit units --recording CONFIG` prints the
run's table. Once the templates are built, the run adds each chosen unit's template amplitude
and SNR (``template_amplitude_uV``, ``template_snr``), the numbers its injected copy reports.
"""
from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybridkit.engine.filtering import Highpass
from hybridkit.engine.duplicates import excess_coincidence, find_duplicates
from hybridkit.engine.matching import tolerance_samples
from hybridkit.engine.noise import recording_noise_uV
from hybridkit.engine.quality import UnitMetrics, compute_metrics
from hybridkit.errors import PlacementError, UnitSelectionError
from hybridkit.formats.csv_cells import cell
from hybridkit.hookspecs import named_stream
from hybridkit.model import Recording, Sorting

log = logging.getLogger(__name__)

#: the columns of the selection table, in order
COLUMNS = ("unit_id", "label", "n_spikes", "firing_rate_hz", "isi_violations", "isi_violations_ratio",
           "contamination", "presence_ratio", "amplitude_uV", "snr", "peak_channel",
           "template_amplitude_uV", "template_snr", "selected", "failed", "detail")
#: the criteria in the order they are applied (``no_place`` is added by the run's placement)
CRITERIA = ("label", "min_firing_rate_hz", "max_contamination", "min_presence_ratio",
            "min_amplitude_uV", "min_snr", "duplicate", "max_count")
#: trains of duplicate units are compared at the scoring's default tolerance (SpikeInterface's)
DUPLICATE_TOLERANCE_MS = 0.4


def unit_stream(seed: int, unit_id: int) -> np.random.Generator:
    """The generator that draws one unit's spike sample: a function of the run seed and the id only."""
    return named_stream(seed, f"selection:unit:{int(unit_id)}")


@dataclass
class SelectionRow:
    """One candidate unit: its label, metrics, and why it was (not) selected."""

    unit_id: int
    label: str
    metrics: UnitMetrics
    selected: bool = True
    failed: str = ""  # the first criterion failed ("" when selected)
    detail: str = ""  # the values that failed it
    #: the unit's template as built (at its source position, scale 1): peak |amplitude| (uV) and
    #: SNR over the run's noise on its peak channel; NaN for units without a template
    template_amplitude_uV: float = float("nan")
    template_snr: float = float("nan")

    def as_dict(self) -> dict:
        row = {"unit_id": self.unit_id, "label": self.label}
        row.update({k: v for k, v in self.metrics.as_dict().items() if k != "unit_id"})
        row.update(template_amplitude_uV=self.template_amplitude_uV, template_snr=self.template_snr,
                   selected=self.selected, failed=self.failed, detail=self.detail)
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
             highpass_hz: float | None = None, all_amplitudes: bool = False,
             noise_uV: np.ndarray | None = None) -> list[SelectionRow]:
    """Metrics and verdict of every candidate unit under ``units`` (a UnitsConfig).

    With ``recording``, amplitude and SNR are measured (high-passed at ``highpass_hz`` Hz, the
    template source's band, when given; over ``noise_uV``, the run's noise estimate in that band,
    made here when not given) where they are used: for the candidates that passed the label,
    rate, contamination and presence criteria when an amplitude/SNR criterion needs them, for the
    duplicate candidates (trains coinciding beyond ``duplicate_min_coincidence``), or for every
    candidate with ``all_amplitudes`` (`hybridkit units` without a run config). Each unit's
    spike sample is drawn from :func:`unit_stream` (``seed``, unit id), so it does not depend on
    which other units are measured. Raises UnitSelectionError for unknown explicit ids, or when
    amplitude/SNR criteria are given without a recording.
    """
    if units.ids is not None:
        candidates = select_units(sorting, units.ids)
    else:
        candidates = [int(u) for u in np.unique(sorting.spike_units)]
    if _needs_recording(units) and recording is None:
        raise UnitSelectionError("units: min_amplitude_uV, min_snr and rank_by snr/amplitude_uV need "
                                 "the recording (give the recording, e.g. --recording CONFIG)")
    trains = {u: sorting.times_of(u) for u in candidates}
    common = dict(refractory_ms=units.refractory_ms, censored_ms=units.censored_ms,
                  presence_bin_s=units.presence_bin_s)
    metrics = compute_metrics(trains, fs, n_samples, **common)
    rows = [SelectionRow(u, sorting.labels.get(u, ""), metrics[u]) for u in candidates]

    wanted = _labels_wanted(units.label)
    _apply(rows, [
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
    ])
    measure = None
    if recording is not None:  # the snippets are the costly part (~0.05 s per unit): only where used
        band = Highpass.for_recording(highpass_hz, recording.sampling_rate) if highpass_hz else None
        by_id = {r.unit_id: r for r in rows}
        done: set[int] = set()
        noise = [noise_uV]  # made on the first measurement when not given

        def measure(todo: list[int]) -> None:
            todo = [u for u in todo if u not in done]
            if not todo:
                return
            if noise[0] is None:
                noise[0] = recording_noise_uV(recording, highpass_hz)
            measured = compute_metrics({u: trains[u] for u in todo}, fs, n_samples,
                                       recording=recording, band=band, noise_uV=noise[0],
                                       unit_rng=lambda uid: unit_stream(seed, uid), **common)
            for u, m in measured.items():
                by_id[u].metrics = m
            done.update(todo)

        if all_amplitudes or _needs_recording(units):
            measure([r.unit_id for r in rows if r.selected or all_amplitudes])
    _apply(rows, [
        ("min_amplitude_uV", lambda r: units.min_amplitude_uV is None
         or r.metrics.amplitude_uV >= units.min_amplitude_uV,
         lambda r: f"{r.metrics.amplitude_uV:.3g} uV < {units.min_amplitude_uV:g}"),
        ("min_snr", lambda r: units.min_snr is None or r.metrics.snr >= units.min_snr,
         lambda r: f"{r.metrics.snr:.3g} < {units.min_snr:g}"),
    ])
    if measure is not None:
        _mark_duplicates(rows, trains, units, fs, n_samples, measure)
    if units.max_count is not None:
        for rank, r in enumerate(ranked([r for r in rows if r.selected], units.rank_by), start=1):
            if rank > units.max_count:
                r.selected, r.failed = False, "max_count"
                r.detail = f"rank {rank} by {units.rank_by}, max_count {units.max_count}"
    return rows


def ranked(rows: list[SelectionRow], rank_by: str, templates: bool = False) -> list[SelectionRow]:
    """``rows`` best first by ``rank_by`` (highest first; lowest first for contamination).

    ``templates``: rank ``snr``/``amplitude_uV`` by the rows' templates (``template_snr``,
    ``template_amplitude_uV``), as placement does. Units without the value (NaN) come last; ties
    go to the lower unit id.
    """
    sign = 1.0 if rank_by == "contamination" else -1.0

    def key(r):
        if templates and rank_by in ("snr", "amplitude_uV"):
            v = r.template_snr if rank_by == "snr" else r.template_amplitude_uV
        else:
            v = getattr(r.metrics, rank_by)
        return (math.isnan(v), sign * v if not math.isnan(v) else 0.0, r.unit_id)

    return sorted(rows, key=key)


def _mark_duplicates(rows: list[SelectionRow], trains: dict, units, fs: float, n_samples: int,
                     measure) -> None:
    """Among the units still selected, mark each duplicate of a better-ranked one (or only log it).

    Only units whose trains coincide beyond ``duplicate_min_coincidence`` with another can be
    duplicates: those are measured (``measure(ids)``: footprint and rank) if they were not yet.
    """
    alive = [r for r in rows if r.selected]
    if len(alive) < 2:
        return
    delta = tolerance_samples(DUPLICATE_TOLERANCE_MS, fs)
    coincidence = excess_coincidence({r.unit_id: trains[r.unit_id] for r in alive}, delta, n_samples)
    ids, k = coincidence
    close = np.nan_to_num(k, nan=-1.0) >= units.duplicate_min_coincidence  # diagonal: NaN
    paired = [u for u, c in zip(ids, (close.any(axis=0) | close.any(axis=1)).tolist()) if c]
    if paired:
        measure(paired)
    alive = ranked(alive, units.rank_by)
    found = find_duplicates([r.unit_id for r in alive], trains,
                            {r.unit_id: r.metrics.footprint for r in alive}, delta, n_samples,
                            units.duplicate_min_coincidence, units.duplicate_min_similarity,
                            coincidence=coincidence)
    by_id = {r.unit_id: r for r in rows}
    for d in found:
        detail = (f"duplicate of unit {d.kept_id} (ranked higher by {units.rank_by}): "
                  f"{d.coincidence:.2f} of its spikes coincide within {DUPLICATE_TOLERANCE_MS:g} ms "
                  f"beyond chance, waveform similarity {d.similarity:.2f}")
        r = by_id[d.unit_id]
        if units.keep_duplicates:
            log.warning("unit %s: %s; kept (units.keep_duplicates)", d.unit_id, detail)
            r.detail = f"kept although {detail} (units.keep_duplicates)"
            continue
        r.selected, r.failed, r.detail = False, "duplicate", detail


def _apply(rows: list[SelectionRow], checks) -> None:
    for r in rows:
        if not r.selected:
            continue
        for name, ok, why in checks:
            if not ok(r):
                r.selected, r.failed, r.detail = False, name, why(r)
                break


def choose_units(sorting: Sorting, units, recording: Recording, seed: int = 0,
                 highpass_hz: float | None = None, noise_uV: np.ndarray | None = None
                 ) -> tuple[list[int], list[SelectionRow]]:
    """The ground-truth unit ids for a run (explicit ids keep their order) and the table.

    ``highpass_hz``: the template source's band (:attr:`TemplateSource.highpass_hz`), in which
    amplitude and SNR are measured, over ``noise_uV`` (the run's estimate). Raises
    UnitSelectionError when no unit passes, naming how many failed each criterion.
    """
    rows = evaluate(sorting, units, fs=recording.sampling_rate, n_samples=recording.n_samples,
                    recording=recording, seed=seed, highpass_hz=highpass_hz, noise_uV=noise_uV)
    chosen = [r.unit_id for r in rows if r.selected]
    if not chosen:
        raise UnitSelectionError(f"units: no unit passes the selection criteria ({failure_counts(rows)}); "
                                 "relax them (`hybridkit units SORTING` shows every unit's metrics)")
    return chosen, rows


def failure_counts(rows: list[SelectionRow]) -> str:
    """"2 failed label, 1 failed min_snr, ..." in criterion order (for messages)."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.failed] = counts.get(r.failed, 0) + 1
    order = CRITERIA + ("no_place",)
    return ", ".join(f"{counts[c]} failed {c}" for c in order if c in counts) or \
        "the sorting has no units with spikes"


def write_table(rows: list[SelectionRow], path: Path) -> Path:
    """Write the selection table as CSV (one row per candidate, :data:`COLUMNS`)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            d = r.as_dict()
            d["peak_channel"] = d["peak_channel"] if d["peak_channel"] >= 0 else ""
            w.writerow([cell(d[c]) for c in COLUMNS])
    return Path(path)


def format_table(rows: list[SelectionRow]) -> str:
    """The selection table as aligned text columns (for the terminal)."""
    heads = ("unit", "label", "spikes", "rate_Hz", "isi_viol", "contam", "presence", "amp_uV",
             "snr", "peak_ch", "tpl_snr", "selected")
    body = []
    for r in rows:
        m = r.metrics
        body.append((str(r.unit_id), r.label or "-", str(m.n_spikes), f"{m.firing_rate_hz:.2f}",
                     str(m.isi_violations), _num(m.contamination, 3), _num(m.presence_ratio, 2),
                     _num(m.amplitude_uV, 1), _num(m.snr, 1), str(m.peak_channel) if m.peak_channel >= 0 else "-",
                     _num(r.template_snr, 1),
                     ("yes" + (f" ({r.detail})" if r.detail else "")) if r.selected
                     else f"no: {r.failed} ({r.detail})"))
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
    #: with a run config: the seed of the run this table previews (None: metrics only)
    run_seed: int | None = None
    #: notes for the reader (a run that would stop, a config without a seed)
    notes: list[str] = field(default_factory=list)


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


def _units_config(base: dict, criteria: dict | None):
    """A UnitsConfig from ``base`` fields with the command line's ``criteria`` on top."""
    from pydantic import ValidationError

    from hybridkit.config.run_config import UnitsConfig
    from hybridkit.errors import ConfigError

    fields = dict(base)
    fields.update({k: v for k, v in (criteria or {}).items() if v is not None})
    if not any(k in fields for k in ("ids",) + CRITERIA[:-2] + ("max_count",)):
        fields["min_firing_rate_hz"] = 0.0  # no criterion: list every unit as passing
    try:
        return UnitsConfig.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name = ".".join(map(str, err["loc"])) or "units"
        raise ConfigError(f"hybridkit units: {name}: {err['msg'].removeprefix('Value error, ')}") from None


def units_report(sorting_path: Path, sorting_type: str | None = None, recording: Path | None = None,
                 sampling_rate: float | None = None, criteria: dict | None = None,
                 base_dir: Path | None = None, reg=None,
                 highpass_hz: float | None = None) -> UnitsReport:
    """Load a sorting (type given or detected), optionally its recording, and evaluate every unit.

    ``criteria`` are UnitsConfig fields; without any, every unit with spikes is listed as selected.
    When ``recording`` is a run config whose sorting is ``sorting_path``, the table is the run's
    (:func:`hybridkit.run.choosing.choose_and_place`): the config's ``units`` (ids included, with
    ``criteria`` on top), its seed, its template source's band and its placement, so the chosen
    units and those without a place are the ones ``generate`` will report. Otherwise the metrics
    are measured with the config's criteria and seed (seed 0 without a config). ``highpass_hz``
    (Hz) overrides the band (and so makes the table differ from the run's).
    """
    from hybridkit.config.sections import detect_sorter_type, plugin_from_section
    from hybridkit.errors import ConfigError, SortingError
    from hybridkit.hookspecs import RunContext
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
    stype = sorting_type or detect_sorter_type(path, reg, "hybridkit units", "give --type")
    own_sorting = (cfg is not None and cfg.sorting is not None and cfg.sorting.type == stype
                   and Path(cfg.sorting.path).resolve() == path.resolve())
    # the run config's own section (it may hold more options), else the path alone
    options = cfg.sorting if own_sorting else {"type": stype, "path": str(path)}
    seed = (cfg.seed or 0) if cfg is not None else 0
    notes: list[str] = []
    if cfg is not None and cfg.seed is None:
        notes.append("the config has no seed: the run draws one, so its spike samples (amplitude, "
                     "SNR) and places will differ from this table's (seed 0); set seed to fix them")
    config_units = (cfg.units.model_dump(exclude_unset=True)
                    if cfg is not None and cfg.units is not None else {})
    units = _units_config(config_units, criteria)

    if own_sorting and highpass_hz is None and cfg.units is not None:
        from hybridkit.run.choosing import choose_and_place
        from hybridkit.run.planning import check_placement, stage_rngs

        # the run's streams (stages and plugins alike), so templates and places are the run's
        rngs = stage_rngs(seed)
        session = cfg.session or f"hybrid-{seed}"

        def run_plugin(kind: str, section):
            ctx = RunContext.for_plugin(cfg.base_dir, seed, session, kind, section.type)
            return plugin_from_section(reg, kind, section, cfg.base_dir, ctx)

        sorting = run_plugin("sorter_adapter", options).load(rec)
        source = run_plugin("template_source", cfg.templates)
        choice = choose_and_place(cfg.model_copy(update={"units": units}), rec, sorting, source,
                                  rngs, seed, strict=False)
        stop = choice.stopped or ("" if choice.unit_ids else
                                  f"units: no unit passes the selection criteria "
                                  f"({failure_counts(choice.rows)})")
        if not stop:
            try:
                check_placement(choice.unit_ids, *choice.placement, cfg.injection)
            except PlacementError as exc:
                stop = str(exc)
        if stop:
            notes.append(f"generate would stop: {stop}")
        return UnitsReport(sorting, stype, float(rec.sampling_rate), rec.n_samples, "recording",
                           choice.rows, source.highpass_hz, seed, notes)

    if highpass_hz is None and cfg is not None:  # measure in the band the run's templates use
        highpass_hz = plugin_from_section(reg, "template_source", cfg.templates, base_dir).highpass_hz
    sorting = plugin_from_section(reg, "sorter_adapter", options, base_dir,
                                  what=f"hybridkit units: {path} (a run config can give more options)").load(rec)
    fs = rec.sampling_rate if rec is not None else (sampling_rate or sorting.sampling_rate)
    if not fs:
        raise ConfigError(f"{path}: this {stype} output does not state its sampling rate; give "
                          "--sampling-rate HZ or --recording CONFIG")
    if rec is not None:
        n_samples, source_of_n = rec.n_samples, "recording"
    else:
        n_samples, source_of_n = int(sorting.spike_times.max(initial=0)) + 1, "last spike"
    rows = evaluate(sorting, units, fs=fs, n_samples=n_samples, recording=rec, seed=seed,
                    highpass_hz=highpass_hz, all_amplitudes=True)
    return UnitsReport(sorting, stype, float(fs), n_samples, source_of_n, rows, highpass_hz,
                       None, notes)

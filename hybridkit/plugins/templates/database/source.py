"""Template source ``template_database``: templates from the SpikeInterface hybrid template database.

The database (built from the IBL Brain Wide Map on DANDI:000409 and Steinmetz/Ye NP-Ultra data)
is a public bucket with an index, ``templates.csv``, and one consolidated zarr v2 group per
dataset whose ``templates_array`` is (units, 240 samples, channels) float32 uV stored one chunk per
unit. This source filters the index (brain area, depth, amplitude, SNR, probe, dataset), picks
``n_units`` matches with the run's seeded generator, fetches only those units' chunks (plus the
dataset's small metadata arrays) through a checked on-disk cache, and places each template on the
target recording's probe (see :mod:`hybridkit.engine.relocate` and docs/templates.md).

Injected units are keyed by the template's row in ``templates.csv`` (0-based, as
``hybridkit templates list`` shows it); the ground truth's provenance names the dataset, template
index, database unit id, brain area and probe.
"""
from __future__ import annotations

import csv
import fnmatch
import io
import logging
import math
import os
import shutil
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from hybridkit.engine import relocate as rel
from hybridkit.errors import TemplateError
from hybridkit.hookspecs import TemplateSource, hookimpl
from hybridkit.model import Recording, Sorting, TemplateBank
from hybridkit.options import ConfigPath, PluginOptions, Range
from hybridkit.plugins.templates import targets as tt
from hybridkit.plugins.templates.database.zarr_http import HttpCache, ZarrV2Group, check_name

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://spikeinterface-template-database.s3.us-east-2.amazonaws.com"
CACHE_ENV = "HYBRIDKIT_TEMPLATE_CACHE"
INDEX_KEY = "templates.csv"
CSV_COLUMNS = ("probe", "probe_manufacturer", "brain_area", "depth_along_probe", "amplitude_uv",
               "noise_level_uv", "signal_to_noise_ratio", "template_index", "best_channel_index",
               "spikes_per_unit", "dataset", "dataset_path")


def default_cache_dir() -> Path:
    """$HYBRIDKIT_TEMPLATE_CACHE, else $XDG_CACHE_HOME/hybridkit/template_database (~/.cache)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "hybridkit" / "template_database"




class DatabaseQuery(PluginOptions):
    """Filters over templates.csv; every given filter must match (AND)."""

    brain_areas: list[str] = Field(default_factory=list, description=(
        "Allen acronyms of the template's brain area (templates.csv brain_area), or shell-style "
        "patterns such as 'VISp*'; case-insensitive; any one may match. Empty: every area."))
    probes: list[str] = Field(default_factory=list, description=(
        "probe model names (templates.csv probe, e.g. 'Neuropixels 1.0', 'Neuropixels Ultra') or "
        "patterns; case-insensitive. Empty: every probe."))
    datasets: list[str] = Field(default_factory=list, description=(
        "dataset names (templates.csv dataset) or patterns such as '000409_*'. Empty: all."))
    depth_um: Range | None = Field(None, description=(
        "[min, max] depth along the source probe of the template's best channel "
        "(templates.csv depth_along_probe); um"))
    amplitude_uV: Range | None = Field(None, description=(
        "[min, max] peak-to-peak amplitude on the best channel (templates.csv amplitude_uv); uV"))
    snr: Range | None = Field(None, description=(
        "[min, max] signal-to-noise ratio (templates.csv signal_to_noise_ratio); templates "
        "without one (NP-Ultra) never match an SNR range; ratio"))
    min_spikes: int = Field(0, ge=0, description="at least this many spikes averaged into the "
                            "template (templates.csv spikes_per_unit); count")
    rows: list[int] = Field(default_factory=list, description=(
        "exact templates.csv rows (0-based, as 'hybridkit templates list' shows them); when "
        "given, these templates are used in this order and n_units is ignored"))



class DatabaseOptions(DatabaseQuery):
    """Templates from the public SpikeInterface hybrid template database, placed on the probe."""

    type: Literal["template_database"] = "template_database"
    base_url: str = Field(DEFAULT_BASE_URL, description="HTTP(S) root of the database bucket "
                          "(templates.csv and the datasets' zarr groups live below it)")
    cache_dir: ConfigPath | None = Field(None, description=(
        f"on-disk cache of fetched objects; default ${CACHE_ENV}, else "
        "$XDG_CACHE_HOME/hybridkit/template_database (~/.cache when unset)"))
    offline: bool = Field(False, description="use only the cache, never the network")
    timeout_s: float = Field(60.0, gt=0, description="network timeout per request; s")
    n_units: int = Field(5, ge=1, description="templates drawn (seeded) among the matches; count")
    position: Literal["source_depth", "center"] = Field(
        "source_depth", description="initial place on the target probe: source_depth puts the "
        "peak at the template's own depth when the target probe spans it (else its middle); "
        "center puts it in the middle; injection.placement then moves it")
    extrapolation_decay_um: float = Field(
        rel.DEFAULT_DECAY_UM, gt=0, description="beyond the source probe's contacts the footprint "
        "is continued from its edge and falls by e over this distance; um")
    scaling: tt.ScalingOptions = Field(default_factory=tt.ScalingOptions, description=(
        "how each template's amplitude is set: {mode: none | amplitude | snr, min, max}"))
    sparsity_fraction: float = Field(tt.DEFAULT_SPARSITY_FRACTION, **tt.SPARSITY_FRACTION_FIELD)
    sparsity_radius_um: float = Field(tt.DEFAULT_RADIUS_UM, **tt.SPARSITY_RADIUS_FIELD)


# -- the index ---------------------------------------------------------------------------------
def _float(text: str) -> float:
    try:
        return float(text) if text.strip() else math.nan
    except ValueError:
        return math.nan


def parse_index(data: bytes, source: str) -> list[dict]:
    """templates.csv as a list of rows (dicts) with typed values and their 0-based ``row``."""
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
        header = reader.fieldnames or []
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise TemplateError(f"template database: {source} lacks columns {missing}; expected "
                                f"{', '.join(CSV_COLUMNS)}")
        rows = []
        for i, r in enumerate(reader):
            rows.append({
                "row": i, "probe": r["probe"], "probe_manufacturer": r["probe_manufacturer"],
                "brain_area": r["brain_area"], "depth_along_probe": _float(r["depth_along_probe"]),
                "amplitude_uv": _float(r["amplitude_uv"]), "noise_level_uv": _float(r["noise_level_uv"]),
                "signal_to_noise_ratio": _float(r["signal_to_noise_ratio"]),
                "template_index": int(r["template_index"]),
                "best_channel_index": int(r["best_channel_index"]),
                "spikes_per_unit": int(r["spikes_per_unit"]),
                # the name becomes a cache folder and a URL path: checked here, before either
                "dataset": check_name(r["dataset"], f"{source} row {i} dataset", single=True),
            })
    except (UnicodeDecodeError, ValueError, KeyError, csv.Error) as exc:
        raise TemplateError(f"template database: {source} is not a valid templates.csv "
                            f"({type(exc).__name__}: {exc})") from None
    return rows


def _matches(patterns: list[str], value: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)


def _within(rng: Range | None, value: float) -> bool:
    return rng is None or (not math.isnan(value) and rng[0] <= value <= rng[1])


def filter_rows(rows: list[dict], q: DatabaseQuery) -> list[dict]:
    """The rows matching every filter of ``q`` (``q.rows`` restricts to those rows, in order)."""
    if q.rows:
        if len(set(q.rows)) != len(q.rows):
            raise TemplateError(f"templates.rows: {q.rows} lists a row twice")
        bad = [r for r in q.rows if not 0 <= r < len(rows)]
        if bad:
            raise TemplateError(f"templates.rows: {bad} are not rows of templates.csv "
                                f"(0..{len(rows) - 1})")
        rows = [rows[r] for r in q.rows]
    return [r for r in rows
            if _matches(q.brain_areas, r["brain_area"]) and _matches(q.probes, r["probe"])
            and _matches(q.datasets, r["dataset"]) and _within(q.depth_um, r["depth_along_probe"])
            and _within(q.amplitude_uV, r["amplitude_uv"])
            and _within(q.snr, r["signal_to_noise_ratio"]) and r["spikes_per_unit"] >= q.min_spikes]


def open_store(opt: DatabaseOptions) -> HttpCache:
    return HttpCache(opt.base_url, opt.cache_dir or default_cache_dir(), offline=opt.offline,
                     timeout_s=opt.timeout_s)


def load_index(store: HttpCache) -> list[dict]:
    """Fetch (or reuse) templates.csv; a changed index drops the cached datasets, which it may
    renumber (upstream renumbered template_index when it removed templates)."""
    data, changed = store.get(INDEX_KEY, revalidate=True)
    if changed:
        log.info("templates.csv changed on the server; clearing cached datasets in %s", store.root)
        for child in store.root.iterdir():
            if child.is_dir() and child.name.endswith(".zarr"):
                shutil.rmtree(child, ignore_errors=True)
    return parse_index(data, store.url(INDEX_KEY))


def query(opt: DatabaseQuery, store: HttpCache) -> list[dict]:
    """Rows of templates.csv matching ``opt``'s filters (what ``hybridkit templates list`` prints)."""
    return filter_rows(load_index(store), opt)


def list_templates(base_url: str | None = None, cache_dir: Path | None = None,
                   offline: bool = False, **filters) -> list[dict]:
    """Rows of templates.csv matching ``filters`` (fields of :class:`DatabaseQuery`), as
    JSON-ready dicts (NaN as None), each with its 0-based ``row``. Used by ``hybridkit templates list``.

    Raises:
        ConfigError: a filter has an invalid value.
    """
    from pydantic import ValidationError

    from hybridkit.errors import ConfigError

    given = {k: v for k, v in filters.items() if v is not None}
    try:
        opt = DatabaseOptions(base_url=base_url or DEFAULT_BASE_URL, cache_dir=cache_dir,
                              offline=offline, **given)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"templates list: {'.'.join(map(str, err['loc']))}: {err['msg']} "
                          f"(got {err.get('input')!r})") from None
    rows = query(opt, open_store(opt))
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows]


# -- fetching ----------------------------------------------------------------------------------
class _Dataset:
    """One dataset's zarr group: attributes, probe geometry, unit ids, and template rows."""

    def __init__(self, store: HttpCache, name: str) -> None:
        self.name = name
        self.group = ZarrV2Group(store, name)
        attrs = self.group.attrs()
        self.fs = float(attrs.get("sampling_frequency", math.nan))
        if not self.fs > 0:
            raise TemplateError(f"template database: {name}/.zattrs has no valid "
                                f"sampling_frequency ({attrs.get('sampling_frequency')!r})")
        self.nbefore = int(attrs.get("nbefore", -1))
        # SpikeInterface < 0.103 wrote is_scaled, newer writes is_in_uV; both mean "uV", default True
        self.scale_key = "is_scaled" if "is_scaled" in attrs else "is_in_uV" if "is_in_uV" in attrs else None
        if self.scale_key is not None and not attrs[self.scale_key]:
            raise TemplateError(f"template database: {name} has {self.scale_key}=false (templates "
                                f"in raw ADC units, no gains stored); hybridkit needs templates in uV")
        self.positions = np.c_[self.group.read("probe/x"), self.group.read("probe/y")].astype(float)
        self.unit_ids = self.group.read("unit_ids")
        meta = self.group.array_meta("templates_array")
        shape = tuple(meta["shape"])
        n_channels = self.positions.shape[0]
        # SpikeInterface's sparse Templates: (units, samples, most active channels), each unit's
        # active channels (its sparsity_mask row, in channel order) first, zero-padded after
        self.sparse = self.group.has_array("sparsity_mask")
        if self.sparse:
            mask_shape = tuple(self.group.array_meta("sparsity_mask")["shape"])
            if mask_shape != (shape[0], n_channels) or len(shape) != 3 or shape[2] > n_channels:
                raise TemplateError(
                    f"template database: {name}: sparsity_mask has shape {mask_shape} and "
                    f"templates_array {shape}; expected ({shape[0]}, {n_channels}) and (units, "
                    f"samples, at most {n_channels} active channels) as SpikeInterface writes them")
        elif len(shape) != 3 or shape[2] != n_channels:
            raise TemplateError(f"template database: {name}/templates_array has shape {shape}; "
                                f"expected (units, samples, {n_channels} channels), or a "
                                "sparsity_mask beside it")
        if not 0 <= self.nbefore < shape[1]:
            raise TemplateError(f"template database: {name}/.zattrs nbefore={self.nbefore} is "
                                f"not a sample of the {shape[1]}-sample templates")
        self.n_units = shape[0]

    def templates(self, indices: list[int]) -> np.ndarray:
        """(len(indices), n_times, n_channels) float32 uV, dense: only these units' chunks (and,
        for sparse templates, their sparsity_mask rows) are fetched."""
        stored = self.group.read("templates_array", indices, required=True).astype(np.float32)
        if not self.sparse:
            return stored
        masks = self.group.read("sparsity_mask", indices, required=True).astype(bool)
        dense = np.zeros((len(indices), stored.shape[1], self.positions.shape[0]), np.float32)
        for k, (wf, mask) in enumerate(zip(stored, masks)):
            active = np.flatnonzero(mask)
            if active.size > wf.shape[1]:
                raise TemplateError(f"template database: {self.name}: unit {indices[k]} has "
                                    f"{active.size} active channels in sparsity_mask but "
                                    f"templates_array holds {wf.shape[1]}")
            dense[k][:, active] = wf[:, :active.size]
        return dense

    def unit_id(self, index: int) -> int | str:
        """The unit's id as SpikeInterface stored it: an integer, or text (e.g. '12a')."""
        value = self.unit_ids[index]
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, (np.integer, int)):
            return int(value)
        text = str(value)
        return int(text) if text.lstrip("-").isdigit() else text


def _target_anchor(src_pos: np.ndarray, src_peak: np.ndarray, tgt_pos: np.ndarray,
                   mode: str) -> np.ndarray:
    """The target contact the source peak goes to (see DatabaseOptions.position)."""
    y_lo, y_hi = tgt_pos[:, 1].min(), tgt_pos[:, 1].max()
    y = src_peak[1] if mode == "source_depth" and y_lo <= src_peak[1] <= y_hi else (y_lo + y_hi) / 2
    # keep the peak's lateral offset from the probe's middle column line
    x = (tgt_pos[:, 0].min() + tgt_pos[:, 0].max()) / 2 + (
        src_peak[0] - (src_pos[:, 0].min() + src_pos[:, 0].max()) / 2)
    return tgt_pos[int(np.argmin(np.hypot(tgt_pos[:, 0] - x, tgt_pos[:, 1] - y)))]


def _json_float(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


class TemplateDatabase(TemplateSource):
    """Templates chosen from the public database by a query and placed on the target probe."""

    name: ClassVar[str] = "template_database"
    Options: ClassVar[type[PluginOptions]] = DatabaseOptions
    uses_sorting_units: ClassVar[bool] = False
    #: ``hybridkit templates list`` finds this through the registry, so the command line never
    #: imports the plugin module
    list_templates = staticmethod(list_templates)

    @classmethod
    def extra_inputs(cls, options: DatabaseOptions) -> list[tuple[str, Path]]:
        """The default template cache, when templates.cache_dir is not set (a path field then)."""
        return [] if options.cache_dir is not None else [("the template cache", default_cache_dir())]

    def _rng(self) -> np.random.Generator:
        return self.context.rng if self.context is not None else np.random.default_rng(0)

    def choose(self, rows: list[dict], rng: np.random.Generator) -> list[dict]:
        """``n_units`` matches drawn without replacement (in templates.csv order), or ``rows``."""
        opt: DatabaseOptions = self.options  # type: ignore[assignment]
        if opt.rows:
            lost = sorted(set(opt.rows) - {r["row"] for r in rows})
            if lost:
                raise TemplateError(f"templates.rows: rows {lost} do not match the other filters "
                                    f"of the query; remove them or the filters")
            return rows
        if len(rows) < opt.n_units:
            raise TemplateError(f"templates: {len(rows)} database templates match the query, "
                                f"n_units is {opt.n_units}; widen the filters or lower n_units "
                                f"(see 'hybridkit templates list')")
        pick = np.sort(rng.choice(len(rows), size=opt.n_units, replace=False))
        return [rows[i] for i in pick]

    def build(self, recording: Recording, sorting: Sorting | None, unit_ids: list[int]) -> TemplateBank:
        """One placed template (uV, sparse, on ``recording``'s file columns) per chosen row."""
        opt: DatabaseOptions = self.options  # type: ignore[assignment]
        rng = self._rng()
        store = open_store(opt)
        chosen = self.choose(query(opt, store), rng)
        targets = tt.draw_targets(opt.scaling, len(chosen), rng)
        channels, tgt_pos = tt.target_contacts(recording)
        noise = (tt.median_noise_uV(recording, self.noise_uV(recording))
                 if opt.scaling.mode == "snr" else None)
        fs = recording.sampling_rate
        by_dataset: dict[str, list[int]] = {}
        for k, r in enumerate(chosen):
            by_dataset.setdefault(r["dataset"], []).append(k)
        templates = {}
        for name, ks in by_dataset.items():
            ds = _Dataset(store, name)
            idx = [chosen[k]["template_index"] for k in ks]
            bad = [i for i in idx if not 0 <= i < ds.n_units]
            if bad:
                raise TemplateError(f"template database: templates.csv names template_index {bad} "
                                    f"of {name}, which has {ds.n_units} units")
            waves = ds.templates(idx)
            geom = rel.SourceGeometry(ds.positions, opt.extrapolation_decay_um)
            for k, wf in zip(ks, waves):
                r = chosen[k]
                wf, peak_index = rel.resample(wf, ds.nbefore, ds.fs, fs)
                src_peak = ds.positions[int(np.argmax(np.abs(wf).max(axis=0)))]
                anchor = _target_anchor(ds.positions, src_peak, tgt_pos, opt.position)
                dense = rel.relocate(wf, geom, src_peak, tgt_pos, anchor)
                prov = {
                    "uri": f"{store.url(name)}#template_index={r['template_index']}",
                    "database": opt.base_url, "dataset": name, "template_index": r["template_index"],
                    "unit_id": ds.unit_id(r["template_index"]), "csv_row": r["row"],
                    "brain_area": r["brain_area"], "probe": r["probe"],
                    "depth_along_probe_um": _json_float(r["depth_along_probe"]),
                    "amplitude_uv_ptp": _json_float(r["amplitude_uv"]),
                    "signal_to_noise_ratio": _json_float(r["signal_to_noise_ratio"]),
                    "source_sampling_frequency": ds.fs, "source_peak_position_um": src_peak.tolist(),
                    "target_anchor_um": anchor.tolist(),
                }
                templates[r["row"]] = tt.finish_template(
                    r["row"], dense, peak_index, channels, tgt_pos, recording, opt.scaling,
                    float(targets[k]), noise, opt.sparsity_fraction, opt.sparsity_radius_um,
                    self.name, prov, n_spikes=r["spikes_per_unit"])
        log.info("template database: %d templates from %d datasets (%d requests)",
                 len(templates), len(by_dataset), store.requests)
        ordered = {r["row"]: templates[r["row"]] for r in chosen}
        return TemplateBank(templates=ordered, sampling_rate=fs)


@hookimpl
def hybridkit_template_sources():
    return [TemplateDatabase]

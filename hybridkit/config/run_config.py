"""The run config: pydantic models, loading from JSON/YAML, schema export.

The config is assembled after plugins load: ``recording``, ``sorting``, ``templates`` and each
entry of ``writers`` is a union over the installed plugins' ``Options`` models, chosen by ``type``.
Paths are relative to the config file's folder. Every validation problem becomes one
:class:`~hybridkit.errors.ConfigError` line naming the file, the field, the bad value, and what is
valid (see :func:`_explain`).
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, PrivateAttr, ValidationError, create_model, field_validator, model_validator

from hybridkit.config.explain import PLUGIN_TAGS, explain
from hybridkit.config.sections import detect_sorter_type
from hybridkit.errors import ConfigError
from hybridkit.options import ConfigPath, StrictModel, check_min_max
from hybridkit.registry import Registry, get_registry

# ---------------------------------------------------------------------------------------------
# The plugin-independent sections


class UnitsConfig(StrictModel):
    """Which sorted units become ground-truth units: explicit ids and/or quality criteria.

    With ids, only those units are candidates (each must exist); without, every unit with spikes.
    Candidates must pass every criterion given; of two duplicate units (trains coinciding beyond
    chance and similar waveforms) the better by rank_by is kept; max_count then keeps the best by
    rank_by. Every run writes units_selection-<session>.csv: each candidate, its metrics, and the
    first criterion it failed (or why it was not placed). `hybridkit units --recording CONFIG`
    prints the same table before a run.
    """

    ids: list[int] | None = Field(
        None, min_length=1,
        description="Unit ids exactly as the sorter shows them (phy cluster ids; no hidden +1).",
    )
    label: str | list[str] | None = Field(
        None, description="Keep units whose sorter label is this (or one of these), e.g. \"good\" "
        "(phy/Kilosort group or KSLabel, JRCLUST note); case-insensitive.")
    min_firing_rate_hz: float | None = Field(None, ge=0, description="Minimum firing rate, Hz.")
    max_contamination: float | None = Field(
        None, ge=0, le=1, description="Maximum contamination, the fraction of spikes from other "
        "neurons estimated from refractory-period violations (Hill et al. 2011); 0-1.")
    refractory_ms: float = Field(1.5, gt=0, description="Refractory period for ISI violations, ms.")
    censored_ms: float = Field(0.0, ge=0, description="Censored period (the sorter's dead time, "
                               "no ISI can be shorter), ms; below refractory_ms.")
    min_presence_ratio: float | None = Field(
        None, ge=0, le=1, description="Minimum fraction of presence_bin_s bins holding a spike; 0-1.")
    presence_bin_s: float = Field(60.0, gt=0, description="Bin length for the presence ratio, s.")
    min_amplitude_uV: float | None = Field(
        None, ge=0, description="Minimum peak amplitude of the unit's mean waveform in the "
        "recording, uV.")
    min_snr: float | None = Field(None, ge=0, description="Minimum SNR: peak amplitude of the "
                                  "unit's mean waveform over the run's noise standard deviation "
                                  "(MAD estimate) on its peak channel (docs/snr.md); ratio.")
    max_count: int | None = Field(None, ge=1, description="Keep at most this many units passing "
                                  "the criteria, the best by rank_by; count.")
    rank_by: Literal["snr", "amplitude_uV", "firing_rate_hz", "presence_ratio", "contamination"] = Field(
        "snr", description="Order for max_count, duplicates and placement: highest first (lowest "
        "first for contamination); placement ranks snr and amplitude_uV by the units' templates.")
    keep_duplicates: bool = Field(
        False, description="Keep both units of a duplicate pair (default: keep the better by "
        "rank_by and report the other as failing 'duplicate').")
    duplicate_min_coincidence: float = Field(
        0.5, ge=0, le=1, description="Duplicates: minimum excess coincidence of the two trains "
        "within 0.4 ms, the fraction of the smaller train's spikes paired beyond chance; 0-1.")
    duplicate_min_similarity: float = Field(
        0.8, ge=-1, le=1, description="Duplicates: minimum cosine similarity of the two mean "
        "waveforms on the channels both footprints hold.")

    @model_validator(mode="after")
    def _unique(self):
        ids = self.ids or []
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"unit ids listed twice: {dupes}")
        criteria = ("label", "min_firing_rate_hz", "max_contamination", "min_presence_ratio",
                    "min_amplitude_uV", "min_snr", "max_count")
        if self.ids is None and all(getattr(self, c) is None for c in criteria):
            raise ValueError("give ids or at least one criterion: " + ", ".join(criteria))
        if self.censored_ms >= self.refractory_ms:
            raise ValueError(f"censored_ms ({self.censored_ms}) must be below refractory_ms "
                             f"({self.refractory_ms})")
        return self


class UnitPlacement(StrictModel):
    """Where one unit goes; overrides the global placement mode for that unit."""

    channel_offset: int | None = Field(
        None, description="Move the peak this many contacts up (+) or down (-) the probe, in the "
        "contact order sorted by depth then x; must map every template channel onto a contact.")
    position_um: tuple[float, float] | None = Field(
        None, description="Target (x, y) of the template's peak channel in um; must be a contact "
        "position that maps every template channel onto a contact.")

    @model_validator(mode="after")
    def _one(self):
        if (self.channel_offset is None) == (self.position_um is None):
            raise ValueError("give exactly one of channel_offset or position_um")
        return self


class PlacementConfig(StrictModel):
    """Where injected units go on the probe (contact positions, not channel-index arithmetic)."""

    mode: Literal["random", "channel_offset"] = Field(
        "random", description="random: a seeded random valid place at least min_distance_um from "
        "the source unit and from other injected units; channel_offset: every unit moves by "
        "channel_offset contacts.")
    channel_offset: int | None = Field(None, description="Contacts to move, for mode channel_offset.")
    min_distance_um: float = Field(
        60.0, ge=0, description="Random mode: minimum distance (um) of an injected unit's peak "
        "from its source unit's and from every other injected unit's.")
    on_no_place: Literal["error", "skip"] = Field(
        "error", description="What to do with a unit that has no valid place: stop with an error "
        "naming it, or skip it and report it (a run that injects nothing still fails).")
    per_unit: dict[int, UnitPlacement] = Field(
        default_factory=dict, description="Per-unit placement by source unit id, overriding mode.")

    @model_validator(mode="after")
    def _offset_given(self):
        if self.mode == "channel_offset" and self.channel_offset is None:
            raise ValueError("mode 'channel_offset' needs channel_offset (an integer)")
        return self


class TrainsConfig(StrictModel):
    """When injected units fire."""

    mode: Literal["source", "poisson"] = Field(
        "source", description="source: the source unit's own spike times plus seeded Gaussian "
        "jitter; poisson: a Poisson train at rate_hz.")
    jitter_ms: float = Field(1.0, ge=0, description="Standard deviation (ms) of the jitter in mode source.")
    rate_hz: float | None = Field(None, gt=0, description="Firing rate (Hz) in mode poisson.")
    refractory_ms: float = Field(1.5, ge=0, description="No two spikes of an injected unit closer than this (ms).")

    @model_validator(mode="after")
    def _rate_given(self):
        if self.mode == "poisson" and self.rate_hz is None:
            raise ValueError("mode 'poisson' needs rate_hz (a positive number, Hz)")
        if self.rate_hz is not None and self.refractory_ms > 0 and self.rate_hz >= 1000.0 / self.refractory_ms:
            raise ValueError(f"rate_hz {self.rate_hz:g} cannot be reached with refractory_ms "
                             f"{self.refractory_ms:g}; it must be below {1000.0 / self.refractory_ms:g} Hz")
        return self


class AmplitudeConfig(StrictModel):
    """Per-spike amplitude gain, uniform in [min, max]; it scales the whole waveform."""

    min: float = Field(1.0, gt=0, description="Smallest gain.")
    max: float = Field(1.0, gt=0, description="Largest gain.")

    @model_validator(mode="after")
    def _ordered(self):
        check_min_max(self.min, self.max)
        return self


class InjectionConfig(StrictModel):
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    trains: TrainsConfig = Field(default_factory=TrainsConfig)
    amplitude: AmplitudeConfig = Field(default_factory=AmplitudeConfig)


class EngineConfig(StrictModel):
    """How the hybrid recording is streamed."""

    chunk_duration_s: float = Field(1.0, gt=0, description="Target length (s) of one processed block.")
    max_memory_mb: int = Field(512, ge=32, description="Upper bound (MB) on the engine's working "
                               "memory; blocks shrink to fit it.")
    workers: int = Field(1, ge=1, description="Parallel worker threads writing disjoint blocks.")
    progress: bool = Field(True, description="Show a progress bar on stderr.")


class OutputConfig(StrictModel):
    directory: ConfigPath | None = Field(
        None, description="Output folder; default 'hybrid_output' beside the config file. It may "
        "not be, hold or lie inside an input (recording files, sorting, motion file, this config, "
        "the template cache).")
    overwrite: bool = Field(False, description="Replace an existing output folder, only one "
                            "hybridkit wrote (its manifest.json) or an empty one; any other "
                            "folder, and one that is, holds or lies inside an input, is refused.")
    in_place: str | None = Field(
        None, description="Opt-in for recordings too large to copy: the file name of the source "
        "(e.g. 'run_g0_t0.imec0.ap.bin') to patch IN PLACE instead of copying it. Every original "
        "byte is saved to an undo journal first; `hybridkit reset OUTPUT_DIR` restores the source "
        "bit for bit (docs/in_place.md). Single-file samples-major binary sources, legacy writer.")
    checksums: Literal["all", "sidecars", "none"] = Field(
        "sidecars", description="SHA-256 of files in the manifest: all files (use when publishing; "
        "reads every hybrid binary once more), only the small sidecar files, or none.")


#: longest session name: output file names add up to ~40 characters to it (the usual limit is 255)
SESSION_MAX_CHARS = 100
SESSION_NAME = re.compile(rf"[^\W_][\w.\- ]{{0,{SESSION_MAX_CHARS - 1}}}")


class RunConfigBase(StrictModel):
    """Fields of a run that do not depend on installed plugins."""

    session: str | None = Field(None, description="Name of this hybrid run, part of output file "
                                "names: letters, digits, '_', '-', '.' and spaces, starting with a "
                                "letter or digit, at most 100 characters; default 'hybrid-<seed>'.")
    seed: int | None = Field(None, ge=0, lt=2**32, description="Random seed; drawn and written out "
                             "when absent.")
    units: UnitsConfig | None = Field(
        None, description="Which sorted units become ground-truth units; required by template "
        "sources that build templates from sorted units (such as 'local').")
    injection: InjectionConfig = Field(default_factory=InjectionConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    # motion and augment follow (added by _run_model_for with their models only when a config has
    # them), then the plugin sections

    #: folder of the config file (relative paths were resolved against it)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    #: where the config came from, for error messages
    _source: str = PrivateAttr(default="config")
    #: the config file, when loaded from one (an input the output must never overwrite)
    _config_path: Path | None = PrivateAttr(default=None)

    @field_validator("session")
    @classmethod
    def _file_name_component(cls, value: str | None) -> str | None:
        # the session goes into output file names (hybrid_events-<session>.csv): a '/' or '..'
        # would write outside the output folder, and a long name fails only after the work
        if value is not None and not SESSION_NAME.fullmatch(value):
            raise ValueError("must be a file-name part: letters, digits, '_', '-', '.' and spaces, "
                             f"starting with a letter or digit, at most {SESSION_MAX_CHARS} characters")
        return value

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source(self) -> str:
        return self._source

    @property
    def config_path(self) -> Path | None:
        return self._config_path


# ---------------------------------------------------------------------------------------------
# Assembly over the installed plugins

#: config section -> plugin kind
SECTIONS = {"recording": "source_reader", "sorting": "sorter_adapter",
            "templates": "template_source", "writers": "writer"}
DEFAULT_TYPES = {"templates": "local"}


def _union(reg: Registry, kind: str, names: frozenset[str] | None = None):
    """The Options models of the ``kind`` plugins named in ``names`` (all installed when None),
    as one discriminated union (or the model itself when there is one)."""
    options = [cls.Options for name, cls in sorted(reg.table(kind).items())
               if names is None or name in names]
    if not options:
        raise ConfigError(f"no {kind.replace('_', ' ')} plugins are installed")
    if len(options) == 1:
        return options[0]
    return Annotated[Union[tuple(options)], Field(discriminator="type")]  # noqa: UP007


#: a RunConfig model's plugin sections narrowed to some plugins: ``(section, names)`` pairs,
#: names None for every installed plugin, an empty set for a section that is absent (sorting)
Narrowing = tuple[tuple[str, frozenset[str] | None], ...]

#: every installed plugin in every section (the schema, the docs)
ALL_TYPES: Narrowing = tuple((section, None) for section in SECTIONS)

#: optional sections whose models a config without them never needs
OPTIONAL_SECTIONS = ("motion", "augment")


def _optional_sections(absent: frozenset[str]) -> dict:
    """The ``motion`` and ``augment`` fields: their models (imported here, so a config without
    them imports neither) or, for the ``absent`` ones, null only."""
    fields = {}
    for section in OPTIONAL_SECTIONS:
        if section in absent:
            fields[section] = (type(None), None)
        elif section == "motion":
            from hybridkit.run.motion import MotionConfig

            fields[section] = (MotionConfig | None, Field(
                None, description="Drift-aware injection: injected units follow the probe's "
                "motion (docs/drift.md); absent = static units."))
        else:
            from hybridkit.config.augment_config import AugmentConfig

            fields[section] = (AugmentConfig | None, Field(
                None, description="What `hybridkit augment CONFIG` makes: a training set of spike "
                "snippets over the recording's noise (docs/augment.md); ignored by `generate`."))
    return fields


@lru_cache(maxsize=32)
def _run_model_for(reg_id: int, types: Narrowing, absent: frozenset[str]):
    reg = _REGISTRIES[reg_id]
    names = dict(types)
    sorting = _union(reg, "sorter_adapter", names["sorting"]) if names["sorting"] != frozenset() else None
    return create_model(
        "RunConfig",
        __base__=RunConfigBase,
        **_optional_sections(absent),  # after the base's fields, before the plugin sections
        recording=(_union(reg, "source_reader", names["recording"]),
                   Field(description="The source recording.")),
        sorting=(sorting | None if sorting is not None else type(None), Field(
            None, description="The sorter's output on it; needed by templates built from sorted "
            "units and by injection.trains.mode 'source'.")),
        templates=(_union(reg, "template_source", names["templates"]), Field(
            default_factory=lambda: reg.get("template_source", "local").Options(),
            description="Where templates come from.")),
        writers=(list[_union(reg, "writer", names["writers"])], Field(
            default_factory=lambda: [reg.get("writer", "legacy").Options()], min_length=1,
            description="Outputs to write.")),
    )


_REGISTRIES: dict[int, Registry] = {}


def run_config_model(reg: Registry | None = None, types: Narrowing = ALL_TYPES,
                     absent: frozenset[str] = frozenset()):
    """The RunConfig pydantic model for the installed plugins.

    ``types`` narrows each plugin section's union to some plugins, and the ``absent`` optional
    sections (:data:`OPTIONAL_SECTIONS`) can only be null (see :func:`_narrowing`): a config is
    validated by the model of what it holds, so the other plugins' Options and the sections it
    does not use are never built (pydantic builds a model's validator on first use,
    ``defer_build``); the schema and the docs use the full model.
    """
    reg = reg or get_registry()
    _REGISTRIES[id(reg)] = reg
    return _run_model_for(id(reg), types, absent)


def _narrowing(data: dict) -> tuple[Narrowing, frozenset[str]]:
    """The plugin names a checked config dict's sections give (:func:`_check_plugin_types` filled
    in missing types; a missing section takes its default plugin: ``templates`` local,
    ``writers`` legacy; ``recording`` missing: all, the error is the missing field), and the
    optional sections it leaves out or sets to null."""
    def names(section: str) -> frozenset[str] | None:
        entry = data.get(section)
        if section == "writers":
            return (frozenset(w["type"] for w in entry) if entry else frozenset({"legacy"}))
        if entry is None:
            return {"templates": frozenset({"local"}), "sorting": frozenset()}.get(section)
        return frozenset({entry["type"]})

    types = tuple((section, names(section)) for section in SECTIONS)
    return types, frozenset(s for s in OPTIONAL_SECTIONS if data.get(s) is None)


def json_schema(reg: Registry | None = None) -> dict:
    """JSON Schema of a run config (what ``hybridkit config schema`` prints)."""
    schema = run_config_model(reg).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hybridkit run config"
    return schema


# ---------------------------------------------------------------------------------------------
# Loading


#: more values than any config holds (inline motion tables included)
MAX_CONFIG_VALUES = 1_000_000


def _expands_beyond(data, limit: int) -> bool:
    """True when walking ``data`` (shared YAML aliases counted each time) visits > ``limit`` values."""
    stack, seen = [data], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple, set)):
            stack.extend(node)
    return False


def read_config_file(path: Path) -> dict:
    """Parse a JSON or YAML config file into a dict (ConfigError on syntax errors)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply to be a config") from None
        except yaml.YAMLError as exc:
            # pyyaml prints the offending line with a caret over several lines: keep one
            mark = getattr(exc, "problem_mark", None)
            where = f"{mark.line + 1}:{mark.column + 1}:" if mark else ""
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise ConfigError(f"{path}:{where} not valid YAML ({problem})") from None
        if _expands_beyond(data, MAX_CONFIG_VALUES):
            # YAML aliases of aliases expand exponentially ("billion laughs") when walked
            raise ConfigError(f"{path}: expands to more than {MAX_CONFIG_VALUES} values (YAML "
                              "aliases of aliases?); a config is a few hundred")
        try:  # a config is JSON's data model: YAML's dates, sets and complex keys are not
            data = json.loads(json.dumps(data))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: holds a value a config cannot hold ({exc}); quote dates "
                              "and times, and use plain string keys") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a JSON object, got {type(data).__name__}")
    return data


def _check_plugin_types(data: dict, reg: Registry, source: str, base_dir: Path) -> None:
    """Resolve missing types and give the 'no X named Y; installed: ...' message for unknown ones."""
    for section, kind in SECTIONS.items():
        entries = data.get(section)
        if section == "writers":
            if entries is None:
                continue
            if not isinstance(entries, list):
                raise ConfigError(f"{source}: writers must be a list of writer sections, got {entries!r}")
            items = [(f"writers[{i}]", e) for i, e in enumerate(entries)]
        else:
            if entries is None:
                continue
            items = [(section, entries)]
        for label, entry in items:
            if not isinstance(entry, dict):
                raise ConfigError(f"{source}: {label} must be an object with a 'type', got {entry!r}")
            if "type" not in entry:
                if section == "sorting" and "path" in entry:
                    where = _from_config(entry["path"], base_dir)
                    if not where.exists():  # say so, rather than that no format matches
                        raise ConfigError(f"{source}: sorting.path: '{where}' does not exist "
                                          "(sorting.type is detected from what is there)")
                    entry["type"] = detect_sorter_type(where, reg, f"{source}: sorting.type is missing",
                                                       "set sorting.type to")
                elif section in DEFAULT_TYPES:
                    entry["type"] = DEFAULT_TYPES[section]
                else:
                    raise ConfigError(
                        f"{source}: {label}.type is missing; installed: {', '.join(reg.names(kind))}"
                    )
            name = entry["type"]
            if not isinstance(name, str):
                raise ConfigError(
                    f"{source}: {label}.type = {json.dumps(name)}: must be one plugin name (a string); "
                    f"installed: {', '.join(reg.names(kind)) or '(none)'}"
                )
            if name not in reg.plugins[kind]:
                raise ConfigError(
                    f"{source}: {label}.type: no {kind.replace('_', ' ')} named {name!r}; "
                    f"installed: {', '.join(reg.names(kind)) or '(none)'}"
                )
    writers = data.get("writers") or []
    names = [w.get("type") for w in writers if isinstance(w, dict)]
    for w in names:
        cls = reg.get("writer", w)
        for need in getattr(cls, "requires", ()):
            if need not in names:
                raise ConfigError(f"{source}: writers: writer {w!r} needs writer {need!r} in the same "
                                  f"run; add {{\"type\": \"{need}\"}} to writers")


def _from_config(path: Any, base_dir: Path) -> Path:
    """A path as written in the config, relative ones taken from the config's folder."""
    p = Path(str(path)).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p


def validate_config(data: dict, base_dir: Path, source: str = "config", reg: Registry | None = None):
    """Validate a config dict (paths resolved against ``base_dir``) into a RunConfig instance."""
    reg = reg or get_registry()
    data = json.loads(json.dumps(data))  # a private copy we may fill in (types)
    _check_plugin_types(data, reg, source, Path(base_dir))
    model = run_config_model(reg, *_narrowing(data))
    for kind in SECTIONS.values():
        PLUGIN_TAGS.update(reg.names(kind))
    try:
        recording_type = (data.get("recording") or {}).get("type")
        cfg = model.model_validate(data, context={"base_dir": Path(base_dir),
                                                  "recording_type": recording_type})
    except ValidationError as exc:
        raise ConfigError(explain(exc, source, model, data)) from exc
    _check_sorting_needs(cfg, reg, source)
    _check_motion_memory(cfg, source)
    cfg._base_dir = Path(base_dir)  # type: ignore[attr-defined]
    cfg._source = source  # type: ignore[attr-defined]
    return cfg


def _check_sorting_needs(cfg, reg: Registry, source: str) -> None:
    """Sections that become required through other choices (templates from units, source trains)."""
    tpl = reg.get("template_source", cfg.templates.type)
    if tpl.uses_sorting_units:
        for section in ("sorting", "units"):
            if getattr(cfg, section) is None:
                raise ConfigError(f"{source}: missing required field {section} (template source "
                                  f"{cfg.templates.type!r} builds templates from sorted units)")
    if cfg.sorting is None and cfg.injection.trains.mode == "source":
        raise ConfigError(f"{source}: missing required field sorting (injection.trains.mode "
                          "\"source\" reuses the source units' spike times; or use mode \"poisson\")")


def _check_motion_memory(cfg, source: str) -> None:
    """Synthetic motion precomputes each drifting unit's template at every motion.grid_um step
    within +-(sum of amplitudes): bound that memory now, by engine.max_memory_mb, rather than
    failing with a MemoryError after the templates are built (1e5 um asked for ~110 GiB)."""
    motion = cfg.motion
    if motion is None or not motion.synthetic:
        return
    from hybridkit.engine.drift import VARIANT_BYTES, variants_per_unit

    span = sum(s.amplitude_um for s in motion.synthetic)
    units = cfg.units
    n_units = len(units.ids) if units is not None and units.ids else (
        units.max_count if units is not None and units.max_count else 1)
    budget = cfg.engine.max_memory_mb * 2**20
    need = variants_per_unit(span, motion.grid_um) * VARIANT_BYTES * n_units
    if need <= budget:
        return
    biggest = max(range(len(motion.synthetic)), key=lambda i: motion.synthetic[i].amplitude_um)
    # the largest sum of amplitudes whose variants fit the budget
    max_span = ((budget // (VARIANT_BYTES * n_units)) - 1) // 2 * motion.grid_um
    raise ConfigError(
        f"{source}: motion.synthetic[{biggest}].amplitude_um = {motion.synthetic[biggest].amplitude_um:g}: "
        f"templates precomputed every {motion.grid_um:g} um over +-{span:g} um need about "
        f"{need / 2**30:.1f} GiB for {n_units} unit(s), more than engine.max_memory_mb = "
        f"{cfg.engine.max_memory_mb}; keep the amplitudes' sum within {max_span:g} um, or raise "
        "motion.grid_um or engine.max_memory_mb")


def load_config(path: str | Path, reg: Registry | None = None):
    """Load, validate and return the RunConfig in ``path`` (JSON, or YAML by extension)."""
    path = Path(path)
    data = read_config_file(path)
    cfg = validate_config(data, path.resolve().parent, str(path), reg)
    cfg._config_path = path.absolute()  # type: ignore[attr-defined]
    return cfg

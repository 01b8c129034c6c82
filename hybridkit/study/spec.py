"""The study file (YAML or JSON): a base run config, sources, a grid, sorter outputs, the cluster.

Validated like the run config: pydantic models with unknown keys forbidden, and every problem
one :class:`~hybridkit.errors.StudyError` line naming the file, the field, the bad value and what
is valid (:func:`hybridkit.config.explain.explain`). Paths are relative to the study file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from hybridkit.config.explain import explain
from hybridkit.config.run_config import read_config_file
from hybridkit.errors import ConfigError, StudyError
from hybridkit.options import ConfigPath, StrictModel

#: names of sources, grid values and sorters become folder and column names
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: run-config fields the study sets itself (per dataset) or takes from ``sources``
RESERVED_GRID_KEYS = ("recording", "sorting", "output", "session", "writers")
#: memory a worker needs beside the engine's ``engine.max_memory_mb``: the interpreter, numpy,
#: pydantic, pynwb and dask themselves, and template building (~130 MB peak, docs/architecture.md)
WORKER_OVERHEAD_MB = 1024


def _check_name(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(f"{what} {value!r} must be letters, digits, '.', '_' or '-' (it names "
                         "folders and table columns)")
    return value


class SourceSpec(StrictModel):
    """One recording and the sorting of it; the sections of a run config, replacing the base's."""

    recording: dict[str, Any] = Field(description="The run config's `recording` section.")
    sorting: dict[str, Any] | None = Field(
        None, description="The run config's `sorting` section (absent: the base's is dropped).")


class SorterSpec(StrictModel):
    """Where one sorter's output on each dataset is (written by the user's sorter runs)."""

    path: str = Field(description="Path pattern with {dataset} (the dataset's name) and "
                      "optionally {output} (the dataset's output folder); relative to the study file.")
    type: str | None = Field(None, description="Sorter adapter; default: detected from the path.")

    @model_validator(mode="before")
    @classmethod
    def _from_pattern(cls, value):
        return {"path": value} if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _has_dataset(cls, value: str) -> str:
        if "{dataset}" not in value and "{output}" not in value:
            raise ValueError("the pattern must hold {dataset} or {output} (one output per dataset)")
        try:
            value.format(dataset="x", output="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{dataset}} and {{output}} may be used ({exc})") from None
        return value


class ClusterSpec(StrictModel):
    """The local Dask cluster `study run` and `study score` start (unless given --scheduler)."""

    workers: int = Field(2, ge=1, description="Worker processes; each runs one dataset at a time.")
    memory_limit_mb: int | None = Field(
        None, ge=256, description="Memory limit of each worker process (MB), passed to "
        f"LocalCluster(memory_limit=...); default: the datasets' largest engine.max_memory_mb + "
        f"{WORKER_OVERHEAD_MB}.")


class ScoreSpec(StrictModel):
    """Settings of `study score` (those of `hybridkit score`)."""

    tolerance_ms: float = Field(0.4, gt=0, description="Spikes match within this many ms.")
    match_score: float = Field(0.5, ge=0, le=1, description="Minimum agreement of a match.")
    well_detected_score: float = Field(0.8, ge=0, le=1, description="Agreement of a well-detected unit.")
    exclude_source_units: bool = Field(False, description="As `hybridkit score --exclude-source-units`.")
    signal_metrics: bool = Field(True, description="Template similarity and SNR (read the hybrid "
                                 "recording; SNR is the report's x axis).")


class StudySpec(StrictModel):
    """A study: every combination of ``sources`` x ``grid`` is one dataset (one `generate`)."""

    name: str | None = Field(None, description="The study's name (default: the file's stem).")
    base: str | dict[str, Any] = Field(
        description="The base run config: a file (as `hybridkit generate` takes, paths relative to "
        "it) or the config inline (paths relative to the study file).")
    sources: dict[str, SourceSpec] | None = Field(
        None, description="Recordings with their sortings, by name (default: the base's, named "
        "after its session or 'base').")
    grid: dict[str, list[Any] | dict[str, Any]] = Field(
        default_factory=dict, description="Dotted run-config field -> values (a list; or a mapping "
        "name -> value, the name then labels the dataset). Every combination is one dataset.")
    output: ConfigPath = Field(description="The study folder: datasets/<name>/, scores/, study.json.")
    sorters: dict[str, SorterSpec] = Field(
        default_factory=dict, description="Sorter name -> where its output on each dataset is "
        "(a pattern, or {path, type}).")
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    score: ScoreSpec = Field(default_factory=ScoreSpec)

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value):
        if value is not None:
            if not value:
                raise ValueError("give at least one source, or leave sources out to use the base's")
            for name in value:
                _check_name(name, "source name")
        return value

    @field_validator("sorters")
    @classmethod
    def _sorter_names(cls, value):
        for name in value:
            _check_name(name, "sorter name")
        return value

    @field_validator("grid")
    @classmethod
    def _grid(cls, value):
        for key, values in value.items():
            parts = key.split(".")
            if not all(parts):
                raise ValueError(f"grid key {key!r} must be a dotted config field (e.g. "
                                 "injection.amplitude.max)")
            if parts[0] in RESERVED_GRID_KEYS:
                raise ValueError(f"grid key {key!r}: {parts[0]} is set by the study (vary "
                                 "recordings and sortings through sources)")
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
            if isinstance(values, dict):
                for name in values:
                    _check_name(name, f"grid value name of {key}")
        return value

    @model_validator(mode="after")
    def _labels_unique(self):
        from hybridkit.study.expand import value_labels

        for key, values in self.grid.items():
            labels = value_labels(values)
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            if dupes:
                raise ValueError(f"grid key {key!r}: values {dupes} name two datasets alike; give "
                                 "the values as a mapping name -> value")
        return self


def load_study(path: str | Path) -> tuple[StudySpec, Path]:
    """Read and validate a study file; returns the spec and the study file's folder."""
    path = Path(path)
    try:
        data = read_config_file(path)
    except ConfigError as exc:
        raise StudyError(str(exc).replace("config file", "study file")) from None
    base_dir = path.resolve().parent
    try:
        spec = StudySpec.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise StudyError(explain(exc, str(path), StudySpec, data)) from None
    if spec.name is None:
        spec.name = path.stem
    return spec, base_dir

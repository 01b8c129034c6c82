"""`hybridkit config check`: every path the run reads exists and is of the right kind.

Plugin options mark such paths with :data:`hybridkit.options.InputFile`, ``InputFolder`` or
``InputPath``; this walks a validated RunConfig (nested sections too) and raises one
ConfigError naming the field, the path and what was expected. Loading a config does not check
paths (a config may be written before its data exist); `config check` does, before any work.
A file path holding a glob pattern (SpikeGLX ``run_g0_t*.imec0.ap.bin``) must match a file.
"""
from __future__ import annotations

import glob
import typing
from pathlib import Path

from pydantic import BaseModel

from hybridkit.errors import ConfigError
from hybridkit.options import InputKind

#: the config sections holding inputs (writers and output name outputs)
INPUT_SECTIONS = ("recording", "sorting", "templates", "motion")


def _input_kind(annotation) -> str | None:
    """The InputKind of a field's annotation (looking inside Optional/Union), else None."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, InputKind):
            return meta.kind
    for arg in typing.get_args(annotation):
        kind = _input_kind(arg)
        if kind is not None:
            return kind
    return None


def _walk(model: BaseModel, prefix: str):
    """(field name, value, kind) for every marked path in ``model`` and its nested models."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        field = f"{prefix}.{name}"
        if isinstance(value, BaseModel):
            yield from _walk(value, field)
            continue
        kind = _input_kind(info.annotation)
        if kind is None:
            for meta in info.metadata:  # a non-optional Annotated field keeps its markers here
                if isinstance(meta, InputKind):
                    kind = meta.kind
        if kind is not None and value is not None:
            yield field, Path(value), kind


def path_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` is not an existing ``kind`` ("file", "folder", "file or folder"), or None."""
    if glob.has_magic(path.name) and kind == "file":
        return None if any(Path(p).is_file() for p in glob.glob(str(path))) else \
            f"no file matches the pattern '{path}'"
    if not path.exists():
        return f"{kind} '{path}' does not exist"
    if kind == "file" and not path.is_file():
        return f"'{path}' is a folder; a file is expected"
    if kind == "folder" and not path.is_dir():
        return f"'{path}' is a file; a folder is expected"
    return None


def check_input_paths(cfg, source: str = "config") -> int:
    """Raise ConfigError for the first marked input path that is missing or of the wrong kind.

    Returns how many paths were checked.
    """
    checked = 0
    for section in INPUT_SECTIONS:
        model = getattr(cfg, section, None)
        if model is None:
            continue
        for field, path, kind in _walk(model, section):
            problem = path_problem(path, kind)
            if problem:
                raise ConfigError(f"{source}: {field}: {problem}")
            checked += 1
    return checked

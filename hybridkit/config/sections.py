"""Plugins from config sections, one way for every command.

``generate`` builds its plugins from a validated run config; ``units``, ``score`` and ``report`` build
them from a bare path or from ``config.resolved.json``. All go through :func:`plugin_from_section`,
and a sorting given by a path alone gets its adapter from :func:`detect_sorter_type` and is read by
:func:`load_sorting`, so the three commands accept and refuse the same inputs with the same words.
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from hybridkit.errors import ConfigError, SortingError
from hybridkit.hookspecs import Plugin, RunContext
from hybridkit.model import Recording, Sorting
from hybridkit.options import PluginOptions
from hybridkit.registry import Registry, get_registry


def plugin_from_section(reg: Registry, kind: str, section: PluginOptions | dict, base_dir: Path,
                        context: RunContext | None = None, what: str = "") -> Plugin:
    """The plugin of ``kind`` a config section names, constructed with its validated options.

    ``section`` is a validated ``Options`` instance (a run config's) or a raw dict with a ``type``
    (validated here; relative paths taken from ``base_dir``). ``context`` defaults to the one of a
    plugin used outside a run. A raw section that does not validate raises ConfigError naming
    ``what`` (e.g. ``--type kilosort``), the field and pydantic's reason.
    """
    base_dir = Path(base_dir)
    if isinstance(section, dict):
        cls = reg.get(kind, section.get("type"))
        try:
            options = cls.Options.model_validate(section, context={"base_dir": base_dir})
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(map(str, err["loc"])) or "(section)"
            raise ConfigError(f"{what or kind}: {kind.replace('_', ' ')} {cls.name!r}: {field}: "
                              f"{err['msg']} (got {err.get('input')!r})") from None
    else:
        cls, options = reg.get(kind, section.type), section
    return cls(options, context if context is not None else RunContext.outside_run(base_dir))


def detect_sorter_type(path: Path, reg: Registry, what: str, fix: str) -> str:
    """The one sorter adapter whose ``detect`` accepts ``path``.

    None or several is a ConfigError: ``what`` says where the path came from (``config.json:
    sorting.type is missing``, ``SORTING``), ``fix`` how to name the type (``set sorting.type to``).
    """
    hits = []
    for name, cls in sorted(reg.table("sorter_adapter").items()):
        try:
            if cls.detect(path):
                hits.append(name)
        except Exception:  # one adapter's detector must not break detection for the others
            continue
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ConfigError(f"{what}: no sorter adapter recognises {path}; {fix} one of: "
                          f"{', '.join(reg.names('sorter_adapter'))}")
    raise ConfigError(f"{what}: {path} looks like several formats: {', '.join(hits)}; "
                      f"{fix} one of them")


def section_file(path: Path) -> dict | None:
    """A .json file holding a config ``sorting`` section (``{"type": ..., ...}``, e.g. a
    SpikeInterface extractor and its arguments), or None for any other path."""
    if not (path.is_file() and path.suffix == ".json"):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("type"), str) else None


def load_sorting(path: str | Path, type_: str | None = None, *, base_dir: Path | None = None,
                 recording: Recording | None = None, options: PluginOptions | None = None,
                 what: str = "SORTING", reg: Registry | None = None) -> tuple[str, Sorting]:
    """Read a sorter's output given by its path: ``(adapter type, Sorting)``.

    The adapter is ``type_``, else the one that detects ``path``; ``options`` (a run config's
    sorting section for this path) replace the path-only options, and so does a .json file
    holding a sorting section (:func:`section_file`; its ``type`` unless ``type_`` is given). With ``recording`` the adapter
    checks the sorting against it. A relative ``path`` is taken from ``base_dir`` (default: the
    current folder). ``what`` names the input in errors (``SORTING``, ``hybridkit units``).
    """
    reg = reg or get_registry()
    base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    path = Path(path).expanduser()
    path = (path if path.is_absolute() else base_dir / path).resolve()
    if not path.exists():
        raise SortingError(f"{what} {path} does not exist")
    from_file = section_file(path) if options is None else None
    if type_ is None and from_file is not None:
        type_ = str(from_file["type"])
    type_ = type_ or detect_sorter_type(path, reg, what, "give --type,")
    section = options if options is not None else (
        {**from_file, "type": type_} if from_file is not None else {"type": type_, "path": str(path)})
    adapter = plugin_from_section(reg, "sorter_adapter", section, path.parent,
                                  what=f"{what} {path} (--type {type_}; a run config can give more options)")
    return type_, adapter.load(recording)

"""Never lose data: the output folder is checked against every input before any work.

``output.overwrite`` renames the old output away and deletes it when the run commits, so an
output folder that is, holds, or lies inside an input (the source recording's files, the sorting,
the motion file, the config file itself, the template cache) would delete that input. Such a
folder is refused; and ``overwrite`` replaces only a folder hybridkit itself wrote (its
``manifest.json`` says ``"tool": "hybridkit"`` and every entry is one the manifest lists).

Used by ``generate`` before the staging folder is made and by ``hybridkit config check``; the
commands that write files beside a run (``score``, ``report``, ``units --csv``, ``example``,
``study report``, ``augment``, ``publish --dandiset-dir``) check their output paths with the same rule (:func:`check_not_an_input`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from hybridkit.errors import OutputError

MANIFEST = "manifest.json"
#: what other hybridkit commands write into an output by default (``score``, ``report``)
DERIVED_ENTRIES = ("scores", "report.html")
#: a manifest larger than this is not one hybridkit wrote (they are kilobytes to a few MB)
MANIFEST_MAX_BYTES = 64 * 1024 * 1024
#: entries named in the "holds ..." part of a message
SHOWN_ENTRIES = 3


def output_dir(cfg) -> Path:
    """The absolute output folder of a run config (default ``hybrid_output`` beside the config)."""
    return Path(cfg.output.directory or cfg.base_dir / "hybrid_output").resolve()


def _path_fields(value, label: str) -> Iterator[tuple[str, Path]]:
    """(dotted field name, path) of every Path value in a config model, depth first."""
    if isinstance(value, Path):
        yield label, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _path_fields(getattr(value, name), f"{label}.{name}" if label else name)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _path_fields(item, f"{label}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _path_fields(item, f"{label}.{key}")


def config_inputs(cfg, reg=None) -> list[tuple[str, Path]]:
    """Every local file or folder a run reads, as (what it is, absolute path).

    The path fields of the whole config (recording, sorting, motion, templates' cache, ...) except
    ``output.directory``; what each chosen plugin reports beyond its path fields
    (:meth:`hybridkit.hookspecs.Plugin.extra_inputs`: the .meta beside each .bin, the files a
    pattern matches, a default cache folder); and the config file itself.
    """
    from hybridkit.registry import get_registry

    reg = reg or get_registry()
    found = [(label, p) for label, p in _path_fields(cfg, "") if label != "output.directory"]
    sections = [("recording", "source_reader", cfg.recording),
                ("sorting", "sorter_adapter", cfg.sorting),
                ("templates", "template_source", cfg.templates)]
    sections += [(f"writers[{i}]", "writer", w) for i, w in enumerate(cfg.writers)]
    for label, kind, options in sections:
        if options is not None:
            found += reg.get(kind, options.type).extra_inputs(options)
    if cfg.config_path is not None:
        found.append(("the config file", cfg.config_path))
    return [(label, Path(os.path.expanduser(p)).absolute()) for label, p in found]


def _real(path: Path) -> Path:
    """The path with symlinks and ``..`` resolved (as far as it exists)."""
    return Path(os.path.realpath(path))


def check_not_an_input(out: Path, inputs: list[tuple[str, Path]], option: str = "output.directory") -> None:
    """OutputError when ``out`` is, holds, or lies inside one of ``inputs`` (after realpath).

    ``option`` is what the message names: the config field, or a command's option (``score
    --out``) for the commands that write files beside a run (``score``, ``report``, ``units
    --csv``, ``example``)."""
    real_out = _real(out)
    for label, path in inputs:
        real_in = _real(path)
        if real_out == real_in:
            how = "is"
        elif real_out in real_in.parents:
            how = "holds"
        elif real_in in real_out.parents:
            how = "lies inside"
        else:
            continue
        what = "folder" if option == "output.directory" else "path"
        raise OutputError(f"{option}: {out} {how} {label} {path}; overwriting or writing "
                          f"there could destroy an input: choose a {what} outside every input")


def output_inputs(output: Path) -> list[tuple[str, Path]]:
    """What a command reading a finished output (``score``, ``report``) must never overwrite.

    ``output`` is the path given (an output folder, its phy folder, an NWB file): it when it is a
    file; and, for the hybridkit output folder holding it, its manifest, every file the manifest
    lists (not the folder: ``scores/`` and ``report.html`` belong inside it) and its local source
    recordings.
    """
    output = Path(output).absolute()
    found = [("OUTPUT_DIR", output)] if output.is_file() else []
    for folder in (output, *output.parents[:2]):
        manifest = hybridkit_manifest(folder) if folder.is_dir() else None
        if manifest is None:
            continue
        found.append((f"the output's {MANIFEST}", folder / MANIFEST))
        found += [("the output's file", folder / str(f["path"])) for f in manifest["files"]
                  if isinstance(f, dict) and f.get("path")]
        found += [("the output's source recording", Path(str(src["path"])))
                  for src in manifest.get("sources") or []
                  if isinstance(src, dict) and os.path.isabs(str(src.get("path", "")))]
        break
    return found


def check_output_file(option: str, out: Path, inputs: list[tuple[str, Path]]) -> Path:
    """A command's output file ``out`` (absolute): not an input, not inside one, not a folder.

    Raises:
        OutputError: one line naming ``option`` and ``out``.
    """
    out = Path(os.path.expanduser(out)).absolute()
    check_not_an_input(out, inputs, option)
    if out.is_dir():
        raise OutputError(f"{option}: {out} is a folder; give the path of a file to write")
    return out


def hybridkit_manifest(folder: Path) -> dict | None:
    """The folder's manifest.json when it is one hybridkit wrote ("tool": "hybridkit"), else None."""
    path = folder / MANIFEST
    try:
        if not path.is_file() or path.stat().st_size > MANIFEST_MAX_BYTES:
            return None
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("tool") != "hybridkit" \
            or not isinstance(manifest.get("files"), list):
        return None
    return manifest


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_ENTRIES])
    return f"{shown}, ... ({len(names)} entries)" if len(names) > SHOWN_ENTRIES else shown


def replace_refusal(out: Path, overwrite: bool) -> str | None:
    """Why ``out`` may not become (or be replaced by) a run's output, or None when it may.

    It may when it is absent, or with ``overwrite`` when it is hybridkit's own output or empty
    (nothing is lost). A hybridkit output that holds entries its manifest does not list (a
    sorter's results saved inside it, notes) may not: replacing it would delete them.
    """
    if not out.exists() and not out.is_symlink():
        return None
    if not out.is_dir() or out.is_symlink():
        return "exists and is not a folder; choose a folder"
    try:
        names = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        return f"cannot be listed ({exc.strerror or exc}); choose another folder"
    manifest = hybridkit_manifest(out)
    if not overwrite:
        what = "a hybridkit output" if manifest is not None else \
            f"holding {_listing(names)}" if names else "empty"
        return ("already exists (" + what + "); set output.overwrite to true to replace a "
                "hybridkit output, or choose another folder")
    if not names:
        return None
    if manifest is None:
        return (f"holds {_listing(names)} and is not a hybridkit output (no hybridkit {MANIFEST}); "
                "overwrite replaces only a folder hybridkit wrote: choose another folder")
    listed = {str(f.get("path", "")).split("/")[0] for f in manifest["files"] if isinstance(f, dict)}
    foreign = [n for n in names if n not in listed | {MANIFEST, *DERIVED_ENTRIES}]
    if foreign:
        return (f"is a hybridkit output but also holds {_listing(foreign)}, which its {MANIFEST} "
                "does not list; overwrite would delete them: move them out or choose another folder")
    return None


def check_replaceable(out: Path, overwrite: bool) -> None:
    """OutputError naming ``out`` and why, when :func:`replace_refusal` refuses it."""
    reason = replace_refusal(out, overwrite)
    if reason is not None:
        raise OutputError(f"output.directory: {out} {reason}")


def check_output(cfg, reg=None) -> Path:
    """Check a run's output folder before any work; return it (absolute).

    Raises:
        OutputError: it is, holds or lies inside an input, or it exists and may not be replaced.
    """
    out = output_dir(cfg)
    check_not_an_input(out, config_inputs(cfg, reg))
    check_replaceable(out, cfg.output.overwrite)
    return out

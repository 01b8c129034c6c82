"""Rebuild a run config from a hybrid NWB file (``hybridkit generate --from-nwb``).

The NWB's ``processing/hybridkit`` tables (written by hybridkit/plugins/writers/nwb/provenance.py)
hold the resolved config without absolute paths and the inputs by identity. To run it again:

* a source streamed from DANDI or a URL is named in the config itself: nothing to find;
* a local input (the source binary, the sorter's folder, a motion file, ...) is looked up by its
  base name in the folders given (``--inputs DIR``, default the current folder), and must have the
  size and SHA-256 the NWB records (a folder: every file it lists, by size and SHA-256), so a
  regenerated dataset is made from exactly the same bytes;
* the output goes to a new folder (``-o``).

Same config + same inputs + same seed = the same ground truth (the pipeline is deterministic).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hybridkit.errors import PublishError
from hybridkit.formats.json_pointers import unflatten

log = logging.getLogger(__name__)

MODULE = "processing/hybridkit"


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def table_columns(h5, name: str) -> dict[str, list]:
    """A provenance table as {column: values} (text decoded); {} when absent."""
    if f"{MODULE}/{name}" not in h5:
        return {}
    group = h5[f"{MODULE}/{name}"]
    out: dict[str, list] = {}
    for col in group:
        if col.endswith("_index") or col == "id":
            continue
        data = group[col][()]
        out[col] = [_text(v) for v in data] if data.dtype.kind in "SOU" else data.tolist()
    return out


def read_provenance(h5, label: str) -> tuple[dict, list[dict[str, Any]], list[dict[str, Any]]]:
    """``(config, inputs, input_files)`` stored in an open hybrid NWB file."""
    cfg = table_columns(h5, "run_config")
    if not cfg:
        raise PublishError(f"{label}: holds no hybridkit run config ({MODULE}/run_config); it was "
                           "not written by hybridkit >= 0.2's nwb writer, so it cannot be regenerated")
    config = unflatten(list(zip(cfg["field"], cfg["value"])))
    inputs = records(table_columns(h5, "inputs"))
    files = records(table_columns(h5, "input_files"))
    return config, inputs, files


def records(columns: dict[str, list]) -> list[dict[str, Any]]:
    """A table of {column: values} as one dict per row."""
    n = len(next(iter(columns.values()), []))
    return [{k: v[i] for k, v in columns.items()} for i in range(n)]


def _set(doc: dict, pointer: str, value) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node: Any = doc
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


def _find(name: str, search: list[Path]) -> list[Path]:
    return [d / name for d in search if (d / name).exists()]


def _check_file(path: Path, row: dict, label: str, digests=None) -> str | None:
    """Why ``path`` is not the recorded input, or None when it is (its SHA-256 through the run's
    ``digests`` when given: the run that follows then does not read it again)."""
    from hybridkit.formats.checksums import FileDigests

    digests = digests if digests is not None else FileDigests()
    if not path.is_file():
        return f"{path} is not a file"
    size = path.stat().st_size
    if row["bytes"] >= 0 and size != row["bytes"]:
        return f"{path} has {size} bytes, the NWB names {row['bytes']}"
    if row.get("sha256") and digests.sha256(path) != row["sha256"]:
        return f"{path} has another SHA-256 than the NWB names ({row['sha256'][:12]}...)"
    return None


def _check_folder(path: Path, field: str, files: list[dict], digests=None) -> str | None:
    if not path.is_dir():
        return f"{path} is not a folder"
    for f in (f for f in files if f["field"] == field):
        why = _check_file(path / f["file_name"], {"bytes": int(f["bytes"]), "sha256": f["sha256"]}, "",
                          digests)
        if why:
            return why
    return None


def rebind_inputs(config: dict, inputs: list[dict], files: list[dict], search: list[Path],
                  label: str, digests=None) -> dict:
    """The config with every local input pointed at a matching file in ``search`` folders
    (``digests``: the run's :class:`hybridkit.formats.checksums.FileDigests`)."""
    for row in inputs:
        if row["kind"] == "dandi_asset" and row.get("dandiset_version"):
            # "latest" may have moved on since: read the version the run read
            config["recording"]["dandiset_version"] = row["dandiset_version"]
        if row["kind"] not in ("file", "folder"):
            continue  # DANDI assets and URLs are named in the config itself
        hits = _find(row["file_name"], search)
        reasons = []
        for hit in hits:
            why = (_check_file(hit, row, label, digests) if row["kind"] == "file"
                   else _check_folder(hit, row["field"], files, digests))
            if why is None:
                _set(config, row["field"], str(hit.resolve()))
                break
            reasons.append(why)
        else:
            where = ", ".join(str(d) for d in search)
            detail = "; ".join(reasons) if reasons else f"not found in {where}"
            raise PublishError(f"{label}: input {row['field'].lstrip('/').replace('/', '.')} = "
                               f"{row['file_name']!r} ({row['kind']}, {row['bytes']} bytes): {detail}; "
                               "give the folder holding it with --inputs DIR")
    return config


def config_from_nwb(name: str, search: list[Path], output: Path | None, digests=None) -> dict:
    """The run config stored in the hybrid NWB ``name`` (path, URL or dandi:// asset), with local
    inputs found in ``search`` and the output folder ``output`` (default ``<session>-regenerated``
    in the current folder). The result validates with :func:`load_config`'s validator.

    ``digests`` (a :class:`hybridkit.formats.checksums.FileDigests`), handed on to ``generate``,
    lets the run reuse the SHA-256 of each input checked here instead of reading it again."""
    from hybridkit.publish.remote import open_hybrid_nwb

    handle = open_hybrid_nwb(name, "--from-nwb")
    try:
        config, inputs, files = read_provenance(handle.h5, handle.label)
    finally:
        handle.close()
    config = rebind_inputs(config, inputs, files, [Path(d).resolve() for d in search], handle.label,
                           digests)
    out = output or Path.cwd() / f"{config.get('session') or 'hybrid'}-regenerated"
    config.setdefault("output", {})["directory"] = str(Path(out).resolve())
    return config


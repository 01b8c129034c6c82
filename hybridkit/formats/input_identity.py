"""A run's inputs named by what they are, not by where they were on the machine that wrote them.

A resolved config holds absolute paths (every ``ConfigPath`` is resolved against the config's
folder). A published NWB must not: :func:`portable_config` replaces each absolute path by its base
name and returns one *input* row per path that exists, naming it by identity:

* a file: ``name``, ``bytes``, ``sha256``;
* a folder (a phy/Kilosort output): ``name`` and, per file inside, its relative name, bytes and
  SHA-256 (files above :data:`HASH_MAX_BYTES` only by size: a Kilosort folder may hold a whitened
  copy of the recording that no adapter reads);
* a recording streamed from DANDI: the instance, dandiset, version, asset id and path, size and the
  archive's SHA-256 when it has one; from a URL: the URL and its size.

Paths that do not exist (the output folder, still being written) keep only their base name.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hybridkit.formats.json_pointers import flatten, unflatten
from hybridkit.formats.checksums import SIDECAR_MAX_BYTES, sha256

log = logging.getLogger(__name__)

#: files in an input folder above this size are named by size only (see the module docstring)
HASH_MAX_BYTES = SIDECAR_MAX_BYTES

#: columns of an input row, in table order (text columns; "" when not applicable; bytes -1 unknown)
INPUT_COLUMNS = ("field", "kind", "file_name", "bytes", "sha256", "files", "url", "dandi_instance",
                 "dandiset", "dandiset_version", "asset_id", "asset_path")


def _hash(path: Path, cancel, digests) -> str:
    """Through the run's digests when given (the manifest then reuses the hash), else directly."""
    return digests.sha256(path, cancel=cancel) if digests is not None else sha256(path, cancel=cancel)


def file_identity(path: Path, cancel=None, digests=None) -> dict[str, Any]:
    return {"kind": "file", "file_name": path.name, "bytes": path.stat().st_size,
            "sha256": _hash(path, cancel, digests)}


def folder_identity(path: Path, cancel=None, digests=None) -> dict[str, Any]:
    """The folder's files (sorted relative POSIX names) with sizes and, below the limit, SHA-256."""
    files = []
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        size = p.stat().st_size
        files.append({"file_name": p.relative_to(path).as_posix(), "bytes": size,
                      "sha256": _hash(p, cancel, digests) if size <= HASH_MAX_BYTES else ""})
    return {"kind": "folder", "file_name": path.name, "bytes": sum(f["bytes"] for f in files), "files": files}


def dandi_asset_identity(dandiset: str, asset_path: str, version: str | None, instance: str) -> dict[str, Any]:
    """The asset's id, the dandiset version it was read from, its size and SHA-256 (when the
    archive has computed one). Failures are logged: provenance must not fail a finished run."""
    from hybridkit.formats.remote_http import dandi_client

    row: dict[str, Any] = {"kind": "dandi_asset", "file_name": asset_path.rsplit("/", 1)[-1],
                           "dandi_instance": instance, "dandiset": dandiset,
                           "dandiset_version": version or "", "asset_path": asset_path}
    try:
        with dandi_client(instance, "recording.dandi_instance") as client:
            ds = client.get_dandiset(dandiset, version, lazy=version is not None)
            asset = ds.get_asset_by_path(asset_path)
            meta = asset.get_raw_metadata()
            row.update(dandiset_version=ds.version_id, asset_id=asset.identifier, bytes=int(asset.size),
                       sha256=(meta.get("digest") or {}).get("dandi:sha2-256", ""))
    except Exception as exc:  # noqa: BLE001 - the identity is then the names given in the config
        log.warning("cannot look up DANDI asset %s/%s on %s for the provenance (%s)",
                    dandiset, asset_path, instance, exc)
    return row


def _recording_identity(recording: dict) -> dict[str, Any] | None:
    if recording.get("type") != "nwb":
        return None
    if recording.get("dandiset"):
        row = dandi_asset_identity(recording["dandiset"], recording["asset_path"],
                                   recording.get("dandiset_version"), recording.get("dandi_instance", "dandi"))
        row["field"] = "/recording/dandiset"
        return row
    if recording.get("url"):
        row = {"kind": "url", "field": "/recording/url", "url": recording["url"],
               "file_name": recording["url"].split("?")[0].rsplit("/", 1)[-1]}
        try:
            from hybridkit.formats.remote_http import open_url

            remote = open_url(recording["url"])
            row["bytes"] = remote.size
            remote.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot measure %s for the provenance (%s)", recording["url"], exc)
        return row
    return None


def portable_config(resolved: dict, cancel=None, digests=None) -> tuple[dict, list[dict[str, Any]]]:
    """``(config without absolute paths, input rows)`` of a resolved config (JSON form).

    Each row has every key of :data:`INPUT_COLUMNS`; ``files`` is a list for folders. ``cancel``
    (a threading.Event) stops the hashing when the run fails; ``digests`` (the run's
    :class:`hybridkit.formats.checksums.FileDigests`) shares each hash with the manifest."""
    rows = flatten(resolved)
    inputs: list[dict[str, Any]] = []
    out = []
    for pointer, text in rows:
        value = json.loads(text)
        if isinstance(value, str) and os.path.isabs(value):
            path = Path(value)
            if path.is_file():
                inputs.append({"field": pointer, **file_identity(path, cancel, digests)})
            elif path.is_dir():
                inputs.append({"field": pointer, **folder_identity(path, cancel, digests)})
            text = json.dumps(path.name)
        out.append((pointer, text))
    remote = _recording_identity(resolved.get("recording") or {})
    if remote is not None:
        inputs.append(remote)
    return unflatten(out), [complete_row(r) for r in inputs]


def complete_row(row: dict[str, Any]) -> dict[str, Any]:
    """An input row with every column (text "" and bytes -1 where not applicable)."""
    full = {c: "" for c in INPUT_COLUMNS}
    full.update({k: v for k, v in row.items() if v is not None})
    full["bytes"] = int(full["bytes"]) if full["bytes"] != "" else -1
    full["files"] = full["files"] or []
    return full

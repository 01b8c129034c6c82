"""SHA-256 of files, read in blocks (the manifest, the NWB provenance's inputs, ``verify``)."""
from __future__ import annotations

import hashlib
from pathlib import Path

from hybridkit.errors import OutputError

#: files up to this size count as sidecars for ``output.checksums = "sidecars"``
SIDECAR_MAX_BYTES = 64 * 1024 * 1024


def sha256(path: Path, block: int = 8 * 1024 * 1024, cancel=None) -> str:
    """Hex SHA-256 of a file, read in ``block`` bytes; ``cancel`` (a threading.Event) stops a
    long hash in a background thread (OutputError) when the run it belongs to failed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            if cancel is not None and cancel.is_set():
                raise OutputError(f"hashing {path} was cancelled")
            h.update(chunk)
    return h.hexdigest()

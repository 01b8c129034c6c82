"""SHA-256 of files, read in blocks (the manifest, the NWB provenance's inputs, ``verify``)."""
from __future__ import annotations

import hashlib
import os
import threading
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


class FileDigests:
    """The SHA-256 of each file computed once per run, whoever asks first.

    The NWB writer hashes the run's inputs in a background thread while the run goes on (its
    provenance), and the manifest hashes the source again at the end: one ``FileDigests`` per run
    (``RunContext.digests``) lets the second ask reuse the first's result, or wait for it while it
    is being computed. A file is known by (device, inode, size, mtime): a hard link is read once,
    and a file changed meanwhile (an in-place run patches its source) is hashed again. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[int, int, int, int], str] = {}
        self._busy: dict[tuple[int, int, int, int], threading.Event] = {}
        #: files actually read (for tests and logs): one entry per hash computed
        self.computed: list[Path] = []

    @staticmethod
    def _key(path: Path) -> tuple[int, int, int, int]:
        st = os.stat(path)
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def sha256(self, path: Path, cancel=None) -> str:
        """Hex SHA-256 of ``path`` (see :func:`sha256`), computed at most once per file state."""
        key = self._key(path)
        while True:
            with self._lock:
                if key in self._known:
                    return self._known[key]
                busy = self._busy.get(key)
                if busy is None:
                    busy = self._busy[key] = threading.Event()
                    break  # this thread computes it
            busy.wait()  # another thread computes it; if it failed (cancelled), try again
        try:
            digest = sha256(path, cancel=cancel)
            with self._lock:
                self.computed.append(Path(path))
                if self._key(path) == key:  # unchanged while it was read
                    self._known[key] = digest
            return digest
        finally:
            with self._lock:
                self._busy.pop(key, None)
            busy.set()

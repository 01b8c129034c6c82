"""The open files of a flat-binary recording, owned for as long as a run reads them.

:class:`hybridkit.model.Recording` is a plain description (paths, dtype, layout, gains). Reading
needs descriptors; a :class:`RecordingFiles` holds them, opens each file on first use (shared by
threads: template building and the injection workers read at once) and closes them all when its
``with`` block ends, so no descriptor outlives the run that opened it.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from hybridkit.formats.binio import Layout, read_block, read_windows, will_need


class RecordingFiles:
    """Positional reads across the consecutive files of one recording.

    ``files`` are the recording's SourceFile entries (``path``, ``n_samples``, ``offset_bytes``) in
    time order; ``dtype``, ``n_channels`` and ``order`` describe every file's samples.
    """

    def __init__(self, files: Sequence, dtype: np.dtype, n_channels: int, order: str) -> None:
        self.files = list(files)
        self.dtype = np.dtype(dtype)
        self.n_channels = int(n_channels)
        self.layouts = [Layout(self.dtype, self.n_channels, f.n_samples, f.offset_bytes, order)
                        for f in self.files]
        #: (n_files + 1,) int64 concatenated-clock sample at which each file starts, then the end
        self.bounds = np.concatenate([[0], np.cumsum([f.n_samples for f in self.files])]).astype(np.int64)
        self._fds: list[int | None] = [None] * len(self.files)
        self._lock = threading.Lock()

    def __enter__(self) -> "RecordingFiles":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fd(self, index: int) -> int:
        """A read-only descriptor of file ``index`` (opened on first use, shared by threads)."""
        fd = self._fds[index]
        if fd is None:
            with self._lock:  # two threads may ask for the same file at once
                fd = self._fds[index]
                if fd is None:
                    fd = self._fds[index] = os.open(self.files[index].path, os.O_RDONLY)
        return fd

    def _pieces(self, start: int, stop: int):
        """``(file index, first, stop)`` for each file that samples ``[start, stop)`` (concatenated
        clock) reach into, the samples counted from that file's start, in time order."""
        bounds = self.bounds
        i = max(int(np.searchsorted(bounds, start, side="right") - 1), 0)
        while i < len(self.files) and bounds[i] < stop:
            lo = int(bounds[i])
            a, b = max(start, lo), min(stop, int(bounds[i + 1]))
            if a < b:
                yield i, a - lo, b - lo
            i += 1

    def read(self, start: int, stop: int, channels: np.ndarray | None = None) -> np.ndarray:
        """Samples ``[start, stop)`` (already checked to lie in the recording) as a new
        (stop - start, n_channels or len(channels)) array of the files' dtype."""
        parts = [read_block(self.fd(i), self.layouts[i], a, b, channels)
                 for i, a, b in self._pieces(int(start), int(stop))]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return np.zeros((0, self.n_channels if channels is None else len(channels)), self.dtype)
        return np.concatenate(parts, axis=0)

    def will_need(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Start reading samples ``[start, stop)`` of each range (concatenated clock) into the
        page cache now (:func:`hybridkit.formats.binio.will_need`); samples-major files only."""
        per_file: dict[int, list[tuple[int, int]]] = {}
        for start, stop in ranges:
            for i, a, b in self._pieces(int(start), int(stop)):
                lay = self.layouts[i]
                if lay.order == "samples":
                    row = lay.n_channels * lay.itemsize
                    per_file.setdefault(i, []).append((lay.offset + a * row, (b - a) * row))
        for i, byte_ranges in per_file.items():
            will_need(self.fd(i), byte_ranges)

    def read_file_windows(self, index: int, starts: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` (k, n_times, n_channels) with the windows of file ``index`` starting at
        ``starts`` (k,) samples into that file, one positional read each (samples-major files)."""
        read_windows(self.fd(index), self.layouts[index], starts, out)

    def close(self) -> None:
        """Close every descriptor opened so far."""
        with self._lock:
            fds, self._fds = self._fds, [None] * len(self.files)
        for fd in fds:
            if fd is not None:
                os.close(fd)

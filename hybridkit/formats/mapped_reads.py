"""A flat binary file's samples through a read-only memory map: many small reads of one file.

A reader that copies rows out of one file again and again (the lazy hybrid recording, a chunk per
``get_traces``) does best with the file mapped once: each read is then one copy out of the page
cache, with no system call, no descriptor and no fresh buffer per read; a slice of the map can
also be copied piece by piece into a destination whose pieces are worked on while they are still
in the CPU cache. The mapped pages are the page cache's own (file-backed and clean): they count in
the resident set while touched but the kernel drops them under memory pressure, as it does the
pages ``os.pread`` goes through. Runs that stream a whole recording once keep using
:mod:`hybridkit.formats.binio`'s positional reads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridkit.errors import SourceError


def map_samples(path: str | Path, dtype: np.dtype, n_channels: int, n_samples: int,
                offset_bytes: int = 0) -> np.ndarray | None:
    """(n_samples, n_channels) read-only view of a samples-major file's samples (mapped, not
    read), or None when there is nothing to map (no samples).

    Raises SourceError (one line) when the file is missing or shorter than the samples it should
    hold (it changed since it was opened).
    """
    if n_samples <= 0 or n_channels <= 0:
        return None
    try:
        mapped = np.memmap(path, np.dtype(dtype), "r", offset=int(offset_bytes),
                           shape=(int(n_samples), int(n_channels)))
    except (OSError, ValueError) as exc:
        need = int(offset_bytes) + int(n_samples) * int(n_channels) * np.dtype(dtype).itemsize
        raise SourceError(f"{path}: cannot map {n_samples} samples x {n_channels} channels of "
                          f"{np.dtype(dtype)} ({need} bytes from offset {offset_bytes}): {exc}") from None
    # a plain ndarray over the map (the map stays open as its base): no memmap subclass semantics
    # leak into callers' arithmetic
    return np.asarray(mapped)

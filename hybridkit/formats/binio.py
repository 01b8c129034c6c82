"""Positional block I/O on headerless binary files (pread/pwrite), time x channel views.

Why not one memmap of the file for the streaming path: every page a memmap touches stays mapped
into the process and counts as resident memory, so streaming through a 100 GB file via a memmap
grows the resident set with the file. Positional reads and writes into block-sized buffers keep
memory bounded by the block size. (Injecting into the hybrid copy maps one block at a time and
releases it: :mod:`hybridkit.formats.mapped_writes`.)

A file holds ``n_samples`` x ``n_channels`` values of ``dtype`` starting ``offset`` bytes in,
either samples-major (``order="samples"``: row = one sample) or channels-major
(``order="channels"``: row = one channel).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    dtype: np.dtype
    n_channels: int
    n_samples: int
    offset: int = 0
    order: str = "samples"

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize


def _pread_into(fd: int, buf: np.ndarray, offset: int) -> None:
    view = memoryview(buf).cast("B")
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise EOFError(f"file ended {len(view) - done} bytes early at offset {offset + done}")
        done += n


def _pwrite_all(fd: int, buf: np.ndarray, offset: int) -> None:
    view = memoryview(np.ascontiguousarray(buf)).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def read_block(fd: int, lay: Layout, start: int, stop: int, channels=None) -> np.ndarray:
    """Samples ``[start, stop)`` of ``channels`` (default all) as a new (n, k) array."""
    n = stop - start
    cols = np.arange(lay.n_channels) if channels is None else np.asarray(channels, np.int64)
    if lay.order == "samples":
        rows = np.empty((n, lay.n_channels), lay.dtype)
        _pread_into(fd, rows, lay.offset + start * lay.n_channels * lay.itemsize)
        return rows if channels is None else rows[:, cols]
    out = np.empty((cols.size, n), lay.dtype)
    for j, c in enumerate(cols.tolist()):
        _pread_into(fd, out[j], lay.offset + (c * lay.n_samples + start) * lay.itemsize)
    return out.T


def read_windows(fd: int, lay: Layout, starts: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out[i]`` with the rows ``[starts[i], starts[i] + length)`` of a samples-major file.

    ``out`` is a C-contiguous (n, length, n_channels) array of the file's dtype. One positional
    read per window with no other per-window work: gathering thousands of template snippets is
    bound by this loop's overhead, not by the bytes.
    """
    if lay.order != "samples":
        raise ValueError("read_windows needs a samples-major file")
    row = lay.n_channels * lay.itemsize
    size = out.shape[1] * row
    view = memoryview(out).cast("B")
    starts = np.asarray(starts, np.int64).tolist()
    will_need(fd, [(lay.offset + s * row, size) for s in starts])
    for i, s in enumerate(starts):
        part = view[i * size : (i + 1) * size]
        if os.preadv(fd, [part], lay.offset + s * row) != size:  # short read: finish or say EOF
            _pread_into(fd, np.frombuffer(part, np.uint8), lay.offset + s * row)


def will_need(fd: int, ranges: list[tuple[int, int]]) -> None:
    """Tell the kernel these ``(offset, length)`` byte ranges of ``fd`` will be read soon: where
    they are not cached it starts reading them all at once (the disk works on many requests
    together) instead of one blocking read after another. Scattered windows read from a cold
    file then cost about one disk round trip per batch, not one per window; on cached pages it
    is a quick lookup. A no-op where the platform has no ``posix_fadvise``; a file system that
    refuses the hint (it is only advice) is not asked again in this call, and the reads go on."""
    if _FADVISE is None:
        return
    try:
        for off, n in ranges:
            _FADVISE(fd, off, n, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass


_FADVISE = getattr(os, "posix_fadvise", None)


def write_row_runs(fd: int, lay: Layout, start: int, rows: np.ndarray, runs: np.ndarray) -> None:
    """Write ``rows[a:b]`` at samples ``[start + a, start + b)`` of a samples-major file for each
    ``(a, b)`` of ``runs`` ((n_runs, 2) int64, inside ``[0, len(rows))``): one positional write per
    run, the offsets computed for all runs at once (an event-dense second has ~200 runs)."""
    if lay.order != "samples":
        raise ValueError("write_row_runs needs a samples-major file")
    row = lay.n_channels * lay.itemsize
    view = memoryview(np.ascontiguousarray(rows, lay.dtype)).cast("B")
    firsts = (runs[:, 0] * row).tolist()
    lasts = (runs[:, 1] * row).tolist()
    offsets = (lay.offset + (start + runs[:, 0]) * row).tolist()
    for a, b, off in zip(firsts, lasts, offsets):
        done = os.pwrite(fd, view[a:b], off)
        while a + done < b:  # a short write (signals, quotas): finish it
            done += os.pwrite(fd, view[a + done:b], off + done)


def write_block(fd: int, lay: Layout, start: int, block: np.ndarray, channels=None) -> None:
    """Write ``block`` (n, k) at samples ``[start, start+n)`` of ``channels`` (default all).

    For samples-major files and a channel subset this reads the rows, replaces the columns and
    writes the rows back (one contiguous read and write instead of n*k scattered ones).
    """
    n = block.shape[0]
    if lay.order == "samples":
        off = lay.offset + start * lay.n_channels * lay.itemsize
        if channels is None:
            rows = block
        else:
            rows = np.empty((n, lay.n_channels), lay.dtype)
            _pread_into(fd, rows, off)
            rows[:, channels] = block
        _pwrite_all(fd, rows.astype(lay.dtype, copy=False), off)
        return
    cols = np.arange(lay.n_channels) if channels is None else np.asarray(channels, np.int64)
    for j, c in enumerate(cols.tolist()):
        _pwrite_all(fd, block[:, j].astype(lay.dtype), lay.offset + (c * lay.n_samples + start) * lay.itemsize)

"""Whole-chunk reads of a chunked, compressed HDF5 dataset, decompressed on threads.

Why: an NWB series written by neuroconv is chunked (e.g. 78,125 samples x 64 channels) and
gzip-compressed. h5py decompresses a whole chunk for any read that touches it, holding its global
lock, so reading thousands of short spike windows decompressed each chunk once per window (and
fetched it again over HTTP when its cache had moved on). :class:`ChunkReader` reads a block of
whole chunks instead: each chunk's stored bytes once (``read_direct_chunk``), inflated on
``threads`` threads (zlib releases the GIL), shuffle undone with numpy. The callers (the snippet
gather in chunk order, see :mod:`hybridkit.engine.snippets`) ask for each chunk once per pass.

Inflate uses ISA-L (the ``isal`` package, extra ``fast``) when installed, else zlib; both
release the GIL. Filters handled: deflate (gzip) and shuffle, in the order the dataset's pipeline lists them. Any
other filter (blosc, lzf, ...) or a chunk that cannot be read directly falls back to h5py's own
slicing, which gives the same values.
"""
from __future__ import annotations

import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:  # ISA-L's inflate gives the same bytes ~1.5-2x faster (pip install "hybridkit[fast]")
    from isal.isal_zlib import decompress as _inflate
except ImportError:  # the standard library's zlib
    _inflate = zlib.decompress

#: HDF5 filter ids decoded here
_DEFLATE, _SHUFFLE = 1, 2


class ChunkReader:
    """Blocks of whole chunks of a 2-D chunked dataset ``data`` (time, channel).

    Attributes:
        chunks: (rows, cols) of one chunk.
        touched: {(row chunk, col chunk): stored bytes} of every chunk read so far (what a
            streamed file had to fetch at least; the benchmark compares the bytes fetched to it).
        reads: chunks read and decompressed so far, repeats included.
    """

    def __init__(self, data, threads: int = 2) -> None:
        self.data = data
        self.chunks = tuple(int(c) for c in data.chunks)
        self.dtype = np.dtype(data.dtype)
        plist = data.id.get_create_plist()
        self.filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        self.direct = set(self.filters) <= {_DEFLATE, _SHUFFLE}
        self.touched: dict[tuple[int, int], int] = {}
        self.reads = 0
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="nwb-inflate") \
            if threads > 1 else None
        self._lock = threading.Lock()  # h5py calls are serialised anyway; this keeps it explicit

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _decode(self, raw: bytes, mask: int) -> np.ndarray:
        """One stored chunk -> (rows, cols) array; filters in reverse pipeline order, skipping
        those the chunk's filter mask says were not applied."""
        buf = raw
        for i, fid in reversed(list(enumerate(self.filters))):
            if mask & (1 << i):
                continue
            if fid == _DEFLATE:
                buf = _inflate(buf)
            elif fid == _SHUFFLE:  # bytes were grouped by significance: byte k of every value
                size = self.dtype.itemsize
                b = np.frombuffer(buf, np.uint8)
                buf = b.reshape(size, -1).T.copy().tobytes() if size > 1 else buf
        return np.frombuffer(buf, self.dtype).reshape(self.chunks)

    def read(self, row_chunks: range, col_chunks: list[int]) -> np.ndarray:
        """Samples of the row chunks ``row_chunks`` (consecutive) x the channels of the column
        chunks ``col_chunks`` (sorted), as one (n_rows, n_cols) array cut to the dataset's
        shape; columns in ``col_chunks`` order, each chunk's columns contiguous."""
        n_rows_total, n_cols_total = self.data.shape
        rc, cc = self.chunks
        r0, r1 = row_chunks.start * rc, min(row_chunks.stop * rc, n_rows_total)
        widths = [min(cc, n_cols_total - c * cc) for c in col_chunks]
        out = np.empty((r1 - r0, sum(widths)), self.dtype)
        jobs = []
        with self._lock:
            for r in row_chunks:
                for k, c in enumerate(col_chunks):
                    raw = None
                    if self.direct:
                        try:
                            info = self.data.id.get_chunk_info_by_coord((r * rc, c * cc))
                            if info.byte_offset is not None and info.size:
                                mask, raw = self.data.id.read_direct_chunk((r * rc, c * cc))
                                self.touched[(r, c)] = int(info.size)
                        except (KeyError, ValueError, OSError, RuntimeError):
                            raw = None
                    jobs.append((r, k, c, raw, mask if raw is not None else 0))
                    self.reads += 1
        col_at = np.concatenate([[0], np.cumsum(widths)])

        def place(job) -> None:
            r, k, c, raw, mask = job
            rows = slice(r * rc - r0, min((r + 1) * rc, n_rows_total) - r0)
            n = rows.stop - rows.start
            if raw is not None:
                block = self._decode(raw, mask)[:n, :widths[k]]
            else:  # another filter, or an unallocated chunk (fill value): h5py's own read
                with self._lock:
                    block = self.data[r * rc : r * rc + n, c * cc : c * cc + widths[k]]
            out[rows, col_at[k]:col_at[k + 1]] = block

        if self._pool is not None and len(jobs) > 1:
            list(self._pool.map(place, jobs))
        else:
            for job in jobs:
                place(job)
        return out

"""Filling a chunked, gzip-compressed HDF5 dataset in time order, with bounded memory and parallel gzip.

Writing an ElectricalSeries is bound by compression (gzip runs at tens of MB/s per core). HDF5
compresses chunks one at a time on the calling thread, so :class:`ChunkFiller` compresses whole
chunks itself, exactly as HDF5's filter pipeline would (byte shuffle, then deflate), on a pool of
threads (zlib releases the GIL), and stores them with ``write_direct_chunk`` in order. Memory is
bounded by the chunks in flight: ``threads + 1`` chunks at most.
"""
from __future__ import annotations

import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np


def _shuffle_deflate_pipeline(dset) -> int | None:
    """The deflate level when the dataset's filters are exactly [shuffle, deflate], else None."""
    import h5py

    plist = dset.id.get_create_plist()
    if plist.get_nfilters() != 2:
        return None
    first, second = plist.get_filter(0), plist.get_filter(1)
    if first[0] != h5py.h5z.FILTER_SHUFFLE or second[0] != h5py.h5z.FILTER_DEFLATE:
        return None
    return int(second[2][0]) if second[2] else 6


def shuffle_deflate(chunk: np.ndarray, level: int) -> bytes:
    """HDF5's shuffle filter (bytes grouped by significance) followed by deflate, of one chunk."""
    raw = np.ascontiguousarray(chunk)
    size = raw.dtype.itemsize
    data = raw.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else raw.tobytes()
    return zlib.compress(data, level)


class ChunkFiller:
    """Fills a chunked (time, channel) h5py dataset in time order, one whole chunk per write.

    A chunk is compressed only when full, so no chunk is ever compressed twice. With a
    [shuffle, deflate] dataset, chunks are compressed on ``threads`` threads and written directly;
    otherwise h5py writes them (HDF5 compresses).
    """

    def __init__(self, dset, threads: int = 1) -> None:
        self.dset = dset
        self.rows = int(dset.chunks[0])
        self.width = int(dset.shape[1])
        self.buf = np.empty((self.rows, self.width), dset.dtype)
        self.fill = 0
        self.row0 = 0
        self.level = _shuffle_deflate_pipeline(dset)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="nwb-gzip") \
            if self.level is not None and threads > 1 else None
        self.pending: deque[tuple[int, Future]] = deque()
        self.max_pending = threads + 1

    def _emit(self, chunk: np.ndarray, n_rows: int) -> None:
        """Store ``chunk`` (rows x width; only the first ``n_rows`` are data) at ``self.row0``."""
        row0 = self.row0
        self.row0 += n_rows
        if self.level is None:
            self.dset[row0:row0 + n_rows] = chunk[:n_rows]
            return
        if chunk.shape[0] < self.rows:  # HDF5 stores edge chunks whole; pad with the fill value 0
            chunk = np.concatenate([chunk, np.zeros((self.rows - chunk.shape[0], self.width), chunk.dtype)])
        if self.pool is None:
            self.dset.id.write_direct_chunk((row0, 0), shuffle_deflate(chunk, self.level))
            return
        # a contiguous copy: a view would keep the engine's whole block alive until compressed
        chunk = np.ascontiguousarray(chunk)
        self.pending.append((row0, self.pool.submit(shuffle_deflate, chunk, self.level)))
        while len(self.pending) > self.max_pending:
            self._drain_one()

    def _drain_one(self) -> None:
        row0, fut = self.pending.popleft()
        self.dset.id.write_direct_chunk((row0, 0), fut.result())

    def append(self, arr: np.ndarray) -> None:
        """Add (n, width) samples after those already added."""
        i, n = 0, arr.shape[0]
        while i < n:
            take = min(self.rows - self.fill, n - i)
            if self.fill == 0 and take == self.rows:  # a whole chunk: no copy into the buffer
                self._emit(arr[i:i + take], take)
            else:
                self.buf[self.fill:self.fill + take] = arr[i:i + take]
                self.fill += take
                if self.fill == self.rows:
                    full, self.buf = self.buf, np.empty_like(self.buf)  # the pool may still read it
                    self._emit(full, self.rows)
                    self.fill = 0
            i += take

    def close(self) -> int:
        """Write the last partial chunk and wait for every chunk; return the rows written."""
        try:
            if self.fill:
                self._emit(self.buf[:self.fill], self.fill)
                self.fill = 0
            while self.pending:
                self._drain_one()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.pool = None
        return self.row0

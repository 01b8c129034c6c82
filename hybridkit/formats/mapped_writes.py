"""A block of a samples-major output file as a writable memory map: inject in place, no read or
write calls.

Why: a hybrid file is first a copy of its source, so the rows injection changes already
hold the source's samples. Reading them into a buffer, injecting and writing them back copies every
touched byte twice through the page cache; mapping the block and injecting straight into the
file's pages copies nothing. On the issue-19 benchmark (1.4 GB, 11,949 events touching 31 % of the
rows) injection took 0.28-0.30 s mapped vs 0.44-0.48 s with pread/pwrite.

The map is shared (the writes are the file's), covers one block, and is unmapped when the returned
array is released, so resident memory stays bounded by the block as with positional I/O.

Faults: first touching a mapped page costs a page fault, ~100,000 of them for 400 MB of rows, which
cost as much as the copies saved. The pages injection will write are faulted in writable ahead, in
one ``madvise(MADV_POPULATE_WRITE)`` call per run of touched rows (Linux >= 5.14), only those runs.
Not for copy-on-write clones: a store through a map dirties the whole page-cache folio it falls in,
and every dirty folio of a clone gets its own disk blocks (XFS caches files in folios of up to
megabytes; the legacy writer writes clones positionally). Populating also makes a
write the file system cannot take (disk full, a failing disk) an error of that call rather than a
SIGBUS on a later store; where populating is not available or fails, :func:`writable_rows` returns
None and the caller writes through positional I/O, which reports such errors as OSError.
"""
from __future__ import annotations

import errno
import mmap
import sys

import numpy as np

from hybridkit.formats.binio import Layout

#: Linux's MADV_POPULATE_WRITE (5.14+): fault pages in writable, errors returned, not signalled.
#: Python's mmap module does not export it on every build, hence the number.
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)

#: False once populating was refused as unsupported (an older kernel): no more attempts
_populate_works = sys.platform.startswith("linux") and hasattr(mmap.mmap, "madvise")


def writable_rows(fd: int, lay: Layout, start: int, stop: int, touched: np.ndarray) -> np.ndarray | None:
    """Rows ``[start, stop)`` of the samples-major file ``fd`` (open read-write) as a writable
    (stop - start, n_channels) array of the file's dtype, mapped shared: stores into it are stores
    into the file. None when the rows cannot be mapped with their touched pages populated (the
    caller then reads and writes them with positional I/O).

    ``touched``: (n_runs, 2) int64 row runs ``(a, b)``, relative to ``start``, increasing, that the
    caller will write; their pages are faulted in writable now. Rows outside them may be read
    (faulted in on first touch, read-only) but should not be written. The map is released with the
    array (and every view of it).
    """
    global _populate_works
    if not _populate_works or lay.order != "samples" or stop <= start:
        return None
    row = lay.n_channels * lay.itemsize
    first = lay.offset + start * row  # bytes, in the file
    base = first - first % mmap.ALLOCATIONGRANULARITY  # the map's offset must be aligned
    length = lay.offset + stop * row - base
    try:
        mapped = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=base)
    except (OSError, ValueError):
        return None
    page = mmap.PAGESIZE
    head = first - base
    try:
        for a, b in np.asarray(touched, np.int64).tolist():
            lo = head + a * row
            lo -= lo % page
            mapped.madvise(MADV_POPULATE_WRITE, lo, head + b * row - lo)
    except OSError as exc:
        mapped.close()
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # a kernel without MADV_POPULATE_WRITE
            _populate_works = False
        return None  # EFAULT/ENOMEM (no space for a page, I/O error): positional I/O reports it
    rows = np.frombuffer(mapped, lay.dtype, count=(stop - start) * lay.n_channels, offset=head)
    return rows.reshape(stop - start, lay.n_channels)

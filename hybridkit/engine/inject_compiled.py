"""Every event of a block injected in one compiled pass (numba): the lazy hybrid recording's
fast path.

The values are those of :func:`hybridkit.engine.inject.accumulate` followed by
:func:`hybridkit.engine.inject.add_rounded`, sample for sample: each sample sums, from 0 and in
float32, ``gain * template`` of the events that touch it in time (event index) order, rounds that
sum once (half to even), adds the source sample and saturates at the dtype's limits. Events are
grouped in runs of windows that overlap in time (a sample's events are always in one run); a run
of one event (most of them) is written directly, a longer run sums into a scratch block over the
union of its events' channels, as ``accumulate`` does.

numba is optional (the ``spikeinterface`` extra brings it): :data:`AVAILABLE` is False without it
and callers use :mod:`hybridkit.engine.inject`'s numpy functions, which give the same samples.
Only integer sources of up to 32 bits take this path (:func:`supports`): float sources keep numpy's
signed zeros. The rounded sum is added to the source in numba's promotion of float32 and the
source's type: float32 for int16 (as ``add_rounded``), float64 for int32 (as ``add_rounded``) and
for uint16 (exact; a float32 sum would differ only beyond 2**24, where both saturate alike).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hybridkit.engine.inject import Kernel

try:  # an optional accelerator: the numpy path gives the same samples
    import numba
except ImportError:  # without the extra: supports() is False and callers take the numpy path
    numba = None

#: whether numba is installed (the compiled path can run)
AVAILABLE = numba is not None


@dataclass(frozen=True)
class PackedKernel:
    """A :class:`Kernel` as flat arrays a compiled loop can index.

    Attributes:
        raw: (sum of n_times * n_sparse,) float32, template ``t``'s (n_times, n_sparse) raw-unit
            samples, row-major, at ``raw[raw_start[t]:raw_start[t + 1]]``.
        raw_start: (n_templates + 1,) int64 offsets into ``raw``.
        cols: (sum of n_sparse,) int64 file columns, template ``t``'s at
            ``cols[col_start[t]:col_start[t + 1]]``.
        col_start: (n_templates + 1,) int64 offsets into ``cols``.
        window_starts, window_stops, template_of: (n_events,) int64, the kernel's event windows
            and ``unit_index``; gains: (n_events,) float32.
        max_window: the longest event window, in samples.
    """

    raw: np.ndarray
    raw_start: np.ndarray
    cols: np.ndarray
    col_start: np.ndarray
    window_starts: np.ndarray
    window_stops: np.ndarray
    template_of: np.ndarray
    gains: np.ndarray
    max_window: int


def pack(k: Kernel) -> PackedKernel:
    """Flatten ``k``'s templates once per recording (a few MB at most)."""
    windows = k.window_stops - k.window_starts
    return PackedKernel(
        raw=np.concatenate([r.ravel() for r in k.raw] + [np.zeros(0, np.float32)]).astype(np.float32),
        raw_start=np.concatenate([[0], np.cumsum([r.size for r in k.raw])]).astype(np.int64),
        cols=np.concatenate(list(k.cols) + [np.zeros(0, np.int64)]).astype(np.int64),
        col_start=np.concatenate([[0], np.cumsum([c.size for c in k.cols])]).astype(np.int64),
        window_starts=np.ascontiguousarray(k.window_starts, np.int64),
        window_stops=np.ascontiguousarray(k.window_stops, np.int64),
        template_of=np.ascontiguousarray(k.unit_index, np.int64),
        gains=np.ascontiguousarray(k.gains, np.float32),
        max_window=int(windows.max(initial=0)),
    )


def supports(dtype: np.dtype) -> bool:
    """Whether samples of ``dtype`` can take the compiled path (numba installed, integers of at
    most 32 bits in the machine's byte order: numba compiles no other)."""
    dtype = np.dtype(dtype)
    return AVAILABLE and dtype.kind in "iu" and dtype.itemsize <= 4 and dtype.isnative


def by_window_start(packed: PackedKernel, events: np.ndarray) -> np.ndarray:
    """(n,) int64 ``events`` (time order) reordered by window start, stably: the order
    :func:`inject_events` sweeps them in."""
    order = np.argsort(packed.window_starts[events], kind="stable")
    return np.ascontiguousarray(events[order], np.int64)


def inject_events(packed: PackedKernel, out: np.ndarray, start: int, events: np.ndarray) -> None:
    """Add ``events`` into ``out`` ((n, n_channels) C-contiguous source samples ``start ...`` of
    every file column, a dtype :func:`supports` accepts), in place.

    ``events`` come from :func:`by_window_start` (any contiguous part of its result); those whose
    windows miss ``[start, start + n)`` add nothing. Samples no event touches stay as they are.
    """
    lo, hi = _limits(out.dtype)
    _inject_runs(out, np.int64(start), events, packed.window_starts, packed.window_stops,
                 packed.template_of, packed.gains, packed.raw, packed.raw_start, packed.cols,
                 packed.col_start, lo, hi)


@functools.lru_cache(maxsize=None)
def _limits(dtype: np.dtype) -> tuple:
    """The dtype's smallest and largest values as scalars of the dtype itself: compared with a
    float32 sum they keep it float32 (as add_rounded's, up to 16 bits), with a float64 one float64."""
    info = np.iinfo(dtype)
    return dtype.type(info.min), dtype.type(info.max)


def _inject_runs_py(out, start, events, window_starts, window_stops, template_of, gains, raw, raw_start,
                    cols, col_start, lo, hi):
    """The compiled loop (see :func:`inject_events`); ``events`` sorted by window start."""
    n_rows, n_ch = out.shape
    stop = start + n_rows
    position_of = np.full(n_ch, -1, np.int64)
    scratch = np.empty(4096, np.float32)
    union = np.empty(n_ch, np.int64)
    i, n = 0, events.size
    while i < n:
        # the run: events whose windows overlap the first one's or a later member's
        end = window_stops[events[i]]
        j = i + 1
        while j < n and window_starts[events[j]] < end:
            end = max(end, window_stops[events[j]])
            j += 1
        a = max(window_starts[events[i]], start)
        b = min(end, stop)
        if b <= a:  # the run misses the block
            i = j
            continue
        if j == i + 1:  # one event alone: 0 + gain * raw, rounded, added, saturated
            e = events[i]
            t = template_of[e]
            g = gains[e]
            ws = window_starts[e]
            c0 = col_start[t]
            width = col_start[t + 1] - c0
            for s in range(a, b):
                base = raw_start[t] + (s - ws) * width
                r = s - start
                for c in range(width):
                    col = cols[c0 + c]
                    v = np.rint(np.float32(0.0) + g * raw[base + c]) + out[r, col]
                    out[r, col] = min(max(v, lo), hi)
        else:
            m = 0
            for q in range(i, j):  # the union of the run's channels; position_of: column -> place
                t = template_of[events[q]]
                for c in range(col_start[t], col_start[t + 1]):
                    if position_of[cols[c]] < 0:
                        position_of[cols[c]] = m
                        union[m] = cols[c]
                        m += 1
            if (b - a) * m > scratch.size:  # grown, not allocated per run: large fresh
                scratch = np.empty(2 * (b - a) * m, np.float32)  # allocations page-fault
            acc = scratch[:(b - a) * m]  # (b - a, m) row-major: the run's sum on its union
            acc[:] = 0.0
            for e in np.sort(events[i:j]):  # every sample sums its events in time order
                t = template_of[e]
                g = gains[e]
                ws = window_starts[e]
                c0 = col_start[t]
                width = col_start[t + 1] - c0
                for s in range(max(ws, a), min(window_stops[e], b)):
                    base = raw_start[t] + (s - ws) * width
                    row = (s - a) * m
                    for c in range(width):
                        acc[row + position_of[cols[c0 + c]]] += g * raw[base + c]
            for r in range(b - a):
                for u in range(m):
                    col = union[u]
                    v = np.rint(acc[r * m + u]) + out[a - start + r, col]
                    out[a - start + r, col] = min(max(v, lo), hi)
            for u in range(m):
                position_of[union[u]] = -1
        i = j


def _compiled(function):
    """``function`` compiled on first use, once per process, and cached on disk (beside the package,
    else in the user's cache folder; numba refuses to cache when neither is writable: then it is
    compiled in every process). nogil: SpikeInterface's thread workers may read segments at once."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(cache=False, nogil=True)(function)


_inject_runs = _compiled(_inject_runs_py) if AVAILABLE else None

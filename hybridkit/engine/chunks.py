"""Which blocks of the recording to process, with bounded size.

A hybrid recording differs from its source only inside event windows. The engine therefore works
on *blocks*: contiguous sample ranges that together cover every event window (or, for writers
that need every sample, the whole recording). An event whose window straddles a block edge is
added partly to each block (see :mod:`hybridkit.engine.inject`), so blocks need no margins and
the result does not depend on where the edges fall.
"""
from __future__ import annotations

import numpy as np


def event_blocks(
    window_starts: np.ndarray,
    window_stops: np.ndarray,
    n_samples: int,
    max_block: int,
    merge_gap: int = 64,
) -> np.ndarray:
    """Blocks covering every event window ``[window_starts[i], window_stops[i])``.

    Windows closer than ``merge_gap`` samples are merged (one read/write instead of many tiny
    ones); merged runs longer than ``max_block`` are cut into pieces of at most ``max_block``.
    Windows are clipped to ``[0, n_samples)``. Returns sorted, disjoint blocks as an (n_blocks, 2)
    int64 array of ``(start, stop)`` (an hour-long recording has ~10**5 blocks: an array, not
    Python tuples).
    """
    if max_block <= 0:
        raise ValueError(f"max_block must be positive, got {max_block}")
    starts = np.clip(np.asarray(window_starts, np.int64), 0, n_samples)
    stops = np.clip(np.asarray(window_stops, np.int64), 0, n_samples)
    keep = stops > starts
    starts, stops = starts[keep], stops[keep]
    if starts.size == 0:
        return np.zeros((0, 2), np.int64)
    order = np.argsort(starts, kind="stable")
    starts, stops = starts[order], np.maximum.accumulate(stops[order])
    # a new run begins where a window starts more than merge_gap after everything before it ends
    breaks = np.flatnonzero(starts[1:] > stops[:-1] + merge_gap) + 1
    run_starts = starts[np.concatenate([[0], breaks])]
    run_stops = stops[np.concatenate([breaks - 1, [starts.size - 1]])]
    # each run cut into ceil(length / max_block) pieces
    pieces = -(-(run_stops - run_starts) // max_block)
    first = np.repeat(run_starts, pieces)
    k = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    block_starts = first + k * max_block
    block_stops = np.minimum(block_starts + max_block, np.repeat(run_stops, pieces))
    return np.column_stack([block_starts, block_stops])


def chunk_blocks(n_samples: int, chunk: int) -> np.ndarray:
    """(n_blocks, 2) int64 consecutive ``(start, stop)`` of at most ``chunk`` samples covering
    ``[0, n_samples)``: the blocks when a writer needs every sample."""
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    starts = np.arange(0, n_samples, chunk, dtype=np.int64)
    return np.column_stack([starts, np.minimum(starts + chunk, n_samples)])


def block_samples_for_memory(n_channels: int, itemsize: int, max_memory_mb: float, workers: int = 1) -> int:
    """Largest block (samples) whose working set fits ``max_memory_mb`` shared by ``workers``.

    Per sample row a block holds the source values, the float32 accumulator, an int64 sum before
    saturation and the output values (see :func:`hybridkit.engine.inject.accumulate` and
    :func:`~hybridkit.engine.inject.add_rounded`), with a factor 2 for temporaries.
    """
    per_row = n_channels * (2 * itemsize + 4 + 8) * 2
    budget = max_memory_mb * 1024 * 1024 / max(workers, 1)
    return max(1024, int(budget // per_row))


def changed_runs(changed: np.ndarray, merge_gap: int) -> np.ndarray:
    """(n_runs, 2) int64 ``(start, stop)`` of the runs of True in the 1-D bool ``changed``; runs
    separated by fewer than ``merge_gap`` False entries are merged into one.

    Used to write back only the rows of a block that injection changed: on a copy-on-write clone
    every page written gets its own disk block, so rewriting unchanged rows costs disk space and
    writeback for nothing; but rows closer than a page share it anyway, and on a clone each write
    pays for its own copy-on-write extent, hence the merge (the engine's gap is 16 kB).
    """
    idx = np.flatnonzero(changed)
    if idx.size == 0:
        return np.zeros((0, 2), np.int64)
    breaks = np.flatnonzero(np.diff(idx) > merge_gap) + 1
    starts = idx[np.concatenate([[0], breaks])]
    stops = idx[np.concatenate([breaks - 1, [idx.size - 1]])] + 1
    return np.column_stack([starts, stops]).astype(np.int64)

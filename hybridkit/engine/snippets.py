"""Gather waveform snippets around spike times from a recording.

Only the windows around the requested spikes are read, in time order (front to back through the
page cache), each with one positional read. The whole recording is never loaded.

A recording stored in compressed chunks (``recording.chunk_shape``, an NWB series) is read in
chunk order instead: each chunk row that holds windows is read once, only its column chunks
that hold requested channels, every window cut from it, and it is dropped before the next one
(:func:`gather_many`, which serves several requests - e.g. every unit's spikes - in one pass).
Memory: at most two chunk rows of the requested columns, plus the snippets themselves.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hybridkit.model import Recording

if TYPE_CHECKING:
    from hybridkit.engine.filtering import Highpass

#: raw bytes read per batch of windows (bounds the memory of a gather over many channels)
_BATCH_BYTES = 16 * 1024 * 1024


def gather_snippets(
    recording: Recording,
    times: np.ndarray,
    n_before: int,
    n_after: int,
    channels: np.ndarray | None = None,
) -> np.ndarray:
    """Waveforms around ``times`` in RAW file units.

    Args:
        recording: the source recording.
        times: (n_spikes,) int sample indices on the concatenated clock, any order.
        n_before: samples before each time; the window of time ``t`` is ``[t - n_before, t + n_after)``.
        n_after: samples from each time on (the spike's own sample included).
        channels: (n_ch,) file columns to keep, in that order (default: all columns).

    Returns:
        (n_spikes, n_before + n_after, n_ch) float32, raw file units (no gain applied), row ``i``
        belonging to ``times[i]`` (input order is kept).

    Raises:
        ValueError: a window leaves the recording (callers drop such spikes first), or bad sizes.
    """
    times = np.asarray(times, dtype=np.int64).ravel()
    n_before, n_after = int(n_before), int(n_after)
    if n_before < 0 or n_after < 0 or n_before + n_after == 0:
        raise ValueError(f"snippet window needs n_before, n_after >= 0 and a positive length, "
                         f"got n_before={n_before}, n_after={n_after}")
    cols = np.arange(recording.n_channels) if channels is None else np.asarray(channels, np.int64).ravel()
    if cols.size and (cols.min() < 0 or cols.max() >= recording.n_channels):
        raise ValueError(f"channels must be file columns in 0..{recording.n_channels - 1}, "
                         f"got {cols.min()}..{cols.max()}")
    n_times = n_before + n_after
    out = np.empty((times.size, n_times, cols.size), dtype=np.float32)
    if times.size == 0:
        return out

    starts = times - n_before
    stops = times + n_after
    n_total = recording.n_samples
    bad = (starts < 0) | (stops > n_total)
    if bad.any():
        first = int(times[np.flatnonzero(bad)[0]])
        raise ValueError(
            f"{int(bad.sum())} snippet window(s) leave the recording of {n_total} samples "
            f"(first at time {first}; valid times are {n_before}..{n_total - n_after})"
        )

    if getattr(recording, "chunk_shape", None) is not None:
        gather_chunk_order(recording, [(times - n_before, cols, out)])
        return out

    # positional reads per window (not memmap slices): touched memmap pages would stay resident,
    # and with the kernel's fault-around a few thousand windows map most of a file
    order = np.argsort(times, kind="stable")
    if recording.flat_binary and recording.order == "samples":
        order = _gather_rows(recording, starts, n_times, cols, order, out)
    for i in order.tolist():  # what the fast path left: other layouts, windows across files
        out[i] = recording.read(int(starts[i]), int(stops[i]), cols)
    return out


def windows_inside(times: np.ndarray, n_before: int, n_after: int, n_samples: int,
                   band: "Highpass | None" = None) -> np.ndarray:
    """(n,) bool: which ``times`` have their whole window ``[t - n_before, t + n_after)`` inside a
    recording of ``n_samples``, ``band.pad`` samples wider on each side when ``band`` is given
    (what :func:`gather_band_snippets` reads)."""
    pad = band.pad if band is not None else 0
    t = np.asarray(times, np.int64)
    return (t - n_before - pad >= 0) & (t + n_after + pad <= n_samples)


def gather_band_snippets(
    recording: Recording,
    times: np.ndarray,
    n_before: int,
    n_after: int,
    channels: np.ndarray | None,
    band: "Highpass | None",
) -> np.ndarray:
    """:func:`gather_snippets`, high-passed by ``band`` when it is given (else exactly the same).

    Each window is read ``band.pad`` samples wider on both sides, filtered (zero phase) and cut
    back, so every time needs ``[t - n_before - band.pad, t + n_after + band.pad)`` inside the
    recording. Returns (n_spikes, n_before + n_after, n_ch) float32 in raw file units; a filtered
    snippet has no DC offset left.
    """
    if band is None:
        return gather_snippets(recording, times, n_before, n_after, channels)
    if getattr(recording, "chunk_shape", None) is not None:  # one pass, not one per batch
        return gather_many(recording, [(times, channels)], n_before, n_after, band)[0]
    times = np.asarray(times, dtype=np.int64).ravel()
    n_ch = recording.n_channels if channels is None else np.asarray(channels).size
    out = np.empty((times.size, int(n_before) + int(n_after), n_ch), np.float32)
    # in batches: the padded windows are several times longer, and the filter works in float64
    for a in range(0, times.size, _FILTER_BATCH):
        wide = gather_snippets(recording, times[a : a + _FILTER_BATCH], n_before + band.pad,
                               n_after + band.pad, channels)
        out[a : a + _FILTER_BATCH] = band.apply(wide, axis=1, crop=band.pad)
    return out


#: windows filtered at a time by gather_band_snippets
_FILTER_BATCH = 64


def _gather_rows(recording: Recording, starts: np.ndarray, n_times: int, cols: np.ndarray,
                 order: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` for the windows lying inside one samples-major file, batch by batch; return
    the indices (in ``order``) of the windows left for the general path."""
    bounds = recording.file_starts
    file_of = np.searchsorted(bounds, starts[order], side="right") - 1
    inside = starts[order] + n_times <= bounds[file_of + 1]
    row_bytes = recording.n_channels * recording.dtype.itemsize
    batch = max(1, _BATCH_BYTES // (n_times * row_bytes))
    raw = np.empty((min(batch, order.size), n_times, recording.n_channels), recording.dtype)
    # a run of consecutive columns (the usual case: channels near a unit) is a strided slice,
    # several times faster to copy out than a fancy index
    take = slice(int(cols[0]), int(cols[-1]) + 1) if cols.size and np.all(np.diff(cols) == 1) else cols
    for f in np.unique(file_of[inside]).tolist():
        idx = order[inside & (file_of == f)]
        for a in range(0, idx.size, batch):
            part = idx[a : a + batch]
            buf = raw[: part.size]
            recording.read_file_windows(f, starts[part] - bounds[f], buf)
            out[part] = buf[:, :, take]
    return order[~inside]


def gather_many(
    recording: Recording,
    requests: list[tuple[np.ndarray, np.ndarray | None]],
    n_before: int,
    n_after: int,
    band: "Highpass | None" = None,
    extra: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = (),
) -> list[np.ndarray]:
    """:func:`gather_band_snippets` for several ``(times, channels)`` requests at once.

    For a chunked recording every request is served by one pass over the chunks (each chunk read
    and decompressed at most once); for a flat binary each request is gathered on its own (its
    windows are positional reads already). Results are the same either way. ``extra`` are more
    raw :func:`gather_chunk_order` jobs filled in the same pass (or read directly from a flat
    binary), e.g. the noise chunks.

    Returns:
        one (len(times), n_before + n_after, n_ch) float32 array per request, raw file units.
    """
    if getattr(recording, "chunk_shape", None) is None:
        for starts, cols, out in extra:
            for i, a in enumerate(np.asarray(starts, np.int64).tolist()):
                out[i] = recording.read(a, a + out.shape[1], np.asarray(cols, np.int64))
        return [gather_band_snippets(recording, t, n_before, n_after, ch, band) for t, ch in requests]
    pad = band.pad if band is not None else 0
    wide = n_before + n_after + 2 * pad
    jobs = []
    for times, channels in requests:
        times = np.asarray(times, dtype=np.int64).ravel()
        cols = np.arange(recording.n_channels) if channels is None else np.asarray(channels, np.int64).ravel()
        starts = times - n_before - pad
        if times.size and (starts.min() < 0 or starts.max() + wide > recording.n_samples):
            raise ValueError(f"snippet windows leave the recording of {recording.n_samples} samples "
                             f"(valid times are {n_before + pad}..{recording.n_samples - n_after - pad})")
        jobs.append((starts, cols, np.empty((times.size, wide, cols.size), np.float32)))
    gather_chunk_order(recording, jobs + list(extra))
    return [filter_windows(out, band) for _, _, out in jobs]


def filter_windows(wide: np.ndarray, band: "Highpass | None") -> np.ndarray:
    """Windows read ``band.pad`` samples wider on each side -> high-passed and cut back (zero
    phase, per window and channel, in batches: the filter works in float64); ``wide`` itself
    when ``band`` is None. (n, length + 2 pad, k) -> (n, length, k) float32."""
    if band is None:
        return wide
    done = np.empty((wide.shape[0], wide.shape[1] - 2 * band.pad, wide.shape[2]), np.float32)
    for a in range(0, wide.shape[0], _FILTER_BATCH):
        done[a : a + _FILTER_BATCH] = band.apply(wide[a : a + _FILTER_BATCH], axis=1, crop=band.pad)
    return done


def gather_chunk_order(recording: Recording, jobs: list[tuple]) -> None:
    """Fill each job's ``out[i]`` with samples ``[starts[i], starts[i] + out.shape[1])`` of its
    columns, reading the chunked recording's chunk rows in time order, each chunk at most once,
    and only the column chunks that hold a requested column.

    ``jobs``: ``(starts (n,), columns (k,), out (n, length, k))`` per request, optionally with a
    fourth item ``then``: called with no argument once the job's windows are filled, it returns
    more jobs for the same sweep (their windows may not start before that job's last window).
    That is how a unit's first spikes, read on every channel, choose the channels of the rest
    without a second pass. Lengths may differ between jobs (spike windows and noise chunks can
    share the sweep). Memory: the chunk rows one window spans.
    """
    import heapq

    rows_per_chunk, cols_per_chunk = recording.chunk_shape
    n_total, n_ch = recording.n_samples, recording.n_channels
    pending: list[tuple[int, int, int]] = []  # (start, job, row in job): a heap in time order
    table: list[list] = []  # per job: [starts, cols, out, then, windows left]
    needed: dict[int, set[int]] = {}  # chunk row -> column chunks some window there needs
    sweep_at = [-1]

    def add(job) -> None:
        starts, cols, out = (np.asarray(job[0], np.int64).ravel(), np.asarray(job[1], np.int64).ravel(),
                             job[2])
        then = job[3] if len(job) > 3 else None
        j = len(table)
        table.append([starts, cols, out, then, starts.size])
        if starts.size and starts.min() < sweep_at[0]:
            raise ValueError(f"a follow-up window starts at {int(starts.min())}, before the sweep "
                             f"(at {sweep_at[0]})")
        chunks = set((cols // cols_per_chunk).tolist())
        length = out.shape[1]
        for r in {(int(a), int(b)) for a, b in zip(starts // rows_per_chunk,
                                                   (starts + length - 1) // rows_per_chunk)}:
            for row in range(r[0], r[1] + 1):
                needed.setdefault(row, set()).update(chunks)
        for i, a in enumerate(starts.tolist()):
            heapq.heappush(pending, (a, j, i))
        if starts.size == 0 and then is not None:
            table[j][3] = None
            for more in then():
                add(more)

    for job in jobs:
        add(job)
    loaded: dict[int, tuple[np.ndarray, set[int]]] = {}  # chunk row -> (samples x all columns, filled)
    while pending:
        s, j, i = heapq.heappop(pending)
        sweep_at[0] = s
        starts, cols, out, then, _ = table[j]
        n = out.shape[1]
        r0, r1 = s // rows_per_chunk, (s + n - 1) // rows_per_chunk
        for r in [r for r in loaded if r < r0]:  # windows come in time order: never needed again
            del loaded[r]
        for r in range(r0, r1 + 1):
            block, filled = loaded.get(r) or (None, set())
            missing = sorted(needed[r] - filled)
            if missing:
                a, b = r * rows_per_chunk, min((r + 1) * rows_per_chunk, n_total)
                if block is None:
                    block = np.empty((b - a, n_ch), recording.dtype)
                for c0, c1 in _runs(missing):  # contiguous column ranges: slices, not a gather
                    lo, hi = c0 * cols_per_chunk, min(c1 * cols_per_chunk, n_ch)
                    block[:, lo:hi] = recording.read(a, b, np.arange(lo, hi))
                loaded[r] = (block, filled | set(missing))
        filled_at = 0
        for r in range(r0, r1 + 1):  # a window across chunk rows takes its pieces in order
            block = loaded[r][0]
            lo = s + filled_at - r * rows_per_chunk
            take = min(n - filled_at, block.shape[0] - lo)
            out[i, filled_at : filled_at + take] = block[lo : lo + take][:, cols]
            filled_at += take
        table[j][4] -= 1
        if table[j][4] == 0 and then is not None:
            table[j][3] = None
            for more in then():
                add(more)


def _runs(sorted_ints: list[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7, 8] -> [(1, 4), (7, 9)]: runs of consecutive integers as half-open ranges."""
    runs: list[tuple[int, int]] = []
    for v in sorted_ints:
        if runs and runs[-1][1] == v:
            runs[-1] = (runs[-1][0], v + 1)
        else:
            runs.append((v, v + 1))
    return runs

"""Gather waveform snippets around spike times from a recording.

Only the windows around the requested spikes are read, in time order (front to back through the
page cache), each with one positional read. The whole recording is never loaded.
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

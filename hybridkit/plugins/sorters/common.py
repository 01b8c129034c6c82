"""Checks shared by the sorter adapters (phy, kilosort, jrclust, yass)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridkit.errors import SortingError
from hybridkit.model import Recording, Sorting

#: relative tolerance between a sorter's and the recording's sampling rates
RATE_TOLERANCE = 0.01


def sort_by_time(times: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spikes in time order (stable, so equal times keep the sorter's order)."""
    order = np.argsort(times, kind="stable")
    return times[order], units[order]


def check_times(times: np.ndarray, where: str, what: str) -> None:
    """0-based sample times must be >= 0 (a negative one means a base or offset mix-up)."""
    if times.size and times.min() < 0:
        i = int(np.argmin(times))
        raise SortingError(f"{where}: {what} gives a negative 0-based sample ({int(times[i])}) at spike "
                           f"{i}; expected sample indices >= 0")


def check_against(sorting: Sorting, recording: Recording, where: str, *,
                  n_channels_total: int | None = None, rate_source: str = "",
                  times_source: str = "", channels_source: str = "") -> None:
    """Times inside the recording, channel map within its columns, rates and channel counts agree.

    ``where`` names the sorting in messages; ``times_source``, ``channels_source`` and
    ``rate_source`` name the file (or field) each value came from, when the format has one.
    """
    n = recording.n_samples
    late = np.flatnonzero(sorting.spike_times >= n)
    if late.size:
        i = int(late[0])
        raise SortingError(f"{times_source or where}: spike {i} at sample {int(sorting.spike_times[i])} "
                           f"(0-based) is past the end of recording {recording.name} ({n} samples); "
                           f"expected times < {n}")
    if n_channels_total is not None and n_channels_total != recording.n_channels:
        raise SortingError(f"{where}: the sorter read a file of {n_channels_total} channels but recording "
                           f"{recording.name} has {recording.n_channels}; the channel map would index the "
                           "wrong columns (is this sorting of this recording?)")
    if sorting.channel_map is not None and sorting.channel_map.size:
        bad = np.flatnonzero((sorting.channel_map < 0) | (sorting.channel_map >= recording.n_channels))
        if bad.size:
            i = int(bad[0])
            raise SortingError(f"{channels_source or where}: sorter channel {i} maps to file column "
                               f"{int(sorting.channel_map[i])} but recording {recording.name} has "
                               f"columns 0..{recording.n_channels - 1}")
    rate = sorting.sampling_rate
    if rate is not None and abs(rate - recording.sampling_rate) > RATE_TOLERANCE * recording.sampling_rate:
        raise SortingError(f"{rate_source or where}: sampling rate {rate:g} Hz but recording {recording.name} "
                           f"is sampled at {recording.sampling_rate:g} Hz; they must agree within 1%")


def find_one(folder: Path, patterns: tuple[str, ...], what: str) -> Path:
    """The single file in ``folder`` matching the first pattern that matches anything."""
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise SortingError(f"sorting.path: {folder} holds several {what} files "
                               f"({', '.join(h.name for h in hits)}); set sorting.path to one of them")
    raise SortingError(f"sorting.path: {folder} holds no {what} file ({' or '.join(patterns)})")

"""What every sorter adapter's Sorting must satisfy (hybridkit.model.Sorting's conventions).

Each adapter's test loads its format and hands the result to :func:`assert_sorting_conventions`
with what the sorter itself shows (unit ids, labels, channel count, recording length), instead of
re-checking dtypes, bases and ranges by hand.
"""
from __future__ import annotations

import numpy as np

from hybridkit.model import Sorting


def assert_sorting_conventions(s: Sorting, *, unit_ids, labels: dict[int, str], fmt: str,
                               n_samples: int | None = None, n_channels: int | None = None) -> None:
    """Times int64, 0-based, sorted and inside ``n_samples``; ids exactly ``unit_ids`` (as the
    sorter shows them, no hidden +-1); ``labels`` exactly; channels file columns inside
    ``n_channels``; templates consistent with the channel map and the units."""
    times, units, ids = s.spike_times, s.spike_units, s.unit_ids
    # times: int64 samples, 0-based, sorted, on the recording
    assert times.dtype == np.int64 and times.ndim == 1, (times.dtype, times.shape)
    assert units.dtype == np.int64 and units.shape == times.shape, (units.dtype, units.shape)
    if times.size:
        assert times.min() >= 0, f"negative spike time {times.min()} (1-based input not converted?)"
        assert np.all(np.diff(times) >= 0), "spike times are not sorted"
        if n_samples is not None:
            assert times.max() < n_samples, f"spike time {times.max()} >= {n_samples} samples"
    # ids as the sorter shows them
    assert ids.dtype == np.int64 and np.array_equal(ids, np.unique(ids)), ids
    assert ids.tolist() == sorted(int(u) for u in unit_ids), (ids.tolist(), sorted(unit_ids))
    assert set(np.unique(units).tolist()) <= set(ids.tolist()), "spikes of units not in unit_ids"
    # labels: the sorter's words, keyed by its ids
    assert s.labels == labels, s.labels
    assert all(isinstance(k, int) and isinstance(v, str) for k, v in s.labels.items())
    assert set(s.labels) <= set(ids.tolist())
    # channels: file columns
    if s.channel_map is not None:
        cmap = s.channel_map
        assert cmap.dtype == np.int64 and cmap.ndim == 1 and np.unique(cmap).size == cmap.size, cmap
        assert cmap.min(initial=0) >= 0
        if n_channels is not None:
            assert cmap.max(initial=-1) < n_channels, f"channel {cmap.max()} >= {n_channels} columns"
        if s.channel_positions is not None:
            assert s.channel_positions.shape == (cmap.size, 2), s.channel_positions.shape
    # templates: one row per template unit, over the sorter's channels
    if s.templates is not None:
        assert s.templates.dtype == np.float32 and s.templates.ndim == 3, s.templates.dtype
        assert s.template_units is not None and s.template_units.shape == (s.templates.shape[0],)
        assert set(np.asarray(s.template_units).tolist()) <= set(ids.tolist())
        if s.channel_map is not None:
            assert s.templates.shape[2] == s.channel_map.size, (s.templates.shape, s.channel_map.size)
    assert s.sampling_rate is None or s.sampling_rate > 0
    assert s.format == fmt, s.format

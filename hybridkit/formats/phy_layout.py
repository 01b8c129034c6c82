"""The phy folder's dense template layout, shared by the ``phy`` writer and ``hybridkit verify``.

phy's ``templates.npy`` is dense: (n_units, n_times, n_channels) float32 over every channel of
``channel_map.npy``, zero off a unit's channels, with every unit's peak at the same sample.
"""
from __future__ import annotations

import numpy as np

from hybridkit.errors import OutputError
from hybridkit.model import PlacedUnit


def dense_templates(units: list[PlacedUnit], channels: np.ndarray, writer: str = "phy") -> tuple[np.ndarray, int]:
    """Stack placed templates into one dense (n_units, n_times, n_channels) float32 uV array.

    ``channels`` are the file columns of the dense array's columns. Templates of different lengths
    are padded with zeros so that every peak sits at the same sample, which is returned.
    Raises OutputError (naming ``writer``) when a template uses a channel that is not in ``channels``.
    """
    channels = np.asarray(channels, dtype=np.int64)
    if not units:
        return np.zeros((0, 0, channels.size), np.float32), 0
    before = max(u.template.peak_index for u in units)
    after = max(u.template.n_times - u.template.peak_index for u in units)
    out = np.zeros((len(units), before + after, channels.size), np.float32)
    column_of = {int(c): i for i, c in enumerate(channels)}
    for k, unit in enumerate(units):
        t = unit.template
        missing = [int(c) for c in t.channels if int(c) not in column_of]
        if missing:
            raise OutputError(
                f"{writer} writer: injected unit {unit.new_unit_id} uses channel(s) {missing} that are not "
                f"neural channels of the recording; its channel map holds only {channels.tolist()}"
            )
        cols = [column_of[int(c)] for c in t.channels]
        start = before - t.peak_index
        out[k, start : start + t.n_times][:, cols] = t.waveform
    return out, before

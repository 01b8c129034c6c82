"""The channel neighbourhood of a snippet: the ``n`` neural contacts nearest a centre contact."""
from __future__ import annotations

import numpy as np

from hybridkit.errors import ConfigError


def neighbourhoods(positions: np.ndarray, neural: np.ndarray, n: int) -> dict[int, np.ndarray]:
    """For every neural channel, its neighbourhood as (n,) int64 file columns.

    Column 0 is the centre itself; the others follow by distance (ties by y, then x), so a
    column has the same meaning (k-th nearest contact) in every snippet.

    Args:
        positions: (n_channels, 2) um contact positions (NaN rows for non-neural channels).
        neural: (n_channels,) bool.
        n: channels per neighbourhood.
    """
    cols = np.flatnonzero(neural)
    if n > cols.size:
        raise ConfigError(f"augment.n_channels = {n}: the recording has only {cols.size} neural "
                          f"channels; valid: 1..{cols.size}")
    pos = np.asarray(positions, dtype=np.float64)[cols]
    out = {}
    for i, c in enumerate(cols.tolist()):
        d = np.linalg.norm(pos - pos[i], axis=1)
        order = np.lexsort((pos[:, 0], pos[:, 1], d))  # distance first, then y, then x
        out[c] = cols[order[:n]].astype(np.int64)
    return out


def contacts_at_distance(positions: np.ndarray, neural: np.ndarray, centre: int,
                         lo: float, hi: float) -> np.ndarray:
    """(k,) int64 neural channels whose distance (um) from ``centre`` is in [lo, hi]."""
    cols = np.flatnonzero(neural)
    d = np.linalg.norm(np.asarray(positions, dtype=np.float64)[cols] - positions[centre], axis=1)
    return cols[(d >= lo) & (d <= hi)].astype(np.int64)

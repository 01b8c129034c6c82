"""What an ``nwb`` writer's file is called and how its Units table lays out waveforms, shared by
the writer and ``hybridkit verify`` (which finds the file and re-derives the table from the plan).
"""
from __future__ import annotations

import re

import numpy as np

from hybridkit.formats.phy_layout import dense_templates
from hybridkit.model import GroundTruth


def session_id_for(session: str) -> str:
    """DANDI puts the session id in a file name: no '/', and '_' separates name parts."""
    return re.sub(r"[_/\\\s]+", "-", session).strip("-") or "hybrid"


def nwb_file_name(file_name: str | None, session: str) -> str:
    """The file an ``nwb`` writer writes: its ``file_name`` option, else ``<session id>.nwb``."""
    return file_name or f"{session_id_for(session or 'hybrid')}.nwb"


def dense_waveforms(truth: GroundTruth) -> tuple[np.ndarray, int]:
    """(n_units, n_times, n_neural) float32 volts, peaks aligned at sample ``before``; and ``before``.

    phy's dense layout (:func:`hybridkit.formats.phy_layout.dense_templates`) over the neural
    channels (the electrodes table's rows), in volts."""
    neural = truth.recording.neural_channels
    if not truth.plan.units:  # no rows: one empty sample, as pynwb is handed for an empty table
        return np.zeros((0, 1, neural.size), np.float32), 0
    uv, before = dense_templates(truth.plan.units, neural, writer="nwb")
    return uv * np.float32(1e-6), before

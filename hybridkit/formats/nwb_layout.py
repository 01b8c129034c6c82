"""What an ``nwb`` writer's file is called and how its Units table lays out waveforms, shared by
the writer and ``hybridkit verify`` (which finds the file and re-derives the table from the plan).
"""
from __future__ import annotations

import re

import numpy as np

from hybridkit.model import GroundTruth


def session_id_for(session: str) -> str:
    """DANDI puts the session id in a file name: no '/', and '_' separates name parts."""
    return re.sub(r"[_/\\\s]+", "-", session).strip("-") or "hybrid"


def nwb_file_name(file_name: str | None, session: str) -> str:
    """The file an ``nwb`` writer writes: its ``file_name`` option, else ``<session id>.nwb``."""
    return file_name or f"{session_id_for(session or 'hybrid')}.nwb"


def dense_waveforms(truth: GroundTruth) -> tuple[np.ndarray, int]:
    """(n_units, n_times, n_neural) float32 volts, peaks aligned at sample ``before``; and ``before``."""
    plan, rec = truth.plan, truth.recording
    neural = rec.neural_channels
    before = max((u.template.peak_index for u in plan.units), default=0)
    after = max((u.template.n_times - u.template.peak_index for u in plan.units), default=1)
    out = np.zeros((len(plan.units), before + after, neural.size), np.float32)
    for k, u in enumerate(plan.units):
        t = u.template
        a = before - t.peak_index
        out[k][a:a + t.n_times, np.searchsorted(neural, t.channels)] = t.waveform * np.float32(1e-6)
    return out, before

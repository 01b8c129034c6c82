"""The name of a hybrid binary: what the ``legacy`` writer writes and what others point at.

The ``phy`` writer's ``params.py``, the ``nwb`` writer's provenance and the results reader
(:mod:`hybridkit.results.traces`) all name the legacy writer's hybrid files, so the naming lives
here, beside the other file formats, rather than in one plugin that the others import.
"""
from __future__ import annotations

from pathlib import Path


def hybrid_file_name(source: Path) -> str:
    """``run_g0_t0.imec0.ap.bin`` -> ``run_g0_t0.imec0.ap.GT.bin`` (the predecessor's naming)."""
    source = Path(source)
    return f"{source.stem}.GT{source.suffix}"

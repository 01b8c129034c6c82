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


def hybrid_file_names(recording) -> list[str]:
    """The legacy writer's hybrid file names for ``recording`` (a hybridkit.model.Recording), one
    per source file (segment).

    A flat binary source keeps its names (:func:`hybrid_file_name`); a source that is not a flat
    file but can be written as one (``flat_export``, e.g. a SpikeInterface recording) gets
    ``<name>.GT.bin``, or ``<name>_seg<k>.GT.bin`` per segment when it has several.
    """
    if recording.flat_binary:
        return [hybrid_file_name(f.path) for f in recording.files]
    if len(recording.files) == 1:
        return [f"{recording.name}.GT.bin"]
    return [f"{recording.name}_seg{k}.GT.bin" for k in range(len(recording.files))]


def flat_layouts(recording) -> list:
    """binio Layouts of the flat hybrid files of a ``flat_export`` recording: samples-major, no
    header, the source's dtype and channels."""
    from hybridkit.formats.binio import Layout

    return [Layout(recording.dtype, recording.n_channels, f.n_samples, 0, "samples")
            for f in recording.files]

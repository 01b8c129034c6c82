"""The ``nwb`` plugins: a source reader and a writer of NWB (HDF5) files.

The reader (:mod:`.nwb_reader`, streaming in :mod:`.nwb_remote`) reads an ElectricalSeries from a
local file, a URL or a DANDI asset; the writer (:mod:`.nwb_writer`, with :mod:`.nwb_metadata` and
:mod:`.nwb_units`) writes the hybrid traces and the ground-truth units table. See docs/nwb.md.
Heavy imports (h5py, pynwb, dandi) happen inside the plugins' methods, never here.
"""
from __future__ import annotations

from ..hookspecs import hookimpl
from .nwb_reader import NwbReader
from .nwb_writer import NwbWriter


@hookimpl
def hybridkit_source_readers():
    return [NwbReader]


@hookimpl
def hybridkit_writers():
    return [NwbWriter]

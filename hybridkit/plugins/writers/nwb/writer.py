"""Writer ``nwb``: one NWB (HDF5) file per hybrid run, ready for DANDI.

With ``traces: true`` (default) the file holds the hybrid traces as an ElectricalSeries
(``acquisition/ElectricalSeries``, (time, channel), the source's dtype, gzip + shuffle), the
non-neural columns (sync words) as a TimeSeries ``acquisition/NonNeuralChannels``, the electrodes
table, subject and session metadata, and the ground truth as the Units table. With
``traces: false`` it holds only the electrodes, the metadata and the Units table, and its ``notes``
point to the hybrid binaries written beside it (for users whose traces stay in binary).

How the traces are written with bounded memory: ``begin`` writes the file's skeleton with pynwb,
the series' dataset pre-allocated at its final shape and chunked (~``chunk_mb`` MB per chunk);
``write`` fills it chunk by chunk as the engine streams every block in time order (whole chunks
only, each compressed once, on ``compression_threads`` threads; see nwb_chunks); ``finish``
appends the Units table with pynwb (it cannot be written in ``begin``: the ground truth is
final only at the end of the run).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import AwareDatetime, Field, ValidationInfo, field_validator

from hybridkit.errors import OutputError
from hybridkit.hookspecs import Writer, hookimpl
from hybridkit.model import GroundTruth, Recording
from hybridkit.options import PluginOptions
from hybridkit.plugins.writers.nwb.chunks import ChunkFiller
from hybridkit.plugins.writers.nwb.metadata import NwbSubject, check_location, check_session_start, check_subject, conversion_for

log = logging.getLogger(__name__)

SERIES = "ElectricalSeries"
NON_NEURAL = "NonNeuralChannels"


class NwbWriterOptions(PluginOptions):
    type: Literal["nwb"] = "nwb"
    file_name: str | None = Field(None, description="Name of the NWB file in the output folder; "
                                  "default '<session>.nwb'.")
    traces: bool = Field(True, description="true: the hybrid traces go into the file (an "
                         "ElectricalSeries in the source's dtype, gzip-compressed); false: only the ground truth (electrodes "
                         "+ units), pointing to the hybrid binaries of the legacy writer.")
    dandi: bool = Field(True, description="Check, when the config is loaded, the metadata DANDI "
                        "requires (subject, session_start_time, Allen CCF location for mouse).")
    session_start_time: AwareDatetime | None = Field(
        None, description="Start of the source recording, ISO 8601 with a time zone, e.g. "
        "'2024-05-01T13:45:00+02:00'. Required when dandi is true.")
    subject: NwbSubject | None = Field(None, description="The subject (required when dandi is true).")
    electrode_location: str | None = Field(
        None, description="Brain area of the contacts (an Allen CCF acronym such as 'CA1' for mouse, "
        "required then); default: the source NWB's locations, else 'unknown'.")
    session_description: str = Field("Hybrid ground-truth recording for spike sorting made by hybridkit",
                                      description="NWB session_description.")
    experiment_description: str | None = Field(None, description="NWB experiment_description; a "
                                               "default describes the hybrid run.")
    session_id: str | None = Field(None, description="NWB session_id (no '/'); default the run's "
                                   "session name with '_' replaced by '-' (DANDI uses it in file names).")
    identifier: str | None = Field(None, description="NWB identifier; default a new UUID.")
    experimenter: list[str] = Field(default_factory=list, description="Experimenters as 'Last, First'.")
    institution: str | None = Field(None, description="Institution.")
    lab: str | None = Field(None, description="Lab.")
    keywords: list[str] = Field(default_factory=list, description="Keywords; 'ground truth', "
                                "'hybrid' and 'spike sorting' are always added.")
    units_location: Literal["units", "processing/ecephys"] = Field(
        "units", description="Where the ground-truth Units table goes: the top-level /units, or "
        "processing/ecephys/units to leave /units to a sorter's output.")
    compression_level: int = Field(4, ge=0, le=9, description="gzip level of the traces (0: none; "
                                   "1 is about 1.7x faster than 4 for ~9% larger files).")
    compression_threads: int = Field(0, ge=0, le=64, description="Threads compressing chunks of the "
                                     "traces in parallel; 0: one per CPU, at most 8.")
    chunk_mb: float = Field(10.0, gt=0, le=512, description="Size of one HDF5 chunk of the traces "
                            "(MB); a chunk spans every channel and as many samples as fit.")
    inspect: Literal["warn", "error", "off"] = Field(
        "warn", description="Run nwbinspector (DANDI config) on the written file: log issues of "
        "importance BEST_PRACTICE_VIOLATION or above (warn), fail the run on them (error), or skip.")

    @field_validator("file_name")
    @classmethod
    def _file_name(cls, v: str | None) -> str | None:
        if v is not None and (not v.endswith(".nwb") or re.search(r"[/\\]", v) or v.startswith(".")):
            raise ValueError("a plain file name ending in .nwb, e.g. 'hybrid.nwb'")
        return v

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "/" in v):
            raise ValueError("a session_id is a non-empty name without '/'")
        return v

    # With an NWB source, a missing session_start_time, subject or location may come from the
    # source file: the check waits for it (resolve_metadata, when the writer begins).
    @field_validator("session_start_time")
    @classmethod
    def _start(cls, v, info: ValidationInfo):
        return check_session_start(v, info.data.get("dandi", True) and not _source_may_tell(info))

    @field_validator("subject")
    @classmethod
    def _subject(cls, v, info: ValidationInfo):
        return check_subject(v, info.data.get("dandi", True) and not _source_may_tell(info))

    @field_validator("electrode_location")
    @classmethod
    def _location(cls, v, info: ValidationInfo):
        if v is None and _source_may_tell(info):
            return v
        return check_location(v, info.data.get("subject")) if info.data.get("dandi", True) else v


def _source_may_tell(info: ValidationInfo) -> bool:
    """Whether the run's source is an NWB file, which may hold the session metadata itself."""
    return (info.context or {}).get("recording_type") == "nwb"


class NwbWriter(Writer):
    """The hybrid recording and its ground truth as one DANDI-ready NWB file."""

    name: ClassVar[str] = "nwb"
    Options: ClassVar[type[PluginOptions]] = NwbWriterOptions

    @classmethod
    def writes_traces(cls, options: PluginOptions) -> bool:
        return bool(options.traces)

    def __init__(self, options, context=None) -> None:
        super().__init__(options, context)
        # an instance attribute: the pipeline asks the instance; ground-truth-only files need no samples
        self.needs_every_sample = bool(options.traces)
        self.path: Path | None = None
        self._h5 = None
        self._fillers: list[tuple[ChunkFiller, np.ndarray | slice]] = []
        self._next = 0
        self._inputs = None  # Future of (portable config, input rows), hashed beside the run
        self._cancel_inputs = None

    # ------------------------------------------------------------------------------------------
    def _notes(self, recording: Recording) -> dict:
        from hybridkit.formats.hybrid_binary import hybrid_file_names

        ctx = self.context
        notes = {"hybridkit": {
            "session": getattr(ctx, "session", ""), "seed": getattr(ctx, "seed", None),
            # spike_times and series times are start_time_s + samples / rate (the source's clock)
            "start_time_s": float(recording.start_time_s),
            "source": {"files": [f.path.name for f in recording.files],  # no paths of this machine
                       "dtype": recording.dtype.str,
                       "n_channels": recording.n_channels, "sampling_rate_hz": recording.sampling_rate,
                       "nwb": _portable_nwb_meta(recording.meta.get("nwb"))},
        }}
        if self.options.traces:
            notes["hybridkit"]["traces"] = f"acquisition/{SERIES}"
        else:
            notes["hybridkit"]["traces"] = {
                "in_this_file": False,
                # paths relative to this file's folder (the legacy writer writes them beside it);
                # hybridkit.results.traces.open_nwb_hybrid opens them
                "hybrid_binaries": hybrid_file_names(recording),
                "relative_to": "the folder of this NWB file",
                # without the legacy writer's binaries: rebuilt from the source and the plan file
                "lazy": "hybridkit.spikeinterface.read_hybrid(<this folder>)",
                "layout": recording.order, "dtype": recording.dtype.str,
                "n_channels": recording.n_channels, "sampling_rate_hz": recording.sampling_rate,
                "n_samples": [int(f.n_samples) for f in recording.files],
                "gain_to_uV": recording.gain_to_uV.tolist(),
                "offset_to_uV": recording.offset_to_uV.tolist(),
                "offset_bytes": [int(f.offset_bytes) for f in recording.files],
            }
        return notes

    def _new_file(self, recording: Recording):
        from hybridkit.plugins.writers.nwb.metadata import new_nwbfile

        ctx = self.context
        return new_nwbfile(self.options, recording, getattr(ctx, "session", "hybrid"),
                           getattr(ctx, "seed", 0), self._notes(recording))

    def begin(self, recording: Recording, out_dir: Path) -> None:
        from hybridkit.formats.nwb_layout import nwb_file_name
        from hybridkit.plugins.writers.nwb.metadata import resolve_metadata

        self.recording = recording
        self.options = resolve_metadata(self.options, recording)
        name = nwb_file_name(self.options.file_name, getattr(self.context, 'session', 'hybrid'))
        self.path = Path(out_dir) / name
        self._start_input_identities()
        if not self.options.traces:
            return
        if recording.neural_channels.size == 0:
            raise OutputError(f"nwb writer: recording {recording.name} has no neural channels to write")
        self._write_skeleton(recording)
        import h5py

        self._h5 = h5py.File(self.path, "r+")
        neural = recording.neural_channels
        other = np.flatnonzero(~recording.neural)
        threads = self.options.compression_threads or min(os.cpu_count() or 1, 8)
        self._fillers = [(ChunkFiller(self._h5[f"acquisition/{SERIES}/data"], threads),
                          _columns(neural, recording.n_channels))]
        if other.size:  # a few columns: one thread is plenty
            self._fillers.append((ChunkFiller(self._h5[f"acquisition/{NON_NEURAL}/data"], 1),
                                  _columns(other, recording.n_channels)))

    def _dataio(self, n_samples: int, n_cols: int, dtype):
        from hdmf.backends.hdf5 import H5DataIO

        rows = int(self.options.chunk_mb * 2**20 // max(n_cols * np.dtype(dtype).itemsize, 1))
        rows = max(1, min(rows, n_samples))
        level = self.options.compression_level
        extra = {"compression": "gzip", "compression_opts": level, "shuffle": True} if level else {}
        return H5DataIO(shape=(n_samples, n_cols), dtype=np.dtype(dtype), chunks=(rows, n_cols),
                        fillvalue=0, **extra)

    def _write_skeleton(self, recording: Recording) -> None:
        from pynwb import NWBHDF5IO, TimeSeries
        from pynwb.ecephys import ElectricalSeries

        nwbfile, region = self._new_file(recording)
        n = recording.n_samples
        neural = recording.neural_channels
        conversion, channel_conversion, offset = conversion_for(recording)
        es = ElectricalSeries(
            name=SERIES, data=self._dataio(n, neural.size, recording.dtype), electrodes=region,
            starting_time=float(recording.start_time_s), rate=float(recording.sampling_rate), conversion=conversion,
            offset=offset, channel_conversion=channel_conversion,
            filtering="As the source recording; hybridkit adds templates and changes nothing else",
            description=f"Hybrid recording: {recording.name} with injected ground-truth units "
                        "(see the units table)")
        nwbfile.add_acquisition(es)
        other = np.flatnonzero(~recording.neural)
        if other.size:
            nwbfile.add_acquisition(TimeSeries(
                name=NON_NEURAL, data=self._dataio(n, other.size, recording.dtype), unit="n.a.",
                starting_time=float(recording.start_time_s), rate=float(recording.sampling_rate),
                description=f"Columns {other.tolist()} of the source file (sync words, auxiliary "
                            "inputs), unchanged, raw values"))
        try:
            with NWBHDF5IO(str(self.path), "w") as io:
                io.write(nwbfile)
        except OSError as exc:
            raise OutputError(f"nwb writer: cannot write {self.path} ({exc})") from None

    # ------------------------------------------------------------------------------------------
    def write(self, start: int, block: np.ndarray, channels: np.ndarray | None = None) -> None:
        if not self.options.traces:
            return  # ground truth only: the samples stay in the binaries
        if start != self._next or channels is not None:
            raise OutputError(f"nwb writer: got samples from {start} (channels {channels}) but needs "
                              f"every channel from sample {self._next} in order")
        for filler, cols in self._fillers:
            filler.append(block[:, cols])
        self._next = start + block.shape[0]

    def finish(self, truth: GroundTruth, out_dir: Path) -> list[Path]:
        from pynwb import NWBHDF5IO

        from hybridkit.plugins.writers.nwb.units import build_units

        if self.options.traces:
            written = [filler.close() for filler, _ in self._fillers]
            self._h5.close()
            self._h5 = None
            if any(w != truth.recording.n_samples for w in written):
                raise OutputError(f"nwb writer: {written[0]} of {truth.recording.n_samples} samples "
                                  "were streamed into the file; the run did not deliver every block")
            with NWBHDF5IO(str(self.path), "a") as io:
                nwbfile = io.read()
                self._add_units(nwbfile, build_units(truth, nwbfile.electrodes))
                self._add_provenance(nwbfile, truth)
                io.write(nwbfile)
        else:
            nwbfile, _ = self._new_file(truth.recording)
            self._add_units(nwbfile, build_units(truth, nwbfile.electrodes))
            self._add_provenance(nwbfile, truth)
            try:
                with NWBHDF5IO(str(self.path), "w") as io:
                    io.write(nwbfile)
            except OSError as exc:
                raise OutputError(f"nwb writer: cannot write {self.path} ({exc})") from None
        if self.options.inspect != "off":
            from hybridkit.plugins.writers.nwb.inspection import inspect_file

            inspect_file(self.path, fail=self.options.inspect == "error")
        return [self.path]

    def abort(self) -> None:
        """The run failed after begin: stop the compression threads and close the file (the
        pipeline removes the staging folder next)."""
        for filler, _ in getattr(self, "_fillers", None) or []:
            if filler.pool is not None:
                filler.pool.shutdown(wait=True, cancel_futures=True)
                filler.pool = None
        self._fillers = []
        if getattr(self, "_cancel_inputs", None) is not None:  # stop hashing the inputs
            self._cancel_inputs.set()
        h5, self._h5 = getattr(self, "_h5", None), None
        if h5 is not None:
            try:
                h5.close()
            except Exception:  # a half-written file; the folder is deleted anyway
                pass

    def __del__(self) -> None:
        self.abort()

    def _start_input_identities(self) -> None:
        """Hash the run's inputs (SHA-256 of the source, the sorting's files) in a thread while the
        run goes on: the source is read once more, beside the injection, not after it."""
        from concurrent.futures import ThreadPoolExecutor

        from hybridkit.formats.input_identity import portable_config

        resolved = getattr(self.context, "resolved_config", None)
        if resolved is None:
            return
        import threading

        self._cancel_inputs = threading.Event()
        pool = ThreadPoolExecutor(1, thread_name_prefix="nwb-input-identity")
        self._inputs = pool.submit(portable_config, resolved, self._cancel_inputs,
                                   getattr(self.context, "digests", None))
        pool.shutdown(wait=False)

    def _add_provenance(self, nwbfile, truth: GroundTruth) -> None:
        """The ``hybridkit`` processing module: config, inputs, events, templates, clipped, manifest."""
        from hybridkit.plugins.writers.nwb.provenance import provenance_module

        config, inputs = self._inputs.result() if self._inputs is not None else (None, [])
        nwbfile.add_processing_module(provenance_module(truth, config, inputs))

    def _add_units(self, nwbfile, units) -> None:
        if self.options.units_location == "units":
            nwbfile.units = units
        else:
            module = nwbfile.processing.get("ecephys") or nwbfile.create_processing_module(
                "ecephys", "Extracellular electrophysiology: the hybrid ground truth")
            module.add(units)


def _portable_nwb_meta(meta: dict | None) -> dict | None:
    """An NWB source's description without its local path (a URL is kept: it names the source)."""
    if not meta or str(meta.get("source", "")).startswith(("http://", "https://")):
        return meta
    return {**meta, "source": Path(str(meta.get("source", ""))).name}


def _columns(cols: np.ndarray, n_channels: int) -> np.ndarray | slice:
    """A slice when ``cols`` is a contiguous run (a view instead of a copy of every block)."""
    if cols.size and np.array_equal(cols, np.arange(cols[0], cols[0] + cols.size)):
        return slice(int(cols[0]), int(cols[0]) + cols.size)
    return cols


@hookimpl
def hybridkit_writers():
    return [NwbWriter]

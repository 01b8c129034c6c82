"""The hybrid recording of a run, read back for scoring and the report, in microvolts.

:func:`open_traces` opens the legacy writer's ``<stem>.GT<ext>`` through the source reader named in
``config.resolved.json`` (the files keep the source's layout, header and meta), or the
ElectricalSeries of the NWB file the truth came from, or the binaries a ground-truth-only NWB file
points to (:func:`open_nwb_hybrid`, :func:`nwb_hybrid_spikeinterface`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from hybridkit.errors import HybridkitError
from hybridkit.model import Recording, SourceFile
from hybridkit.results.truth import Truth, read_json

log = logging.getLogger(__name__)


class Traces:
    """Block reads of the hybrid recording in microvolts: ``read_uV(start, stop, channels)``."""

    n_samples: int
    sampling_rate: float

    def read_uV(self, start: int, stop: int, channels: np.ndarray) -> np.ndarray:  # pragma: no cover
        """(stop - start, len(channels)) float32 uV."""
        raise NotImplementedError


class RecordingTraces(Traces):
    def __init__(self, recording) -> None:
        self.recording = recording
        self.n_samples = recording.n_samples
        self.sampling_rate = recording.sampling_rate

    def read_uV(self, start, stop, channels):
        channels = np.asarray(channels, np.int64)
        raw = self.recording.read(int(start), int(stop), channels).astype(np.float32)
        return raw * self.recording.gain_to_uV[channels].astype(np.float32) \
            + self.recording.offset_to_uV[channels].astype(np.float32)


class NwbTraces(Traces):
    def __init__(self, path: Path) -> None:
        import h5py

        self.file = h5py.File(path, "r")
        group = next(g for g in self.file["acquisition"].values() if "data" in g and "starting_time" in g)
        self.data = group["data"]
        self.n_samples = int(self.data.shape[0])
        self.sampling_rate = float(group["starting_time"].attrs["rate"])
        conv = float(group["data"].attrs.get("conversion", 1.0))
        offset = float(group["data"].attrs.get("offset", 0.0))
        per = group["channel_conversion"][()] if "channel_conversion" in group else np.ones(self.data.shape[1])
        self.gain = (conv * per * 1e6).astype(np.float32)
        self.offset = np.float32(offset * 1e6)

    def read_uV(self, start, stop, channels):
        channels = np.asarray(channels, np.int64)
        block = self.data[int(start):int(stop), :][:, channels].astype(np.float32)
        return block * self.gain[channels] + self.offset


def open_nwb_hybrid(nwb_path: str | Path):
    """The hybrid recording a ground-truth-only NWB file (``traces: false``) points to.

    The file's ``notes`` (``hybridkit.traces``) name the legacy writer's hybrid binaries relative
    to the NWB file's folder, with their dtype, layout, samples per file and gains; positions and
    channel names come from the file's electrodes table. Returns a :class:`hybridkit.model.Recording`
    (block reads: ``read(start, stop, channels)`` in raw units, ``gain_to_uV``; nothing is loaded
    whole). Raises :class:`hybridkit.errors.TruthError` (one line) when the file holds no such
    pointer or a binary is missing or of the wrong size.
    """
    import h5py

    from hybridkit.errors import TruthError
    from hybridkit.model import Recording, SourceFile

    nwb_path = Path(nwb_path)
    try:
        with h5py.File(nwb_path, "r") as f:
            notes = json.loads(f["general/notes"][()]) if "general/notes" in f else {}
            traces = (notes.get("hybridkit") or {}).get("traces")
            table = f["general/extracellular_ephys/electrodes"]
            cols = {k: table[k][()] for k in ("rel_x", "rel_y", "file_column") if k in table}
    except (OSError, ValueError) as exc:
        raise TruthError(f"{nwb_path}: cannot read it as an NWB file ({exc})") from None
    if not isinstance(traces, dict) or "hybrid_binaries" not in traces:
        raise TruthError(f"{nwb_path}: its notes name no hybrid binaries (hybridkit.traces is "
                         f"{traces!r}); a file written with traces: true holds them in "
                         "acquisition/ElectricalSeries")
    if "file_column" not in cols:
        raise TruthError(f"{nwb_path}: the electrodes table has no file_column; not a hybridkit file")
    n_ch = int(traces["n_channels"])
    n_samples = traces.get("n_samples")
    itemsize = np.dtype(traces["dtype"]).itemsize
    files = []
    for i, name in enumerate(traces["hybrid_binaries"]):
        path = nwb_path.parent / name
        offset = int(traces["offset_bytes"][i])
        if not path.is_file():
            raise TruthError(f"{nwb_path}: hybrid binary {name} (relative to the NWB file) is "
                             f"missing at {path}; keep the legacy writer's files beside the NWB file, "
                             "or rebuild the hybrid from the source with "
                             "hybridkit.spikeinterface.read_hybrid(<output folder>)")
        size = path.stat().st_size - offset
        count = size // (n_ch * itemsize)
        if size % (n_ch * itemsize) or (n_samples is not None and count != int(n_samples[i])):
            raise TruthError(f"{nwb_path}: hybrid binary {name} has {size} bytes of samples; "
                             f"expected {n_samples[i] if n_samples else '?'} samples x {n_ch} "
                             f"channels x {itemsize} bytes")
        files.append(SourceFile(path=path, n_samples=int(count), offset_bytes=offset))
    positions = np.full((n_ch, 2), np.nan)
    neural = np.zeros(n_ch, bool)
    columns = cols["file_column"].astype(np.int64)
    positions[columns] = np.c_[cols.get("rel_x", np.zeros(columns.size)),
                               cols.get("rel_y", np.zeros(columns.size))]
    neural[columns] = True
    return Recording(files=files, dtype=np.dtype(traces["dtype"]), n_channels=n_ch,
                     sampling_rate=float(traces["sampling_rate_hz"]),
                     gain_to_uV=np.asarray(traces["gain_to_uV"], float),
                     offset_to_uV=np.asarray(traces.get("offset_to_uV") or np.zeros(n_ch), float),
                     channel_positions=positions, neural=neural, order=traces.get("layout", "samples"),
                     name=nwb_path.stem)


def nwb_hybrid_spikeinterface(nwb_path: str | Path):
    """:func:`open_nwb_hybrid` as a SpikeInterface recording of the neural channels (one segment
    per hybrid binary), with gains, offsets and channel locations; needs spikeinterface."""
    try:
        import spikeinterface.core as sc
    except ImportError:
        from hybridkit.errors import HybridkitError

        raise HybridkitError("nwb_hybrid_spikeinterface needs spikeinterface; pip install spikeinterface") from None
    rec = open_nwb_hybrid(nwb_path)
    offsets = {f.offset_bytes for f in rec.files}
    si = sc.BinaryRecordingExtractor(
        file_paths=[str(f.path) for f in rec.files], sampling_frequency=rec.sampling_rate,
        dtype=rec.dtype.str, num_channels=rec.n_channels, time_axis=0 if rec.order == "samples" else 1,
        file_offset=offsets.pop() if len(offsets) == 1 else 0,
        gain_to_uV=rec.gain_to_uV, offset_to_uV=rec.offset_to_uV)
    if len(offsets):  # SpikeInterface takes one header size for every file
        from hybridkit.errors import TruthError

        raise TruthError(f"{nwb_path}: its hybrid binaries have headers of different sizes")
    neural = rec.neural_channels
    si = si.select_channels(si.channel_ids[neural])
    probe = si.create_dummy_probe_from_locations(rec.channel_positions[neural])
    placed = si.set_probe(probe)  # SpikeInterface >= 0.105 sets it in place and returns None
    return si if placed is None else placed


def iter_windows(traces: Traces, times: np.ndarray, channels: np.ndarray, n_before: int,
                 n_after: int):
    """Yield ``(t, window)`` for each of ``times`` whose whole window lies inside the recording.

    ``window`` is the (n_before + n_after, len(channels)) float32 uV block ``[t - n_before,
    t + n_after)``, one positional read each (memory: one window at a time).
    """
    from hybridkit.engine.snippets import windows_inside

    times = np.asarray(times, np.int64)
    for t in times[windows_inside(times, n_before, n_after, traces.n_samples)].tolist():
        yield t, traces.read_uV(t - n_before, t + n_after, channels)


def open_source(section: dict, folder: Path) -> Recording:
    """Open the recording a config section names (``config.resolved.json``'s ``recording``) with
    its source reader; relative paths are taken from ``folder``."""
    from hybridkit.config.sections import plugin_from_section
    from hybridkit.registry import get_registry

    return plugin_from_section(get_registry(), "source_reader", section, folder,
                               what=f"{folder}/config.resolved.json: recording").open()


def open_traces(truth: Truth) -> Traces | None:
    """The hybrid recording of ``truth``, or None (with a log line) when it cannot be opened."""
    if truth.format == "nwb":
        try:
            tr = NwbTraces(truth.path)
            return tr
        except (StopIteration, KeyError, OSError):
            pass
        try:  # a ground-truth-only file: the binaries it points to
            return RecordingTraces(open_nwb_hybrid(truth.path))
        except HybridkitError as exc:
            log.info("%s: no ElectricalSeries with the hybrid traces, and %s", truth.path, exc)
            return None
    folder = truth.folder
    cfg = read_json(folder / "config.resolved.json")
    section = cfg.get("recording")
    if not section:
        log.info("%s: no config.resolved.json recording section; traces unavailable", folder)
        return None
    from hybridkit.formats.hybrid_binary import hybrid_file_name

    def _open(sec: dict):
        return open_source(sec, folder)

    # The legacy writer's files keep the source's layout and header (and SpikeGLX meta), so the
    # source's reader opens them when pointed at them: first try that (no source needed) ...
    if isinstance(section.get("path"), str):
        hybrid_path = folder / hybrid_file_name(Path(section["path"]))
        try:
            return RecordingTraces(_open({**section, "path": str(hybrid_path)}))
        except (HybridkitError, ValueError, KeyError, OSError) as exc:
            log.info("cannot open %s with reader %s (%s); trying the source's layout",
                     hybrid_path, section.get("type"), exc)
    # ... else describe the source and swap in the hybrid files
    try:
        recording = _open(section)
    except (HybridkitError, ValueError, KeyError, OSError) as exc:
        log.warning("cannot open the recording named in %s (%s); traces unavailable",
                    folder / "config.resolved.json", exc)
        return None
    from hybridkit.formats.hybrid_binary import hybrid_file_names

    files = []
    for f, name in zip(recording.files, hybrid_file_names(recording)):
        hybrid = folder / name
        if not hybrid.is_file():
            log.warning("hybrid binary %s is missing; traces unavailable", hybrid)
            return None
        # a source that is not a flat file (SpikeInterface) was written as headerless flat binary
        files.append(replace(f, path=hybrid) if recording.flat_binary
                     else SourceFile(path=hybrid, n_samples=f.n_samples))
    recording.close()
    if not recording.flat_binary:
        return RecordingTraces(flat_copy_of(recording, files))
    recording.files = files
    return RecordingTraces(recording)


def flat_copy_of(recording: Recording, files: list[SourceFile]) -> Recording:
    """A plain (flat binary, samples-major) Recording over ``files`` described like ``recording``
    (dtype, channels, gains, geometry): how the legacy writer's hybrid of a source that is not a
    flat file reads back."""
    return Recording(files=files, dtype=recording.dtype, n_channels=recording.n_channels,
                     sampling_rate=recording.sampling_rate, gain_to_uV=recording.gain_to_uV,
                     offset_to_uV=recording.offset_to_uV, channel_positions=recording.channel_positions,
                     neural=recording.neural, order="samples", probe=recording.probe,
                     name=recording.name, meta=recording.meta)

"""The hybrid recording of a run, read back for scoring and the report, in microvolts.

:func:`open_traces` opens the legacy writer's ``<stem>.GT<ext>`` through the source reader named in
``config.resolved.json`` (the files keep the source's layout, header and meta), or the
ElectricalSeries of the NWB file the truth came from.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from hybridkit.errors import HybridkitError
from hybridkit.model import Recording, SourceFile
from hybridkit.results.truth import Truth, _json

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
    from hybridkit.hookspecs import RunContext
    from hybridkit.registry import get_registry

    cls = get_registry().get("source_reader", section["type"])
    options = cls.Options.model_validate(section, context={"base_dir": folder})
    ctx = RunContext(base_dir=folder, rng=np.random.default_rng(0), seed=0)
    return cls(options, ctx).open()


def open_traces(truth: Truth) -> Traces | None:
    """The hybrid recording of ``truth``, or None (with a log line) when it cannot be opened."""
    if truth.format == "nwb":
        try:
            tr = NwbTraces(truth.path)
            return tr
        except (StopIteration, KeyError, OSError):
            log.info("%s: no ElectricalSeries with the hybrid traces", truth.path)
            return None
    folder = truth.folder
    cfg = _json(folder / "config.resolved.json")
    section = cfg.get("recording")
    if not section:
        log.info("%s: no config.resolved.json recording section; traces unavailable", folder)
        return None
    from hybridkit.plugins.writers.legacy.writer import hybrid_file_name

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
    from hybridkit.plugins.writers.legacy.writer import hybrid_file_names

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

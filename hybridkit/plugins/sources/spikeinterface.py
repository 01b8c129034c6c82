"""Source reader ``spikeinterface``: any recording SpikeInterface opens (its neo-backed formats:
Open Ephys, Intan, Blackrock, Maxwell, MEArec, Plexon, ...), or a folder saved with its ``save()``.

In the config (docs/spikeinterface.md)::

    {"type": "spikeinterface", "extractor": "openephys", "folder_path": "session1", ...}
    {"type": "spikeinterface", "folder": "preprocessed_si"}

Keys besides ``type``, ``extractor``, ``folder``, ``geometry`` and ``gain_to_uV`` are the keyword
arguments of SpikeInterface's reader; those ending in ``_path`` are relative to the config file.
The recording maps onto hybridkit's conventions: channel ``i`` (a "file column") is SpikeInterface
channel ``i`` in its channel order, segment ``k`` is file ``k`` of one run (concatenated on one
clock), gains and offsets are SpikeInterface's ``gain_to_uV``/``offset_to_uV``, contact positions
come from its probe (or ``geometry``). Traces are read with ``get_traces`` in raw units, block by
block. It is not a flat file: the legacy writer writes its hybrid as a flat binary (see
:mod:`hybridkit.plugins.writers.legacy.writer`).
"""
from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field, ValidationInfo, model_validator

from hybridkit.errors import OutputError, SourceError
from hybridkit.formats import si_objects
from hybridkit.formats.geometry import build_probe, load_geometry
from hybridkit.hookspecs import SourceReader, hookimpl
from hybridkit.model import Recording, SourceFile
from hybridkit.options import InputFile, InputFolder, PluginOptions

log = logging.getLogger(__name__)

FIELD = "recording"


class SpikeInterfaceOptions(PluginOptions):
    # the extractor's own arguments are extra keys, checked against its signature
    model_config = ConfigDict(extra="allow", validate_default=True)

    type: Literal["spikeinterface"]
    extractor: str | None = Field(
        None, description="A SpikeInterface recording extractor name (a key of "
        "spikeinterface.extractors.recording_extractor_full_dict, e.g. 'openephys', 'intan', "
        "'blackrock', 'mearec', 'maxwell', 'plexon2'); its arguments are the other keys (e.g. "
        "folder_path, file_path, stream_name). Give extractor or folder.")
    folder: InputFolder | None = Field(
        None, description="A recording folder written by SpikeInterface's save() (si_folder.json "
        "inside). Give extractor or folder.")
    geometry: InputFile | None = Field(
        None, description="Contact positions in um when SpikeInterface has no probe for the "
        "recording (or to override it): probeinterface JSON, .prb, .txt 'x y' per line or .npy "
        "(n, 2); row i = channel i unless the probe file gives device channel indices.")
    gain_to_uV: float | None = Field(
        None, description="Microvolts per raw unit when the recording has no gains in "
        "SpikeInterface (an error otherwise: hybridkit's templates are in microvolts).")

    @model_validator(mode="after")
    def _valid_call(self, info: ValidationInfo):
        if self.model_extra:
            self.__pydantic_extra__.update(si_objects.resolve_path_kwargs(self.model_extra, info))
        si_objects.check_choice(self, "recording", FIELD)
        return self


class SpikeInterfaceRecording(Recording):
    """A Recording whose samples come from a SpikeInterface recording's ``get_traces``.

    File ``k`` is segment ``k``; ``read`` maps the concatenated clock onto segments.
    """

    flat_binary = False
    #: the legacy writer writes this recording's hybrid as flat binary files
    flat_export = True

    def attach(self, si_recording) -> None:
        import inspect

        self.si_recording = si_recording
        params = inspect.signature(si_recording.get_traces).parameters
        # SpikeInterface 0.102 renamed return_scaled to return_in_uV
        self._raw_kw = {"return_in_uV" if "return_in_uV" in params else "return_scaled": False}
        self._lock = threading.Lock()  # neo readers hold file handles: one reader at a time

    def read(self, start: int, stop: int, channels: np.ndarray | slice | None = None) -> np.ndarray:
        """Samples ``[start, stop)`` as a new (stop - start, n_channels or len(channels)) array."""
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"read [{start}, {stop}) outside recording of {self.n_samples} samples")
        rec = self.si_recording
        ids = rec.channel_ids if channels is None else rec.channel_ids[channels]
        bounds = self.file_starts
        parts = []
        for seg in range(len(self.files)):
            a, b = max(start, int(bounds[seg])), min(stop, int(bounds[seg + 1]))
            if a < b:
                with self._lock:
                    parts.append(rec.get_traces(segment_index=seg, start_frame=a - int(bounds[seg]),
                                                end_frame=b - int(bounds[seg]), channel_ids=ids,
                                                **self._raw_kw))
        if not parts:
            return np.zeros((0, len(ids)), self.dtype)
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        return np.array(out, dtype=self.dtype, order="C")  # a new array, as Recording.read promises

    def layout(self, index: int):
        raise OutputError(f"recording {self.name} is read through SpikeInterface, not a flat binary: "
                          "it has no file layout to copy")

    def close(self) -> None:
        pass


class SpikeInterfaceReader(SourceReader):
    """Any recording SpikeInterface reads: an extractor and its arguments, or a save() folder."""

    name: ClassVar[str] = "spikeinterface"
    Options: ClassVar[type[PluginOptions]] = SpikeInterfaceOptions

    @classmethod
    def extra_inputs(cls, options) -> list[tuple[str, Path]]:
        """The files and folders named by the extractor's ``*_path`` arguments."""
        return si_objects.path_kwargs(options, FIELD)

    def _si_recording(self):
        opt = self.options
        return si_objects.open_configured("recording", opt.folder, f"{FIELD}.folder", opt.extractor,
                                          dict(opt.model_extra or {}), FIELD, SourceError, self._label())

    def _label(self) -> str:
        opt = self.options
        if opt.folder is not None:
            return str(opt.folder)
        paths = [v for k, v in (opt.model_extra or {}).items() if k.endswith("_path") and isinstance(v, str)]
        return paths[0] if paths else opt.extractor

    def open(self) -> Recording:
        """Open the recording with SpikeInterface and describe it (no samples are read)."""
        rec = self._si_recording()
        label = self._label()
        dtype = np.dtype(rec.get_dtype())
        if dtype.kind not in "iuf":
            raise SourceError(f"{FIELD}: {label} has dtype {dtype}; need integers or floats")
        n_chan = int(rec.get_num_channels())
        gain, offset = self._gains(rec, n_chan, label)
        positions, probe = self._geometry(rec, n_chan, label)
        neural = np.isfinite(positions).all(axis=1)
        chans = np.flatnonzero(neural)
        files = [SourceFile(path=Path(label), n_samples=int(rec.get_num_samples(segment_index=k)))
                 for k in range(rec.get_num_segments())]
        # the hybrid files are named after it: no spaces (Open Ephys folders have them)
        name = re.sub(r"[^\w.-]+", "_", Path(label).stem) or str(self.options.extractor)
        out = SpikeInterfaceRecording(
            files=files, dtype=dtype, n_channels=n_chan,
            sampling_rate=float(rec.get_sampling_frequency()),
            gain_to_uV=np.where(neural, gain, 0.0), offset_to_uV=np.where(neural, offset, 0.0),
            channel_positions=positions, neural=neural,
            probe=build_probe(positions[chans], chans, probe) if chans.size else None, name=name,
            meta={"spikeinterface": {
                "source": label, "class": type(rec).__name__, "segments": len(files),
                "channel_ids": [str(c) for c in rec.channel_ids]}})
        out.attach(rec)
        log.info("spikeinterface %s: %d segment(s), %d samples x %d channels at %g Hz", label,
                 len(files), out.n_samples, n_chan, out.sampling_rate)
        return out

    def _gains(self, rec, n_chan: int, label: str) -> tuple[np.ndarray, np.ndarray]:
        if rec.has_scaleable_traces():
            return (np.asarray(rec.get_channel_gains(), np.float64),
                    np.asarray(rec.get_channel_offsets(), np.float64))
        if self.options.gain_to_uV is None:
            raise SourceError(f"{FIELD}.gain_to_uV: {label} has no gains in SpikeInterface "
                              "(gain_to_uV); give recording.gain_to_uV (microvolts per raw unit)")
        return np.full(n_chan, float(self.options.gain_to_uV)), np.zeros(n_chan)

    def _geometry(self, rec, n_chan: int, label: str):
        """(n_chan, 2) um positions (NaN for channels without a contact) and a probe template
        whose contacts are the positioned channels in channel order (or None)."""
        opt = self.options
        if opt.geometry is not None:
            geom = load_geometry(opt.geometry, f"{FIELD}.geometry")
            cols = geom.wiring if geom.wiring is not None else np.arange(len(geom.positions))
            if cols.size and (cols.min() < 0 or cols.max() >= n_chan or np.unique(cols).size != cols.size):
                raise SourceError(f"{FIELD}.geometry: {opt.geometry} maps contacts to channels "
                                  f"{cols.tolist()[:8]}...; {label} has {n_chan} channels (0..{n_chan - 1}, "
                                  "each at most once)")
            positions = np.full((n_chan, 2), np.nan)
            positions[cols] = geom.positions
            template = None
            if geom.probe is not None and np.array_equal(np.sort(cols), cols):
                template = geom.probe
            return positions, template
        try:
            locations = np.asarray(rec.get_channel_locations(), np.float64)
        except Exception:  # SpikeInterface raises when there is neither a probe nor locations
            locations = None
        if locations is None or locations.ndim != 2 or locations.shape[0] != n_chan:
            raise SourceError(f"{FIELD}.geometry: {label} has no probe in SpikeInterface; give "
                              "recording.geometry (probeinterface JSON, .prb, .txt or .npy, one row per "
                              "channel)")
        positions = locations[:, :2]
        template = None
        try:
            probe = rec.get_probe()
            order = np.argsort(np.asarray(probe.device_channel_indices))
            template = probe.get_slice(order) if probe.ndim == 2 else None
        except Exception:  # several probes, or none: plain circular contacts at the locations
            template = None
        return positions, template


@hookimpl
def hybridkit_source_readers():
    return [SpikeInterfaceReader]

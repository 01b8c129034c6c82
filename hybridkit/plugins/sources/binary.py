"""Flat binary source reader: a headerless file described entirely by the config.

Samples-major (time x channel, the usual case) or channels-major (channel x time, as YASS 0.x
allowed); geometry from a probeinterface JSON, a .prb, or a .txt/.npy list of positions.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from hybridkit.errors import SourceError
from hybridkit.hookspecs import SourceReader, hookimpl
from hybridkit.model import Recording, SourceFile
from hybridkit.options import InputFile, PluginOptions
from hybridkit.formats.geometry import build_probe, load_geometry

FIELD = "recording"  # the config section these options live in, for error messages


class BinaryOptions(PluginOptions):
    type: Literal["binary"]
    path: InputFile = Field(description="The headerless binary recording file.")
    dtype: str = Field(
        description="numpy dtype of one value, e.g. 'int16', '<i2', 'float32', 'uint16'."
    )
    n_channels: int = Field(
        gt=0, description="Values per sample in the file (all columns, sync/aux included)."
    )
    sampling_rate: float = Field(gt=0, description="Sampling rate in Hz.")
    offset_bytes: int = Field(
        0, ge=0, description="Bytes to skip at the start of the file (a header), in bytes."
    )
    gain_to_uV: float | list[float] = Field(
        1.0,
        description="Microvolts per raw unit: one value for all channels, or one per file "
        "column (n_channels values). Columns without a contact get 0.",
    )
    offset_to_uV: float = Field(
        0.0, description="Microvolts added after the gain (uV = raw * gain + offset)."
    )
    order: Literal["samples", "channels"] = Field(
        "samples",
        description="'samples': time x channel (each sample's channels together, the usual "
        "layout); 'channels': channel x time (each channel's whole trace in turn).",
    )
    geometry: InputFile = Field(
        description="Contact positions in um: a probeinterface JSON, a .prb, a .txt with one "
        "'x y' per line (whitespace-separated), or a .npy (n, 2) array."
    )
    channels: list[int] | None = Field(
        None,
        description="File column (0-based) of each geometry row/contact. Default: the "
        "geometry file's own wiring if it has one (probeinterface/PRB), else row i = column i. "
        "Columns not listed carry no contact (sync, aux) and are never injected into.",
    )

    @field_validator("dtype")
    @classmethod
    def _valid_dtype(cls, value: str) -> str:
        try:
            dt = np.dtype(value)
        except TypeError:
            raise ValueError(
                f"{value!r} is not a numpy dtype; use e.g. int16, uint16, int32, float32"
            ) from None
        if dt.kind not in "iuf":
            raise ValueError(
                f"{value!r} is not an integer or float dtype; use e.g. int16, float32"
            )
        return value


class BinaryReader(SourceReader):
    """Reads one headerless binary file (``.bin``/``.dat``/``.raw``) of interleaved samples."""

    name: ClassVar[str] = "binary"

    Options: ClassVar[type[PluginOptions]] = BinaryOptions

    def open(self) -> Recording:
        """Describe the file (read block by block later); raise SourceError on any inconsistency."""
        opt = self.options
        path = Path(opt.path)
        try:
            dtype = np.dtype(opt.dtype)
        except TypeError:  # options built without validation
            raise SourceError(f"{FIELD}.dtype: {opt.dtype!r} is not a numpy dtype (file {path})") from None
        n_chan = int(opt.n_channels)
        if not path.is_file():
            raise SourceError(f"{FIELD}.path: binary file {path} does not exist")
        size = path.stat().st_size - opt.offset_bytes
        frame = n_chan * dtype.itemsize
        if size < 0 or size % frame:
            raise SourceError(
                f"{FIELD}.n_channels: file {path} has {size + opt.offset_bytes} bytes; minus "
                f"offset_bytes {opt.offset_bytes} that is not a multiple of n_channels {n_chan} x "
                f"itemsize {dtype.itemsize} ({opt.dtype}) = {frame} bytes"
            )

        geom = load_geometry(opt.geometry, f"{FIELD}.geometry")
        n_rows = geom.positions.shape[0]
        if opt.channels is not None:
            columns = np.asarray(opt.channels, dtype=np.int64)
            source = f"{FIELD}.channels"
            if columns.size != n_rows:
                raise SourceError(
                    f"{FIELD}.geometry: {opt.geometry} describes {n_rows} contacts but "
                    f"{FIELD}.channels lists {columns.size} columns; they must match"
                )
        elif geom.wiring is not None:
            columns, source = geom.wiring, f"the device channel indices of {opt.geometry}"
        else:
            columns, source = np.arange(n_rows, dtype=np.int64), f"{FIELD}.geometry"
            if n_rows > n_chan:
                raise SourceError(
                    f"{FIELD}.geometry: {opt.geometry} has {n_rows} rows but the file has "
                    f"n_channels={n_chan}; give at most {n_chan} rows, or {FIELD}.channels"
                )
        positions, neural = geom.on_columns(columns, n_chan, f"{FIELD}.channels", source)

        if isinstance(opt.gain_to_uV, list):
            gain = np.asarray(opt.gain_to_uV, dtype=np.float64)
            if gain.size != n_chan:
                raise SourceError(
                    f"{FIELD}.gain_to_uV: {gain.size} values given for n_channels={n_chan}; "
                    "give one value, or one per file column"
                )
        else:
            gain = np.full(n_chan, float(opt.gain_to_uV))

        probe = build_probe(geom.positions, columns, geom.probe)
        return Recording(
            files=[SourceFile(path, size // frame, int(opt.offset_bytes))],
            dtype=dtype,
            n_channels=n_chan,
            sampling_rate=float(opt.sampling_rate),
            gain_to_uV=np.where(neural, gain, 0.0),
            offset_to_uV=np.where(neural, float(opt.offset_to_uV), 0.0),
            channel_positions=positions,
            neural=neural,
            order=opt.order,
            probe=probe,
            name=path.stem,
            meta={"geometry": str(opt.geometry)},
        )


@hookimpl
def hybridkit_source_readers():
    return [BinaryReader]

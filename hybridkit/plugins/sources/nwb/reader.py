"""Source reader ``nwb``: an ElectricalSeries from an NWB (HDF5) file: local, streamed, or on DANDI.

What is read (see docs/nwb.md):

* the ElectricalSeries, chosen by ``electrical_series_path`` when the file holds several (an error
  lists them otherwise); its ``data`` must be (time, channel), as NWB requires;
* microvolts per raw unit = ``conversion`` x ``channel_conversion[ch]`` x 1e6 (unit volts), plus
  ``offset`` x 1e6;
* contact positions from the electrodes rows the series points to: ``rel_x``/``rel_y`` (probe
  coordinates), or from ``geometry`` (a probe file). ``x``/``y``/``z`` are the electrodes' places
  in the brain (atlas coordinates, NWB's definition), not on the probe: a table with only those
  needs ``geometry``;
* the sampling rate from ``starting_time.rate``, else from the ``timestamps``; below
  ``min_sampling_rate_hz`` (an LFP series) the series is refused unless that is lowered;
* the series' start (``starting_time``, else ``timestamps[0]``, in s), kept in
  ``Recording.start_time_s`` for the truth and the NWB output;
* the session start time and subject, for the ``nwb`` writer.

Traces are read block by block through h5py (a chunk cache holds recently decompressed chunks), so
a recording is never loaded whole; a URL or a DANDI asset is streamed with HTTP range requests.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from hybridkit.errors import OutputError, SourceError
from hybridkit.hookspecs import SourceReader, hookimpl
from hybridkit.model import Recording, SourceFile
from hybridkit.options import InputFile, PluginOptions, check_sampling_rate, min_sampling_rate_field
from hybridkit.formats.geometry import build_probe, load_geometry

log = logging.getLogger(__name__)

FIELD = "recording"
#: ElectricalSeries ``unit`` attribute -> microvolts per unit (the schema fixes "volts")
UNIT_TO_UV = {"volts": 1e6, "volt": 1e6, "v": 1e6, "millivolts": 1e3, "mv": 1e3,
              "microvolts": 1.0, "uv": 1.0, "µv": 1.0}
#: timestamps read to estimate a rate when a series has no starting_time.rate
RATE_TIMESTAMPS = 100_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NwbRecording(Recording):
    """A Recording whose samples live in an HDF5 dataset (local or streamed) instead of a flat binary.

    ``read`` slices the dataset; the raw-file ``layout`` of the base class does not exist here.
    """

    flat_binary = False

    def attach(self, h5file, data, remote=None) -> None:
        self._h5, self._data, self._remote = h5file, data, remote
        self._chunks = None
        if data is not None and data.chunks is not None and data.ndim == 2:
            from hybridkit.plugins.sources.nwb.chunks import ChunkReader

            self._chunks = ChunkReader(data, threads=2)

    @property
    def chunk_shape(self) -> tuple[int, int] | None:
        """(samples, channels) of one stored chunk, or None for a contiguous dataset: reads of
        whole chunks in time order (:mod:`hybridkit.engine.snippets`) decompress each once."""
        return None if getattr(self, "_chunks", None) is None else self._chunks.chunks

    @property
    def chunks_touched(self) -> dict[tuple[int, int], int]:
        """{(row chunk, column chunk): stored bytes} of every chunk read so far."""
        return {} if getattr(self, "_chunks", None) is None else dict(self._chunks.touched)

    def read(self, start: int, stop: int, channels: np.ndarray | slice | None = None) -> np.ndarray:
        """Samples ``[start, stop)`` as a new (stop - start, n_channels or len(channels)) native array.

        A chunked series is read as the whole chunks the block touches, only the column chunks
        holding ``channels``, decompressed on threads (see :mod:`.chunks`)."""
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"read [{start}, {stop}) outside recording of {self.n_samples} samples")
        if self._data is None:
            raise SourceError(f"recording {self.name}: the NWB file was closed")
        if isinstance(channels, slice):
            channels = np.arange(self.n_channels)[channels]
        if self._chunks is None or start == stop:
            block = np.asarray(self._data[start:stop])
            return block if channels is None else block[:, channels]
        rc, cc = self._chunks.chunks
        cols = np.arange(self.n_channels) if channels is None else np.asarray(channels, np.int64)
        col_chunks = np.unique(cols // cc).tolist()
        block = self._chunks.read(range(start // rc, -(-stop // rc)), col_chunks)
        # column of file channel ch in the block: its chunk's place in col_chunks + offset in it
        at = np.searchsorted(col_chunks, cols // cc) * cc + cols % cc
        rows = slice(start - (start // rc) * rc, stop - (start // rc) * rc)
        if at.size and np.array_equal(at, np.arange(at[0], at[0] + at.size)):  # no gather needed
            part = block[rows, at[0]:at[0] + at.size]
            # a copy when it is a small part: a view would keep the whole chunk row alive
            return part if part.size * 2 >= block.size else part.copy()
        return block[rows][:, at]

    def layout(self, index: int):
        raise OutputError(
            f"recording {self.name} is an NWB ElectricalSeries, not a flat binary: writers that copy "
            "the source's binary layout (legacy, phy) cannot write it; use writers [{\"type\": \"nwb\"}]")

    def close(self) -> None:
        h5, remote = getattr(self, "_h5", None), getattr(self, "_remote", None)
        chunks = getattr(self, "_chunks", None)
        self._h5 = self._data = self._remote = self._chunks = None
        if chunks is not None:
            chunks.close()
        if h5 is not None:
            try:
                h5.close()
            except Exception:
                pass
        if remote is not None:
            remote.close()


class NwbReaderOptions(PluginOptions):
    type: Literal["nwb"]
    path: InputFile | None = Field(None, description="A local NWB HDF5 file (.nwb). Give "
                                    "exactly one of path, url or dandiset.")
    url: str | None = Field(None, description="An http(s) URL of an NWB HDF5 file, streamed: only "
                            "the bytes read are fetched (the server must answer Range requests).")
    dandiset: str | None = Field(None, description="A DANDI dandiset id (six digits, e.g. "
                                 "'000409'); with asset_path, the asset is streamed.")
    asset_path: str | None = Field(None, description="Path of the asset in the dandiset, e.g. "
                                   "'sub-1/sub-1_ses-2_ecephys.nwb'.")
    dandiset_version: str | None = Field(None, description="'draft' or a published version; "
                                         "default: the most recent published version, else the draft.")
    dandi_instance: str = Field("dandi", description="DANDI instance name ('dandi', "
                                "'dandi-sandbox') or the base URL of a DANDI API ending in /api.")
    electrical_series_path: str | None = Field(
        None, description="HDF5 path of the ElectricalSeries, e.g. "
        "'acquisition/ElectricalSeriesAP'; needed when the file holds several.")
    geometry: InputFile | None = Field(
        None, description="Contact positions in um when the electrodes table has none (or to "
        "override it): probeinterface JSON, .prb, .txt 'x y' per line, or .npy (n, 2); row i = "
        "column i of the series unless the probe file gives device channel indices.")
    min_sampling_rate_hz: float = min_sampling_rate_field("series")
    cache_mb: float = Field(64.0, gt=0, description="h5py chunk cache (MB) holding recently "
                            "decompressed chunks; should hold a few chunks of the series.")
    stream_block_mb: float = Field(2.0, gt=0, description="Bytes fetched per HTTP request when "
                                   "streaming (MB).")

    @field_validator("dandiset")
    @classmethod
    def _dandiset_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{6}", value.strip()):
            raise ValueError(f"a dandiset id is six digits, e.g. '000409', got {value!r}")
        return value.strip() if value else value

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("path", "url", "dandiset") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of path, url or dandiset (got "
                             f"{', '.join(given) or 'none'})")
        if (self.dandiset is None) != (self.asset_path is None):
            raise ValueError("dandiset and asset_path go together: the dandiset id and the "
                             "asset's path in it")
        return self


class NwbReader(SourceReader):
    """Reads one ElectricalSeries of an NWB HDF5 file (a path, an http(s) URL, or a DANDI asset)."""

    name: ClassVar[str] = "nwb"

    Options: ClassVar[type[PluginOptions]] = NwbReaderOptions

    # ------------------------------------------------------------------------------------------
    def _source(self) -> tuple[str, Any]:
        """(label for messages, what h5py opens: a path or a RemoteFile)."""
        opt = self.options
        if opt.path is not None:
            path = Path(opt.path)
            if path.is_dir():
                raise SourceError(f"{FIELD}.path: {path} is a folder; NWB Zarr (.nwb.zarr) is not "
                                  "supported, give an HDF5 .nwb file")
            if not path.is_file():
                raise SourceError(f"{FIELD}.path: NWB file {path} does not exist")
            return str(path), path
        from hybridkit.formats.remote_http import open_url, resolve_dandi_asset

        url = opt.url
        if url is None:
            url = resolve_dandi_asset(opt.dandiset, opt.asset_path, opt.dandiset_version,
                                      opt.dandi_instance)
        field = f"{FIELD}.url" if opt.url else f"{FIELD}.dandiset"
        return url, open_url(url, opt.stream_block_mb, field)

    def open(self) -> Recording:
        """Open the file, choose the ElectricalSeries, and describe it (nothing is read in bulk)."""
        import h5py

        label, target = self._source()
        remote = None if isinstance(target, Path) else target
        cache = int(self.options.cache_mb * 2**20)
        try:
            h5 = h5py.File(target.handle if remote else target, "r", rdcc_nbytes=cache, rdcc_nslots=10007)
        except OSError as exc:
            if remote:
                remote.close()
            raise SourceError(f"{FIELD}: {label} is not an NWB HDF5 file ({exc})") from None
        try:
            rec = self._describe(h5, label)
        except BaseException:
            h5.close()
            if remote:
                remote.close()
            raise
        local = Path(label) if remote is None else Path(label.split("?")[0].rsplit("/", 1)[-1])
        rec.files = [SourceFile(path=local, n_samples=rec.files[0].n_samples)]
        rec.attach(h5, h5[rec.meta["nwb"]["electrical_series_path"]]["data"], remote)
        return rec

    # ------------------------------------------------------------------------------------------
    def _choose_series(self, h5, label: str) -> str:
        found: list[str] = []

        def visit(name, obj):
            if _text(obj.attrs.get("neurodata_type", "")) == "ElectricalSeries" and "data" in obj:
                found.append(name)

        # ElectricalSeries live in acquisition or processing modules; not walking the rest (e.g.
        # the embedded specifications) saves many small reads when streaming
        for top in ("acquisition", "processing"):
            if top in h5:
                h5[top].visititems(lambda name, obj, top=top: visit(f"{top}/{name}", obj))
        found.sort()
        want = self.options.electrical_series_path
        if want is not None:
            want = want.strip("/")
            if want not in found:
                raise SourceError(f"{FIELD}.electrical_series_path: {want!r} is not an ElectricalSeries "
                                  f"in {label}; it has: {', '.join(found) or '(none)'}")
            return want
        if not found:
            top = sorted(k for k in ("acquisition", "processing", "units", "intervals") if k in h5)
            raise SourceError(f"{FIELD}: {label} holds no ElectricalSeries (it has "
                              f"{', '.join(top) or 'nothing readable'}); hybridkit needs raw traces")
        if len(found) > 1:
            raise SourceError(f"{FIELD}.electrical_series_path: {label} holds {len(found)} "
                              f"ElectricalSeries ({', '.join(found)}); choose one")
        return found[0]

    def _describe(self, h5, label: str) -> NwbRecording:
        es_path = self._choose_series(h5, label)
        es = h5[es_path]
        data = es["data"]
        where = f"{label}:/{es_path}"
        if data.ndim != 2:
            raise SourceError(f"{FIELD}: {where}/data has shape {data.shape}; an ElectricalSeries "
                              "must be (time, channel)")
        n_samples, n_chan = (int(s) for s in data.shape)
        if data.dtype.kind not in "iuf":
            raise SourceError(f"{FIELD}: {where}/data has dtype {data.dtype}; need integers or floats")
        rows = np.asarray(es["electrodes"][()], dtype=np.int64).ravel() if "electrodes" in es else None
        if rows is None:
            raise SourceError(f"{FIELD}: {where} has no electrodes region")
        if rows.size != n_chan:
            hint = " (it looks transposed: NWB requires (time, channel))" if n_samples == rows.size else ""
            raise SourceError(f"{FIELD}: {where}/data has {n_chan} columns but the series points to "
                              f"{rows.size} electrodes{hint}")
        table = h5[es["electrodes"].attrs["table"]]

        fs = self._rate(es, where)
        check_sampling_rate(fs, self.options.min_sampling_rate_hz, where,
                            "choose the wideband or AP series with electrical_series_path")
        start = float(es["starting_time"][()]) if "starting_time" in es else \
            float(es["timestamps"][0]) if "timestamps" in es and es["timestamps"].shape[0] else 0.0
        gain, offset = self._scale(es, data, n_chan, where)
        columns = self._columns(table, rows)
        positions, neural, probe_template = self._positions(columns, n_chan, where)
        chans = np.flatnonzero(neural)
        probe = build_probe(positions[chans], chans, probe_template)
        meta = {"nwb": {
            "source": label, "electrical_series_path": es_path,
            "identifier": _text(h5["identifier"][()]) if "identifier" in h5 else "",
            "session_start_time": _text(h5["session_start_time"][()]) if "session_start_time" in h5 else "",
            "nwb_version": _text(h5.attrs.get("nwb_version", "")),
            "starting_time_s": start,
            "electrode_ids": [int(i) for i in columns["id"]] if "id" in columns else rows.tolist(),
            "channel_names": columns.get("channel_name"),
            "locations": columns.get("location"),
            "subject": _subject(h5),
        }}
        rec = NwbRecording(
            files=[SourceFile(path=Path(label), n_samples=n_samples)], dtype=data.dtype,
            n_channels=n_chan, sampling_rate=fs, gain_to_uV=np.where(neural, gain, 0.0),
            offset_to_uV=np.where(neural, offset, 0.0), channel_positions=positions, neural=neural,
            probe=probe, name=es_path.rsplit("/", 1)[-1], meta=meta, start_time_s=start)
        rec.attach(None, None)
        log.info("nwb %s: %d samples x %d channels at %g Hz", where, n_samples, n_chan, fs)
        return rec

    @staticmethod
    def _rate(es, where: str) -> float:
        if "starting_time" in es and "rate" in es["starting_time"].attrs:
            fs = float(es["starting_time"].attrs["rate"])
        elif "timestamps" in es:
            ts = np.asarray(es["timestamps"][:RATE_TIMESTAMPS], dtype=np.float64)
            steps = np.diff(ts)
            if steps.size == 0 or not np.all(steps > 0):
                raise SourceError(f"{FIELD}: {where}/timestamps are not strictly increasing; cannot "
                                  "derive a sampling rate")
            step = float(np.median(steps))
            if np.max(np.abs(steps - step)) > 0.01 * step:
                log.warning("%s: timestamps are irregular (steps %.3g..%.3g s); using the median "
                            "rate %.6g Hz", where, steps.min(), steps.max(), 1 / step)
            fs = 1.0 / step
        else:
            raise SourceError(f"{FIELD}: {where} has neither starting_time.rate nor timestamps")
        if not np.isfinite(fs) or fs <= 0:
            raise SourceError(f"{FIELD}: {where} has sampling rate {fs}; need a positive rate in Hz")
        return fs

    @staticmethod
    def _scale(es, data, n_chan: int, where: str) -> tuple[np.ndarray, float]:
        unit = _text(data.attrs.get("unit", "volts")).strip().lower()
        if unit not in UNIT_TO_UV:
            raise SourceError(f"{FIELD}: {where}/data has unit {unit!r}; an ElectricalSeries is in "
                              f"volts (also accepted: {', '.join(sorted(UNIT_TO_UV))})")
        to_uv = UNIT_TO_UV[unit]
        conversion = float(data.attrs.get("conversion", 1.0))
        offset = float(data.attrs.get("offset", 0.0))
        per_channel = np.ones(n_chan)
        if "channel_conversion" in es:
            per_channel = np.asarray(es["channel_conversion"][()], dtype=np.float64).ravel()
            if per_channel.size != n_chan:
                raise SourceError(f"{FIELD}: {where}/channel_conversion has {per_channel.size} values "
                                  f"for {n_chan} channels")
        return conversion * per_channel * to_uv, offset * to_uv

    @staticmethod
    def _columns(table, rows: np.ndarray) -> dict[str, Any]:
        """The electrodes-table columns hybridkit uses, at the series' rows."""
        import h5py

        out: dict[str, Any] = {}
        n_rows = int(table["id"].shape[0]) if "id" in table else None
        if n_rows is not None and rows.size and (rows.min() < 0 or rows.max() >= n_rows):
            raise SourceError(f"{FIELD}: the series points to electrode rows up to {int(rows.max())} "
                              f"but the electrodes table has {n_rows}")
        for name in ("id", "rel_x", "rel_y", "x", "y", "channel_name", "location"):
            if name in table and isinstance(table[name], h5py.Dataset):
                values = table[name][()]
                if values.ndim != 1:
                    continue
                picked = values[rows]
                if picked.dtype.kind in "OSU":
                    out[name] = [_text(v) for v in picked]
                else:
                    out[name] = np.asarray(picked, dtype=np.float64)
        return out

    def _positions(self, columns: dict, n_chan: int, where: str):
        """(n_chan, 2) um positions, (n_chan,) neural mask, and a probe template (or None)."""
        opt = self.options
        if opt.geometry is not None:
            geom = load_geometry(opt.geometry, f"{FIELD}.geometry")
            if geom.wiring is not None:
                cols, source = geom.wiring, f"the device channel indices of {opt.geometry}"
            else:
                cols, source = np.arange(geom.positions.shape[0], dtype=np.int64), f"the rows of {opt.geometry}"
            positions, neural = geom.on_columns(cols, n_chan, f"{FIELD}.geometry", source)
            return positions, neural, geom.probe
        geometry_hint = ("give recording.geometry (probeinterface JSON, .prb, .txt or .npy, one "
                         "row per channel)")
        if "rel_x" in columns and "rel_y" in columns and not isinstance(columns["rel_x"], list):
            positions = np.c_[columns["rel_x"], columns["rel_y"]]
            missing = np.flatnonzero(~np.isfinite(positions).all(axis=1))
            if missing.size:
                raise SourceError(
                    f"{FIELD}: {where}: electrode position (rel_x, rel_y) is missing (NaN) for "
                    f"channel(s) {missing.tolist()[:10]}; give recording.geometry with a "
                    "position for every channel")
            _, first, counts = np.unique(positions, axis=0, return_index=True, return_counts=True)
            if (counts > 1).any():
                k = int(np.argmax(counts > 1))
                twins = np.flatnonzero((positions == positions[first[k]]).all(axis=1))
                raise SourceError(
                    f"{FIELD}: {where}: channels {twins.tolist()[:10]} share the probe position "
                    f"(rel_x, rel_y) = {tuple(positions[first[k]].tolist())} um; each contact needs "
                    f"its own place: {geometry_hint}")
            return positions, np.ones(n_chan, bool), None
        if "x" in columns or "y" in columns:
            raise SourceError(
                f"{FIELD}: {where}: the electrodes table has only x/y/z, the electrodes' places in "
                f"the brain (atlas coordinates), not on the probe (rel_x/rel_y); {geometry_hint}")
        raise SourceError(
            f"{FIELD}: {where}: the electrodes table has no positions (no rel_x/rel_y "
            f"columns); {geometry_hint}")


#: general/subject fields the nwb writer can carry over (pynwb's Subject arguments)
SUBJECT_FIELDS = ("subject_id", "species", "sex", "age", "date_of_birth", "description", "strain",
                  "genotype", "weight")


def _subject(h5) -> dict[str, str] | None:
    """The file's ``general/subject`` as text fields, or None when it has none."""
    import h5py

    group = h5.get("general/subject")
    if not isinstance(group, h5py.Group):
        return None
    out = {}
    for key in SUBJECT_FIELDS:
        if isinstance(group.get(key), h5py.Dataset):
            out[key] = _text(group[key][()])
    return out or None


@hookimpl
def hybridkit_source_readers():
    return [NwbReader]

"""SpikeGLX source reader: ``.bin`` + ``.meta`` pairs of one imec stream (AP or LF).

The ``.meta`` parsing (gains, saved channels, geometry) lives in spikeglx_meta.py.

The ``.bin`` is headerless little-endian int16, samples-major, ``nSavedChans`` words per sample
(sync words included). Gains come from the ``.meta`` (imroTbl / fixed NP2 gains), geometry from
``probeinterface.read_spikeglx``; the meta's pitfalls are handled in
:mod:`hybridkit.formats.spikeglx_meta`.
"""
from __future__ import annotations

import glob
import logging
import re
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from hybridkit.errors import SourceError
from hybridkit.hookspecs import SourceReader, hookimpl
from hybridkit.model import Recording, SourceFile
from hybridkit.options import InputFile, PluginOptions, check_sampling_rate, min_sampling_rate_field
from hybridkit.formats.spikeglx_meta import (
    ITEMSIZE,
    MAX_CHANNELS,
    meta_float,
    meta_int,
    channel_layout,
    gains_to_uV,
    read_meta,
    spikeglx_probe,
    stream_kind,
)

log = logging.getLogger(__name__)


_CONSISTENT_KEYS = ("nSavedChans", "imSampRate", "snsSaveChanSubset", "imroTbl", "snsApLfSy")


def _expand(path: Path) -> list[Path]:
    if not path.is_file() and re.search(r"[*?[]", path.name):
        found = [Path(p) for p in glob.glob(str(path))]
        if not found:
            raise SourceError(f"recording.path: no file matches the pattern {path}")
        return found
    if path.suffix == ".meta":
        path = path.with_suffix(".bin")
    if not path.is_file():
        raise SourceError(f"recording.path: SpikeGLX file {path} does not exist")
    return [path]


class SpikeGLXOptions(PluginOptions):
    type: Literal["spikeglx"]
    path: InputFile = Field(
        description="The SpikeGLX .bin file (its .meta beside it), or a glob pattern such as "
        "'run_g0_t*.imec0.ap.bin' matching several files of one stream, concatenated in "
        "firstSample order."
    )
    min_sampling_rate_hz: float = min_sampling_rate_field("stream")


class SpikeGLXReader(SourceReader):
    """Reads one SpikeGLX imec stream (``*.ap.bin`` or ``*.lf.bin``, one file or a glob of files)."""

    name: ClassVar[str] = "spikeglx"

    Options: ClassVar[type[PluginOptions]] = SpikeGLXOptions

    @classmethod
    def extra_inputs(cls, options: SpikeGLXOptions) -> list[tuple[str, Path]]:
        """Every .bin the path or pattern names, and the .meta beside each."""
        path = Path(options.path)
        pattern = not path.is_file() and re.search(r"[*?[]", path.name)
        bins = [Path(p).with_suffix(".bin") for p in glob.glob(str(path))] if pattern \
            else [path.with_suffix(".bin")]
        return [item for b in bins for item in (("recording file", b),
                                                ("recording meta file", b.with_suffix(".meta")))]

    def _describe(self, bin_path: Path) -> tuple[SourceFile, dict]:
        meta_path = bin_path.with_suffix(".meta")
        if not meta_path.is_file():
            raise SourceError(f"SpikeGLX file {bin_path}: its meta file {meta_path.name} is missing")
        meta = read_meta(meta_path)
        kind = stream_kind(meta, meta_path)
        if kind == "unknown":
            raise SourceError(
                f"SpikeGLX meta {meta_path}: neither typeThis nor imSampRate/niSampRate is set; "
                "not an imec stream"
            )
        if kind != "imec":
            raise SourceError(
                f"SpikeGLX meta {meta_path}: a {kind} stream has no probe; read it with the "
                "'binary' reader (dtype int16, n_channels, sampling_rate, geometry file)"
            )
        n_chan = meta_int(meta, "nSavedChans", meta_path, minimum=1, maximum=MAX_CHANNELS)
        # checked here, before any later step divides by it or compares a sorter's rate to it
        meta_float(meta, "imSampRate", meta_path, positive=True)
        size = bin_path.stat().st_size
        frame = n_chan * ITEMSIZE
        if size % frame:
            raise SourceError(
                f"SpikeGLX file {bin_path}: size {size} bytes is not a multiple of nSavedChans "
                f"{n_chan} x itemsize {ITEMSIZE} = {frame} bytes"
            )
        if meta.get("fileSizeBytes"):
            stated = meta_int(meta, "fileSizeBytes", meta_path)
            if stated != size:
                raise SourceError(
                    f"SpikeGLX file {bin_path}: size {size} bytes but its meta says "
                    f"fileSizeBytes={stated}"
                )
        first = meta_int(meta, "firstSample", meta_path, minimum=0) if meta.get("firstSample") else 0
        return SourceFile(bin_path, size // frame, 0, first, meta_path), meta

    def open(self) -> Recording:
        """Describe the stream (read later block by block with positional reads); gains, sync mask and geometry from the (first) meta."""
        described = [self._describe(p) for p in _expand(Path(self.options.path))]
        described.sort(key=lambda fm: (fm[0].first_sample, str(fm[0].path)))
        files = [f for f, _ in described]
        first_file, meta = described[0]
        for f, other in described[1:]:
            for key in _CONSISTENT_KEYS:
                if other.get(key) != meta.get(key):
                    raise SourceError(
                        f"SpikeGLX files {first_file.path.name} and {f.path.name} differ in {key} "
                        f"({meta.get(key)!r} vs {other.get(key)!r}); all files of one recording "
                        "must come from one stream"
                    )
        for (a, meta_a), (b, meta_b) in zip(described, described[1:]):
            # two files covering the same samples (a copy, or a CatGT tcat beside its t0) would
            # be concatenated twice; gaps are normal (triggered recording)
            if meta_a.get("firstSample") and meta_b.get("firstSample") and (
                b.first_sample < a.first_sample + a.n_samples
            ):
                raise SourceError(
                    f"SpikeGLX files {a.path.name} and {b.path.name} overlap in time: "
                    f"{b.path.name} starts at firstSample {b.first_sample}, before "
                    f"{a.path.name} ends at {a.first_sample + a.n_samples}; match one of them only"
                )
        meta_path = first_file.meta_path
        n_chan = meta_int(meta, "nSavedChans", meta_path, minimum=1, maximum=MAX_CHANNELS)
        rate = meta_float(meta, "imSampRate", meta_path, positive=True)
        # an LF stream (.lf.bin, 2.5 kHz) is refused as an LFP NWB series is
        check_sampling_rate(rate, self.options.min_sampling_rate_hz, f"SpikeGLX file {first_file.path.name}",
                            "choose the AP stream (.ap.bin) of the same probe")
        gains = gains_to_uV(meta, meta_path)
        _, band, _ = channel_layout(meta, meta_path)
        probe, positions = spikeglx_probe(meta_path, meta)
        neural = band != "sy"
        neural &= ~np.isnan(positions).any(axis=1)
        return Recording(
            files=files,
            dtype=np.dtype("<i2"),
            n_channels=n_chan,
            sampling_rate=rate,
            gain_to_uV=np.where(neural, gains, 0.0),
            offset_to_uV=np.zeros(n_chan),
            channel_positions=positions,
            neural=neural,
            order="samples",
            probe=probe,
            name=first_file.path.name.removesuffix(".bin"),
            meta={"spikeglx": meta, "meta_files": [str(f.meta_path) for f in files]},
        )


@hookimpl
def hybridkit_source_readers():
    return [SpikeGLXReader]

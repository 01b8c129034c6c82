"""Writer ``legacy``: the hybrid binary in the source's layout plus the predecessor's output set.

Files (``<session>`` is the run's session name; see docs/outputs.md):

* ``<source stem>.GT<ext>`` per source file (same dtype, layout, header bytes), and for SpikeGLX
  sources ``<source stem>.GT.meta`` (fileSHA1 removed: it described the source);
* ``firings_true.npy``: 3 x K uint64, rows [probe channel of the event's peak (file column),
  sample time (0-based, sorted), source unit id];
* ``artificial_units-<session>.csv`` (timestep,true_unit,new_unit,center_channel);
  ``hybrid_events-<session>.csv`` (adds seconds, position and gain per event);
  ``hybrid_units-<session>.csv``; ``annotations-<session>.csv`` (source sorting + hybrid spikes);
  ``metadata-<session>.csv``; ``clipped-<session>.csv``;
* ``probe-<session>.npz`` (+ ``probe-<session>.json`` in probeinterface format when known),
  ``dtype-<session>.npy``, ``templates-<session>.npz`` (the placed templates, uV).

Speed: the hybrid file differs from its source only near events, so ``begin`` copies each source
with the kernel's file copy and ``write`` changes only the event blocks' channels in place, with
positional writes (a memmap would keep every touched page resident).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from ..binio import write_block
from ..errors import OutputError
from ..hookspecs import Writer, hookimpl
from ..model import GroundTruth, Recording
from ..options import PluginOptions


def hybrid_file_name(source: Path) -> str:
    """``run_g0_t0.imec0.ap.bin`` -> ``run_g0_t0.imec0.ap.GT.bin`` (the predecessor's naming)."""
    source = Path(source)
    return f"{source.stem}.GT{source.suffix}"


class LegacyOptions(PluginOptions):
    type: Literal["legacy"] = "legacy"


class LegacyWriter(Writer):
    """Hybrid binaries in the source's layout, and the legacy ground-truth tables."""

    name: ClassVar[str] = "legacy"
    Options: ClassVar[type[PluginOptions]] = LegacyOptions

    def begin(self, recording: Recording, out_dir: Path) -> None:
        self.recording = recording
        self.targets: list[Path] = []
        self.fds: list[int] = []
        names = [hybrid_file_name(f.path) for f in recording.files]
        if len(set(names)) != len(names):
            raise OutputError(f"source files share a name ({', '.join(sorted(names))}); the legacy "
                              "writer writes each as <stem>.GT<ext> in one folder")
        for f, name in zip(recording.files, names):
            target = out_dir / name
            try:
                shutil.copyfile(f.path, target)  # in-kernel copy (sendfile) on Linux
            except OSError as exc:
                raise OutputError(f"cannot copy {f.path} to {target}: {exc.strerror or exc}") from None
            self.fds.append(os.open(target, os.O_RDWR))
            self.targets.append(target)
        self.bounds = recording.file_starts

    def write(self, start: int, block: np.ndarray, channels: np.ndarray | None = None) -> None:
        stop = start + block.shape[0]
        for i, fd in enumerate(self.fds):
            lo, hi = int(self.bounds[i]), int(self.bounds[i + 1])
            a, b = max(start, lo), min(stop, hi)
            if a < b:
                write_block(fd, self.recording.layout(i), a - lo, block[a - start : b - start], channels)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def finish(self, truth: GroundTruth, out_dir: Path) -> list[Path]:
        self.close()
        files = list(self.targets)
        files += self._write_metas(out_dir)
        from . import legacy_tables

        files += legacy_tables.write_tables(truth, out_dir)
        return files

    def _write_metas(self, out_dir: Path) -> list[Path]:
        written = []
        for f, target in zip(self.recording.files, self.targets):
            if f.meta_path is None:
                continue
            from .spikeglx import rewrite_meta

            meta_out = out_dir / hybrid_file_name(f.meta_path)
            rewrite_meta(f.meta_path, meta_out, {
                "fileName": str(target.name),
                "fileSizeBytes": str(target.stat().st_size),
                "fileSHA1": None,  # it described the source file
            })
            written.append(meta_out)
        return written


@hookimpl
def hybridkit_writers():
    return [LegacyWriter]

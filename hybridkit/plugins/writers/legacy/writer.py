"""Writer ``legacy``: the hybrid binary in the source's layout plus the predecessor's output set.

Files (``<session>`` is the run's session name; see docs/outputs.md):

* ``<source stem>.GT<ext>`` per source file (same dtype, layout, header bytes), and for SpikeGLX
  sources ``<source stem>.GT.meta`` (fileSHA1 removed: it described the source);
* for SpikeGLX sources, ``spikeglx/<run>_g<gate>_t<trigger>.imec<N>.<ap|lf>.bin`` + ``.meta``: the
  same hybrid file under a second name (a hard link: no disk space) with a meta whose ``fileName``
  names it. SpikeInterface/neo take the stream's kind from ``fileName``, so ``.GT.bin`` names are
  unreadable to them; ``read_spikeglx("<output>/spikeglx")`` opens this folder.
* ``firings_true.npy``: 3 x K uint64, rows [probe channel of the event's peak (file column),
  sample time (0-based, sorted), source unit id];
* ``artificial_units-<session>.csv`` (timestep,true_unit,new_unit,center_channel);
  ``hybrid_events-<session>.csv`` (adds seconds, position and gain per event);
  ``hybrid_units-<session>.csv``; ``annotations-<session>.csv`` (source sorting + hybrid spikes);
  ``metadata-<session>.csv``; ``clipped-<session>.csv``;
* ``probe-<session>.npz`` (+ ``probe-<session>.json`` in probeinterface format when known),
  ``templates-<session>.json`` (each injected template's origin),
  ``dtype-<session>.npy`` (``templates-<session>.npz``, the exact plan, is written by every run).

Speed: the hybrid file differs from its source only near events, so ``begin`` starts copying each
source with the kernel's file copy in a background thread (see :mod:`hybridkit.formats.filecopy`; templates
and the plan are built meanwhile). Once the copy has passed a block, ``patchable_rows`` maps it
writable for the engine to inject into (see :mod:`hybridkit.formats.mapped_writes`: no read of the
source, no write back); where it cannot, and always for a copy-on-write clone, ``write_runs``
writes back only the rows injection changed, one positional write per run. A clone asks for
copy-on-write extents of one block, so only the blocks written take new space.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from hybridkit.formats.binio import write_block, write_row_runs
from hybridkit.errors import OutputError, writing
from hybridkit.formats.filecopy import BackgroundCopy, CopyJob
from hybridkit.formats.hybrid_binary import flat_layouts, hybrid_file_name, hybrid_file_names
from hybridkit.formats.mapped_writes import writable_rows
from hybridkit.hookspecs import Writer, hookimpl
from hybridkit.model import GroundTruth, Recording
from hybridkit.options import PluginOptions


#: SpikeGLX's own file naming, as neo parses it: ``<run>_g<gate>_t<trigger|cat>.<device>.<ap|lf>.bin``
_SPIKEGLX_NAME = re.compile(r"\S+_g\d+_t(\d+|cat)\.[^.]+\.(ap|lf)\.bin$")
#: the folder (inside the output) of the SpikeInterface-readable names of the hybrid files
SPIKEGLX_FOLDER = "spikeglx"


def spikeglx_file_name(source: Path, meta: dict, session: str, index: int) -> str:
    """The SpikeGLX-style name of hybrid file ``index`` (0-based, in time order).

    A source already named as SpikeGLX names files keeps its name (gate, trigger and probe numbers
    stay); any other (renamed, CatGT-exported) becomes ``<session>_g0_t<index>.imec0.<ap|lf>.bin``,
    the band read from the meta's ``snsApLfSy`` (an LF stream saves LF channels and no AP ones).
    """
    if _SPIKEGLX_NAME.match(Path(source).name):
        return Path(source).name
    counts = [int(v) for v in meta.get("snsApLfSy", "1,0,0").split(",")]
    band = "lf" if counts[0] == 0 and counts[1] > 0 else "ap"
    run = re.sub(r"\s+", "-", session) or "hybrid"
    return f"{run}_g0_t{index}.imec0.{band}.bin"


class LegacyOptions(PluginOptions):
    type: Literal["legacy"] = "legacy"


class LegacyWriter(Writer):
    """Hybrid binaries in the source's layout, and the legacy ground-truth tables."""

    name: ClassVar[str] = "legacy"
    Options: ClassVar[type[PluginOptions]] = LegacyOptions

    @classmethod
    def writes_traces(cls, options: PluginOptions) -> bool:
        return True

    def begin(self, recording: Recording, out_dir: Path) -> None:
        """Create the hybrid files and start copying the sources into them in the background."""
        self.recording = recording
        self.targets: list[Path] = []
        self.fds: list[int] = []
        self.copy: BackgroundCopy | None = None
        self.journal = None  # an in-place run's undo journal
        self.layouts = None
        if not recording.flat_binary and getattr(recording, "flat_export", False):
            self._begin_flat(recording, out_dir)
            return
        if not recording.flat_binary:  # say so now, not after copying the source
            raise OutputError(
                f"recording {recording.name} is not a flat binary file (an NWB ElectricalSeries): the "
                "legacy writer (and phy, which needs it) copies the source's binary layout; use "
                "writers [{\"type\": \"nwb\"}]")
        if self.context is not None and self.context.in_place_output is not None:
            self._begin_in_place(recording, out_dir)
            return
        names = [hybrid_file_name(f.path) for f in recording.files]
        if len(set(names)) != len(names):
            raise OutputError(f"source files share a name ({', '.join(sorted(names))}); the legacy "
                              "writer writes each as <stem>.GT<ext> in one folder")
        jobs = []
        for f, name in zip(recording.files, names):
            target = out_dir / name
            try:
                size = os.stat(f.path).st_size
                self.fds.append(os.open(target, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644))
            except OSError as exc:
                self.close()
                raise OutputError(f"cannot copy {f.path} to {target}: {exc.strerror or exc}") from None
            self.targets.append(target)
            jobs.append(CopyJob(Path(f.path), target, size))
        self.bounds = recording.file_starts
        self.copy = BackgroundCopy(jobs, self.fds).start()

    def _begin_in_place(self, recording: Recording, out_dir: Path) -> None:
        """``output.in_place``: the source itself is the hybrid; every original byte is saved to
        the undo journal before it is overwritten (see :mod:`hybridkit.formats.in_place`). The output
        holds a symbolic link ``<stem>.GT<ext>`` to the source, so phy, score and report find the
        hybrid where they always do."""
        from hybridkit.formats.in_place import UndoJournal

        source = Path(recording.files[0].path)
        self.journal = UndoJournal(self.context.in_place_output, source)
        try:
            self.fds.append(os.open(source, os.O_RDWR))
        except OSError as exc:
            self.journal.close()
            raise OutputError(f"output.in_place: cannot open {source} for writing: "
                              f"{exc.strerror or exc}") from None
        target = out_dir / hybrid_file_name(source)
        target.symlink_to(source.resolve())
        self.targets.append(target)
        self.bounds = recording.file_starts

    def _begin_flat(self, recording: Recording, out_dir: Path) -> None:
        """A source with no file to copy (read through SpikeInterface): the pipeline streams every
        block here in time order, and each is written at its place in a flat binary."""
        # an instance attribute: the pipeline asks the instance which blocks to send
        self.needs_every_sample = True
        self.layouts = flat_layouts(recording)
        for name, lay in zip(hybrid_file_names(recording), self.layouts):
            target = out_dir / name
            try:
                self.fds.append(os.open(target, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644))
                os.ftruncate(self.fds[-1], lay.n_samples * lay.n_channels * lay.itemsize)
            except OSError as exc:
                self.close()
                raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
            self.targets.append(target)
        self.bounds = recording.file_starts

    def write(self, start: int, block: np.ndarray, channels: np.ndarray | None = None) -> None:
        stop = start + block.shape[0]
        for i, fd in enumerate(self.fds):
            lo, hi = int(self.bounds[i]), int(self.bounds[i + 1])
            a, b = max(start, lo), min(stop, hi)
            if a < b and self.layouts is not None:  # a flat export: no copy to wait for
                write_block(fd, self.layouts[i], a - lo, block[a - start : b - start], channels)
            elif a < b and self.journal is not None:  # in place: save the originals first
                lay = self.recording.layout(i)
                rows = np.ascontiguousarray(block[a - start : b - start], lay.dtype)
                row_bytes = lay.n_channels * lay.itemsize
                offset = lay.offset + (a - lo) * row_bytes
                self.journal.save(fd, offset, rows.nbytes)
                write_block(fd, lay, a - lo, rows, None)
                self.journal.patched(offset, memoryview(rows).cast("B"))
            elif a < b:
                lay = self.recording.layout(i)
                self._wait_copied(i, lay, b - lo)
                with writing(self.targets[i]):
                    write_block(fd, lay, a - lo, block[a - start : b - start], channels)

    def write_runs(self, start: int, rows: np.ndarray, runs: np.ndarray) -> None:
        """The changed rows of a block into the copy (or clone): one wait for the copy, then one
        positional write per run. In-place runs and flat exports write run by run (``write``)."""
        if self.journal is not None or self.layouts is not None or not runs.size:
            super().write_runs(start, rows, runs)
            return
        for i, fd in enumerate(self.fds):
            lo, hi = int(self.bounds[i]) - start, int(self.bounds[i + 1]) - start
            part = np.clip(runs, lo, hi)  # the runs' rows in file i (a run may cross files)
            part = part[part[:, 1] > part[:, 0]]
            if not part.size:
                continue
            lay = self.recording.layout(i)
            if lay.order != "samples":  # channels-major: run by run, columns by column
                for a, b in part.tolist():
                    self.write(start + a, rows[a:b], None)
                continue
            self._wait_copied(i, lay, start + int(part[-1, 1]) - int(self.bounds[i]))
            with writing(self.targets[i]):
                write_row_runs(fd, lay, start - int(self.bounds[i]), rows, part)

    def patchable_rows(self, start: int, stop: int, touched: np.ndarray) -> np.ndarray | None:
        """Rows ``[start, stop)`` of the copy, mapped writable once the copy has passed them (see
        :mod:`hybridkit.formats.mapped_writes`); None for in-place runs (every byte overwritten
        goes to the undo journal first), flat exports, channels-major files, blocks that cross
        from one source file into the next, and copy-on-write clones.

        Why not clones: a store through a map marks the whole page-cache folio it falls in dirty,
        and XFS caches a file in folios of up to megabytes, so every folio an event touches got
        its own disk blocks (the benchmark's clone took 0.99x the file's size on disk, against
        0.35x with positional writes, which mark only the blocks they write)."""
        if self.copy is None or self.journal is not None or self.layouts is not None:
            return None
        i = int(np.searchsorted(self.bounds, start, side="right")) - 1
        lo, hi = int(self.bounds[i]), int(self.bounds[i + 1])
        if stop > hi:
            return None
        lay = self.recording.layout(i)
        if lay.order != "samples":
            return None
        self._wait_copied(i, lay, stop - lo)
        if self.copy.cloned[i]:  # known once the copy has begun this file
            return None
        return writable_rows(self.fds[i], lay, start - lo, stop - lo, touched)

    def _wait_copied(self, i: int, lay, stop: int) -> None:
        """Block until the copy has passed sample ``stop`` of file ``i`` (the whole file when
        channels-major: a block touches every channel's row)."""
        if lay.order == "samples":
            self._wait_bytes(i, lay.offset + stop * lay.n_channels * lay.itemsize)
        else:
            self._wait_bytes(i, lay.offset + lay.n_samples * lay.n_channels * lay.itemsize)

    def _wait_bytes(self, i: int, end: int) -> None:
        """Block until bytes ``[0, end)`` of hybrid file ``i`` are copied; a failed copy becomes
        one OutputError line naming both files."""
        try:
            self.copy.wait_for(i, end)
        except OSError as exc:
            raise OutputError(f"cannot copy {self.recording.files[i].path} to {self.targets[i]}: "
                              f"{exc.strerror or exc}") from None

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def abort(self) -> None:
        if self.copy is not None:
            self.copy.cancel()
        if self.journal is not None:  # the undo file stays: reset restores what was written
            self.journal.close()
        self.close()

    def finish(self, truth: GroundTruth, out_dir: Path) -> list[Path]:
        if self.journal is not None:
            self.journal.complete(self.fds[0])
        if self.copy is not None:
            for i, job in enumerate(self.copy.jobs):  # events may end long before the files do
                self._wait_bytes(i, job.size)
            self.copy.join()
        self.close()
        files = list(self.targets)
        files += self._write_metas(out_dir)
        files += self._link_spikeglx(out_dir)
        from hybridkit.plugins.writers.legacy import tables as legacy_tables

        files += legacy_tables.write_tables(truth, out_dir)
        return files

    def _write_metas(self, out_dir: Path) -> list[Path]:
        written = []
        for f, target in zip(self.recording.files, self.targets):
            if f.meta_path is None:
                continue
            from hybridkit.formats.spikeglx_meta import rewrite_meta

            meta_out = out_dir / hybrid_file_name(f.meta_path)
            with writing(meta_out):
                rewrite_meta(f.meta_path, meta_out, {
                    "fileName": str(target.name),
                    "fileSizeBytes": str(target.stat().st_size),
                    "fileSHA1": None,  # it described the source file
                })
            written.append(meta_out)
        return written

    def _link_spikeglx(self, out_dir: Path) -> list[Path]:
        """``spikeglx/<SpikeGLX name>.bin`` (hard link to the ``.GT`` file) + ``.meta``."""
        sources = [f for f in self.recording.files if f.meta_path is not None]
        if not sources:
            return []
        from hybridkit.formats.spikeglx_meta import read_meta, rewrite_meta

        folder = out_dir / SPIKEGLX_FOLDER
        folder.mkdir()
        session = self.context.session if self.context is not None else "hybrid"
        written = []
        for i, (f, target) in enumerate(zip(self.recording.files, self.targets)):
            if f.meta_path is None:
                continue
            link = folder / spikeglx_file_name(f.path, read_meta(f.meta_path), session, i)
            try:
                os.link(target, link)
            except OSError:  # a file system without hard links: a relative symlink also opens
                os.symlink(os.path.relpath(target, folder), link)
            rewrite_meta(f.meta_path, link.with_suffix(".meta"), {
                "fileName": link.name,
                "fileSizeBytes": str(target.stat().st_size),
                "fileSHA1": None,
            })
            written += [link, link.with_suffix(".meta")]
        return written


@hookimpl
def hybridkit_writers():
    return [LegacyWriter]

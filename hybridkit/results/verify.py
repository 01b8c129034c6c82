"""``hybridkit verify``: prove an output from its files and the source alone.

What is re-derived (nothing of the run's planning is run again):

* **traces**: for every hybrid copy the output holds (the legacy writer's ``<stem>.GT<ext>``
  files, the NWB writer's ElectricalSeries + NonNeuralChannels), block by block over the whole
  recording: ``hybrid - source`` equals the sum of the recorded templates x gains at the recorded
  times and places (drift variants included) from ``templates-<session>.npz``, within one rounding
  at every sample; saturated samples equal the dtype's limit and their count per channel equals
  the output's ``clipped-<session>.csv`` (and the manifest's total); every other sample equals
  the source's. The expected block is computed by :mod:`hybridkit.engine.inject` itself
  (prepare, accumulate, add_rounded), so "within one rounding" is the run's own arithmetic;
* **tables**: firings_true, the events and units tables, the phy folder and the NWB units table
  agree with the plan (:mod:`hybridkit.results.verify_tables`);
* **files**: every file in ``manifest.json`` has its recorded size and SHA-256 (where recorded),
  and each source file its recorded size, samples and SHA-256 (where recorded).

Memory is bounded by the block size (``block_mb`` of source samples per block; a few such arrays
are alive at once) plus the plan (every event, as in the run), whatever the recording's length.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hybridkit.engine import chunks, inject
from hybridkit.errors import TruthError
from hybridkit.formats.nwb_layout import nwb_file_name
from hybridkit.model import Recording
from hybridkit.results.plan_file import read_plan_file


@dataclass
class Planned:
    """The run's exact plan (``templates-<session>.npz``, :mod:`hybridkit.results.plan_file`) with
    what verify needs beside it: the source's uV per raw unit (C,) and the rate (Hz)."""

    plan: object
    gain_to_uV: np.ndarray
    sampling_rate: float
    path: Path


def read_planned(folder: Path, session: str, manifest: dict) -> Planned:
    path = folder / f"templates-{session}.npz"
    plan, rest = read_plan_file(path)
    rate = manifest.get("sampling_rate_hz")
    if rate is None:
        raise TruthError(f"{folder / 'manifest.json'}: no sampling_rate_hz")
    return Planned(plan=plan, gain_to_uV=np.asarray(rest["gain_to_uV"], np.float64),
                   sampling_rate=float(rate), path=path)


#: discrepancies listed in full (at most MAX_PER_FILE of one file, so that a wrong file does not
#: hide the others); later ones are only counted
MAX_LISTED = 20
MAX_PER_FILE = 5


@dataclass
class Discrepancy:
    """One disagreement: ``file`` (relative to the output folder), where in it, and the values."""

    file: str
    where: str
    expected: object
    found: object

    def line(self) -> str:
        return f"{self.file}: {self.where}: expected {self.expected}, found {self.found}"


@dataclass
class Findings:
    """Discrepancies as they are found: the first ones kept (see :data:`MAX_LISTED`), all counted."""

    listed: list[Discrepancy] = field(default_factory=list)
    count: int = 0
    per_file: dict[str, int] = field(default_factory=dict)

    def add(self, file: str, where: str, expected, found) -> None:
        self.count += 1
        seen = self.per_file.get(file, 0)
        self.per_file[file] = seen + 1
        if len(self.listed) < MAX_LISTED and seen < MAX_PER_FILE:
            self.listed.append(Discrepancy(file, where, expected, found))


@dataclass
class VerifyResult:
    output_dir: Path
    findings: Findings
    checked: list[str]

    @property
    def ok(self) -> bool:
        return self.findings.count == 0

    def summary(self) -> str:
        """One line: what was proven, or how many discrepancies were found."""
        if self.ok:
            return f"verified {self.output_dir}: " + "; ".join(self.checked)
        return (f"{self.output_dir}: {self.findings.count} discrepanc"
                f"{'y' if self.findings.count == 1 else 'ies'} (first {len(self.findings.listed)} below)")


# -- opening the output ---------------------------------------------------------------------------
def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TruthError(f"{path}: not readable JSON ({exc}); give the output folder of "
                         "`hybridkit generate`") from None


def _open_source(folder: Path, section: dict, source: Path | None) -> Recording:
    """The source recording through the reader named in ``config.resolved.json`` (``source``
    replaces its path: the recording moved since the run)."""
    from hybridkit.errors import HybridkitError
    from hybridkit.hookspecs import RunContext
    from hybridkit.registry import get_registry

    if source is not None:
        section = {**section, "path": str(Path(source).expanduser().resolve())}
        for key in ("url", "dandiset", "asset_path", "dandiset_version"):
            if key in section:
                section[key] = None  # an NWB source streamed during the run: now a local file
    try:
        cls = get_registry().get("source_reader", section["type"])
        options = cls.Options.model_validate(section, context={"base_dir": folder})
        ctx = RunContext(base_dir=folder, rng=np.random.default_rng(0), seed=0)
        return cls(options, ctx).open()
    except HybridkitError as exc:
        hint = "" if source is not None else " (if the source moved, give it with --source PATH)"
        raise TruthError(f"the source recording of {folder} cannot be opened: {exc}{hint}") from None


class NwbHybrid:
    """The hybrid traces of an NWB writer's file as raw samples of every file column.

    ``read(start, stop)`` returns (stop - start, n_channels) in the file's dtype: the neural
    columns from ``acquisition/ElectricalSeries``, the others from ``NonNeuralChannels``.
    """

    def __init__(self, path: Path, neural: np.ndarray) -> None:
        import h5py

        self.path = path
        self.file = h5py.File(path, "r")
        acq = self.file["acquisition"]
        self.series = acq["ElectricalSeries"]["data"]
        self.other = acq["NonNeuralChannels"]["data"] if "NonNeuralChannels" in acq else None
        self.neural = np.asarray(neural, bool)
        self.n_samples = int(self.series.shape[0])
        self.chunk_rows = int(self.series.chunks[0]) if self.series.chunks else 0

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.neural.size), self.series.dtype)
        out[:, self.neural] = self.series[start:stop]
        if self.other is not None:
            out[:, ~self.neural] = self.other[start:stop]
        elif (~self.neural).any():
            raise TruthError(f"{self.path}: no acquisition/NonNeuralChannels for the source's "
                             f"non-neural columns {np.flatnonzero(~self.neural).tolist()}")
        return out

    def close(self) -> None:
        self.file.close()


def _missing(name: str, findings: Findings) -> None:
    if not findings.per_file.get(name):  # else the manifest check has said so already
        findings.add(name, "file", "present", "missing")


def _hybrid_copies(folder: Path, cfg: dict, source: Recording,
                   findings: Findings) -> list[tuple[str, object]]:
    """(label, reader) of each hybrid copy in the output: readers have ``read(start, stop)``.
    A missing copy is a discrepancy, and is skipped."""
    from hybridkit.model import SourceFile
    from hybridkit.formats.hybrid_binary import hybrid_file_names

    copies: list[tuple[str, object]] = []
    writers = cfg.get("writers", [])
    files: list = []
    if any(w.get("type") == "legacy" for w in writers):
        for f, name in zip(source.files, hybrid_file_names(source)):
            if not (folder / name).is_file():
                _missing(name, findings)
            # a flat source is copied in its own layout; any other (read through SpikeInterface)
            # is written as a flat samples-major binary without header
            files.append(replace(f, path=folder / name) if source.flat_binary
                         else SourceFile(path=folder / name, n_samples=f.n_samples))
        if not all(f.path.is_file() for f in files):
            files = []
    if files:
        rec = Recording(files=files, dtype=source.dtype, n_channels=source.n_channels,
                        sampling_rate=source.sampling_rate, gain_to_uV=source.gain_to_uV,
                        offset_to_uV=source.offset_to_uV, channel_positions=source.channel_positions,
                        neural=source.neural, name="hybrid",
                        order=source.order if source.flat_binary else "samples")
        copies.append((", ".join(f.path.name for f in files), rec))
    for w in writers:
        if w.get("type") != "nwb" or not w.get("traces", True):
            continue  # a ground-truth-only NWB file: its units table is checked with the tables
        path = folder / nwb_file_name(w.get("file_name"), cfg.get("session") or "")
        if not path.is_file():
            _missing(path.name, findings)
            continue
        copies.append((path.name, NwbHybrid(path, source.neural)))
    return copies


def check_headers(source: Recording, copies: list[tuple[str, object]], findings: Findings) -> None:
    """The bytes before the samples (a binary file's header) are the source's in every legacy
    hybrid file: the writer copies the file whole."""
    for _, copy in copies:
        if not isinstance(copy, Recording) or not source.flat_binary:
            continue
        for f, h in zip(source.files, copy.files):
            if f.offset_bytes:
                with open(f.path, "rb") as a, open(h.path, "rb") as b:
                    if a.read(f.offset_bytes) != b.read(f.offset_bytes):
                        findings.add(h.path.name, f"header (bytes 0-{f.offset_bytes - 1})",
                                     f"the bytes of {f.path.name}", "other bytes")


# -- traces ---------------------------------------------------------------------------------------
def block_rows(recording: Recording, block_mb: float, chunk_rows: int = 0) -> int:
    """Samples per block: ``block_mb`` MB of source rows, rounded to whole HDF5 chunks when a
    compressed copy is read (a chunk is decompressed once, not once per block it straddles)."""
    rows = max(1024, int(block_mb * 2**20 // (recording.n_channels * recording.dtype.itemsize)))
    if chunk_rows:
        rows = max(1, rows // chunk_rows) * chunk_rows
    return rows


def check_traces(planned: Planned, source: Recording, copies: list[tuple[str, object]],
                 findings: Findings, block_mb: float = 16.0) -> np.ndarray:
    """Compare every hybrid copy with source + planned templates, block by block.

    Each block of the source is read whole; inside it, the runs of samples that events touch are
    cut as generate cuts them (:func:`hybridkit.engine.chunks.event_blocks`) and only their
    channels are recomputed, so the work grows with the events, not with samples x channels.
    Returns (n_channels,) int64 saturated samples per channel as re-derived (every copy must
    hold exactly those).
    """
    n = source.n_samples
    for label, copy in copies:
        if copy.n_samples != n:
            findings.add(label, "length", f"{n} samples (the source's)", f"{copy.n_samples} samples")
    kernel = inject.prepare(planned.plan, planned.gain_to_uV)
    chunk = max((getattr(c, "chunk_rows", 0) for _, c in copies), default=0)
    rows = block_rows(source, block_mb, chunk)
    clipped = np.zeros(source.n_channels, np.int64)
    starts = np.arange(0, n, rows, dtype=np.int64)
    stops = np.minimum(starts + rows, n)
    los, his = inject.candidate_ranges(kernel, starts, stops)
    blocks = list(zip(starts.tolist(), stops.tolist()))

    def read(i: int) -> tuple[np.ndarray, list]:
        a, b = blocks[i]
        return source.read(a, b), [c.read(a, b) if c.n_samples >= b else None for _, c in copies]

    # one thread reads the next block (the kernel copies pages, without the GIL) while this one
    # computes the current: two blocks of each file are in memory at most
    pool = ThreadPoolExecutor(1)
    try:
        ahead = pool.submit(read, 0) if blocks else None
        for i, (start, stop) in enumerate(blocks):
            expected, found_all = ahead.result()
            ahead = pool.submit(read, i + 1) if i + 1 < len(blocks) else None
            _check_block(kernel, start, stop, int(los[i]), int(his[i]), rows, expected, found_all,
                         copies, clipped, findings, source)
    finally:
        pool.shutdown(cancel_futures=True)
    return clipped


def _check_block(kernel, start: int, stop: int, lo: int, hi: int, rows: int, expected: np.ndarray,
                 found_all: list, copies: list, clipped: np.ndarray, findings: Findings,
                 source: Recording) -> None:
    """One block: ``expected`` (the source, read) becomes source + the events' rounded sum in
    place, then each copy's block (``found_all``, None past a short copy's end) is compared."""
    parts = []  # (a, b, channels, acc): kept for the diagnosis of a mismatch
    runs = chunks.event_blocks(kernel.window_starts[lo:hi] - start,
                               kernel.window_stops[lo:hi] - start, stop - start, rows)
    run_lo, run_hi = inject.candidate_ranges(kernel, runs[:, 0] + start, runs[:, 1] + start)
    for (a, b), e0, e1 in zip(runs.tolist(), run_lo.tolist(), run_hi.tolist()):
        events = inject.events_overlapping(kernel, start + a, start + b, e0, e1)
        channels, acc = inject.accumulate(kernel, start + a, start + b, events)
        cols = inject.as_slice(channels)  # mostly neighbours: a view then, not a gathered copy
        injected, clip = inject.add_rounded(expected[a:b, cols], acc)
        clipped[channels] += clip
        expected[a:b, cols] = injected
        parts.append((a, b, channels, acc))
    for (label, copy), found in zip(copies, found_all):
        if found is not None and not np.array_equal(found, expected):
            _diagnose(label, copy, start, expected, found, source.read(start, stop), parts, findings)


def _diagnose(label: str, copy, start: int, expected: np.ndarray, found: np.ndarray,
              src: np.ndarray, parts: list, findings: Findings) -> None:
    """Report the samples of a block that differ beyond one rounding (a rare, slow path);
    ``src`` is the source block, read again."""
    diff = expected != found
    if expected.dtype.kind != "f":
        # an injected sample may differ from the expected one by the rounding of a tie, never by
        # more: |found - source - acc| <= 0.5, unless the expected sample saturated
        info = np.iinfo(expected.dtype)
        for a, b, channels, acc in parts:
            src_ev = src[a:b, channels].astype(np.float64)
            exact = src_ev + np.rint(acc)
            saturated = (exact < info.min) | (exact > info.max)
            near = np.abs(found[a:b, channels] - src_ev - acc) <= 0.5
            diff[a:b, channels] &= ~(near & ~saturated)
    rows, cols = np.nonzero(diff)
    for r, c in zip(rows.tolist(), cols.tolist()):
        file, within = _in_file(copy, label, start + r)
        findings.add(file, f"sample {start + r}{within}, channel {c}",
                     expected[r, c].item(), found[r, c].item())


def _in_file(copy, label: str, sample: int) -> tuple[str, str]:
    """The file of ``copy`` that holds ``sample`` and, when there are several, the sample's
    place in it: (name, `` (its sample K)``)."""
    if not isinstance(copy, Recording) or len(copy.files) < 2:
        return label, ""
    b = copy.file_starts
    i = int(np.searchsorted(b, sample, side="right") - 1)
    return copy.files[i].path.name, f" (its sample {sample - int(b[i])})"


# -- files ----------------------------------------------------------------------------------------
def sha256_of(path: Path, block: int = 8 * 2**20) -> str:
    from hybridkit.formats.checksums import sha256

    return sha256(path, block)


def check_files(folder: Path, manifest: dict, source: Recording, findings: Findings,
                source_path_given: bool) -> tuple[int, int]:
    """Sizes and SHA-256 of the manifest's files and of the source files; returns the numbers of
    (files, checksums) checked."""
    n_files = n_sums = 0
    for entry in manifest.get("files", []):
        rel = str(entry.get("path", ""))
        path = folder / rel
        n_files += 1
        if not path.is_file():
            findings.add(rel, "file", "present (listed in manifest.json)", "missing")
            continue
        size = path.stat().st_size
        if entry.get("bytes") is not None and size != int(entry["bytes"]):
            findings.add(rel, "size", f"{entry['bytes']} bytes", f"{size} bytes")
            continue
        if entry.get("sha256"):
            n_sums += 1
            digest = sha256_of(path)
            if digest != entry["sha256"]:
                findings.add(rel, "sha256", entry["sha256"], digest)
    recorded = manifest.get("sources", [])
    if len(recorded) != len(source.files):
        findings.add("manifest.json", "sources", f"{len(recorded)} source files",
                     f"{len(source.files)} ({', '.join(f.path.name for f in source.files)})")
        return n_files, n_sums
    for entry, f in zip(recorded, source.files):
        name = str(f.path)
        if not source_path_given and entry.get("path") and str(entry["path"]) != name:
            findings.add("manifest.json", "source path", entry["path"], name)
        n_files += 1
        if entry.get("n_samples") is not None and int(entry["n_samples"]) != f.n_samples:
            findings.add(name, "samples", entry["n_samples"], f.n_samples)
        if not f.path.is_file():
            continue  # a remote source: nothing local to measure
        size = f.path.stat().st_size
        if entry.get("bytes") is not None and size != int(entry["bytes"]):
            findings.add(name, "size", f"{entry['bytes']} bytes (recorded)", f"{size} bytes")
        elif entry.get("sha256"):
            n_sums += 1
            digest = sha256_of(f.path)
            if digest != entry["sha256"]:
                findings.add(name, "sha256", f"{entry['sha256']} (recorded)", digest)
    return n_files, n_sums


# -- entry point ----------------------------------------------------------------------------------
def verify(output_dir: str | Path, source: str | Path | None = None,
           block_mb: float = 16.0) -> VerifyResult:
    """Verify the output folder of ``hybridkit generate`` (see the module docstring).

    Raises TruthError (exit 2) when the folder is not an output of generate or a file it needs
    cannot be read; discrepancies are returned in the result (exit 1), never raised.
    """
    from hybridkit.results.verify_tables import check_clipped, check_tables

    folder = Path(output_dir).expanduser().resolve()
    if not (folder / "manifest.json").is_file():
        raise TruthError(f"{folder}: no manifest.json; give the output folder of `hybridkit generate`")
    manifest = _json(folder / "manifest.json")
    cfg = _json(folder / "config.resolved.json") if (folder / "config.resolved.json").is_file() else {}
    session = str(manifest.get("session") or cfg.get("session") or "")
    if not cfg.get("recording"):
        raise TruthError(f"{folder / 'config.resolved.json'}: missing or without a recording "
                         "section; the source cannot be found")
    planned = read_planned(folder, session, manifest)
    findings = Findings()
    recording = _open_source(folder, cfg["recording"], Path(source) if source is not None else None)
    copies: list = []
    try:
        if planned.gain_to_uV.shape != (recording.n_channels,):
            raise TruthError(f"{planned.path}: gain_to_uV has {planned.gain_to_uV.size} channels, "
                             f"the source {recording.n_channels}")
        n_files, n_sums = check_files(folder, manifest, recording, findings, source is not None)
        tables = check_tables(folder, cfg, manifest, planned, recording, findings)  # small: first
        copies = _hybrid_copies(folder, cfg, recording, findings)
        check_headers(recording, copies, findings)
        clipped = check_traces(planned, recording, copies, findings, block_mb)
        check_clipped(folder, session, manifest, clipped, findings)
    finally:
        for _, c in copies:
            c.close()
        recording.close()
    plan = planned.plan
    checked = [
        (f"{len(copies)} hybrid cop{'y' if len(copies) == 1 else 'ies'} x {recording.n_samples} samples "
         f"x {recording.n_channels} channels = source + {plan.n_events} events of {len(plan.units)} "
         f"units ({int(clipped.sum())} clipped)"),
        f"{len(tables)} tables agree ({', '.join(tables)})",
        f"{n_files} files, {n_sums} checksums match",
    ]
    return VerifyResult(output_dir=folder, findings=findings, checked=checked)

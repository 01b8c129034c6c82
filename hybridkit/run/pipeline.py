"""``generate``: one call per stage, in order; the output appears complete or not at all.

    recording = reader.open()
    sorting   = adapter.load(recording)
    units     = choose_and_place(...)  ids and/or quality criteria, templates, places (choosing.py)
    plan      = planning.build_plan(...)
    stream blocks through the injection engine into every writer
    writers finish; resolved config + manifest; staging folder renamed into place
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybridkit.config.sections import plugin_from_section
from hybridkit.formats import in_place
from hybridkit.run import output_guard, provenance
from hybridkit.engine import chunks, inject
from hybridkit.run.choosing import choose_and_place
from hybridkit.run.selection import write_table
from hybridkit.errors import OutputError
from hybridkit.formats.checksums import FileDigests
from hybridkit.hookspecs import RunContext, Writer
from hybridkit.model import GroundTruth, Plan, Recording
from hybridkit.run.planning import RNG_STREAMS, build_plan, stage_rngs  # noqa: F401 (RNG_STREAMS re-exported)
from hybridkit.results.plan_file import write_plan_file
from hybridkit.registry import Registry, get_registry

log = logging.getLogger(__name__)


@dataclass
class GenerateResult:
    output_dir: Path
    truth: GroundTruth
    files: list[Path]
    #: the writers (config ``type``) that wrote the hybrid recording's samples; empty: the run
    #: wrote ground truth only (warned about, and said in the CLI's summary)
    trace_writers: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """The lines the CLI prints after a run: what was injected and what was written."""
        truth = self.truth
        lines = [f"wrote {self.output_dir}",
                 f"  session {truth.session}, seed {truth.seed}: {len(truth.plan.units)} units "
                 f"injected, {truth.plan.n_events} events, {truth.clipped_samples} samples clipped"]
        lines += [f"  skipped unit {unit}: {why}" for unit, why in truth.skipped_units.items()]
        names = [f.relative_to(self.output_dir).as_posix() for f in self.files]
        if self.trace_writers:
            lines.append(f"  hybrid recording written by: {', '.join(self.trace_writers)}")
        else:
            lines.append("  no hybrid recording: no writer in this run writes the hybrid samples "
                         "(ground truth only; hybridkit.spikeinterface.read_hybrid rebuilds it from "
                         "the source); add {\"type\": \"legacy\"} or {\"type\": \"nwb\"} to "
                         "writers for a copy")
        lines.append(f"  files ({len(names)}): {', '.join(names)}")
        return lines


def trace_writers(cfg, reg: Registry) -> list[str]:
    """The config's writers that write the hybrid recording's samples (``Writer.writes_traces``)."""
    return [w.type for w in cfg.writers if reg.get("writer", w.type).writes_traces(w)]


def stream_hybrid(
    recording: Recording, plan: Plan, writers: list[Writer], engine_cfg,
) -> np.ndarray:
    """Inject the plan block by block into every writer; return clipped samples per channel.

    Blocks are computed by ``engine_cfg.workers`` threads (numpy releases the GIL in the heavy
    parts) and written in time order by this thread, so writers see increasing ``start``.
    """
    kernel = inject.prepare(plan, recording.gain_to_uV)
    n = recording.n_samples
    fs = recording.sampling_rate
    block = min(int(engine_cfg.chunk_duration_s * fs),
                chunks.block_samples_for_memory(recording.n_channels, recording.dtype.itemsize,
                                                engine_cfg.max_memory_mb, engine_cfg.workers))
    full = any(w.needs_every_sample for w in writers)
    # Samples-major files are read as whole rows whatever the channels, so the block is handed on
    # as whole rows too: a layout-keeping writer then writes them without reading its copy back.
    rows = full or recording.order == "samples"
    row_bytes = recording.n_channels * recording.dtype.itemsize
    if full:
        blocks = chunks.chunk_blocks(n, block)
    else:
        # Whole rows: windows closer than _READ_GAP_BYTES share one block, the rows between them
        # read too (a few hundred kB cost less than another block's Python and system calls);
        # an event-dense second is then one block instead of ~70.
        # Blocks of whole rows stay within _BLOCK_BYTES: a 1 s block of 385 int16 channels (23 MB,
        # with its temporaries) raised the peak RSS of a run by ~40 MB, for no speed.
        gap = max(64, _READ_GAP_BYTES // row_bytes) if rows else 64
        if rows:  # never above the configured block (tests cut every event with 16 samples)
            block = min(block, max(gap, _BLOCK_BYTES // row_bytes))
        blocks = chunks.event_blocks(kernel.window_starts, kernel.window_stops, n, block, gap)
    clipped = np.zeros(recording.n_channels, np.int64)
    # changed rows closer than _MERGE_GAP_BYTES are written as one run (and their pages made
    # writable together in the mapped copy)
    merge_rows = max(1, _MERGE_GAP_BYTES // row_bytes)

    # per block: its samples and the range of events that may touch it, as int64 rows; jobs are
    # made from them one at a time (an hour has ~10**5 blocks: no list of Python tuples)
    jobs_table = np.column_stack([blocks, *inject.candidate_ranges(kernel, blocks[:, 0], blocks[:, 1])])
    jobs = (tuple(row.tolist()) for row in jobs_table)

    # The run's one writer of samples may hold a copy of the source whose rows injection can
    # change in place (the legacy writer maps them): no read of the source, no write back.
    # Writers that write no samples need no blocks then.
    samples = [w for w in writers if type(w).writes_traces(w.options)]
    patcher = samples[0] if rows and not full and len(samples) == 1 else None

    def compute(job: tuple[int, int, int, int]):
        start, stop, lo, hi = job
        events = inject.events_overlapping(kernel, start, stop, lo, hi)
        if patcher is not None:
            touched = inject.window_runs(kernel, events, start, stop, merge_rows)
            target = patcher.patchable_rows(start, stop, touched)
            if target is not None:
                clip = inject.inject_rows(kernel, target, start, events)
                return start, None, clip, None, None  # written: nothing to hand the writers
        if rows:
            whole = recording.read(start, stop)
            changed = np.zeros(stop - start, bool)
            clip = inject.inject_rows(kernel, whole, start, events, changed)
            # only rows that differ from the source are written: the rest of the block is
            # already in the copy (or clone) as it is
            return start, None, clip, whole, chunks.changed_runs(changed, merge_rows)
        channels, acc = inject.accumulate(kernel, start, stop, events)
        hybrid, clip = inject.add_rounded(recording.read(start, stop, channels), acc)
        return start, channels, clip, hybrid, None

    progress = _progress(len(blocks), engine_cfg.progress, "injecting")
    pool = ThreadPoolExecutor(engine_cfg.workers) if engine_cfg.workers > 1 else None
    try:
        results = _bounded_map(pool, compute, jobs, 2 * engine_cfg.workers) if pool else map(compute, jobs)
        for start, channels, clip, data, runs in results:
            if channels is None:
                clipped += clip
            else:
                clipped[channels] += clip
            for w in writers if data is not None else ():  # None: patched into the copy already
                if w.needs_every_sample:
                    w.write(start, data, None)
                elif runs is not None:
                    if runs.size:
                        w.write_runs(start, data, runs)
                elif channels.size:
                    w.write(start, data, channels)
            progress.update(1)
    finally:
        progress.close()
        if pool:
            pool.shutdown()
    return clipped


#: event windows closer than this many bytes of rows are read and injected as one block
_READ_GAP_BYTES = 512 * 1024
#: the largest block of whole rows read at once
_BLOCK_BYTES = 8 * 2**20
#: changed rows closer than this are written back in one call. Each write into an XFS clone pays
#: for its own copy-on-write extent: on the benchmark's clone, runs merged within 16 kB (4 pages)
#: took the stream from 1.9-2.1 s to 1.3 s for 2 % more disk (490 MB against 479 MB); within 4 kB
#: (a page, which rows closer than that dirty anyway) was the earlier choice, 64 kB took 576 MB
_MERGE_GAP_BYTES = 16 * 1024


def _bounded_map(pool: ThreadPoolExecutor, fn, items, window: int):
    """``pool.map(fn, items)`` in order with at most ``window`` results computed ahead.

    ``Executor.map`` submits every item at once, so blocks computed faster than they are written
    would pile up in memory with the recording's length; this keeps memory bounded by the window.
    """
    pending: deque = deque()
    it = iter(items)
    for item in itertools.islice(it, window):
        pending.append(pool.submit(fn, item))
    while pending:
        result = pending.popleft().result()
        nxt = next(it, _DONE)
        if nxt is not _DONE:
            pending.append(pool.submit(fn, nxt))
        yield result


_DONE = object()


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:  # tqdm's import is ~5-10 ms of a run that shows no bar
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="block", leave=False)


class _NoProgress:
    """What :func:`_progress` returns when no bar is shown."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _read_motion(motion_cfg, recording: Recording, rng: np.random.Generator):
    """The configured motion model, or None without a ``motion`` section."""
    if motion_cfg is None:
        return None
    from hybridkit.run.motion import build_motion

    return build_motion(motion_cfg, recording, rng)


def _drifting(plan: Plan, motion_cfg, motion, recording: Recording) -> Plan:
    """The plan with every event moved by ``motion`` (built from ``motion_cfg``; docs/drift.md)."""
    from hybridkit.engine import drift

    mover = drift.ProbeDepthMover(recording.channel_positions, recording.neural, motion_cfg.decay_um)
    plan = drift.apply_motion(plan, motion, mover, recording.sampling_rate, motion_cfg.grid_um)
    log.info("motion: %d of %d units drift; precomputed templates %.1f MB",
             sum(u.variants is not None for u in plan.units), len(plan.units),
             sum(u.variants.nbytes for u in plan.units if u.variants is not None) / 1e6)
    return plan


def check_new_unit_ids(sorting, writers: list[Writer]) -> None:
    """Injected units are numbered after the sorting's largest id: refuse, before any work, ids
    that a writer's format cannot store (phy keeps cluster ids as int32), naming the id and the
    file it came from. (Before this check, the phy writer overflowed after the whole run.)"""
    if sorting is None or sorting.unit_ids.size == 0:
        return
    largest = int(sorting.unit_ids.max())
    for w in writers:
        if w.max_unit_id is not None and largest + 1 > w.max_unit_id:
            where = sorting.units_file or sorting.path or "sorting"
            raise OutputError(f"{where}: cluster id {largest} leaves no id for the injected units in "
                              f"the {w.name} writer, whose ids stop at {w.max_unit_id}; renumber the "
                              f"sorting's clusters below {w.max_unit_id}, or drop the {w.name} writer")


def generate(cfg, reg: Registry | None = None, digests: FileDigests | None = None) -> GenerateResult:
    """Run a validated config end to end and return what was written.

    ``digests``: SHA-256s already computed for this run's inputs (``generate --from-nwb`` checked
    them), reused by the NWB provenance and the manifest; a new one by default."""
    reg = reg or get_registry()
    seed = cfg.seed if cfg.seed is not None else secrets.randbits(32)
    session = cfg.session or f"hybrid-{seed}"
    rngs = stage_rngs(seed)
    resolved = cfg.model_copy(update={"seed": seed, "session": session})
    resolved_json = resolved.model_dump(mode="json")
    # each file hashed once per run (the NWB provenance, then the manifest)
    digests = digests if digests is not None else FileDigests()

    def plugin(kind: str, section):  # each plugin draws from its own stream of the run seed
        ctx = RunContext.for_plugin(cfg.base_dir, seed, session, kind, section.type,
                                    resolved_config=resolved_json, digests=digests)
        if cfg.output.in_place is not None:  # the legacy writer then patches the source itself
            ctx.in_place_output = out_dir
        return plugin_from_section(reg, kind, section, cfg.base_dir, ctx)

    writing_traces = trace_writers(cfg, reg)
    if not writing_traces:  # legal (a third-party truth writer), but rarely what a user wants
        log.warning("no writer in writers (%s) writes the hybrid recording: this run writes its "
                    "ground truth only", ", ".join(w.type for w in cfg.writers))
    out_dir = output_guard.check_output(cfg, reg)  # never an input; replace only our own output
    begun: list[Writer] = []
    staging = blas = None
    files_open = contextlib.ExitStack()  # the source's files, open for the run and closed after it
    # One BLAS thread: the matrices here are small (90 x 90 Gram matrices), and a multi-threaded
    # BLAS competing with the background copy for 2 cores ran template building 25x slower.
    from threadpoolctl import threadpool_limits

    try:  # from the staging folder's first moment: an interrupt anywhere removes it
        staging = provenance.open_staging(out_dir, cfg.output.overwrite)
        blas = threadpool_limits(limits=1, user_api="blas")
        recording = plugin("source_reader", cfg.recording).open()
        files_open.enter_context(recording.opened())
        # the motion files are read now, so a bad one is reported before any work (its own
        # random stream: reading it earlier changes no other stage's numbers)
        motion = _read_motion(cfg.motion, recording, rngs["motion"])
        if cfg.output.in_place is not None:  # the one exception to "the source is never modified"
            in_place.check_in_place(cfg, recording)
        # Writers begin first: the legacy writer's copy of the source then runs in the background
        # while templates and the plan are built (it is the longest step of a run).
        writers = [plugin("writer", w) for w in cfg.writers]
        for w in writers:
            w.begin(recording, staging)
            begun.append(w)
        sorting = (plugin("sorter_adapter", cfg.sorting).load(recording)
                   if cfg.sorting is not None else None)
        check_new_unit_ids(sorting, writers)
        source = plugin("template_source", cfg.templates)
        choice = choose_and_place(cfg, recording, sorting, source, rngs, seed)
        selection_files: list[Path] = []
        if source.uses_sorting_units:
            selection_files.append(write_table(choice.rows, staging / f"units_selection-{session}.csv"))
        # new ids never collide with the source sorting's clusters (annotations table)
        first_new = int(sorting.unit_ids.max(initial=-1)) + 1 if sorting is not None else 0
        plan, skipped = build_plan(choice.bank, choice.unit_ids, recording, sorting, cfg.injection,
                                   rngs, first_new, placement=choice.placement)
        if cfg.motion is not None:  # absent: the static plan, untouched
            plan = _drifting(plan, cfg.motion, motion, recording)
        log.info("plan: %d units, %d events", len(plan.units), plan.n_events)

        clipped = stream_hybrid(recording, plan, writers, cfg.engine)
        truth = GroundTruth(plan=plan, recording=recording, clipped_per_channel=clipped,
                            skipped_units=skipped, seed=seed, session=session, sorting=sorting,
                            noise_uV=choice.noise_uV)
        files: list[Path] = list(selection_files)
        for w in writers:
            files.extend(w.finish(truth, staging))
        # the exact plan, whatever the writers: enough to rebuild the hybrid from the source
        files.append(write_plan_file(truth, staging / f"templates-{session}.npz"))
        files.append(provenance.write_resolved_config(resolved, staging))
        files.append(provenance.write_manifest(staging, resolved, recording, truth, files,
                                               cfg.output.checksums, reg, digests))
        provenance.commit_staging(staging, out_dir, cfg.output.overwrite)
    except BaseException:
        for w in begun:
            try:
                w.abort()
            except Exception:  # the original error is the one to report
                log.debug("abort of writer %s failed", w.name, exc_info=True)
        if staging is not None:
            provenance.discard_staging(staging)
        raise
    finally:
        files_open.close()
        if blas is not None:
            blas.restore_original_limits()
    final = [out_dir / f.relative_to(staging) for f in files]
    return GenerateResult(output_dir=out_dir, truth=truth, files=final, trace_writers=writing_traces)


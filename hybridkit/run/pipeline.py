"""``generate``: one call per stage, in order; the output appears complete or not at all.

    recording = reader.open()
    sorting   = adapter.load(recording)
    units     = choose_and_place(...)  ids and/or quality criteria, templates, places (choosing.py)
    plan      = planning.build_plan(...)
    stream blocks through the injection engine into every writer
    writers finish; resolved config + manifest; staging folder renamed into place
"""
from __future__ import annotations

import itertools
import mmap
import logging
import secrets
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridkit.run import in_place, output_guard, provenance
from hybridkit.engine import chunks, inject
from hybridkit.run.choosing import choose_and_place
from hybridkit.run.selection import write_table
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
    if full:
        blocks = chunks.chunk_blocks(n, block)
    else:
        blocks = chunks.event_blocks(kernel.window_starts, kernel.window_stops, n, block)
    clipped = np.zeros(recording.n_channels, np.int64)

    # Samples-major files are read as whole rows whatever the channels, so the block is handed on
    # as whole rows too: a layout-keeping writer then writes them without reading its copy back.
    rows = full or recording.order == "samples"
    # changed rows closer than a page apart are written as one run (they dirty that page anyway)
    merge_rows = max(1, mmap.PAGESIZE // (recording.n_channels * recording.dtype.itemsize))

    # per block: its samples and the range of events that may touch it, as int64 rows; jobs are
    # made from them one at a time (an hour has ~10**5 blocks: no list of Python tuples)
    jobs_table = np.column_stack([blocks, *inject.candidate_ranges(kernel, blocks[:, 0], blocks[:, 1])])
    jobs = (tuple(row.tolist()) for row in jobs_table)

    def compute(job: tuple[int, int, int, int]):
        start, stop, lo, hi = job
        events = inject.events_overlapping(kernel, start, stop, lo, hi)
        channels, acc = inject.accumulate(kernel, start, stop, events)
        whole = recording.read(start, stop) if rows else None  # one read serves both
        source = whole[:, channels] if rows else recording.read(start, stop, channels)
        hybrid, clip = inject.add_rounded(source, acc)
        runs = None
        if rows:
            whole[:, channels] = hybrid
            # only rows that differ from the source are written: the rest of the block is already
            # in the copy (or clone) as it is
            runs = chunks.changed_runs((hybrid != source).any(axis=1), merge_rows)
        return start, stop, channels, hybrid, clip, whole, runs

    progress = _progress(len(blocks), engine_cfg.progress, "injecting")
    pool = ThreadPoolExecutor(engine_cfg.workers) if engine_cfg.workers > 1 else None
    try:
        results = _bounded_map(pool, compute, jobs, 2 * engine_cfg.workers) if pool else map(compute, jobs)
        for start, stop, channels, hybrid, clip, whole, runs in results:
            clipped[channels] += clip
            for w in writers:
                if w.needs_every_sample:
                    w.write(start, whole, None)
                elif whole is not None:
                    for a, b in runs.tolist():
                        w.write(start + a, whole[a:b], None)
                elif channels.size:
                    w.write(start, hybrid, channels)
            progress.update(1)
    finally:
        progress.close()
        if pool:
            pool.shutdown()
    return clipped


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
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="block", disable=not enabled, leave=False)


def _drifting(plan: Plan, motion_cfg, recording: Recording, rng: np.random.Generator) -> Plan:
    """The plan with every event moved by the configured motion (docs/drift.md)."""
    from hybridkit.engine import drift
    from hybridkit.run.motion import build_motion

    motion = build_motion(motion_cfg, recording, rng)
    mover = drift.ProbeDepthMover(recording.channel_positions, recording.neural, motion_cfg.decay_um)
    plan = drift.apply_motion(plan, motion, mover, recording.sampling_rate, motion_cfg.grid_um)
    log.info("motion: %d of %d units drift; precomputed templates %.1f MB",
             sum(u.variants is not None for u in plan.units), len(plan.units),
             sum(u.variants.nbytes for u in plan.units if u.variants is not None) / 1e6)
    return plan


def _instantiate(reg: Registry, kind: str, options, ctx: RunContext):
    return reg.get(kind, options.type)(options, ctx)


def generate(cfg, reg: Registry | None = None) -> GenerateResult:
    """Run a validated config end to end and return what was written."""
    reg = reg or get_registry()
    seed = cfg.seed if cfg.seed is not None else secrets.randbits(32)
    session = cfg.session or f"hybrid-{seed}"
    rngs = stage_rngs(seed)
    ctx = RunContext(base_dir=cfg.base_dir, rng=rngs["templates"], seed=seed, session=session)
    resolved = cfg.model_copy(update={"seed": seed, "session": session})
    ctx.resolved_config = resolved.model_dump(mode="json")

    out_dir = output_guard.check_output(cfg, reg)  # never an input; replace only our own output
    begun: list[Writer] = []
    staging = blas = None
    # One BLAS thread: the matrices here are small (90 x 90 Gram matrices), and a multi-threaded
    # BLAS competing with the background copy for 2 cores ran template building 25x slower.
    from threadpoolctl import threadpool_limits

    try:  # from the staging folder's first moment: an interrupt anywhere removes it
        staging = provenance.open_staging(out_dir, cfg.output.overwrite)
        blas = threadpool_limits(limits=1, user_api="blas")
        recording = _instantiate(reg, "source_reader", cfg.recording, ctx).open()
        if cfg.output.in_place is not None:  # the one exception to "the source is never modified"
            in_place.check_in_place(cfg, recording)
            ctx.in_place_output = out_dir
        # Writers begin first: the legacy writer's copy of the source then runs in the background
        # while templates and the plan are built (it is the longest step of a run).
        writers = [_instantiate(reg, "writer", w, ctx) for w in cfg.writers]
        for w in writers:
            w.begin(recording, staging)
            begun.append(w)
        sorting = (_instantiate(reg, "sorter_adapter", cfg.sorting, ctx).load(recording)
                   if cfg.sorting is not None else None)
        source = _instantiate(reg, "template_source", cfg.templates, ctx)
        choice = choose_and_place(cfg, recording, sorting, source, rngs, seed)
        selection_files: list[Path] = []
        if source.uses_sorting_units:
            selection_files.append(write_table(choice.rows, staging / f"units_selection-{session}.csv"))
        # new ids never collide with the source sorting's clusters (annotations table)
        first_new = int(sorting.unit_ids.max(initial=-1)) + 1 if sorting is not None else 0
        plan, skipped = build_plan(choice.bank, choice.unit_ids, recording, sorting, cfg.injection,
                                   rngs, first_new, placement=choice.placement)
        if cfg.motion is not None:  # absent: the static plan, untouched
            plan = _drifting(plan, cfg.motion, recording, rngs["motion"])
        log.info("plan: %d units, %d events", len(plan.units), plan.n_events)

        clipped = stream_hybrid(recording, plan, writers, cfg.engine)
        truth = GroundTruth(plan=plan, recording=recording, clipped_per_channel=clipped,
                            skipped_units=skipped, seed=seed, session=session, sorting=sorting)
        files: list[Path] = list(selection_files)
        for w in writers:
            files.extend(w.finish(truth, staging))
        # the exact plan, whatever the writers: enough to rebuild the hybrid from the source
        files.append(write_plan_file(truth, staging / f"templates-{session}.npz"))
        files.append(provenance.write_resolved_config(resolved, staging))
        files.append(provenance.write_manifest(staging, resolved, recording, truth, files,
                                               cfg.output.checksums, reg))
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
        if blas is not None:
            blas.restore_original_limits()
    final = [out_dir / f.relative_to(staging) for f in files]
    return GenerateResult(output_dir=out_dir, truth=truth, files=final)


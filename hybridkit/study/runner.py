"""`hybridkit study run`: every dataset of a study is one Dask task calling ``generate`` in its worker.

    spec     = load_study(STUDY)                 validated; the grid expanded into datasets
    record   = study.json (planned datasets)     in the study's output folder
    per dataset, on a worker:
        staging folders of an earlier run that is gone (a killed worker) are removed
        skipped if its folder holds a complete output of the same resolved config (hash)
        else generate(config): the output appears complete or not at all (staging + rename)
    a failing dataset's one-line error is recorded; the others go on
    study.json updated after every dataset (status, error, seconds)

Workers run one dataset at a time (one thread each) within ``cluster.memory_limit_mb``.
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from hybridkit.errors import HybridkitError
from hybridkit.run import staging
from hybridkit.run.output_guard import MANIFEST
from hybridkit.run.provenance import RESOLVED_CONFIG
from hybridkit.study.cluster import study_client
from hybridkit.study.expand import Dataset, config_hash, expand
from hybridkit.study.record import write_record
from hybridkit.study.spec import WORKER_OVERHEAD_MB, load_study


def completed_output(out_dir: Path, expected_hash: str) -> bool:
    """Whether ``out_dir`` holds a finished run (manifest) of the config hashing to ``expected_hash``."""
    try:
        resolved = json.loads((out_dir / RESOLVED_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (out_dir / MANIFEST).is_file() and config_hash(resolved) == expected_hash


def clear_stale_staging(out_dir: Path) -> list[str]:
    """Remove the staging folders that runs into ``out_dir`` which are gone (a killed worker) left
    behind, with :func:`hybridkit.run.staging.sweep`; return the names removed.

    ``generate`` sweeps too, but a dataset that is skipped never calls it: its stale folders
    (hundreds of MB each) would stay. OutputError when a live run writes into ``out_dir``.
    """
    before = {p.name for p in staging.staging_folders(out_dir)}
    before |= {p.name for p in staging.staging_folders(out_dir, staging.old_prefix(out_dir))}
    staging.sweep(out_dir)
    after = {p.name for p in staging.staging_folders(out_dir)}
    after |= {p.name for p in staging.staging_folders(out_dir, staging.old_prefix(out_dir))}
    return sorted(before - after)


def run_dataset(name: str, config: dict, base_dir: str, expected_hash: str) -> dict:
    """One dataset, in a Dask worker: skip, or ``generate`` it. Never raises for a user error."""
    from hybridkit.config.run_config import validate_config
    from hybridkit.run.pipeline import generate

    t0 = time.perf_counter()
    out_dir = Path(config["output"]["directory"])
    # which process ran it: a failure can then be matched with that worker's log
    row = {"name": name, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        row["stale_staging_removed"] = clear_stale_staging(out_dir)
        if completed_output(out_dir, expected_hash):
            return {**row, "status": "skipped", "seconds": time.perf_counter() - t0}
        replaced = out_dir.exists()
        cfg = validate_config(config, Path(base_dir), f"dataset {name}")
        result = generate(cfg)
    except HybridkitError as exc:
        return {**row, "status": "failed", "error": str(exc), "seconds": time.perf_counter() - t0}
    except Exception as exc:  # a bug in one dataset must not lose the others' results
        return {**row, "status": "failed", "seconds": time.perf_counter() - t0,
                "error": f"internal error: {type(exc).__name__}: {exc} (run this dataset's config "
                         "with `hybridkit --debug generate` for the traceback)"}
    truth = result.truth
    return {**row, "status": "done", "seconds": time.perf_counter() - t0, "replaced": replaced,
            "units": len(truth.plan.units), "events": int(truth.plan.n_events),
            "clipped_samples": int(truth.clipped_samples)}


@dataclass
class StudyRun:
    """What `study run` did: the datasets and each one's result row (status, error, seconds)."""

    name: str
    study_dir: Path
    datasets: list[Dataset]
    results: dict[str, dict] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def failed(self) -> list[dict]:
        return [self.results[d.name] for d in self.datasets if self.results[d.name]["status"] == "failed"]

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.results.values())


def worker_memory_mb(spec, datasets: list[Dataset]) -> int:
    """Each worker's memory limit: the spec's, else the largest engine budget plus the overhead."""
    if spec.cluster.memory_limit_mb is not None:
        return spec.cluster.memory_limit_mb
    return max(d.config["engine"]["max_memory_mb"] for d in datasets) + WORKER_OVERHEAD_MB


def sorter_patterns(spec, study_dir: Path) -> dict[str, dict]:
    """Sorter name -> {path: absolute pattern, type} (patterns are relative to the study file)."""
    out = {}
    for name, s in spec.sorters.items():
        pattern = s.path if Path(s.path).expanduser().is_absolute() else str(study_dir / s.path)
        out[name] = {"path": str(Path(pattern).expanduser()), "type": s.type}
    return out


def _record(run: StudyRun, spec, study_file: Path, memory_mb: int, study_dir: Path) -> dict:
    from hybridkit import __version__

    return {
        "tool": "hybridkit", "version": __version__, "study": run.name,
        "study_file": str(study_file.resolve()), "grid": list(spec.grid),
        "sorters": sorter_patterns(spec, study_dir), "score": spec.score.model_dump(),
        "workers": spec.cluster.workers, "worker_memory_limit_mb": memory_mb,
        "datasets": [{**d.as_json(), **{k: v for k, v in run.results.get(d.name, {"status": "pending"}).items()
                                         if k != "name"}} for d in run.datasets],
    }


def run_study(study_file: str | Path, workers: int | None = None, scheduler: str | None = None,
              client=None, progress: bool | None = None) -> StudyRun:
    """Generate every dataset of the study in ``study_file`` on Dask; see the module docstring.

    ``workers`` overrides ``cluster.workers``; ``scheduler`` (an address) or ``client`` (a
    ``distributed.Client``) use an existing cluster instead of starting a local one.
    ``progress`` None shows the bar when stderr is a terminal.
    """
    from distributed import as_completed
    from tqdm import tqdm

    study_file = Path(study_file)
    spec, study_dir = load_study(study_file)
    datasets = expand(spec, study_dir, str(study_file))
    run = StudyRun(name=spec.name, study_dir=Path(spec.output).resolve(), datasets=datasets)
    memory_mb = worker_memory_mb(spec, datasets)
    write_record(run.study_dir, _record(run, spec, study_file, memory_mb, study_dir))
    t0 = time.perf_counter()
    with study_client(workers or spec.cluster.workers, memory_mb, scheduler, client) as c:
        tag = uuid.uuid4().hex[:8]  # keys unique per run: a reused client must not hand back old results
        futures = {c.submit(run_dataset, d.name, d.config, str(d.base_dir), d.config_hash,
                            key=f"generate-{d.name}-{tag}", pure=False): d for d in datasets}
        bar = tqdm(total=len(futures), desc="datasets", unit="dataset",
                   disable=None if progress is None else not progress)
        try:
            for fut in as_completed(futures):
                d = futures[fut]
                try:
                    row = fut.result()
                except Exception as exc:  # the worker died (KilledWorker) or the task could not run
                    row = {"name": d.name, "status": "failed",
                           "error": f"{type(exc).__name__}: {exc} (a worker died running it: out of "
                                    "memory? raise cluster.memory_limit_mb)"}
                run.results[d.name] = row
                bar.update(1)
                bar.set_postfix_str(f"{d.name} {row['status']}", refresh=False)
                write_record(run.study_dir, _record(run, spec, study_file, memory_mb, study_dir))
        finally:
            bar.close()
    run.wall_seconds = time.perf_counter() - t0
    return run

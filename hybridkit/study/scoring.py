"""`hybridkit study score`: every sorter output found for every dataset, scored on Dask; one tidy table.

Each (dataset, sorter) pair whose output exists is one task calling
:func:`hybridkit.results.scoring.score` in a worker, which also writes that pair's usual tables
into ``<study>/scores/<dataset>/<sorter>/``. The study-wide tables, in ``<study>/scores/``:

* ``units.csv`` (+ ``units.parquet``): one row per dataset x sorter x ground-truth unit: dataset,
  source, sorter, one column per grid key (the dataset's value), then every column of a score's
  units.csv (accuracy, recall, precision, snr, ...).
* ``sorters.csv`` (+ ``sorters.parquet``): one row per dataset x sorter: the same keys, the
  score's summary counts (well detected, false positive, redundant, overmerged, ...) and status
  (``scored``, ``missing``: no output at the path, ``failed`` with the one-line error).

Parquet is written when pyarrow is installed (the ``study`` extra).
"""
from __future__ import annotations

import csv
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from hybridkit.errors import HybridkitError, OutputError, StudyError
from hybridkit.formats.atomic_files import AtomicFiles
from hybridkit.formats.csv_cells import cell
from hybridkit.results.scoring import UNIT_COLUMNS
from hybridkit.study.cluster import study_client
from hybridkit.study.record import read_record

SCORES_DIR = "scores"
KEY_COLUMNS = ["dataset", "source", "sorter"]
SUMMARY_COLUMNS = ["status", "error", "sorting_path", "n_gt_units", "n_sorted_units", "n_matched",
                   "n_well_detected", "n_false_positive", "n_redundant", "n_overmerged", "n_bad",
                   "mean_accuracy", "mean_recall", "mean_precision"]


def score_pair(output_dir: str, sorting: str, sorting_type: str | None, settings: dict,
               out_dir: str) -> dict:
    """One dataset x sorter, in a Dask worker: the score's unit rows and summary, or the error."""
    from hybridkit.results.scoring import ScoreSettings, score

    opts = dict(settings)
    signal = opts.pop("signal_metrics", True)
    try:
        result = score(output_dir, sorting, sorting_type, ScoreSettings(**opts), out_dir=out_dir,
                       signal_metrics=signal)
    except HybridkitError as exc:
        return {"status": "failed", "error": str(exc)}
    except Exception as exc:  # one bad pair must not lose the others
        return {"status": "failed", "error": f"internal error: {type(exc).__name__}: {exc}"}
    return {"status": "scored", "units": result.units, "summary": result.summary}


@dataclass
class StudyScore:
    """What `study score` did: one summary row per dataset x sorter, the unit rows, the files."""

    study_dir: Path
    summaries: list[dict]
    units: list[dict]
    files: list[Path] = field(default_factory=list)
    wall_seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.summaries)


def _param_columns(datasets: list[dict], grid: list[str]) -> dict[str, dict[str, object]]:
    """dataset name -> {grid key: value}; objects (a motion section) become their label, and a
    column mixing numbers and text becomes text (one type per column, as Parquet needs)."""
    out = {d["name"]: {} for d in datasets}
    for key in grid:
        values = [d["params"][key] for d in datasets]
        scalar = all(v is None or isinstance(v, (int, float, str, bool)) for v in values)
        kinds = {type(v) for v in values if v is not None}
        numeric = kinds <= {int, float}
        for d, v in zip(datasets, values):
            if not scalar:
                v = d["labels"][key]
            elif not numeric and len(kinds) > 1:
                v = None if v is None else str(v)
            out[d["name"]][key] = v
    return out


def write_tables(tables: list[tuple[list[dict], list[str], Path]]) -> list[Path]:
    """Each ``(rows, columns, stem)`` as ``<stem>.csv`` and, with pyarrow, ``<stem>.parquet``;
    returns the files. All are replaced together at the end (:mod:`hybridkit.formats.atomic_files`),
    so an interrupted ``study score`` leaves the previous tables, never a half or mismatched set."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # CSV alone; docs/studies.md says to install the study extra
        pa = pq = None
    files = []
    try:
        with AtomicFiles() as pending:
            for rows, columns, stem in tables:
                path = stem.with_suffix(".csv")
                with open(pending.temp(path), "w", newline="", encoding="utf-8") as fh:
                    w = csv.writer(fh, lineterminator="\n")
                    w.writerow(columns)
                    for r in rows:
                        w.writerow([cell(r.get(c)) for c in columns])
                files.append(path)
                if pq is None:
                    continue
                table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows],
                                             schema=_schema(rows, columns))
                pq.write_table(table, pending.temp(stem.with_suffix(".parquet")))
                files.append(stem.with_suffix(".parquet"))
    except OSError as exc:
        raise OutputError(f"cannot write the study's tables into {tables[0][2].parent} "
                          f"({exc.strerror})") from None
    return files


def _schema(rows: list[dict], columns: list[str]):
    """One Arrow type per column from its values: int64, float64 (ints mixed with floats), bool, string."""
    import pyarrow as pa

    fields = []
    for c in columns:
        kinds = {type(r.get(c)) for r in rows if r.get(c) is not None}
        if kinds == {bool}:
            t = pa.bool_()
        elif kinds and kinds <= {int}:
            t = pa.int64()
        elif kinds and kinds <= {int, float}:
            t = pa.float64()
        else:
            t = pa.string()
        fields.append(pa.field(c, t))
    return pa.schema(fields)


def score_study(study_dir: str | Path, workers: int | None = None, scheduler: str | None = None,
                client=None, progress: bool | None = None) -> StudyScore:
    """Score every sorter output of every generated dataset of the study in ``study_dir``."""
    from distributed import as_completed
    from tqdm import tqdm

    study_dir = Path(study_dir).resolve()
    rec = read_record(study_dir)
    if not rec.get("sorters"):
        raise StudyError(f"{rec.get('study_file', study_dir)}: sorters: no sorter outputs are "
                             "given; add sorters: {name: 'path/with/{dataset}'} to the study file")
    datasets = [d for d in rec["datasets"] if d.get("status") in ("done", "skipped")]
    params = _param_columns(rec["datasets"], rec["grid"])
    settings = dict(rec["score"])
    t0 = time.perf_counter()
    pairs, summaries = [], []
    for d in datasets:
        for sorter, s in rec["sorters"].items():
            path = Path(s["path"].format(dataset=d["name"], output=d["output_dir"]))
            key = {"dataset": d["name"], "source": d["source"], "sorter": sorter, **params[d["name"]]}
            if path.exists():
                pairs.append((key, path, s.get("type")))
            else:
                summaries.append({**key, "status": "missing", "sorting_path": str(path),
                                  "error": f"{path} does not exist"})
    units: list[dict] = []
    memory_mb = rec.get("worker_memory_limit_mb") or 2048
    with study_client(workers or rec.get("workers", 2), memory_mb, scheduler, client) if pairs else _no_client() as c:
        tag = uuid.uuid4().hex[:8]
        futures = {}
        for key, path, type_ in pairs:
            d = next(x for x in datasets if x["name"] == key["dataset"])
            out = study_dir / SCORES_DIR / key["dataset"] / key["sorter"]
            futures[c.submit(score_pair, d["output_dir"], str(path), type_, settings, str(out),
                             key=f"score-{key['dataset']}-{key['sorter']}-{tag}", pure=False)] = (key, path)
        bar = tqdm(total=len(futures), desc="scores", unit="score",
                   disable=None if progress is None else not progress)
        try:
            for fut in as_completed(futures) if futures else ():
                key, path = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # the worker died
                    res = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                summary = {**key, "status": res["status"], "sorting_path": str(path),
                           "error": res.get("error")}
                if res["status"] == "scored":
                    summary.update({k: res["summary"][k] for k in SUMMARY_COLUMNS if k in res["summary"]})
                    units.extend({**key, **u} for u in res["units"])
                summaries.append(summary)
                bar.update(1)
        finally:
            bar.close()
    order = {(d["name"], s): i for i, (d, s) in enumerate(
        (d, s) for d in rec["datasets"] for s in rec["sorters"])}
    summaries.sort(key=lambda r: order[(r["dataset"], r["sorter"])])
    units.sort(key=lambda r: (order[(r["dataset"], r["sorter"])], r["gt_unit"]))
    head = KEY_COLUMNS + list(rec["grid"])
    out_root = study_dir / SCORES_DIR
    files = write_tables([(units, head + UNIT_COLUMNS, out_root / "units"),
                          (summaries, head + SUMMARY_COLUMNS, out_root / "sorters")])
    return StudyScore(study_dir=study_dir, summaries=summaries, units=units, files=files,
                      wall_seconds=time.perf_counter() - t0)


class _no_client:
    """Nothing to score: no cluster is started."""

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False

"""`hybridkit study report`: one self-contained HTML page comparing the sorters of a study.

It reads the study's tidy tables (``scores/units.csv``, ``scores/sorters.csv`` from
`hybridkit study score`) and study.json, and shows: a table per sorter (datasets scored, mean
accuracy, well-detected / false-positive / redundant / overmerged counts), accuracy against SNR
per sorter, mean accuracy by each grid parameter per sorter, the counts, and the table per
dataset x sorter. Figures are base64 PNGs (:class:`hybridkit.results.report.html.Page`), so the
page opens offline, alone.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from hybridkit.errors import StudyError
from hybridkit.results.report.html import Page
from hybridkit.study import figures as F
from hybridkit.study.record import read_record
from hybridkit.study.scoring import KEY_COLUMNS, SCORES_DIR, SUMMARY_COLUMNS


def _value(text: str):
    """A CSV cell back to None, a bool, an int, a float or the text."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def read_table(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    except FileNotFoundError:
        raise StudyError(f"{path} does not exist; run `hybridkit study score {path.parent.parent}` "
                         "first") from None


def _grid_values(rec: dict, key: str, units: list[dict]) -> list:
    """The values of grid key ``key`` as the table holds them, in the study's dataset order."""
    per_dataset: dict[str, object] = {}
    for u in units:
        per_dataset.setdefault(u["dataset"], u[key])
    values: list = []
    for d in rec["datasets"]:
        v = per_dataset.get(d["name"], values[0] if values else None)
        if d["name"] in per_dataset and v not in values:
            values.append(v)
    return values


def build_study_report(study_dir: str | Path) -> str:
    """The report's HTML text for the scored study in ``study_dir``."""
    study_dir = Path(study_dir)
    rec = read_record(study_dir)
    units = read_table(study_dir / SCORES_DIR / "units.csv")
    summaries = read_table(study_dir / SCORES_DIR / "sorters.csv")
    sorters = list(rec["sorters"])
    grid = list(rec["grid"])
    page = Page(f"hybridkit study: {rec['study']}")
    n_done = sum(d.get("status") in ("done", "skipped") for d in rec["datasets"])
    page.note(f"{len(rec['datasets'])} datasets ({n_done} generated), {len(sorters)} sorters: "
              f"{', '.join(sorters)}; grid: {', '.join(grid) or '(none)'}. Study file "
              f"{rec['study_file']}.")
    failed = [d for d in rec["datasets"] if d.get("status") == "failed"]
    if failed:
        page.note("Datasets that failed: " + "; ".join(f"{d['name']}: {d.get('error')}" for d in failed))

    page.heading("Sorters", "Per sorter over the datasets scored: mean accuracy over ground-truth "
                 "units (unmatched units count 0) and the units in each class, summed.")
    rows = []
    for s in sorters:
        mine = [r for r in summaries if r["sorter"] == s]
        ok = [r for r in mine if r["status"] == "scored"]
        acc = [u["accuracy"] for u in units if u["sorter"] == s and u["accuracy"] is not None]
        rows.append({"sorter": s, "scored": len(ok),
                     "missing": sum(r["status"] == "missing" for r in mine),
                     "failed": sum(r["status"] == "failed" for r in mine),
                     "gt units": len(acc), "mean accuracy": float(np.mean(acc)) if acc else None,
                     **{label: sum(r[col] or 0 for r in ok) for col, label in F.COUNTS}})
    page.table("table-sorters", list(rows[0]) if rows else ["sorter"], rows)
    if not units:
        page.note("No sorter output was scored: nothing to plot.")
        return page.render()
    page.heading("Accuracy against SNR", "Every ground-truth unit of every dataset, one panel per sorter.")
    page.figure("fig-accuracy-snr", F.accuracy_snr_figure(units, sorters),
                "Accuracy against SNR per sorter.")
    page.heading("By grid parameter", "Mean accuracy of each sorter at each value of a grid "
                 "parameter, over every dataset with that value (bars: standard deviation over units).")
    for key in grid:
        page.figure(f"fig-param-{key}", F.parameter_figure(units, sorters, key, _grid_values(rec, key, units)),
                    f"Mean accuracy by {key}.")
    page.heading("Unit classes", "Well-detected, false-positive, redundant and overmerged sorted "
                 "units per sorter, summed over the datasets (SpikeInterface's classes).")
    page.figure("fig-counts", F.counts_figure(summaries, sorters), "Unit classes per sorter.")
    page.heading("Datasets x sorters", "One row per dataset and sorter (status missing: no output "
                 "at the sorter's path).")
    page.table("table-pairs", KEY_COLUMNS + grid + [c for c in SUMMARY_COLUMNS if c != "sorting_path"],
               summaries)
    return page.render()


def study_inputs(study_dir: Path, rec: dict) -> list[tuple[str, Path]]:
    """What the study's report must never overwrite, as (what it is, absolute path).

    study.json, the ``scores`` folder (the tables read and ``study score``'s per-pair results),
    the study file, each dataset's output as ``report`` guards one
    (:func:`hybridkit.run.output_guard.output_inputs`: its manifest, files, source recording) and
    every sorter output ``study score`` looked at.
    """
    from hybridkit.run.output_guard import output_inputs
    from hybridkit.study.record import STUDY_JSON

    found = [("the study's " + STUDY_JSON, study_dir / STUDY_JSON),
             ("the study's scores", study_dir / SCORES_DIR)]
    if rec.get("study_file"):
        found.append(("the study file", Path(str(rec["study_file"]))))
    for d in rec["datasets"]:
        if d.get("output_dir"):
            found += output_inputs(Path(str(d["output_dir"])))
    summaries = study_dir / SCORES_DIR / "sorters.csv"
    if summaries.is_file():
        found += [(f"sorter {r['sorter']}'s output", Path(str(r["sorting_path"])))
                  for r in read_table(summaries) if r.get("sorting_path")]
    return [(label, path.absolute()) for label, path in found]


def write_study_report(study_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default ``<study_dir>/report.html``); returns its path.

    ``out`` is checked first, before any work: never an input (:func:`study_inputs`), not a
    folder; and written whole or not at all (a temporary file renamed over it)."""
    from hybridkit.formats.atomic_files import AtomicFiles
    from hybridkit.run.output_guard import check_output_file

    study_dir = Path(study_dir)
    path = study_dir / "report.html" if out is None else Path(out)
    check_output_file("study report --out", path, study_inputs(study_dir, read_record(study_dir)))
    html = build_study_report(study_dir)
    with AtomicFiles() as pending:
        pending.temp(path).write_text(html, encoding="utf-8")
    return path

"""Benchmark `hybridkit study run`: 8 datasets on 2 Dask workers against the same runs one after another.

Run:  python bench/bench_study.py [--duration 10] [--datasets 8] [--workers 2] [--repeat 2]

On the example dataset (``--duration`` seconds of NP1.0, 385 int16 channels), a study whose grid is
``--datasets`` seeds (legacy + phy writers, as the example config) is generated, side by side in
one run (the machines are noisy, so only ratios mean anything):

* sequential: every dataset's resolved config through ``generate`` in this process, one after
  another (imports paid once, no Dask): the baseline;
* study: ``run_study`` on a fresh LocalCluster of ``--workers`` processes, counted from before the
  cluster starts to after the last result (the command's whole cost), and without the start;
* ceiling: ``--workers`` plain Python processes side by side, each generating its share of the
  datasets one after another (no Dask): what this machine gives for that many processes at all.
  On a shared machine whose cores are already busy it can be no faster than sequential; the study
  is then judged against it.

Per repeat the order alternates; every run writes into a fresh folder (else the study would skip).
Reported: the speedup (sequential / study, with and without the cluster start), the ceiling
(sequential / plain processes) and study / ceiling, and the scheduling
overhead per dataset two ways: (study wall without the start x workers - the summed time spent
inside the dataset tasks) / datasets, i.e. what a dataset costs beyond its own run (scheduling,
transfers, the workers' first imports, idle tails); and the round trip of a no-op task submitted
and gathered the same way (``--noop`` of them). Prints a JSON report and writes bench/out/study.json.
Needs ``pip install .[bench]`` (distributed).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _noop() -> None:
    return None


def sequential(study_file: Path, part: int = 0, parts: int = 1) -> dict:
    from hybridkit.config.run_config import validate_config
    from hybridkit.run.pipeline import generate
    from hybridkit.study.expand import expand
    from hybridkit.study.spec import load_study

    spec, study_dir = load_study(study_file)
    datasets = expand(spec, study_dir, str(study_file))[part::parts]
    t0 = time.perf_counter()
    per = []
    for d in datasets:
        t = time.perf_counter()
        generate(validate_config(d.config, d.base_dir))
        per.append(time.perf_counter() - t)
    return {"wall_s": time.perf_counter() - t0, "per_dataset_s": per}


def ceiling(study_file: Path, workers: int) -> dict:
    """``workers`` plain processes side by side, each running its share of the datasets."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--part", f"{k}/{workers}", str(study_file)],
                              stdout=subprocess.PIPE, text=True) for k in range(workers)]
    outs = [json.loads(p.communicate()[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return {"wall_s": time.perf_counter() - t0, "per_process": outs}


def distributed_run(study_file: Path, workers: int, n_noop: int) -> dict:
    from distributed import as_completed

    from hybridkit.study.cluster import study_client
    from hybridkit.study.runner import run_study

    t0 = time.perf_counter()
    with study_client(workers, 2048) as client:  # the local cluster `study run` starts
        client.wait_for_workers(workers)
        started = time.perf_counter()
        run = run_study(study_file, client=client, progress=False)
        done = time.perf_counter()
        statuses = {r["status"] for r in run.results.values()}
        assert statuses == {"done"}, run.results
        t = time.perf_counter()
        for fut in as_completed([client.submit(_noop, pure=False) for _ in range(n_noop)]):
            fut.result()
        noop = (time.perf_counter() - t) / n_noop
    task_s = [r["seconds"] for r in run.results.values()]
    n = len(task_s)
    return {"wall_s": done - t0, "cluster_start_s": started - t0, "run_s": done - started,
            "task_s": task_s,
            "overhead_per_dataset_s": (run.wall_seconds * workers - sum(task_s)) / n,
            "noop_task_round_trip_ms": noop * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of the example recording")
    ap.add_argument("--datasets", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--noop", type=int, default=50, help="no-op tasks timed for the round trip")
    ap.add_argument("--workdir", type=Path, help="default: a temporary folder (removed)")
    ap.add_argument("--part", help=argparse.SUPPRESS)  # K/N: one ceiling process (internal)
    ap.add_argument("study", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        k, n = map(int, args.part.split("/"))
        print(json.dumps(sequential(args.study, k, n)))
        return

    from hybridkit.example import write_example

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-study-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "demo" / "config.json").is_file():
        write_example(work / "demo", duration_s=args.duration, seed=0)
    runs = []
    try:
        for rep in range(args.repeat):
            order = ("sequential", "study", "ceiling") if rep % 2 == 0 else ("ceiling", "study", "sequential")
            row = {}
            for kind in order:
                out = work / f"out-{kind}-{rep}"
                study = work / f"study-{kind}-{rep}.json"
                study.write_text(json.dumps({"base": "demo/config.json", "output": out.name,
                                             "grid": {"seed": list(range(1, args.datasets + 1))}}))
                row[kind] = (sequential(study) if kind == "sequential" else
                             ceiling(study, args.workers) if kind == "ceiling" else
                             distributed_run(study, args.workers, args.noop))
                shutil.rmtree(out, ignore_errors=True)
            runs.append(row)
            print(json.dumps({"repeat": rep, **{f"{k}_s": round(v["wall_s"], 2) for k, v in row.items()}}),
                  flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    med = lambda xs: statistics.median(xs)  # noqa: E731
    seq = med([r["sequential"]["wall_s"] for r in runs])
    st = med([r["study"]["wall_s"] for r in runs])
    st_run = med([r["study"]["run_s"] for r in runs])
    ceil = med([r["ceiling"]["wall_s"] for r in runs])
    report = {
        "datasets": args.datasets, "workers": args.workers, "duration_s": args.duration,
        "repeat": args.repeat,
        "sequential_s": seq, "study_s": st, "study_without_cluster_start_s": st_run,
        "cluster_start_s": med([r["study"]["cluster_start_s"] for r in runs]),
        "ceiling_s": ceil, "speedup": seq / st, "speedup_without_cluster_start": seq / st_run,
        "ceiling_speedup": seq / ceil, "study_over_ceiling": st / ceil,
        "study_without_cluster_start_over_ceiling": st_run / ceil,
        "overhead_per_dataset_s": med([r["study"]["overhead_per_dataset_s"] for r in runs]),
        "noop_task_round_trip_ms": med([r["study"]["noop_task_round_trip_ms"] for r in runs]),
        "runs": runs,
    }
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "study.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()

"""Benchmark the ``nwb`` writer against the ``legacy`` binary writer, and its memory on long recordings.

Run:  python bench/bench_nwb.py [--duration 30] [--long 4] [--units 10] [--levels 4 1]

On the example dataset (NP1.0, 384 channels + sync, int16; ``--duration`` seconds and ``--long``
times longer) it runs ``hybridkit generate`` as a user does (a subprocess, so peak RSS is the
run's own) with:

* ``legacy``: the binary writer alone (copy + event blocks);
* ``nwb (gzip N)``: the nwb writer alone, traces in the file, gzip level N (every sample is
  streamed, compressed and written), nwbinspector off so the write itself is timed;
* ``legacy + nwb``: both in the same run (what most users will run);
* ``nwb ground truth only``: ``traces: false`` beside legacy.

For each: wall and CPU (user + sys) seconds, throughput in MB of raw source samples per wall
second and per CPU second (the robust number on a shared machine), peak RSS (MB), and the NWB
file size. The long recording runs legacy and the first gzip level only. Targets (issue 5): report NWB throughput against legacy; peak RSS must not grow with the
recording's length. Prints a JSON report and writes it to bench/out/nwb.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NWB_META = {"session_start_time": "2024-03-04T12:00:00+00:00", "electrode_location": "CA1",
            "subject": {"subject_id": "bench", "species": "Mus musculus", "sex": "U", "age": "P90D"},
            "experimenter": ["Bench, Mark"], "institution": "hybridkit", "inspect": "off"}


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (kB) and CPU seconds (user + sys) of a command, via GNU time."""
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", out.stderr).group(1)) for k in ("User", "System"))
    return wall, rss, cpu


def make_dataset(root: Path, duration: float, n_units: int) -> Path:
    from hybridkit.example import write_example

    write_example(root, seed=1, duration_s=duration, n_units=max(n_units + 4, 12))
    cfg = json.loads((root / "config.json").read_text())
    units = sorted(int(u) for u in np.unique(np.load(root / "kilosort4" / "spike_clusters.npy")))
    cfg["units"] = {"ids": units[:n_units]}
    cfg["injection"] = {"placement": {"mode": "random", "min_distance_um": 20, "on_no_place": "skip"},
                        "trains": {"mode": "poisson", "rate_hz": 10.0}}
    cfg["engine"] = {"progress": False}
    (root / "config.json").write_text(json.dumps(cfg, indent=2))
    return root / "config.json"


def run_case(config: Path, writers: list[dict], out: Path) -> dict:
    cfg = json.loads(config.read_text())
    cfg["writers"] = writers
    cfg["output"] = {"directory": str(out), "overwrite": True, "checksums": "none"}
    path = config.with_name(f"config-{out.name}.json")
    path.write_text(json.dumps(cfg))
    # from the dataset's folder: ``python -m`` puts the current folder first on sys.path, so run
    # from a source tree it would import that tree's hybridkit, not PYTHONPATH's (--baseline)
    wall, rss, cpu = timed([sys.executable, "-m", "hybridkit", "generate", str(path)], cwd=config.parent)
    nwb = sorted(out.glob("*.nwb"))
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(rss / 1024, 1),
            "nwb_mb": round(sum(p.stat().st_size for p in nwb) / 2**20, 1) if nwb else None}


def bench(root: Path, duration: float, n_units: int, levels: list[int], full: bool = True) -> dict:
    config = make_dataset(root / "data", duration, n_units)
    src = next((root / "data").rglob("*.ap.bin"))
    raw_mb = src.stat().st_size / 2**20
    cases = {"legacy": [{"type": "legacy"}]}
    for level in levels if full else levels[:1]:
        cases[f"nwb (gzip {level})"] = [{"type": "nwb", **NWB_META, "compression_level": level}]
    if full:
        cases[f"legacy + nwb (gzip {levels[0]})"] = [
            {"type": "legacy"}, {"type": "nwb", **NWB_META, "compression_level": levels[0]}]
        cases["legacy + nwb ground truth only"] = [{"type": "legacy"},
                                                   {"type": "nwb", **NWB_META, "traces": False}]
    results = {}
    for i, (label, writers) in enumerate(cases.items()):
        r = run_case(config, writers, root / f"out{i}")
        r["throughput_mb_s"] = round(raw_mb / r["wall_s"], 1)
        r["mb_per_cpu_s"] = round(raw_mb / r["cpu_s"], 1)
        results[label] = r
        print(f"  {duration:>6.0f} s  {label:<34} {r}", flush=True)
    return {"duration_s": duration, "source_mb": round(raw_mb, 1), "cases": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of the 1x recording")
    ap.add_argument("--long", type=float, default=4.0, help="length of the long recording, x duration")
    ap.add_argument("--units", type=int, default=10)
    ap.add_argument("--levels", type=int, nargs="+", default=[4, 1], help="gzip levels to time")
    args = ap.parse_args()
    report = {"machine_cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "runs": []}
    for factor in (1.0, args.long):  # the long run: legacy and the first gzip level only (memory)
        with tempfile.TemporaryDirectory(dir=HERE) as tmp:
            report["runs"].append(bench(Path(tmp), args.duration * factor, args.units, args.levels,
                                        full=factor == 1.0))
    one, long_ = report["runs"]
    label = f"nwb (gzip {args.levels[0]})"
    report["summary"] = {
        "nwb_vs_legacy_wall_ratio_1x": round(one["cases"][label]["wall_s"] / one["cases"]["legacy"]["wall_s"], 2),
        "nwb_throughput_mb_s_1x": one["cases"][label]["throughput_mb_s"],
        "legacy_throughput_mb_s_1x": one["cases"]["legacy"]["throughput_mb_s"],
        "nwb_peak_rss_mb_1x_vs_long": [one["cases"][label]["peak_rss_mb"], long_["cases"][label]["peak_rss_mb"]],
        "legacy_peak_rss_mb_1x_vs_long": [one["cases"]["legacy"]["peak_rss_mb"],
                                          long_["cases"]["legacy"]["peak_rss_mb"]],
    }
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "nwb.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()

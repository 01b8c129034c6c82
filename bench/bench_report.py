"""Measure ``hybridkit report`` on a long run: page size (MB) and build time (s).

Run:  python bench/bench_report.py [--hours 1] [--units 50] [--rate 4] [--channels 16] [--fs 10000]
                                   [--work DIR] [--no-score]

Builds (once; kept in ``--work``, default a folder under the system temp dir) a flat int16 noise
recording of ``--hours`` x ``--channels`` at ``--fs`` Hz (1 h x 16 ch x 10 kHz = 1.15 GB; 32 ch at
30 kHz would be 6.9 GB), a two-column probe, and a run of ``--units`` synthetic templates with
Poisson trains at ``--rate`` Hz (50 units x 4 Hz x 1 h = 720 k events), legacy + phy writers. With
a score (default), a phy sorting made from the truth the way a sorter errs (10 % of each unit's
spikes dropped, +-3 samples of jitter, two pairs of units merged, one unit split) is scored first.
Then it times reading the truth and ``build_report`` (in-process, once: the page is deterministic;
wall and CPU seconds, as the machine may be shared) and reports the page's size. Prints a JSON report and writes bench/out/report.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def make_recording(folder: Path, hours: float, n_ch: int, fs: float) -> Path:
    """Gaussian noise (std 10 raw units) written block by block; geometry beside it."""
    rec = folder / "long.bin"
    n = int(hours * 3600 * fs)
    if not rec.is_file() or rec.stat().st_size != n * n_ch * 2:
        rng = np.random.default_rng(0)
        block = int(fs * 10)
        with open(rec, "wb") as fh:
            for s in range(0, n, block):
                m = min(block, n - s)
                fh.write(np.rint(rng.normal(0, 10, (m, n_ch))).astype(np.int16).tobytes())
    geom = np.c_[np.tile([0.0, 32.0], n_ch // 2 + 1)[:n_ch], np.arange(n_ch) // 2 * 20.0]
    np.save(folder / "geom.npy", geom)
    return rec


def make_run(folder: Path, args) -> Path:
    from hybridkit.cli import main as cli

    out = folder / "out"
    if (out / "manifest.json").is_file():
        return out
    cfg = {
        "session": "long", "seed": 1,
        "recording": {"type": "binary", "path": "long.bin", "dtype": "int16", "n_channels": args.channels,
                      "sampling_rate": args.fs, "geometry": "geom.npy", "gain_to_uV": 2.34},
        "templates": {"type": "synthetic", "n_units": args.units},
        "injection": {"placement": {"mode": "random", "min_distance_um": 0, "on_no_place": "skip"},
                      "trains": {"mode": "poisson", "rate_hz": args.rate}},
        "output": {"directory": "out"},
        "writers": [{"type": "legacy"}, {"type": "phy"}],
        "engine": {"progress": False},
    }
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    assert cli(["generate", str(folder / "config.json")]) == 0
    return out


def make_score(folder: Path, out: Path) -> Path:
    """A sorting of the hybrid recording that errs as sorters do; its score.json."""
    from hybridkit.results.scoring import score, write_score
    from hybridkit.results.truth import load_truth
    from tests.helpers import write_phy

    target = folder / "score"
    if (target / "score.json").is_file():
        return target / "score.json"
    truth = load_truth(out)
    rng = np.random.default_rng(2)
    keep = rng.random(truth.times.size) > 0.10
    t = truth.times[keep] + rng.integers(-3, 4, keep.sum())
    u = truth.units[keep] + 1000
    ids = truth.unit_ids + 1000
    u[u == ids[1]] = ids[0]
    u[u == ids[3]] = ids[2]
    u = np.where((u == ids[4]) & (rng.random(u.size) < 0.4), ids[4] + 500, u)
    sorting = write_phy(folder / "sorting", np.clip(t, 0, truth.n_samples - 1), u, truth.sampling_rate)
    write_score(score(out, sorting, write=False), target)
    return target / "score.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--units", type=int, default=50)
    ap.add_argument("--rate", type=float, default=4.0)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--fs", type=float, default=10000.0)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hybridkit-bench-report")
    ap.add_argument("--no-score", action="store_true")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    rec = make_recording(args.work, args.hours, args.channels, args.fs)
    out = make_run(args.work, args)
    score_path = None if args.no_score else make_score(args.work, out)
    setup_s = time.perf_counter() - t0

    from hybridkit.results.report import build_report
    from hybridkit.results.truth import load_truth

    t0, c0 = time.perf_counter(), time.process_time()
    truth = load_truth(out)
    load_s = time.perf_counter() - t0
    html = build_report(truth, score_path)
    build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    page = args.work / "report.html"
    page.write_text(html, encoding="utf-8")
    report = {
        "recording": {"hours": args.hours, "channels": args.channels, "fs": args.fs,
                      "bytes": rec.stat().st_size},
        "units": int(truth.unit_ids.size), "events": int(truth.times.size), "score": score_path is not None,
        "setup_s": round(setup_s, 1), "build_s": round(build_s, 1), "build_cpu_s": round(build_cpu_s, 1),
        "of_which_load_truth_s": round(load_s, 1),
        "page_MB": round(len(html.encode("utf-8")) / 1e6, 2), "figures": html.count("<figure "),
        "page": str(page),
    }
    print(json.dumps(report, indent=2))
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

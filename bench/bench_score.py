"""Benchmark the scoring engine: 1M ground-truth spikes against 1M sorted spikes.

Run:  python bench/bench_score.py [--spikes 1000000] [--gt-units 200] [--hours 1] [--repeat 3] [--si]

The ground truth is ``--gt-units`` Poisson-like trains with a 1.5 ms refractory period over
``--hours`` of a 30 kHz recording, ``--spikes`` spikes in all. The sorting is made from it the way
a real sorter errs: 10 % of spikes dropped, 10 % added at random times, every spike jittered by up
to +-10 samples, 10 % of units split in two, 5 % of pairs merged, 100 noise units. It times
``hybridkit.engine.matching.compare`` (matching, agreement, Hungarian assignment, performance,
classes) and, with ``--si``, SpikeInterface's compare_sorter_to_ground_truth on the same spikes
(numba; its first call includes compilation, so it is run twice and the second is reported).

Target (issue: score): seconds for 1M against 1M. Prints a JSON report and writes it to
bench/out/score.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hybridkit.engine.matching import compare, tolerance_samples

HERE = Path(__file__).resolve().parent
FS = 30000.0


def make_case(n_spikes: int, n_units: int, hours: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_samples = int(hours * 3600 * FS)
    per_unit = np.full(n_units, n_spikes // n_units)
    per_unit[: n_spikes - per_unit.sum()] += 1
    gt_t, gt_u = [], []
    for u, n in enumerate(per_unit):
        refr = int(0.0015 * FS)
        mean_isi = 0.9 * n_samples / n  # so that (nearly always) all n spikes fit
        isi = refr + rng.exponential(max(mean_isi - refr, 1.0), n).astype(np.int64)
        t = np.cumsum(isi)
        gt_t.append(t[t < n_samples])
        gt_u.append(np.full(gt_t[-1].size, u))
    gt_t, gt_u = np.concatenate(gt_t), np.concatenate(gt_u)

    keep = rng.random(gt_t.size) > 0.10
    st = gt_t[keep] + rng.integers(-10, 11, keep.sum())
    su = gt_u[keep] + 10_000
    split = np.isin(su - 10_000, rng.choice(n_units, n_units // 10, replace=False)) & (rng.random(su.size) < 0.4)
    su = np.where(split, su + 20_000, su)
    for a in rng.choice(n_units, 2 * (n_units // 20), replace=False).reshape(-1, 2):
        su[su == a[1] + 10_000] = a[0] + 10_000
    n_add = int(0.10 * gt_t.size)
    st = np.concatenate([st, rng.integers(0, n_samples, n_add)])
    su = np.concatenate([su, rng.integers(50_000, 50_100, n_add)])
    return gt_t, gt_u, np.clip(st, 0, n_samples - 1), su


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spikes", type=int, default=1_000_000)
    ap.add_argument("--gt-units", type=int, default=200)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--si", action="store_true", help="also time SpikeInterface on the same spikes")
    args = ap.parse_args()

    gt_t, gt_u, st, su = make_case(args.spikes, args.gt_units, args.hours)
    delta = tolerance_samples(0.4, FS)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        cmp = compare(gt_t, gt_u, st, su, delta)
        times.append(time.perf_counter() - t0)
    report = {
        "gt_spikes": int(gt_t.size), "sorted_spikes": int(st.size),
        "gt_units": int(cmp.gt_ids.size), "sorted_units": int(cmp.sorted_ids.size),
        "tolerance_samples": delta, "hybridkit_s": min(times), "hybridkit_runs_s": times,
        "mean_accuracy": float(cmp.accuracy.mean()), "n_well_detected": int(cmp.well_detected.sum()),
    }
    if args.si:
        from spikeinterface.comparison import compare_sorter_to_ground_truth
        from spikeinterface.core import NumpySorting

        s1 = NumpySorting.from_samples_and_labels([gt_t[np.argsort(gt_t)]], [gt_u[np.argsort(gt_t)]], FS)
        s2 = NumpySorting.from_samples_and_labels([st[np.argsort(st)]], [su[np.argsort(st)]], FS)
        si_times = []
        for _ in range(2):
            t0 = time.perf_counter()
            ref = compare_sorter_to_ground_truth(s1, s2, delta_time=0.4, exhaustive_gt=True)
            ref.count_units_categories()
            si_times.append(time.perf_counter() - t0)
        perf = ref.get_performance()
        report["spikeinterface_s"] = si_times[-1]
        report["spikeinterface_first_call_s"] = si_times[0]
        report["max_abs_accuracy_difference"] = float(np.abs(
            perf.loc[cmp.gt_ids, "accuracy"].astype(float).values - cmp.accuracy).max())
    print(json.dumps(report, indent=2))
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "score.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark the choose/select stage of ``generate`` (issue 14 / 19), side by side with a baseline tree.

Run:  python bench/bench_selection.py DATASET [--baseline SRC_TREE] [--repeat 5]

``DATASET`` is a folder made by ``bench_generate.make_dataset`` (its config.json lists 20 units by
id). For each source tree (this one and ``--baseline``, alternating, each in its own process) it
times, page cache warm, the best of ``--repeat`` calls of ``run.selection.choose_units``:

* ``listed``: the config's ``units`` (20 ids, no amplitude/SNR criterion): what a run does first;
* ``measured``: every unit of the sorting with ``min_snr: 0`` (amplitude and SNR measured for all);

and, for this tree, the run's one noise estimate (``engine.noise.recording_noise_uV``), which the
run makes once whatever the selection. Timings never go into tests; only the ratios between trees
run side by side mean anything on a shared machine. Prints a JSON report and writes it to
bench/out/selection.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = HERE.parent

#: runs in the timed tree's own interpreter: prints {"listed": s, "measured": s[, "noise": s]}
PROBE = r"""
import json, sys, time
from pathlib import Path
from hybridkit.config.run_config import load_config
from hybridkit.config.sections import plugin_from_section
from hybridkit.registry import get_registry
from hybridkit.run.selection import choose_units

import hybridkit
cfg = load_config(Path(sys.argv[1]))
repeat = int(sys.argv[2])
reg = get_registry()
rec = plugin_from_section(reg, "source_reader", cfg.recording, cfg.base_dir).open()
out = {}
with rec.opened():
    sorting = plugin_from_section(reg, "sorter_adapter", cfg.sorting, cfg.base_dir).load(rec)
    measured = cfg.units.model_copy(update={"ids": None, "min_snr": 0.0})
    for name, units in (("listed", cfg.units), ("measured", measured)):
        choose_units(sorting, units, rec, cfg.seed)  # page cache warm, imports done
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            ids, rows = choose_units(sorting, units, rec, cfg.seed)
            best = min(best, time.perf_counter() - t)
        out[name] = best
        out[name + "_units"] = len(rows)
    try:
        from hybridkit.engine.noise import recording_noise_uV
    except ImportError:  # a tree before the one noise estimate
        pass
    else:
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            recording_noise_uV(rec, None)
            best = min(best, time.perf_counter() - t)
        out["noise"] = best
out["tree"] = str(Path(hybridkit.__file__).parent.parent)
print(json.dumps(out))
"""


def probe(tree: Path, config: Path, repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    # run from the dataset's folder: with -c the current folder comes first on sys.path
    res = subprocess.run([sys.executable, "-c", PROBE, str(config), str(repeat)], env=env,
                         capture_output=True, text=True, check=True, cwd=config.parent)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--baseline", type=Path, help="another hybridkit source tree, timed alternately")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the trees")
    args = ap.parse_args()
    config = args.dataset / "config.json"
    trees = {"this": TREE} | ({"baseline": args.baseline} if args.baseline else {})
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            runs[name].append(probe(tree, config, args.repeat))
    best = {name: {k: min(r[k] for r in rs) for k in rs[0] if k != "tree"} for name, rs in runs.items()}
    report: dict = {"best": best, "runs": runs, "load_average": os.getloadavg()}
    if "baseline" in best:
        report["speedup"] = {k: best["baseline"][k] / best["this"][k]
                             for k in ("listed", "measured") if best["this"][k] > 0}
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "selection.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

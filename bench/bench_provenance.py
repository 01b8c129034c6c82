"""What the NWB provenance (processing/hybridkit) costs a run, side by side.

Run:  python bench/bench_provenance.py [--duration 30] [--units 10] [--repeat 2]

On the example dataset (NP1.0, 385 int16 columns, ``--duration`` seconds) it runs ``hybridkit
generate`` as a user does (subprocesses, bench_nwb.py's helpers) with

* ``legacy``: the binary writer alone (the baseline);
* ``legacy + nwb ground truth only``: ``traces: false`` beside legacy, which now also hashes the
  inputs (SHA-256 of the source and of the sorting's files, in a thread beside the run) and writes
  the provenance tables;

and, in this process, the time of a plain SHA-256 of the source (one more read of it: the cost the
provenance adds at most, hidden behind the run when it is longer) and the bytes the provenance
tables occupy in the NWB file (HDF5 storage of processing/hybridkit). With ``--baseline DIR`` (a
checkout without the provenance, e.g. ``git worktree add /tmp/base <commit>``) the nwb case also
runs with that code (``PYTHONPATH=DIR``), side by side. Runs alternate, ``--repeat`` times;
medians are reported. Writes bench/out/provenance.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_nwb import NWB_META, make_dataset, run_case  # noqa: E402 (found through sys.path above)


def provenance_bytes(nwb: Path) -> int:
    import h5py

    total = 0
    with h5py.File(nwb, "r") as f:
        def add(_, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += obj.id.get_storage_size()
        f["processing/hybridkit"].visititems(add)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--units", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--baseline", type=Path, help="a checkout of hybridkit to compare with")
    args = ap.parse_args()
    from hybridkit.formats.checksums import sha256

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = make_dataset(root / "data", args.duration, args.units)
        src = next((root / "data").rglob("*.ap.bin"))
        cases = {"legacy": [{"type": "legacy"}],
                 "legacy + nwb ground truth only": [{"type": "legacy"},
                                                    {"type": "nwb", **NWB_META, "traces": False}]}
        code = {k: None for k in cases}
        if args.baseline is not None:
            key = "legacy + nwb ground truth only, baseline code"
            cases[key], code[key] = cases["legacy + nwb ground truth only"], str(args.baseline.resolve())
        runs: dict[str, list[dict]] = {k: [] for k in cases}
        hashes = []
        for i in range(args.repeat):
            for n, (k, writers) in enumerate(cases.items()):
                old = os.environ.get("PYTHONPATH")
                if code[k]:
                    os.environ["PYTHONPATH"] = code[k]
                try:
                    runs[k].append(run_case(config, writers, root / f"out-{i}-{n}"))
                finally:
                    if old is None:
                        os.environ.pop("PYTHONPATH", None)
                    else:
                        os.environ["PYTHONPATH"] = old
            t0 = time.perf_counter()
            sha256(src)
            hashes.append(time.perf_counter() - t0)
        nwb = next((root / "out-0-1").glob("*.nwb"))
        report = {
            "duration_s": args.duration, "source_mb": round(src.stat().st_size / 2**20, 1),
            "cases": {k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "cpu_s", "peak_rss_mb")}
                      for k, v in runs.items()},
            "sha256_of_source_s": round(statistics.median(hashes), 2),
            "provenance_bytes": provenance_bytes(nwb), "nwb_bytes": nwb.stat().st_size,
        }
        walls = [report["cases"][k]["wall_s"] for k in cases]
        report["wall_ratio_nwb_vs_legacy"] = round(walls[1] / walls[0], 2)
        if len(walls) > 2:
            report["wall_ratio_provenance_vs_baseline_code"] = round(walls[1] / walls[2], 2)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "provenance.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

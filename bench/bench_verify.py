"""Benchmark ``hybridkit verify`` against a plain read of the two files it compares.

Run:  python bench/bench_verify.py [--duration 60] [--units 20] [--rate 10] [--repeat 3] [--long 4]

On the dataset of bench_generate.py (the example's 384-channel NP1.0 int16 recording,
``--duration`` seconds, ``--units`` units at ``--rate`` Hz; legacy writer, default checksums, so
the hybrid binary has a size but no SHA-256 in the manifest) it times, side by side in one run and
alternating (the machines are noisy, so only ratios mean anything), with the page cache warm:

* a plain read of the source .bin and the hybrid .GT.bin once each, in 16 MB reads into one
  buffer (``cat``-like: no parsing, no comparison): the least any verifier must do;
* ``hybridkit verify OUTPUT`` as a user runs it (a subprocess: imports, tables, checksums of the
  sidecars and the source, the traces of both files block by block), with its peak RSS;
* verify again on a recording ``--long`` times longer: its peak RSS must not grow with the length,
  and its fixed costs (imports, opening the source, the tables) weigh less.

Wall and CPU (user + system) seconds are both reported: on a shared machine CPU time is the
steadier of the two.

Targets (issue 13): verify <= 2 x the plain read; peak RSS <= 600 MB at any length. Prints a JSON
report and writes it to bench/out/verify.json. Needs ``pip install .[bench]``.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_generate import HERE, make_dataset, run_generate, settle

#: the plain reader: both files once, 16 MB at a time, into one reused buffer
READ_BOTH = """
import sys
buf = bytearray(16 * 2**20)
view = memoryview(buf)
for name in sys.argv[1:]:
    with open(name, "rb", buffering=0) as fh:
        while fh.readinto(view):
            pass
"""


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (kB) of a command, via GNU time,
    started on a settled machine. CPU time is less disturbed than wall time by other work on a
    shared machine; both are reported."""
    settle()
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0

    def field(name: str) -> float:
        return float(re.search(rf"{name}: ([0-9.]+)", out.stderr).group(1))

    cpu = field(r"User time \(seconds\)") + field(r"System time \(seconds\)")
    return wall, cpu, int(field(r"Maximum resident set size \(kbytes\)"))


def side_by_side(src: Path, out: Path, repeat: int) -> dict:
    """Plain read and verify, alternating ``repeat`` times each; the ratio of the fastest."""
    hybrid = out / src.name.replace(".bin", ".GT.bin")
    read_t, read_cpu, ver_t, ver_cpu, ver_rss = [], [], [], [], []
    for _ in range(repeat):
        wall, cpu, _ = timed([sys.executable, "-c", READ_BOTH, str(src), str(hybrid)])
        read_t.append(wall)
        read_cpu.append(cpu)
        wall, cpu, rss = timed([sys.executable, "-m", "hybridkit", "verify", str(out)])
        ver_t.append(wall)
        ver_cpu.append(cpu)
        ver_rss.append(rss)
    return {"read_both_s": min(read_t), "verify_s": min(ver_t),
            "verify_over_read": min(ver_t) / min(read_t),
            "read_both_cpu_s": min(read_cpu), "verify_cpu_s": min(ver_cpu),
            "verify_over_read_cpu": min(ver_cpu) / min(read_cpu),
            "verify_peak_rss_mb": max(ver_rss) / 1024,
            "runs": {"read_both_s": [round(t, 3) for t in read_t],
                     "verify_s": [round(t, 3) for t in ver_t]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--long", type=float, default=4.0, help="factor for the memory check (0 to skip)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="hk-bench-verify-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        config = make_dataset(work / "data", args.duration, args.units, args.rate)
        src = work / "data" / "demo_g0" / "demo_g0_t0.imec0.ap.bin"
        run_generate(config, work / "out")
        subprocess.run([sys.executable, "-c", READ_BOTH, str(src),  # warm the page cache
                        str(work / "out" / src.name.replace(".bin", ".GT.bin"))], check=True)
        manifest = json.loads((work / "out" / "manifest.json").read_text())
        report = {
            "recording": {"duration_s": args.duration, "channels": 385, "bytes": src.stat().st_size},
            "injected": manifest["injected_events"],
            **side_by_side(src, work / "out", args.repeat),
        }
        if args.long > 0:
            long_cfg = make_dataset(work / "long", args.duration * args.long, args.units, args.rate)
            long_src = work / "long" / "demo_g0" / "demo_g0_t0.imec0.ap.bin"
            run_generate(long_cfg, work / "out")
            long = side_by_side(long_src, work / "out", args.repeat)
            report["long"] = {"duration_s": args.duration * args.long,
                              "bytes": long_src.stat().st_size, **long}
            report["rss_long_over_short"] = long["verify_peak_rss_mb"] / report["verify_peak_rss_mb"]
        print(json.dumps(report, indent=2))
        (HERE / "out").mkdir(exist_ok=True)
        (HERE / "out" / "verify.json").write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: local templates from a neuroconv-like NWB file against the same data as SpikeGLX.

Run:  python bench/bench_nwb_templates.py [--duration 60] [--units 20] [--repeats 3]

The example dataset (NP1.0, 384 channels + sync, int16; ``--duration`` seconds) is written as
SpikeGLX, and its neural channels as an NWB file the way neuroconv writes one: an
ElectricalSeries chunked 78,125 samples x 64 channels, gzip level 4, ``starting_time``. Each case
runs in its own subprocess (``--child``), side by side and repeated (``--repeats``; medians), and
times only ``LocalTemplates.build`` for ``--units`` units (spikes chosen as in a run):

* ``spikeglx``: the baseline;
* ``nwb file``: the local NWB file;
* ``nwb url``: the same file streamed from a Range-capable HTTP server on 127.0.0.1, which counts
  the bytes it sends.

Reported per case: seconds, peak RSS (MB, the child's), and for the URL the bytes fetched over
the stored bytes of the chunks the reader touched. Targets (issue 15): NWB file time <= 1.5 x
SpikeGLX; URL bytes <= 1.2 x the chunks touched; peak RSS <= 600 MB. Prints a JSON report and
writes it to bench/out/nwb_templates.json.
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

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHUNKS = (78125, 64)


def make_data(root: Path, duration: float, n_units: int) -> dict:
    """The example dataset, its NWB twin, and the units to build (the largest by spike count)."""
    sys.path.insert(0, str(ROOT))
    from hybridkit.example import write_example
    from hybridkit.plugins.sources.spikeglx import SpikeGLXReader
    from tests.plugins.nwb_testutil import write_nwb

    config = write_example(root / "demo", seed=1, duration_s=duration, n_units=max(n_units + 4, 12))
    bin_path = next((root / "demo").rglob("*.ap.bin"))
    rec = SpikeGLXReader(SpikeGLXReader.Options(type="spikeglx", path=bin_path)).open()
    neural = rec.neural_channels
    nwb = root / "neuroconv_like.nwb"
    write_nwb(nwb, rec.read(0, rec.n_samples)[:, neural], fs=rec.sampling_rate,
              conversion=float(rec.gain_to_uV[neural[0]]) * 1e-6,
              positions=rec.channel_positions[neural], names=[f"AP{c}" for c in neural],
              chunks=CHUNKS, compression="gzip")
    clusters = np.load(root / "demo" / "kilosort4" / "spike_clusters.npy")
    ids, counts = np.unique(clusters, return_counts=True)
    units = sorted(int(u) for u in ids[np.argsort(counts)[::-1][:n_units]])
    return {"config": str(config), "spikeglx": str(bin_path), "nwb": str(nwb), "units": units,
            "sorting": str(root / "demo" / "kilosort4")}


def child(spec: dict) -> dict:
    """In a fresh process: open the source, build the templates, report the time."""
    from hybridkit.hookspecs import RunContext
    from hybridkit.plugins.sorters.phy import PhyAdapter
    from hybridkit.plugins.templates.local import LocalTemplates
    from hybridkit.registry import get_registry

    reg = get_registry()
    reader = reg.get("source_reader", spec["recording"]["type"])
    rec = reader(reader.Options.model_validate(spec["recording"])).open()
    sorting = PhyAdapter(PhyAdapter.Options(type="phy", path=spec["sorting"])).load(rec)
    ctx = RunContext(base_dir=Path("."), rng=np.random.default_rng(0), seed=0)
    source = LocalTemplates(LocalTemplates.Options(type="local"), ctx)
    t0 = time.perf_counter()
    bank = source.build(rec, sorting, spec["units"])
    seconds = time.perf_counter() - t0
    touched = getattr(rec, "chunks_touched", {})
    return {"seconds": seconds, "n_templates": len(bank.templates), "chunks_touched": len(touched),
            "chunk_bytes_touched": int(sum(touched.values())),
            "checksum": float(sum(float(np.abs(t.waveform).sum()) for t in bank.templates.values()))}


def run_child(spec: dict, tmp: Path) -> dict:
    """One case in a fresh process; peak RSS from GNU time (the child's own, not inherited)."""
    from bench_nwb import timed

    result = tmp / "child.json"
    _, rss_kb, cpu = timed([sys.executable, __file__, "--child", json.dumps({**spec, "out": str(result)})])
    r = json.loads(result.read_text())
    r["peak_rss_mb"], r["cpu_s"] = round(rss_kb / 1024, 1), round(cpu, 2)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of recording")
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        Path(spec["out"]).write_text(json.dumps(child(spec)))
        return
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from tests.plugins.nwb_testutil import Server

    try:
        import isal  # noqa: F401
        inflate = "isal"
    except ImportError:
        inflate = "zlib"
    report = {"machine_cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "inflate": inflate,
              "duration_s": args.duration, "units": args.units, "chunks": list(CHUNKS)}
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        data = make_data(Path(tmp), args.duration, args.units)
        report["nwb_file_mb"] = round(Path(data["nwb"]).stat().st_size / 2**20, 1)
        with Server(Path(data["nwb"]).parent) as server:
            url = f"{server.url}/{Path(data['nwb']).name}"
            cases = {
                "spikeglx": {"type": "spikeglx", "path": data["spikeglx"]},
                "nwb file": {"type": "nwb", "path": data["nwb"]},
                "nwb url": {"type": "nwb", "url": url},
            }
            runs: dict[str, list[dict]] = {k: [] for k in cases}
            for _ in range(args.repeats):  # side by side: the machine's load hits every case alike
                for label, recording in cases.items():
                    server.requests.clear()
                    r = run_child({"recording": recording, "sorting": data["sorting"],
                                   "units": data["units"]}, Path(tmp))
                    r["bytes_fetched"] = sum(n for _, _, n in server.requests)
                    runs[label].append(r)
                    print(f"  {label:<9} {r}", flush=True)
    summary = {}
    for label, rs in runs.items():
        summary[label] = {"seconds": round(statistics.median(r["seconds"] for r in rs), 2),
                          "cpu_s": round(statistics.median(r["cpu_s"] for r in rs), 2),
                          "peak_rss_mb": round(max(r["peak_rss_mb"] for r in rs), 1),
                          "checksum": rs[0]["checksum"]}
    url_runs = runs["nwb url"]
    summary["nwb url"]["bytes_fetched_mb"] = round(statistics.median(r["bytes_fetched"] for r in url_runs) / 2**20, 1)
    summary["nwb url"]["chunk_bytes_touched_mb"] = round(url_runs[0]["chunk_bytes_touched"] / 2**20, 1)
    summary["nwb url"]["fetched_over_touched"] = round(
        statistics.median(r["bytes_fetched"] / max(r["chunk_bytes_touched"], 1) for r in url_runs), 3)
    summary["nwb file / spikeglx time"] = round(summary["nwb file"]["seconds"] / summary["spikeglx"]["seconds"], 2)
    summary["nwb url / spikeglx time"] = round(summary["nwb url"]["seconds"] / summary["spikeglx"]["seconds"], 2)
    summary["same templates"] = len({s["checksum"] for k, s in summary.items() if isinstance(s, dict)
                                     and "checksum" in s}) == 1
    report["runs"], report["summary"] = runs, summary
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "nwb_templates.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark the lazy hybrid recording against SpikeInterface's ``InjectTemplatesRecording``.

Run:  python bench/bench_spikeinterface.py [--duration 60] [--units 20] [--rate 10] [--repeat 3]
                                          [--chunk-s 0.1 1 10] [--workdir DIR]

On the example dataset (384-channel NP1.0 int16, ``--duration`` seconds, made as in
bench_generate.py) and one ``hybridkit generate`` run (``--units`` units, Poisson trains at
``--rate`` Hz), both recordings are built over the same source with the same events: hybridkit's
:class:`hybridkit.results.lazy_hybrid.LazyHybridRecording` from the output folder, and
``InjectTemplatesRecording`` from the run's exact plan (``templates-<session>.npz``: the same
templates in raw units, spike times and per-spike gains). Each is read end to end with
``get_traces`` in chunks of each ``--chunk-s`` seconds (what a sorter's preprocessing does),
alternating, ``--repeat`` times; page cache warm; the fastest run of each counts. Only the ratio
means anything on a shared machine (the report gives the load average before and after).

The lazy recording is also timed forced onto its numpy path (the code before the compiled loop,
and what runs without numba). Before timing, the lazy recording is checked equal to the
``.GT.bin`` generate wrote, sample for sample. Target (issue 17): lazy <= 1.0 x InjectTemplatesRecording. Prints a JSON report and
writes it to bench/out/spikeinterface.json. Needs ``pip install .[bench]``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_generate import make_dataset  # noqa: E402  (the same dataset as the generate benchmark)


def generate_once(config: Path, out: Path) -> Path:
    from hybridkit.config.run_config import load_config
    from hybridkit.run.pipeline import generate

    cfg = json.loads(config.read_text())
    cfg["output"] = {"directory": str(out), "overwrite": True}
    path = config.with_name("bench_si_config.json")
    path.write_text(json.dumps(cfg))
    return generate(load_config(path)).output_dir


def si_injection(out: Path):
    """InjectTemplatesRecording over the source binary with the run's exact events and templates."""
    import spikeinterface.core as sc
    from spikeinterface.core.generate import InjectTemplatesRecording

    from hybridkit.results.lazy_hybrid import open_run
    from hybridkit.results.plan_file import read_plan_file

    source, kernel, _ = open_run(out)
    plan, _ = read_plan_file(next(out.glob("templates-*.npz")))
    peaks = [t.peak_index for t in plan.all_templates()]
    rec = sc.read_binary([str(f.path) for f in source.files], sampling_frequency=source.sampling_rate,
                         dtype=source.dtype, num_channels=source.n_channels)
    n_t = len(kernel.raw)
    before = kernel.max_before
    dense = np.zeros((n_t, before + kernel.max_after, source.n_channels), np.float32)
    for k in range(n_t):  # the kernel's raw-unit templates, every peak at sample ``before``
        start = before - peaks[k]
        dense[k, start:start + kernel.raw[k].shape[0]][:, kernel.cols[k]] = kernel.raw[k]
    # the spike vector is ordered by sample, then unit: give the gains in that order
    order = np.lexsort((kernel.unit_index, kernel.times))
    sorting = sc.NumpySorting.from_samples_and_labels([kernel.times[order]], [kernel.unit_index[order]],
                                                       source.sampling_rate, unit_ids=np.arange(n_t))
    return InjectTemplatesRecording(sorting, dense, nbefore=before, amplitude_factor=kernel.gains[order],
                                    parent_recording=rec)


def lazy_path(recording) -> str:
    """Which way the lazy recording computes its windows (see results/lazy_hybrid.py)."""
    segment = recording._recording_segments[0]
    if segment.packed is None:
        return "numpy"
    return "compiled, mapped source" if segment.mapped is not None else "compiled, source reader"


def numpy_path(output_dir: Path):
    """The lazy recording forced onto the numpy engine: what it was before the compiled loop, and
    what users without numba get (same samples)."""
    from hybridkit.spikeinterface import lazy_hybrid

    recording = lazy_hybrid(output_dir)
    for segment in recording._recording_segments:
        segment.packed = segment.mapped = None
    return recording


def traverse(recording, chunk: int) -> float:
    """Seconds to read every sample of segment 0 with get_traces, ``chunk`` samples at a time."""
    n = recording.get_num_samples(0)
    t0 = time.perf_counter()
    for a in range(0, n, chunk):
        recording.get_traces(segment_index=0, start_frame=a, end_frame=min(a + chunk, n))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-s", type=float, nargs="+", default=[1.0])
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from hybridkit.spikeinterface import lazy_hybrid

    work = args.workdir or Path(tempfile.gettempdir()) / "hybridkit-bench"
    work.mkdir(parents=True, exist_ok=True)
    config = make_dataset(work / "dataset", args.duration, args.units, args.rate)
    out = generate_once(config, work / "si_out")
    lazy = lazy_hybrid(out)
    written = np.memmap(next(out.glob("*.GT.bin")), np.int16, "r").reshape(-1, lazy.get_num_channels())
    chunk = int(args.chunk_s[0] * lazy.sampling_frequency)
    for a in range(0, written.shape[0], chunk):  # every sample, outside the timing
        if not np.array_equal(lazy.get_traces(start_frame=a, end_frame=a + chunk), written[a:a + chunk]):
            raise SystemExit(f"lazy hybrid differs from {out} in samples [{a}, {a + chunk})")
    injected = si_injection(out)
    lazy_numpy = numpy_path(out)
    n_events = int(np.load(next(out.glob("templates-*.npz")))["plan_event_times"].size)

    load_before = os.getloadavg()
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):  # as generate runs
        for chunk_s in args.chunk_s:
            chunk = int(chunk_s * lazy.sampling_frequency)
            lazy_t, si_t, numpy_t = [], [], []
            for _ in range(args.repeat):
                lazy_t.append(traverse(lazy, chunk))
                si_t.append(traverse(injected, chunk))
                numpy_t.append(traverse(lazy_numpy, chunk))
            rows.append({"chunk_s": chunk_s, "lazy_s": min(lazy_t), "inject_templates_s": min(si_t),
                         "lazy_numpy_path_s": min(numpy_t),
                         "lazy_over_inject_templates": min(lazy_t) / min(si_t),
                         "lazy_numpy_path_over_inject_templates": min(numpy_t) / min(si_t),
                         "runs": {"lazy_s": [round(t, 3) for t in lazy_t],
                                  "inject_templates_s": [round(t, 3) for t in si_t],
                                  "lazy_numpy_path_s": [round(t, 3) for t in numpy_t]}})
    report = {
        "duration_s": args.duration, "channels": lazy.get_num_channels(), "events": n_events,
        "lazy_equals_generate": True, "lazy_path": lazy_path(lazy),
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "chunks": rows,
    }
    print(json.dumps(report, indent=2))
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "spikeinterface.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

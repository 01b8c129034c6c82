"""Benchmark drift-aware injection: template setup against SpikeInterface, generate with vs without drift.

Run:  python bench/bench_drift.py [--duration 20] [--range 60] [--grid 1] [--repeat 3]

On the example NP1.0 dataset (``--duration`` s, 384 channels + sync, int16), in one run:

* **setup per template**: the injected units' placed templates are precomputed at every
  displacement of a ``--range`` um span in ``--grid`` um steps along y (61 positions for 60 um),
  by hybridkit (engine/drift.py: ProbeDepthMover.variants, float32 sparse) and by SpikeInterface
  (``DriftingTemplates.from_static_templates(...).precompute_displacements(...)``, the setup of
  ``InjectDriftingTemplatesRecording``, dense over the 384 contacts, default cubic interpolation).
  Same units, same displacements. Target (issue 8): hybridkit >= 50 x faster.
* **generate throughput**: ``hybridkit generate`` (in-process, legacy writer) of the same config
  static and with a synthetic zigzag of +-range/2 um, best of ``--repeat``; MB/s of the source.

Prints a JSON report and writes bench/out/drift.json. Needs spikeinterface.
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


def make_config(example: Path, out: Path, motion: dict | None) -> Path:
    cfg = json.loads((example / "config.json").read_text())
    cfg["recording"]["path"] = str(example / cfg["recording"]["path"])
    cfg["sorting"]["path"] = str(example / cfg["sorting"]["path"])
    ids = np.unique(np.load(example / "kilosort4" / "spike_clusters.npy")).tolist()
    cfg["units"] = {"ids": ids[:10]}
    cfg["injection"]["placement"] = {"mode": "random", "min_distance_um": 40, "on_no_place": "skip"}
    cfg["engine"] = {"progress": False}
    cfg["output"] = {"directory": str(out), "overwrite": True}
    cfg["writers"] = [{"type": "legacy"}]
    if motion is not None:
        cfg["motion"] = motion
    path = out.parent / (out.name + ".json")
    path.write_text(json.dumps(cfg))
    return path


def generate_s(cfg_path: Path, repeat: int):
    from hybridkit.config.run_config import load_config
    from hybridkit.run.pipeline import generate

    best, result = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = generate(load_config(cfg_path))
        best = min(best, time.perf_counter() - t0)
    return best, result


def setup_hybridkit(units, rec, offsets: np.ndarray) -> tuple[float, int]:
    from hybridkit.engine.drift import ProbeDepthMover

    t0 = time.perf_counter()
    mover = ProbeDepthMover(rec.channel_positions, rec.neural)
    sets = [mover.variants(u.template, offsets) for u in units]
    return (time.perf_counter() - t0) / len(units), sum(v.nbytes for v in sets)


def setup_spikeinterface(units, rec, offsets: np.ndarray) -> tuple[float, int]:
    from probeinterface import Probe
    from spikeinterface.core import Templates
    from spikeinterface.generation import DriftingTemplates

    neural = rec.neural_channels
    col = {int(c): i for i, c in enumerate(neural)}
    n_times = max(u.template.n_times for u in units)
    dense = np.zeros((len(units), n_times, neural.size), np.float32)
    for k, u in enumerate(units):
        t = u.template
        dense[k, :t.n_times, [col[int(c)] for c in t.channels]] = t.waveform.T
    probe = Probe(ndim=2, si_units="um")
    probe.set_contacts(positions=rec.channel_positions[neural], shapes="square",
                       shape_params={"width": 12})
    probe.set_device_channel_indices(np.arange(neural.size))
    templates = Templates(templates_array=dense, sampling_frequency=rec.sampling_rate,
                          nbefore=units[0].template.peak_index, probe=probe, is_in_uV=True)
    displacements = np.c_[np.zeros(offsets.size), offsets]
    t0 = time.perf_counter()
    drifting = DriftingTemplates.from_static_templates(templates)
    drifting.precompute_displacements(displacements)
    return (time.perf_counter() - t0) / len(units), int(drifting.templates_array_moved.nbytes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=20.0, help="example recording length, s")
    ap.add_argument("--range", type=float, default=60.0, help="displacement span, um")
    ap.add_argument("--grid", type=float, default=1.0, help="grid step, um")
    ap.add_argument("--repeat", type=int, default=3, help="generate runs per variant (best kept)")
    args = ap.parse_args()
    from hybridkit.example import write_example

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        example = tmp / "demo"
        write_example(example, seed=5, duration_s=args.duration)
        half = args.range / 2
        motion = {"synthetic": [{"kind": "zigzag", "amplitude_um": half, "period_s": args.duration / 2}],
                  "grid_um": args.grid}
        static_cfg = make_config(example, tmp / "static", None)
        drift_cfg = make_config(example, tmp / "drift", motion)
        generate_s(static_cfg, 1)  # warm-up: imports and the page cache, for neither side
        static_s, drift_s = np.inf, np.inf
        for _ in range(args.repeat):  # alternate, so machine noise hits both alike
            s, static = generate_s(static_cfg, 1)
            d, drifting = generate_s(drift_cfg, 1)
            static_s, drift_s = min(static_s, s), min(drift_s, d)
        rec = static.truth.recording
        units = static.truth.plan.units
        k = int(round(half / args.grid))
        offsets = np.arange(-k, k + 1) * args.grid
        offsets[k] = 0.0
        hk_s, hk_bytes = min(setup_hybridkit(units, rec, offsets) for _ in range(args.repeat))
        si_s, si_bytes = setup_spikeinterface(units, rec, offsets)
        size_mb = sum(f.n_samples for f in rec.files) * rec.n_channels * rec.dtype.itemsize / 1e6
        plan = drifting.truth.plan
        report = {
            "recording": {"duration_s": args.duration, "channels": rec.n_channels, "MB": round(size_mb, 1)},
            "units": len(units), "displacements": int(offsets.size), "grid_um": args.grid,
            "setup_per_template_s": {"hybridkit": round(hk_s, 5), "spikeinterface": round(si_s, 4),
                                     "speedup": round(si_s / hk_s, 1)},
            "precomputed_MB": {"hybridkit_float32_sparse": round(hk_bytes / 1e6, 2),
                               "spikeinterface_dense": round(si_bytes / 1e6, 2)},
            "generate_s": {"static": round(static_s, 3), "drift": round(drift_s, 3),
                           "ratio": round(drift_s / static_s, 3)},
            "generate_MB_per_s": {"static": round(size_mb / static_s, 1), "drift": round(size_mb / drift_s, 1)},
            "drift_run": {"events": plan.n_events, "variants_used": int(len(np.unique(
                np.c_[plan.unit_index, plan.variant_index], axis=0))),
                "precomputed_MB": round(sum(u.variants.nbytes for u in plan.units
                                            if u.variants is not None) / 1e6, 2)},
        }
    print(json.dumps(report, indent=2))
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "drift.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

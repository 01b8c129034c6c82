"""Benchmark a fully synthetic drifting ground-truth recording: hybridkit against SpikeInterface.

Run:  python bench/bench_synthetic.py [--duration 30] [--units 20] [--repeat 2]

Both sides make the same thing, side by side in one process, best of ``--repeat``:
the NP1.0 probe (probeinterface's NP1000, its 384 readout channels), ``--duration`` s at 30 kHz,
``--units`` units firing ~5 Hz, noise 7 uV with 25 um spatial decay, a +-20 um zigzag drift,
written to a flat int16 binary on local disk.

* hybridkit: ``generate`` with the ``synthetic`` source, ``synthetic`` templates, ``motion`` and
  the legacy writer (the hybrid binary plus all ground-truth tables).
* SpikeInterface: ``spikeinterface.generation.generate_drifting_recording`` (its setup: probe,
  templates precomputed across the drift, trains) then ``write_binary_recording`` of the
  drifting recording (1 s chunks, one job, as hybridkit's one writer thread).

Reported: setup (s, until traces can be read), total (s), throughput (recorded seconds per wall
second). Prints JSON and writes bench/out/synthetic.json. Needs spikeinterface.
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


def hybridkit_run(tmp: Path, duration: float, units: int) -> dict:
    from hybridkit.config.run_config import load_config
    from hybridkit.plugins.sources.synthetic import build_probe  # noqa: F401 (import time out)
    from hybridkit.run.pipeline import generate

    cfg = {"seed": 1,
           "recording": {"type": "synthetic", "manufacturer": "imec", "model": "NP1000",
                         "duration_s": duration, "noise_uV": 7.0, "correlation_um": 25.0},
           "templates": {"type": "synthetic", "n_units": units},
           "injection": {"trains": {"mode": "poisson", "rate_hz": 5.0},
                         "placement": {"mode": "random", "min_distance_um": 20,
                                       "on_no_place": "skip"}},
           "motion": {"synthetic": [{"kind": "zigzag", "amplitude_um": 20,
                                     "period_s": duration / 2}]},
           "writers": [{"type": "legacy"}], "engine": {"progress": False},
           "output": {"directory": str(tmp / "hk"), "overwrite": True}}
    path = tmp / "hk.json"
    path.write_text(json.dumps(cfg))
    t0 = time.perf_counter()
    result = generate(load_config(path))
    total = time.perf_counter() - t0
    return {"total_s": total, "events": result.truth.plan.n_events,
            "units": len(result.truth.plan.units)}


def spikeinterface_run(tmp: Path, duration: float, units: int) -> dict:
    from probeinterface.neuropixels_tools import build_neuropixels_probe
    from spikeinterface.core import write_binary_recording
    from spikeinterface.generation import generate_drifting_recording

    t0 = time.perf_counter()
    probe = build_neuropixels_probe("NP1000").get_slice(np.arange(384))
    probe.set_device_channel_indices(np.arange(384))
    drifting, _static, sorting = generate_drifting_recording(
        num_units=units, duration=duration, probe=probe, seed=1,
        generate_sorting_kwargs={"firing_rates": (5.0, 5.0), "refractory_period_ms": 4.0},
        generate_noise_kwargs={"noise_levels": (7.0, 7.0), "spatial_decay": 25.0},
        generate_displacement_vector_kwargs={
            "displacement_sampling_frequency": 5.0, "drift_start_um": [0, 20],
            "drift_stop_um": [0, -20], "drift_step_um": 1,
            "motion_list": [{"drift_mode": "zigzag", "non_rigid_gradient": None,
                             "t_start_drift": 0.0, "t_end_drift": None,
                             "period_s": duration / 2}]})
    setup = time.perf_counter() - t0
    write_binary_recording(drifting, file_paths=[tmp / "si.bin"], dtype="float32",
                           chunk_duration="1s", n_jobs=1, progress_bar=False)
    total = time.perf_counter() - t0
    return {"setup_s": setup, "total_s": total, "spikes": int(sorting.count_total_num_spikes())}


def hybridkit_setup_s(duration: float, units: int) -> float:
    """hybridkit's setup: open the source, build the templates, plan with motion (no traces)."""
    from hybridkit.config.run_config import validate_config
    from hybridkit.hookspecs import RunContext
    from hybridkit.registry import get_registry
    from hybridkit.run.choosing import choose_and_place
    from hybridkit.run.pipeline import _drifting
    from hybridkit.run.planning import build_plan, stage_rngs

    data = {"seed": 1,
            "recording": {"type": "synthetic", "model": "NP1000", "duration_s": duration,
                          "noise_uV": 7.0, "correlation_um": 25.0},
            "templates": {"type": "synthetic", "n_units": units},
            "injection": {"trains": {"mode": "poisson", "rate_hz": 5.0},
                          "placement": {"mode": "random", "min_distance_um": 20,
                                        "on_no_place": "skip"}},
            "motion": {"synthetic": [{"kind": "zigzag", "amplitude_um": 20,
                                      "period_s": duration / 2}]}}
    t0 = time.perf_counter()
    cfg = validate_config(data, Path.cwd())
    reg, rngs = get_registry(), stage_rngs(1)
    ctx = RunContext(base_dir=Path.cwd(), rng=rngs["templates"], seed=1)
    rec = reg.get("source_reader", "synthetic")(cfg.recording, ctx).open()
    source = reg.get("template_source", "synthetic")(cfg.templates, ctx)
    choice = choose_and_place(cfg, rec, None, source, rngs, 1)
    plan, _ = build_plan(choice.bank, choice.unit_ids, rec, None, cfg.injection, rngs, 0,
                         placement=choice.placement)
    _drifting(plan, cfg.motion, rec, rngs["motion"])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    hk, si, hk_setup = [], [], []
    with tempfile.TemporaryDirectory() as d, threadpool_limits(limits=1, user_api="blas"):
        tmp = Path(d)
        for _ in range(args.repeat):  # alternated, so machine load hits both alike
            hk.append(hybridkit_run(tmp, args.duration, args.units))
            hk_setup.append(hybridkit_setup_s(args.duration, args.units))
            si.append(spikeinterface_run(tmp, args.duration, args.units))
    best_hk = min(hk, key=lambda r: r["total_s"])
    best_si = min(si, key=lambda r: r["total_s"])
    report = {
        "duration_s": args.duration, "units": args.units, "channels": 384,
        "hybridkit": {**best_hk, "setup_s": min(hk_setup),
                      "throughput_x_realtime": args.duration / best_hk["total_s"]},
        "spikeinterface": {**best_si, "setup_s": min(r["setup_s"] for r in si),
                           "throughput_x_realtime": args.duration / best_si["total_s"]},
    }
    report["speedup_total"] = best_si["total_s"] / best_hk["total_s"]
    report["speedup_setup"] = report["spikeinterface"]["setup_s"] / report["hybridkit"]["setup_s"]
    print(json.dumps(report, indent=2))
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "synthetic.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""The ground-truth tables of the ``legacy`` writer (see legacy.py for the file list).

Names and columns follow the predecessor (hybridfactory) so old scripts keep working; the content
is corrected: ``center_channel`` is per event and is the probe channel (file column) of the
injected template's peak, and times are exactly the injected samples.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model import GroundTruth


def _csv(path: Path, header: list[str], columns: list, fmts: list[str]) -> Path:
    """Write columns as CSV, formatting each column a block of rows at once (np.savetxt formats
    row by row, which takes seconds for the millions of rows of a long sorting's annotations).
    Blocks keep the formatted text, ~60 bytes per value as Python strings, bounded in memory."""
    n = len(columns[0]) if columns else 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(",".join(header) + "\n")
        for a in range(0, n, _CSV_BLOCK_ROWS):
            texts = [_format_column(col[a : a + _CSV_BLOCK_ROWS], fmt) for col, fmt in zip(columns, fmts)]
            fh.write("\n".join(map(",".join, zip(*texts))) + "\n")
    return path


#: rows formatted at a time by _csv
_CSV_BLOCK_ROWS = 10_000


def _format_column(col, fmt: str) -> list[str]:
    if fmt == "%d":
        return np.asarray(col, np.int64).astype(str).tolist()
    if fmt == "%s":
        return [str(v) for v in col]
    return np.char.mod(fmt, np.asarray(col, np.float64)).tolist()


def firings_true(truth: GroundTruth) -> np.ndarray:
    """3 x K uint64: [peak channel (file column), sample time, source unit id] per event, by time."""
    plan = truth.plan
    source_ids = np.array([u.source_unit_id for u in plan.units], np.int64)[plan.unit_index]
    return np.vstack([plan.event_channels(), plan.times, source_ids]).astype(np.uint64)


def write_tables(truth: GroundTruth, out: Path) -> list[Path]:
    plan, rec, s = truth.plan, truth.recording, truth.session
    files: list[Path] = []
    ft = firings_true(truth)
    np.save(out / "firings_true.npy", ft)
    files.append(out / "firings_true.npy")

    new_ids = np.array([u.new_unit_id for u in plan.units], np.int64)
    src_ids = np.array([u.source_unit_id for u in plan.units], np.int64)
    ev_new, ev_src, ev_ch = new_ids[plan.unit_index], src_ids[plan.unit_index], plan.event_channels()
    pos = plan.event_positions()  # per event: follows the drift when the units move
    files.append(_csv(out / f"artificial_units-{s}.csv",
                      ["timestep", "true_unit", "new_unit", "center_channel"],
                      [plan.times, ev_src, ev_new, ev_ch], ["%d"] * 4))
    files.append(_csv(out / f"hybrid_events-{s}.csv",
                      ["time_samples", "time_s", "new_unit", "source_unit", "channel", "x_um", "y_um", "gain"],
                      [plan.times, plan.times / rec.sampling_rate, ev_new, ev_src, ev_ch,
                       pos[:, 0], pos[:, 1], plan.gains],
                      ["%d", "%.9f", "%d", "%d", "%d", "%.3f", "%.3f", "%.6f"]))

    counts = np.bincount(plan.unit_index, minlength=len(plan.units))
    files.append(_csv(
        out / f"hybrid_units-{s}.csv",
        ["new_unit", "source_unit", "template_source", "peak_channel", "x_um", "y_um",
         "shift_x_um", "shift_y_um", "n_events", "peak_amplitude_uV", "n_channels", "n_template_spikes"],
        [new_ids, src_ids, [u.template.source for u in plan.units],
         [u.template.peak_channel for u in plan.units],
         [u.template.position[0] for u in plan.units], [u.template.position[1] for u in plan.units],
         [u.shift_um[0] for u in plan.units], [u.shift_um[1] for u in plan.units], counts,
         [u.template.peak_amplitude_uV for u in plan.units],
         [u.template.channels.size for u in plan.units], [u.template.n_spikes for u in plan.units]],
        ["%d", "%d", "%s", "%d", "%.3f", "%.3f", "%.3f", "%.3f", "%d", "%.3f", "%d", "%d"]))

    # the source sorting plus the hybrid spikes as new clusters, by time (template = cluster here)
    if truth.sorting is not None:
        t = np.concatenate([truth.sorting.spike_times, plan.times])
        c = np.concatenate([truth.sorting.spike_units, ev_new])
    else:
        t, c = plan.times, ev_new
    order = np.argsort(t, kind="stable")
    files.append(_csv(out / f"annotations-{s}.csv", ["timestep", "cluster", "template"],
                      [t[order], c[order], c[order]], ["%d"] * 3))

    files.append(_csv(out / f"metadata-{s}.csv", ["filename", "samples", "start_time"],
                      [[str(f.path) for f in rec.files], [f.n_samples for f in rec.files],
                       [f.first_sample for f in rec.files]], ["%s", "%d", "%d"]))
    nz = np.flatnonzero(truth.clipped_per_channel)
    files.append(_csv(out / f"clipped-{s}.csv", ["channel", "clipped_samples"],
                      [nz, truth.clipped_per_channel[nz]], ["%d", "%d"]))

    neural = rec.neural_channels
    np.savez(out / f"probe-{s}.npz", channel_map=neural, connected=np.ones(neural.size, bool),
             channel_positions=rec.channel_positions[neural],
             name=np.array(getattr(rec.probe, "model_name", "") or rec.name))
    files.append(out / f"probe-{s}.npz")
    if rec.probe is not None:
        from probeinterface import write_probeinterface

        write_probeinterface(out / f"probe-{s}.json", rec.probe)
        files.append(out / f"probe-{s}.json")
    # the predecessor stored the rate in the data dtype (a 40 kHz rate wraps in int16): kept for old
    # readers only; the exact rate is in manifest.json
    with np.errstate(over="ignore"):
        np.save(out / f"dtype-{s}.npy", np.array([rec.sampling_rate]).astype(rec.dtype))
    files.append(out / f"dtype-{s}.npy")

    arrays = {}
    for u in plan.units:
        k = f"unit{u.new_unit_id}"
        arrays[f"{k}_waveform_uV"] = u.template.waveform
        arrays[f"{k}_channels"] = u.template.channels
        arrays[f"{k}_peak_index"] = np.array(u.template.peak_index)
        arrays[f"{k}_source_unit"] = np.array(u.source_unit_id)
    np.savez(out / f"templates-{s}.npz", **arrays)
    files.append(out / f"templates-{s}.npz")
    files.append(_write_provenance(truth, out / f"templates-{s}.json"))
    return files


def _write_provenance(truth: GroundTruth, path: Path) -> Path:
    """Where each injected template came from (source unit, template source and its details:
    a database's dataset, row and unit id, a synthetic template's parameters, ...), by new unit id."""
    import json

    def plain(v):
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    units = {
        str(u.new_unit_id): {
            "source_unit": int(u.source_unit_id), "template_source": u.template.source,
            "peak_channel": int(u.template.peak_channel),
            "position_um": [float(x) for x in u.template.position],
            "shift_um": [float(x) for x in u.shift_um], "n_template_spikes": int(u.template.n_spikes),
            "provenance": plain(u.template.provenance),
        } for u in truth.plan.units}
    path.write_text(json.dumps({"session": truth.session, "units": units}, indent=2) + "\n",
                    encoding="utf-8")
    return path

"""The ground-truth tables of the ``legacy`` writer (see legacy.py for the file list).

Names and columns follow the predecessor (hybridfactory) so old scripts keep working; the content
is corrected: ``center_channel`` is per event and is the probe channel (file column) of the
injected template's peak, and times are exactly the injected samples.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridkit.errors import writing
from hybridkit.model import GroundTruth


def _csv(path: Path, header: list[str], columns: list, fmts: list[str]) -> Path:
    """Write columns as CSV, a block of :data:`_CSV_BLOCK_ROWS` rows at a time (bounded memory:
    the text of one block is held, not the whole table's)."""
    n = len(columns[0]) if columns else 0
    blocks = ([col[a : a + _CSV_BLOCK_ROWS] for col in columns] for a in range(0, n, _CSV_BLOCK_ROWS))
    return _csv_blocks(path, header, blocks, fmts)


def _csv_blocks(path: Path, header: list[str], blocks, fmts: list[str]) -> Path:
    """Write CSV rows given as ``blocks``: an iterable of column lists, one list per block.

    A block is formatted by one ``%`` over a flat tuple of its values, row by row in C: ~3x
    faster than numpy's column-wise ``astype(str)`` / ``np.char.mod`` (and np.savetxt is slower
    still), so the ~6 million annotation rows of an hour-long sorting take ~2 s. Values go
    through ``tolist()``, so they print as Python ints and floats do.
    """
    row = ",".join(fmts) + "\n"
    with writing(path), open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(",".join(header) + "\n")
        for columns in blocks:
            k = len(columns[0])
            if k == 0:
                continue
            flat: list = [None] * (k * len(columns))
            for i, col in enumerate(columns):  # interleaved: value j of column i at j * n_cols + i
                flat[i :: len(columns)] = col.tolist() if isinstance(col, np.ndarray) else list(col)
            fh.write((row * k) % tuple(flat))
    return path


#: rows formatted at a time by _csv and the annotations merge
_CSV_BLOCK_ROWS = 10_000


def merged_by_time(a_times: np.ndarray, a_units: np.ndarray, b_times: np.ndarray,
                   b_units: np.ndarray, block: int):
    """Yield (times, units) blocks of ``block`` rows: spikes ``a`` and ``b`` merged by time.

    The rows come in the order a stable sort of the concatenation ``[a, b]`` gives (at equal times
    ``a``'s spikes first, each list's own order kept), but the merged arrays are never built: a
    long sorting has millions of spikes, and a concatenation, its argsort and the sorted copies
    would take ~48 bytes per spike. Extra memory is one block plus (len(b),) positions. ``b_times``
    must be sorted (a Plan's times are); ``a`` is sorted (a copy) only if it is not already.
    """
    a_times, a_units = np.asarray(a_times, np.int64), np.asarray(a_units, np.int64)
    if a_times.size > 1 and np.any(a_times[1:] < a_times[:-1]):
        order = np.argsort(a_times, kind="stable")
        a_times, a_units = a_times[order], a_units[order]
    n = a_times.size + b_times.size
    # each b spike lands after every a spike at or before its time, and after the b spikes before it
    b_rows = np.searchsorted(a_times, b_times, side="right") + np.arange(b_times.size)
    for start in range(0, n, block):
        stop = min(start + block, n)
        j0, j1 = np.searchsorted(b_rows, [start, stop]).tolist()
        i0, i1 = start - j0, stop - j1  # the a rows of this block
        is_b = np.zeros(stop - start, bool)
        is_b[b_rows[j0:j1] - start] = True
        times, units = np.empty(stop - start, np.int64), np.empty(stop - start, np.int64)
        times[is_b], units[is_b] = b_times[j0:j1], b_units[j0:j1]
        times[~is_b], units[~is_b] = a_times[i0:i1], a_units[i0:i1]
        yield times, units


def firings_true(truth: GroundTruth) -> np.ndarray:
    """3 x K uint64: [peak channel (file column), sample time, source unit id] per event, by time."""
    plan = truth.plan
    source_ids = np.array([u.source_unit_id for u in plan.units], np.int64)[plan.unit_index]
    return np.vstack([plan.event_channels(), plan.times, source_ids]).astype(np.uint64)


def write_tables(truth: GroundTruth, out: Path) -> list[Path]:
    plan, rec, s = truth.plan, truth.recording, truth.session
    files: list[Path] = []
    ft = firings_true(truth)
    with writing(out / "firings_true.npy"):
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
    empty = np.zeros(0, np.int64)
    src_t, src_c = ((truth.sorting.spike_times, truth.sorting.spike_units)
                    if truth.sorting is not None else (empty, empty))
    files.append(_csv_blocks(out / f"annotations-{s}.csv", ["timestep", "cluster", "template"],
                             ([t, c, c] for t, c in merged_by_time(src_t, src_c, plan.times, ev_new,
                                                                    _CSV_BLOCK_ROWS)),
                             ["%d"] * 3))

    # file names, not paths: the output travels (no path of the machine that made it), as the
    # NWB writer's source.files; the guard keeps every source outside the output folder
    files.append(_csv(out / f"metadata-{s}.csv", ["filename", "samples", "start_time"],
                      [[f.path.name for f in rec.files], [f.n_samples for f in rec.files],
                       [f.first_sample for f in rec.files]], ["%s", "%d", "%d"]))
    nz = np.flatnonzero(truth.clipped_per_channel)
    files.append(_csv(out / f"clipped-{s}.csv", ["channel", "clipped_samples"],
                      [nz, truth.clipped_per_channel[nz]], ["%d", "%d"]))

    neural = rec.neural_channels
    with writing(out / f"probe-{s}.npz"):
        np.savez(out / f"probe-{s}.npz", channel_map=neural, connected=np.ones(neural.size, bool),
                 channel_positions=rec.channel_positions[neural],
                 name=np.array(getattr(rec.probe, "model_name", "") or rec.name))
    files.append(out / f"probe-{s}.npz")
    if rec.probe is not None:
        from probeinterface import write_probeinterface

        with writing(out / f"probe-{s}.json"):
            write_probeinterface(out / f"probe-{s}.json", rec.probe)
        files.append(out / f"probe-{s}.json")
    # the predecessor stored the rate in the data dtype (a 40 kHz rate wraps in int16): kept for old
    # readers only; the exact rate is in manifest.json
    with np.errstate(over="ignore"), writing(out / f"dtype-{s}.npy"):
        np.save(out / f"dtype-{s}.npy", np.array([rec.sampling_rate]).astype(rec.dtype))
    files.append(out / f"dtype-{s}.npy")

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
    with writing(path):
        path.write_text(json.dumps({"session": truth.session, "units": units}, indent=2) + "\n",
                        encoding="utf-8")
    return path

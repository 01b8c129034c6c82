"""``hybridkit units OUTPUT``: the injected units of a finished run, with the SNR the run stored.

One row per injected unit: its id, source unit, template source, peak channel (file column) and
place, the placed template's peak amplitude (uV, scale 1), the unit's mean amplitude scale, the
run's noise (uV) on the peak channel and the SNR (``amplitude_uV x mean_scale / noise_uV``,
:func:`hybridkit.engine.noise.injected_snr`), read back from the output, never re-measured: the
numbers the NWB units table, ``hybridkit report``, ``score`` and ``read_hybrid`` give.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hybridkit.results.truth import Truth, load_truth

#: the columns of the table, in order
COLUMNS = ("unit", "source_unit", "template_source", "peak_channel", "x_um", "y_um", "events",
           "amplitude_uV", "mean_scale", "noise_uV", "snr")


def is_output(path: Path) -> bool:
    """Whether ``path`` is the output folder of a ``generate`` run (it holds its manifest)."""
    return Path(path).is_dir() and (Path(path) / "manifest.json").is_file()


def injected_rows(truth: Truth) -> list[dict]:
    """The table's rows (see :data:`COLUMNS`); NaN where the output does not hold a value."""
    nan = float("nan")
    rows = []
    for u in truth.unit_ids.tolist():
        t = truth.templates.get(u)
        g = truth.gains[truth.units == u] if truth.gains is not None else None
        rows.append({
            "unit": u, "source_unit": truth.source_units.get(u),
            "template_source": truth.template_sources.get(u, ""),
            "peak_channel": t.peak_channel if t is not None else None,
            "x_um": float(t.position[0]) if t is not None else nan,
            "y_um": float(t.position[1]) if t is not None else nan,
            "events": int(np.count_nonzero(truth.units == u)),
            "amplitude_uV": t.peak_amplitude_uV if t is not None else nan,
            "mean_scale": float(g.astype(np.float64).mean()) if g is not None and g.size else nan,
            "noise_uV": truth.noise_uV.get(u, nan), "snr": truth.snr.get(u, nan),
        })
    return rows


def injected_units(output: str | Path) -> tuple[Truth, list[dict]]:
    """The ground truth of ``output`` (load_truth) and its injected units' rows."""
    truth = load_truth(output)
    return truth, injected_rows(truth)


def format_rows(rows: list[dict]) -> str:
    """The rows as aligned text columns; SNR and noise printed to 4 significant digits."""
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    table = [COLUMNS] + [tuple(cell(r[c]) for c in COLUMNS) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def write_csv(rows: list[dict], path: Path) -> Path:
    """The rows as CSV (full precision; empty cell where unknown)."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if r[c] is None or (isinstance(r[c], float) and math.isnan(r[c]))
                        else repr(r[c]) if isinstance(r[c], float) else r[c] for c in COLUMNS])
    return Path(path)

"""``hybridkit verify``: the ground-truth tables of an output against its exact plan.

Each table is compared with what the writer derives from the plan of ``templates-<session>.npz``
(:mod:`hybridkit.results.plan_file`): integers exactly, decimals to the precision the table prints
(``gain`` to 6 decimals: a change of 1e-6 is caught), arrays that store float32 bit for bit.
Tables a run did not write (another set of writers) are skipped; the names of those compared are
returned. Row numbers in discrepancies count data rows from 1 (the header is row 0).
"""
from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from hybridkit.errors import TruthError
from hybridkit.model import GroundTruth, Recording
from hybridkit.formats.nwb_layout import dense_waveforms, nwb_file_name
from hybridkit.formats.phy_layout import dense_templates
from hybridkit.results.verify import Findings, Planned


def _expected_events(planned: Planned) -> dict[str, np.ndarray]:
    """Per event (time order): what every table states about it."""
    plan = planned.plan
    new_ids = np.array([u.new_unit_id for u in plan.units], np.int64)
    src_ids = np.array([u.source_unit_id for u in plan.units], np.int64)
    pos = plan.event_positions()
    return {"time_samples": plan.times, "new_unit": new_ids[plan.unit_index],
            "source_unit": src_ids[plan.unit_index], "channel": plan.event_channels(),
            "time_s": plan.times / planned.sampling_rate, "x_um": pos[:, 0], "y_um": pos[:, 1],
            "gain": plan.gains.astype(np.float64)}


def _parse(texts: list[str]) -> np.ndarray:
    """float64 values of CSV cells; NaN where a cell is not a number."""
    try:
        return np.array(texts, dtype=np.float64)
    except ValueError:  # a bad cell somewhere: find it cell by cell
        out = np.full(len(texts), np.nan)
        for i, t in enumerate(texts):
            try:
                out[i] = float(t)
            except ValueError:
                pass
        return out


#: CSV rows compared at a time (the columns of a block are parsed and compared as arrays)
CSV_BLOCK_ROWS = 20_000


def _check_csv(path: Path, columns: dict[str, tuple[np.ndarray, float | None]], n: int,
               findings: Findings) -> None:
    """Stream ``path``'s rows against expected columns: name -> (values, tolerance, or None for
    an integer that must be exact), a block of rows at a time."""
    name = path.name
    rows = 0
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            if any(c not in header for c in columns):
                findings.add(name, "header", f"columns {list(columns)}", header)
                return
            at = {c: header.index(c) for c in columns}
            while True:
                block = list(itertools.islice(reader, CSV_BLOCK_ROWS))
                if not block:
                    break
                first, rows = rows, rows + len(block)
                k = max(0, min(len(block), n - first))  # rows past n are only counted
                for col, (values, tol) in columns.items():
                    texts = [r[at[col]] if at[col] < len(r) else "" for r in block[:k]]
                    got, want = _parse(texts), np.asarray(values[first:first + k], np.float64)
                    ok = got == want if tol is None else np.abs(got - want) <= tol
                    for i in np.flatnonzero(~ok).tolist():
                        findings.add(name, f"row {first + i + 1}, column {col}",
                                     int(want[i]) if tol is None else float(want[i]), texts[i])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TruthError(f"{path}: cannot read ({exc})") from None
    if rows != n:
        findings.add(name, "rows", n, rows)


def _check_array(name: str, found: np.ndarray, expected: np.ndarray, findings: Findings,
                 what: str = "entry") -> None:
    """Exact comparison; the first differing entries are reported by index."""
    found, expected = np.asarray(found), np.asarray(expected)
    if found.shape != expected.shape:
        findings.add(name, "shape", expected.shape, found.shape)
        return
    bad = np.argwhere(found != expected)
    for idx in bad[:20].tolist():
        where = ", ".join(str(i) for i in idx)
        findings.add(name, f"{what} [{where}]", expected[tuple(idx)].item(), found[tuple(idx)].item())
    findings.count += max(0, len(bad) - 20)


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TruthError(f"{path}: not a readable .npy ({exc})") from None


def check_clipped(folder: Path, session: str, manifest: dict, clipped: np.ndarray,
                  findings: Findings) -> None:
    """The re-derived saturated samples per channel against ``clipped-<session>.csv`` and the
    manifest's total."""
    total = manifest.get("clipped_samples")
    if total is not None and int(total) != int(clipped.sum()):
        findings.add("manifest.json", "clipped_samples", int(clipped.sum()), int(total))
    path = folder / f"clipped-{session}.csv"
    if path.is_file():
        nz = np.flatnonzero(clipped)
        _check_csv(path, {"channel": (nz, None), "clipped_samples": (clipped[nz], None)}, nz.size, findings)


def check_tables(folder: Path, cfg: dict, manifest: dict, planned: Planned, recording: Recording,
                 findings: Findings) -> list[str]:
    """Compare every ground-truth table of the output with the plan; return the names compared."""
    plan, session = planned.plan, str(manifest.get("session") or cfg.get("session") or "")
    ev = _expected_events(planned)
    n = plan.n_events
    done: list[str] = []
    for key, expected in (("injected_events", n), ("injected_units", len(plan.units))):
        if key in manifest and int(manifest[key]) != expected:
            findings.add("manifest.json", key, expected, manifest[key])
    if (folder / "firings_true.npy").is_file():
        ft = _npy(folder / "firings_true.npy")
        want = np.vstack([ev["channel"], ev["time_samples"], ev["source_unit"]]).astype(np.uint64)
        _check_array("firings_true.npy", ft, want, findings, "row, column")
        done.append("firings_true")
    events = folder / f"hybrid_events-{session}.csv"
    if events.is_file():
        # the tolerances are half the printed precision (+ float slack): a change in the last
        # printed digit is caught
        _check_csv(events, {"time_samples": (ev["time_samples"], None), "new_unit": (ev["new_unit"], None),
                            "source_unit": (ev["source_unit"], None), "channel": (ev["channel"], None),
                            "time_s": (ev["time_s"], 5.1e-10), "x_um": (ev["x_um"], 5.1e-4),
                            "y_um": (ev["y_um"], 5.1e-4), "gain": (ev["gain"], 5.1e-7)}, n, findings)
        done.append(events.name)
    artificial = folder / f"artificial_units-{session}.csv"
    if artificial.is_file():
        _check_csv(artificial, {"timestep": (ev["time_samples"], None), "true_unit": (ev["source_unit"], None),
                                "new_unit": (ev["new_unit"], None), "center_channel": (ev["channel"], None)},
                   n, findings)
        done.append(artificial.name)
    units = folder / f"hybrid_units-{session}.csv"
    if units.is_file():
        counts = np.bincount(plan.unit_index, minlength=len(plan.units))
        _check_csv(units, {"new_unit": (np.array([u.new_unit_id for u in plan.units]), None),
                           "source_unit": (np.array([u.source_unit_id for u in plan.units]), None),
                           "peak_channel": (np.array([u.template.peak_channel for u in plan.units]), None),
                           "n_events": (counts, None)}, len(plan.units), findings)
        done.append(units.name)
    for w in cfg.get("writers", []):
        if w.get("type") == "phy":
            done.append(_check_phy(folder / w.get("folder", "phy"), folder, planned, recording, findings))
        if w.get("type") == "nwb":
            path = folder / nwb_file_name(w.get("file_name"), session)
            done.append(_check_nwb_units(path, folder, planned, recording, findings))
    return done


def _check_phy(phy: Path, folder: Path, planned: Planned, recording: Recording, findings: Findings) -> str:
    """spike_times/clusters/templates, amplitudes (the gains, float32) and templates.npy (the
    placed templates, dense over the neural channels) against the plan."""
    from hybridkit.formats.phy_files import read_cluster_tsv

    plan = planned.plan
    rel = phy.relative_to(folder).as_posix()
    ids = np.array([u.new_unit_id for u in plan.units], np.int64)
    neural = recording.neural_channels
    expected = {
        "spike_times.npy": plan.times, "spike_clusters.npy": ids[plan.unit_index],
        "spike_templates.npy": plan.unit_index, "amplitudes.npy": plan.gains,
        "channel_map.npy": neural, "templates.npy": dense_templates(plan.units, neural)[0],
    }
    for name, want in expected.items():
        path = phy / name
        if not path.is_file():
            findings.add(f"{rel}/{name}", "file", "present", "missing")
            continue
        found = _npy(path)
        if name != "templates.npy":
            found = found.ravel()
        _check_array(f"{rel}/{name}", found, want, findings,
                     "unit, sample, channel" if name == "templates.npy" else "spike")
    tsv = phy / "cluster_source_unit.tsv"
    if tsv.is_file():
        src = read_cluster_tsv(tsv)
        for u in plan.units:
            if str(src.get(u.new_unit_id)) != str(u.source_unit_id):
                findings.add(f"{rel}/cluster_source_unit.tsv", f"cluster {u.new_unit_id}",
                             u.source_unit_id, src.get(u.new_unit_id))
    return rel + "/"


def _check_nwb_units(path: Path, folder: Path, planned: Planned, recording: Recording,
                     findings: Findings) -> str:
    """The NWB units table: ids, spike_times (samples / rate, exactly), amplitude_scale (the
    gains), source_unit and waveform_mean (the placed templates in volts, bit for bit)."""
    import h5py


    plan = planned.plan
    name = path.name
    if not path.is_file():
        findings.add(name, "file", "present", "missing")
        return name
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TruthError(f"{path}: not a readable NWB (HDF5) file ({exc})") from None
    with f:
        units = next((f[k] for k in ("units", "processing/ecephys/units") if k in f), None)
        if units is None:
            findings.add(name, "units table", "/units or /processing/ecephys/units", "none")
            return name
        where = units.name.lstrip("/")
        _check_array(f"{name}:{where}/id", units["id"][()],
                     np.array([u.new_unit_id for u in plan.units], np.int64), findings, "row")
        bounds = np.concatenate([[0], units["spike_times_index"][()]]).astype(np.int64)
        times, gains = units["spike_times"][()], units["amplitude_scale"][()]
        for k, u in enumerate(plan.units):
            mine = plan.unit_index == k
            a, b = (int(bounds[k]), int(bounds[k + 1])) if k + 1 < bounds.size else (0, 0)
            _check_array(f"{name}:{where}/spike_times (unit {u.new_unit_id})", times[a:b],
                         plan.times[mine] / planned.sampling_rate, findings, "spike")
            _check_array(f"{name}:{where}/amplitude_scale (unit {u.new_unit_id})", gains[a:b],
                         plan.gains[mine].astype(np.float64), findings, "spike")
        src = [v.decode() if isinstance(v, bytes) else str(v) for v in units["source_unit"][()]]
        _check_array(f"{name}:{where}/source_unit", np.array(src),
                     np.array([str(u.source_unit_id) for u in plan.units]), findings, "row")
        truth = GroundTruth(plan=plan, recording=recording,
                            clipped_per_channel=np.zeros(recording.n_channels, np.int64))
        _check_array(f"{name}:{where}/waveform_mean", units["waveform_mean"][()],
                     dense_waveforms(truth)[0], findings, "unit, sample, electrode")
    return name

"""Read back the ground truth that ``generate`` wrote, from any writer's output.

:func:`load_truth` accepts

* an output folder with the ``legacy`` writer's files (``hybrid_events-<session>.csv``,
  ``hybrid_units-<session>.csv``, ``templates-<session>.npz``, ``probe-<session>.npz``,
  ``clipped-<session>.csv``; ``firings_true.npy`` alone is enough for times and units), with the
  sampling rate from ``manifest.json`` (else the phy folder's ``params.py``);
* the ``phy`` writer's folder (``spike_times.npy``, ``spike_clusters.npy``, ``amplitudes.npy``,
  ``templates.npy``, ``cluster_source_unit.tsv``, ``params.py``), or an output folder holding one;
* an NWB file (or a folder holding exactly one ``.nwb``) whose ``/units`` table (or
  ``processing/ecephys/units``) is the ground truth: spike_times in seconds, ``gt_unit_id``,
  ``is_injected``, ``template_source``, ``waveform_mean`` in volts (see docs/outputs.md).

The hybrid traces themselves are opened by :func:`hybridkit.results.traces.open_traces`.
"""
from __future__ import annotations

import csv
import json
import logging
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybridkit.errors import TruthError
from hybridkit.model import Template

log = logging.getLogger(__name__)


@dataclass
class Truth:
    """Ground truth as read back from an output.

    Attributes:
        times: (n_events,) int64 samples (0-based, hybrid recording's clock), sorted.
        units: (n_events,) int64 ground-truth (injected, "new") unit id of each event.
        unit_ids: (n_units,) int64 sorted ids of the injected units.
        sampling_rate: Hz.
        gains: (n_events,) float32 amplitude scale of each event, or None.
        source_units: new unit id -> source unit id.
        templates: new unit id -> the placed Template (uV, sparse channels), where known.
        shifts_um: new unit id -> (2,) displacement from the source unit's place, where known.
        channel_positions: (n_channels, 2) um by channel (file column; NWB: electrode row), NaN
            where no contact; or None.
        clipped: channel -> clipped samples (empty when none), or None when unknown.
        n_samples: samples in the hybrid recording, or None.
        source_trains: source unit id -> int64 samples of that unit's own spikes in the source
            sorting (the legacy ``annotations-<session>.csv``), for the injected units' sources;
            None when the output does not hold the source sorting (phy, NWB).
        template_sources: new unit id -> the template source that made its template ("local":
            a source unit of the sorting; "template_database", "synthetic": no source unit, the
            source id is the template's id there), where known.
        event_positions: (n_events, 2) um, each event's injected place (x, y), which follows the
            probe's motion in a drift run (legacy ``hybrid_events`` table); or None.
        snr: new unit id -> the SNR the run stored (:func:`hybridkit.engine.noise.injected_snr`:
            plan file ``plan_unit_snr``, NWB units ``snr``); empty for outputs of older versions.
        noise_uV: new unit id -> the run's noise (uV) on the unit's peak channel, stored likewise.
    """

    times: np.ndarray
    units: np.ndarray
    unit_ids: np.ndarray
    sampling_rate: float
    gains: np.ndarray | None = None
    source_units: dict[int, int] = field(default_factory=dict)
    templates: dict[int, Template] = field(default_factory=dict)
    shifts_um: dict[int, np.ndarray] = field(default_factory=dict)
    channel_positions: np.ndarray | None = None
    clipped: dict[int, int] | None = None
    n_samples: int | None = None
    session: str = ""
    format: str = ""
    path: Path = Path(".")
    folder: Path = Path(".")
    #: a streamed NWB (URL or dandi:// asset): its name, the bytes fetched and the file's size
    remote: str | None = None
    bytes_fetched: int | None = None
    file_bytes: int | None = None
    source_trains: dict[int, np.ndarray] | None = None
    template_sources: dict[int, str] = field(default_factory=dict)
    event_positions: np.ndarray | None = None
    snr: dict[int, float] = field(default_factory=dict)
    noise_uV: dict[int, float] = field(default_factory=dict)

    def times_of(self, unit_id: int) -> np.ndarray:
        return self.times[self.units == unit_id]


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise TruthError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TruthError(f"{path}: not a readable UTF-8 CSV table ({exc}); the output is damaged") from None


def _column(rows: list[dict], name: str, path: Path, dtype=float) -> np.ndarray:
    try:
        return np.array([dtype(float(r[name])) if dtype is int else dtype(r[name]) for r in rows])
    except KeyError:
        raise TruthError(f"{path}: no column {name!r}; columns are {list(rows[0]) if rows else []}") from None
    except ValueError as exc:
        raise TruthError(f"{path}: column {name!r}: {exc}") from None


def _one(folder: Path, pattern: str, session: str = "") -> Path | None:
    hits = sorted(folder.glob(pattern))
    if session:
        exact = [h for h in hits if h.stem.endswith(f"-{session}")]
        hits = exact or hits
    if len(hits) > 1:
        raise TruthError(f"{folder}: several files match {pattern} ({', '.join(h.name for h in hits)}); "
                         "keep one session per output folder")
    return hits[0] if hits else None


def read_json(path: Path) -> dict:
    """A run's JSON file (manifest, resolved config) as a dict; {} when absent; TruthError when unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError, RecursionError) as exc:
        raise TruthError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TruthError(f"{path}: holds a JSON {type(data).__name__}, not an object; the output is damaged")
    return data


def _npy(path: Path) -> np.ndarray:
    from hybridkit.formats.npy import read_npy

    return read_npy(path, TruthError)


@contextmanager
def _reading(path: Path):
    """Reading one output file: a damaged one (a bad .npz member, a missing column, text where a
    number belongs) is a TruthError naming it."""
    try:
        yield
    except TruthError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ValueError) and "pickled" in str(exc):
            # numpy's own advice here is to unpickle the file, which could run code: not that
            raise TruthError(f"{path}: not a numeric .npz/.npy file (numpy would have to unpickle "
                             "it, which hybridkit never does); the output is damaged") from None
        raise TruthError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); the output is "
                         "damaged or was not written by hybridkit") from None


# -- legacy ------------------------------------------------------------------------------------------
def _load_legacy(folder: Path) -> Truth:
    manifest = read_json(folder / "manifest.json")
    session = str(manifest.get("session") or read_json(folder / "config.resolved.json").get("session") or "")
    rate = manifest.get("sampling_rate_hz")
    if rate is None and (folder / "phy" / "params.py").is_file():
        from hybridkit.formats.phy_files import read_params_py

        rate = read_params_py(folder / "phy" / "params.py").get("sample_rate")
    n_samples = sum(int(s.get("n_samples", 0)) for s in manifest.get("sources", [])) or None

    events = _one(folder, "hybrid_events-*.csv", session)
    gains = event_pos = None
    source_units: dict[int, int] = {}
    if events is not None:
        rows = _read_csv(events)
        times = _column(rows, "time_samples", events, int).astype(np.int64)
        if rows and "x_um" in rows[0] and "y_um" in rows[0]:
            event_pos = np.c_[_column(rows, "x_um", events), _column(rows, "y_um", events)]
        units = _column(rows, "new_unit", events, int).astype(np.int64)
        gains = _column(rows, "gain", events).astype(np.float32)
        src = _column(rows, "source_unit", events, int).astype(np.int64)
        source_units = {int(u): int(s) for u, s in zip(units, src)}
        if rate is None and rows:
            t_s = _column(rows, "time_s", events)
            k = int(np.argmax(times))
            rate = float(times[k] / t_s[k]) if t_s[k] > 0 else None
    else:
        ft = _npy(folder / "firings_true.npy")
        if ft.ndim != 2 or ft.shape[0] != 3:
            raise TruthError(f"{folder / 'firings_true.npy'}: shape {ft.shape}, expected (3, n_events)")
        times, units = ft[1].astype(np.int64), ft[2].astype(np.int64)  # source ids stand for units
        source_units = {int(u): int(u) for u in np.unique(units)}
    if rate is None:
        raise TruthError(f"{folder}: no sampling rate (manifest.json sampling_rate_hz is missing and "
                         "there is no phy/params.py); cannot convert the tolerance to samples")

    unit_ids = np.unique(units)
    shifts: dict[int, np.ndarray] = {}
    template_sources: dict[int, str] = {}
    table = _one(folder, "hybrid_units-*.csv", session)
    if table is not None:
        with _reading(table):
            rows = _read_csv(table)
            for r in rows:
                u = int(r["new_unit"])
                source_units[u] = int(r["source_unit"])
                if r.get("template_source"):
                    template_sources[u] = r["template_source"]
                shifts[u] = np.array([float(r["shift_x_um"]), float(r["shift_y_um"])])
        unit_ids = np.union1d(unit_ids, np.array(list(shifts), np.int64))

    templates: dict[int, Template] = {}
    npz = _one(folder, "templates-*.npz", session)
    positions = None
    probe = _one(folder, "probe-*.npz", session)
    if probe is not None:
        with _reading(probe), np.load(probe, allow_pickle=False) as p:
            cmap = np.asarray(p["channel_map"], np.int64)
            n_ch = int(manifest.get("n_channels") or (cmap.max() + 1 if cmap.size else 0))
            positions = np.full((n_ch, 2), np.nan)
            positions[cmap] = np.asarray(p["channel_positions"], float)[:, :2]
    snr: dict[int, float] = {}
    noise: dict[int, float] = {}
    if npz is not None:
        snr, noise = _stored_snr(npz)
        with _reading(npz), np.load(npz, allow_pickle=False) as z:
            for u in unit_ids.tolist():
                key = f"unit{u}"
                if f"{key}_waveform_uV" not in z:
                    continue
                wf, ch = z[f"{key}_waveform_uV"], np.asarray(z[f"{key}_channels"], np.int64)
                peak = int(ch[np.argmax(np.abs(wf).max(axis=0))]) if wf.size else -1
                pos = positions[peak] if positions is not None and 0 <= peak < len(positions) else np.full(2, np.nan)
                templates[u] = Template(unit_id=u, waveform=wf, channels=ch,
                                        peak_index=int(z[f"{key}_peak_index"]), peak_channel=peak,
                                        position=pos, source="legacy")
    clipped = None
    cpath = _one(folder, "clipped-*.csv", session)
    if cpath is not None:
        with _reading(cpath):
            clipped = {int(r["channel"]): int(r["clipped_samples"]) for r in _read_csv(cpath)}
    order = np.argsort(times, kind="stable")
    annotations = _one(folder, "annotations-*.csv", session)
    source_trains = None
    if annotations is not None:
        source_trains = _source_trains(annotations, set(source_units.values()) - set(unit_ids.tolist()))
    return Truth(times=times[order], units=units[order], unit_ids=unit_ids, sampling_rate=float(rate),
                 gains=None if gains is None else gains[order], source_units=source_units,
                 templates=templates, shifts_um=shifts, channel_positions=positions, clipped=clipped,
                 n_samples=n_samples, session=session, format="legacy", path=folder, folder=folder,
                 source_trains=source_trains, template_sources=template_sources,
                 event_positions=None if event_pos is None else event_pos[order], snr=snr,
                 noise_uV=noise)


def _stored_snr(npz: Path) -> tuple[dict[int, float], dict[int, float]]:
    """(new unit id -> SNR, -> noise uV) as the run stored them in its plan file; empty when the
    file predates them."""
    with _reading(npz), np.load(npz, allow_pickle=False) as z:
        if "plan_unit_snr" not in z.files or "plan_unit_ids" not in z.files:
            return {}, {}
        ids = z["plan_unit_ids"].tolist()
        return (dict(zip(ids, z["plan_unit_snr"].astype(float).tolist())),
                dict(zip(ids, z["plan_unit_noise_uV"].astype(float).tolist())))


def _source_trains(path: Path, sources: set[int]) -> dict[int, np.ndarray]:
    """The spikes of the ``sources`` clusters in a legacy annotations table (timestep, cluster, ...).

    The table is the source sorting merged with the injected events, whose new ids never equal a
    source cluster's, so a source id's rows are that unit's own spikes.
    """
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1), dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise TruthError(f"{path}: not a readable annotations table ({exc})") from None
    return {u: table[table[:, 1] == u, 0] for u in sorted(sources)}


# -- phy ---------------------------------------------------------------------------------------------
def _load_phy(folder: Path) -> Truth:
    from hybridkit.formats.phy_files import read_cluster_tsv, read_params_py

    params = read_params_py(folder / "params.py") if (folder / "params.py").is_file() else {}
    if "sample_rate" not in params:
        raise TruthError(f"{folder / 'params.py'}: no sample_rate; the phy folder's rate is needed")
    times = _npy(folder / "spike_times.npy").ravel().astype(np.int64)
    clusters = _npy(folder / "spike_clusters.npy").ravel().astype(np.int64)
    rows = _npy(folder / "spike_templates.npy").ravel().astype(np.int64) \
        if (folder / "spike_templates.npy").is_file() else None
    if clusters.size != times.size:
        raise TruthError(f"{folder}: spike_clusters.npy has {clusters.size} entries, spike_times.npy {times.size}")
    gains = _npy(folder / "amplitudes.npy").ravel().astype(np.float32) \
        if (folder / "amplitudes.npy").is_file() else None
    src = read_cluster_tsv(folder / "cluster_source_unit.tsv") \
        if (folder / "cluster_source_unit.tsv").is_file() else {}
    unit_ids = np.unique(clusters)
    positions = None
    if (folder / "channel_map.npy").is_file() and (folder / "channel_positions.npy").is_file():
        cmap = _npy(folder / "channel_map.npy").ravel().astype(np.int64)
        n_ch = int(params.get("n_channels_dat") or cmap.max() + 1)
        positions = np.full((n_ch, 2), np.nan)
        positions[cmap] = _npy(folder / "channel_positions.npy")[:, :2]
    templates: dict[int, Template] = {}
    if rows is not None and (folder / "templates.npy").is_file() and positions is not None:
        dense = _npy(folder / "templates.npy")
        for u in unit_ids.tolist():
            k = np.unique(rows[clusters == u])
            if k.size != 1 or k[0] >= dense.shape[0]:
                continue
            wf = dense[k[0]]
            keep = np.flatnonzero(np.abs(wf).max(axis=0) > 0)
            if keep.size == 0:
                continue
            peak_col = keep[np.argmax(np.abs(wf[:, keep]).max(axis=0))]
            # the writer pads templates so all peaks share one sample, which it does not record:
            # take the extremum of the peak channel
            peak_index = int(np.argmax(np.abs(wf[:, peak_col])))
            templates[u] = Template(unit_id=u, waveform=wf[:, keep], channels=cmap[keep],
                                    peak_index=peak_index, peak_channel=int(cmap[peak_col]),
                                    position=positions[cmap[peak_col]], source="phy")
    order = np.argsort(times, kind="stable")
    # the phy writer's folder sits in the run's output folder, beside the plan file
    npz = _one(folder.parent, "templates-*.npz") if (folder.parent / "manifest.json").is_file() else None
    snr, noise = _stored_snr(npz) if npz is not None else ({}, {})
    return Truth(times=times[order], units=clusters[order], unit_ids=unit_ids,
                 snr=snr, noise_uV=noise, sampling_rate=float(params["sample_rate"]),
                 gains=None if gains is None else gains[order],
                 source_units={int(k): int(v) for k, v in src.items()}, templates=templates,
                 channel_positions=positions, format="phy", path=folder, folder=folder.parent)


# -- NWB ---------------------------------------------------------------------------------------------
def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _ragged(group, name: str) -> list[np.ndarray]:
    data, index = group[name][()], group[f"{name}_index"][()]
    return np.split(data, index[:-1].astype(np.int64)) if index.size else []


def _load_nwb(path: Path) -> Truth:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TruthError(f"{path}: not a readable NWB (HDF5) file ({exc})") from None
    with f:
        return _read_nwb(f, path)


def _load_remote_nwb(name: str) -> Truth:
    """The truth of a hybrid NWB at an http(s) URL or a ``dandi://`` asset, streamed: only the
    Units table (and the HDF5 metadata) is fetched, never the traces."""
    from hybridkit.publish.remote import open_hybrid_nwb

    handle = open_hybrid_nwb(name, "HYBRID")
    try:
        truth = _read_nwb(handle.h5, Path(name.split("?")[0].rsplit("/", 1)[-1]))
        truth.bytes_fetched, truth.file_bytes = handle.bytes_fetched, handle.size
    finally:
        handle.close()
    truth.path, truth.folder, truth.remote = Path(name.split("?")[0].rsplit("/", 1)[-1]), Path.cwd(), name
    return truth


def _read_nwb(f, path: Path) -> Truth:
    """The ground truth in an open NWB file (``path`` names it in messages)."""
    import h5py

    units = next((f[k] for k in ("units", "processing/ecephys/units") if k in f), None)
    if units is None or "spike_times" not in units:
        raise TruthError(f"{path}: no units table with spike_times (looked in /units and "
                         "/processing/ecephys/units)")
    ids = units["id"][()].astype(np.int64)
    n = ids.size
    rate = None
    if "resolution" in units["spike_times"].attrs:
        res = float(units["spike_times"].attrs["resolution"])
        rate = 1.0 / res if res > 0 else None
    series = [g for g in f.get("acquisition", {}).values()
              if isinstance(g, h5py.Group) and "data" in g and "starting_time" in g]
    start = 0.0  # the source's start: spike_times are start + samples / rate
    if series:
        rate = float(series[0]["starting_time"].attrs["rate"])
        start = float(series[0]["starting_time"][()])
    elif "general/notes" in f:
        try:
            start = float(json.loads(f["general/notes"][()])["hybridkit"].get("start_time_s", 0.0))
        except (ValueError, KeyError, TypeError, AttributeError):
            start = 0.0
    if rate is None and "waveform_mean" in units:
        rate = float(units["waveform_mean"].attrs.get("sampling_rate", 0)) or None
    if rate is None:
        raise TruthError(f"{path}: no sampling rate (units resolution, ElectricalSeries rate)")
    injected = units["is_injected"][()].astype(bool) if "is_injected" in units else np.ones(n, bool)
    gt_ids = ids.copy()
    if "gt_unit_id" in units:
        raw = [_str(v) for v in units["gt_unit_id"][()]]
        try:
            gt_ids = np.array([int(v) for v in raw], np.int64)
        except ValueError:
            log.info("%s: gt_unit_id values are not integers; using the units table ids", path)
    trains = _ragged(units, "spike_times")
    times = [np.rint((np.asarray(t, float) - start) * rate).astype(np.int64) for t in trains]
    gains = None
    if "amplitude_scale" in units and "amplitude_scale_index" in units:
        gains = [np.asarray(g, np.float32) for g in _ragged(units, "amplitude_scale")]
    shifts = {}
    if "shift_um_x" in units and "shift_um_y" in units:
        shifts = {int(g): np.array([x, y], float) for g, x, y in
                  zip(gt_ids, units["shift_um_x"][()], units["shift_um_y"][()])}
    src = {}
    if "source_unit" in units or "source_unit_id" in units:
        col = units["source_unit" if "source_unit" in units else "source_unit_id"][()]
        src = {int(g): int(_str(s)) for g, s in zip(gt_ids, col) if _str(s).lstrip("-").isdigit()}
    tsrc = {}
    if "template_source" in units:
        tsrc = {int(g): _str(v) for g, v in zip(gt_ids, units["template_source"][()]) if _str(v)}
    positions = None
    electrodes = f.get("general/extracellular_ephys/electrodes")
    if electrodes is not None and "rel_x" in electrodes and "rel_y" in electrodes:
        positions = np.c_[electrodes["rel_x"][()], electrodes["rel_y"][()]].astype(float)
    templates: dict[int, Template] = {}
    if "waveform_mean" in units and positions is not None:
        wm = units["waveform_mean"]
        before_ms = units.attrs.get("waveform_time_before_peak_in_ms", wm.attrs.get("time_before_peak_in_ms"))
        scale = 1e6 if _str(wm.attrs.get("unit", "volts")) == "volts" else 1.0
        chans = _ragged(units, "electrodes") if "electrodes_index" in units else None
        wave_rate = float(wm.attrs.get("sampling_rate", rate))
        for k in range(n):
            if not injected[k]:
                continue
            wf = np.asarray(wm[k], np.float32) * scale  # (samples, electrodes)
            ch = np.asarray(chans[k], np.int64) if chans is not None else \
                np.flatnonzero(np.abs(wf).max(axis=0) > 0)
            wf = wf[:, ch] if wf.shape[1] == positions.shape[0] else wf[:, : ch.size]
            if wf.size == 0:
                continue
            peak = int(ch[np.argmax(np.abs(wf).max(axis=0))])
            pidx = int(round(float(before_ms) * wave_rate / 1000)) if before_ms is not None \
                else int(np.argmax(np.abs(wf).max(axis=1)))
            templates[int(gt_ids[k])] = Template(unit_id=int(gt_ids[k]), waveform=wf, channels=ch,
                                                 peak_index=pidx, peak_channel=peak,
                                                 position=positions[peak], source="nwb")
    keep = [k for k in range(n) if injected[k]]
    stored = {}
    for col in ("snr", "noise_uv"):
        if col in units:
            stored[col] = {int(gt_ids[k]): float(v) for k, v in enumerate(units[col][()]) if injected[k]}
    t = np.concatenate([times[k] for k in keep]) if keep else np.zeros(0, np.int64)
    u = np.concatenate([np.full(times[k].size, gt_ids[k]) for k in keep]) if keep else np.zeros(0, np.int64)
    g = np.concatenate([gains[k] for k in keep]) if keep and gains is not None else None
    order = np.argsort(t, kind="stable")
    return Truth(times=t[order], units=u[order].astype(np.int64), unit_ids=np.unique(gt_ids[keep]),
                 sampling_rate=float(rate), gains=None if g is None else g[order], source_units=src,
                 templates=templates, shifts_um={k: v for k, v in shifts.items() if k in set(gt_ids[keep].tolist())},
                 channel_positions=positions, format="nwb", path=path, folder=path.parent,
                 template_sources={k: v for k, v in tsrc.items() if k in set(gt_ids[keep].tolist())},
                 snr=stored.get("snr", {}), noise_uV=stored.get("noise_uv", {}))


# -- entry points ------------------------------------------------------------------------------------
def _nwb_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.nwb") if p.is_file())


def load_truth(path: str | Path) -> Truth:
    """Read the ground truth from an output folder, a phy writer folder or an NWB file (a path,
    an http(s) URL or a ``dandi://INSTANCE/DANDISET[@VERSION]/PATH`` asset, streamed).

    Raises TruthError (one line, naming the path and what was looked for) when nothing is found.
    """
    if str(path).lower().startswith(("http://", "https://", "dandi://")):
        return _load_remote_nwb(str(path))
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise TruthError(f"{path}: does not exist; give the output folder of `hybridkit generate` "
                         "(or its phy folder, or its .nwb file)")
    if path.is_file():
        if path.suffix == ".nwb":
            return _load_nwb(path)
        raise TruthError(f"{path}: not an output folder or an .nwb file")
    if _one(path, "hybrid_events-*.csv") is not None or (path / "firings_true.npy").is_file():
        with _reading(path):  # what no single file's reader caught (a value of the wrong kind)
            return _load_legacy(path)
    for phy in (path, path / "phy"):
        if (phy / "spike_times.npy").is_file() and (phy / "spike_clusters.npy").is_file():
            with _reading(phy):
                return _load_phy(phy)
    nwbs = _nwb_files(path)
    if len(nwbs) == 1:
        return _load_nwb(nwbs[0])
    raise TruthError(
        f"{path}: no ground truth found (looked for hybrid_events-*.csv / firings_true.npy, a phy "
        f"folder with spike_times.npy, or one .nwb file{'; found several .nwb' if nwbs else ''})")

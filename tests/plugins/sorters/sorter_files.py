"""Write sorter outputs in the formats hybridkit reads, with the writers those files come from.

No public rez.mat or JRCLUST samples exist, so the tests build them to the layouts the sorters save:

* MATLAB v7.3 (what KiloSort's ``save(..., '-v7.3')`` and JRCLUST's ``saveStruct`` write) with
  hdf5storage in MATLAB mode without Python metadata: HDF5 with ``MATLAB_class`` attributes,
  arrays transposed on disk, empties as dims vectors with ``MATLAB_empty``, a 512-byte MATLAB header.
* MATLAB v5 (a user re-saving) with ``scipy.io.savemat``.

Every writer takes hybridkit's conventions (0-based samples and ids) and converts to the format's
own base in one visible place, so a test reads: "spikes in -> same spikes out".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def savemat(path: Path, variables: dict, version: str = "7.3") -> Path:
    """Write ``variables`` (nested dicts become structs) as a MATLAB v7.3 or v5 file."""
    if version == "7.3":
        import hdf5storage

        hdf5storage.savemat(str(path), variables, format="7.3", matlab_compatible=True,
                            store_python_metadata=False, truncate_existing=True)
    else:
        import scipy.io

        scipy.io.savemat(str(path), variables, format="5")
    return Path(path)


def col(values, dtype=np.float64) -> np.ndarray:
    """A MATLAB column vector (N x 1), as MATLAB stores nSpikes x 1 data."""
    return np.asarray(values, dtype=dtype).reshape(-1, 1)


# -- KiloSort rez.mat (KiloSort 1-3) ---------------------------------------------------------------
def rez_dict(times, unit_ids, *, fs: float, n_total: int, chan_map0, xc, yc, templates=None,
             good=None, amplitudes=None) -> dict:
    """A KiloSort 2.x-style rez (ops.igood present, st3 with 5 columns: col 5 = batch).

    ``times``: 0-based samples -> st3(:,1) unchanged (rezToPhy writes it as phy's spike_times).
    ``unit_ids``: 0-based template ids -> st3(:,2) = id + 1 (KiloSort templates are 1-based).
    ``chan_map0``: 0-based file columns of the used channels -> ops.chanMap = + 1 (1-based), as
    KiloSort 2's preprocessDataSub stores only the used channels there.
    ``templates``: (n_templates, nt0, n_used) -> Wraw (n_used x nt0 x n_templates, MATLAB order).
    """
    times = np.asarray(times, np.float64)
    n = times.size
    amps = np.ones(n) if amplitudes is None else np.asarray(amplitudes, np.float64)
    st3 = np.column_stack([times, np.asarray(unit_ids, np.float64) + 1, amps, np.zeros(n),
                           np.ones(n)])
    chan = np.asarray(chan_map0, np.float64) + 1
    rez = {
        "st3": st3 if n else np.zeros((0, 5)),
        "ops": {"fs": float(fs), "NchanTOT": float(n_total), "Nchan": float(chan.size),
                "chanMap": col(chan), "igood": col(np.ones(chan.size, bool), bool),
                "Nfilt": float(templates.shape[0]) if templates is not None else 0.0},
        "xc": col(xc), "yc": col(yc),
        "cProj": np.zeros((0, 0), np.float32),  # KS2.5 empties it: stored as a dims vector
    }
    if templates is not None:
        rez["Wraw"] = np.ascontiguousarray(np.transpose(templates, (2, 1, 0)), np.float64)
    if good is not None:
        rez["good"] = col(good, bool)
    return rez


# -- JRCLUST v4 _res.mat + .prm (JRCLUST v4) ------------------------------------------------------
def write_jrclust_v4(folder: Path, session: str, times, clusters, sites0, *, fs: float, n_chans: int,
                     site_map0, site_loc, notes=None, mean_wf=None, raw=None,
                     version: str = "7.3") -> Path:
    """``<session>_res.mat`` + ``<session>.prm`` (+ ``<session>_raw.jrc`` when ``raw`` is given).

    ``times`` 0-based -> spikeTimes = times + 1 (1-based); ``sites0`` 0-based -> spikeSites + 1;
    ``clusters`` as JRCLUST stores them (> 0 units, 0 noise, < 0 deleted); ``site_map0`` 0-based
    file columns -> siteMap + 1 in the .prm. ``mean_wf`` (n_clusters, nSamples, nSites) ->
    meanWfGlobalRaw (nSamples x nSites x nClusters). ``raw`` (nSamples, nSitesEvt, nSpikes) int16
    -> _raw.jrc in MATLAB column-major order with rawShape.
    """
    folder.mkdir(parents=True, exist_ok=True)
    res = {
        "spikeTimes": col(np.asarray(times) + 1, np.int32),
        "spikeSites": col(np.asarray(sites0) + 1, np.int32),
        "spikeClusters": col(clusters, np.int32),
    }
    n_clu = int(max(np.max(clusters, initial=0), 0))
    if notes is not None:
        res["clusterNotes"] = np.array(notes, dtype=object).reshape(-1, 1)
    if mean_wf is not None:
        res["meanWfGlobalRaw"] = np.ascontiguousarray(np.transpose(mean_wf, (1, 2, 0)), np.float32)
    if raw is not None:
        raw = np.asarray(raw, np.int16)
        res["rawShape"] = np.array([raw.shape], np.float64)
        raw.ravel(order="F").tofile(folder / f"{session}_raw.jrc")
    res["unitCount"] = col(np.bincount(np.clip(np.asarray(clusters), 0, None), minlength=n_clu + 1)[1:])
    mat = savemat(folder / f"{session}_res.mat", res, version)
    loc = "; ".join(f"{x:g}, {y:g}" for x, y in np.asarray(site_loc))
    smap = ", ".join(str(int(c) + 1) for c in site_map0)
    (folder / f"{session}.prm").write_text(
        "% JRCLUST parameters (written by hybridkit's tests)\n"
        f"rawRecordings = {{'D:\\data\\{session}.bin'}};\n"
        f"sampleRate = {fs!r}; % Hz\n"
        f"nChans = {n_chans}; % channels in the raw file\n"
        "bitScaling = 2.34375; % uV/bit\n"
        f"siteMap = [{smap}]; % 1-based\n"
        f"siteLoc = [{loc}]; % um\n"
        "nSiteDir = 1;\n")
    return mat


# -- YASS 2.0 output (YASS 2.0) --------------------------------------------------------------------
def write_yass(root: Path, times, unit_ids, *, fs: float, n_channels: int, geometry,
               templates=None, dtype: str = "int16", layout: str = "2.0") -> Path:
    """A YASS project: config.yaml + geom.txt + tmp/output/spike_train.npy [+ templates.npy].

    spike_train columns are [sample, unit], both 0-based, as YASS writes them. ``layout`` "0.x"
    writes the output into tmp/ with templates (n_channels, n_times, n_units) and a 0.x config.
    """
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    np.savetxt(root / "geom.txt", np.asarray(geometry, float), fmt="%.6f", delimiter=" ")
    cfg = {"data": {"root_folder": "./", "recordings": "data.bin", "geometry": "geom.txt"},
           "recordings": {"dtype": dtype, "sampling_rate": fs, "n_channels": int(n_channels),
                          "spatial_radius": 70, "spike_size_ms": 3}}
    if layout == "2.0":
        cfg["neuralnetwork"] = {"apply_nn": True}
        out = root / "tmp" / "output"
    else:
        cfg["recordings"]["order"] = "samples"
        cfg["detect"] = {"method": "threshold"}
        out = root / "tmp"
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "spike_train.npy", np.column_stack([times, unit_ids]).astype(np.int64))
    if templates is not None:
        t = np.asarray(templates, np.float32)
        np.save(out / "templates.npy", t if layout == "2.0" else np.transpose(t, (2, 1, 0)))
    return root

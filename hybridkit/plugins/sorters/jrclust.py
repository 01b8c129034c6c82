"""Sorter adapter ``jrclust``: JRCLUST v4 ``<session>_res.mat`` and v3 ``<session>_jrc.mat``.

Fields (MATLAB shapes; v7.3 files are HDF5 and transposed on disk, see matfile.py):

* v4 ``_res.mat``: ``spikeTimes`` (nSpikes x 1) **1-based** samples, ``spikeSites`` 1-based sites,
  ``spikeClusters``: > 0 a unit, **0 noise, < 0 deleted**; ``clusterSites`` (1-based),
  ``clusterNotes`` (cell of strings), ``meanWfGlobalRaw`` / ``meanWfGlobal``
  (nSamples x nSites x nClusters). Parameters come from ``<session>.prm`` beside it:
  ``sampleRate`` (Hz), ``nChans`` (columns of the raw file), ``siteMap`` (1-based channel of each
  site), ``siteLoc`` (nSites x 2, um), ``nSiteDir``.
* v3 ``_jrc.mat``: ``viTime_spk``, ``viSite_spk`` (1-based), ``S_clu.viClu`` (same cluster
  convention), ``S_clu.csNote_clu``, ``S_clu.tmrWav_raw_clu`` / ``tmrWav_spk_clu``, ``dimm_raw``,
  and ``P`` (``sRateHz``, ``nChans``, ``viSite2Chan``, ``mrSiteXY``, ``miSites``); a ``.prm`` (v3
  names) fills what P lacks.
* Side files (headerless little-endian, MATLAB column-major): v4 ``_raw.jrc`` / v3 ``_spkraw.jrc``
  int16 of shape ``rawShape`` / ``dimm_raw`` = [nSamples, nSitesEvt, nSpikes]: the raw waveform of
  each spike on the sites around its own site. When the .mat holds no mean waveforms, each cluster's
  template is the mean of these over (up to 500 of) its spikes centred on its site.

hybridkit's Sorting: times ``spikeTimes - 1``; unit ids the cluster numbers JRCLUST shows (1..N);
noise spikes are kept as unit 0 labelled ``noise``; deleted spikes (< 0) are dropped; labels are the
cluster notes. ``channel_map`` is ``siteMap - 1`` (sorter channel = site).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from hybridkit.errors import SortingError
from hybridkit.hookspecs import SorterAdapter, hookimpl
from hybridkit.model import Recording, Sorting
from hybridkit.options import InputFile, InputPath, PluginOptions
from hybridkit.plugins.sorters.common import check_against, check_times, find_one, sort_by_time
from hybridkit.formats.matfile import MatFile, MatStruct, as_integers, as_scalar, as_vector, mat_variables
from hybridkit.formats.prmfile import parse_prm

log = logging.getLogger(__name__)

#: spikes averaged per cluster when templates come from the side file
MAX_TEMPLATE_SPIKES = 500


class JrclustOptions(PluginOptions):
    type: Literal["jrclust"]
    path: InputPath = Field(description="JRCLUST's <session>_res.mat (v4) or <session>_jrc.mat "
                             "(v3), or the folder holding one; relative to the config file's folder.")
    prm: InputFile | None = Field(
        None, description="The session's .prm parameter file; default <session>.prm beside the .mat.")


class JrclustAdapter(SorterAdapter):
    """JRCLUST v3/v4 -> Sorting (0-based times, JRCLUST's cluster numbers, notes as labels)."""

    name: ClassVar[str] = "jrclust"
    Options: ClassVar[type[PluginOptions]] = JrclustOptions

    @staticmethod
    def _looks_like(path: Path) -> bool:
        name = path.name.lower()
        if name.endswith("_res.mat"):
            return "spikeClusters" in mat_variables(path)
        if name.endswith("_jrc.mat"):
            names = mat_variables(path)
            return "S_clu" in names or "viTime_spk" in names
        return False

    @classmethod
    def detect(cls, path: Path) -> bool:
        """A <session>_res.mat / _jrc.mat with JRCLUST's variables, or a folder with one."""
        path = Path(path)
        if path.is_dir():
            hits = [p for p in list(path.glob("*_res.mat")) + list(path.glob("*_jrc.mat"))
                    if cls._looks_like(p)]
            return len(hits) >= 1
        return cls._looks_like(path)

    def mat_path(self) -> Path:
        path = Path(self.options.path)
        if path.is_dir():
            return find_one(path, ("*_res.mat", "*_jrc.mat"), "JRCLUST *_res.mat / *_jrc.mat")
        if not path.is_file():
            raise SortingError(f"sorting.path: {path} does not exist; expected JRCLUST's "
                               "<session>_res.mat or <session>_jrc.mat")
        return path

    def load(self, recording: Recording | None = None) -> Sorting:
        path = self.mat_path()
        with MatFile(path) as mat:
            top = mat.top
            if "spikeClusters" in top:
                raw = self._read_v4(top, path)
            elif "S_clu" in top or "viTime_spk" in top:
                raw = self._read_v3(top, path)
            else:
                raise SortingError(f"{path}: neither spikeClusters (JRCLUST v4 _res.mat) nor S_clu "
                                   f"(v3 _jrc.mat) found (variables: {', '.join(top.fields) or 'none'})")
        sorting, n_total = self._assemble(raw, path)
        if recording is not None:
            check_against(sorting, recording, str(path), n_channels_total=n_total,
                          rate_source=f"{raw['params_source']}: sample rate")
        return sorting

    # -- version-specific reading -------------------------------------------------------------
    def _params(self, path: Path, suffix: str) -> tuple[dict, str]:
        prm = self.options.prm
        if prm is None:
            cand = path.with_name(path.name[: -len(suffix)] + ".prm")
            prm = cand if cand.is_file() else None
        elif not Path(prm).is_file():
            raise SortingError(f"sorting.prm: {prm} does not exist")
        return (parse_prm(prm), str(prm)) if prm is not None else ({}, "")

    def _read_v4(self, top: MatStruct, path: Path) -> dict:
        params, source = self._params(path, "_res.mat")
        if not params:
            raise SortingError(f"{path}: JRCLUST v4 keeps its parameters in <session>.prm, and "
                               f"{path.name[:-8]}.prm is not beside it; set sorting.prm")
        return {
            "times1": top.get("spikeTimes"), "sites1": top.get("spikeSites"),
            "clusters": top.get("spikeClusters"), "what": ("spikeTimes", "spikeSites", "spikeClusters"),
            "cluster_sites1": top.get("clusterSites"), "notes": top.get("clusterNotes"),
            "mean_wf": _first_array(top, ("meanWfGlobalRaw", "meanWfGlobal")),
            "fs": params.get("sampleRate"), "n_chans": params.get("nChans"),
            "site_map1": params.get("siteMap"), "site_loc": params.get("siteLoc"),
            "neighbors1": None,
            "raw_shape": top.get("rawShape"),
            "side": path.with_name(path.name[:-8] + "_raw.jrc"),
            "params_source": source, "site_map_name": "siteMap",
        }

    def _read_v3(self, top: MatStruct, path: Path) -> dict:
        P = top.get("P")
        P = P if isinstance(P, MatStruct) else None
        prm, source = self._params(path, "_jrc.mat")

        def param(name):
            if P is not None and name in P:
                return P.get(name)
            return prm.get(name)

        S = top.get("S_clu")
        S = S if isinstance(S, MatStruct) else None
        if S is None or "viClu" not in S:
            raise SortingError(f"{path}: no S_clu.viClu (cluster of each spike); the session was "
                               "detected but not clustered (run 'jrc cluster' first)")
        return {
            "times1": top.get("viTime_spk"), "sites1": top.get("viSite_spk"),
            "clusters": S.get("viClu"), "what": ("viTime_spk", "viSite_spk", "S_clu.viClu"),
            "cluster_sites1": S.get("viSite_clu"), "notes": S.get("csNote_clu"),
            "mean_wf": _first_array(S, ("tmrWav_raw_clu", "tmrWav_spk_clu")),
            "fs": param("sRateHz"), "n_chans": param("nChans"),
            "site_map1": param("viSite2Chan"), "site_loc": param("mrSiteXY"),
            "neighbors1": param("miSites"),
            "raw_shape": top.get("dimm_raw"),
            "side": path.with_name(path.name[:-8] + "_spkraw.jrc"),
            "params_source": source or f"{path} (P)", "site_map_name": "viSite2Chan",
        }

    # -- common assembly ---------------------------------------------------------------------------
    def _assemble(self, raw: dict, path: Path) -> tuple[Sorting, int | None]:
        t_name, s_name, c_name = raw["what"]
        times = as_integers(as_vector(raw["times1"], path, t_name), path, t_name) - 1
        clusters = as_integers(as_vector(raw["clusters"], path, c_name), path, c_name)
        if clusters.size != times.size:
            raise SortingError(f"{path}: {c_name} has {clusters.size} entries but {t_name} {times.size}; "
                               "one per spike expected (truncated or mixed sessions?)")
        sites = None
        if raw["sites1"] is not None:
            sites = as_integers(as_vector(raw["sites1"], path, s_name), path, s_name) - 1
            if sites.size != times.size:
                raise SortingError(f"{path}: {s_name} has {sites.size} entries but {t_name} {times.size}")
        check_times(times, f"{path}: {t_name}", "a 1-based spike time minus 1")
        keep = clusters >= 0  # < 0: deleted in manual curation
        times, clusters = times[keep], clusters[keep]
        sites = sites[keep] if sites is not None else None

        fs = _number(raw["fs"], raw["params_source"], "sample rate")
        n_chans = _number(raw["n_chans"], raw["params_source"], "nChans")
        site_map = None
        if raw["site_map1"] is not None and not isinstance(raw["site_map1"], (str, list)):
            site_map = as_integers(np.ravel(raw["site_map1"]), path, raw["site_map_name"]) - 1
            if site_map.size and site_map.min() < 0:
                raise SortingError(f"{raw['params_source']}: {raw['site_map_name']} holds channel "
                                   f"{int(site_map.min()) + 1}; JRCLUST site maps are 1-based (>= 1)")
        positions = None
        if isinstance(raw["site_loc"], np.ndarray) and raw["site_loc"].ndim == 2 and raw["site_loc"].shape[1] >= 2:
            positions = raw["site_loc"][:, :2].astype(np.float64)
            if site_map is not None and positions.shape[0] != site_map.size:
                raise SortingError(f"{raw['params_source']}: {positions.shape[0]} site positions but "
                                   f"{site_map.size} sites in {raw['site_map_name']}")

        labels = {0: "noise"} if np.any(clusters == 0) else {}
        notes = raw["notes"]
        if isinstance(notes, list):
            for i, note in enumerate(notes, start=1):
                if isinstance(note, str) and note.strip():
                    labels[i] = note.strip().lower()
        tpl, tpl_units = self._templates(raw, path, times, clusters, sites, positions)
        times, clusters = sort_by_time(times, clusters)
        sorting = Sorting(
            spike_times=times, spike_units=clusters, unit_ids=np.unique(clusters), labels=labels,
            sampling_rate=fs, templates=tpl, template_units=tpl_units, channel_map=site_map,
            channel_positions=positions, path=path, format="jrclust",
        )
        return sorting, (int(n_chans) if n_chans is not None else None)

    def _templates(self, raw: dict, path: Path, times, clusters, sites, positions):
        """(nClusters, nSamples, nSites) mean waveforms from the .mat, else from the side file."""
        side = raw["side"]
        shape = None
        if isinstance(raw["raw_shape"], np.ndarray) and raw["raw_shape"].size == 3:
            shape = tuple(int(v) for v in np.ravel(raw["raw_shape"]))
        if side.is_file() and shape is not None:
            expected = int(np.prod(shape)) * 2
            size = side.stat().st_size
            if size != expected:
                raise SortingError(f"{side}: {size} bytes but the waveform shape {list(shape)} (int16) "
                                   f"needs {expected}; the file is truncated or from another run")
        wf = raw["mean_wf"]
        if isinstance(wf, np.ndarray) and wf.ndim == 3 and wf.size:
            tpl = np.ascontiguousarray(np.transpose(wf, (2, 0, 1)), dtype=np.float32)
            return tpl, np.arange(1, tpl.shape[0] + 1, dtype=np.int64)
        if not side.is_file() or shape is None or sites is None or positions is None:
            return None, None
        return self._templates_from_side(raw, side, shape, clusters, sites, positions)

    def _templates_from_side(self, raw, side, shape, clusters, sites, positions):
        n_samples, n_evt, n_spikes = shape
        # the side file has one waveform per detected spike, deleted ones included: index by the
        # spike's row in the .mat (rows were filtered by cluster >= 0 above, so rebuild the index)
        all_clusters = as_integers(as_vector(raw["clusters"], side, "clusters"), side, "clusters")
        rows = np.flatnonzero(all_clusters >= 0)
        if n_spikes != all_clusters.size:
            raise SortingError(f"{side}: waveforms of {n_spikes} spikes but the .mat lists "
                               f"{all_clusters.size}; the side file is from another run")
        n_sites = positions.shape[0]
        if n_evt > n_sites:
            raise SortingError(f"{side}: waveforms on {n_evt} sites per spike but the probe has {n_sites} "
                               "sites; the side file is from another run")
        neighbors = _neighbors(raw["neighbors1"], positions, n_evt)
        data = np.memmap(side, np.int16, "r", shape=(n_samples, n_evt, n_spikes), order="F")
        ids = np.arange(1, int(clusters.max(initial=0)) + 1)
        tpl = np.zeros((ids.size, n_samples, n_sites), np.float32)
        csites = raw["cluster_sites1"]
        csites = np.ravel(csites).astype(np.int64) - 1 if isinstance(csites, np.ndarray) and csites.size == ids.size else None
        for k, cid in enumerate(ids):
            mine = clusters == cid
            if not mine.any():
                continue
            centre = int(csites[k]) if csites is not None else int(np.bincount(sites[mine]).argmax())
            idx = rows[mine & (sites == centre)]
            if idx.size == 0:
                continue
            idx = idx[np.linspace(0, idx.size - 1, min(idx.size, MAX_TEMPLATE_SPIKES)).astype(np.int64)]
            mean = np.asarray(data[:, :, idx], np.float32).mean(axis=2)
            tpl[k][:, neighbors[centre]] = mean
        del data
        return tpl, ids


def _first_array(struct: MatStruct, names: tuple[str, ...]):
    for name in names:
        value = struct.get(name)
        if isinstance(value, np.ndarray) and value.size:
            return value
    return None


def _number(value, source: str, what: str) -> float | None:
    if value is None:
        return None
    try:
        return as_scalar(value, Path(source), what) if not isinstance(value, float) else value
    except SortingError:
        raise SortingError(f"{source}: {what} = {value!r} is not one number") from None


def _neighbors(given, positions: np.ndarray, n_evt: int) -> np.ndarray:
    """(nSites, n_evt) 0-based sites around each site: JRCLUST's miSites, else nearest by distance."""
    if isinstance(given, np.ndarray) and given.ndim == 2 and given.shape[0] == n_evt:
        return given.T.astype(np.int64) - 1
    dist = np.hypot(*(positions[:, None, :] - positions[None, :, :]).transpose(2, 0, 1))
    return np.argsort(dist, axis=1, kind="stable")[:, :n_evt]


@hookimpl
def hybridkit_sorter_adapters():
    return [JrclustAdapter]

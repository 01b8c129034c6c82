"""Sorter adapter ``kilosort``: the ``rez.mat`` of MATLAB KiloSort 1, 2, 2.5 and 3.

KiloSort saves ``rez`` with ``save(..., '-v7.3')`` (HDF5); a user may have re-saved it as v5/v7.
Both are read (see :mod:`hybridkit.formats.matfile`); fields, in MATLAB's shapes and index bases:

* ``st3`` (nSpikes x 4 or 5): column 1 the spike sample, used **as is** (KiloSort's own
  ``rezToPhy`` writes ``spike_times = st3(:,1)`` with no -1 and phy/SpikeInterface read it as a
  0-based sample; hybridfactory subtracted 1, which moved every spike one sample early). Column 2
  the template, **1-based**: unit id = ``st3(:,2) - 1``, the id phy shows for the same run.
  KiloSort 1 after ``merge_posthoc2`` has a 5th column with the merged cluster, which ``rezToPhy``
  writes unchanged as phy's cluster id; in KiloSort 2+ column 5 is a batch index and is ignored.
  A rez without ``st3`` is a failed or interrupted run: an error says so.
* ``ops.fs`` (Hz), ``ops.NchanTOT`` (columns of the raw file, checked against the recording).
* ``ops.chanMap``: 1-based raw channels. KiloSort 2+ overwrites it with the used channels only
  (``chanMap(igood)``, as many as ``U`` has rows); KiloSort 1 keeps the full map and marks used
  channels in ``rez.connected``. It may also be a char path to a chanMap .mat file
  (``chanMap``, ``connected``, ``xcoords``, ``ycoords``), looked up as written, then by its name
  beside the rez file, or given by the option ``chan_map``.
* positions: ``xc``/``yc`` (used channels) or ``xcoords``/``ycoords``.
* templates: ``Wraw`` (Nchan x nt0 x Nfilt) where present, else ``U`` (Nchan x Nfilt x nRank) times
  ``W`` (nt0 x Nfilt x nRank) per rank, times ``mu`` when present: whitened sorter space, not uV.
* labels: ``good`` (Nfilt, logical) -> ``good`` / ``mua`` as KiloSort's cluster_KSLabel.tsv.
"""
from __future__ import annotations

import logging
import re
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

log = logging.getLogger(__name__)

REZ_NAMES = ("rez.mat", "rez2.mat", "rez*.mat")


class KilosortOptions(PluginOptions):
    type: Literal["kilosort"]
    path: InputPath = Field(description="KiloSort's rez.mat (MATLAB v5 or v7.3), or the folder "
                             "holding it (rez.mat, rez2.mat); relative to the config file's folder.")
    chan_map: InputFile | None = Field(
        None, description="chanMap .mat file to use when rez.ops.chanMap names one that is not "
        "found (a path from the sorting machine); default: as written, then beside the rez file.")
    clusters: Literal["auto", "templates", "merged"] = Field(
        "auto", description="Unit ids from the template column st3(:,2)-1 ('templates'), or from "
        "KiloSort 1's merged-cluster column st3(:,5) ('merged'); 'auto' uses the merged column for "
        "KiloSort 1 rez files that have one.")


class KilosortAdapter(SorterAdapter):
    """KiloSort 1-3 ``rez.mat`` -> Sorting (0-based times, phy's unit ids, templates, labels)."""

    name: ClassVar[str] = "kilosort"
    Options: ClassVar[type[PluginOptions]] = KilosortOptions

    @classmethod
    def detect(cls, path: Path) -> bool:
        """A .mat file holding a variable ``rez``, or a folder with rez.mat / rez2.mat."""
        path = Path(path)
        if path.is_dir():
            return any("rez" in mat_variables(path / n) for n in ("rez.mat", "rez2.mat"))
        return path.suffix.lower() == ".mat" and "rez" in mat_variables(path)

    def rez_path(self) -> Path:
        path = Path(self.options.path)
        if path.is_dir():
            return find_one(path, REZ_NAMES, "KiloSort rez .mat")
        if not path.is_file():
            raise SortingError(f"sorting.path: {path} does not exist; expected KiloSort's rez.mat or its folder")
        return path

    def load(self, recording: Recording | None = None) -> Sorting:
        path = self.rez_path()
        with MatFile(path) as mat:
            rez = mat.top.get("rez")
            if not isinstance(rez, MatStruct):
                raise SortingError(f"{path}: no struct variable 'rez' (variables: "
                                   f"{', '.join(mat.top.fields) or 'none'}); expected KiloSort's rez.mat")
            sorting, n_total = self._read(rez, path)
        if recording is not None:
            check_against(sorting, recording, str(path), n_channels_total=n_total,
                          rate_source=f"{path}: rez.ops.fs")
        return sorting

    # ------------------------------------------------------------------------------------------
    def _read(self, rez: MatStruct, path: Path) -> tuple[Sorting, int | None]:
        if "st3" not in rez:
            raise SortingError(f"{path}: rez has no st3 (the spike table), so KiloSort did not finish "
                               f"this run (fields present: {', '.join(sorted(rez.fields))}); re-run the "
                               "sort or point sorting.path at a complete rez.mat")
        st3 = np.asarray(rez.get("st3"))
        if st3.size == 0:
            st3 = np.zeros((0, 4))
        if st3.ndim != 2 or st3.shape[1] < 2:
            raise SortingError(f"{path}: rez.st3 has MATLAB shape {'x'.join(map(str, st3.shape))}, "
                               "expected nSpikes x 4 or 5 (time, template, amplitude, ...)")
        ops = rez.get("ops")
        if not isinstance(ops, MatStruct):
            raise SortingError(f"{path}: rez has no ops struct; expected rez.ops.fs and rez.ops.chanMap")
        times = as_integers(st3[:, 0], path, "rez.st3(:,1) (spike samples)")
        check_times(times, f"{path}: rez.st3(:,1)", "a spike time")
        templates_1 = as_integers(st3[:, 1], path, "rez.st3(:,2) (1-based template)")
        if templates_1.size and templates_1.min() < 1:
            raise SortingError(f"{path}: rez.st3(:,2) holds template {int(templates_1.min())}; KiloSort "
                               "templates are 1-based (>= 1)")
        ks1 = "igood" not in ops  # KiloSort 2+ always stores ops.igood
        mode = self.options.clusters
        if mode == "auto":
            mode = "merged" if ks1 and st3.shape[1] >= 5 else "templates"
        if mode == "merged":
            if st3.shape[1] < 5:
                raise SortingError(f"{path}: sorting.clusters is 'merged' but rez.st3 has "
                                   f"{st3.shape[1]} columns; the merged cluster is column 5")
            units = as_integers(st3[:, 4], path, "rez.st3(:,5) (merged cluster)")
        else:
            units = templates_1 - 1

        fs = as_scalar(ops.get("fs"), path, "rez.ops.fs") if "fs" in ops else None
        n_total = int(as_scalar(ops.get("NchanTOT"), path, "rez.ops.NchanTOT")) if "NchanTOT" in ops else None
        tpl = self._templates(rez, path)
        n_used = self._n_used(rez, ops, tpl, path)
        channel_map, positions = self._channels(rez, ops, n_used, path)
        if tpl is not None and tpl.shape[2] != channel_map.size:
            log.warning("%s: templates have %d channels but the channel map %d; templates dropped",
                        path, tpl.shape[2], channel_map.size)
            tpl = None
        labels: dict[int, str] = {}
        good = rez.get("good")
        if mode == "templates" and isinstance(good, np.ndarray) and good.size:
            labels = {k: ("good" if g else "mua") for k, g in enumerate(np.ravel(good).astype(bool))}
        times, units = sort_by_time(times, units)
        sorting = Sorting(
            spike_times=times, spike_units=units, unit_ids=np.unique(units), labels=labels,
            sampling_rate=fs, templates=tpl,
            template_units=None if tpl is None else np.arange(tpl.shape[0], dtype=np.int64),
            channel_map=channel_map, channel_positions=positions, path=path, format="kilosort",
        )
        return sorting, n_total

    @staticmethod
    def _templates(rez: MatStruct, path: Path) -> np.ndarray | None:
        """(Nfilt, nt0, Nchan) float32 from Wraw, else mu * U W'; None when neither is stored."""
        wraw = rez.get("Wraw")
        if isinstance(wraw, np.ndarray) and wraw.ndim == 3 and wraw.size:
            return np.ascontiguousarray(np.transpose(wraw, (2, 1, 0)), dtype=np.float32)
        W, U = rez.get("W"), rez.get("U")
        if not (isinstance(W, np.ndarray) and isinstance(U, np.ndarray) and W.size and U.size):
            return None
        W = W if W.ndim == 3 else W[:, :, None]
        U = U if U.ndim == 3 else U[:, :, None]
        if W.shape[1] != U.shape[1] or W.shape[2] != U.shape[2]:
            log.warning("%s: rez.W %s and rez.U %s do not match; no templates", path, W.shape, U.shape)
            return None
        tpl = np.einsum("tkr,ckr->ktc", W, U)
        mu = rez.get("mu")
        if isinstance(mu, np.ndarray) and mu.size == tpl.shape[0]:
            tpl *= np.ravel(mu)[:, None, None]
        return tpl.astype(np.float32)

    @staticmethod
    def _n_used(rez: MatStruct, ops: MatStruct, tpl: np.ndarray | None, path: Path) -> int | None:
        if tpl is not None:
            return int(tpl.shape[2])
        if "Nchan" in ops:
            return int(as_scalar(ops.get("Nchan"), path, "rez.ops.Nchan"))
        xc = rez.get("xc")
        return int(np.size(xc)) if isinstance(xc, np.ndarray) and xc.size else None

    def _channels(self, rez: MatStruct, ops: MatStruct, n_used: int | None,
                  path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        """0-based file columns of the sorter's channels, and their (x, y) um."""
        raw = ops.get("chanMap")
        if self.options.chan_map is not None:
            raw = str(self.options.chan_map)
        connected = rez.get("connected")
        if isinstance(raw, str):
            cm = self._chanmap_file(raw, path)
            chan = as_vector(cm.get("chanMap"), cm["path"], "chanMap")
            conn = cm.get("connected")
            keep = (np.ones(chan.size, bool) if conn is None
                    else as_vector(conn, cm["path"], "connected").astype(bool))
            if keep.size != chan.size:
                raise SortingError(f"{cm['path']}: connected has {keep.size} entries but chanMap {chan.size}")
            chan = chan[keep]
            xy = [as_vector(cm[k], cm["path"], k)[keep] if cm.get(k) is not None else None
                  for k in ("xcoords", "ycoords")]
            igood = ops.get("igood")
            if isinstance(igood, np.ndarray) and igood.size == chan.size and n_used != chan.size:
                sel = np.ravel(igood).astype(bool)
                chan = chan[sel]
                xy = [None if v is None else v[sel] for v in xy]
            source = f"{cm['path']} (chanMap)"
        elif isinstance(raw, np.ndarray) and raw.size:
            chan = as_vector(raw, path, "rez.ops.chanMap")
            xy = [None, None]
            if (n_used is not None and chan.size != n_used and isinstance(connected, np.ndarray)
                    and connected.size == chan.size):
                chan = chan[np.ravel(connected).astype(bool)]
            source = "rez.ops.chanMap"
        else:
            raise SortingError(f"{path}: rez.ops.chanMap is missing; expected a 1-based channel vector "
                               "or the path of a chanMap .mat (set sorting.chan_map to give one)")
        if n_used is not None and chan.size != n_used:
            raise SortingError(f"{path}: {source} gives {chan.size} used channels but the templates/"
                               f"ops.Nchan have {n_used}; set sorting.chan_map to the chanMap .mat of this run")
        chan = as_integers(chan, path, source)
        if chan.size and chan.min() < 1:
            raise SortingError(f"{path}: {source} holds channel {int(chan.min())}; KiloSort channel maps "
                               "are 1-based (>= 1)")
        positions = self._positions(rez, chan.size, xy)
        return chan - 1, positions

    @staticmethod
    def _positions(rez: MatStruct, n: int, xy: list) -> np.ndarray | None:
        candidates = [tuple(xy)]
        for xk, yk in (("xc", "yc"), ("xcoords", "ycoords")):
            x, y = rez.get(xk), rez.get(yk)
            if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
                candidates.append((np.ravel(x), np.ravel(y)))
        connected = rez.get("connected")
        for x, y in candidates:
            if x is None or y is None:
                continue
            if x.size == y.size == n:
                return np.column_stack([x, y]).astype(np.float64)
            if isinstance(connected, np.ndarray) and x.size == y.size == connected.size:
                keep = np.ravel(connected).astype(bool)
                if keep.sum() == n:
                    return np.column_stack([x[keep], y[keep]]).astype(np.float64)
        return None

    def _chanmap_file(self, written: str, rez_path: Path) -> dict:
        """Fields of a chanMap .mat named in the rez (a path from the sorting machine, maybe Windows)."""
        name = re.split(r"[\\/]", written.strip())[-1]
        tried = [Path(written), rez_path.parent / name] if self.options.chan_map is None else [Path(written)]
        for cand in tried:
            if cand.is_file():
                with MatFile(cand) as mat:
                    out = {k: mat.top.get(k) for k in ("chanMap", "connected", "xcoords", "ycoords")}
                if out["chanMap"] is None:
                    raise SortingError(f"{cand}: no variable chanMap; expected a KiloSort chanMap .mat")
                out["path"] = cand
                return out
        raise SortingError(f"{rez_path}: rez.ops.chanMap names {written!r}, which is not found (tried "
                           f"{', '.join(map(str, tried))}); set sorting.chan_map to that chanMap .mat")


@hookimpl
def hybridkit_sorter_adapters():
    return [KilosortAdapter]

"""Sorter adapter ``phy``: a phy folder as written by Kilosort 2-4, phy itself, or any exporter.

The folder's files (as phylib reads them):

* ``spike_times.npy``: samples, 0-based, non-decreasing. MATLAB Kilosort writes uint64 (N, 1)
  Fortran-ordered columns, Kilosort4 int64 (N,); both are raveled.
* ``spike_clusters.npy`` (else ``spike_templates.npy``): the cluster id of each spike, used as is
  (no +1/-1: ids are exactly what phy shows).
* ``templates.npy`` (n_templates, n_times, n_channels) in the sorter's (often whitened) space, with
  ``template_ind.npy`` when sparse; ``channel_map.npy`` (file column of each sorter channel, row or
  column vector); ``channel_positions.npy`` (um).
* ``cluster_KSLabel.tsv`` then ``cluster_group.tsv`` (which wins): labels per cluster id.
* ``params.py``: only ``sample_rate`` is used. phy ``exec``s this file; hybridkit never does, it reads
  plain ``key = literal`` assignments. ``dat_path`` is ignored: the config names the raw file.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from hybridkit.errors import SortingError
from hybridkit.formats.phy_files import load_npy, read_cluster_tsv, read_params_py
from hybridkit.hookspecs import SorterAdapter, hookimpl
from hybridkit.model import Recording, Sorting
from hybridkit.plugins.sorters.common import check_against
from hybridkit.options import InputFolder, PluginOptions

log = logging.getLogger(__name__)

def _load_vector(path: Path, what: str) -> np.ndarray:
    """A 1-D integer array from a (N,), (N, 1) or (1, N) .npy file (any memory order)."""
    arr = load_npy(path)
    if arr.ndim > 1 and sum(s > 1 for s in arr.shape) > 1:
        raise SortingError(f"{path}: {what} has shape {arr.shape}, expected a vector (N,) or (N, 1)")
    arr = np.ravel(arr)
    if arr.dtype.kind == "f":
        # some exporters write float; accept only exact integers
        if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise SortingError(f"{path}: {what} holds non-integer values; expected integer samples/ids")
    elif arr.dtype.kind not in "iub":
        raise SortingError(f"{path}: {what} has dtype {arr.dtype}, expected an integer dtype")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise SortingError(f"{path}: {what} value {arr.max()} does not fit int64")
    if arr.size and arr.min() < 0:
        bad = int(np.flatnonzero(arr < 0)[0])
        raise SortingError(f"{path}: {what}[{bad}] = {arr[bad]} is negative; expected values >= 0")
    return arr.astype(np.int64)


# -- the adapter ---------------------------------------------------------------------------------------
class PhyOptions(PluginOptions):
    type: Literal["phy"]
    path: InputFolder = Field(
        description="The phy folder (holding spike_times.npy, spike_clusters.npy, params.py, ...); "
        "relative paths are taken from the config file's folder."
    )


class PhyAdapter(SorterAdapter):
    """Reads a phy folder (Kilosort 2, 2.5, 3, 4 and other phy exporters) into a Sorting."""

    name: ClassVar[str] = "phy"

    Options: ClassVar[type[PluginOptions]] = PhyOptions

    # ------------------------------------------------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> bool:
        """True for a folder with spike_times.npy and params.py or spike_clusters/templates.npy."""
        path = Path(path)
        if not (path.is_dir() and (path / "spike_times.npy").is_file()):
            return False
        return any(
            (path / name).is_file()
            for name in ("params.py", "spike_clusters.npy", "spike_templates.npy")
        )

    def load(self, recording: Recording | None = None) -> Sorting:
        """Read the folder; with ``recording``, check times, channels and rate against it.

        Returns a Sorting whose ``spike_times`` are the file's samples exactly, ``spike_units`` the
        cluster ids, ``unit_ids`` the clusters that have spikes. ``templates`` are dense
        (n_templates, n_times, n_sorter_channels) in the sorter's space. ``template_units[k]`` is
        ``k``: template ``k`` was cluster ``k`` before curation. When spike_clusters differs from
        spike_templates (phy merges/splits), template ``k`` is still labelled ``k``; a curated
        cluster has a new id with no template row, while an untouched cluster keeps its template.
        """
        folder = Path(self.options.path)
        if not folder.is_dir():
            raise SortingError(f"sorting.path: phy folder {folder} does not exist or is not a folder")

        times_path = folder / "spike_times.npy"
        if not times_path.is_file():
            raise SortingError(
                f"{times_path}: missing; a phy folder needs spike_times.npy (samples, one per spike)"
            )
        times = _load_vector(times_path, "spike_times")
        if times.size > 1:
            drops = np.flatnonzero(np.diff(times) < 0)
            if drops.size:
                i = int(drops[0])
                raise SortingError(
                    f"{times_path}: spike times must be non-decreasing but spike_times[{i + 1}] = "
                    f"{times[i + 1]} < spike_times[{i}] = {times[i]}"
                )

        units_path = folder / "spike_clusters.npy"
        if not units_path.is_file():
            units_path = folder / "spike_templates.npy"
        if not units_path.is_file():
            raise SortingError(
                f"{folder}: neither spike_clusters.npy nor spike_templates.npy exists; a phy folder "
                "needs one of them (the cluster id of each spike)"
            )
        units = _load_vector(units_path, units_path.stem)
        if units.size != times.size:
            raise SortingError(
                f"{units_path}: {units.size} entries but {times_path.name} has {times.size}; "
                "both must have one entry per spike"
            )

        channel_map = channel_positions = None
        map_path = folder / "channel_map.npy"
        if map_path.is_file():
            channel_map = _load_vector(map_path, "channel_map")
        pos_path = folder / "channel_positions.npy"
        if pos_path.is_file():
            channel_positions = load_npy(pos_path)
            n_ch = channel_map.size if channel_map is not None else None
            if channel_positions.dtype.kind not in "iuf" or channel_positions.ndim != 2 or (
                channel_positions.shape[1] < 2
            ) or (n_ch is not None and channel_positions.shape[0] != n_ch):
                raise SortingError(
                    f"{pos_path}: shape {channel_positions.shape} dtype {channel_positions.dtype}, "
                    f"expected numbers of shape ({n_ch or 'n_channels'}, 2)"
                )
            channel_positions = channel_positions[:, :2].astype(np.float64)

        templates, template_units = self._load_templates(folder, times, units, channel_map)
        params = read_params_py(folder / "params.py") if (folder / "params.py").is_file() else {}
        rate = params.get("sample_rate")
        if rate is not None:
            try:
                rate = float(rate)
            except (TypeError, ValueError, OverflowError):
                rate = float("nan")
            if not (np.isfinite(rate) and rate > 0):
                raise SortingError(
                    f"{folder / 'params.py'}: sample_rate = {params['sample_rate']!r:.60}; expected "
                    "a positive number (Hz)"
                ) from None

        labels: dict[int, str] = {}
        ks_path, group_path = folder / "cluster_KSLabel.tsv", folder / "cluster_group.tsv"
        if ks_path.is_file():
            labels.update(read_cluster_tsv(ks_path, "KSLabel"))
        if group_path.is_file():
            # phy writes a `group` column; Kilosort copies KSLabel.tsv here with a `KSLabel` header
            labels.update(read_cluster_tsv(group_path, ("group", "KSLabel")))

        sorting = Sorting(
            spike_times=times,
            spike_units=units,
            unit_ids=np.unique(units),
            labels=labels,
            sampling_rate=rate,
            templates=templates,
            template_units=template_units,
            channel_map=channel_map,
            channel_positions=channel_positions,
            path=folder,
            format="phy",
            units_file=units_path,
        )
        if recording is not None:
            self._check_against(sorting, recording, params)
        return sorting

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _load_templates(
        folder: Path, times: np.ndarray, units: np.ndarray, channel_map: np.ndarray | None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Dense (n_templates, n_times, n_channels) float32 templates and their unit ids, or None."""
        path = folder / "templates.npy"
        if not path.is_file():
            return None, None
        data = load_npy(path)
        if data.ndim != 3 or data.dtype.kind != "f":
            raise SortingError(
                f"{path}: shape {data.shape} dtype {data.dtype}, expected float "
                "(n_templates, n_times, n_channels)"
            )
        data = np.asarray(data, dtype=np.float32)
        n_templates = data.shape[0]
        n_ch = channel_map.size if channel_map is not None else None
        ind_path = folder / "template_ind.npy"  # phy's sparse templates; KS's templates_ind.npy is trivial
        if ind_path.is_file():
            ind = np.asarray(load_npy(ind_path))
            if ind.dtype.kind not in "iu":
                raise SortingError(f"{ind_path}: dtype {ind.dtype}; expected integer channel indices")
            if ind.shape != data.shape[::2]:
                raise SortingError(
                    f"{ind_path}: shape {ind.shape}, expected {data.shape[::2]} to match templates.npy"
                )
            width = n_ch if n_ch is not None else int(ind.max()) + 1
            if ind.max() >= width:
                raise SortingError(
                    f"{ind_path}: channel index {int(ind.max())} >= {width} sorter channels"
                )
            dense = np.zeros((n_templates, data.shape[1], width), np.float32)
            for k in range(n_templates):
                keep = ind[k] >= 0  # phy pads sparse rows with -1
                dense[k][:, ind[k][keep].astype(np.int64)] = data[k][:, keep]
            data = dense
        elif n_ch is not None and data.shape[2] != n_ch:
            raise SortingError(
                f"{path}: {data.shape[2]} channels but channel_map.npy has {n_ch}; expected equal "
                "(or a template_ind.npy for sparse templates)"
            )
        # Row k is template k; a cluster keeps id k until curation changes it (see load()).
        return data, np.arange(n_templates, dtype=np.int64)

    def _check_against(self, sorting: Sorting, recording: Recording, params: dict) -> None:
        folder = Path(self.options.path)
        check_against(sorting, recording, str(folder), times_source=str(folder / "spike_times.npy"),
                      channels_source=str(folder / "channel_map.npy"),
                      rate_source=f"{folder / 'params.py'} sample_rate")
        n_dat = params.get("n_channels_dat")
        if isinstance(n_dat, int) and n_dat != recording.n_channels:
            # Kilosort 2.5/3 point phy at temp_wh.dat, whose columns are the used channels only
            log.warning(
                "%s: n_channels_dat = %d but recording %s has %d channels; channel_map.npy may index "
                "a preprocessed file rather than the raw one",
                folder / "params.py", n_dat, recording.name, recording.n_channels,
            )


@hookimpl
def hybridkit_sorter_adapters():
    return [PhyAdapter]

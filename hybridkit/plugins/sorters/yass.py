"""Sorter adapter ``yass``: the native outputs of YASS 0.x and 2.0.

A YASS run is a ``config.yaml`` (recording parameters) next to the recording and its geometry, and
an output folder: ``<root>/tmp/output/`` (2.0) or ``<root>/tmp/`` (0.x), holding

* ``spike_train.npy``: (n_spikes, 2) integers, columns **[sample, unit]**, both 0-based;
* ``templates.npy``: YASS 2.0 writes (n_units, n_times, n_channels), YASS 0.x wrote
  (n_channels, n_times, n_units). The order is decided against ``recordings.n_channels``; when both
  readings fit (as many units as channels), the config's version markers decide (0.x configs have
  ``recordings.order`` / ``detect.method``, 2.0 configs a ``neuralnetwork`` section), else the
  option ``templates_layout`` must say. With drift updates, YASS 2.0 writes
  ``templates/templates_<t>sec.npy`` instead: the first one (``templates_0sec.npy``) is used.
* ``config.yaml``: ``recordings.sampling_rate`` (Hz), ``n_channels``, ``dtype``, ``order``
  (0.x: ``samples`` = time-major, ``channels`` = channel-major), ``data.geometry`` (a .npy of
  (n_channels, 2) or a .txt with one ``x y`` per line, um). They are checked against the recording.

Sorter channels are file columns (``channel_map`` = 0..n_channels-1); templates are in YASS's
standardized units, not uV.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from hybridkit.formats.phy_files import load_npy
from hybridkit.errors import SortingError
from hybridkit.hookspecs import SorterAdapter, hookimpl
from hybridkit.model import Recording, Sorting
from hybridkit.options import InputFile, InputFolder, PluginOptions
from hybridkit.plugins.sorters.common import check_against, check_times, sort_by_time

log = logging.getLogger(__name__)

OUTPUT_DIRS = (".", "tmp/output", "tmp")


class YassOptions(PluginOptions):
    type: Literal["yass"]
    path: InputFolder = Field(description="The YASS project folder (with config.yaml and tmp/output/ "
                             "or tmp/), or the output folder holding spike_train.npy; relative to the "
                             "config file's folder.")
    config: InputFile | None = Field(
        None, description="YASS's config.yaml; default: config.yaml in path or in a parent of the "
        "output folder (up to the project folder).")
    templates_layout: Literal["auto", "units_times_channels", "channels_times_units"] = Field(
        "auto", description="Axis order of templates.npy: YASS 2.0 writes units_times_channels, "
        "YASS 0.x channels_times_units; auto decides from recordings.n_channels and the config.")


def find_output(path: Path) -> Path | None:
    """The folder holding spike_train.npy under a YASS project or output folder, or None."""
    for sub in OUTPUT_DIRS:
        cand = (path / sub).resolve() if sub != "." else path
        if (cand / "spike_train.npy").is_file():
            return cand
    return None


def find_config(path: Path, output: Path | None) -> Path | None:
    for folder in [path] + ([output, *list(output.parents)[:2]] if output is not None else []):
        for name in ("config.yaml", "config.yml"):
            if (folder / name).is_file():
                return folder / name
    return None


def read_yass_config(path: Path) -> dict:
    """The parsed config.yaml (SortingError on bad YAML or missing ``recordings``)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SortingError(f"{path}: not a readable YASS config.yaml ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("recordings"), dict):
        raise SortingError(f"{path}: no 'recordings' section; expected YASS's config.yaml with "
                           "recordings.sampling_rate, n_channels and dtype")
    return data


def read_geometry(path: Path, n_channels: int | None) -> np.ndarray:
    """(n_channels, 2) float64 um from a YASS geometry .npy or .txt (whitespace-separated x y)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            geom = load_npy(path)
            if geom.dtype.kind not in "iuf":
                raise SortingError(f"{path}: geometry dtype {geom.dtype}; expected numbers (um)")
            geom = geom.astype(np.float64)
        else:
            geom = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise SortingError(f"{path}: not a readable geometry file ({exc}); expected one 'x y' per line "
                           "or a (n_channels, 2) .npy") from None
    if geom.ndim != 2 or geom.shape[1] != 2:
        raise SortingError(f"{path}: geometry has shape {geom.shape}, expected (n_channels, 2)")
    if n_channels is not None and geom.shape[0] != n_channels:
        raise SortingError(f"{path}: {geom.shape[0]} channel positions but recordings.n_channels is "
                           f"{n_channels}")
    return geom


class YassAdapter(SorterAdapter):
    """YASS 0.x / 2.0 native outputs -> Sorting (0-based times and unit ids as YASS writes them)."""

    name: ClassVar[str] = "yass"
    Options: ClassVar[type[PluginOptions]] = YassOptions

    @classmethod
    def detect(cls, path: Path) -> bool:
        """A folder with spike_train.npy in it, in tmp/output/ or in tmp/."""
        path = Path(path)
        return path.is_dir() and find_output(path) is not None

    def load(self, recording: Recording | None = None) -> Sorting:
        root = Path(self.options.path)
        if not root.is_dir():
            raise SortingError(f"sorting.path: {root} is not a folder; expected a YASS project folder "
                               "or its output folder with spike_train.npy")
        out = find_output(root)
        if out is None:
            raise SortingError(f"sorting.path: no spike_train.npy in {root} or its tmp/output/ or tmp/; "
                               "expected a finished YASS run")
        cfg_path = self.options.config or find_config(root, out)
        if cfg_path is not None and not Path(cfg_path).is_file():
            raise SortingError(f"sorting.config: {cfg_path} does not exist")
        cfg = read_yass_config(cfg_path) if cfg_path is not None else {}
        rec = cfg.get("recordings", {})
        n_channels = _int_or_none(rec.get("n_channels"), cfg_path, "recordings.n_channels")
        fs = rec.get("sampling_rate")
        if fs is not None and not isinstance(fs, (int, float)):
            raise SortingError(f"{cfg_path}: recordings.sampling_rate = {fs!r} is not a number (Hz)")

        train_path = out / "spike_train.npy"
        train = load_npy(train_path)
        if train.ndim != 2 or train.shape[1] != 2 or train.dtype.kind not in "iuf":
            raise SortingError(f"{train_path}: shape {train.shape} dtype {train.dtype}, expected "
                               "(n_spikes, 2) integers [sample, unit]")
        if train.dtype.kind == "f" and not np.all(train == np.round(train)):
            raise SortingError(f"{train_path}: non-integer values; expected [sample, unit] integers")
        times, units = train[:, 0].astype(np.int64), train[:, 1].astype(np.int64)
        check_times(times, str(train_path), "column 0 (sample)")
        if units.size and units.min() < 0:
            raise SortingError(f"{train_path}: unit id {int(units.min())} < 0; YASS unit ids are 0-based")

        templates = self._templates(out, cfg, cfg_path, n_channels, units)
        positions = None
        geom_name = (cfg.get("data") or {}).get("geometry")
        if geom_name and cfg_path is not None:
            geom_path = self._find_geometry(Path(cfg_path), cfg, str(geom_name))
            positions = read_geometry(geom_path, n_channels)
        n_ch = n_channels or (templates.shape[2] if templates is not None else None)
        times, units = sort_by_time(times, units)
        ids = np.unique(units)
        if templates is not None:
            ids = np.union1d(ids, np.arange(templates.shape[0]))
        sorting = Sorting(
            spike_times=times, spike_units=units, unit_ids=ids, sampling_rate=fs and float(fs),
            templates=templates,
            template_units=None if templates is None else np.arange(templates.shape[0], dtype=np.int64),
            channel_map=None if n_ch is None else np.arange(n_ch, dtype=np.int64),
            channel_positions=positions, path=root, format="yass",
        )
        if recording is not None:
            where = str(cfg_path) if cfg_path is not None else str(train_path)
            check_against(sorting, recording, str(train_path), n_channels_total=n_channels,
                          rate_source=f"{where}: recordings.sampling_rate")
            self._check_layout(rec, recording, where)
        return sorting

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _find_geometry(cfg_path: Path, cfg: dict, name: str) -> Path:
        root = (cfg.get("data") or {}).get("root_folder") or ""
        tried = [Path(name)] if Path(name).is_absolute() else [
            cfg_path.parent / root / name, cfg_path.parent / name]
        for cand in tried:
            if cand.is_file():
                return cand
        raise SortingError(f"{cfg_path}: data.geometry {name!r} not found (tried "
                           f"{', '.join(map(str, tried))})")

    def _templates(self, out: Path, cfg: dict, cfg_path, n_channels: int | None,
                   units: np.ndarray) -> np.ndarray | None:
        path = out / "templates.npy"
        if not path.is_file():
            drift = sorted((out / "templates").glob("templates_*sec.npy"),
                           key=lambda p: _seconds(p.stem)) if (out / "templates").is_dir() else []
            if not drift:
                return None
            path = drift[0]
        data = load_npy(path)
        if data.ndim != 3 or data.dtype.kind != "f":
            raise SortingError(f"{path}: shape {data.shape} dtype {data.dtype}, expected float "
                               "(n_units, n_times, n_channels)")
        layout = self.options.templates_layout
        if layout == "auto":
            layout = self._decide_layout(path, data.shape, cfg, cfg_path, n_channels, units)
        if layout == "channels_times_units":
            data = np.transpose(data, (2, 1, 0))
        if n_channels is not None and data.shape[2] != n_channels:
            raise SortingError(f"{path}: templates_layout {layout} gives {data.shape[2]} channels but "
                               f"recordings.n_channels is {n_channels}")
        return np.ascontiguousarray(data, dtype=np.float32)

    @staticmethod
    def _decide_layout(path, shape, cfg, cfg_path, n_channels, units) -> str:
        if n_channels is None:
            raise SortingError(f"{path}: templates {shape} and no config.yaml to say the channel count; "
                               "set sorting.config or sorting.templates_layout")
        fits = [name for name, axis in (("units_times_channels", 2), ("channels_times_units", 0))
                if shape[axis] == n_channels]
        if len(fits) == 2:
            rec = cfg.get("recordings") or {}
            old = "order" in rec or "method" in (cfg.get("detect") or {})
            new = "neuralnetwork" in cfg
            if old != new:
                return "channels_times_units" if old else "units_times_channels"
        if len(fits) == 1:
            return fits[0]
        if not fits:
            raise SortingError(f"{path}: templates of shape {shape} have no axis of "
                               f"recordings.n_channels = {n_channels} ({cfg_path}); expected "
                               "(n_units, n_times, n_channels) or (n_channels, n_times, n_units)")
        raise SortingError(f"{path}: templates of shape {shape} fit both (n_units, n_times, n_channels) "
                           f"and (n_channels, n_times, n_units) with {n_channels} channels; set "
                           "sorting.templates_layout to units_times_channels (YASS 2.0) or "
                           "channels_times_units (YASS 0.x)")

    @staticmethod
    def _check_layout(rec: dict, recording: Recording, where: str) -> None:
        dtype = rec.get("dtype")
        if dtype is not None:
            try:
                ok = np.dtype(str(dtype)) == recording.dtype
            except TypeError:
                raise SortingError(f"{where}: recordings.dtype = {dtype!r} is not a numpy dtype") from None
            if not ok:
                raise SortingError(f"{where}: recordings.dtype is {dtype} but recording {recording.name} "
                                   f"is {recording.dtype}; YASS sorted a different file layout")
        order = rec.get("order")
        if order is not None and str(order) != recording.order:
            raise SortingError(f"{where}: recordings.order is {order!r} but recording {recording.name} "
                               f"is {recording.order!r}-major")


def _seconds(stem: str) -> float:
    try:
        return float(stem.split("_")[-1].replace("sec", ""))
    except ValueError:
        return float("inf")


def _int_or_none(value, where, what) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SortingError(f"{where}: {what} = {value!r}, expected a positive integer")
    return int(value)


@hookimpl
def hybridkit_sorter_adapters():
    return [YassAdapter]

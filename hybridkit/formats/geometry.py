"""Probe geometry files shared by readers: probeinterface JSON, .prb, .txt / .npy position lists.

:func:`load_geometry` returns contact positions (one row per contact) and, where the file states
it, the file column of each contact; :func:`build_probe` turns positions + columns into a
probeinterface Probe wired to file columns (what :class:`hybridkit.model.Recording` carries).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridkit.errors import SourceError
from hybridkit.formats.npy import read_npy

def probeinterface() -> types.ModuleType:
    """The ``probeinterface`` module, imported without running ``requests`` until it is used.

    probeinterface's package imports ``requests`` at the top of its probe library (to download
    probe files: reading a SpikeGLX meta or writing a probe JSON never does), and ``requests``
    with urllib3 and charset_normalizer was ~55 ms of a run's ~0.3 s of imports. When nothing
    has imported it yet, ``requests`` is registered as :class:`_ImportOnFirstUse`: the real
    module is imported on its first attribute access, for whoever needs it.
    (``importlib.util.LazyLoader`` cannot do this: ``import requests`` itself reads
    ``requests.__spec__``, which loads a lazy module.)
    """
    if "probeinterface" not in sys.modules and "requests" not in sys.modules:
        spec = importlib.util.find_spec("requests")
        if spec is not None:
            stub = _ImportOnFirstUse("requests")
            stub.__spec__ = spec
            sys.modules["requests"] = stub
    import probeinterface as pi

    return pi


class _ImportOnFirstUse(types.ModuleType):
    """Stands in for a module in ``sys.modules`` until one of its attributes is asked for; then
    the real module is imported (replacing the stand-in) and answers."""

    def __getattr__(self, name: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


#: suffix -> description, for error messages
GEOMETRY_FORMATS = {
    ".json": "probeinterface JSON",
    ".prb": "PRB (probeinterface/klusta)",
    ".txt": "text, one 'x y' per line",
    ".npy": "numpy (n, 2) array",
}


@dataclass
class Geometry:
    """Contacts described by a geometry file.

    Attributes:
        positions: (n_contacts, 2) float64 um (x, y).
        wiring: (n_contacts,) int64 file column of each contact as the file states it
            (probeinterface device_channel_indices / PRB channels), or None when it does not.
        probe: the probeinterface Probe read from the file (2D, connected contacts only), or None.
    """

    positions: np.ndarray
    wiring: np.ndarray | None = None
    probe: Any = None

    def on_columns(self, columns: np.ndarray, n_channels: int, field: str,
                   columns_from: str) -> tuple[np.ndarray, np.ndarray]:
        """The contacts laid on ``n_channels`` file columns, ``columns[i]`` holding contact ``i``.

        Returns ``(positions, neural)``: (n_channels, 2) float64 um with NaN rows for columns
        without a contact, and the (n_channels,) bool mask of columns with one. A column outside
        ``0..n_channels-1`` or given to two contacts raises SourceError naming ``field`` and where
        the columns came from (``columns_from``).
        """
        columns = np.asarray(columns, dtype=np.int64)
        bad = columns[(columns < 0) | (columns >= n_channels)]
        if bad.size:
            raise SourceError(
                f"{field}: column {int(bad[0])} (from {columns_from}) is out of range for "
                f"n_channels={n_channels}; valid columns are 0..{n_channels - 1}"
            )
        uniq, counts = np.unique(columns, return_counts=True)
        if np.any(counts > 1):
            raise SourceError(
                f"{field}: column {int(uniq[counts > 1][0])} (from {columns_from}) is given "
                "to more than one contact"
            )
        positions = np.full((n_channels, 2), np.nan)
        positions[columns] = self.positions
        neural = np.zeros(n_channels, dtype=bool)
        neural[columns] = True
        return positions, neural


def _read_prb(path: Path, field: str):
    """A .prb file as a probeinterface ProbeGroup, like ``probeinterface.read_prb`` but without
    ``exec``: the file is parsed, never run (:mod:`hybridkit.formats.pyliteral`)."""
    pi = probeinterface()

    from hybridkit.formats.pyliteral import NotALiteral, read_assignments

    try:
        names = read_assignments(path)
    except NotALiteral as exc:
        raise SourceError(f"{field}: {path} {exc}; hybridkit reads .prb files without running "
                          "them (literals, range(), names assigned above): write the values out "
                          "or use probeinterface JSON") from None
    except (SyntaxError, RecursionError, UnicodeDecodeError) as exc:
        raise SourceError(f"{field}: {path} is not a valid .prb file ({type(exc).__name__}: "
                          f"{getattr(exc, 'msg', exc)})") from None
    groups = {k.lower(): v for k, v in names.items()}.get("channel_groups")
    if not isinstance(groups, dict) or not groups:
        raise SourceError(f"{field}: {path} has no channel_groups dict; expected "
                          "channel_groups = {0: {'channels': [...], 'geometry': {ch: (x, y)}}}")
    group_of_probes = pi.ProbeGroup()
    for key, group in groups.items():
        try:
            channels = np.array(list(group["channels"]), dtype=np.int64)
            positions = np.array([group["geometry"][c] for c in channels.tolist()], np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"{field}: {path} channel_groups[{key!r}] needs 'channels' and a "
                              f"'geometry' position (x, y) for each of them ({type(exc).__name__}: "
                              f"{exc})") from None
        if positions.ndim != 2 or positions.shape[1] != 2:
            raise SourceError(f"{field}: {path} channel_groups[{key!r}] geometry positions must "
                              f"be (x, y) pairs; got shape {positions.shape}")
        probe = pi.Probe(ndim=2, si_units="um")
        probe.set_contacts(positions=positions, shapes="circle", shape_params={"radius": 5})
        probe.create_auto_shape(probe_type="tip")
        probe.set_device_channel_indices(channels)
        group_of_probes.add_probe(probe)
    return group_of_probes


def _read_probe_file(path: Path, field: str) -> Geometry:
    pi = probeinterface()

    json_file = path.suffix.lower() == ".json"
    try:
        group = pi.read_probeinterface(path) if json_file else _read_prb(path, field)
    except SourceError:
        raise
    except Exception as exc:  # json/KeyError inside probeinterface: report, do not crash
        raise SourceError(
            f"{field}: cannot read {GEOMETRY_FORMATS[path.suffix.lower()]} file {path} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    probes = [p if p.ndim == 2 else p.to_2d(axes="xy") for p in group.probes]
    if not probes:
        raise SourceError(f"{field}: geometry file {path} holds no probe")
    wired = [p.device_channel_indices is not None for p in probes]
    if any(wired) and not all(wired):
        raise SourceError(f"{field}: in {path} some probes have device_channel_indices, others not")
    if all(wired):
        wiring = np.concatenate([np.asarray(p.device_channel_indices, np.int64) for p in probes])
    else:
        wiring = None
    if len(probes) == 1:
        probe = probes[0].copy()
    else:
        probe = pi.combine_probes(probes, connect_shape=False)
    positions = np.asarray(probe.contact_positions, dtype=np.float64)[:, :2]
    if wiring is not None:
        # device index -1 means "not connected": such contacts are not in the file
        keep = wiring >= 0
        if not keep.all():
            probe = probe.get_slice(np.flatnonzero(keep))
            positions, wiring = positions[keep], wiring[keep]
    return Geometry(positions, wiring, probe)


def _read_positions(path: Path, field: str) -> Geometry:
    try:
        if path.suffix.lower() == ".npy":
            arr = read_npy(path, SourceError)
        else:
            # any whitespace separates x and y (YASS split on one space; tabs are common too)
            arr = np.loadtxt(path, dtype=np.float64, ndmin=2, comments="#")
    except (OSError, ValueError) as exc:
        raise SourceError(f"{field}: cannot read positions from {path} ({exc})") from None
    arr = np.asarray(arr, dtype=np.float64) if arr.dtype.kind in "iuf" else None
    if arr is None or arr.ndim != 2 or arr.shape[1] != 2:
        raise SourceError(
            f"{field}: {path} must hold an (n, 2) table of x y positions in um, got "
            f"{'a non-numeric array' if arr is None else f'shape {arr.shape}'}"
        )
    if not np.isfinite(arr).all():
        raise SourceError(f"{field}: {path} has non-finite positions")
    return Geometry(arr)


def load_geometry(path: str | Path, field: str = "recording.geometry") -> Geometry:
    """Read a geometry file; ``field`` names the config field in error messages."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in GEOMETRY_FORMATS:
        valid = ", ".join(f"{s} ({d})" for s, d in GEOMETRY_FORMATS.items())
        raise SourceError(f"{field}: {path} has an unknown geometry format {suffix!r}; use {valid}")
    if not path.is_file():
        raise SourceError(f"{field}: geometry file {path} does not exist")
    if suffix in (".json", ".prb"):
        return _read_probe_file(path, field)
    return _read_positions(path, field)


def build_probe(positions: np.ndarray, columns: np.ndarray, template: Any = None):
    """A 2D probeinterface Probe with contacts at ``positions`` (n, 2) um wired to ``columns`` (n,).

    ``template`` (a Probe with the same contacts, e.g. read from a file) keeps its shapes/contour.
    """
    pi = probeinterface()

    if template is not None:
        probe = template.copy()
    else:
        probe = pi.Probe(ndim=2, si_units="um")
        probe.set_contacts(positions=positions, shapes="circle", shape_params={"radius": 6})
    probe.set_device_channel_indices(np.asarray(columns, dtype=np.int64))
    return probe

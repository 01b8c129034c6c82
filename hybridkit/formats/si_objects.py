"""SpikeInterface recordings and sortings opened from a config, without letting an input file run code.

Three ways in (docs/spikeinterface.md):

* an extractor name and its keyword arguments, e.g. ``{"extractor": "openephys", "folder_path":
  ...}``: the name must be a key of SpikeInterface's own ``recording_extractor_full_dict`` /
  ``sorting_extractor_full_dict`` (the function is looked up there, never evaluated from text);
* a folder written by SpikeInterface's ``save()`` (``si_folder.json``), for recordings and sortings;
* an NPZ sorting file (``NpzSortingExtractor``).

SpikeInterface's own loader trusts its files: ``si_folder.json`` names a Python class that is
imported and called, a ``cached.pkl`` is unpickled, and ``properties/*.npy`` are loaded with
``allow_pickle=True``; its phy/kilosort/klusta readers ``exec`` a ``params.py``. Before anything is
handed to SpikeInterface this module checks that every class named in the JSON is a SpikeInterface
extractor, that no property file holds Python objects, and refuses pickles and the extractors that
execute input files (hybridkit's own ``phy`` and ``kilosort`` adapters read those formats safely).

SpikeInterface is optional: :func:`require` turns its absence into one line naming the extra.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationInfo

from hybridkit.errors import HybridkitError

#: what a user installs to get these plugins
INSTALL_HINT = 'pip install "hybridkit[spikeinterface]"'
#: extractors whose readers execute a file of the input (params.py / config.py) or unpickle one
UNSAFE_EXTRACTORS = {
    "phy": "its reader runs params.py as Python; use hybridkit's own 'phy' adapter",
    "kilosort": "its reader runs params.py as Python; use hybridkit's own 'phy' or 'kilosort' adapter",
    "klusta": "its reader runs the .prm config file as Python",
}
#: extractors that take in-memory arrays or objects, which a config cannot give
NOT_FROM_CONFIG = {"numpy", "binaryfolder", "binary", "zarr", "npzfolder", "numpyfolder"}


def require(what: str, error: type[HybridkitError]):
    """Import spikeinterface.core, or raise ``error`` with the extra to install (one line)."""
    try:
        import spikeinterface.core as si
    except ImportError as exc:
        raise error(f"{what} needs SpikeInterface, which is not installed ({exc.msg}); install "
                    f"the extra: {INSTALL_HINT}") from None
    return si


def extractor_table(kind: str) -> dict[str, Any]:
    """SpikeInterface's ``<kind>_extractor_full_dict`` (name -> read function) minus the unsafe and
    the in-memory ones; ``kind`` is "recording" or "sorting"."""
    import spikeinterface.extractors as se

    full = dict(getattr(se, f"{kind}_extractor_full_dict"))
    if kind == "recording":  # SpikeInterface's own dispatcher between its two Open Ephys readers
        full.setdefault("openephys", se.read_openephys)
    return {k: v for k, v in full.items() if k not in UNSAFE_EXTRACTORS and k not in NOT_FROM_CONFIG}


def check_extractor_call(kind: str, name: str, kwargs: dict, field: str,
                         error: type[HybridkitError]) -> None:
    """Raise ``error`` (one line) unless ``name`` is a known ``kind`` extractor and ``kwargs`` are
    arguments its read function takes (when its signature says; ``**kwargs`` functions are
    checked by SpikeInterface when called)."""
    if name in UNSAFE_EXTRACTORS:
        raise error(f"{field}.extractor: {name!r} is refused: {UNSAFE_EXTRACTORS[name]}")
    table = extractor_table(kind)
    if name not in table:
        raise error(f"{field}.extractor: {name!r} is not a SpikeInterface {kind} extractor; valid: "
                    f"{', '.join(sorted(table))}")
    params = inspect.signature(table[name]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [p for p in params if p not in ("self",)]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise error(f"{field}: {unknown[0]!r} is not an argument of SpikeInterface's {name} reader; "
                    f"valid: {', '.join(valid)}")
    missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty
               and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY) and p not in kwargs]
    if missing:
        raise error(f"{field}: SpikeInterface's {name} reader needs {', '.join(missing)}")


def call_extractor(kind: str, name: str, kwargs: dict, field: str, error: type[HybridkitError]):
    """The object SpikeInterface's ``name`` reader returns for ``kwargs`` (checked first)."""
    check_extractor_call(kind, name, kwargs, field, error)
    try:
        return extractor_table(kind)[name](**kwargs)
    except HybridkitError:
        raise
    except Exception as exc:  # neo and SpikeInterface raise anything on a file they cannot read
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise error(f"{field}: SpikeInterface's {name} reader failed on {args} "
                    f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]})") from None


# -- config sections ---------------------------------------------------------------------------------
def resolve_path_kwargs(extra: dict, info: ValidationInfo) -> dict:
    """Extractor arguments with ``*_path`` values made absolute against the config's folder (as
    :data:`hybridkit.options.ConfigPath` does for declared fields)."""
    base = (info.context or {}).get("base_dir") if info.context else None
    out = dict(extra)
    for key, value in extra.items():
        if key.endswith("_path") and isinstance(value, str) and base is not None:
            p = Path(value).expanduser()
            out[key] = str(p if p.is_absolute() else Path(base) / p)
    return out


def path_kwargs(options, field: str) -> list[tuple[str, Path]]:
    """The extractor arguments of ``options`` (config section ``field``) that name local files or
    folders (``*_path``), as (field name, path): inputs the output guard keeps the output away from."""
    return [(f"{field}.{key}", Path(value)) for key, value in (options.model_extra or {}).items()
            if key.endswith("_path") and isinstance(value, str) and "://" not in value]


def check_choice(options, kind: str, field: str) -> None:
    """Exactly one of ``extractor`` / the saved object's key; the extractor and its arguments known
    to SpikeInterface (a ValueError becomes one config line)."""
    saved = "folder" if kind == "recording" else "path"
    kwargs = dict(options.model_extra or {})
    if (options.extractor is None) == (getattr(options, saved) is None):
        raise ValueError(f"give either extractor (and its arguments) or {saved} (a SpikeInterface "
                         f"save() folder{' or an .npz sorting' if kind == 'sorting' else ''})")
    if options.extractor is None:
        if kwargs:
            raise ValueError(f"unknown key {sorted(kwargs)[0]!r}: extractor arguments go with "
                             f"extractor, not with {saved}")
        return
    for key, value in kwargs.items():
        if not isinstance(value, (str, int, float, bool, type(None), list)):
            raise ValueError(f"extractor argument {key!r} = {value!r}: give a string, number, "
                             "boolean, null or list")

    class _Invalid(HybridkitError):
        pass

    try:
        require(f"{field}.type 'spikeinterface'", _Invalid)
        check_extractor_call(kind, options.extractor, kwargs, field, _Invalid)
    except _Invalid as exc:
        raise ValueError(str(exc)) from None


# -- saved folders -------------------------------------------------------------------------------------
def _check_classes(node, where: Path, error: type[HybridkitError]) -> None:
    """Every ``class`` named anywhere in a SpikeInterface dict must be a SpikeInterface extractor."""
    if isinstance(node, dict):
        cls = node.get("class")
        if isinstance(cls, str):
            from spikeinterface.core.base import BaseExtractor

            ok = cls.startswith("spikeinterface.")
            if ok:
                import importlib

                module, _, name = cls.rpartition(".")
                try:
                    obj = getattr(importlib.import_module(module), name, None)
                except ImportError:
                    obj = None
                ok = isinstance(obj, type) and issubclass(obj, BaseExtractor)
            if not ok:
                raise error(f"{where}: names class {cls!r}, which is not a SpikeInterface extractor; "
                            "refused (loading it would run that code)")
        for value in node.values():
            _check_classes(value, where, error)
    elif isinstance(node, list):
        for value in node:
            _check_classes(value, where, error)


def _check_npy_plain(path: Path, error: type[HybridkitError]) -> None:
    """``path`` must be a .npy of plain numbers/strings: SpikeInterface loads property files with
    ``allow_pickle=True``, so an object array would unpickle (run) whatever it holds."""
    try:  # memory-mapped: nothing is read but the header; object arrays refuse allow_pickle=False
        np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise error(f"{path}: holds Python objects; refused, loading it would unpickle them; "
                        "save properties as numbers or strings") from None
        raise error(f"{path}: not a readable .npy file ({exc})") from None
    except OSError as exc:
        raise error(f"{path}: not a readable .npy file ({exc})") from None


def load_saved(path: Path, field: str, error: type[HybridkitError]):
    """A recording or sorting from a SpikeInterface ``save()`` folder (or a ``dump`` .json file),
    after the checks above; an NPZ sorting file through ``read_npz_sorting``."""
    require(f"{field}: a SpikeInterface folder", error)
    import spikeinterface.core as si

    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        return call_extractor("sorting", "npz", {"file_path": str(path)}, field, error)
    if path.is_dir():
        description = path / "si_folder.json"
        if not description.is_file():
            pickled = [p.name for p in path.glob("cached.p*")]
            what = f" (it has {', '.join(pickled)}: pickles are refused)" if pickled else ""
            raise error(f"{field}: {path} is not a folder saved by SpikeInterface's save(): no "
                        f"si_folder.json{what}")
        for props in (path / "properties").glob("*.npy"):
            _check_npy_plain(props, error)
    elif path.is_file() and path.suffix == ".json":
        description = path
    else:
        raise error(f"{field}: {path} is neither a SpikeInterface save() folder, a .json dump nor "
                    "an .npz sorting")
    try:
        _check_classes(json.loads(description.read_text(encoding="utf-8")), description, error)
    except (OSError, ValueError) as exc:
        raise error(f"{description}: not readable JSON ({exc})") from None
    try:
        return si.load(path)
    except HybridkitError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise error(f"{field}: SpikeInterface cannot load {path} ({type(exc).__name__}: {first})"
                    ) from None


def open_configured(kind: str, saved: Path | None, saved_field: str, extractor: str | None,
                    kwargs: dict, field: str, error: type[HybridkitError], label: str):
    """The SpikeInterface recording or sorting a plugin's options name, checked to be one.

    Args:
        kind: "recording" or "sorting" (the object must be a ``Base<Kind>``).
        saved: a folder (or .npz sorting) written by SpikeInterface, opened with
            :func:`load_saved`; else ``extractor`` is called with ``kwargs`` (:func:`call_extractor`).
        saved_field: the config field of ``saved`` named in errors (``"recording.folder"``).
        field: the config section named in errors (``"recording"``, ``"sorting"``).
        error: the HybridkitError subclass raised (SourceError, SortingError).
        label: what the user gave (a path or the extractor name), for the "not a <kind>" error.
    """
    require(f"{field}.type 'spikeinterface'", error)
    if saved is not None:
        obj = load_saved(Path(saved), saved_field, error)
    else:
        obj = call_extractor(kind, extractor, kwargs, field, error)
    from spikeinterface.core import BaseRecording, BaseSorting

    if not isinstance(obj, BaseRecording if kind == "recording" else BaseSorting):
        raise error(f"{field}: {label} is a {type(obj).__name__}, not a {kind}")
    return obj

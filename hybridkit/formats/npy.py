"""``.npy`` files whose payload is a pickle (Kilosort 4's ops.npy), read without running code.

``np.load(allow_pickle=True)`` lets a file call any importable function while it loads, so a
crafted ``ops.npy`` runs code. Kilosort 4 saves its ``ops`` as a 0-d object array holding a dict of
numpy arrays, numbers, strings, lists and nested dicts; rebuilding that needs only a handful of
globals. This module reads the header with numpy's own ``numpy.lib.format`` and unpickles the
payload with an :class:`pickle.Unpickler` whose ``find_class`` returns only those globals: any
other global (``os.system``, ``builtins.eval``, ...) stops the load before it can be called.
Arrays without objects are read with ``allow_pickle=False``, as everywhere else in hybridkit.
"""
from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from hybridkit.errors import HybridkitError

#: builtin globals a pickle of numpy values may name, and what they resolve to
BUILTINS: dict[tuple[str, str], object] = {
    ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "tuple"): tuple,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
    ("builtins", "complex"): complex, ("builtins", "bytearray"): bytearray,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
#: numpy globals an ndarray/dtype/scalar pickle needs, under numpy 1.x and 2.x module names
NUMPY_INTERNALS = {(mod, name) for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
                   for name in ("_reconstruct", "scalar")}
NUMPY_TYPES = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


def _numpy_internal(name: str):
    """numpy's own ``_reconstruct`` / ``scalar`` (``numpy._core`` in 2.x, ``numpy.core`` in 1.x)."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return getattr(multiarray, name)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays, dtypes, numpy scalars and builtin containers,
    and nothing else: every other global is refused before it is looked up."""

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in NUMPY_INTERNALS:
            return _numpy_internal(name)
        if key in NUMPY_TYPES:
            return NUMPY_TYPES[key]
        if key in BUILTINS:
            return BUILTINS[key]
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which is not a numpy "
                                     "array, dtype, scalar or builtin container")

    def persistent_load(self, pid):  # numpy never writes persistent ids
        raise pickle.UnpicklingError("it holds a persistent id, which numpy never writes")


def read_npy(path: Path, error: type[HybridkitError], label: str) -> np.ndarray:
    """The array in the ``.npy`` file ``path``; object arrays through :class:`NumpyOnlyUnpickler`.

    Args:
        path: the .npy file.
        error: the HybridkitError subclass to raise (the caller's context: config, sorting, ...).
        label: the config field or role of the file, to start the one-line message with.

    Returns:
        the array as ``np.load(path, allow_pickle=True)`` would return it, for the files numpy
        writes; shape and dtype as in the file's header.

    Raises:
        ``error``: not a .npy file, an unsupported version, or a pickle that needs anything
        beyond numpy arrays, dtypes, scalars and builtin containers (nothing of it is run).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = npy_format.read_array_header_2_0(fh)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]}; "
                                 "versions 1.0 and 2.0 are read")
            if not dtype.hasobject:
                fh.seek(0)
                return np.load(fh, allow_pickle=False)
            array = NumpyOnlyUnpickler(fh).load()
    except OSError as exc:
        raise error(f"{label}: cannot read {path} ({exc.strerror or exc})") from None
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError, IndexError,
            KeyError, MemoryError, OverflowError) as exc:
        raise error(f"{label}: {path} is not a .npy file hybridkit can read safely "
                    f"({exc}); expected numpy arrays, numbers, strings and containers only") from None
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape) or array.dtype != dtype:
        raise error(f"{label}: {path}: its payload is a {type(array).__name__}, not the "
                    f"{dtype} array of shape {tuple(shape)} its header announces")
    return array

"""Reading ``.npy`` files written by other programs (sorters, exporters), safely.

``np.load`` trusts the header: a corrupt header raises whatever numpy's header parser meets
(``TokenError``, ``SyntaxError``, ``KeyError``...), and a header claiming a huge shape asks for
that much memory before it notices the file is short. :func:`read_npy` reads the header first,
checks that the file holds the bytes the header promises, and only then loads the data,
never unpickling (``allow_pickle=False``). Every failure is the caller's HybridkitError naming
the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridkit.errors import HybridkitError


def read_npy(path: str | Path, error: type[HybridkitError]) -> np.ndarray:
    """The array in ``path`` (any shape and memory order; object arrays are refused).

    Raises:
        ``error``: the file cannot be read, its header is not a valid .npy header, it holds
        Python objects, or it holds fewer bytes than the shape and dtype its header states.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                # 3.0 differs from 2.0 only in allowing UTF-8 in field names, which a numeric
                # array's header does not hold; numpy has no public 3.0 reader
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unknown .npy format version {version[0]}.{version[1]}")
            offset = fh.tell()
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # numpy's header parser raises many types on corrupt bytes
        raise error(f"{path}: not a readable .npy array: its header is corrupt "
                    f"({type(exc).__name__}: {_one_line(exc)}); expected a file written by np.save") from None
    if dtype.hasobject:
        raise error(f"{path}: holds Python objects (dtype {dtype}); expected a numeric array")
    n_items = 1
    for s in shape:
        n_items *= int(s)
    expected = n_items * dtype.itemsize
    size = path.stat().st_size - offset
    if size < expected:  # more is tolerated, as np.load does: it reads what the header states
        raise error(f"{path}: not a readable .npy array: its header says shape {tuple(shape)} of "
                    f"{dtype} ({expected} bytes) but the file holds {size} bytes of data (truncated "
                    "or corrupt)")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # the header was valid, so this is a damaged body
        raise error(f"{path}: not a readable .npy array ({type(exc).__name__}: {_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]

"""Read MATLAB .mat files, v5/v7 (scipy) and v7.3 (HDF5, h5py), into one shape convention.

Every array comes back in MATLAB's own shape (at least 2-D, column-major meaning kept): an N x 5
``st3`` is (N, 5) whichever version wrote it. v7.3 files are HDF5 datasets whose axes are reversed
(h5py shows MATLAB's N x 5 as (5, N)); they are transposed back here. Other v7.3 encodings handled:
``char`` (uint16 code units), ``logical`` (uint8), empty arrays (stored as a uint64 vector of their
MATLAB dimensions with the attribute ``MATLAB_empty=1``), cell arrays (object references into
``#refs#``), and scalar structs (groups). MATLAB objects (``#subsystem#``) are unreadable and read
as None.

Only the fields asked for are read from a v7.3 file (h5py is lazy), so a multi-GB ``rez.mat`` with
``cProj`` does not have to fit in memory; a v5 file is read whole by scipy (its format has no index).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hybridkit.errors import SortingError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def mat_version(path: Path) -> str:
    """'7.3' (HDF5), '5' (v5/v7, scipy) or '' when ``path`` is not a readable .mat file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(520)
    except OSError:
        return ""
    if head[:8] == HDF5_SIGNATURE or head[512:520] == HDF5_SIGNATURE:
        return "7.3"
    if head.startswith(b"MATLAB 5.0 MAT-file") or head.startswith(b"MATLAB 7"):
        # MATLAB writes "MATLAB 5.0 MAT-file" for v6/v7 too; a 7.3 header with no HDF5 body is truncated
        return "7.3" if head.startswith(b"MATLAB 7.3") else "5"
    return ""


class MatStruct:
    """A scalar MATLAB struct: ``s.get("field")``, ``"field" in s``, ``s.fields``.

    Values are numpy arrays in MATLAB shape, ``str`` for char arrays, :class:`MatStruct` for
    nested structs, lists for cell arrays, None for objects MATLAB alone can read.
    """

    def __init__(self, node: Any, reader: "MatFile", where: str) -> None:
        self._node = node
        self._reader = reader
        self.where = where  # "rez.ops", for messages

    @property
    def fields(self) -> list[str]:
        return self._reader._fields(self._node)

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self.fields:
            return default
        return self._reader._value(self._reader._child(self._node, name), f"{self.where}.{name}")


class MatFile:
    """An open .mat file; ``top`` is the struct of its variables. Use as a context manager.

    Raises:
        SortingError: not a .mat file, or an HDF5/v5 body that cannot be parsed (e.g. truncated).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.version = mat_version(self.path)
        self._h5 = None
        if not self.version:
            raise SortingError(f"{self.path}: not a MATLAB .mat file (no MATLAB 5.0 or 7.3/HDF5 header)")
        if self.version == "7.3":
            import h5py

            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as exc:
                raise SortingError(f"{self.path}: MATLAB v7.3 (HDF5) file cannot be opened, it may "
                                   f"be truncated or still being written ({exc})") from None
            self.top = MatStruct(self._h5, self, "")
        else:
            import scipy.io

            try:
                data = scipy.io.loadmat(self.path, squeeze_me=False, struct_as_record=False,
                                        chars_as_strings=True)
            except Exception as exc:  # scipy raises ValueError/TypeError/OSError on broken files
                raise SortingError(f"{self.path}: MATLAB v5 file cannot be read, it may be "
                                   f"truncated ({type(exc).__name__}: {exc})") from None
            self.top = MatStruct({k: v for k, v in data.items() if not k.startswith("__")}, self, "")

    def __enter__(self) -> "MatFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    # -- node access, per version -----------------------------------------------------------
    def _fields(self, node: Any) -> list[str]:
        if isinstance(node, dict):
            return list(node)
        if self._h5 is not None:
            return [k for k in node.keys() if not k.startswith("#")]
        return list(getattr(node, "_fieldnames", []))

    def _child(self, node: Any, name: str) -> Any:
        if isinstance(node, dict):
            return node[name]
        if self._h5 is not None:
            return node[name]
        return getattr(node, name)

    def _value(self, node: Any, where: str) -> Any:
        try:
            return self._h5_value(node, where) if self._h5 is not None else self._v5_value(node, where)
        except SortingError:
            raise
        except Exception as exc:  # a damaged dataset inside an otherwise readable file
            raise SortingError(f"{self.path}: field {where.lstrip('.')} cannot be read, the file may be "
                               f"truncated or damaged ({type(exc).__name__}: {exc})") from None

    def _v5_value(self, node: Any, where: str) -> Any:
        from scipy.io.matlab import mat_struct

        if isinstance(node, mat_struct):
            return MatStruct(node, self, where)
        if isinstance(node, str):
            return node
        arr = np.asarray(node)
        if arr.dtype.kind == "U":
            return "".join(np.ravel(arr, order="F").tolist())
        if arr.dtype == object:
            if arr.size == 1 and isinstance(arr.flat[0], mat_struct):
                return MatStruct(arr.flat[0], self, where)
            if arr.size == 1 and isinstance(arr.flat[0], str):
                return arr.flat[0]
            return [self._v5_value(x, f"{where}{{{i}}}") for i, x in enumerate(np.ravel(arr, order="F"))]
        if arr.dtype.names:  # a struct loaded as record (not used with struct_as_record=False)
            return None
        return arr if arr.ndim >= 2 else arr.reshape(1, -1)

    def _h5_value(self, node: Any, where: str) -> Any:
        import h5py

        cls = node.attrs.get("MATLAB_class", b"")
        cls = cls.decode() if isinstance(cls, bytes) else str(cls)
        if isinstance(node, h5py.Group):
            if cls in ("struct", "") or not cls:
                return MatStruct(node, self, where)
            return None  # MATLAB objects (containers.Map, ...) live in #subsystem#
        if int(node.attrs.get("MATLAB_empty", 0)):
            dims = tuple(int(d) for d in np.ravel(node[()]))
            return "" if cls == "char" else np.zeros(dims or (0, 0), _MATLAB_DTYPES.get(cls, np.float64))
        data = node[()]
        if cls == "cell":
            refs = np.asarray(data).T
            return [self._h5_value(self._h5[ref], f"{where}{{{i}}}")
                    for i, ref in enumerate(np.ravel(refs, order="F"))]
        arr = np.asarray(data)
        if arr.dtype.kind == "O":  # references without a cell class: dereference
            return [self._h5_value(self._h5[ref], where) for ref in np.ravel(arr.T, order="F")]
        arr = arr.T  # HDF5 keeps MATLAB's column-major axes reversed
        if cls == "char":
            return "".join(map(chr, np.ravel(arr, order="C").astype(np.int64)))
        if cls == "logical":
            arr = arr.astype(bool)
        return arr if arr.ndim >= 2 else arr.reshape(1, -1)


_MATLAB_DTYPES = {
    "double": np.float64, "single": np.float32, "logical": bool, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64,
}


def mat_variables(path: Path) -> list[str]:
    """Names of the top-level variables of a .mat file (cheap: no data read); [] if unreadable."""
    version = mat_version(path)
    try:
        if version == "7.3":
            import h5py

            with h5py.File(path, "r") as f:
                return [k for k in f.keys() if not k.startswith("#")]
        if version == "5":
            import scipy.io

            return [name for name, _, _ in scipy.io.whosmat(path)]
    except Exception:
        return []
    return []


# -- helpers for adapters -------------------------------------------------------------------------
def as_vector(value: Any, path: Path, what: str) -> np.ndarray:
    """A MATLAB row/column vector (1, N)/(N, 1) or empty as a 1-D array; SortingError otherwise."""
    if value is None or isinstance(value, (str, list, MatStruct)):
        raise SortingError(f"{path}: {what} is not a numeric vector (got {type(value).__name__})")
    arr = np.asarray(value)
    if arr.size and sum(s > 1 for s in arr.shape) > 1:
        raise SortingError(f"{path}: {what} has MATLAB shape {'x'.join(map(str, arr.shape))}, "
                           "expected a vector")
    return arr.ravel()


def as_scalar(value: Any, path: Path, what: str) -> float:
    arr = as_vector(value, path, what)
    if arr.size != 1:
        raise SortingError(f"{path}: {what} has {arr.size} values, expected one number")
    return float(arr[0])


def as_integers(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    """int64 copy of ``arr``; SortingError if it holds NaN/inf or non-integer values."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            raise SortingError(f"{path}: {what} holds a non-integer value ({arr.ravel()[i]!r} at "
                               f"index {i}); expected whole samples/ids")
    elif arr.dtype.kind not in "iub":
        raise SortingError(f"{path}: {what} has type {arr.dtype}, expected numbers")
    return arr.astype(np.int64)

"""phy folder files read by more than one place: ``params.py``, ``cluster_*.tsv`` and ``.npy`` arrays.

The ``phy`` sorter adapter, the ``yass`` adapter (its ``.npy`` outputs) and the results reader
(:mod:`hybridkit.results.truth`, the ``phy`` writer's folder) share these readers. None of them runs
code from the files: ``params.py`` is parsed, never executed, and ``.npy`` files never unpickle.
"""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import numpy as np

from hybridkit.errors import SortingError
from hybridkit.formats.npy import read_npy

log = logging.getLogger(__name__)


def read_params_py(path: Path) -> dict:
    """The ``key = literal`` assignments of a phy ``params.py``, without executing it.

    Assignments whose value is not a Python literal (e.g. ``dat_path = os.path.join(...)``) are
    skipped with a debug message; a file that is not valid Python raises SortingError.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise SortingError(
            f"{path}: not a valid params.py (line {exc.lineno}: {exc.msg}); expected lines "
            "like `sample_rate = 30000.0`"
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        raise SortingError(
            f"{path}: not a valid params.py ({type(exc).__name__}: {exc}); expected lines "
            "like `sample_rate = 30000.0`"
        ) from None
    except OSError as exc:
        raise SortingError(f"{path}: cannot read params.py ({exc.strerror})") from None
    params: dict = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            log.debug("%s: skipping non-literal assignment on line %d", path, node.lineno)
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                params[target.id] = value
    return params


def read_cluster_tsv(path: Path, column: str | tuple[str, ...] | None = None) -> dict[int, str]:
    """cluster id -> value from a phy cluster TSV (``cluster_id<TAB>name``, LF or CRLF endings).

    ``column`` names the value column (the first of several names that exists); by default the
    first column other than ``cluster_id``. Empty values are left out.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise SortingError(f"{path}: cannot read ({exc.strerror})") from None
    rows = [line.rstrip("\r").split("\t") for line in lines if line.strip()]
    if not rows:
        return {}
    header = [h.strip() for h in rows[0]]
    if "cluster_id" not in header:
        raise SortingError(
            f"{path}: header {rows[0]!r} has no 'cluster_id' column; expected e.g. "
            "'cluster_id<TAB>group'"
        )
    id_col = header.index("cluster_id")
    wanted = (column,) if isinstance(column, str) else tuple(column or ())
    candidates = [h for h in wanted if h in header] or [
        h for h in header if h != "cluster_id"
    ]
    if not candidates:
        raise SortingError(
            f"{path}: header {header} has no value column"
            + (f" (looked for {', '.join(wanted)})" if wanted else "")
        )
    val_col = header.index(candidates[0])
    out: dict[int, str] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        if len(cells) <= max(id_col, val_col):
            cells += [""] * (max(id_col, val_col) + 1 - len(cells))
        try:
            cid = int(cells[id_col])
        except ValueError:
            raise SortingError(
                f"{path}: line {lineno}: cluster_id {cells[id_col]!r} is not an integer"
            ) from None
        if cells[val_col]:
            out[cid] = cells[val_col]
    return out


def load_npy(path: Path) -> np.ndarray:
    """A .npy array, never unpickled; a corrupt, truncated or oversized file raises SortingError
    (:func:`hybridkit.formats.npy.read_npy` checks the header and size before loading)."""
    return read_npy(path, SortingError)

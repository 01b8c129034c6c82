"""No input file runs code: Kilosort 4's pickled ops.npy is read by a numpy-only unpickler.

The real ops.npy (tests/data/kilosort4_drift_120s_32ch, see its SOURCE.txt) loads exactly as
``np.load(allow_pickle=True)`` loads it; a crafted ops.npy whose pickle would create a file is
refused in one line (exit 2) and the file is never created.
"""
from __future__ import annotations

import ast
import io
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from hybridkit.config.run_config import load_config
from hybridkit.errors import ConfigError
from hybridkit.formats.npy import read_npy
from hybridkit.run.motion import read_kilosort4
from tests.helpers import config_with, main
from tests.conftest import DATA

OPS = DATA / "kilosort4_drift_120s_32ch" / "kilosort4" / "ops.npy"
HYBRIDKIT = Path(__file__).resolve().parents[2] / "hybridkit"


def _same(a, b) -> bool:
    """Deep equality of what np.load gives: same types, dtypes, shapes and values."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, np.generic)):
        return a.dtype == b.dtype and np.shape(a) == np.shape(b) and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    return a == b


def test_real_kilosort4_ops_loads_exactly_as_numpy_loads_it():
    ours = read_npy(OPS, ConfigError, "motion.source.path")
    theirs = np.load(OPS, allow_pickle=True)
    assert ours.shape == theirs.shape == () and ours.dtype == theirs.dtype == object
    a, b = ours.item(), theirs.item()
    assert len(a) > 80 and isinstance(a["dshift"], np.ndarray)  # the real thing, not a stub
    assert _same(a, b)


def test_plain_arrays_are_read_without_pickle(tmp_path):
    arr = np.arange(12, dtype=">i4").reshape(3, 4)
    np.save(tmp_path / "a.npy", arr)
    got = read_npy(tmp_path / "a.npy", ConfigError, "x")
    assert got.dtype == arr.dtype and np.array_equal(got, arr)


class _Touch:
    """Pickles as a call of open(marker, "w"): loading it with pickle creates the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted_ops(path: Path, marker: Path) -> Path:
    """An ops.npy as Kilosort writes it (0-d object array of a dict) with one poisoned value."""
    ops = np.load(OPS, allow_pickle=True).item()
    ops["settings"] = {"n_chan_bin": 32, "payload": _Touch(marker)}
    np.save(path, np.array(ops, dtype=object), allow_pickle=True)
    return path


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "MARKER"
    bad = _crafted_ops(tmp_path / "ops.npy", marker)
    np.load(bad, allow_pickle=True)  # the crafted file does run code under plain np.load...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ConfigError) as err:  # ...and not here
        read_kilosort4(bad)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and "io.open" in msg
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"),
                                         ("numpy", "load"), ("subprocess", "Popen"),
                                         ("numpy.core.multiarray", "fromstring")])
def test_only_numpy_values_and_containers_are_built(tmp_path, module, name):
    """A hand-made payload naming one forbidden global (protocol 2 GLOBAL opcode)."""
    body = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x04\x00\x00\x00trueq\x00\x85R."
    header = {"descr": "|O", "fortran_order": False, "shape": ()}
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, header)
    (tmp_path / "x.npy").write_bytes(buf.getvalue() + body)
    with pytest.raises(ConfigError, match=re.escape(f"{module}.{name}")):
        read_npy(tmp_path / "x.npy", ConfigError, "motion.source.path")


def test_payload_must_be_the_announced_array(tmp_path):
    header = {"descr": "|O", "fortran_order": False, "shape": (2,)}
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, header)
    (tmp_path / "x.npy").write_bytes(buf.getvalue() + pickle.dumps({"a": 1}, protocol=3))
    with pytest.raises(ConfigError, match="payload is a dict"):
        read_npy(tmp_path / "x.npy", ConfigError, "motion.source.path")


def test_generate_with_crafted_ops_exits_2_and_creates_nothing(tmp_path, capsys):
    from hybridkit.example import write_example

    example = write_example(tmp_path / "demo", seed=3, duration_s=4.0).parent
    marker = tmp_path / "MARKER"
    bad = _crafted_ops(tmp_path / "ops.npy", marker)
    out = tmp_path / "out"
    cfg = config_with(example, tmp_path, output={"directory": str(out)},
                      motion={"source": {"type": "kilosort4", "path": str(bad)}})
    load_config(cfg)  # a valid config: the refusal comes from reading the file
    code, _, err = main(capsys, "generate", cfg)
    assert code == 2, err
    assert err.startswith("hybridkit: error: motion.source.path") and len(err.strip().splitlines()) == 1
    assert not marker.exists()
    assert not out.exists() and not list(tmp_path.glob(".out.partial*"))


def test_no_other_loader_may_unpickle():
    """Every np.load call in hybridkit/ passes allow_pickle=False; only formats/npy.py unpickles."""
    calls = 0
    for path in HYBRIDKIT.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("read_npy", "_load_npy", "_npy"):
                calls += 1  # the safe reader (formats/npy.py) and its wrappers in phy.py, truth.py
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("np.load", "numpy.load"):
                calls += 1
                kw = {k.arg: k.value for k in node.keywords}
                assert isinstance(kw.get("allow_pickle"), ast.Constant) and \
                    kw["allow_pickle"].value is False, f"{path}:{node.lineno}: {ast.unparse(node)}"
            if isinstance(node, (ast.Import, ast.ImportFrom)) and path.name != "npy.py":
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "dill", "joblib", "cloudpickle"} & set(names), f"{path}:{node.lineno}"
    assert calls >= 10  # the walk does find the loaders (np.load and read_npy calls)

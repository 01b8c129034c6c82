"""Positional writes of row runs (the legacy writer's write-back of changed rows)."""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.formats.binio import Layout, write_row_runs
from hybridkit.hookspecs import Writer


def test_write_row_runs_writes_only_the_runs(tmp_path):
    n, c, header = 50, 3, 7
    path = tmp_path / "f.bin"
    path.write_bytes(b"h" * header + np.zeros((n, c), np.int16).tobytes())
    lay = Layout(np.dtype(np.int16), c, n, offset=header)
    rows = np.arange(10 * c, dtype=np.int16).reshape(10, c) + 1
    runs = np.array([[0, 2], [4, 5], [9, 10]], np.int64)
    with open(path, "r+b") as fh:
        write_row_runs(fh.fileno(), lay, 20, rows, runs)
    raw = path.read_bytes()
    assert raw[:header] == b"h" * header
    got = np.frombuffer(raw[header:], np.int16).reshape(n, c)
    expected = np.zeros((n, c), np.int16)
    for a, b in runs.tolist():
        expected[20 + a:20 + b] = rows[a:b]
    assert np.array_equal(got, expected)
    with pytest.raises(ValueError, match="samples-major"):
        write_row_runs(0, Layout(np.dtype(np.int16), c, n, order="channels"),
                       0, rows, runs)


def test_a_writer_without_write_runs_gets_one_write_per_run():
    """Third-party writers written before write_runs keep working: the default calls write."""

    class Recorder(Writer):
        name = "recorder"

        def begin(self, recording, out_dir):
            pass

        def finish(self, truth, out_dir):
            return []

        def write(self, start, block, channels=None):
            calls.append((start, block.copy(), channels))

    calls = []
    rows = np.arange(12, dtype=np.int16).reshape(6, 2)
    Recorder(None).write_runs(100, rows, np.array([[1, 3], [5, 6]], np.int64))
    assert [(s, b.tolist(), ch) for s, b, ch in calls] == [(101, rows[1:3].tolist(), None),
                                                           (105, rows[5:6].tolist(), None)]

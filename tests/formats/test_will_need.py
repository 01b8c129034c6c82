"""Read-ahead hints for scattered reads (binio.will_need): the byte ranges asked for are exactly
the ones read next, across files and headers; recordings that are not flat files ask nothing."""
from __future__ import annotations

import os

import numpy as np
import pytest

from hybridkit.engine.noise import estimate_noise_uV, noise_block_bounds, noise_chunk_starts
from hybridkit.formats import binio
from hybridkit.formats.binio import Layout, read_windows
from hybridkit.model import SourceFile
from tests.helpers import make_recording


@pytest.fixture
def hints(monkeypatch):
    """Every posix_fadvise call binio makes, as (fd, offset, length, advice)."""
    calls = []
    monkeypatch.setattr(binio, "_FADVISE", lambda fd, off, n, advice: calls.append((fd, off, n, advice)))
    return calls


def test_read_windows_asks_for_each_window_before_reading(tmp_path, hints):
    n, c, header, length = 400, 5, 11, 7
    data = np.arange(n * c, dtype=np.int16).reshape(n, c)
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * header + data.tobytes())
    starts = np.array([3, 100, 393])
    out = np.empty((3, length, c), np.int16)
    fd = os.open(path, os.O_RDONLY)
    try:
        read_windows(fd, Layout(np.dtype(np.int16), c, n, offset=header), starts, out)
    finally:
        os.close(fd)
    row = c * 2
    assert [(off, size) for _, off, size, _ in hints] == [(header + s * row, length * row) for s in starts]
    assert {advice for *_, advice in hints} == {os.POSIX_FADV_WILLNEED}
    assert all(np.array_equal(out[i], data[s:s + length]) for i, s in enumerate(starts))


def test_recording_ranges_become_byte_ranges_of_each_file(tmp_path, hints):
    data = np.zeros((300, 4), np.int16)
    rec = make_recording(tmp_path, data, n_files=3)  # files of 100 samples
    header = 16  # the second file has a header: its samples start 16 bytes in
    second = rec.files[1]
    raw = second.path.read_bytes()
    second.path.write_bytes(b"h" * header + raw)
    rec.files[1] = SourceFile(path=second.path, n_samples=second.n_samples,
                              first_sample=second.first_sample, offset_bytes=header)
    with rec.opened():
        rec.will_need([(90, 110), (150, 160), (299, 300)])
    row = 4 * 2
    got = sorted((off, size) for _, off, size, _ in hints)
    # (90, 110) crosses from file 0 into file 1; each part is asked of its own file
    assert got == sorted([(90 * row, 10 * row), (header, 10 * row), (header + 50 * row, 10 * row),
                          (99 * row, 1 * row)])


def test_the_noise_estimate_asks_for_its_chunks_first(tmp_path, hints):
    n, c = 60000, 3
    data = np.random.default_rng(0).normal(0, 10, (n, c)).astype(np.int16)
    rec = make_recording(tmp_path, data)
    with rec.opened():
        estimate_noise_uV(rec, np.arange(c))
    starts = noise_chunk_starts(n, 20, 1000)
    want = [(a * c * 2, (b - a) * c * 2) for a, b in noise_block_bounds(n, starts, 1000, None)]
    assert [(off, size) for _, off, size, _ in hints] == want


def test_recordings_that_are_not_flat_files_ask_nothing(hints):
    from hybridkit.plugins.sources.synthetic import SyntheticRecording

    assert SyntheticRecording.flat_binary is False
    rec = SyntheticRecording.__new__(SyntheticRecording)  # will_need looks at the class only
    rec.will_need([(0, 100)])
    assert hints == []


def test_a_refused_hint_does_not_stop_the_reads(tmp_path, monkeypatch):
    """posix_fadvise is advice: a file system that refuses it (EINVAL, ESPIPE) costs nothing."""
    def refuse(fd, off, n, advice):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(binio, "_FADVISE", refuse)
    data = np.arange(40, dtype=np.int16).reshape(10, 4)
    rec = make_recording(tmp_path, data)
    out = np.empty((1, 3, 4), np.int16)
    with rec.opened():
        rec.will_need([(0, 5)])
        rec.read_file_windows(0, np.array([2]), out)
    assert np.array_equal(out[0], data[2:5])

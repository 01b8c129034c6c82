"""Injecting straight into the hybrid copy through a writable map (formats/mapped_writes.py).

The mapped path and the positional path (read the source, write the changed rows back) must give
the same file byte for byte, with the same clip counts; blocks the writer cannot map (crossing
source files) fall back to positional writes inside the same run.
"""
from __future__ import annotations

import errno
import mmap
import os

import numpy as np
import pytest

from hybridkit.config.run_config import EngineConfig
from hybridkit.formats import mapped_writes
from hybridkit.formats.binio import Layout
from hybridkit.formats.mapped_writes import writable_rows
from hybridkit.plugins.writers.legacy.writer import LegacyOptions, LegacyWriter, hybrid_file_name
from hybridkit.plugins.writers.phy import PhyWriter
from hybridkit.run.pipeline import stream_hybrid
from tests.helpers import make_plan, make_recording, make_template, planned_sum

needs_populate = pytest.mark.skipif(not mapped_writes._populate_works,
                                    reason="needs Linux with madvise")


@needs_populate
def test_writable_rows_stores_into_the_file_at_the_right_rows(tmp_path):
    # a header that is not a multiple of the page size, an odd row width: the map's offset is
    # aligned down and the rows must still start exactly at the header's end
    n, c, header = 5000, 7, 1234
    data = np.arange(n * c, dtype=np.int16).reshape(n, c)
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x01" * header + data.tobytes())
    lay = Layout(np.dtype(np.int16), c, n, offset=header)
    fd = os.open(path, os.O_RDWR)
    try:
        rows = writable_rows(fd, lay, 3001, 3400, np.array([[10, 20], [300, 399]]))
        assert rows is not None and rows.shape == (399, c)
        assert np.array_equal(rows, data[3001:3400])  # the file's samples, read through the map
        rows[10:20, 2] += 5
        rows[398, 6] = -1
        del rows  # releases the map
    finally:
        os.close(fd)
    want = data.copy()
    want[3011:3021, 2] += 5
    want[3399, 6] = -1
    raw = path.read_bytes()
    assert raw[:header] == b"\x01" * header
    assert np.array_equal(np.frombuffer(raw[header:], np.int16).reshape(n, c), want)


def test_writable_rows_declines_what_it_cannot_map(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(np.zeros(4000, np.int16).tobytes())
    fd = os.open(path, os.O_RDWR)
    try:
        channels_major = Layout(np.dtype(np.int16), 4, 1000, order="channels")
        assert writable_rows(fd, channels_major, 0, 10, np.array([[0, 10]])) is None
        lay = Layout(np.dtype(np.int16), 4, 1000)
        assert writable_rows(fd, lay, 10, 10, np.zeros((0, 2), np.int64)) is None  # no rows
        if mapped_writes._populate_works:
            # a kernel that refuses the advice (older than 5.14): None, and no further attempts
            monkeypatch.setattr(mapped_writes, "_populate_works", True)  # restored after the test
            monkeypatch.setattr(mapped_writes, "MADV_POPULATE_WRITE", 0x7FFF)
            assert writable_rows(fd, lay, 0, 10, np.array([[0, 10]])) is None
            assert mapped_writes._populate_works is False
            monkeypatch.setattr(mapped_writes, "MADV_POPULATE_WRITE", mmap.MADV_POPULATE_WRITE
                                if hasattr(mmap, "MADV_POPULATE_WRITE") else 23)
            assert writable_rows(fd, lay, 0, 10, np.array([[0, 10]])) is None  # remembered
    finally:
        os.close(fd)


@needs_populate
def test_a_page_the_file_system_cannot_take_is_left_to_positional_writes(tmp_path, monkeypatch):
    """Populating fails (EFAULT: no space for a page, an I/O error): no map, so the caller writes
    positionally and gets the file system's error as an OSError, never a SIGBUS; the kernel's
    support is not written off."""
    class Refusing(mmap.mmap):
        def madvise(self, *args):
            raise OSError(errno.EFAULT, os.strerror(errno.EFAULT))

    path = tmp_path / "f.bin"
    path.write_bytes(np.zeros(4000, np.int16).tobytes())
    monkeypatch.setattr(mmap, "mmap", Refusing)
    monkeypatch.setattr(mapped_writes, "_populate_works", True)
    fd = os.open(path, os.O_RDWR)
    try:
        assert writable_rows(fd, Layout(np.dtype(np.int16), 4, 1000), 0, 10, np.array([[0, 10]])) is None
    finally:
        os.close(fd)
    assert mapped_writes._populate_works is True


def _run(tmp_path, name, rec, plan, writers_extra=(), workers=1):
    out = tmp_path / name
    out.mkdir()
    w = LegacyWriter(LegacyOptions())
    w.begin(rec, out)
    # short blocks (0.05 s = 1500 samples): some lie inside one file, some cross a file edge
    clipped = stream_hybrid(rec, plan, [w, *writers_extra],
                            EngineConfig(progress=False, workers=workers, chunk_duration_s=0.05))
    w.copy.join()
    w.close()
    return clipped, [(out / hybrid_file_name(f.path)).read_bytes() for f in rec.files]


@needs_populate
@pytest.mark.parametrize("workers", [1, 2])
def test_mapped_and_positional_paths_write_the_same_files(tmp_path, monkeypatch, workers):
    """Three source files, events on both sides of each file edge and at the recording's ends,
    overlapping events and saturation: the mapped run equals the positional one byte for byte,
    blocks crossing a file edge fall back to positional writes, and every other block is mapped."""
    rng = np.random.default_rng(3)
    n, c = 24000, 10
    data = rng.normal(0, 30, (n, c)).astype(np.int16)
    data[5000:5100, 3] = 32700  # near the top: the events there saturate
    rec = make_recording(tmp_path, data, n_files=3, sync_last=True)
    a = make_template(1, [1, 2, 3, 4], n_times=40, peak_index=12, amp_uV=400, positions=rec.channel_positions)
    b = make_template(2, [3, 4, 5], n_times=30, peak_index=8, amp_uV=-300, positions=rec.channel_positions, seed=1)
    edge1, edge2 = rec.file_starts[1], rec.file_starts[2]
    t1 = np.array([5, 900, 915, 5040, edge1 - 20, edge1 + 3, 12000, edge2 - 1, n - 10])
    t2 = np.array([20, 910, 5050, edge1 - 2, 15000, edge2 + 5, n - 3])
    plan = make_plan([a, b], [t1, t2], [rng.uniform(0.5, 2.0, t1.size), rng.uniform(0.5, 2.0, t2.size)])

    calls = {"mapped": 0, "declined": 0}
    real = LegacyWriter.patchable_rows

    def counting(self, start, stop, touched):
        got = real(self, start, stop, touched)
        calls["mapped" if got is not None else "declined"] += 1
        return got

    monkeypatch.setattr(LegacyWriter, "patchable_rows", counting)
    clip_mapped, files_mapped = _run(tmp_path, "mapped", rec, plan, workers=workers)
    assert calls["mapped"] > 0 and calls["declined"] > 0  # both paths ran in this run

    monkeypatch.setattr(LegacyWriter, "patchable_rows", lambda self, start, stop, touched: None)
    clip_pos, files_pos = _run(tmp_path, "positional", rec, plan, workers=workers)

    assert files_mapped == files_pos
    assert np.array_equal(clip_mapped, clip_pos) and clip_mapped[3] > 0
    hyb = np.frombuffer(b"".join(files_mapped), np.int16).reshape(n, c).astype(float)
    diff = hyb - data
    unclipped = np.ones((n, c), bool)
    unclipped[:, 3] = hyb[:, 3] < 32767
    expected = planned_sum(plan, n, c, rec.gain_to_uV)
    assert np.abs(diff - expected)[unclipped].max() <= 0.5 + 1e-6
    assert np.count_nonzero(diff[:, 6:]) == 0  # channels no template covers


@needs_populate
def test_writers_of_no_samples_get_no_blocks_and_a_second_writer_of_samples_keeps_positional_writes(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    n, c = 6000, 6
    data = rng.normal(0, 10, (n, c)).astype(np.int16)
    rec = make_recording(tmp_path, data)
    tpl = make_template(1, [1, 2], positions=rec.channel_positions)
    plan = make_plan([tpl], [np.array([100, 3000])], [np.ones(2)])

    class Recorder(LegacyWriter):  # a truth-only writer: writes no samples
        got: list = []

        @classmethod
        def writes_traces(cls, options):
            return False

        def begin(self, recording, out_dir):
            pass

        def write_runs(self, start, rows, runs):
            Recorder.got.append(start)

    asked = []
    real = LegacyWriter.patchable_rows
    monkeypatch.setattr(LegacyWriter, "patchable_rows",
                        lambda self, *a: asked.append(a[0]) or real(self, *a))
    _run(tmp_path, "one", rec, plan, [Recorder(LegacyOptions())])
    assert asked and Recorder.got == []

    # a second writer of samples beside legacy: nobody is asked, both get the changed rows
    asked.clear()

    class Samples(Recorder):
        @classmethod
        def writes_traces(cls, options):
            return True

    _, files = _run(tmp_path, "two", rec, plan, [Samples(LegacyOptions())])
    assert asked == [] and Recorder.got  # the changed rows, positionally
    assert PhyWriter.writes_traces(PhyWriter.Options(type="phy")) is False  # the usual companion maps

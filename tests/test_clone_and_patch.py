"""Copy-on-write clones and writing only the rows that changed.

The clone path (FICLONE) needs a file system with reflinks (XFS, btrfs), which the test machines
do not have: it is exercised by stand-ins for the ioctl, on both sides (the ioctl refuses -> the
byte copy gives the same file; the ioctl "clones" -> injection patches the clone exactly).
bench/bench_generate.py --xfs measures the real thing on an XFS image.
"""
from __future__ import annotations

import errno
import fcntl
import os

import numpy as np
import pytest

from hybridkit.config.run_config import EngineConfig
from hybridkit.engine.chunks import changed_runs
from hybridkit.formats import filecopy
from hybridkit.formats.filecopy import FICLONE, BackgroundCopy, CopyJob
from hybridkit.plugins.writers.legacy.writer import LegacyOptions, LegacyWriter, hybrid_file_name
from hybridkit.run import pipeline
from hybridkit.run.pipeline import stream_hybrid
from tests.helpers import make_plan, make_recording, make_template, planned_sum


def test_changed_runs_merges_only_short_gaps():
    changed = np.array([0, 1, 1, 0, 0, 0, 1, 0, 1, 0], bool)
    assert changed_runs(changed, 2).tolist() == [[1, 3], [6, 9]]
    assert changed_runs(changed, 3).tolist() == [[1, 3], [6, 9]]  # a gap of 3 is not fewer than 3
    assert changed_runs(changed, 4).tolist() == [[1, 9]]
    assert changed_runs(changed, 1).tolist() == [[1, 3], [6, 7], [8, 9]]
    assert changed_runs(np.zeros(5, bool), 4).shape == (0, 2)
    assert changed_runs(np.ones(3, bool), 1).tolist() == [[0, 3]]


def _one_file(tmp_path, size=5000):
    src, dst = tmp_path / "s.bin", tmp_path / "d.bin"
    payload = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes()
    src.write_bytes(payload)
    return CopyJob(src, dst, size), os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC), payload


@pytest.mark.parametrize("err", [errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY])
def test_refused_clone_falls_back_to_an_exact_copy(tmp_path, monkeypatch, err):
    calls = []

    def refuse(fd, request, arg):
        calls.append(request)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(fcntl, "ioctl", refuse)
    job, fd, payload = _one_file(tmp_path)
    copy = BackgroundCopy([job], [fd]).start()
    copy.join()
    os.close(fd)
    assert calls == [FICLONE]  # it was tried, once, with the right request
    assert copy.cloned == [False] and copy.copied == [len(payload)]
    assert job.target.read_bytes() == payload


def test_other_clone_errors_are_reported(tmp_path, monkeypatch):
    def broken(fd, request, arg):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(fcntl, "ioctl", broken)
    job, fd, _ = _one_file(tmp_path)
    copy = BackgroundCopy([job], [fd]).start()
    with pytest.raises(OSError, match="I/O error"):
        copy.join()
    os.close(fd)


def _fake_clone(src: int, dst: int) -> bool:
    """What FICLONE leaves behind, made by copying: the target holds the source's bytes."""
    size = os.fstat(src).st_size
    done = 0
    while done < size:
        done += os.copy_file_range(src, dst, size - done, done, done)
    return True


@pytest.mark.parametrize("order", ["samples", "channels"])
def test_injection_into_a_clone_is_exact_and_writes_only_changed_rows(tmp_path, monkeypatch, order):
    monkeypatch.setattr(filecopy, "_clone", _fake_clone)
    rng = np.random.default_rng(0)
    n, c = 30000, 12
    data = rng.normal(0, 20, (n, c)).astype(np.int16)
    rec = make_recording(tmp_path, data, order=order, sync_last=True)
    tpl = make_template(1, [2, 3, 4, 5], n_times=40, peak_index=12, amp_uV=300,
                        positions=rec.channel_positions)
    times = np.array([20, 600, 640, 9000, 20000, n - 30])
    plan = make_plan([tpl], [times], [rng.uniform(0.5, 1.5, times.size)])

    written = []
    real_write = LegacyWriter.write

    def spy(self, start, block, channels=None):
        written.append((start, block.shape[0]))
        real_write(self, start, block, channels)

    real_runs = LegacyWriter.write_runs

    def spy_runs(self, start, rows, runs):
        written.extend((start + a, b - a) for a, b in runs.tolist())
        real_runs(self, start, rows, runs)

    real_patchable = LegacyWriter.patchable_rows

    mapped = []

    def spy_patchable(self, start, stop, touched):  # the rows made writable in the mapped copy
        target = real_patchable(self, start, stop, touched)
        if target is not None:
            mapped.append(start)
            written.extend((start + a, b - a) for a, b in touched.tolist())
        return target

    monkeypatch.setattr(LegacyWriter, "write", spy)
    monkeypatch.setattr(LegacyWriter, "write_runs", spy_runs)
    monkeypatch.setattr(LegacyWriter, "patchable_rows", spy_patchable)
    out = tmp_path / "out"
    out.mkdir()
    w = LegacyWriter(LegacyOptions())
    w.begin(rec, out)
    clipped = stream_hybrid(rec, plan, [w], EngineConfig(progress=False))
    assert w.copy.cloned == [True]
    # a clone is written positionally: a store through a map would dirty (and unshare) the whole
    # page-cache folio around it
    assert mapped == []
    w.close()
    hyb = np.fromfile(out / hybrid_file_name(rec.files[0].path), np.int16)
    hyb = hyb.reshape(-1, c) if order == "samples" else hyb.reshape(c, -1).T
    diff = hyb.astype(float) - data
    assert clipped.sum() == 0
    assert np.abs(diff - planned_sum(plan, n, c, rec.gain_to_uV)).max() <= 0.5 + 1e-6
    if order == "samples":
        # rows outside the template windows are never written: they stay shared with the source
        rows = sum(k for _, k in written)
        # changed runs closer than the engine's merge gap (16 kB: 682 rows here) are written as
        # one: on a clone each write costs its own copy-on-write extent
        merge_rows = pipeline._MERGE_GAP_BYTES // (c * 2)
        assert rows <= times.size * (tpl.n_times + merge_rows)
        touched = np.zeros(n, bool)
        for s, k in written:
            touched[s:s + k] = True
        changed = np.abs(diff).sum(axis=1) > 0
        assert touched[changed].all()  # every changed row was written
        # and rows left unchanged are written only within a merge gap of changed rows
        assert (touched & ~changed).sum() <= times.size * merge_rows
        # (the first window starts at row 8; rows 8-9 are unchanged but share their page with
        # the changed rows after them); nothing between events further apart than the gap
        first_window = times[0] - tpl.peak_index
        assert not touched[:first_window].any() and not touched[1000:8000].any()
        assert not touched[9000 + tpl.n_times:20000 - tpl.peak_index].any()


def test_clone_hint_sets_copy_on_write_extents_of_one_block_or_says_it_cannot(tmp_path):
    """After a clone the file asks for copy-on-write extents of one block (XFS: fsx_cowextsize),
    so scattered patches do not take 32 blocks each; where the call is refused it says so."""
    import fcntl
    import os
    import struct

    path = tmp_path / "f.bin"
    path.write_bytes(b"\0" * 8192)
    fd = os.open(path, os.O_RDWR)
    try:
        if filecopy._cow_block_by_block(fd):
            attr = bytearray(28)
            fcntl.ioctl(fd, filecopy._FS_IOC_FSGETXATTR, attr)
            xflags, _, _, _, cowext = struct.unpack_from("<5I", attr)
            # a file system that keeps the hint (XFS) reports it back; others may drop it
            assert cowext in (0, os.fstatvfs(fd).f_bsize)
            assert cowext == 0 or xflags & filecopy._FS_XFLAG_COWEXTSIZE
    finally:
        os.close(fd)


def test_clone_hint_asks_for_one_block_and_keeps_the_other_attributes(tmp_path, monkeypatch):
    """What the clone asks of the file system, on any file system: FS_IOC_FSSETXATTR with the
    cowextsize flag added to the file's own flags, its extent size, extent count and project id
    kept, and cowextsize = one block; a refused call is False (the clone stays exact)."""
    import fcntl
    import os
    import struct

    path = tmp_path / "f.bin"
    path.write_bytes(b"\0" * 8192)
    calls = []

    def fake_ioctl(fd, request, arg):
        calls.append((request, bytes(arg)))
        if request == filecopy._FS_IOC_FSGETXATTR:  # the file's attributes: flags 0x1, extsize 7
            struct.pack_into("<5I", arg, 0, 0x1, 7, 3, 42, 0)
        return 0

    monkeypatch.setattr(fcntl, "ioctl", fake_ioctl)
    fd = os.open(path, os.O_RDWR)
    try:
        assert filecopy._cow_block_by_block(fd) is True
        block = os.fstatvfs(fd).f_bsize
    finally:
        os.close(fd)
    assert [c[0] for c in calls] == [filecopy._FS_IOC_FSGETXATTR, filecopy._FS_IOC_FSSETXATTR]
    assert struct.unpack_from("<5I", calls[1][1]) == (0x1 | filecopy._FS_XFLAG_COWEXTSIZE, 7, 3, 42, block)

    def refused(fd, request, arg):
        raise OSError(25, "Inappropriate ioctl for device")

    monkeypatch.setattr(fcntl, "ioctl", refused)
    fd = os.open(path, os.O_RDWR)
    try:
        assert filecopy._cow_block_by_block(fd) is False
    finally:
        os.close(fd)

"""The background copy behind the legacy writer: exact bytes, progress, fallbacks, errors, cancel."""
import errno
import os

import numpy as np
import pytest

from hybridkit.formats import filecopy
from hybridkit.errors import OutputError
from hybridkit.formats.filecopy import BackgroundCopy, CopyJob
from hybridkit.plugins.writers.legacy.writer import LegacyWriter

from tests.helpers import make_recording


def _files(tmp_path, sizes):
    rng = np.random.default_rng(0)
    jobs, fds, data = [], [], []
    for i, size in enumerate(sizes):
        src, dst = tmp_path / f"s{i}.bin", tmp_path / f"d{i}.bin"
        payload = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        src.write_bytes(payload)
        jobs.append(CopyJob(src, dst, size))
        fds.append(os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC))
        data.append(payload)
    return jobs, fds, data


def _close(fds):
    for fd in fds:
        os.close(fd)


@pytest.fixture
def small_segments(monkeypatch):
    monkeypatch.setattr(filecopy, "SEGMENT_BYTES", 1000)


@pytest.mark.parametrize("broken", [(), ("copy_file_range",), ("copy_file_range", "sendfile")])
def test_copies_every_byte_with_each_method(tmp_path, monkeypatch, small_segments, broken):
    """copy_file_range, else sendfile, else reads and writes: the same bytes in every target."""
    def unsupported(*args, **kwargs):
        raise OSError(errno.EXDEV, "cross-device")

    for name in broken:
        monkeypatch.setattr(filecopy, f"_{name}", unsupported)
    jobs, fds, data = _files(tmp_path, [4321, 0, 1000, 999])
    copy = BackgroundCopy(jobs, fds).start()
    copy.join()
    _close(fds)
    for job, payload in zip(jobs, data):
        assert job.target.read_bytes() == payload
    assert copy.copied == [4321, 0, 1000, 999]


def test_wait_for_returns_once_bytes_are_there(tmp_path, small_segments):
    jobs, fds, data = _files(tmp_path, [10_000])
    copy = BackgroundCopy(jobs, fds).start()
    copy.wait_for(0, 2500)
    assert copy.copied[0] >= 2500
    assert os.pread(fds[0], 2500, 0) == data[0][:2500]
    copy.join()
    _close(fds)


def test_short_source_is_an_error_not_a_short_copy(tmp_path, small_segments):
    jobs, fds, _ = _files(tmp_path, [3000])
    jobs = [CopyJob(jobs[0].source, jobs[0].target, 5000)]  # the file shrank after it was described
    copy = BackgroundCopy(jobs, fds).start()
    with pytest.raises(OSError, match="ended at byte 3000 of 5000"):
        copy.wait_for(0, 5000)
    with pytest.raises(OSError):
        copy.join()
    _close(fds)


def test_cancel_stops_after_the_current_segment(tmp_path, monkeypatch, small_segments):
    calls = []

    def copy_and_cancel(src, dst, offset, n):
        calls.append(offset)
        if len(calls) == 2:
            copy._cancel = True  # as if cancel() came in while this segment was being copied
        return filecopy._read_write(src, dst, offset, n)

    monkeypatch.setattr(filecopy, "_copy_file_range", copy_and_cancel)
    jobs, fds, _ = _files(tmp_path, [100_000])
    # bind the name before the thread starts: the callback above reads it from the copy thread
    copy = BackgroundCopy(jobs, fds)
    copy.start()
    copy._thread.join()
    copy.cancel()  # the thread is done: returns at once, never raises
    assert isinstance(copy.error, filecopy.CopyCancelled), repr(copy.error)
    assert calls == [0, 1000] and copy.copied[0] == 2000
    _close(fds)


def test_legacy_writer_reports_a_failed_copy_in_one_line(tmp_path, monkeypatch):
    """Disk full during the background copy: the next write names both files and the reason."""
    def full(src, dst, offset, n):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(filecopy, "_copy_file_range", full)
    data = np.zeros((3000, 4), np.int16)
    rec = make_recording(tmp_path, data)
    out = tmp_path / "out"
    out.mkdir()
    w = LegacyWriter(LegacyWriter.Options())
    w.begin(rec, out)
    with pytest.raises(OutputError, match=r"cannot copy .*rec.*\.bin to .*\.GT\.bin: No space left on device"):
        w.write(100, np.ones((10, 4), np.int16))
    w.abort()
    assert w.fds == []


def test_legacy_writer_reports_a_copy_failing_after_the_last_event(tmp_path, monkeypatch):
    """The copy fails where no event block is: finish (not a write) reports it, in one line."""
    def fails_late(src, dst, offset, n):
        if offset >= 2000:
            raise OSError(errno.EIO, "Input/output error")
        return filecopy._read_write(src, dst, offset, n)

    monkeypatch.setattr(filecopy, "SEGMENT_BYTES", 1000)
    monkeypatch.setattr(filecopy, "_copy_file_range", fails_late)
    rec = make_recording(tmp_path, np.zeros((3000, 4), np.int16))
    out = tmp_path / "out"
    out.mkdir()
    w = LegacyWriter(LegacyWriter.Options())
    w.begin(rec, out)
    with pytest.raises(OutputError, match=r"cannot copy .* Input/output error"):
        w.finish(None, out)
    w.abort()

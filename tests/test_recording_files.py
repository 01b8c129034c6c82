"""A Recording is a description: its files are open only inside ``recording.opened()`` (a run),
owned by a RecordingFiles reader that closes them; nothing stays open after a read or a run."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hybridkit.model import SourceFile
from tests.helpers import assert_generate_invariant, config_with, make_recording


def _open_to(paths) -> int:
    """How many of this process's descriptors point at ``paths``."""
    wanted = {str(Path(p).resolve()) for p in paths}
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") in wanted
        except OSError:
            continue
    return n


def test_reads_outside_a_run_leave_nothing_open(tmp_path):
    data = np.arange(600 * 3, dtype=np.int16).reshape(600, 3)
    rec = make_recording(tmp_path, data, n_files=3)
    paths = [f.path for f in rec.files]
    assert np.array_equal(rec.read(150, 450), data[150:450])  # across file boundaries
    out = np.empty((2, 10, 3), np.int16)
    rec.read_file_windows(1, np.array([0, 50]), out)
    assert np.array_equal(out[1], data[250:260])
    assert _open_to(paths) == 0


def test_opened_shares_the_files_and_closes_them(tmp_path):
    data = np.arange(600 * 3, dtype=np.int16).reshape(600, 3)
    rec = make_recording(tmp_path, data, n_files=2)
    paths = [f.path for f in rec.files]
    with rec.opened() as files:
        rec.read(0, 600)
        assert _open_to(paths) == 2
        with rec.opened() as inner:  # nested: the outer block's files
            assert inner is files
            rec.read(10, 20)
        assert _open_to(paths) == 2
    assert _open_to(paths) == 0


def test_files_replaced_or_edited_in_place_are_read_as_described(tmp_path):
    """No state derived from ``files`` is cached: a swapped list and an edited entry both count."""
    a = np.arange(300 * 2, dtype=np.int16).reshape(300, 2)
    rec = make_recording(tmp_path, a, name="a")
    b = (a + 1000).astype(np.int16)
    other = make_recording(tmp_path, np.concatenate([b, b]), name="b", n_files=2)
    rec.files = other.files
    assert rec.n_samples == 600 and np.array_equal(rec.read(250, 350), np.concatenate([b, b])[250:350])
    header = tmp_path / "with_header.bin"
    header.write_bytes(b"\0" * 8 + a.tobytes())
    rec.files[0] = SourceFile(path=header, n_samples=300, offset_bytes=8)
    rec.files.pop()
    assert rec.n_samples == 300 and np.array_equal(rec.read(0, 300), a)


def test_a_run_closes_the_source_files(tmp_path):
    from hybridkit import generate, load_config
    from hybridkit.example import write_example

    write_example(tmp_path / "demo", seed=3, duration_s=4.0)
    result = generate(load_config(config_with(tmp_path / "demo", tmp_path,
                                              output={"directory": str(tmp_path / "out")})))
    assert_generate_invariant(result)
    assert _open_to([f.path for f in result.truth.recording.files]) == 0


def test_concurrent_reads_outside_a_run_do_not_close_each_others_files(tmp_path):
    """Template building reads from worker threads; outside a run each read has its own files."""
    from concurrent.futures import ThreadPoolExecutor

    data = np.arange(4000 * 4, dtype=np.int16).reshape(4000, 4)
    rec = make_recording(tmp_path, data, n_files=2)

    def window(k: int) -> bool:
        f, offset = k % 2, (k * 37) % 1900  # windows of 50 and 100 samples inside file f
        out = np.empty((1, 50, 4), np.int16)
        rec.read_file_windows(f, np.array([offset]), out)
        start = 2000 * f + offset
        return (np.array_equal(out[0], data[start:start + 50])
                and np.array_equal(rec.read(start, start + 100), data[start:start + 100]))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(window, range(2000)))
    assert _open_to([f.path for f in rec.files]) == 0

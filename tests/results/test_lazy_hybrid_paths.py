"""The lazy hybrid's three ways to a window (compiled into rows copied from the mapped file a piece
at a time, compiled into what the source reader returns, numpy) each give the legacy writer's
samples bit for bit on a three-file flat source: events cut by file edges, by piece edges and by the
window's edges, overlapping events, saturation, windows of one sample."""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.config.run_config import EngineConfig
from hybridkit.engine import inject, inject_compiled
from hybridkit.formats.hybrid_binary import hybrid_file_name
from hybridkit.plugins.writers.legacy.writer import LegacyOptions, LegacyWriter
from hybridkit.results import lazy_hybrid
from hybridkit.run.pipeline import stream_hybrid
from tests.helpers import make_plan, make_recording, make_template

N, C = 12000, 10


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    """(recording of three consecutive files, kernel, the legacy writer's hybrid of each file)."""
    tmp = tmp_path_factory.mktemp("lazy_paths")
    rng = np.random.default_rng(4)
    data = rng.normal(0, 20, (N, C)).astype(np.int16)
    data[:, 3] = -32700  # the negative trough saturates here
    rec = make_recording(tmp, data, n_files=3, sync_last=True)
    t1 = make_template(1, [2, 3, 4, 5], n_times=40, peak_index=12, amp_uV=300, positions=rec.channel_positions)
    t2 = make_template(2, [0, 1, 2, 3], n_times=30, peak_index=10, amp_uV=200, positions=rec.channel_positions,
                       seed=1)
    edges = [N // 3, 2 * N // 3]  # the file edges
    times1 = np.array([12, 500, 510, 3990, edges[0] - 5, edges[0] + 1, 6000, edges[1] + 3, N - 28])
    times2 = np.array([10, 505, 3999, 4010, edges[0], edges[1] - 2, N - 20])
    plan = make_plan([t1, t2], [times1, times2],
                     [rng.uniform(0.5, 1.5, times1.size), rng.uniform(0.5, 1.5, times2.size)])
    out = tmp / "out"
    out.mkdir()
    writer = LegacyWriter(LegacyOptions())
    writer.begin(rec, out)
    clipped = stream_hybrid(rec, plan, [writer], EngineConfig(progress=False))
    writer.close()
    assert clipped.sum() > 0
    written = [np.fromfile(out / hybrid_file_name(f.path), np.int16).reshape(-1, C) for f in rec.files]
    return rec, inject.prepare(plan, rec.gain_to_uV), written


def segments(rec, kernel, path, monkeypatch):
    if path == "read":
        monkeypatch.setattr(lazy_hybrid, "map_samples", lambda *args: None)
    elif path == "numpy":
        monkeypatch.setattr(inject_compiled, "supports", lambda dtype: False)
    segs = lazy_hybrid.hybrid_segments(rec, kernel)
    assert [(s.packed is not None, s.mapped is not None) for s in segs] == [
        {"mapped": (True, True), "read": (True, False), "numpy": (False, False)}[path]] * 3
    return segs


@pytest.mark.parametrize("path", ["mapped", "read", "numpy"])
@pytest.mark.parametrize("chunk", [1, 37, 4000])
def test_every_path_equals_the_legacy_writer_across_file_and_piece_edges(three_files, path, chunk,
                                                                          monkeypatch):
    rec, kernel, written = three_files
    # events whose windows straddle each file edge: their two parts are in two segments
    for edge in rec.file_starts[1:-1].tolist():
        assert np.any((kernel.window_starts < edge) & (kernel.window_stops > edge))
    monkeypatch.setattr(lazy_hybrid, "SUB_BLOCK_BYTES", 7 * C * 2)  # pieces of 7 rows
    for seg, expected in zip(segments(rec, kernel, path, monkeypatch), written):
        n = seg.get_num_samples()
        assert n == expected.shape[0]
        got = np.concatenate([seg.get_traces(a, min(a + chunk, n)) for a in range(0, n, chunk)])
        assert got.dtype == np.int16 and np.array_equal(got, expected)
    source = np.fromfile(rec.files[0].path, np.int16).reshape(-1, C)
    assert not np.array_equal(source, written[0])  # not passing by returning the source


def test_mapped_windows_and_channel_subsets_at_file_edges(three_files, monkeypatch):
    rec, kernel, written = three_files
    segs = segments(rec, kernel, "mapped", monkeypatch)
    last = written[0].shape[0]
    for a, b in ((last - 6, last), (last - 1, last), (0, 1), (0, last)):
        assert np.array_equal(segs[0].get_traces(a, b), written[0][a:b])
    assert np.array_equal(segs[1].get_traces(0, 9, [3, 0]), written[1][:9, [3, 0]])
    # the source's files are mapped read-only: the hybrid never reaches them
    assert not segs[0].mapped.flags.writeable

"""The engine's invariant: hybrid - source == the planned scaled templates within one rounding,
except at samples reported as clipped; at chunk edges, file edges, recording ends and overlaps."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from hybridkit.config.run_config import EngineConfig
from hybridkit.engine import chunks, inject
from hybridkit.run.pipeline import stream_hybrid
from hybridkit.formats.hybrid_binary import hybrid_file_name
from hybridkit.plugins.writers.legacy.writer import LegacyOptions, LegacyWriter
from tests.helpers import make_plan, make_recording, make_template, planned_sum


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(tmp_path, rec, plan, **engine):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    w = LegacyWriter(LegacyOptions())
    w.begin(rec, out)
    clipped = stream_hybrid(rec, plan, [w], EngineConfig(progress=False, **engine))
    w.close()
    hybrid = np.concatenate([np.fromfile(out / hybrid_file_name(f.path), rec.dtype) for f in rec.files])
    if rec.order == "samples":
        hybrid = hybrid.reshape(-1, rec.n_channels)
    else:  # each file is channels-major
        parts = [np.fromfile(out / hybrid_file_name(f.path), rec.dtype).reshape(rec.n_channels, -1).T
                 for f in rec.files]
        hybrid = np.concatenate(parts)
    return hybrid, clipped


def _scenario(tmp_path, n=20000, c=10, n_files=1, order="samples", loud=False, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 20, (n, c)).astype(np.int16)
    if loud:
        data[:, 2] = 32700  # near the top: positive template lobes saturate
        data[:, 3] = -32700  # near the bottom: the negative trough saturates
    rec = make_recording(tmp_path, data, n_files=n_files, order=order, sync_last=True)
    t1 = make_template(1, [2, 3, 4, 5], n_times=40, peak_index=12, amp_uV=300, positions=rec.channel_positions)
    t2 = make_template(2, [0, 1, 2, 3], n_times=30, peak_index=10, amp_uV=200, positions=rec.channel_positions, seed=1)
    # events at both ends of the file, overlapping each other, across block and file edges
    # n // 3 and 2 * n // 3 are the file edges when the recording is split in three files
    times1 = np.array([12, 500, 510, 4990, 5000, n // 3 - 5, 9995, 10001, 2 * n // 3 + 3, n - 28])
    times2 = np.array([10, 505, 4999, 5010, 10000, n - 20])
    plan = make_plan([t1, t2], [times1, times2],
                     [rng.uniform(0.5, 1.5, times1.size), rng.uniform(0.5, 1.5, times2.size)])
    return data, rec, plan


@pytest.mark.parametrize("n_files", [1, 3])
@pytest.mark.parametrize("order", ["samples", "channels"])
def test_invariant_exact_everywhere(tmp_path, n_files, order):
    data, rec, plan = _scenario(tmp_path, n_files=n_files, order=order)
    sources = [_sha(f.path) for f in rec.files]
    # 16-sample blocks: every event window straddles block edges (and, with 3 files, file edges)
    hybrid, clipped = _run(tmp_path, rec, plan, chunk_duration_s=16 / rec.sampling_rate)
    expected = planned_sum(plan, len(data), data.shape[1], rec.gain_to_uV)
    diff = hybrid.astype(np.float64) - data
    assert clipped.sum() == 0
    assert np.abs(diff - expected).max() <= 0.5 + 1e-3
    assert np.array_equal(diff, np.rint(diff))
    # channels without templates and the sync column are untouched
    assert np.array_equal(hybrid[:, 6:], data[:, 6:])
    assert [_sha(f.path) for f in rec.files] == sources  # source never modified


def test_block_size_does_not_change_output(tmp_path):
    data, rec, plan = _scenario(tmp_path)
    a, _ = _run(tmp_path, rec, plan, chunk_duration_s=777 / rec.sampling_rate)
    b, _ = _run(tmp_path, rec, plan, chunk_duration_s=10.0)
    assert np.array_equal(a, b)


def test_parallel_workers_equal_serial(tmp_path):
    data, rec, plan = _scenario(tmp_path)
    a, _ = _run(tmp_path, rec, plan, chunk_duration_s=1000 / rec.sampling_rate)
    b, _ = _run(tmp_path, rec, plan, chunk_duration_s=1000 / rec.sampling_rate, workers=2)
    assert np.array_equal(a, b)


def test_saturation_is_counted_not_wrapped(tmp_path):
    data, rec, plan = _scenario(tmp_path, loud=True)
    hybrid, clipped = _run(tmp_path, rec, plan)
    expected = planned_sum(plan, len(data), data.shape[1], rec.gain_to_uV)
    ideal = data + np.rint(expected)
    over = (ideal > 32767) | (ideal < -32768)
    assert over.sum() > 0
    assert clipped.tolist() == over.sum(axis=0).tolist()
    assert np.array_equal(hybrid[over], np.clip(ideal[over], -32768, 32767))
    # no wrap-around: saturated values sit at the limits, everything else obeys the invariant
    diff = hybrid.astype(np.float64) - data
    assert np.abs(diff - expected)[~over].max() <= 0.5 + 1e-3


def test_event_blocks_cover_windows_and_merge():
    blocks = chunks.event_blocks(np.array([0, 100, 5000]), np.array([50, 150, 5040]), 6000,
                                 max_block=30, merge_gap=60)
    assert blocks.dtype == np.int64 and blocks.tolist() == [
        [0, 30], [30, 60], [60, 90], [90, 120], [120, 150], [5000, 5030], [5030, 5040]]
    # a gap wider than merge_gap starts a new run; overlapping and unsorted windows merge
    blocks = chunks.event_blocks(np.array([300, 0, 20, 120]), np.array([310, 40, 30, 130]), 1000,
                                 max_block=100, merge_gap=79)
    assert blocks.tolist() == [[0, 40], [120, 130], [300, 310]]
    assert chunks.event_blocks(np.zeros(0), np.zeros(0), 10, 5).shape == (0, 2)


def test_window_clipped_to_recording():
    assert chunks.event_blocks(np.array([-5]), np.array([10]), 8, 100).tolist() == [[0, 8]]


def test_chunk_blocks_cover_the_recording():
    assert chunks.chunk_blocks(25, 10).tolist() == [[0, 10], [10, 20], [20, 25]]
    assert chunks.chunk_blocks(20, 10).tolist() == [[0, 10], [10, 20]]
    assert chunks.chunk_blocks(0, 10).shape == (0, 2)


def test_add_rounded_float_recording_not_rounded():
    src = np.zeros((3, 1), np.float32)
    acc = np.full((3, 1), 0.25, np.float32)
    out, clip = inject.add_rounded(src, acc)
    assert out.dtype == np.float32 and np.allclose(out, 0.25) and clip.sum() == 0


def test_parallel_blocks_computed_ahead_are_bounded():
    """Workers never run more than the window ahead of the writing thread (memory stays bounded
    whatever the recording's length), and results come back in order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from hybridkit.run.pipeline import _bounded_map

    started, lock = [], threading.Lock()

    def fn(i):
        with lock:
            started.append(i)
        return i

    with ThreadPoolExecutor(2) as pool:
        out = []
        for i in _bounded_map(pool, fn, list(range(50)), window=4):
            with lock:
                assert len(started) <= len(out) + 4 + 1  # consumed + window (+ the one just taken)
            out.append(i)
    assert out == list(range(50)) and sorted(started) == list(range(50))


# -- events no other event touches, injected apart (the lazy SpikeInterface hybrid) --------------------
def test_isolated_marks_only_events_no_other_event_touches():
    t_a = make_template(0, [0, 1, 2], n_times=40, peak_index=10)
    t_b = make_template(1, [5, 6, 7], n_times=40, peak_index=10)
    t_c = make_template(2, [2, 3, 4], n_times=40, peak_index=10)  # shares column 2 with a
    plan = make_plan([t_a, t_b, t_c], [np.array([100, 1000, 2990]), np.array([110]), np.array([1030])],
                     [np.ones(3, np.float32), np.ones(1, np.float32), np.ones(1, np.float32)])
    k = inject.prepare(plan, np.ones(8))
    events = inject.events_overlapping(k, 0, 3000)
    alone = dict(zip(k.times[events].tolist(), inject.isolated(k, events, 0, 3000).tolist()))
    # a@100 and b@110 overlap in time on disjoint columns: both alone; a@1000 and c@1030 overlap
    # in time and share column 2: neither; a@2990's window runs past the block's end: not alone
    assert alone == {100: True, 110: True, 1000: False, 1030: False, 2990: False}
    # one sample apart in time, no longer overlapping: alone again
    plan = make_plan([t_a, t_c], [np.array([1000]), np.array([1040])], [np.ones(1, np.float32)] * 2)
    k = inject.prepare(plan, np.ones(8))
    assert inject.isolated(k, inject.events_overlapping(k, 0, 3000), 0, 3000).tolist() == [True, True]


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_inject_isolated_equals_accumulate_and_add_rounded(dtype):
    rng = np.random.default_rng(3)
    t = make_template(0, [3, 4, 6, 7], n_times=30, peak_index=8, amp_uV=3000.0)
    times = np.array([50, 200, 400, 4000])
    gains = rng.uniform(0.5, 1.5, 4).astype(np.float32)
    k = inject.prepare(make_plan([t], [times], [gains]), np.full(10, 0.195))
    source = (rng.normal(0, 3000, (5000, 10)).clip(-32768, 32767)).astype(dtype)
    source[42:60, 3] = 32767 if dtype == np.int16 else 0  # saturates under the first event
    expected = source.copy()
    for e in range(4):
        a, b = int(k.window_starts[e]), int(k.window_stops[e])
        channels, acc = inject.accumulate(k, a, b, np.array([e]))
        expected[a:b, channels] = inject.add_rounded(expected[a:b, channels], acc)[0]
    got = source.copy()
    events = inject.events_overlapping(k, 0, 5000)
    assert inject.isolated(k, events, 0, 5000).all()
    inject.inject_isolated(k, got, 0, events, 0)
    assert np.array_equal(got.view(np.uint8), expected.view(np.uint8))  # bit for bit
    assert not np.array_equal(got, source)


def _per_block(k, data, blocks):
    """Reference: each event block injected on its own with accumulate + add_rounded."""
    out = data.copy()
    clipped = np.zeros(data.shape[1], np.int64)
    for a, b in blocks.tolist():
        channels, acc = inject.accumulate(k, a, b, inject.events_overlapping(k, a, b))
        out[a:b, channels], clip = inject.add_rounded(data[a:b, channels], acc)
        clipped[channels] += clip
    return out, clipped


@pytest.mark.parametrize("loud", [False, True])
def test_inject_rows_equals_block_by_block_injection(loud):
    """One call over a long block (isolated events vectorised per template, overlapping ones by
    runs) gives every sample, clipped count and changed row that event blocks give, with a
    template on non-consecutive columns (widened with zeros) and events cut by the block edges."""
    rng = np.random.default_rng(3)
    n, c = 6000, 12
    data = rng.normal(0, 20, (n, c)).astype(np.int16)
    if loud:
        data[:, 2], data[:, 3] = 32700, -32700
    t1 = make_template(1, [2, 3, 4, 5], n_times=40, peak_index=12, amp_uV=300)
    t2 = make_template(2, [0, 1, 2, 3], n_times=30, peak_index=10, amp_uV=200, seed=1)
    t3 = make_template(3, [6, 8, 9], n_times=25, peak_index=8, amp_uV=250, seed=2)  # a gap at 7
    times = [np.array([5, 500, 510, 2000, 3990, 5990]), np.array([503, 1500, 4005]),
             np.array([520, 1000, 1010, 3000, 3001])]
    plan = make_plan([t1, t2, t3], times, [rng.uniform(0.5, 1.5, t.size) for t in times])
    gain = np.full(c, 0.5)
    k = inject.prepare(plan, gain)
    assert isinstance(k.span(2)[1], slice) and k.span(2)[0][:, 1].max() == 0  # column 7: zeros
    start, stop = 8, n - 8  # the first and last events straddle the block's edges
    blocks = chunks.event_blocks(k.window_starts, k.window_stops, n, max_block=n)
    expected, expected_clip = _per_block(k, data, blocks)
    rows = data[start:stop].copy()
    changed = np.zeros(stop - start, bool)
    edge = (k.window_starts < start) | (k.window_stops > stop)
    inject.inject_rows(k, rows, start, changed=changed)
    # the events cut by the block's edges are added where they overlap it
    assert edge.sum() == 2
    ref, _ = _per_block(k, data, np.clip(blocks, start, stop))
    assert np.array_equal(rows, ref[start:stop])
    assert np.array_equal(changed, (rows != data[start:stop]).any(axis=1))
    whole = data.copy()
    clipped = inject.inject_rows(k, whole, 0)
    assert np.array_equal(whole, expected)
    assert np.array_equal(clipped, expected_clip)
    assert (clipped.sum() > 0) == loud


@pytest.mark.parametrize("loud", [False, True])
def test_isolated_events_grouped_by_span_shape_equal_block_by_block_injection(loud):
    """Isolated events of templates with equal span shapes go in one gather/scatter: templates of
    different widths and lengths, one with a column gap (widened), one too scattered for a slice,
    events on the block's first and last rows and next to other templates' events; with loud
    columns a group saturates and is redone per template, its clipped samples counted per column."""
    rng = np.random.default_rng(7)
    n, c = 3000, 40
    data = rng.normal(0, 20, (n, c)).astype(np.int16)
    if loud:
        data[:, 21] = 32760  # under template 2 (group of width 4) only
    tpl = [make_template(1, [0, 1, 2, 3], n_times=30, peak_index=10, amp_uV=300),
           make_template(2, [10, 11, 12, 13], n_times=30, peak_index=10, amp_uV=250, seed=1),
           make_template(3, [20, 21, 22, 23], n_times=30, peak_index=10, amp_uV=-350, seed=2),
           make_template(4, [30, 32, 33, 34], n_times=30, peak_index=12, amp_uV=200, seed=3),  # gap
           make_template(5, [5, 6, 7, 8, 9, 10], n_times=25, peak_index=8, amp_uV=280, seed=4),
           make_template(6, [14, 19, 28], n_times=30, peak_index=10, amp_uV=260, seed=5)]  # scattered
    times = [np.array([10, 400, 2980]), np.array([10, 402, 1500]), np.array([15, 404, 1600]),
             np.array([12, 1500, 2982]), np.array([700, 2500]), np.array([900, 2000])]
    plan = make_plan(tpl, times, [rng.uniform(0.5, 1.5, t.size).astype(np.float32) for t in times])
    k = inject.prepare(plan, np.full(c, 0.5))
    group_of, groups = k.shape_groups()
    # width 4 x 30 samples: units 1-3; widened 5 x 30: unit 4; 6 x 25: unit 5; scattered: none
    assert group_of.tolist() == [0, 0, 0, 1, 2, -1]
    assert [g[0].shape for g in groups] == [(3, 30, 4), (1, 30, 5), (1, 25, 6)]
    events = inject.events_overlapping(k, 0, n)
    alone = inject.isolated(k, events, 0, n)
    assert alone.all()  # every path here is the grouped (or per-template) one
    assert k.window_starts.min() == 0 and k.window_stops.max() == n  # first and last rows
    expected, expected_clip = _per_block(k, data, chunks.event_blocks(k.window_starts, k.window_stops,
                                                                      n, max_block=n))
    got = data.copy()
    changed = np.zeros(n, bool)
    clipped = inject.inject_rows(k, got, 0, events, changed)
    assert np.array_equal(got, expected)
    assert np.array_equal(clipped, expected_clip)
    assert np.array_equal(changed, (got != data).any(axis=1))
    assert (clipped.sum() > 0) == loud and clipped[np.r_[0:21, 22:c]].sum() == 0

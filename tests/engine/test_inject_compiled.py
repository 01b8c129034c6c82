"""engine/inject_compiled.py gives the samples of inject.accumulate + inject.add_rounded bit for bit:
ties rounded half to even, saturation at both limits, overlapping events of several templates summed
in event order, events cut by the block's edges or missing it, any split of the block in pieces,
and int16, uint16 and int32 sources."""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.engine import inject, inject_compiled
from hybridkit.engine.inject import Kernel

N_CH = 12


def kernel(seed: int = 0, n_events: int = 400, n_samples: int = 3000) -> Kernel:
    """Three templates (one with exact .5 ties and gain 1) on overlapping channel sets, events dense
    enough that windows chain into runs of several events."""
    rng = np.random.default_rng(seed)
    ties = np.array([[0.5, 1.5, -0.5], [2.5, -2.5, 3.5], [-1.5, 4.5, 0.5]], np.float32)
    raw = [np.repeat(ties, 5, axis=0),  # (15, 3), peak values exactly between two integers
           rng.normal(0, 40, (30, 4)).astype(np.float32),
           rng.normal(0, 9000, (20, 5)).astype(np.float32)]  # loud enough to saturate
    cols = [np.array([1, 2, 3]), np.array([2, 3, 4, 5]), np.array([0, 1, 5, 8, 9])]
    before = np.array([4, 10, 6])
    times = np.sort(rng.integers(-20, n_samples + 20, n_events))
    unit_index = rng.integers(0, 3, n_events)
    gains = rng.uniform(0.5, 1.5, n_events).astype(np.float32)
    gains[unit_index == 0] = 1.0  # the ties stay ties
    ws = times - before[unit_index]
    we = ws + np.array([r.shape[0] for r in raw])[unit_index]
    return Kernel(raw=raw, cols=cols, times=times, unit_index=unit_index, gains=gains,
                  window_starts=ws, window_stops=we, max_before=int(before.max()),
                  max_after=int(max(r.shape[0] - b for r, b in zip(raw, before))))


def numpy_reference(k: Kernel, source: np.ndarray, start: int) -> np.ndarray:
    """One accumulate over the whole block, then add_rounded: the engine's definition."""
    stop = start + source.shape[0]
    channels, acc = inject.accumulate(k, start, stop, inject.events_overlapping(k, start, stop))
    out = source.copy()
    out[:, channels] = inject.add_rounded(source[:, channels], acc)[0]
    return out


def source_block(dtype, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    mid = (int(info.min) + int(info.max)) // 2
    data = np.clip(rng.normal(mid, 30, (n, N_CH)), info.min, info.max).astype(dtype)
    data[:, 8] = info.max - 3  # near the top and the bottom: template lobes saturate there
    data[:, 9] = info.min + 3
    return data


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32])
def test_compiled_equals_numpy_on_blocks_cut_anywhere(dtype):
    k = kernel()
    packed = inject_compiled.pack(k)
    source = source_block(dtype, 3000)
    start = 0
    expected = numpy_reference(k, source, start)
    assert not np.array_equal(expected, source)
    info = np.iinfo(dtype)
    assert (expected[:, 8] == info.max).sum() > 10 and (expected[:, 9] == info.min).sum() > 10
    events = inject_compiled.by_window_start(packed, inject.events_overlapping(k, 0, 3000))
    whole = source.copy()
    inject_compiled.inject_events(packed, whole, start, events)
    assert np.array_equal(whole, expected)
    # the same block in pieces (1 sample, odd sizes, across windows), each given every event
    rng = np.random.default_rng(5)
    edges = np.unique(np.r_[0, 1, 2, rng.integers(0, 3000, 40), 3000])
    pieces = source.copy()
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        inject_compiled.inject_events(packed, pieces[a:b], a, events)
    assert np.array_equal(pieces, expected)


def test_ties_round_half_to_even_and_runs_sum_in_event_order():
    k = kernel(n_events=0)
    # template 0 alone at 100 (ties), then a run: template 0 twice on the same samples and template
    # 1 across them; gains that make float32 sums depend on their order
    k.times = np.array([100, 300, 300, 305])
    k.unit_index = np.array([0, 0, 0, 1])
    k.gains = np.array([1.0, 1.0, 1e-8, 3.3], np.float32)
    before = np.array([4, 10, 6])
    k.window_starts = k.times - before[k.unit_index]
    k.window_stops = k.window_starts + np.array([15, 30, 20])[k.unit_index]
    packed = inject_compiled.pack(k)
    source = np.zeros((400, N_CH), np.int16)
    out = source.copy()
    inject_compiled.inject_events(packed, out, 0, inject_compiled.by_window_start(packed, np.arange(4)))
    assert np.array_equal(out, numpy_reference(k, source, 0))
    # rint(0.5) == 0, rint(1.5) == 2, rint(2.5) == 2, rint(-2.5) == -2, rint(3.5) == 4
    assert out[96, 1:4].tolist() == [0, 2, 0] and out[101, 1:4].tolist() == [2, -2, 4]


def test_a_run_sums_its_events_in_time_order_not_window_order():
    """float32 sums depend on their order: 2**24 + 1 - 2**24 is 0 in time order, 1 if the event
    whose window starts first (the third in time) were added first."""
    big = np.float32(2 ** 24)
    k = Kernel(raw=[np.full((5, 1), big), np.ones((5, 1), np.float32), np.full((20, 1), -big)],
               cols=[np.array([7])] * 3, times=np.array([300, 301, 302]), unit_index=np.arange(3),
               gains=np.ones(3, np.float32), window_starts=np.array([300, 301, 292]),
               window_stops=np.array([305, 306, 312]), max_before=10, max_after=10)
    packed = inject_compiled.pack(k)
    source = np.zeros((400, N_CH), np.int16)
    out = source.copy()
    inject_compiled.inject_events(packed, out, 0, inject_compiled.by_window_start(packed, np.arange(3)))
    expected = numpy_reference(k, source, 0)
    assert expected[301:305, 7].tolist() == [0, 0, 0, 0]
    assert np.array_equal(out, expected)


def test_no_events_and_events_that_miss_the_block_change_nothing():
    k = kernel()
    packed = inject_compiled.pack(k)
    source = source_block(np.int16, 50)
    out = source.copy()
    inject_compiled.inject_events(packed, out, 10_000, inject_compiled.by_window_start(packed, np.arange(20)))
    inject_compiled.inject_events(packed, out, 0, np.zeros(0, np.int64))
    assert np.array_equal(out, source)


def test_supports_integer_sources_up_to_32_bits():
    assert inject_compiled.AVAILABLE  # numba comes with the test extra: the fast path is tested
    assert all(inject_compiled.supports(d) for d in (np.int16, np.uint16, np.int8, np.int32))
    assert not any(inject_compiled.supports(d) for d in (np.float32, np.float64, np.int64))
    assert not inject_compiled.supports(np.dtype(np.int16).newbyteorder())  # numpy's path handles it

"""Drift-aware ``generate`` on the example dataset (NP1.0, 4 s): zero motion is the static output
bit for bit, a rigid one-row step moves the injected waveform and the ground-truth channel by one
row, and the hybrid minus the source is exactly the planned per-event variant templates."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.model import Plan
from hybridkit.run.pipeline import generate

from tests.helpers import config_with

N_CH = 385
STEP_S = 2.0  # the rigid step's time (the example is 4 s long)
BIN = "demo_g0_t0.imec0.ap.GT.bin"


def planned_sum_variants(plan: Plan, n_samples: int, n_channels: int, gain_to_uV) -> np.ndarray:
    """Independent float64 reference: each event's own (drift variant) template, scaled, in raw
    units, summed; (n, C)."""
    out = np.zeros((n_samples, n_channels))
    for t, u, v, g in zip(plan.times, plan.unit_index, plan.variant_index, plan.gains):
        tpl = plan.units[u].variant_templates[v]
        a = t - tpl.peak_index
        raw = tpl.waveform.astype(np.float64) / gain_to_uV[tpl.channels]
        lo, hi = max(a, 0), min(a + tpl.n_times, n_samples)
        out[lo:hi, tpl.channels] += float(g) * raw[lo - a:hi - a]
    return out


def run(example: Path, tmp: Path, motion: dict | None, writers: list | None = None):
    extra = {"motion": motion} if motion is not None else {}
    path = config_with(example, tmp, output={"directory": str(tmp / "out")},
                       writers=writers or [{"type": "legacy"}], **extra)
    return generate(load_config(path))


def step_motion(step_um: float) -> dict:
    return {"source": {"type": "table", "times_s": [0.0, STEP_S], "displacement_um": [0.0, step_um],
                       "interpolation": "previous"}, "reference": "zero"}


@pytest.fixture(scope="module")
def static(example, tmp_path_factory):
    return run(example, tmp_path_factory.mktemp("static"), None)


@pytest.fixture(scope="module")
def stepped(example, tmp_path_factory):
    from tests.test_nwb_end_to_end import NWB_META

    # with a ground-truth-only NWB file: its per-spike position columns must follow the motion too
    nwb = {"type": "nwb", **NWB_META, "inspect": "off", "traces": False, "file_name": "truth.nwb"}
    return run(example, tmp_path_factory.mktemp("step"), step_motion(20.0), [{"type": "legacy"}, nwb])


def read_bin(result) -> np.ndarray:
    return np.fromfile(result.output_dir / BIN, np.int16).reshape(-1, N_CH)


def test_zero_motion_is_static_bit_for_bit(example, tmp_path, static):
    zero = run(example, tmp_path, {"source": {"type": "table", "times_s": [0.0, 4.0],
                                              "displacement_um": [0.0, 0.4]}, "reference": "zero"})
    assert not zero.truth.plan.drifting  # 0.4 um rounds to grid step 0: no variant was built
    for name in (BIN, "firings_true.npy", "hybrid_events-demo.csv", "artificial_units-demo.csv"):
        assert (zero.output_dir / name).read_bytes() == (static.output_dir / name).read_bytes(), name


def test_step_before_the_step_is_static_bit_for_bit(static, stepped):
    """Events before the step use variant 0, the static template object, in the drifting kernel."""
    plan = stepped.truth.plan
    assert plan.drifting and np.array_equal(plan.times, static.truth.plan.times)
    tpl_len = max(u.template.n_times for u in plan.units)
    cut = int(STEP_S * 30000) - tpl_len  # no window of a post-step event reaches here
    assert np.array_equal(read_bin(stepped)[:cut], read_bin(static)[:cut])
    late = plan.times >= STEP_S * 30000
    assert late.any() and (~late).any()
    zero_idx = np.array([u.variants.zero for u in plan.units])[plan.unit_index]
    assert np.array_equal(plan.variant_index[~late], zero_idx[~late])


def test_step_moves_firings_true_channel_and_positions_one_row(static, stepped):
    rec = stepped.truth.recording
    ft_static = np.load(static.output_dir / "firings_true.npy")
    ft = np.load(stepped.output_dir / "firings_true.npy")
    assert np.array_equal(ft[1:], ft_static[1:])  # same times and units
    late = ft[1] >= STEP_S * 30000
    y_static, y = rec.channel_positions[ft_static[0].astype(int), 1], rec.channel_positions[ft[0].astype(int), 1]
    assert np.array_equal(ft[0, ~late], ft_static[0, ~late])
    assert np.array_equal(y[late], y_static[late] + 20.0)  # exactly one row up the probe
    # NP1.0 is staggered: one row up is 16 um to the side of the old peak's x
    x_static, x = rec.channel_positions[ft_static[0].astype(int), 0], rec.channel_positions[ft[0].astype(int), 0]
    assert np.array_equal(np.abs(x[late] - x_static[late]), np.full(late.sum(), 16.0))
    with open(stepped.output_dir / "hybrid_events-demo.csv") as fh:
        rows = list(csv.DictReader(fh))
    ys = np.array([float(r["y_um"]) for r in rows])
    with open(static.output_dir / "hybrid_events-demo.csv") as fh:
        ys_static = np.array([float(r["y_um"]) for r in csv.DictReader(fh)])
    assert np.array_equal(ys[late], ys_static[late] + 20.0) and np.array_equal(ys[~late], ys_static[~late])
    assert np.allclose(stepped.truth.plan.event_positions()[:, 1], ys, atol=5e-4)


def test_nwb_units_per_spike_positions_follow_the_motion(stepped):
    """The NWB units table says where each unit was at each spike: x/y and peak channel per spike,
    equal to the legacy tables (which follow the motion), per unit in spike order."""
    from pynwb import NWBHDF5IO

    plan = stepped.truth.plan
    ft = np.load(stepped.output_dir / "firings_true.npy").astype(np.int64)
    pos = plan.event_positions()
    with NWBHDF5IO(str(stepped.output_dir / "truth.nwb"), "r") as io:
        units = io.read().units
        ids = list(units.id[:])
        for k, u in enumerate(plan.units):
            row = ids.index(u.new_unit_id)
            mine = plan.unit_index == k
            np.testing.assert_array_equal(units["spike_y_um"][row], pos[mine, 1])
            np.testing.assert_array_equal(units["spike_x_um"][row], pos[mine, 0])
            np.testing.assert_array_equal(units["spike_peak_channel"][row], ft[0, mine])
            late = plan.times[mine] >= STEP_S * 30000
            assert late.any() and (~late).any()
            assert np.array_equal(units["spike_y_um"][row][late] - units["spike_y_um"][row][~late][0],
                                  np.full(late.sum(), 20.0))


def _centre(tpl, positions: np.ndarray) -> np.ndarray:
    """(x, y) um: contact positions weighted by each channel's peak-to-peak amplitude."""
    a = np.ptp(tpl.waveform, axis=0)
    return (a[:, None] * positions[tpl.channels]).sum(axis=0) / a.sum()


def test_step_moves_the_waveform_one_row(stepped):
    plan, rec = stepped.truth.plan, stepped.truth.recording
    pos = rec.channel_positions
    for unit in plan.units:
        v = unit.variants
        assert v is not None and v.offsets_um[v.zero] == 0.0 and v.offsets_um[-1] == 20.0
        static, moved = unit.template, v.templates[-1]
        assert moved.waveform.dtype == np.float32
        # 1) exactly the linear interpolation: an interior contact q one row up takes the mean of
        #    the two contacts 16 um either side of q - (0, 20) (zero off the static template)
        value = {tuple(pos[c]): static.waveform[:, i] for i, c in enumerate(static.channels)}
        zero = np.zeros(static.n_times, np.float32)
        checked = 0
        for i, c in enumerate(moved.channels):
            x, y = pos[c]
            if x in (16.0, 32.0):  # both lateral neighbours exist on the row below
                expect = 0.5 * (value.get((x - 16, y - 20), zero) + value.get((x + 16, y - 20), zero))
                assert np.allclose(moved.waveform[:, i], expect, atol=1e-3), (unit.new_unit_id, c)
                checked += 1
        assert checked >= 4
        # 2) the footprint's amplitude-weighted centre moves 20 um up (to interpolation
        #    tolerance: staggered rows are averaged laterally) and not sideways; the peak
        #    channel's waveform keeps its shape
        y0 = float(static.position[1])
        move = _centre(moved, pos) - _centre(static, pos)
        assert abs(move[1] - 20.0) < 1.5 and abs(move[0]) < 1.0, move
        a = static.waveform[:, np.flatnonzero(static.channels == static.peak_channel)[0]]
        b = moved.waveform[:, np.flatnonzero(moved.channels == moved.peak_channel)[0]]
        assert np.corrcoef(a, b)[0, 1] > 0.99
        assert 0.6 < np.abs(b).max() / np.abs(a).max() <= 1.0 + 1e-6
        assert pos[moved.peak_channel, 1] == y0 + 20.0
        assert np.array_equal(moved.position, static.position + [0.0, 20.0])


def test_hybrid_minus_source_is_planned_variant_sum(stepped, example):
    plan, rec = stepped.truth.plan, stepped.truth.recording
    src = np.fromfile(example / "demo_g0" / "demo_g0_t0.imec0.ap.bin", np.int16).reshape(-1, N_CH)
    diff = read_bin(stepped).astype(np.int64) - src
    expected = planned_sum_variants(plan, src.shape[0], N_CH, rec.gain_to_uV)
    assert stepped.truth.clipped_samples == 0
    # float32 accumulation vs a float64 reference: identical after rounding except at .5 ties
    mismatch = np.abs(diff - np.rint(expected))
    assert mismatch.max() <= 1 and (mismatch > 0).sum() <= 20
    assert np.abs(diff - expected).max() <= 0.5 + 1e-3
    # the drifting events really differ from what the static template would have injected
    assert plan.variant_index.max() > 0

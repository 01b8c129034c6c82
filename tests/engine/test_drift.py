"""engine/drift.py: motion grids, synthetic motion, templates across depth, per-event variants."""
from __future__ import annotations

import time

import numpy as np
import pytest

from hybridkit.engine import drift
from hybridkit.engine import inject
from hybridkit.example import np1_positions
from hybridkit.model import PlacedUnit, Plan, Template

NP1 = np1_positions()  # (384, 2): x in {16, 48} on even rows, {0, 32} on odd rows, rows 20 um apart
NEURAL = np.ones(384, bool)


def np1_template(peak: int, unit_id: int = 1, n_times: int = 82, radius_um: float = 60.0) -> Template:
    """A trough at sample 30 decaying over 25 um from contact ``peak``, sparse within radius_um."""
    d = np.hypot(*(NP1 - NP1[peak]).T)
    ch = np.flatnonzero(d <= radius_um)
    t = np.arange(n_times) - 30
    shape = -np.exp(-(t / 3.0) ** 2) + 0.3 * np.exp(-((t - 10) / 6.0) ** 2)
    wf = (120.0 * shape[:, None] * np.exp(-d[ch] / 25.0)[None, :]).astype(np.float32)
    return Template(unit_id=unit_id, waveform=wf, channels=ch, peak_index=30, peak_channel=peak,
                    position=NP1[peak], source="test")


# -- Motion -----------------------------------------------------------------------------------
def test_rigid_linear_and_held_beyond_ends():
    m = drift.Motion([1.0, 3.0, 5.0], [100.0], [[0.0], [10.0], [-10.0]])
    got = m.displacement_at([0.0, 1.0, 2.0, 3.0, 4.5, 9.0], 123.0)
    assert np.allclose(got, [0.0, 0.0, 5.0, 10.0, -5.0, -10.0])


def test_previous_holds_each_value_until_the_next_time():
    m = drift.Motion([0.0, 2.0, 3.0], [0.0], [0.0, 20.0, -4.0], "previous")
    got = m.displacement_at([0.0, 1.999, 2.0, 2.5, 3.0, 100.0], 0.0)
    assert np.array_equal(got, [0.0, 0.0, 20.0, 20.0, -4.0, -4.0])


def test_non_rigid_interpolates_between_depth_bins():
    m = drift.Motion([0.0, 10.0], [100.0, 300.0], [[0.0, 0.0], [10.0, 30.0]])
    got = m.displacement_at([10.0, 10.0, 10.0, 10.0, 5.0], [50.0, 100.0, 150.0, 1000.0, 200.0])
    assert np.allclose(got, [10.0, 10.0, 15.0, 30.0, 10.0])


def test_combined_and_shifted():
    a = drift.Motion([0.0, 10.0], [0.0], [0.0, 10.0])
    b = drift.Motion([0.0], [0.0], [2.0])
    assert np.allclose(drift.CombinedMotion([a, b]).displacement_at([5.0], 0.0), [7.0])
    assert np.allclose(drift.shifted(a, 5.0).displacement_at([0.0, 10.0], 0.0), [-5.0, 5.0])


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        drift.Motion([0.0, 0.0], [0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        drift.Motion([0.0, 1.0], [0.0, 1.0], [0.0, 1.0])


# -- synthetic --------------------------------------------------------------------------------
def test_zigzag_corners_start_and_stop():
    m = drift.synthetic_motion("zigzag", 100.0, 15.0, 40.0, start_s=10.0, stop_s=85.0)
    got = m.displacement_at([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 55.0, 75.0, 85.0, 90.0], 0.0)
    assert np.allclose(got, [0.0, 0.0, 15.0, 0.0, -15.0, 0.0, 7.5, -7.5, -7.5, -7.5])  # cut at 85 s, then held


def test_bumps_and_random_walk():
    m = drift.synthetic_motion("bumps", 60.0, 10.0, 20.0, sampling_hz=100.0)
    got = m.displacement_at([0.0, 5.0, 10.0, 15.0, 25.0], 0.0)
    assert np.allclose(got, [0.0, 10.0, 0.0, 0.0, 10.0], atol=1e-9)
    a = drift.synthetic_motion("random_walk", 60.0, 8.0, 10.0, rng=np.random.default_rng(1))
    b = drift.synthetic_motion("random_walk", 60.0, 8.0, 10.0, rng=np.random.default_rng(1))
    c = drift.synthetic_motion("random_walk", 60.0, 8.0, 10.0, rng=np.random.default_rng(2))
    assert np.array_equal(a.displacement_um, b.displacement_um)
    assert not np.array_equal(a.displacement_um, c.displacement_um)
    assert np.abs(a.displacement_um).max() <= 8.0 and np.abs(a.displacement_um).max() > 1.0
    assert a.displacement_um[0, 0] == 0.0


def test_gradient_makes_it_non_rigid():
    m = drift.synthetic_motion("zigzag", 40.0, 10.0, 40.0, depth_range_um=(0.0, 1000.0),
                               gradient_per_mm=0.5)
    assert np.allclose(m.displacement_at([10.0] * 3, [0.0, 500.0, 1000.0]), [7.5, 10.0, 12.5])


# -- templates across depth -------------------------------------------------------------------
def test_variants_zero_is_the_static_object_and_two_rows_are_exact():
    mover = drift.ProbeDepthMover(NP1, NEURAL)
    tpl = np1_template(150)
    v = mover.variants(tpl, np.array([-40.0, -1.0, 0.0, 1.0, 40.0]))
    assert v.templates[v.zero] is tpl and v.offsets_um[v.zero] == 0.0
    up = v.templates[4]  # 40 um = 2 rows = 4 contacts up on NP1: a lattice move, exact
    assert np.array_equal(up.channels, tpl.channels + 4)
    assert np.allclose(up.waveform, tpl.waveform, atol=1e-4)
    assert up.peak_channel == 154 and np.array_equal(up.position, NP1[150] + [0.0, 40.0])
    down = v.templates[0]
    assert np.array_equal(down.channels, tpl.channels - 4) and down.peak_channel == 146
    small = v.templates[3]  # 1 um: between contacts, a convex combination, float32 and sparse
    assert small.waveform.dtype == np.float32
    assert np.abs(small.waveform).max() <= np.abs(tpl.waveform).max() + 1e-4
    assert small.channels.size <= tpl.channels.size + 4
    assert np.array_equal(small.position, NP1[150] + [0.0, 1.0])


def test_precomputed_size_and_speed_50_units_60_um():
    """Memory stays bounded: the number the issue asks to report (50 units x 61 offsets of 1 um)."""
    mover = drift.ProbeDepthMover(NP1, NEURAL)
    offsets = np.arange(-30, 31, dtype=np.float64)
    offsets[30] = 0.0
    templates = [np1_template(40 + 6 * k, unit_id=k) for k in range(50)]
    t0 = time.perf_counter()
    sets = [mover.variants(t, offsets) for t in templates]
    per_template = (time.perf_counter() - t0) / 50
    total = sum(v.nbytes for v in sets)
    dense = 50 * 60 * 82 * 384 * 4  # the same variants over all 384 channels
    print(f"\n50 units x 61 offsets: {total / 1e6:.1f} MB float32 sparse "
          f"({dense / 1e6:.0f} MB dense); {per_template * 1e3:.1f} ms per template")
    assert all(t.waveform.dtype == np.float32 for v in sets for t in v.templates)
    assert total < 0.1 * dense


def test_apply_motion_rounds_to_grid_and_kernel_uses_variants():
    tpl = np1_template(150)
    unit = PlacedUnit(new_unit_id=7, source_unit_id=3, template=tpl, shift_um=np.zeros(2))
    still = PlacedUnit(new_unit_id=8, source_unit_id=4, template=np1_template(300, 4), shift_um=np.zeros(2))
    times = np.array([100, 30000, 60000, 90000, 500, 70000])
    plan = Plan(units=[unit, still], times=times, unit_index=[0, 0, 0, 0, 1, 1],
                gains=np.ones(6))
    motion = drift.Motion([0.0, 1.0, 2.0, 3.0], [0.0, 1000.0],
                          [[0.0, 0.0], [0.6, 0.6], [-2.4, -2.4], [0.0, 0.0]])  # depth 150 vs 300: rigid here
    out = drift.apply_motion(plan, drift.CombinedMotion([motion]), drift.ProbeDepthMover(NP1, NEURAL),
                             30000.0, grid_um=1.0)
    # at 1, 2, 3 s unit 0 moves 0.6 -> 1 step, -2.4 -> -2 steps, 0; unit 1's events sit at 0 and 2.33 s
    assert out.units[0].variants is not None
    assert np.array_equal(out.units[0].variants.offsets_um, [-2.0, -1.0, 0.0, 1.0])
    order = np.argsort(times, kind="stable")
    assert np.array_equal(out.times, times[order])
    u1 = out.units[1]
    assert u1.variants is not None  # 70000 / 3e4 = 2.33 s -> -2.4 * 0.67 + 0 -> -1.6 -> -2
    v_of = dict(zip(out.times.tolist(), out.variant_index.tolist()))
    assert [v_of[t] for t in (100, 30000, 60000, 90000)] == [2, 3, 0, 2]
    assert np.array_equal(out.event_channels()[out.times == 60000], [out.units[0].variants.templates[0].peak_channel])
    pos = out.event_positions()
    assert np.allclose(pos[out.times == 60000], [NP1[150] + [0.0, -2.0]])
    assert np.allclose(pos[out.times == 100], [NP1[150]])
    k = inject.prepare(out, np.full(384, 0.5))
    n_var = [len(u.variant_templates) for u in out.units]
    assert len(k.raw) == sum(n_var)
    first = np.r_[0, np.cumsum(n_var)[:-1]]
    assert np.array_equal(k.unit_index, first[out.unit_index] + out.variant_index)


def test_apply_motion_without_displacement_keeps_the_static_plan():
    tpl = np1_template(150)
    plan = Plan(units=[PlacedUnit(1, 1, tpl, np.zeros(2))], times=[10, 20], unit_index=[0, 0], gains=[1, 1])
    out = drift.apply_motion(plan, drift.Motion([0.0], [0.0], [0.49]), drift.ProbeDepthMover(NP1, NEURAL), 30000.0)
    assert not out.drifting and out.units[0] is plan.units[0]
    assert np.array_equal(out.variant_index, [0, 0])
    assert np.array_equal(out.event_channels(), plan.event_channels())

"""engine/relocate.py: a template placed on another probe keeps its peak, at the requested place."""
from __future__ import annotations


import numpy as np
import pytest
from probeinterface import generate_multi_columns_probe

from hybridkit.engine import relocate as rel
from hybridkit.example import np1_positions
from tests.conftest import DATA

NP1 = np1_positions()  # (384, 2): 4 staggered x positions, rows 20 um apart
TWO_COL = generate_multi_columns_probe(num_columns=2, num_contact_per_column=16, xpitch=32,
                                       ypitch=25).contact_positions  # (32, 2)
DB = DATA / "template_database" / "spikeinterface-template-database"
KS042 = ("000409_sub-KS042_ses-5f82c2d9-cfeb-4fa3-a1d7-d982f8bd1045_behavior+ecephys+image_"
         "b8e8cd4e-a93d-4d0a-9df0-4213b6273b04.zarr")


def gaussian_template(positions: np.ndarray, peak: int, width_um: float = 25.0) -> np.ndarray:
    """(60, n) uV: a trough at sample 20 scaled by distance from contact ``peak``."""
    t = np.arange(60) - 20
    shape = -np.exp(-(t / 3.0) ** 2) + 0.3 * np.exp(-((t - 10) / 6.0) ** 2)
    d = np.hypot(*(positions - positions[peak]).T)
    return (150.0 * shape[:, None] * np.exp(-d / width_um)[None, :]).astype(np.float32)


@pytest.fixture(scope="module")
def database_template():
    import zarr

    g = zarr.open_consolidated(str(DB / KS042), mode="r")
    return np.asarray(g["templates_array"][5]), np.c_[g["probe/x"][:], g["probe/y"][:]]


def _check_peak_at(out: np.ndarray, src: np.ndarray, src_peak: int, target: int) -> None:
    amp = np.abs(out).max(axis=0)
    assert int(np.argmax(amp)) == target
    assert amp[target] == pytest.approx(np.abs(src).max(), rel=1e-6)
    assert np.allclose(out[:, target], src[:, src_peak], atol=1e-4 * np.abs(src).max())


@pytest.mark.parametrize("name, target_positions, targets", [
    ("np1", NP1, [0, 1, 150, 151, 383]),  # both column parities, both ends of the probe
    ("two_column_32", TWO_COL, [0, 7, 16, 31]),
])
def test_placement_keeps_peak_and_position_database_template(database_template, name,
                                                             target_positions, targets):
    wf, src_pos = database_template
    src_peak = int(np.argmax(np.abs(wf).max(axis=0)))
    geom = rel.SourceGeometry(src_pos)
    for target in targets:
        out = rel.relocate(wf, geom, src_pos[src_peak], target_positions, target_positions[target])
        assert out.shape == (240, target_positions.shape[0]) and out.dtype == np.float32
        _check_peak_at(out, wf, src_peak, target)


@pytest.mark.parametrize("source, target_positions, src_peak, target", [
    (NP1, NP1, 100, 203), (NP1, TWO_COL, 100, 9), (TWO_COL, NP1, 12, 40), (TWO_COL, TWO_COL, 3, 30),
])
def test_placement_between_probes(source, target_positions, src_peak, target):
    wf = gaussian_template(source, src_peak)
    out = rel.relocate(wf, source, source[src_peak], target_positions, target_positions[target])
    _check_peak_at(out, wf, src_peak, target)


def test_same_place_is_identity_and_lattice_shift_moves_columns():
    wf = gaussian_template(NP1, 100)
    assert np.allclose(rel.relocate(wf, NP1, NP1[100], NP1, NP1[100]), wf, atol=1e-4)
    # 40 um up is 4 contacts up on NP1 (two rows of 2 staggered contacts): contact c -> c + 4
    out = rel.relocate(wf, NP1, NP1[100], NP1, NP1[104])
    assert np.allclose(out[:, 4:380], wf[:, 0:376], atol=1e-4)


def test_between_contacts_is_linear():
    src = np.array([[0.0, 0.0], [0.0, 20.0], [20.0, 0.0], [20.0, 20.0]])
    wf = np.array([[1.0, 3.0, 5.0, 7.0], [2.0, 0.0, -2.0, 4.0]], np.float32)
    pts = np.array([[0.0, 10.0], [10.0, 0.0], [5.0, 5.0]])
    out = rel.relocate(wf, src, (0.0, 0.0), pts, (0.0, 0.0))
    assert np.allclose(out[:, 0], [2.0, 1.0]) and np.allclose(out[:, 1], [3.0, 0.0])
    # row 0 is the linear field 1 + 0.1 y + 0.2 x: reproduced whichever diagonal splits the square
    assert out[0, 2] == pytest.approx(2.5, abs=1e-5)


def test_beyond_the_source_decays_exponentially():
    col = np.c_[np.zeros(8), np.arange(8) * 20.0]  # one column: interpolated along its line
    wf = np.tile(np.arange(1, 9, dtype=np.float32), (3, 1))
    pts = np.array([[30.0, 40.0], [0.0, 140.0 + 60.0], [0.0, 50.0]])
    out = rel.relocate(wf, col, (0.0, 0.0), pts, (0.0, 0.0), decay_um=30.0)
    assert out[0, 0] == pytest.approx(3.0 * np.exp(-1.0), rel=1e-5)  # 30 um beside contact 2
    assert out[0, 1] == pytest.approx(8.0 * np.exp(-2.0), rel=1e-5)  # 60 um past the last one
    assert out[0, 2] == pytest.approx(3.5, rel=1e-6)
    # a planar source: outside its hull, the nearest hull point's value times the decay
    out = rel.relocate(gaussian_template(NP1, 0), NP1, NP1[0], np.array([[NP1[0, 0], -30.0]]),
                       NP1[0], decay_um=30.0)
    ref = gaussian_template(NP1, 0)[:, 0] * np.exp(-1.0)
    assert np.allclose(out[:, 0], ref, atol=1e-4)


def test_batched_anchors_equal_single_calls():
    wf = gaussian_template(NP1, 180)
    geom = rel.SourceGeometry(NP1)
    anchors = np.c_[np.full(7, 16.0), np.linspace(400.0, 3000.0, 7) + 3.3]  # off-contact too
    batch = rel.relocate(wf, geom, NP1[180], TWO_COL, anchors)
    assert batch.shape == (7, 60, 32)
    for i, a in enumerate(anchors):
        assert np.array_equal(batch[i], rel.relocate(wf, geom, NP1[180], TWO_COL, a))


def test_resample_up_down_and_within_tolerance():
    fs = 30000.0
    t = (np.arange(90) - 30) / fs
    f = lambda tt: -np.exp(-(tt / 2e-4) ** 2)  # noqa: E731  smooth, band-limited in practice
    wf = f(t)[:, None].astype(np.float32) * np.array([1.0, 0.5], np.float32)
    same, peak = rel.resample(wf, 30, fs, fs * (1 + 5e-5))
    assert same is not None and np.array_equal(same, wf) and peak == 30
    up, peak = rel.resample(wf, 30, fs, 2 * fs)
    assert (up.shape, peak) == ((180, 2), 60)
    assert np.allclose(up[::2], wf, atol=1e-6)  # input samples are kept exactly
    t_up = (np.arange(180) - 60) / (2 * fs)
    assert np.abs(up[:, 0] - f(t_up)).max() < 0.01
    down, peak = rel.resample(wf, 30, fs, 20000.0)
    assert (down.shape, peak) == ((60, 2), 20)
    assert np.abs(down[:, 0] - f((np.arange(60) - 20) / 20000.0)).max() < 0.01


def test_scaling_and_footprint():
    wf = gaussian_template(NP1, 100)
    assert rel.peak_amplitude(wf * rel.gain_for_amplitude(wf, 80.0)) == pytest.approx(80.0)
    assert rel.gain_for_snr(wf, 5.0, 6.0) == pytest.approx(30.0 / np.abs(wf).max())
    with pytest.raises(ValueError):
        rel.gain_for_snr(wf, 5.0, 0.0)
    mask = rel.footprint_mask(wf, NP1, 0.1, 60.0)
    d = np.hypot(*(NP1 - NP1[100]).T)
    assert np.array_equal(mask, (np.exp(-d / 25.0) >= 0.1 - 1e-6) & (d <= 60.0))

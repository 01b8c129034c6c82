"""Placement by contact positions on a staggered Neuropixels 1.0 layout (gaps and references included)."""
import numpy as np
import pytest

from hybridkit.engine.placement import choose_places, offset_to_shift, shift_template, valid_shifts
from hybridkit.errors import PlacementError
from hybridkit.model import Template

N_NEURAL = 96  # 48 rows of 2 contacts, 20 um pitch
X_PATTERN = np.array([43.0, 11.0, 59.0, 27.0])


def np1_layout(n_neural=N_NEURAL, reference=()):
    """(positions, neural) for n_neural NP1 channels plus one sync column (NaN position)."""
    k = np.arange(n_neural)
    pos = np.column_stack([X_PATTERN[k % 4], 20.0 * (k // 2)])
    positions = np.vstack([pos, [np.nan, np.nan]])
    neural = np.r_[np.ones(n_neural, bool), False]
    neural[list(reference)] = False
    return positions, neural


def make_template(channels, positions, peak=None, unit_id=5):
    channels = np.asarray(channels)
    peak = int(channels[0] if peak is None else peak)
    wf = np.random.default_rng(0).normal(size=(30, channels.size)).astype(np.float32)
    return Template(unit_id=unit_id, waveform=wf, channels=channels, peak_index=10, peak_channel=peak,
                    position=positions[peak], source="test", n_spikes=100)


def contact_at(positions, neural, point):
    """File column of the neural contact exactly at ``point`` (exact float compare), else None."""
    hit = np.flatnonzero(neural & (positions[:, 0] == point[0]) & (positions[:, 1] == point[1]))
    return int(hit[0]) if hit.size else None


def test_layout_is_staggered():
    pos, _ = np1_layout()
    assert pos[40].tolist() == [43, 400] and pos[41].tolist() == [11, 400]
    assert pos[42].tolist() == [59, 420] and pos[43].tolist() == [27, 420]


def test_20um_invalid_40um_valid_for_two_parity_footprint():
    pos, neural = np1_layout()
    t = make_template([40, 41, 42, 43], pos)  # rows 20 and 21: both parities
    shifts = valid_shifts(t, pos, neural)
    as_set = {tuple(s) for s in shifts.tolist()}
    assert (0.0, 0.0) in as_set and (0.0, 40.0) in as_set and (0.0, -40.0) in as_set
    assert (0.0, 20.0) not in as_set and (0.0, -20.0) not in as_set
    # exactly the moves by whole pairs of rows that stay on the probe: rows 20+2m, 21+2m in 0..47
    assert sorted(as_set) == sorted((0.0, 40.0 * m) for m in range(-10, 14))
    with pytest.raises(PlacementError, match=r"unit 5: shift \[0.0, 20.0\] um moves channels"):
        shift_template(t, (0.0, 20.0), pos, neural)
    placed = shift_template(t, (0.0, 40.0), pos, neural)
    assert placed.channels.tolist() == [44, 45, 46, 47]


def test_single_column_footprint_can_go_anywhere_but_the_reference():
    pos, neural = np1_layout(reference=[60])
    t = make_template([20], pos)
    shifts = valid_shifts(t, pos, neural)
    assert len(shifts) == N_NEURAL - 1
    targets = pos[20] + shifts
    assert not ((targets[:, 0] == pos[60, 0]) & (targets[:, 1] == pos[60, 1])).any()
    with pytest.raises(PlacementError):
        shift_template(t, pos[60] - pos[20], pos, neural)
    # one row, one parity: a 20 um move up and 16 um right is a contact
    assert shift_template(t, (16.0, 20.0), pos, neural).channels.tolist() == [22]


def test_every_valid_shift_maps_every_channel_onto_a_contact():
    pos, neural = np1_layout(reference=[60])
    t = make_template([31, 32, 33, 34, 35, 36, 38], pos, peak=34)
    shifts = valid_shifts(t, pos, neural)
    assert 0 < len(shifts) < N_NEURAL
    for shift in shifts:
        placed = shift_template(t, shift, pos, neural)
        for src, dst in zip(t.channels, placed.channels):
            assert pos[dst].tolist() == (pos[src] + shift).tolist()
            assert neural[dst]
        assert placed.position.tolist() == (t.position + shift).tolist()
        assert placed.peak_channel == contact_at(pos, neural, t.position + shift)
    # brute force: every contact-to-peak displacement either is in the list or fails somewhere
    listed = {tuple(s) for s in shifts.tolist()}
    for c in np.flatnonzero(neural):
        shift = pos[c] - t.position
        lands = all(contact_at(pos, neural, pos[ch] + shift) is not None for ch in t.channels)
        assert lands == (tuple(shift.tolist()) in listed)


def test_shift_template_keeps_waveform_and_provenance():
    pos, neural = np1_layout()
    t = make_template([40, 41, 42, 43], pos, peak=42)
    placed = shift_template(t, (0.0, -80.0), pos, neural)
    assert placed.waveform is t.waveform
    assert placed.channels.tolist() == [32, 33, 34, 35]
    assert placed.peak_channel == 34 and placed.position.tolist() == [59.0, 340.0]
    assert placed.provenance["source_channels"] == [40, 41, 42, 43]
    assert placed.provenance["source_peak_channel"] == 42
    assert placed.provenance["shift_um"] == [0.0, -80.0]
    again = shift_template(placed, (0.0, 40.0), pos, neural)
    assert again.provenance["source_channels"] == [40, 41, 42, 43]
    assert again.provenance["shift_um"] == [0.0, -40.0]
    assert t.channels.tolist() == [40, 41, 42, 43]  # the source template is untouched


def test_offset_to_shift_counts_contacts_by_depth():
    pos, neural = np1_layout()
    t = make_template([40, 41, 42, 43], pos, peak=40)  # peak at (43, 400)
    # by (y, x): ..., (11,400), (43,400), (27,420), (59,420), (11,440), (43,440), ...
    assert offset_to_shift(t, 4, pos, neural).tolist() == [0.0, 40.0]
    assert offset_to_shift(t, -8, pos, neural).tolist() == [0.0, -80.0]
    assert offset_to_shift(t, 0, pos, neural).tolist() == [0.0, 0.0]
    with pytest.raises(PlacementError, match=r"channel offset 2 .*nearest valid offsets: -8, -4, 0, 4, 8, 12$"):
        offset_to_shift(t, 2, pos, neural)
    shift = offset_to_shift(t, 12, pos, neural)
    placed = shift_template(t, shift, pos, neural)
    for src, dst in zip(t.channels, placed.channels):
        assert pos[dst].tolist() == (pos[src] + [0.0, 120.0]).tolist()
    single = make_template([40], pos)
    assert offset_to_shift(single, 1, pos, neural).tolist() == [-16.0, 20.0]  # -> (27, 420)
    assert offset_to_shift(single, 2, pos, neural).tolist() == [16.0, 20.0]  # -> (59, 420)
    assert offset_to_shift(single, -1, pos, neural).tolist() == [-32.0, 0.0]  # -> (11, 400)


def test_template_at_the_tip_cannot_leave_the_probe():
    pos, neural = np1_layout()
    tip = make_template([0, 1, 2, 3], pos)  # rows 0 and 1
    shifts = valid_shifts(tip, pos, neural)
    assert (shifts[:, 1] >= 0).all()
    with pytest.raises(PlacementError, match="channel offset -4"):
        offset_to_shift(tip, -4, pos, neural)
    with pytest.raises(PlacementError):
        shift_template(tip, (0.0, -40.0), pos, neural)
    top = make_template([92, 93, 94, 95], pos)
    assert (valid_shifts(top, pos, neural)[:, 1] <= 0).all()
    with pytest.raises(PlacementError):
        offset_to_shift(top, 4, pos, neural)


def test_choose_places_honours_min_distance_and_is_seeded():
    pos, neural = np1_layout()
    templates = [make_template([c, c + 1, c + 2, c + 3], pos, unit_id=c) for c in (8, 40, 44, 80, 20)]
    a = choose_places(templates, pos, neural, np.random.default_rng(3), min_distance_um=100.0)
    b = choose_places(templates, pos, neural, np.random.default_rng(3), min_distance_um=100.0)
    assert all(s is not None for s in a)
    assert [s.tolist() for s in a] == [s.tolist() for s in b]
    placed = []
    for t, s in zip(templates, a):
        assert np.hypot(*s) >= 100.0  # away from its own source position
        shift_template(t, s, pos, neural)  # valid
        p = t.position + s
        assert all(np.hypot(*(p - q)) >= 100.0 for q in placed)
        placed.append(p)
    c = choose_places(templates, pos, neural, np.random.default_rng(4), min_distance_um=100.0)
    assert [s.tolist() for s in a] != [s.tolist() for s in c]


def test_choose_places_fixed_and_impossible():
    pos, neural = np1_layout()
    templates = [make_template([40, 41, 42, 43], pos, unit_id=1), make_template([20], pos, unit_id=2)]
    out = choose_places(templates, pos, neural, np.random.default_rng(0), min_distance_um=300.0,
                        fixed={0: np.array([0.0, 40.0])})
    assert out[0].tolist() == [0.0, 40.0]
    # unit 2 keeps 300 um from the fixed unit's place (43, 440) and from its own source (43, 200)
    p = templates[1].position + out[1]
    assert np.hypot(*(p - [43.0, 440.0])) >= 300.0 and np.hypot(*out[1]) >= 300.0
    with pytest.raises(PlacementError, match=r"unit 1: shift \[0.0, 20.0\] um .*nearest valid shifts"):
        choose_places(templates, pos, neural, np.random.default_rng(0), 10.0, fixed={0: (0.0, 20.0)})
    # the probe is 940 um long: nothing is 2 mm away
    assert choose_places(templates, pos, neural, np.random.default_rng(0), 2000.0) == [None, None]


@pytest.mark.parametrize("tol", [0.5, 3.0, 15.0])
def test_contact_lookup_matches_brute_force(tol):
    """The grid-hash lookup finds exactly the nearest contact within tol, or -1, like a brute force."""
    from hybridkit.engine.placement import _Contacts

    positions, neural = np1_layout(reference=(10,))
    contacts = _Contacts(positions, neural)
    rng = np.random.default_rng(3)
    pts = np.vstack([
        contacts.positions + rng.uniform(-tol, tol, size=contacts.positions.shape),  # near contacts
        rng.uniform(-30, 990, size=(2000, 2)),  # anywhere, mostly off-contact
        contacts.positions[:5] + [tol * 0.999, 0], contacts.positions[:5] + [tol * 1.001, 0],
        [[-1e6, 5e6], [np.nan, 0.0]],
    ])
    got = contacts.lookup(pts, tol)
    d2 = ((pts[:, None, :] - contacts.positions[None]) ** 2).sum(axis=2)
    nearest = np.argmin(np.where(np.isnan(d2), np.inf, d2), axis=1)
    expected = np.where(d2[np.arange(len(pts)), nearest] <= tol ** 2, nearest, -1)
    np.testing.assert_array_equal(got, expected)
    assert (got[-12:-7] >= 0).all() and (got[-7:-2] == -1).all()
    assert 10 not in contacts.channels[got[got >= 0]]  # the reference channel is never a target


def test_fixed_places_too_close_are_kept_with_a_warning(caplog):
    positions, neural = np1_layout()
    a = make_template([20, 21, 22, 23], positions, unit_id=1)
    b = make_template([40, 41, 42, 43], positions, unit_id=2)
    # b moved 10 rows (200 um) down onto a's rows: 0 um apart; a stays at its source (0 um)
    shift_b = positions[20] - positions[40]
    with caplog.at_level("WARNING", logger="hybridkit.engine.placement"):
        out = choose_places([a, b], positions, neural, np.random.default_rng(0), 60.0,
                            fixed={0: np.zeros(2), 1: shift_b})
    assert np.array_equal(out[0], [0, 0]) and np.array_equal(out[1], shift_b)
    msgs = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("unit 1: its fixed place") for m in msgs)
    assert any(m.startswith("unit 2: its fixed place") and "(200, 0 um)" in m for m in msgs)

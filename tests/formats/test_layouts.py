"""formats/phy_layout and formats/nwb_layout: the dense template layouts the phy and NWB writers
write and `verify` re-derives (one layout, in uV for phy and in volts for NWB)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hybridkit.errors import OutputError
from hybridkit.formats.nwb_layout import dense_waveforms, nwb_file_name, session_id_for
from hybridkit.formats.phy_layout import dense_templates
from hybridkit.model import PlacedUnit, Template

NEURAL = np.array([0, 1, 2, 3, 5, 6, 7, 9], np.int64)  # columns 4 and 8 are not neural (sync, ref)


def _units(rng) -> list[PlacedUnit]:
    units = []
    for k, (n_times, peak, chans) in enumerate([(30, 10, [1, 2, 3]), (41, 20, [5, 9]), (25, 3, [0])]):
        t = Template(unit_id=k, waveform=rng.normal(0, 50, (n_times, len(chans))), channels=chans,
                     peak_index=peak, peak_channel=chans[0], position=[0.0, 0.0])
        units.append(PlacedUnit(new_unit_id=100 + k, source_unit_id=k, template=t, shift_um=np.zeros(2)))
    return units


def test_peaks_aligned_zero_elsewhere_and_volts_are_the_same_layout():
    units = _units(np.random.default_rng(1))
    uv, before = dense_templates(units, NEURAL)
    assert before == 20 and uv.shape == (3, 20 + 22, NEURAL.size) and uv.dtype == np.float32
    for k, u in enumerate(units):
        t = u.template
        a = before - t.peak_index
        cols = np.searchsorted(NEURAL, t.channels)
        np.testing.assert_array_equal(uv[k, a:a + t.n_times][:, cols], t.waveform)
        rest = uv[k].copy()
        rest[a:a + t.n_times, cols] = 0
        assert not rest.any()  # nothing off the unit's samples and channels
    truth = SimpleNamespace(plan=SimpleNamespace(units=units), recording=SimpleNamespace(neural_channels=NEURAL))
    volts, b = dense_waveforms(truth)
    assert b == before and volts.dtype == np.float32
    np.testing.assert_array_equal(volts, uv * np.float32(1e-6))
    empty = SimpleNamespace(plan=SimpleNamespace(units=[]), recording=SimpleNamespace(neural_channels=NEURAL))
    assert dense_waveforms(empty)[0].shape == (0, 1, NEURAL.size)


def test_a_channel_off_the_map_names_the_writer():
    units = _units(np.random.default_rng(2))
    units[1].template.channels[:] = [5, 8]  # 8 is not neural
    with pytest.raises(OutputError, match=r"^nwb writer: injected unit 101 uses channel\(s\) \[8\]"):
        dense_waveforms(SimpleNamespace(plan=SimpleNamespace(units=units),
                                        recording=SimpleNamespace(neural_channels=NEURAL)))


def test_nwb_file_name_is_the_dandi_session_id():
    assert session_id_for("rat_1/day 2") == "rat-1-day-2"
    assert nwb_file_name(None, "rat_1/day 2") == "rat-1-day-2.nwb"
    assert nwb_file_name(None, "") == "hybrid.nwb"
    assert nwb_file_name("mine.nwb", "x") == "mine.nwb"

"""The compliance checks catch each convention a sorter adapter can break."""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.model import Sorting
from tests.plugins.sorters.compliance import assert_sorting_conventions


def _sorting(**kw) -> Sorting:
    base = dict(spike_times=[3, 5, 9], spike_units=[1, 2, 1], unit_ids=[1, 2], labels={1: "good"},
                channel_map=np.array([0, 2]), channel_positions=np.zeros((2, 2)), format="x")
    base.update(kw)
    return Sorting(**base)


def _check(s: Sorting) -> None:
    assert_sorting_conventions(s, unit_ids=[1, 2], labels={1: "good"}, fmt="x", n_samples=10, n_channels=3)


def test_a_conforming_sorting_passes():
    _check(_sorting())


@pytest.mark.parametrize("change", [
    dict(spike_times=[5, 3, 9]),                                  # not sorted
    dict(spike_times=[3, 5, 10]),                                 # past the recording (1-based?)
    dict(spike_units=[2, 3, 2], unit_ids=[2, 3]),                 # ids shifted by one
    dict(labels={1: "good", 2: "mua"}),                           # a label the sorter did not give
    dict(channel_map=np.array([0, 3])),                           # a channel past the file's columns
    dict(format="y"),
])
def test_each_broken_convention_fails(change):
    with pytest.raises(AssertionError):
        _check(_sorting(**change))

"""Bad input that reaches the data model, the engine or the plan is a HybridkitError subclass (one
line, exit 2), never a bare ValueError (exit 1, "internal error")."""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.config.run_config import InjectionConfig
from hybridkit.engine import inject
from hybridkit.errors import ConfigError, PlacementError, PlanError, SortingError, TemplateError
from hybridkit.model import Sorting, Template, TemplateBank
from hybridkit.run.planning import build_plan
from tests.helpers import make_plan, make_recording, make_template


def test_sorting_with_times_and_units_of_different_lengths_is_a_sorting_error():
    with pytest.raises(SortingError, match=r"spike_times \(3,\) and spike_units \(2,\) differ"):
        Sorting(spike_times=[1, 2, 3], spike_units=[1, 1], unit_ids=[1])


def test_template_whose_waveform_and_channels_disagree_is_a_template_error():
    with pytest.raises(TemplateError, match=r"unit 7: waveform \(40, 3\) does not match 2 channels"):
        Template(unit_id=7, waveform=np.zeros((40, 3)), channels=[0, 1], peak_index=10,
                 peak_channel=0, position=np.zeros(2))


def test_template_on_a_channel_without_gain_is_a_placement_error():
    plan = make_plan([make_template(1, [2, 3])], [np.array([100])], [np.array([1.0])])
    gains = np.full(4, 0.5)
    gains[3] = 0.0  # a sync word
    with pytest.raises(PlacementError, match=r"unit 100 is placed on channels without a gain .*\[3\]"):
        inject.prepare(plan, gains)


def _bank(rec, template):
    return TemplateBank(templates={template.unit_id: template}, sampling_rate=rec.sampling_rate)


def test_plan_with_no_events_is_a_plan_error(tmp_path):
    rec = make_recording(tmp_path, np.zeros((3000, 4), np.int16))
    tpl = make_template(1, [0, 1, 2], positions=rec.channel_positions)
    sorting = Sorting(spike_times=[5, 2990], spike_units=[1, 1], unit_ids=[1])  # both at the edges
    cfg = InjectionConfig.model_validate({"trains": {"mode": "source"},
                                          "placement": {"mode": "channel_offset", "channel_offset": 0}})
    rngs = {k: np.random.default_rng(0) for k in ("placement", "trains", "amplitude")}
    with pytest.raises(PlanError, match="the plan has no events"):
        build_plan(_bank(rec, tpl), [1], rec, sorting, cfg, rngs, first_new_id=100)


def test_source_trains_without_a_sorting_is_a_config_error(tmp_path):
    rec = make_recording(tmp_path, np.zeros((3000, 4), np.int16))
    tpl = make_template(1, [0, 1, 2], positions=rec.channel_positions)
    cfg = InjectionConfig.model_validate({"trains": {"mode": "source"},
                                          "placement": {"mode": "channel_offset", "channel_offset": 0}})
    rngs = {k: np.random.default_rng(0) for k in ("placement", "trains", "amplitude")}
    with pytest.raises(ConfigError, match='injection.trains.mode "source" needs a sorting'):
        build_plan(_bank(rec, tpl), [1], rec, None, cfg, rngs, first_new_id=100)


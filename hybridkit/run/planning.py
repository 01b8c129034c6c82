"""From templates to a Plan: where each injected unit goes, when it fires, how loud.

Glue between the config and the pure engine functions in engine/placement.py and
engine/trains.py. Randomness comes from the generators handed in (one per stage, spawned from
the run's seed), so adding a stage never changes what the others draw.
"""
from __future__ import annotations

import logging

import numpy as np

from hybridkit.config.run_config import InjectionConfig
from hybridkit.engine import placement as place_mod
from hybridkit.engine import trains as trains_mod
from hybridkit.errors import ConfigError, PlacementError, PlanError
from hybridkit.model import PlacedUnit, Plan, Recording, Sorting, TemplateBank

log = logging.getLogger(__name__)


def place_units(
    bank: TemplateBank, unit_ids: list[int], recording: Recording, cfg: InjectionConfig,
    rng: np.random.Generator,
) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Shift (dx, dy) um for each unit that has a place, and the reasons for those that do not."""
    pcfg = cfg.placement
    pos, neural = recording.channel_positions, recording.neural
    templates = [bank.templates[u] for u in unit_ids]
    fixed: dict[int, np.ndarray] = {}
    for i, (uid, tpl) in enumerate(zip(unit_ids, templates)):
        override = pcfg.per_unit.get(uid)
        if override is not None and override.channel_offset is not None:
            fixed[i] = place_mod.offset_to_shift(tpl, override.channel_offset, pos, neural)
        elif override is not None and override.position_um is not None:
            fixed[i] = np.asarray(override.position_um, float) - tpl.position
        elif pcfg.mode == "channel_offset":
            fixed[i] = place_mod.offset_to_shift(tpl, pcfg.channel_offset, pos, neural)
    for i, shift in fixed.items():  # user-chosen places must still map onto contacts
        place_mod.shift_template(templates[i], shift, pos, neural)
    shifts = place_mod.choose_places(templates, pos, neural, rng, pcfg.min_distance_um, fixed)
    placed: dict[int, np.ndarray] = {}
    skipped: dict[int, str] = {}
    for uid, shift in zip(unit_ids, shifts):
        if shift is not None:
            placed[uid] = np.asarray(shift, float)
            continue
        why = (f"no place on the probe at least {pcfg.min_distance_um:g} um from its source and "
               "from the other injected units maps all its channels onto contacts")
        if pcfg.on_no_place == "error":
            raise PlacementError(
                f"unit {uid}: {why}; lower injection.placement.min_distance_um, or set "
                "injection.placement.on_no_place to \"skip\"")
        log.warning("skipping unit %s: %s", uid, why)
        skipped[uid] = why
    return placed, skipped


def unit_train(
    uid: int, sorting: Sorting | None, recording: Recording, cfg: InjectionConfig,
    before: int, after: int, rng: np.random.Generator,
) -> np.ndarray:
    """Spike times (int64 samples) of the injected copy of unit ``uid``, inside the recording."""
    fs = recording.sampling_rate
    tcfg = cfg.trains
    refractory = int(round(tcfg.refractory_ms * 1e-3 * fs))
    lo, hi = before, recording.n_samples - after
    if tcfg.mode == "poisson":
        return trains_mod.poisson_train(tcfg.rate_hz, fs, refractory, lo, hi, rng)
    if sorting is None:
        raise ConfigError(f"unit {uid}: injection.trains.mode \"source\" needs a sorting; "
                             "use mode \"poisson\" with rate_hz")
    jitter = tcfg.jitter_ms * 1e-3 * fs
    return trains_mod.jittered_train(sorting.times_of(uid), jitter, refractory, lo, hi, rng)


def build_plan(
    bank: TemplateBank, unit_ids: list[int], recording: Recording, sorting: Sorting | None,
    cfg: InjectionConfig, rngs: dict[str, np.random.Generator], first_new_id: int,
) -> tuple[Plan, dict[int, str]]:
    """The full injection plan. New unit ids count up from ``first_new_id`` in unit order."""
    shifts, skipped = place_units(bank, unit_ids, recording, cfg, rngs["placement"])
    units: list[PlacedUnit] = []
    times, index, gains = [], [], []
    for uid in unit_ids:
        if uid not in shifts:
            continue
        tpl = place_mod.shift_template(bank.templates[uid], shifts[uid],
                                       recording.channel_positions, recording.neural)
        k = len(units)
        units.append(PlacedUnit(new_unit_id=first_new_id + k, source_unit_id=uid, template=tpl,
                                shift_um=shifts[uid]))
        t = unit_train(uid, sorting, recording, cfg, tpl.peak_index,
                       tpl.n_times - tpl.peak_index, rngs["trains"])
        times.append(t)
        index.append(np.full(t.size, k, np.int64))
        gains.append(rngs["amplitude"].uniform(cfg.amplitude.min, cfg.amplitude.max, t.size))
    if not units:
        reasons = sorted(set(skipped.values()))
        raise PlacementError(
            f"nothing to inject: every unit was skipped (units {', '.join(map(str, skipped))}): "
            + "; ".join(reasons) + "; lower injection.placement.min_distance_um or choose other units")
    plan = Plan(units=units, times=np.concatenate(times), unit_index=np.concatenate(index),
                gains=np.concatenate(gains))
    if plan.n_events == 0:
        raise PlanError("the plan has no events: every injected train is empty (check "
                             "injection.trains and that the units have spikes inside the recording)")
    return plan, skipped

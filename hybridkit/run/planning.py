"""From templates to a Plan: where each injected unit goes, when it fires, how loud.

Glue between the config and the pure engine functions in engine/placement.py and
engine/trains.py. Randomness comes from the generators handed in (one per stage, derived from
the run's seed by the stage's name), so adding a stage never changes what the others draw.
"""
from __future__ import annotations

import logging

import numpy as np

from hybridkit.config.run_config import InjectionConfig
from hybridkit.engine import placement as place_mod
from hybridkit.engine import trains as trains_mod
from hybridkit.errors import ConfigError, PlacementError, PlanError
from hybridkit.hookspecs import named_stream
from hybridkit.model import PlacedUnit, Plan, Recording, Sorting, TemplateBank

log = logging.getLogger(__name__)

#: the stages' random streams, each derived from the run seed by its name (a stream depends on the
#: seed and its name alone); plugins get their own ("<kind>:<name>") through RunContext.for_plugin
RNG_STREAMS = ("placement", "trains", "amplitude", "motion")


def stage_rngs(seed: int) -> dict[str, np.random.Generator]:
    """One generator per stage of a run (:data:`RNG_STREAMS`), each derived from ``seed`` by the
    stage's name (:func:`hybridkit.hookspecs.named_stream`); plugins get their own streams through
    :meth:`hybridkit.hookspecs.RunContext.for_plugin`."""
    return {name: named_stream(seed, name) for name in RNG_STREAMS}


def place_units(
    bank: TemplateBank, unit_ids: list[int], recording: Recording, cfg: InjectionConfig,
    rng: np.random.Generator, order: list[int] | None = None,
) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Shift (dx, dy) um for each unit that has a place, and why each other unit has none.

    Units with a place chosen by the user go first, then the others in ``order`` (unit ids,
    best-ranked first; default ``unit_ids``' order), so if the probe runs out of room it is the
    lowest-ranked units that go without. Nothing is raised for a unit without a place: the
    caller applies ``on_no_place`` (:func:`check_placement`).
    """
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
    index = {u: i for i, u in enumerate(unit_ids)}
    sequence = [index[u] for u in (order if order is not None else unit_ids)]
    shifts = place_mod.choose_places(templates, pos, neural, rng, pcfg.min_distance_um, fixed,
                                     order=sequence)
    placed: dict[int, np.ndarray] = {}
    unplaced: dict[int, str] = {}
    before: list[int] = [unit_ids[i] for i in sorted(fixed)]
    for i in sequence:
        uid, shift = unit_ids[i], shifts[i]
        if shift is not None:
            placed[uid] = np.asarray(shift, float)
            if i not in fixed:
                before.append(uid)
            continue
        unplaced[uid] = _why_no_place(templates[i], pos, neural, pcfg.min_distance_um, before)
    return placed, unplaced


def _why_no_place(tpl, pos: np.ndarray, neural: np.ndarray, min_distance_um: float,
                  before: list[int]) -> str:
    """Why a template has no place, as the end of a sentence starting "unit N has no place on the probe: "."""
    n_valid = len(place_mod.valid_shifts(tpl, pos, neural))
    n_ch = tpl.channels.size
    if n_valid == 0:
        return f"no position on the probe keeps all {n_ch} of its channels on contacts"
    placed = f" (placed before it: units {', '.join(map(str, before))})" if before else ""
    return (f"each of the {n_valid} positions that keep its {n_ch} channels on contacts is closer "
            f"than {min_distance_um:g} um to its source unit or to a unit placed before it{placed}")


def check_placement(unit_ids: list[int], placed: dict[int, np.ndarray], unplaced: dict[int, str],
                    cfg: InjectionConfig) -> None:
    """Apply ``injection.placement.on_no_place`` to the units without a place.

    Raises PlacementError naming the first such unit (in placement order) when it is "error",
    and when no unit at all has a place (even with "skip"); otherwise logs each skipped unit.
    """
    pcfg = cfg.placement
    if unplaced and pcfg.on_no_place == "error":
        uid, why = next(iter(unplaced.items()))
        raise PlacementError(
            f"unit {uid} has no place on the probe: {why}. Lower "
            f"injection.placement.min_distance_um (now {pcfg.min_distance_um:g} um), or set "
            "injection.placement.on_no_place to \"skip\" to leave such units out "
            "(`hybridkit units SORTING --recording CONFIG` shows which)")
    if not placed:
        raise PlacementError(
            f"nothing to inject: no unit has a place on the probe (units "
            f"{', '.join(map(str, unit_ids))}); lower injection.placement.min_distance_um (now "
            f"{pcfg.min_distance_um:g} um) or choose other units")
    for uid, why in unplaced.items():
        log.warning("skipping unit %s: it has no place on the probe: %s", uid, why)


def unit_train(
    uid: int, sorting: Sorting | None, recording: Recording, cfg: InjectionConfig,
    before: int, after: int, rng: np.random.Generator,
) -> np.ndarray:
    """Spike times (int64 samples) of the injected copy of unit ``uid``, inside the recording,
    each window inside one stretch of continuous clock (not across a gap between files)."""
    fs = recording.sampling_rate
    tcfg = cfg.trains
    refractory = int(round(tcfg.refractory_ms * 1e-3 * fs))
    lo, hi = before, recording.n_samples - after
    if tcfg.mode == "poisson":
        times = trains_mod.poisson_train(tcfg.rate_hz, fs, refractory, lo, hi, rng)
    elif sorting is None:
        raise ConfigError(f"unit {uid}: injection.trains.mode \"source\" needs a sorting; "
                             "use mode \"poisson\" with rate_hz")
    else:
        jitter = tcfg.jitter_ms * 1e-3 * fs
        times = trains_mod.jittered_train(sorting.times_of(uid), jitter, refractory, lo, hi, rng)
    return trains_mod.drop_windows_across(times, before, after, recording.clock_breaks)


def build_plan(
    bank: TemplateBank, unit_ids: list[int], recording: Recording, sorting: Sorting | None,
    cfg: InjectionConfig, rngs: dict[str, np.random.Generator], first_new_id: int,
    placement: tuple[dict[int, np.ndarray], dict[int, str]] | None = None,
) -> tuple[Plan, dict[int, str]]:
    """The full injection plan and the skipped units (id -> why). New unit ids count up from
    ``first_new_id`` in unit order.

    ``placement``: (shifts, unplaced) from :func:`place_units` when the caller already placed
    the units (the run does, to put the outcome in the selection table); else placed here in
    ``unit_ids`` order. ``on_no_place`` is applied either way (:func:`check_placement`).
    """
    if placement is None:
        placement = place_units(bank, unit_ids, recording, cfg, rngs["placement"])
    shifts, skipped = placement
    check_placement(unit_ids, shifts, skipped, cfg)
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
    plan = Plan(units=units, times=np.concatenate(times), unit_index=np.concatenate(index),
                gains=np.concatenate(gains))
    if plan.n_events == 0:
        raise PlanError("the plan has no events: every injected train is empty (check "
                             "injection.trains and that the units have spikes inside the recording)")
    return plan, skipped

"""``templates-<session>.npz``: the injection plan exactly as injected, written and read back.

A run's tables round times and gains for people (``hybrid_events`` has the gain to 6 decimals)
and do not hold drift variants, so they cannot reproduce the injected signal bit for bit. This
file does: it holds every template an event may use as the float32 microvolts the engine scaled,
each event's template and float32 gain, and the microvolts per raw unit of every channel. With it
(and the source recording) :func:`hybridkit.engine.inject.prepare` / ``accumulate`` /
``add_rounded`` recompute each hybrid block with the very arithmetic of the run, without
re-running the planning (``hybridkit verify``; a lazy hybrid recording can do the same).

Arrays (``T`` templates, ``U`` units, ``K`` events, ``C`` channels of the file):

* ``format_version`` (): 1;  ``gain_to_uV`` (C,) float64: uV per raw unit, by file column;
  ``sampling_rate_hz`` () float64;
* ``unit_ids`` (U,) int64 new (injected) ids; ``unit_source_ids`` (U,) int64; ``unit_shift_um``
  (U, 2) float64; ``unit_placed_template`` (U,) int64: the unit's placed (offset 0) template;
* ``template_unit`` (T,) int64 index into the units (a unit's templates are consecutive: its drift
  variants by increasing offset, or its one placed template); ``template_offset_um`` (T,) float64
  drift offset along the probe's y (0 for the placed template); ``template_peak_index``,
  ``template_peak_channel`` (T,) int64; ``template_position_um`` (T, 2) float64;
  ``template_n_times`` (T,) int64;
* ``template_channel_offsets`` (T+1,) int64 and ``template_channels`` int64: template ``k``'s file
  columns are ``template_channels[offsets[k]:offsets[k+1]]``;
* ``template_value_offsets`` (T+1,) int64 and ``template_values_uV`` float32: template ``k`` is
  ``template_values_uV[offsets[k]:offsets[k+1]].reshape(n_times[k], n_channels_k)`` (its columns
  are its channels, in that order);
* ``event_times`` (K,) int64 samples (peak-aligned, sorted), ``event_template`` (K,) int64 index of
  the template used, ``event_gain`` (K,) float32 amplitude scale.

The file also keeps the predecessor-style keys ``unit<N>_waveform_uV``, ``unit<N>_channels``,
``unit<N>_peak_index`` and ``unit<N>_source_unit`` (the placed template per unit) for old scripts.
Only numeric arrays are stored: it loads with ``allow_pickle=False``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridkit.errors import TruthError
from hybridkit.model import DriftVariants, GroundTruth, PlacedUnit, Plan, Template

FORMAT_VERSION = 1


def planned_file_name(session: str) -> str:
    return f"templates-{session}.npz"


@dataclass
class Planned:
    """A plan read back from ``templates-<session>.npz``.

    Attributes:
        plan: the units (with drift variants where they drift) and events, as injected.
        gain_to_uV: (n_channels,) float64 uV per raw unit of each file column.
        sampling_rate: Hz.
        path: the file read.
    """

    plan: Plan
    gain_to_uV: np.ndarray
    sampling_rate: float
    path: Path


def _packed(templates: list[Template]) -> dict[str, np.ndarray]:
    def offsets(sizes) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

    return {
        "template_peak_index": np.array([t.peak_index for t in templates], np.int64),
        "template_peak_channel": np.array([t.peak_channel for t in templates], np.int64),
        "template_position_um": np.array([t.position for t in templates], np.float64).reshape(-1, 2),
        "template_n_times": np.array([t.n_times for t in templates], np.int64),
        "template_channel_offsets": offsets([t.channels.size for t in templates]),
        "template_channels": np.concatenate([t.channels for t in templates]).astype(np.int64)
        if templates else np.zeros(0, np.int64),
        "template_value_offsets": offsets([t.waveform.size for t in templates]),
        "template_values_uV": np.concatenate([t.waveform.ravel() for t in templates]).astype(np.float32)
        if templates else np.zeros(0, np.float32),
    }


def write_planned(truth: GroundTruth, out_dir: Path) -> Path:
    """Write ``templates-<session>.npz`` for ``truth`` into ``out_dir`` (once: a second writer of
    the same run finds it written) and return its path."""
    path = Path(out_dir) / planned_file_name(truth.session)
    if path.is_file():
        return path
    plan = truth.plan
    templates = plan.all_templates()
    template_unit, offsets_um, placed = [], [], []
    for i, u in enumerate(plan.units):
        placed.append(len(template_unit) + (u.variants.zero if u.variants is not None else 0))
        template_unit += [i] * len(u.variant_templates)
        offsets_um += (u.variants.offsets_um.tolist() if u.variants is not None else [0.0])
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "gain_to_uV": np.asarray(truth.recording.gain_to_uV, np.float64),
        "sampling_rate_hz": np.array(float(truth.recording.sampling_rate)),
        "unit_ids": np.array([u.new_unit_id for u in plan.units], np.int64),
        "unit_source_ids": np.array([u.source_unit_id for u in plan.units], np.int64),
        "unit_shift_um": np.array([u.shift_um for u in plan.units], np.float64).reshape(-1, 2),
        "unit_placed_template": np.array(placed, np.int64),
        "template_unit": np.array(template_unit, np.int64),
        "template_offset_um": np.array(offsets_um, np.float64),
        **_packed(templates),
        "event_times": plan.times.astype(np.int64),
        "event_template": plan.event_template_index().astype(np.int64),
        "event_gain": plan.gains.astype(np.float32),
    }
    for u in plan.units:  # the predecessor-style keys (placed template per unit)
        k = f"unit{u.new_unit_id}"
        arrays[f"{k}_waveform_uV"] = u.template.waveform
        arrays[f"{k}_channels"] = u.template.channels
        arrays[f"{k}_peak_index"] = np.array(u.template.peak_index)
        arrays[f"{k}_source_unit"] = np.array(u.source_unit_id)
    np.savez(path, **arrays)
    return path


#: keys that read_planned needs (files of hybridkit before the plan was stored lack them)
_REQUIRED = ("format_version", "gain_to_uV", "sampling_rate_hz", "unit_ids", "unit_source_ids",
             "unit_shift_um", "unit_placed_template", "template_unit", "template_offset_um",
             "template_peak_index", "template_peak_channel", "template_position_um",
             "template_n_times", "template_channel_offsets", "template_channels",
             "template_value_offsets", "template_values_uV", "event_times", "event_template",
             "event_gain")


def read_planned(path: Path) -> Planned:
    """Read ``templates-<session>.npz`` back into a Plan (drift variants included).

    Raises TruthError (one line naming the file) when the file is missing, is not an npz, was
    written before the plan was stored, or is inconsistent (offsets, indices out of range).
    """
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TruthError(f"{path}: not a readable templates npz ({exc})") from None
    with z:
        missing = [k for k in _REQUIRED if k not in z.files]
        if missing:
            raise TruthError(f"{path}: no {missing[0]!r} array (written by a hybridkit before the "
                             "exact plan was stored?); cannot re-derive the injected signal")
        a = {k: z[k] for k in _REQUIRED}
    if int(a["format_version"]) != FORMAT_VERSION:
        raise TruthError(f"{path}: format_version {int(a['format_version'])}, this hybridkit "
                         f"reads {FORMAT_VERSION}")
    try:
        return Planned(plan=_plan(a), gain_to_uV=a["gain_to_uV"].astype(np.float64),
                       sampling_rate=float(a["sampling_rate_hz"]), path=path)
    except (ValueError, IndexError) as exc:
        raise TruthError(f"{path}: inconsistent arrays ({exc})") from None


def _plan(a: dict[str, np.ndarray]) -> Plan:
    n_t = a["template_unit"].size
    co, vo = a["template_channel_offsets"], a["template_value_offsets"]
    if co.size != n_t + 1 or vo.size != n_t + 1:
        raise ValueError(f"{n_t} templates but {co.size - 1} channel and {vo.size - 1} value ranges")
    templates = []
    for k in range(n_t):
        ch = a["template_channels"][co[k]:co[k + 1]]
        n_times = int(a["template_n_times"][k])
        values = a["template_values_uV"][vo[k]:vo[k + 1]]
        if values.size != n_times * ch.size:
            raise ValueError(f"template {k}: {values.size} values for {n_times} x {ch.size}")
        templates.append(Template(unit_id=int(a["unit_source_ids"][a["template_unit"][k]]),
                                  waveform=values.reshape(n_times, ch.size), channels=ch,
                                  peak_index=int(a["template_peak_index"][k]),
                                  peak_channel=int(a["template_peak_channel"][k]),
                                  position=a["template_position_um"][k], source="planned"))
    units, first = [], np.zeros(a["unit_ids"].size, np.int64)
    for i, (new, src) in enumerate(zip(a["unit_ids"].tolist(), a["unit_source_ids"].tolist())):
        mine = np.flatnonzero(a["template_unit"] == i)
        if mine.size == 0 or np.any(np.diff(mine) != 1):
            raise ValueError(f"unit {new}: its templates are not one consecutive run")
        first[i] = mine[0]
        zero = int(a["unit_placed_template"][i]) - int(mine[0])
        if not 0 <= zero < mine.size:
            raise ValueError(f"unit {new}: placed template {a['unit_placed_template'][i]} is not its own")
        variants = None
        if mine.size > 1:
            variants = DriftVariants(offsets_um=a["template_offset_um"][mine],
                                     templates=[templates[k] for k in mine], zero=zero)
        units.append(PlacedUnit(new_unit_id=new, source_unit_id=src, template=templates[mine[zero]],
                                shift_um=a["unit_shift_um"][i], variants=variants))
    ev_t = a["event_template"]
    if ev_t.size and (ev_t.min() < 0 or ev_t.max() >= n_t):
        raise ValueError(f"event_template values outside 0..{n_t - 1}")
    unit_index = a["template_unit"][ev_t]
    plan = Plan(units=units, times=a["event_times"], unit_index=unit_index, gains=a["event_gain"],
                variant_index=ev_t - first[unit_index])
    if np.any(plan.event_template_index() != ev_t[np.argsort(a["event_times"], kind="stable")]):
        raise ValueError("event_template does not match the units' template runs")
    return plan

"""``templates-<session>.npz``: the run's plan, exactly, so the hybrid can be rebuilt from the source.

Every run writes it (whatever its writers). It holds the float32 templates the engine injected
(each unit's placed template and, for drifting units, every depth variant), their sparse channels,
and each event's time, template and float32 gain, so that ``source + rint(sum of gain * template /
gain_to_uV)`` recomputed by :mod:`hybridkit.engine.inject` equals the hybrid samples bit for bit
(the lazy SpikeInterface recording, :mod:`hybridkit.spikeinterface`, and ``hybridkit verify`` rely
on it). The CSV tables round gains and positions for reading; this file does not.

Keys (n_u units, n_t templates, n_e events; see docs/outputs.md):

* per unit (the predecessor's names, kept): ``unit<N>_waveform_uV`` (samples x channels float32),
  ``unit<N>_channels``, ``unit<N>_peak_index``, ``unit<N>_source_unit``;
* ``plan_unit_ids``, ``plan_unit_source_ids`` (n_u,) int64; ``plan_unit_shift_um`` (n_u, 2);
  ``plan_unit_zero_variant`` (n_u,) int64 index of the placed template among the unit's variants;
  ``plan_unit_drifts`` (n_u,) bool;
* ``plan_template_unit`` (n_t,) int64 unit index of each template, in the order of
  ``Plan.all_templates()``; ``plan_template_offset_um`` (n_t,) drift offset along y;
  ``plan_template_waveforms_uV`` (n_t, max samples, max channels) float32, zero-padded;
  ``plan_template_n_times``, ``plan_template_n_channels``, ``plan_template_peak_index``,
  ``plan_template_peak_channel`` (n_t,) int64; ``plan_template_channels`` (n_t, max channels)
  int64 file columns, -1-padded;
  ``plan_template_position_um`` (n_t, 2);
* ``plan_event_times`` (n_e,) int64 samples (0-based, concatenated clock, sorted),
  ``plan_event_unit``, ``plan_event_variant`` (n_e,) int64, ``plan_event_gains`` (n_e,) float32;
* ``plan_gain_to_uV``, ``plan_offset_to_uV`` (n_channels,) float64: the source's scale the
  templates were converted to raw units with; ``plan_n_samples_per_file`` (n_files,) int64;
* the run's one noise estimate and the SNRs made from it (:mod:`hybridkit.engine.noise`; absent
  from outputs of older versions): ``plan_noise_uV`` (n_channels,) float64 uV per file column,
  NaN off the neural channels; ``plan_unit_noise_uV``, ``plan_unit_mean_scale``,
  ``plan_unit_snr`` (n_u,) float64 (the SNR every reader reports).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridkit.engine.noise import injected_snr
from hybridkit.errors import TruthError
from hybridkit.model import DriftVariants, GroundTruth, PlacedUnit, Plan, Template

#: keys every plan file has (older outputs hold only the per-unit keys)
REQUIRED = ("plan_unit_ids", "plan_template_unit", "plan_template_waveforms_uV", "plan_event_times",
            "plan_event_unit", "plan_event_variant", "plan_event_gains", "plan_gain_to_uV",
            "plan_offset_to_uV", "plan_n_samples_per_file")


def write_plan_file(truth: GroundTruth, path: Path) -> Path:
    """Write ``truth.plan`` (and the recording's scale) to ``path`` (an .npz); return ``path``."""
    plan, rec = truth.plan, truth.recording
    arrays: dict[str, np.ndarray] = {}
    for u in plan.units:  # the predecessor's per-unit keys, read by results.truth
        k = f"unit{u.new_unit_id}"
        arrays[f"{k}_waveform_uV"] = u.template.waveform
        arrays[f"{k}_channels"] = u.template.channels
        arrays[f"{k}_peak_index"] = np.array(u.template.peak_index)
        arrays[f"{k}_source_unit"] = np.array(u.source_unit_id)
    templates = plan.all_templates()
    owner = np.array([i for i, u in enumerate(plan.units) for _ in u.variant_templates], np.int64)
    offsets = np.concatenate([u.variants.offsets_um if u.variants is not None else [0.0]
                              for u in plan.units]) if plan.units else np.zeros(0)
    n_times = np.array([t.n_times for t in templates], np.int64)
    n_chan = np.array([t.channels.size for t in templates], np.int64)
    longest, widest = int(n_times.max(initial=0)), int(n_chan.max(initial=0))
    waves = np.zeros((len(templates), longest, widest), np.float32)
    chans = np.full((len(templates), widest), -1, np.int64)
    for k, t in enumerate(templates):
        waves[k, : t.n_times, : t.channels.size] = t.waveform
        chans[k, : t.channels.size] = t.channels
    arrays.update(
        plan_unit_ids=np.array([u.new_unit_id for u in plan.units], np.int64),
        plan_unit_source_ids=np.array([u.source_unit_id for u in plan.units], np.int64),
        plan_unit_shift_um=np.array([u.shift_um for u in plan.units], np.float64).reshape(-1, 2),
        plan_unit_zero_variant=np.array([u.variants.zero if u.variants is not None else 0
                                    for u in plan.units], np.int64),
        plan_unit_drifts=np.array([u.variants is not None for u in plan.units], bool),
        plan_template_unit=owner, plan_template_offset_um=np.asarray(offsets, np.float64),
        plan_template_waveforms_uV=waves, plan_template_n_times=n_times,
        plan_template_n_channels=n_chan,
        plan_template_channels=chans,
        plan_template_peak_index=np.array([t.peak_index for t in templates], np.int64),
        plan_template_peak_channel=np.array([t.peak_channel for t in templates], np.int64),
        plan_template_position_um=np.array([t.position for t in templates],
                                           np.float64).reshape(-1, 2),
        plan_event_times=plan.times, plan_event_unit=plan.unit_index,
        plan_event_variant=plan.variant_index,
        plan_event_gains=plan.gains.astype(np.float32),
        plan_gain_to_uV=rec.gain_to_uV, plan_offset_to_uV=rec.offset_to_uV,
        plan_n_samples_per_file=np.array([f.n_samples for f in rec.files], np.int64),
    )
    if truth.noise_uV is not None:
        snrs = injected_snr(plan, truth.noise_uV)
        arrays.update(plan_noise_uV=np.asarray(truth.noise_uV, np.float64),
                      plan_unit_noise_uV=snrs.noise_uV, plan_unit_mean_scale=snrs.mean_scale,
                      plan_unit_snr=snrs.snr)
    np.savez(path, **arrays)
    return path


def read_plan_file(path: Path) -> tuple[Plan, dict[str, np.ndarray]]:
    """The Plan written by :func:`write_plan_file` (the same templates, events and order) and the
    file's other arrays by their names without ``plan_`` (``gain_to_uV``, ``offset_to_uV``,
    ``n_samples_per_file``)."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TruthError(f"{path}: not a readable .npz ({exc})") from None
    with z:
        missing = [k for k in REQUIRED if k not in z.files]
        if missing:
            raise TruthError(f"{path}: no {missing[0]!r}; written by a hybridkit older than the plan "
                             "file (docs/outputs.md): run generate again to rebuild the hybrid from it")
        a = {k: z[k] for k in z.files if k.startswith("plan_")}
    templates = []
    for k in range(a["plan_template_unit"].size):
        nt, nc = int(a["plan_template_n_times"][k]), int(a["plan_template_n_channels"][k])
        templates.append(Template(
            unit_id=int(a["plan_unit_ids"][a["plan_template_unit"][k]]),
            waveform=a["plan_template_waveforms_uV"][k, :nt, :nc],
            channels=a["plan_template_channels"][k, :nc],
            peak_index=int(a["plan_template_peak_index"][k]),
            peak_channel=int(a["plan_template_peak_channel"][k]),
            position=a["plan_template_position_um"][k], source="plan file"))
    units = []
    for i, uid in enumerate(a["plan_unit_ids"].tolist()):
        own = [templates[k] for k in np.flatnonzero(a["plan_template_unit"] == i)]
        zero = int(a["plan_unit_zero_variant"][i])
        variants = None
        if a["plan_unit_drifts"][i]:
            offsets = a["plan_template_offset_um"][a["plan_template_unit"] == i]
            variants = DriftVariants(offsets_um=offsets, templates=own, zero=zero)
        units.append(PlacedUnit(new_unit_id=uid, source_unit_id=int(a["plan_unit_source_ids"][i]),
                                template=own[zero], shift_um=a["plan_unit_shift_um"][i],
                                variants=variants))
    plan = Plan(units=units, times=a["plan_event_times"], unit_index=a["plan_event_unit"],
                gains=a["plan_event_gains"], variant_index=a["plan_event_variant"])
    rest = {k: a[f"plan_{k}"] for k in ("gain_to_uV", "offset_to_uV", "n_samples_per_file")}
    return plan, rest

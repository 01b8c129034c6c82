"""The ground truth as an NWB Units table (one row per injected unit).

Columns (documented in docs/nwb.md; ``hybridkit score`` reads them):

* ``id`` = the injected unit's new id; ``spike_times`` (s) = the source's start time (0, or an
  NWB source's ``starting_time``) + the legacy ``firings_true`` samples / the sampling rate;
  ``obs_intervals`` = [[start, start + duration]] (every train is complete);
* ``electrodes``: the electrodes-table rows the placed template covers;
* ``waveform_mean``: (units, samples, electrodes) float32 volts over every electrodes row (zero off
  the unit's electrodes), all units aligned on their peak sample (``waveform_time_before_peak_in_ms``);
* hybrid columns: ``gt_unit_id``, ``is_injected``, ``source_unit``, ``template_source``,
  ``template_id``, ``peak_channel`` (file column, = firings_true row 0), ``peak_electrode``,
  ``location_um_x/y``, ``shift_um_x/y``, ``amplitude_uv``, ``amplitude_scale`` (one per spike),
  ``amplitude_scale_min/max``, ``noise_uv``, ``snr``, ``firing_rate_hz``, ``n_template_spikes``;
* per spike (ragged, like ``amplitude_scale``): ``spike_x_um``, ``spike_y_um``,
  ``spike_peak_channel`` - where the unit was at each spike, which moves with drift-aware injection.
"""
from __future__ import annotations

import numpy as np

from hybridkit.engine.noise import injected_snr, recording_noise_uV
from hybridkit.formats.nwb_layout import dense_waveforms
from hybridkit.model import GroundTruth

#: (name, description) of the per-unit columns, in table order
COLUMNS = [
    ("gt_unit_id", "Ground-truth unit id (the injected unit's id, as text)"),
    ("is_injected", "True: the unit was injected by hybridkit (every row of this table)"),
    ("source_unit", "Id of the unit whose template was injected, as its sorter or database names it"),
    ("template_source", "Where the template came from: the hybridkit template source, or a URI"),
    ("template_id", "Id of the template in its source (the source unit or database template id)"),
    ("peak_channel", "File column (0-based channel of the source recording) of the placed "
                     "template's peak; row 0 of the legacy firings_true.npy"),
    ("peak_electrode", "Row of the electrodes table of the placed template's peak"),
    ("location_um_x", "x (um, probe coordinates) of the placed template's peak contact"),
    ("location_um_y", "y (um, probe coordinates) of the placed template's peak contact"),
    ("shift_um_x", "x displacement (um) from the source unit's place to the injected place"),
    ("shift_um_y", "y displacement (um) from the source unit's place to the injected place"),
    ("amplitude_uv", "Peak absolute amplitude (uV) of the template before per-spike scaling"),
    ("amplitude_scale_min", "Smallest per-spike amplitude scale"),
    ("amplitude_scale_max", "Largest per-spike amplitude scale"),
    ("noise_uv", "The run's noise estimate on peak_channel: robust standard deviation (uV, "
                 "median absolute deviation / 0.6745) of the source recording, high-passed at the "
                 "run's highpass_hz, over 20 evenly spread chunks of 1000 samples (hybridkit's "
                 "docs/units.md)"),
    ("snr", "amplitude_uv x the mean of amplitude_scale / noise_uv: the placed template's peak on "
            "its peak channel at the unit's mean amplitude scale over the run's noise there (for a "
            "unit injected at its own place with scale 1, the units_selection table's "
            "template_snr)"),
    ("firing_rate_hz", "Injected spikes per second of recording"),
    ("n_template_spikes", "Spikes averaged into the template (0 when not built from spikes)"),
]


#: (name, description) of the per-spike (ragged) columns besides amplitude_scale
PER_SPIKE_COLUMNS = [
    ("spike_x_um", "x (um, probe coordinates) of the unit's peak at each spike; with motion "
                   "(drift-aware injection) it follows the probe's motion, else it is location_um_x"),
    ("spike_y_um", "y (um, probe coordinates) of the unit's peak at each spike; with motion it "
                   "follows the probe's motion, else it is location_um_y"),
    ("spike_peak_channel", "File column of the injected waveform's peak at each spike (the "
                           "legacy firings_true row 0); follows the motion like spike_y_um"),
]


def _template_uri(template) -> str:
    prov = template.provenance or {}
    return str(prov.get("uri") or prov.get("template_source") or template.source or "unknown")


def unit_rows(truth: GroundTruth) -> list[dict]:
    """Everything the Units table holds, one dict per injected unit (no pynwb needed)."""
    plan, rec = truth.plan, truth.recording
    fs = rec.sampling_rate
    duration = rec.n_samples / fs
    start = float(rec.start_time_s)  # the source's clock: times in the file match its other data
    neural = rec.neural_channels
    # the run's estimate; a GroundTruth made outside a run gets the same estimate, unfiltered
    noise = truth.noise_uV if truth.noise_uV is not None else recording_noise_uV(rec, None)
    snrs = injected_snr(plan, noise)
    positions = plan.event_positions()  # per event: follows the probe's motion (docs/drift.md)
    event_channels = plan.event_channels()
    rows = []
    for k, u in enumerate(plan.units):
        t = u.template
        mine = plan.unit_index == k
        samples = plan.times[mine]
        gains = plan.gains[mine].astype(np.float64)
        chans = np.sort(t.channels)
        amp = t.peak_amplitude_uV
        rows.append({
            "id": int(u.new_unit_id),
            "spike_samples": samples,
            "spike_times": start + samples / fs,
            "amplitude_scale": gains,
            "spike_x_um": positions[mine, 0], "spike_y_um": positions[mine, 1],
            "spike_peak_channel": event_channels[mine],
            "electrodes": np.searchsorted(neural, chans).tolist(),
            "gt_unit_id": str(u.new_unit_id), "is_injected": True,
            "source_unit": int(u.source_unit_id), "template_source": _template_uri(t),
            "template_id": str(t.unit_id),
            "peak_channel": int(t.peak_channel),
            "peak_electrode": int(np.searchsorted(neural, t.peak_channel)),
            "location_um_x": float(t.position[0]), "location_um_y": float(t.position[1]),
            "shift_um_x": float(u.shift_um[0]), "shift_um_y": float(u.shift_um[1]),
            "amplitude_uv": float(amp),
            "amplitude_scale_min": float(gains.min()) if gains.size else float("nan"),
            "amplitude_scale_max": float(gains.max()) if gains.size else float("nan"),
            "noise_uv": float(snrs.noise_uV[k]), "snr": float(snrs.snr[k]),
            "firing_rate_hz": float(samples.size / duration) if duration > 0 else 0.0,
            "n_template_spikes": int(t.n_spikes),
            "obs_intervals": [[start, start + duration]],
        })
    return rows


def build_units(truth: GroundTruth, electrodes_table, name: str = "units"):
    """A pynwb Units table of the ground truth (see the module docstring for its columns)."""
    from pynwb.misc import Units

    fs = truth.recording.sampling_rate
    rows = unit_rows(truth)
    waveforms, before = dense_waveforms(truth)
    from hdmf.utils import get_docval

    # NWB 2.11 attribute (pynwb >= 4); older pynwb writes the table without it
    extra = {"waveform_time_before_peak_in_ms": before / fs * 1e3} if any(
        d["name"] == "waveform_time_before_peak_in_ms" for d in get_docval(Units.__init__)) else {}
    units = Units(
        name=name, electrode_table=electrodes_table, resolution=1.0 / fs, waveform_rate=fs,
        waveform_unit="volts", **extra,
        description=(f"Ground-truth units injected by hybridkit (session {truth.session}, seed "
                     f"{truth.seed}): spike_times are {truth.recording.start_time_s!r} s + the injected "
                     f"samples / {fs!r} Hz; "
                     "waveform_mean is each placed template (volts, per-spike scale 1) over every "
                     "electrodes row, zero off the unit's electrodes"))
    for col, desc in COLUMNS:
        units.add_column(name=col, description=desc)
    units.add_column(name="amplitude_scale", index=True,
                     description="Amplitude scale of each spike (same order as spike_times)")
    for col, desc in PER_SPIKE_COLUMNS:
        units.add_column(name=col, description=desc, index=True)
    for k, r in enumerate(rows):
        units.add_unit(id=r["id"], spike_times=r["spike_times"], obs_intervals=r["obs_intervals"],
                       electrodes=r["electrodes"], waveform_mean=waveforms[k],
                       amplitude_scale=r["amplitude_scale"],
                       **{col: r[col] for col, _ in PER_SPIKE_COLUMNS},
                       **{col: r[col] for col, _ in COLUMNS})
    return units

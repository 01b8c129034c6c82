"""hybridkit's outputs as SpikeInterface objects (SpikeInterface is imported only when used).

    from hybridkit.spikeinterface import read_hybrid, lazy_hybrid
    recording, gt_sorting = read_hybrid("hybrid/")   # ready for run_sorter / compare_sorter_to_ground_truth

:func:`read_hybrid` reads a ``hybridkit generate`` output folder (legacy writer: the ``.GT``
binaries; NWB writer: the ElectricalSeries; or an NWB file itself) and returns the hybrid recording
with its probe attached and gains set, and the ground-truth sorting with unit properties. When the
output holds no traces (e.g. only ``nwb`` with ``traces: false``), or with ``lazy=True``, the
recording is :func:`lazy_hybrid`: computed on the fly from the source, bit-identical to what the
legacy writer writes (see :mod:`hybridkit.results.lazy_hybrid`).

Segments: file ``k`` of the source is segment ``k``; the ground-truth times of each segment are
counted from its first sample.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridkit.errors import TruthError
from hybridkit.formats.si_objects import require

__all__ = ["read_hybrid", "lazy_hybrid", "ground_truth_sorting"]


def lazy_hybrid(output_dir: str | Path):
    """The hybrid of the run in ``output_dir`` computed from its source on the fly: a SpikeInterface
    recording of every file column (sync words included), with gains; no probe attached."""
    require("hybridkit.spikeinterface.lazy_hybrid", TruthError)
    from hybridkit.results.lazy_hybrid import LazyHybridRecording

    return LazyHybridRecording(output_dir)


def ground_truth_sorting(truth, file_starts: np.ndarray):
    """A SpikeInterface NumpySorting of ``truth`` (hybridkit.results.truth.Truth), one segment per
    file (``file_starts``: (n_files + 1,) first sample of each file on the concatenated clock, then
    the end), unit ids the injected units' ids, with unit properties ``source_unit``,
    ``peak_channel`` (file column), ``x_um``/``y_um`` (position of the peak contact),
    ``amplitude_uV`` (template peak x mean gain) and, when the output stores it, ``snr`` (the
    run's: :func:`hybridkit.engine.noise.injected_snr`, read back, never re-measured)."""
    require("hybridkit.spikeinterface", TruthError)
    from spikeinterface.core import NumpySorting

    file_starts = np.asarray(file_starts, np.int64)
    seg = np.searchsorted(file_starts, truth.times, side="right") - 1
    samples = [truth.times[seg == k] - file_starts[k] for k in range(len(file_starts) - 1)]
    labels = [truth.units[seg == k] for k in range(len(file_starts) - 1)]
    ids = truth.unit_ids
    sorting = NumpySorting.from_samples_and_labels(samples, labels, truth.sampling_rate, unit_ids=ids)
    nan = float("nan")
    tpl = [truth.templates.get(int(u)) for u in ids]
    has_gain = truth.gains is not None
    mean_gain = [float(truth.gains[truth.units == u].mean()) if has_gain and np.any(truth.units == u)
                 else 1.0 for u in ids]
    amplitude = np.array([t.peak_amplitude_uV * g if t is not None else nan
                          for t, g in zip(tpl, mean_gain)])
    sorting.set_property("source_unit",
                         np.array([truth.source_units.get(int(u), -1) for u in ids], np.int64))
    sorting.set_property("peak_channel",
                         np.array([t.peak_channel if t is not None else -1 for t in tpl], np.int64))
    sorting.set_property("x_um", np.array([t.position[0] if t is not None else nan for t in tpl]))
    sorting.set_property("y_um", np.array([t.position[1] if t is not None else nan for t in tpl]))
    sorting.set_property("amplitude_uV", amplitude)
    if len(ids) and all(int(u) in truth.snr for u in ids):
        sorting.set_property("snr", np.array([truth.snr[int(u)] for u in ids], np.float64))
    return sorting


def _binary_recording(rec):
    """A SpikeInterface BinaryRecordingExtractor over a hybridkit flat-binary Recording (one segment
    per file), with gains, offsets and the probe (which keeps the neural columns only)."""
    from spikeinterface.core import BinaryRecordingExtractor

    offsets = {f.offset_bytes for f in rec.files}
    if len(offsets) > 1:
        raise TruthError(f"the hybrid files of {rec.name} have different header sizes {sorted(offsets)}; "
                         "SpikeInterface's binary reader takes one")
    return BinaryRecordingExtractor(
        file_paths=[str(f.path) for f in rec.files], sampling_frequency=rec.sampling_rate,
        dtype=rec.dtype, num_channels=rec.n_channels, channel_ids=np.arange(rec.n_channels),
        time_axis=0 if rec.order == "samples" else 1, file_offset=offsets.pop(),
        gain_to_uV=rec.gain_to_uV, offset_to_uV=rec.offset_to_uV)


def _with_probe(recording, probe):
    """``recording`` (channel ids = file columns) cut to the probe's contacts, probe attached (its
    contacts in column order); sync words and other columns without a contact are left out."""
    if probe is None:
        return recording
    columns = np.asarray(probe.device_channel_indices, np.int64)
    order = np.argsort(columns)
    contacts = probe.get_slice(order)
    contacts.set_device_channel_indices(np.arange(columns.size))
    if columns.size != recording.get_num_channels() or np.any(columns[order] != np.arange(columns.size)):
        recording = recording.select_channels(recording.channel_ids[columns[order]])
    attached = recording.set_probe(contacts)  # in place (None) since SpikeInterface 0.105
    return recording if attached is None else attached


def read_hybrid(output_dir: str | Path, lazy: bool | None = None):
    """The hybrid recording and its ground-truth sorting of a ``hybridkit generate`` output.

    Args:
        output_dir: the output folder (legacy and/or NWB writer), or an NWB file it wrote.
        lazy: True: compute the hybrid from the source (:func:`lazy_hybrid`) even when the output
            holds traces; False: read the output's traces only (TruthError without them); None
            (default): the output's traces when it has them, else the lazy hybrid.
    Returns:
        (recording, sorting): a SpikeInterface BaseRecording with the probe attached (contacts
        only) and gains/offsets to microvolts, and a NumpySorting of the injected units (ids as in
        the output) with properties source_unit, peak_channel, x_um, y_um, amplitude_uV, snr.
    """
    require("hybridkit.spikeinterface.read_hybrid", TruthError)
    from hybridkit.results.traces import NwbTraces, RecordingTraces, open_traces
    from hybridkit.results.truth import load_truth

    truth = load_truth(output_dir)
    traces = None if lazy else open_traces(truth)
    if traces is None and lazy is False:
        raise TruthError(f"{output_dir}: the output holds no hybrid traces (no .GT binaries, no NWB "
                         "ElectricalSeries); use lazy=True to compute them from the source")
    if isinstance(traces, NwbTraces):
        from spikeinterface.extractors import read_nwb_recording

        path = str(truth.path)
        traces.file.close()
        recording = read_nwb_recording(file_path=path,
                                       electrical_series_path="acquisition/ElectricalSeries")
        bounds = np.array([0, recording.get_num_samples(0)], np.int64)
        sorting = ground_truth_sorting(truth, bounds)
        return recording, sorting
    if isinstance(traces, RecordingTraces):
        rec = traces.recording
        full = _binary_recording(rec)
    else:  # lazy: from the source and the plan file
        from hybridkit.results.lazy_hybrid import LazyHybridRecording

        full = LazyHybridRecording(truth.folder)
        rec = full.source
    sorting = ground_truth_sorting(truth, rec.file_starts)
    return _with_probe(full, rec.probe), sorting

"""The training set's HDF5 layout (docs/augment.md), written batch by batch.

Datasets (``n`` snippets, ``T`` samples, ``C`` channels of the neighbourhood):

    waveforms        (n, T, C) float32  uV: noise + scaled templates
    noise            (n, T, C) float32  uV: the noise each snippet was built on (store_noise only)
    labels           (n,) int8          index into attribute label_names
    amplitudes       (n,) float32       uV, peak |amplitude| of the main template after scaling
    gains            (n, 2) float32     scale of the main (0) and second (1) template; 0 = none
    time_shifts      (n, 2) int32       samples the template's peak is from the centre sample
    space_shifts_um  (n, 2, 2) float32  (dx, dy) of the template's peak contact from the centre
    template_ids     (n, 2) int64       the template source's key (source unit id, database id,
                                        synthetic index); -1 = none
    unit_ids         (n, 2) int64       the sorted unit the template was built from; -1 = none
                                        or a template not built from a sorted unit
    centre_channels  (n,) int64         file column of the centre channel
    channels         (n, C) int64       file columns of the neighbourhood (column 0 = centre)
    positions        (n, C, 2) float32  um, contact positions of those channels
    noise_starts     (n,) int64         first sample of the noise window; -1 = model draw / none

Attributes of the root: format ("hybridkit-augment"), format_version, label_names (JSON list),
sampling_rate, n_before (the centre sample), seed, noise ("recording" or "model"),
template_source, config (the resolved run config, JSON).

Byte-identical files for one seed: datasets are created with ``track_times=False`` (HDF5 would
otherwise store each object's creation time) and a fixed chunking.
"""
from __future__ import annotations

import json

import numpy as np

FORMAT = "hybridkit-augment"
FORMAT_VERSION = 1

#: name -> (shape after n, dtype); T and C are filled in by :func:`create`
DATASETS = {
    "waveforms": (("T", "C"), np.float32),
    "noise": (("T", "C"), np.float32),
    "labels": ((), np.int8),
    "amplitudes": ((), np.float32),
    "gains": ((2,), np.float32),
    "time_shifts": ((2,), np.int32),
    "space_shifts_um": ((2, 2), np.float32),
    "template_ids": ((2,), np.int64),
    "unit_ids": ((2,), np.int64),
    "centre_channels": ((), np.int64),
    "channels": (("C",), np.int64),
    "positions": (("C", 2), np.float32),
    "noise_starts": ((), np.int64),
}


def create(h5, n: int, n_times: int, n_channels: int, batch: int, store_noise: bool, attrs: dict):
    """Create every dataset at its full size (chunked by ``batch`` snippets) and the attributes."""
    sizes = {"T": n_times, "C": n_channels}
    for name, (tail, dtype) in DATASETS.items():
        if name == "noise" and not store_noise:
            continue
        shape = (n, *(sizes.get(d, d) for d in tail))
        chunks = (max(1, min(batch, n)), *shape[1:]) if n else None
        h5.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, track_times=False)
    h5.attrs["format"] = FORMAT
    h5.attrs["format_version"] = FORMAT_VERSION
    for key, value in attrs.items():
        h5.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value


def write(h5, start: int, rows: dict[str, np.ndarray]) -> None:
    """Write rows ``[start, start + len)`` of each named dataset."""
    for name, value in rows.items():
        if name in h5:
            h5[name][start:start + len(value)] = value

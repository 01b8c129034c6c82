"""What a hybrid NWB file carries besides the traces and the Units table, so that only the ``.nwb``
needs to travel (DANDI uploads nothing else): the processing module ``hybridkit`` with tables

* ``run_config``: the resolved config (every default and the seed), one row per leaf field:
  ``field`` (JSON pointer, e.g. ``/injection/amplitude/max``) and ``value`` (JSON text); absolute
  paths are replaced by base names (:func:`hybridkit.formats.input_identity.portable_config`);
* ``inputs``: the run's inputs by identity (file name, bytes, SHA-256; DANDI instance, dandiset,
  version, asset id and path; URL), one row per config field that named one; ``input_files``: the
  files of input folders (a sorter's output), with sizes and SHA-256;
* ``injected_events``: every injected spike (as the legacy ``hybrid_events-<session>.csv``):
  ``time_samples``, ``unit``, ``source_unit``, ``peak_channel``, ``x_um``, ``y_um``, ``gain``,
  and ``template_row``: the row of ``templates`` injected at that spike;
* ``templates``: every template exactly as injected (float32 uV, its sparse channels as file
  columns, ``peak_index``), one row per unit, or per drift variant with motion (``unit``,
  ``variant``): ``waveform_uv`` is ragged, (n_times, n_channels) row-major per row;
  ``template_provenance``: where each unit's template came from (flattened rows);
* ``clipped_samples``: per file column of the neural channels, the samples that saturated;
* ``noise``: per file column of the neural channels, the run's noise estimate (uV) that every SNR
  of the run divides by (hybridkit/engine/noise.py; the Units table's ``noise_uv`` are its values
  on the units' peak channels);
* ``manifest``: versions, session, seed, rate, dtype, the sources by identity, counts, skipped units
  (flattened rows, as ``run_config``).

Everything is a plain DynamicTable of scalar columns (plus ragged columns): nwbinspector and
``dandi validate`` accept it, pynwb and h5py read it, and no extension namespace is needed.
``hybridkit generate --from-nwb`` reads ``run_config`` and ``inputs`` back (hybridkit/publish/from_nwb.py).
"""
from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import Any

import numpy as np

from hybridkit.model import GroundTruth
from hybridkit.formats.input_identity import INPUT_COLUMNS
from hybridkit.formats.json_pointers import flatten

MODULE = "hybridkit"


def _table(name: str, description: str, columns: list[tuple[str, str, Any]], n_rows: int,
           ragged: list[tuple[str, str, Any, np.ndarray]] = ()):
    """A DynamicTable from whole columns: (name, description, data); ragged: + the end offsets."""
    from hdmf.common import DynamicTable, ElementIdentifiers, VectorData, VectorIndex

    cols = [VectorData(name=n, description=d, data=data) for n, d, data in columns]
    for n, d, data, ends in ragged:
        target = VectorData(name=n, description=d, data=data)
        cols += [target, VectorIndex(name=f"{n}_index", data=np.asarray(ends, np.int64), target=target)]
    return DynamicTable(name=name, description=description, columns=cols,
                        id=ElementIdentifiers(name="id", data=np.arange(n_rows)))


def _add(module, table) -> None:
    """Empty tables are left out: pynwb cannot infer the type of an empty text column."""
    if len(table.id):
        module.add(table)


def _pairs(name: str, description: str, doc: dict):
    rows = flatten(doc)
    return _table(name, description, [
        ("field", "JSON pointer (RFC 6901) of the field", [r[0] for r in rows]),
        ("value", "The field's value as JSON text", [r[1] for r in rows])], len(rows))


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def manifest_of(truth: GroundTruth, inputs: list[dict]) -> dict:
    """The run's manifest without the list of output files (this file is one of them)."""
    from hybridkit.plugins.writers.nwb.metadata import distribution_version

    rec = truth.recording
    return {
        "tool": "hybridkit", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"hybridkit": distribution_version("hybridkit"), "python": platform.python_version(),
                     "numpy": distribution_version("numpy"), "pynwb": distribution_version("pynwb")},
        "session": truth.session, "seed": int(truth.seed), "sampling_rate_hz": float(rec.sampling_rate),
        "dtype": rec.dtype.str, "n_channels": int(rec.n_channels), "n_samples": int(rec.n_samples),
        "sources": [{"name": f.path.name, "n_samples": int(f.n_samples), "first_sample": int(f.first_sample)}
                    for f in rec.files],
        "inputs": [{k: r[k] for k in ("field", "kind", "file_name", "bytes", "sha256") if r[k] not in ("", -1)}
                   for r in inputs],
        "injected_units": len(truth.plan.units), "injected_events": int(truth.plan.n_events),
        "clipped_samples": truth.clipped_samples,
        "skipped_units": {str(k): v for k, v in truth.skipped_units.items()},
    }


def provenance_module(truth: GroundTruth, config: dict | None, inputs: list[dict]):
    """The ``hybridkit`` ProcessingModule (see the module docstring)."""
    from pynwb import ProcessingModule

    plan, rec = truth.plan, truth.recording
    module = ProcessingModule(name=MODULE, description=(
        "Provenance of this hybrid ground-truth recording, written by hybridkit: the resolved run "
        "config, its inputs by identity, the injected events and templates, clipped samples, the "
        "noise estimate and the manifest (docs/publishing.md)"))
    if config is not None:
        _add(module, _pairs("run_config", "The resolved hybridkit run config, one row per leaf field; "
                          "absolute paths replaced by base names (see the inputs table)", config))
    text = [c for c in INPUT_COLUMNS if c not in ("bytes", "files")]
    _add(module, _table("inputs", "Inputs of the run by identity, one row per config field naming one", [
        *[(c, f"Input {c.replace('_', ' ')} ('' when not applicable)", [str(r[c]) for r in inputs])
          for c in text],
        ("bytes", "Size in bytes (-1 when unknown)", np.array([r["bytes"] for r in inputs], np.int64))],
        len(inputs)))
    files = [(r["field"], f) for r in inputs for f in r["files"]]
    _add(module, _table("input_files", "Files inside input folders (field = the inputs row)", [
        ("field", "JSON pointer of the config field (a row of inputs)", [f for f, _ in files]),
        ("file_name", "Path relative to the folder", [x["file_name"] for _, x in files]),
        ("bytes", "Size in bytes", np.array([x["bytes"] for _, x in files], np.int64)),
        ("sha256", "SHA-256 ('' above 64 MiB: named by size)", [x["sha256"] for _, x in files])],
        len(files)))

    new_ids = np.array([u.new_unit_id for u in plan.units], np.int64)
    src_ids = np.array([u.source_unit_id for u in plan.units], np.int64)
    pos = plan.event_positions()
    _add(module, _table("injected_events", "Every injected spike, by time", [
        ("time_samples", "Sample of the spike's peak (0-based, on the hybrid recording's clock)",
         np.asarray(plan.times, np.int64)),
        ("unit", "Injected (new) unit id (the Units table id)", new_ids[plan.unit_index]),
        ("source_unit", "Unit whose template was injected", src_ids[plan.unit_index]),
        ("peak_channel", "File column of the injected waveform's peak", np.asarray(plan.event_channels(), np.int64)),
        ("x_um", "x (um) of the peak contact at this spike", np.asarray(pos[:, 0], np.float64)),
        ("y_um", "y (um) of the peak contact at this spike", np.asarray(pos[:, 1], np.float64)),
        ("gain", "Amplitude scale of the spike", np.asarray(plan.gains, np.float32)),
        ("template_row", ("Row of the templates table injected at this spike (its unit's drift "
                          "variant with motion; the unit's only row without)"),
         np.asarray(plan.event_template_index(), np.int64))], plan.n_events))

    # every template an event may use: one per unit, or each unit's drift variants
    tpl = plan.all_templates()
    owner = np.repeat(np.arange(len(plan.units)), [len(u.variant_templates) for u in plan.units])
    variant = np.concatenate([np.arange(len(u.variant_templates)) for u in plan.units]) if plan.units \
        else np.zeros(0, np.int64)
    _add(module, _table("templates", "Templates exactly as injected (float32 uV), one row per "
                        "unit (static) or per drift variant", [
        ("unit", "Injected (new) unit id", new_ids[owner]),
        ("source_unit", "Source unit id", src_ids[owner]),
        ("variant", "Drift variant index of the unit (0 when static)", variant.astype(np.int64)),
        ("peak_index", "Sample of the peak within the template", np.array([t.peak_index for t in tpl], np.int64)),
        ("n_times", "Samples per channel", np.array([t.n_times for t in tpl], np.int64)),
        ("template_source", "Template source name", [str(t.source) for t in tpl])], len(tpl), ragged=[
        ("channels", "File columns of the template's channels",
         np.concatenate([np.asarray(t.channels, np.int64) for t in tpl]) if tpl else np.zeros(0, np.int64),
         np.cumsum([t.channels.size for t in tpl])),
        ("waveform_uv", "(n_times, n_channels) row-major waveform, uV",
         np.concatenate([np.asarray(t.waveform, np.float32).ravel() for t in tpl]) if tpl else np.zeros(0, np.float32),
         np.cumsum([t.waveform.size for t in tpl]))]))
    _add(module, _pairs("template_provenance", "Where each template came from, by injected unit id",
                      {str(u.new_unit_id): _plain({"source_unit": u.source_unit_id, "source": u.template.source,
                                                   **(u.template.provenance or {})}) for u in plan.units}))
    neural = rec.neural_channels
    _add(module, _table("clipped_samples", "Output samples saturated at the dtype's limits, per channel", [
        ("file_column", "Channel (file column of the source)", np.asarray(neural, np.int64)),
        ("clipped_samples", "Saturated samples", np.asarray(truth.clipped_per_channel[neural], np.int64))],
        neural.size))
    if truth.noise_uV is not None:
        _add(module, _table("noise", "The run's noise estimate per channel: robust standard deviation "
                            "(uV, median absolute deviation / 0.6745) of the source, high-passed at "
                            "the run's highpass_hz, over 20 evenly spread chunks of 1000 samples", [
            ("file_column", "Channel (file column of the source)", np.asarray(neural, np.int64)),
            ("noise_uv", "Noise standard deviation, uV", np.asarray(truth.noise_uV[neural], np.float64))],
            neural.size))
    _add(module, _pairs("manifest", "Versions, session, seed, sources and counts of the run",
                      manifest_of(truth, inputs)))
    return module


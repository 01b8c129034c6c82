"""Sorter adapter ``spikeinterface``: any sorting SpikeInterface reads.

In the config (docs/spikeinterface.md)::

    {"type": "spikeinterface", "path": "sorting_saved"}        a folder from SpikeInterface's save()
    {"type": "spikeinterface", "path": "sorting.npz"}          an NPZ sorting (NpzSortingExtractor)
    {"type": "spikeinterface", "extractor": "spykingcircus", "folder_path": "sc_output"}

With ``extractor``, the other keys are the reader's arguments (``*_path`` relative to the config).
Unit ids are kept as SpikeInterface shows them (integers; string ids that are integers are
converted, others are an error, since hybridkit's unit ids are int64). Spike times are
SpikeInterface's sample indices; a sorting of several segments is put on the recording's
concatenated clock (segment ``k`` starts at file ``k``), which needs the recording (a sorting of one
segment does not). ``hybridkit score OUTPUT SORTING --type spikeinterface`` scores such a sorting;
a saved folder or an .npz is recognised without ``--type``.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field, ValidationInfo, model_validator

from hybridkit.errors import SortingError
from hybridkit.formats import si_objects
from hybridkit.hookspecs import SorterAdapter, hookimpl
from hybridkit.model import Recording, Sorting
from hybridkit.options import InputPath, PluginOptions
from hybridkit.plugins.sorters.common import check_against, check_times, sort_by_time

FIELD = "sorting"


class SpikeInterfaceSortingOptions(PluginOptions):
    # the extractor's own arguments are extra keys, checked against its signature
    model_config = ConfigDict(extra="allow", validate_default=True)

    type: Literal["spikeinterface"]
    path: InputPath | None = Field(
        None, description="A sorting folder written by SpikeInterface's save() (si_folder.json "
        "inside) or an NPZ sorting file (.npz). Give path or extractor.")
    extractor: str | None = Field(
        None, description="A SpikeInterface sorting extractor name (a key of "
        "spikeinterface.extractors.sorting_extractor_full_dict, e.g. 'spykingcircus', "
        "'tridesclous', 'mda', 'nwb', 'neuralynx'); its arguments are the other keys (e.g. "
        "folder_path, file_path). Give path or extractor.")

    @model_validator(mode="after")
    def _valid_call(self, info: ValidationInfo):
        if self.model_extra:
            self.__pydantic_extra__.update(si_objects.resolve_path_kwargs(self.model_extra, info))
        si_objects.check_choice(self, "sorting", FIELD)
        return self


def _int_ids(ids, where: str) -> np.ndarray:
    try:
        return np.array([int(u) for u in ids], np.int64)
    except (TypeError, ValueError):
        shown = [str(u) for u in list(ids)[:5]]
        raise SortingError(f"{where}: unit ids {shown} are not integers; hybridkit keeps a sorter's "
                           "ids as int64 (rename the units, e.g. sorting.rename_units)") from None


class SpikeInterfaceAdapter(SorterAdapter):
    """Reads a SpikeInterface sorting (saved folder, NPZ, or an extractor) into a Sorting."""

    name: ClassVar[str] = "spikeinterface"
    Options: ClassVar[type[PluginOptions]] = SpikeInterfaceSortingOptions

    @classmethod
    def extra_inputs(cls, options) -> list[tuple[str, Path]]:
        """The files and folders named by the extractor's ``*_path`` arguments."""
        return si_objects.path_kwargs(options, FIELD)

    @classmethod
    def detect(cls, path: Path) -> bool:
        """A folder saved by SpikeInterface, or an .npz holding SpikeInterface's sorting keys."""
        path = Path(path)
        if path.is_dir():
            return (path / "si_folder.json").is_file()
        if path.is_file() and path.suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    return "unit_ids" in z.files and "spike_indexes_seg0" in z.files
            except (OSError, ValueError):
                return False
        return False

    def _label(self) -> str:
        opt = self.options
        if opt.path is not None:
            return str(opt.path)
        paths = [v for k, v in (opt.model_extra or {}).items() if k.endswith("_path") and isinstance(v, str)]
        return paths[0] if paths else opt.extractor

    def load(self, recording: Recording | None = None) -> Sorting:
        """Read the sorting; segments go onto the recording's files; with ``recording``, check it."""
        opt = self.options
        where = self._label()
        srt = si_objects.open_configured("sorting", opt.path, f"{FIELD}.path", opt.extractor,
                                         dict(opt.model_extra or {}), FIELD, SortingError, where)
        n_seg = srt.get_num_segments()
        starts = np.zeros(n_seg, np.int64)
        if n_seg > 1:
            if recording is None or len(recording.files) != n_seg:
                have = f"{len(recording.files)} file(s)" if recording is not None else "no recording"
                raise SortingError(f"{FIELD}: {where} has {n_seg} segments but there is {have} to put "
                                   "them on one clock; give a recording with one file per segment")
            starts = recording.file_starts[:-1]
        ids = srt.unit_ids
        int_ids = _int_ids(ids, where)
        spikes = srt.to_spike_vector()  # sample_index, unit_index, segment_index: no per-unit loop
        times = spikes["sample_index"].astype(np.int64) + starts[spikes["segment_index"]]
        units = int_ids[spikes["unit_index"]]
        check_times(times, where, "SpikeInterface's sample_index")
        times, units = sort_by_time(times, units)
        named_path = opt.path is not None or where != opt.extractor  # a file or folder, not a name
        sorting = Sorting(spike_times=times, spike_units=units, unit_ids=np.unique(int_ids),
                          labels=self._labels(srt, int_ids),
                          sampling_rate=float(srt.sampling_frequency),
                          path=Path(where) if named_path else None, format="spikeinterface")
        if recording is not None:
            check_against(sorting, recording, where)
        return sorting

    @staticmethod
    def _labels(srt, int_ids: np.ndarray) -> dict[int, str]:
        """Curation labels where SpikeInterface has them (``quality``, phy's ``group``, ``KSLabel``)."""
        for key in ("quality", "group", "KSLabel"):
            values = srt.get_property(key)
            if values is not None:
                return {int(u): str(v) for u, v in zip(int_ids, values) if str(v)}
        return {}


@hookimpl
def hybridkit_sorter_adapters():
    return [SpikeInterfaceAdapter]

"""The plain data passed between stages: Recording, Sorting, Template(Bank), Plan, GroundTruth.

Conventions (see docs/architecture.md):

* A *channel* is a column of the recording's binary file: an index in ``0 .. n_channels-1``, sync
  and digital words included. Sorter outputs are translated to these indices by their adapter.
* Times are int64 sample indices, 0-based, on the recording's concatenated clock (the first sample
  of the first file is 0). Seconds appear only at the edges (NWB, reports).
* Template amplitudes are microvolts; raw file units appear only where traces are read or written.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from hybridkit.errors import SortingError, SourceError, TemplateError


@dataclass(frozen=True)
class SourceFile:
    """One binary file of a recording.

    ``n_samples`` samples of ``n_channels`` values start ``offset_bytes`` into ``path``;
    ``first_sample`` is the file's first sample on the acquisition stream's own clock (SpikeGLX
    ``firstSample``; 0 when unknown), kept for provenance.
    """

    path: Path
    n_samples: int
    offset_bytes: int = 0
    first_sample: int = 0
    meta_path: Path | None = None


@dataclass
class Recording:
    """A read-only multichannel recording made of one or more files of one stream.

    Attributes:
        files: the files in time order; their samples are concatenated.
        dtype: the native sample dtype of the files (e.g. int16).
        n_channels: values per sample in the file, sync/digital words included.
        sampling_rate: Hz.
        gain_to_uV: (n_channels,) float64, microvolts per raw unit; 0 for non-neural channels.
        offset_to_uV: (n_channels,) float64, microvolts added after the gain.
        channel_positions: (n_channels, 2) float64 contact positions in um (x, y); NaN rows for
            channels with no contact (sync words, aux inputs).
        neural: (n_channels,) bool, True where a contact exists and injection is allowed.
        order: "samples" when the file is samples-major (time x channel, C order, the usual case),
            "channels" when channels-major (channel x time).
        probe: a probeinterface Probe of the neural contacts whose device_channel_indices are file
            columns, or None when the reader has no geometry beyond channel_positions.
        meta: reader-specific extras (e.g. the parsed SpikeGLX meta), written out for provenance.
        start_time_s: time (s) of sample 0 on the source's own clock (an NWB series'
            ``starting_time`` or first timestamp); 0 when the source states none. Sample times
            stay 0-based; writers that store seconds add it.
    """

    #: False for recordings that are not flat binary files (an NWB dataset): writers that copy
    #: the source's file layout cannot write those
    flat_binary: ClassVar[bool] = True

    files: list[SourceFile]
    dtype: np.dtype
    n_channels: int
    sampling_rate: float
    gain_to_uV: np.ndarray
    offset_to_uV: np.ndarray
    channel_positions: np.ndarray
    neural: np.ndarray
    order: Literal["samples", "channels"] = "samples"
    probe: Any = None
    name: str = "recording"
    meta: dict = field(default_factory=dict)
    start_time_s: float = 0.0
    #: the open files while an :meth:`opened` block runs (not part of the description)
    _files: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.dtype = np.dtype(self.dtype)
        self.gain_to_uV = np.asarray(self.gain_to_uV, dtype=np.float64)
        self.offset_to_uV = np.asarray(self.offset_to_uV, dtype=np.float64)
        self.channel_positions = np.asarray(self.channel_positions, dtype=np.float64)
        self.neural = np.asarray(self.neural, dtype=bool)
        for label, arr, shape in (
            ("gain_to_uV", self.gain_to_uV, (self.n_channels,)),
            ("offset_to_uV", self.offset_to_uV, (self.n_channels,)),
            ("channel_positions", self.channel_positions, (self.n_channels, 2)),
            ("neural", self.neural, (self.n_channels,)),
        ):
            if arr.shape != shape:
                raise SourceError(
                    f"recording {self.name}: {label} has shape {arr.shape}, expected {shape}"
                )

    # -- geometry ---------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return int(sum(f.n_samples for f in self.files))

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sampling_rate

    @property
    def file_starts(self) -> np.ndarray:
        """(n_files + 1,) int64: the concatenated-clock sample at which each file starts, then the end."""
        return np.concatenate([[0], np.cumsum([f.n_samples for f in self.files])]).astype(np.int64)

    @property
    def clock_breaks(self) -> np.ndarray:
        """(k,) int64 concatenated-clock samples where a file starts whose first sample does not
        follow its predecessor's last on the acquisition clock (SpikeGLX ``firstSample``: a gap
        between triggers, or no ``firstSample`` to show continuity). Nothing may be injected
        across these: the samples on either side are not neighbours in time."""
        starts = self.file_starts
        breaks = [int(starts[i]) for i in range(1, len(self.files))
                  if self.files[i].first_sample
                  != self.files[i - 1].first_sample + self.files[i - 1].n_samples]
        return np.asarray(breaks, np.int64)

    @property
    def neural_channels(self) -> np.ndarray:
        """(n_neural,) int64 file columns that carry a contact."""
        return np.flatnonzero(self.neural).astype(np.int64)

    # -- traces -------------------------------------------------------------------------------
    @contextmanager
    def opened(self) -> Iterator[Any]:
        """Keep the files open for a block of many reads (a run): ``with recording.opened(): ...``.

        The descriptors belong to a :class:`hybridkit.formats.recording_files.RecordingFiles`
        that closes them when the block ends; reads outside such a block open and close the
        files themselves. Nested blocks share the outer block's files. Enter it from one thread
        (the run's); reads from any thread inside it share its files.
        """
        if self._files is not None:
            yield self._files
            return
        from hybridkit.formats.recording_files import RecordingFiles

        files = RecordingFiles(self.files, self.dtype, self.n_channels, self.order)
        self._files = files
        try:
            yield files
        finally:
            self._files = None
            files.close()

    def read(self, start: int, stop: int, channels: np.ndarray | slice | None = None) -> np.ndarray:
        """Samples ``[start, stop)`` on the concatenated clock as a new (stop-start, n_ch) native array.

        Reads across file boundaries with positional reads (no memmap, so streaming does not grow
        the resident set); ``channels`` selects file columns (default all).
        """
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"read [{start}, {stop}) outside recording of {self.n_samples} samples")
        if isinstance(channels, slice):
            channels = np.arange(self.n_channels)[channels]
        with self._reading() as files:
            return files.read(start, stop, channels)

    def will_need(self, ranges: list[tuple[int, int]]) -> None:
        """Ask for samples ``[start, stop)`` of each range (concatenated clock) to be read into the
        page cache in the background before they are read: on a cold disk scattered reads then
        overlap instead of waiting one after another. Flat samples-major files only; a no-op for
        others (readers whose ``read`` is their own)."""
        if self.flat_binary and ranges:
            with self._reading() as files:
                files.will_need(ranges)

    def read_file_windows(self, index: int, starts: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` (k, n_times, n_channels) with the windows of file ``index`` that start at
        ``starts`` (k,) samples into that file, one positional read each (samples-major files)."""
        with self._reading() as files:
            files.read_file_windows(index, starts, out)

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        """The run's open files inside :meth:`opened`, else files of this call's own: a read
        outside a run never publishes its files, so concurrent reads cannot close each other's."""
        shared = self._files
        if shared is not None:
            yield shared
            return
        from hybridkit.formats.recording_files import RecordingFiles

        with RecordingFiles(self.files, self.dtype, self.n_channels, self.order) as files:
            yield files

    def layout(self, index: int):
        """The binio.Layout of file ``index``."""
        from hybridkit.formats.binio import Layout

        f = self.files[index]
        return Layout(self.dtype, self.n_channels, f.n_samples, f.offset_bytes, self.order)

    def close(self) -> None:
        """Nothing to close: a Recording is a description (see :meth:`opened`); readers whose
        recordings hold a file of their own (NWB) override this."""


@dataclass
class Sorting:
    """A sorter's output translated to hybridkit's conventions.

    Attributes:
        spike_times: (n_spikes,) int64, 0-based samples on the recording's concatenated clock.
        spike_units: (n_spikes,) int64 unit id of each spike, as the sorter shows it (phy cluster id).
        unit_ids: (n_units,) int64, sorted unique ids of units that exist (may include units with
            no spikes left, e.g. after curation).
        labels: unit id -> label ("good", "mua", "noise", ...), where the sorter gave one.
        sampling_rate: Hz, where the output states it (else None).
        templates: (n_templates, n_times, n_sorter_channels) float32 in the sorter's own units and
            space (often whitened), or None. Row ``k`` belongs to ``template_units[k]``.
        template_units: (n_templates,) unit id of each template row, or None.
        channel_map: (n_sorter_channels,) int64 file column of each sorter channel, or None.
        channel_positions: (n_sorter_channels, 2) um, or None.
    """

    spike_times: np.ndarray
    spike_units: np.ndarray
    unit_ids: np.ndarray
    labels: dict[int, str] = field(default_factory=dict)
    sampling_rate: float | None = None
    templates: np.ndarray | None = None
    template_units: np.ndarray | None = None
    channel_map: np.ndarray | None = None
    channel_positions: np.ndarray | None = None
    path: Path | None = None
    format: str = ""
    #: the file the unit ids were read from (phy: spike_clusters.npy), for messages
    units_file: Path | None = None

    def __post_init__(self) -> None:
        self.spike_times = np.asarray(self.spike_times, dtype=np.int64).ravel()
        self.spike_units = np.asarray(self.spike_units, dtype=np.int64).ravel()
        self.unit_ids = np.asarray(self.unit_ids, dtype=np.int64).ravel()
        if self.spike_times.shape != self.spike_units.shape:
            raise SortingError(
                f"spike_times {self.spike_times.shape} and spike_units {self.spike_units.shape} differ"
            )

    def times_of(self, unit_id: int) -> np.ndarray:
        """(n,) int64 sorted spike times of one unit."""
        return np.sort(self.spike_times[self.spike_units == unit_id])


@dataclass
class Template:
    """One unit's template, sparse over the channels that carry its signal.

    Attributes:
        unit_id: the source unit's id (as the sorter shows it) or a template-database id.
        waveform: (n_times, n_sparse) float32, microvolts.
        channels: (n_sparse,) int64 file columns of the waveform's columns.
        peak_index: sample within ``waveform`` aligned to a spike time (the trough/peak).
        peak_channel: file column of the largest absolute amplitude.
        position: (2,) um, contact position of ``peak_channel``.
        source: name of the template source plugin that built it.
        n_spikes: spikes averaged (0 when not built from spikes).
        provenance: free-form details (dataset, template index, rank, ...).
    """

    unit_id: int
    waveform: np.ndarray
    channels: np.ndarray
    peak_index: int
    peak_channel: int
    position: np.ndarray
    source: str = ""
    n_spikes: int = 0
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.waveform = np.asarray(self.waveform, dtype=np.float32)
        self.channels = np.asarray(self.channels, dtype=np.int64)
        self.position = np.asarray(self.position, dtype=np.float64)
        if self.waveform.ndim != 2 or self.waveform.shape[1] != self.channels.size:
            raise TemplateError(
                f"template of unit {self.unit_id}: waveform {self.waveform.shape} does not match "
                f"{self.channels.size} channels"
            )

    @property
    def n_times(self) -> int:
        return int(self.waveform.shape[0])

    @property
    def peak_amplitude_uV(self) -> float:
        return float(np.abs(self.waveform).max()) if self.waveform.size else 0.0


@dataclass
class TemplateBank:
    """Templates keyed by source unit id, all at ``sampling_rate``."""

    templates: dict[int, Template]
    sampling_rate: float


@dataclass
class DriftVariants:
    """A placed template precomputed at a grid of y offsets, for drift-aware injection.

    Attributes:
        offsets_um: (n_grid,) float64 increasing y offsets, um (> 0 = larger probe y); one is 0.0.
        templates: (n_grid,) the template at each offset; ``templates[zero]`` is the placed
            (static) template object itself. The others are float32 and sparse over the contacts
            their signal reaches, with ``position`` = placed position + (0, offset) (the unit's
            position, not necessarily a contact) and ``peak_channel`` their largest column.
        zero: index of offset 0.
    """

    offsets_um: np.ndarray
    templates: list[Template]
    zero: int

    @property
    def nbytes(self) -> int:
        """Bytes of the precomputed waveforms (the static one excluded)."""
        return int(sum(t.waveform.nbytes for i, t in enumerate(self.templates) if i != self.zero))


@dataclass
class PlacedUnit:
    """An injected (hybrid) unit: a template moved to its place on the target probe.

    ``template`` is the placed template (its channels and peak channel are where it is injected);
    ``shift_um`` is the (dx, dy) displacement applied to the source template. ``variants`` is
    None for a static unit, or the template precomputed across depth when the unit drifts
    (hybridkit.engine.drift); each event then uses the variant ``Plan.variant_index`` names.
    """

    new_unit_id: int
    source_unit_id: int
    template: Template
    shift_um: np.ndarray
    variants: DriftVariants | None = None

    @property
    def variant_templates(self) -> list[Template]:
        """The templates events may use: the variants, or just ``[template]`` when static."""
        return self.variants.templates if self.variants is not None else [self.template]


@dataclass
class Plan:
    """Every injected event, sorted by time.

    Attributes:
        units: the injected units; ``unit_index`` indexes this list.
        times: (n_events,) int64 sample of each event (aligned to the template's peak_index).
        unit_index: (n_events,) int64.
        gains: (n_events,) float32 amplitude scale of each event (multiplies the whole waveform).
        variant_index: (n_events,) int64 index into the event's unit's ``variant_templates``
            (drift-aware injection); default all 0, the placed template of a static unit.
    """

    units: list[PlacedUnit]
    times: np.ndarray
    unit_index: np.ndarray
    gains: np.ndarray
    variant_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.int64)
        self.unit_index = np.asarray(self.unit_index, dtype=np.int64)
        self.gains = np.asarray(self.gains, dtype=np.float32)
        self.variant_index = (np.zeros(self.times.shape, np.int64) if self.variant_index is None
                              else np.asarray(self.variant_index, dtype=np.int64))
        order = np.argsort(self.times, kind="stable")
        self.times, self.unit_index, self.gains, self.variant_index = (
            self.times[order], self.unit_index[order], self.gains[order], self.variant_index[order]
        )

    @property
    def n_events(self) -> int:
        return int(self.times.size)

    @property
    def drifting(self) -> bool:
        """True when some unit has drift variants."""
        return any(u.variants is not None for u in self.units)

    def all_templates(self) -> list[Template]:
        """Every template an event may use, unit by unit (each unit's ``variant_templates``)."""
        return [t for u in self.units for t in u.variant_templates]

    def event_template_index(self) -> np.ndarray:
        """(n_events,) int64 index into :meth:`all_templates` of each event's template; equal to
        ``unit_index`` when no unit drifts (one template per unit, variant 0)."""
        counts = [len(u.variant_templates) for u in self.units]
        first = np.cumsum([0] + counts)[:-1].astype(np.int64)
        return first[self.unit_index] + self.variant_index if self.units else np.zeros(0, np.int64)

    def _per_variant(self, value) -> np.ndarray:
        """``value(template)`` of each event's template."""
        if not self.units:
            return np.zeros(0)
        return np.array([value(t) for t in self.all_templates()])[self.event_template_index()]

    def event_channels(self) -> np.ndarray:
        """(n_events,) int64 peak channel of each event's injected template (its drift variant)."""
        return self._per_variant(lambda t: t.peak_channel).astype(np.int64)

    def event_positions(self) -> np.ndarray:
        """(n_events, 2) float64 um: (x, y) position of each injected event's unit at its time
        (the placed template's position, moved by the event's drift offset)."""
        if not self.units:
            return np.zeros((0, 2))
        return self._per_variant(lambda t: t.position).astype(np.float64).reshape(-1, 2)


@dataclass
class GroundTruth:
    """What was injected, as writers record it.

    ``clipped_per_channel`` (n_channels,) int64 counts output samples saturated at the dtype's
    limits; ``skipped_units`` maps a source unit id to the reason it was not injected;
    ``sorting`` is the source sorting the units came from (None for database/synthetic templates);
    ``noise_uV`` the run's noise estimate, (n_channels,) float64 uV per file column, NaN off the
    neural channels (:func:`hybridkit.engine.noise.recording_noise_uV`; None outside a run).
    """

    plan: Plan
    recording: Recording
    clipped_per_channel: np.ndarray
    skipped_units: dict[int, str] = field(default_factory=dict)
    seed: int = 0
    session: str = ""
    sorting: Sorting | None = None
    noise_uV: np.ndarray | None = None

    @property
    def clipped_samples(self) -> int:
        return int(self.clipped_per_channel.sum())

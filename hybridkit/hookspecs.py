"""The plugin contract: four plugin kinds, one pluggy hook each.

A plugin module defines classes deriving from :class:`SourceReader`, :class:`SorterAdapter`,
:class:`TemplateSource` or :class:`Writer`, and returns them from the matching hook::

    from hybridkit import hookimpl

    @hookimpl
    def hybridkit_sorter_adapters():
        return [CsvSpikes]

Each class has a ``name`` (unique within its kind) and an ``Options`` pydantic model (subclass of
:class:`hybridkit.options.PluginOptions`) whose ``type`` field is ``Literal[name]``. The run config
validates each plugin section against the chosen plugin's ``Options``; the plugin is then
constructed with those validated options.

Built-in plugins are registered exactly like third-party ones (see :mod:`hybridkit.registry`).
"""
from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pluggy

from hybridkit.options import PluginOptions

if TYPE_CHECKING:
    from hybridkit.model import GroundTruth, Recording, Sorting, TemplateBank

PROJECT = "hybridkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


def named_stream(seed: int, name: str) -> np.random.Generator:
    """The run's random stream for one consumer, derived from the run seed and the consumer's name.

    ``SeedSequence(seed, spawn_key=(crc32(name),))``: a stream depends on (seed, name) alone, so a
    consumer added, removed or drawing more numbers never shifts another's. Stages use their
    stage name (``placement``, ``trains``, ...), plugins ``<kind>:<name>`` (see RunContext).
    """
    key = zlib.crc32(name.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(key,)))


@dataclass
class RunContext:
    """What every plugin may use from the run: where the config lives, its own seeded generator.

    ``rng`` is the plugin's own stream of the run seed (``named_stream(seed, "<kind>:<name>")``):
    draw every random number from it, or from :meth:`stream` for separate needs, so a run is
    reproduced by its seed and one plugin's draws never move another's.
    """

    base_dir: Path
    rng: np.random.Generator
    seed: int
    session: str = "hybrid"
    #: the resolved run config as JSON (absolute paths, every default, the seed); writers that
    #: record provenance (the NWB writer) store it; None outside ``generate``
    resolved_config: dict | None = None
    #: the output folder of an in-place run (``output.in_place``; see hybridkit.formats.in_place):
    #: the legacy writer then patches the source itself; None otherwise
    in_place_output: Path | None = None
    #: the run's noise estimate, (n_channels,) float64 uV per file column (NaN off the neural
    #: channels), high-passed at the template source's ``highpass_hz``
    #: (:func:`hybridkit.engine.noise.recording_noise_uV`); set by the run before templates are
    #: built, None before that and outside a run
    noise_uV: np.ndarray | None = None
    #: the run's file digests (:class:`hybridkit.formats.checksums.FileDigests`): a plugin that
    #: hashes an input asks it, so the manifest reuses the hash instead of reading the file again;
    #: None outside ``generate``
    digests: Any = None

    @classmethod
    def for_plugin(cls, base_dir: Path, seed: int, session: str, kind: str, name: str,
                   resolved_config: dict | None = None, digests: Any = None) -> "RunContext":
        """The context of plugin ``name`` of ``kind`` in a run: its own named stream of ``seed``."""
        return cls(base_dir=Path(base_dir), rng=named_stream(seed, f"{kind}:{name}"), seed=int(seed),
                   session=session, resolved_config=resolved_config, digests=digests)

    def stream(self, name: str) -> np.random.Generator:
        """A further stream of the run seed, by name (e.g. ``"writer:mywriter:jitter"``)."""
        return named_stream(self.seed, name)

    @classmethod
    def outside_run(cls, base_dir: Path) -> "RunContext":
        """The context of a plugin used outside a run (``units``, ``score``, ``report``): seed 0."""
        return cls(base_dir=Path(base_dir), rng=np.random.default_rng(0), seed=0)


class Plugin(ABC):
    """Common shape of all plugins: a name, an Options model, construction from options."""

    #: unique within the plugin's kind; the config's ``type`` value
    name: ClassVar[str]
    #: the pydantic model of this plugin's config section
    Options: ClassVar[type[PluginOptions]]
    #: plugin kind, set by each base class below
    kind: ClassVar[str]

    def __init__(self, options: PluginOptions, context: RunContext | None = None) -> None:
        self.options = options
        self.context = context

    @classmethod
    def extra_inputs(cls, options: PluginOptions) -> list[tuple[str, Path]]:
        """Local files or folders these options make the plugin read beyond their path fields,
        as (what it is, path): e.g. the .meta beside a .bin, the files a pattern matches, a
        default cache folder. Path fields are found without this. The output folder may not be,
        hold or lie inside any of them (checked before any work; nothing need exist yet)."""
        return []


class SourceReader(Plugin):
    """Opens a source recording (described, read-only; read block by block)."""

    kind = "source_reader"

    @abstractmethod
    def open(self) -> "Recording":
        """Describe the recording (files, dtype, layout, gains, positions); raise SourceError on
        inconsistent input."""


class SorterAdapter(Plugin):
    """Loads a sorter's output into a :class:`hybridkit.model.Sorting`."""

    kind = "sorter_adapter"

    @abstractmethod
    def load(self, recording: "Recording | None" = None) -> "Sorting":
        """Read the sorting; with ``recording``, check it against it (channels, times in range)."""

    @classmethod
    def detect(cls, path: Path) -> bool:
        """Whether ``path`` looks like this adapter's format (used when the config omits ``type``)."""
        return False


class TemplateSource(Plugin):
    """Builds one template per ground-truth unit."""

    kind = "template_source"
    #: True: templates are built from sorted units chosen by the config's ``units`` section, and
    #: ``build`` gets their ids. False: the source picks or makes its own templates (database,
    #: synthetic); ``build`` gets ``unit_ids=[]`` and the bank's keys become the injected units'
    #: source ids (a database unit id, a synthetic index), and ``sorting`` may be None.
    uses_sorting_units: ClassVar[bool] = True

    @property
    def highpass_hz(self) -> float | None:
        """The high-pass corner (Hz) this source applies to the recording before it measures
        spikes, or None (the recording's own band). Unit selection measures amplitude and SNR in
        the same band, so the ``units`` criteria judge the spikes the templates are made of."""
        return None

    def noise_uV(self, recording: "Recording") -> np.ndarray:
        """The run's noise estimate of ``recording`` ((n_channels,) float64 uV per file column,
        NaN off the neural channels, in this source's band): the one the run handed over in
        ``context.noise_uV``, else the same estimate made here (a source used outside a run).
        Use it for every noise level (sparsity, scaling to an SNR), so each SNR of the run
        divides by the same numbers."""
        ctx = self.context
        noise = ctx.noise_uV if ctx is not None else None
        if noise is None or np.shape(noise) != (recording.n_channels,):
            from hybridkit.engine.noise import recording_noise_uV

            noise = recording_noise_uV(recording, self.highpass_hz)
            if ctx is not None:
                ctx.noise_uV = noise
        return noise

    @abstractmethod
    def build(
        self, recording: "Recording", sorting: "Sorting | None", unit_ids: list[int]
    ) -> "TemplateBank":
        """Return templates in microvolts for ``unit_ids`` on ``recording``'s channels."""


class Writer(Plugin):
    """Writes the hybrid recording and/or its ground truth into a staging folder.

    The pipeline calls ``begin`` once, then ``write`` with blocks of hybrid samples in increasing
    time order, then ``finish``. Writers with ``needs_every_sample = False`` keep the source's
    layout: they copy the source in ``begin`` and receive only the blocks that differ from it.
    The folder passed to ``begin`` is a staging folder renamed into place by the pipeline when every
    writer has finished, so a failed run never leaves complete-looking output.
    """

    kind = "writer"
    #: True when the writer must see every sample (e.g. a compressed NWB stream)
    needs_every_sample: ClassVar[bool] = False
    #: names of writers that must run in the same run (e.g. phy needs legacy's hybrid binary)
    requires: ClassVar[tuple[str, ...]] = ()
    #: the largest unit id the writer's format can store (phy: int32), None for no limit; the
    #: pipeline checks the injected units' ids against it before any work
    max_unit_id: ClassVar[int | None] = None

    @classmethod
    def writes_traces(cls, options: PluginOptions) -> bool:
        """Whether this writer, with these options, writes the hybrid recording's samples (a run
        whose writers write none is warned about: it has ground truth but no recording)."""
        return False

    @abstractmethod
    def begin(self, recording: "Recording", out_dir: Path) -> None:
        """Prepare outputs in ``out_dir`` (a staging folder)."""

    def write(self, start: int, block: np.ndarray, channels: np.ndarray | None = None) -> None:
        """Hybrid samples ``[start, start + len(block))`` in the file's dtype.

        ``block`` is (time, n_channels) when ``channels`` is None, else (time, len(channels)) for
        those file columns only: the other columns of these samples equal the source's. Writers
        with ``needs_every_sample`` always get every channel of every sample, in time order.
        """

    def write_runs(self, start: int, rows: np.ndarray, runs: np.ndarray) -> None:
        """The rows of a block that injection changed: for each ``(a, b)`` of ``runs``, hybrid
        samples ``[start + a, start + b)`` are ``rows[a:b]``; the block's other rows equal the
        source's.

        ``rows`` is (time, n_channels) in the file's dtype; ``runs`` is (n_runs, 2) int64,
        increasing and disjoint. The default writes each run with :meth:`write`; a writer may
        write them all in one go (the legacy writer: one wait for its copy, positional writes).
        """
        for a, b in runs.tolist():
            self.write(start + a, rows[a:b], None)

    def patchable_rows(self, start: int, stop: int, touched: np.ndarray) -> np.ndarray | None:
        """The hybrid's rows ``[start, stop)`` as a writable (time, n_channels) array of the file's
        dtype that already holds the source's samples (e.g. a memory map of a copy), for the
        engine to inject into directly; or None (the default), and the engine reads the source
        and hands the changed rows to :meth:`write_runs`.

        ``touched`` ((n_runs, 2) int64, relative to ``start``) are the rows injection will write.
        The engine asks only when this is the run's one writer of samples and no writer
        ``needs_every_sample``; writers that write no samples (``writes_traces`` False) then get
        no ``write`` calls. The ranges are disjoint and asked for in increasing order of ``start``,
        from the engine's worker threads when ``engine.workers`` > 1.
        """
        return None

    @abstractmethod
    def finish(self, truth: "GroundTruth", out_dir: Path) -> list[Path]:
        """Write the ground truth and sidecars; return the files written (for the manifest)."""

    def abort(self) -> None:
        """The run failed after ``begin``: stop background work and close files. The pipeline
        deletes the staging folder next, so nothing needs removing here."""


class HybridkitSpec:
    """Hook specifications; each returns a list of plugin classes of one kind."""

    @hookspec
    def hybridkit_source_readers(self) -> list[type[SourceReader]]:
        """Source recording readers (SpikeGLX, binary, NWB, ...)."""

    @hookspec
    def hybridkit_sorter_adapters(self) -> list[type[SorterAdapter]]:
        """Sorter output adapters (phy, kilosort, jrclust, yass, ...)."""

    @hookspec
    def hybridkit_template_sources(self) -> list[type[TemplateSource]]:
        """Template sources (local, template_database, synthetic, ...)."""

    @hookspec
    def hybridkit_writers(self) -> list[type[Writer]]:
        """Output writers (legacy, phy, nwb, ...)."""


#: hook name -> (kind label, base class)
HOOKS: dict[str, tuple[str, type[Plugin]]] = {
    "hybridkit_source_readers": ("source_reader", SourceReader),
    "hybridkit_sorter_adapters": ("sorter_adapter", SorterAdapter),
    "hybridkit_template_sources": ("template_source", TemplateSource),
    "hybridkit_writers": ("writer", Writer),
}

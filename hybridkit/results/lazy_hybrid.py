"""A hybrid recording computed on the fly, as a SpikeInterface recording: no second copy on disk.

:class:`LazyHybridRecording` reads the run's source with hybridkit's own reader (the
``recording`` section of ``config.resolved.json``) and its exact plan from
``templates-<session>.npz`` (:mod:`hybridkit.results.plan_file`), and returns, for any
``get_traces`` window, ``source + rint(sum of gain * template / gain_to_uV)`` saturated at the
dtype's limits: the same functions of :mod:`hybridkit.engine.inject` that ``generate`` runs, or
their compiled twin :mod:`hybridkit.engine.inject_compiled` (tested equal), so the samples equal
the legacy writer's ``.GT`` files bit for bit whatever the window (injection does not depend on
block edges). With numba, a flat source file is mapped once per segment
(:mod:`hybridkit.formats.mapped_reads`) and each window is copied from the map and injected a
cache-sized piece at a time: this is what makes it faster than SpikeInterface's
``InjectTemplatesRecording`` on the same events (``bench/bench_spikeinterface.py``).

Segment ``k`` is source file ``k`` (times of the ground truth minus the file's first sample on
the concatenated clock). Channel ids are file columns; non-neural columns (sync words) are
included, with gain 0: :func:`hybridkit.spikeinterface.read_hybrid` attaches the probe, which keeps
the contacts only.

It pickles to SpikeInterface's worker processes by its ``_kwargs`` (the output folder): each worker
reopens (and maps) the source and the plan file, and compiles the numba loop once (or loads it from
numba's on-disk cache). This module imports SpikeInterface at import time; import it
through :mod:`hybridkit.spikeinterface`, which says which extra to install when it is missing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from spikeinterface.core import BaseRecording, BaseRecordingSegment

from hybridkit.engine import inject, inject_compiled
from hybridkit.errors import TruthError
from hybridkit.formats.mapped_reads import map_samples
from hybridkit.model import Recording
from hybridkit.results.plan_file import read_plan_file


def open_run(output_dir: Path) -> tuple[Recording, inject.Kernel, dict]:
    """The source recording of the run in ``output_dir``, its injection kernel, and the plan file's
    scale arrays; raises TruthError (one line) when the output lacks what is needed."""
    from hybridkit.results.traces import open_source

    folder = Path(output_dir)
    try:
        cfg = json.loads((folder / "config.resolved.json").read_text(encoding="utf-8"))
        session = cfg["session"]
        section = cfg["recording"]
    except (OSError, ValueError, KeyError) as exc:
        raise TruthError(f"{folder / 'config.resolved.json'}: cannot read the run's session and "
                         f"recording section ({exc}); give the output folder of `hybridkit generate`"
                         ) from None
    plan_path = folder / f"templates-{session}.npz"
    if not plan_path.is_file():
        raise TruthError(f"{plan_path}: missing; the lazy hybrid needs the run's plan file")
    plan, scale = read_plan_file(plan_path)
    source = open_source(section, folder)
    stated, n_ch = scale["n_samples_per_file"], scale["gain_to_uV"].size
    actual = np.array([f.n_samples for f in source.files], np.int64)
    if not np.array_equal(stated, actual) or n_ch != source.n_channels:
        raise TruthError(f"{plan_path}: the run's source had {stated.tolist()} samples per file and "
                         f"{n_ch} channels; the recording named in config.resolved.json now has "
                         f"{actual.tolist()} and {source.n_channels}: not the same source")
    # the scale the run used (the float64 values themselves): the raw templates come out identical
    return source, inject.prepare(plan, scale["gain_to_uV"]), scale


#: bytes of source rows copied and injected at a time on the mapped path: small enough for the rows
#: an event adds to to be still cached when it adds to them, large enough for few Python steps
#: (2 MB beat 0.5 and 4 MB in 0.1, 1 and 10-s windows, bench/bench_spikeinterface.py)
SUB_BLOCK_BYTES = 1 << 21


class LazyHybridSegment(BaseRecordingSegment):
    """Source file ``k`` of the run plus its events, as one SpikeInterface segment.

    Three ways to the same samples, chosen once: with numba and an integer source (``packed``
    set), the events of a window are injected by :mod:`hybridkit.engine.inject_compiled`, into
    rows copied from the file's map (``mapped``: a flat samples-major file) a cache-sized piece at
    a time, or into what the source reader returns; otherwise by :mod:`hybridkit.engine.inject`'s
    numpy functions, as generate's event blocks are.
    """

    def __init__(self, source: Recording, kernel: inject.Kernel, first: int, last: int,
                 sampling_frequency: float, packed: inject_compiled.PackedKernel | None = None,
                 mapped: np.ndarray | None = None) -> None:
        BaseRecordingSegment.__init__(self, sampling_frequency=sampling_frequency, t_start=None)
        self.source, self.kernel, self.first, self.last = source, kernel, int(first), int(last)
        self.packed, self.mapped = packed, mapped

    def get_num_samples(self) -> int:
        return self.last - self.first

    def get_traces(self, start_frame=None, end_frame=None, channel_indices=None) -> np.ndarray:
        """(end_frame - start_frame, channels) raw samples of the hybrid, in the source's dtype."""
        start = self.first + (0 if start_frame is None else int(start_frame))
        stop = self.first + (self.get_num_samples() if end_frame is None else int(end_frame))
        if self.packed is None:
            whole = self._numpy_traces(start, stop)
        elif self.mapped is None:
            whole = self.source.read(start, stop)  # whole rows, as generate reads them
            inject_compiled.inject_events(self.packed, whole, start, self._events(start, stop))
        else:
            whole = self._mapped_traces(start, stop)
        if channel_indices is None:
            return whole
        return whole[:, channel_indices]

    def _events(self, start: int, stop: int) -> np.ndarray:
        """The events overlapping ``[start, stop)``, in the compiled loop's order."""
        return inject_compiled.by_window_start(
            self.packed, inject.events_overlapping(self.kernel, start, stop))

    def _mapped_traces(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (concatenated clock, inside this file): rows copied from the
        map and injected one piece of about SUB_BLOCK_BYTES at a time."""
        packed, mapped = self.packed, self.mapped
        out = np.empty((stop - start, mapped.shape[1]), mapped.dtype)
        events = self._events(start, stop)
        rows = max(1, SUB_BLOCK_BYTES // (mapped.shape[1] * mapped.itemsize))
        piece_starts = np.arange(start, stop, rows, dtype=np.int64)
        piece_stops = np.minimum(piece_starts + rows, stop)
        # events sorted by window start: those that can reach piece [a, b) start before b and
        # after a - max_window (a window is at most max_window long); the rest add nothing there
        starts = packed.window_starts[events]
        lo = np.searchsorted(starts, piece_starts - packed.max_window, side="right").tolist()
        hi = np.searchsorted(starts, piece_stops, side="left").tolist()
        first = self.first
        for i, (a, b) in enumerate(zip(piece_starts.tolist(), piece_stops.tolist())):
            piece = out[a - start:b - start]
            np.copyto(piece, mapped[a - first:b - first])
            if hi[i] > lo[i]:
                inject_compiled.inject_events(packed, piece, a, events[lo[i]:hi[i]])
        return out

    def _numpy_traces(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` with generate's own numpy injection
        (:func:`hybridkit.engine.inject.inject_rows`)."""
        whole = self.source.read(start, stop)  # whole rows, as generate reads them
        inject.inject_rows(self.kernel, whole, start)
        return whole


def hybrid_segments(source: Recording, kernel: inject.Kernel) -> list[LazyHybridSegment]:
    """One segment per source file, each on the fastest path its source allows (see
    :class:`LazyHybridSegment`)."""
    bounds = source.file_starts.tolist()
    packed = inject_compiled.pack(kernel) if inject_compiled.supports(source.dtype) else None
    # flat samples-major files are mapped (one copy per read); other sources are read
    mappable = packed is not None and source.flat_binary and source.order == "samples"
    segments = []
    for k, f in enumerate(source.files):
        mapped = (map_samples(f.path, source.dtype, source.n_channels, f.n_samples, f.offset_bytes)
                  if mappable else None)
        segments.append(LazyHybridSegment(source, kernel, bounds[k], bounds[k + 1], source.sampling_rate,
                                          packed, mapped))
    return segments


class LazyHybridRecording(BaseRecording):
    """The hybrid recording of the ``generate`` run in ``output_dir``, computed from its source.

    Args:
        output_dir: a ``hybridkit generate`` output folder with ``config.resolved.json`` and
            ``templates-<session>.npz`` (any writers; the source must still be where the config
            says).
    """

    def __init__(self, output_dir: str | Path) -> None:
        output_dir = Path(output_dir).resolve()
        source, kernel, scale = open_run(output_dir)
        BaseRecording.__init__(self, sampling_frequency=source.sampling_rate,
                               channel_ids=np.arange(source.n_channels), dtype=source.dtype)
        for segment in hybrid_segments(source, kernel):
            self.add_recording_segment(segment)
        self.set_channel_gains(np.asarray(scale["gain_to_uV"], np.float64))
        self.set_channel_offsets(np.asarray(scale.get("offset_to_uV", np.zeros(source.n_channels)),
                                            np.float64))
        self.source = source
        # what SpikeInterface serializes to rebuild this recording in a worker process
        self._kwargs = {"output_dir": str(output_dir)}

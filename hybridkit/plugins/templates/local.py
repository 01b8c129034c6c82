"""Template source ``local``: templates averaged from the source recording at the sorter's spike times."""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from hybridkit.engine.filtering import Highpass
from hybridkit.engine.noise import snr as snr_of
from hybridkit.engine.snippets import gather_band_snippets, windows_inside
from hybridkit.engine.templates import (
    DEFAULT_SPARSITY_RADIUS_UM,
    DEFAULT_SPARSITY_THRESHOLD,
    build_template,
    sparsify,
)
from hybridkit.errors import TemplateError
from hybridkit.hookspecs import TemplateSource, hookimpl
from hybridkit.model import Recording, Sorting, Template, TemplateBank
from hybridkit.options import PluginOptions

log = logging.getLogger(__name__)


class LocalTemplateOptions(PluginOptions):
    """Build each ground-truth unit's template from its own spikes in the source recording."""

    type: Literal["local"] = "local"
    max_spikes: int = Field(500, ge=1, description="at most this many spikes (drawn at random, "
                            "seeded) are averaged per unit; count")
    min_spikes: int = Field(20, ge=1, description="a unit with fewer usable spikes is an error; count")
    ms_before: float = Field(1.0, gt=0, description="template window before the spike time, ms")
    ms_after: float = Field(2.0, gt=0, description="template window from the spike time on, ms")
    rank: int = Field(6, ge=0, description="temporal SVD components kept when denoising the "
                      "template (0 disables denoising); count")
    align_ms: float = Field(0.2, ge=0, description="each spike is re-aligned by up to this much "
                            "before averaging, ms")
    sparsity_threshold: float = Field(
        DEFAULT_SPARSITY_THRESHOLD, ge=0,
        description="a channel is part of the template when its peak |amplitude| is at least this "
                    "many times the channel's noise standard deviation; multiples of noise std")
    sparsity_radius_um: float = Field(
        DEFAULT_SPARSITY_RADIUS_UM, gt=0,
        description="and when its contact is within this distance of the peak channel's, um")
    highpass_hz: float | None = Field(
        None, gt=0,
        description="high-pass each spike's snippet (and the run's noise estimate) with a zero-phase "
                    "3rd-order Butterworth filter at this corner before averaging, Hz; for "
                    "wideband recordings (e.g. Neuropixels 2.0 AP files, which carry the LFP), so "
                    "slow potentials locked to spikes do not enter the templates; unit selection "
                    "measures amplitude and SNR in the same band. null: the recording's own band")

    @model_validator(mode="after")
    def _spike_counts(self):
        if self.min_spikes > self.max_spikes:
            raise ValueError(f"min_spikes ({self.min_spikes}) must not exceed max_spikes "
                             f"({self.max_spikes})")
        return self


class LocalTemplates(TemplateSource):
    """Templates averaged (aligned, rank-k denoised, sparsified) from the source recording."""

    name: ClassVar[str] = "local"
    Options: ClassVar[type[PluginOptions]] = LocalTemplateOptions

    @property
    def highpass_hz(self) -> float | None:
        return self.options.highpass_hz  # type: ignore[attr-defined]

    def _rng(self) -> np.random.Generator:
        return self.context.rng if self.context is not None else np.random.default_rng(0)

    @staticmethod
    def _candidates(recording: Recording, snips_uV: np.ndarray, neural: np.ndarray,
                    radius_um: float) -> np.ndarray:
        """Indices into ``neural`` of channels within radius_um + a margin of the rough peak of
        ``snips_uV`` (a few spikes over every neural channel)."""
        mean = snips_uV.mean(axis=0)
        mean -= np.median(mean, axis=0, keepdims=True)
        peak = int(np.argmax(np.abs(mean).max(axis=0)))
        pos = recording.channel_positions[neural]
        dist = np.hypot(*(pos - pos[peak]).T)
        return np.flatnonzero(dist <= radius_um + _CANDIDATE_MARGIN_UM)

    def _in_passes(self, recording: Recording, chosen, probe, finish, n_before: int, n_after: int,
                   neural: np.ndarray, gain: np.ndarray, offset: np.ndarray, band: Highpass | None):
        """The templates of ``chosen`` from a chunked recording, with the same steps and numbers
        as one unit at a time, in one sweep over the chunks per group of units: each unit's
        first spikes are read on every neural channel; as soon as they are in, they choose the
        unit's channels (its rough peak), and the rest of its spikes are read, later in the same
        sweep, on those channels only. A chunk is thus decompressed once per group instead of twice per unit. Groups hold at most
        ``_PASS_BYTES`` of snippets (counting every unit's channels at their most)."""
        from hybridkit.engine.snippets import filter_windows, gather_chunk_order

        radius = self.options.sparsity_radius_um
        pad = band.pad if band is not None else 0
        width = n_before + n_after + 2 * pad
        pos = recording.channel_positions[neural]
        most = int(max((np.hypot(*(pos - p).T) <= radius + _CANDIDATE_MARGIN_UM).sum() for p in pos))
        sizes = [4 * width * (min(usable.size, _PROBE_SPIKES) * neural.size + usable.size * most)
                 for _, usable, _ in chosen]
        built = []
        for g, group in enumerate(_groups(sizes, _PASS_BYTES)):
            state: dict[int, tuple] = {}
            jobs: list[tuple] = []
            for i in group:
                usable = chosen[i][1]  # sorted: the first spikes come first in the sweep
                first = probe(usable)
                probe_out = np.empty((first.size, width, neural.size), np.float32)

                def then(i=i, usable=usable, first=first, probe_out=probe_out):
                    snips = filter_windows(probe_out, band)
                    cand = self._candidates(recording, _to_uV(snips.copy(), gain, None, band),
                                            neural, radius)
                    rest = usable[first.size:]
                    rest_out = np.empty((rest.size, width, cand.size), np.float32)
                    state[i] = (cand, snips[:, :, cand], rest_out)
                    return [(rest - n_before - pad, neural[cand], rest_out)]

                jobs.append((first - n_before - pad, neural, probe_out, then))
            gather_chunk_order(recording, jobs)
            del jobs
            for i in group:
                cand, first_snips, rest_out = state.pop(i)
                raw = np.concatenate([first_snips, filter_windows(rest_out, band)])
                del rest_out
                built.append(finish(chosen[i], cand, _to_uV(raw, gain[cand], offset[cand], band)))
        return built

    def build(self, recording: Recording, sorting: Sorting | None, unit_ids: list[int]) -> TemplateBank:
        """One sparse template (uV) per unit of ``unit_ids``, on ``recording``'s file columns.

        Raises:
            TemplateError: no sorting, no neural channels, a unit with fewer than ``min_spikes``
                spikes whose window fits in the recording, or a template with NaN/inf.
        """
        opt: LocalTemplateOptions = self.options  # type: ignore[assignment]
        if sorting is None:
            raise TemplateError("template source 'local' needs a sorting (the spike times to average); "
                                "configure a sorter, or use another template source")
        fs = recording.sampling_rate
        n_before = int(round(opt.ms_before * fs / 1000.0))
        n_after = int(round(opt.ms_after * fs / 1000.0))
        max_shift = int(round(opt.align_ms * fs / 1000.0))
        if n_before < 1 or n_after < 1:
            raise TemplateError(f"template_source: ms_before={opt.ms_before} / ms_after={opt.ms_after} "
                                f"give a window of {n_before} / {n_after} samples at {fs} Hz; "
                                f"both need at least 1 sample")
        neural = recording.neural_channels
        if neural.size == 0:
            raise TemplateError(f"recording {recording.name}: no neural channels to build templates on")
        band = Highpass.for_recording(opt.highpass_hz, fs) if opt.highpass_hz else None
        rng = self._rng()
        noise = self.noise_uV(recording)[neural]  # the run's estimate, in this band
        positions = recording.channel_positions[neural]
        gain = recording.gain_to_uV[neural].astype(np.float32)
        offset = recording.offset_to_uV[neural].astype(np.float32)
        n_total = recording.n_samples

        # Draw every unit's spikes first, in unit order (the seeded choices do not depend on how
        # the units are then built), then build the units on a few threads: reads and the large
        # numpy steps release the GIL, and after the source copy ends a core is free.
        chosen: list[tuple[int, np.ndarray, int]] = []
        for unit in unit_ids:
            unit = int(unit)
            times = sorting.times_of(unit)
            usable = times[windows_inside(times, n_before, n_after, n_total, band)]
            if usable.size < opt.min_spikes:
                raise TemplateError(
                    f"unit {unit}: {usable.size} spikes with a full window in the recording "
                    f"(of {times.size}); template_source.min_spikes is {opt.min_spikes}"
                )
            if usable.size > opt.max_spikes:
                usable = np.sort(rng.choice(usable, size=opt.max_spikes, replace=False))
            chosen.append((unit, usable, int(times.size)))

        def probe(usable: np.ndarray) -> np.ndarray:
            # Only channels near the unit can carry its signal (sparsify keeps those within
            # sparsity_radius_um of the peak): find the peak on a few spikes over all channels,
            # then do the full work on the channels near it (10x less on a 384-channel probe).
            # The first spikes (not spread over the recording): a compressed source then
            # decompresses only its first chunks for this step.
            return usable[:_PROBE_SPIKES]

        def one(item: tuple[int, np.ndarray, int]) -> Template:
            unit, usable, _ = item
            first = probe(usable)
            raw_first = gather_band_snippets(recording, first, n_before, n_after, neural, band)
            cand = self._candidates(recording, raw_first * gain, neural, opt.sparsity_radius_um)
            # the probe's windows are not read again: their candidate columns open the unit's
            # snippets (raw units, so every window gets the same gain arithmetic as before)
            rest = gather_band_snippets(recording, usable[first.size:], n_before, n_after,
                                        neural[cand], band)
            raw = np.concatenate([raw_first[:, :, cand], rest])
            del raw_first, rest
            return finish(item, cand, _to_uV(raw, gain[cand], offset[cand], band))

        def finish(item: tuple[int, np.ndarray, int], cand: np.ndarray, snippets: np.ndarray) -> Template:
            unit, usable, n_available = item
            waveform, n_used, rank_used = build_template(snippets, rank=opt.rank, max_shift=max_shift,
                                                         peak_index=n_before, unit_id=unit)
            del snippets
            peak_idx = int(np.argmax(np.abs(waveform).max(axis=0)))
            mask = sparsify(waveform, noise[cand], positions[cand], peak_idx,
                            threshold=opt.sparsity_threshold, radius_um=opt.sparsity_radius_um,
                            unit_id=unit)
            chans = neural[cand]
            peak_channel = int(chans[peak_idx])
            peak_noise = noise[cand][peak_idx]
            snr = snr_of(np.abs(waveform[:, peak_idx]).max(), peak_noise)
            if snr < opt.sparsity_threshold:
                log.warning("unit %d: template peak is %.2f x the noise std on channel %d; "
                            "its template is mostly noise", unit, snr, peak_channel)
            tpl = Template(
                unit_id=unit,
                waveform=waveform[:, mask],
                channels=chans[mask],
                peak_index=n_before,
                peak_channel=peak_channel,
                position=recording.channel_positions[peak_channel].copy(),
                source=self.name,
                n_spikes=int(n_used),
                provenance={
                    # the rank applied: fewer spikes/samples than opt.rank allow fewer components
                    "rank": rank_used, "rank_requested": opt.rank,
                    "align_ms": opt.align_ms, "ms_before": opt.ms_before,
                    "ms_after": opt.ms_after, "n_spikes_available": n_available,
                    "sparsity_threshold": opt.sparsity_threshold,
                    "sparsity_radius_um": opt.sparsity_radius_um,
                    "peak_snr": round(snr, 3),
                    "noise_uV_peak_channel": float(peak_noise),
                },
            )
            log.info("unit %d: template from %d spikes on %d channels, peak channel %d (%.1f uV)",
                     unit, n_used, int(mask.sum()), peak_channel, tpl.peak_amplitude_uV)
            return tpl

        n_threads = max(1, min(_MAX_THREADS, os.cpu_count() or 1, len(chosen) + 1))
        if getattr(recording, "chunk_shape", None) is not None:
            # compressed chunks: every unit's windows in one pass per step over the chunks, not
            # one per unit
            built = self._in_passes(recording, chosen, probe, finish, n_before, n_after, neural,
                                    gain, offset, band)
        else:
            with ThreadPoolExecutor(n_threads) as pool:
                built = list(pool.map(one, chosen))
        templates: dict[int, Template] = {t.unit_id: t for t in built}
        return TemplateBank(templates=templates, sampling_rate=fs)


def _groups(sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive indices grouped so each group's summed size stays within ``budget`` (a
    larger single item makes a group of its own)."""
    groups: list[list[int]] = [[]]
    total = 0
    for i, size in enumerate(sizes):
        if groups[-1] and total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size
    return groups


def _to_uV(snips: np.ndarray, gain: np.ndarray, offset: np.ndarray | None,
           band: Highpass | None) -> np.ndarray:
    """Raw snippets to uV in place: x gain (+ offset, which a high-passed snippet no longer has)."""
    snips *= gain
    if offset is not None and band is None:
        snips += offset
    return snips


#: snippets (bytes, float32) gathered per pass over a chunked recording's chunks
_PASS_BYTES = 256 * 2**20
#: threads building templates (units are independent; results do not depend on the count)
_MAX_THREADS = 2
#: spikes used to find a unit's rough peak channel before the full template is built
_PROBE_SPIKES = 50
#: extra radius (um) around the rough peak, in case the final peak is a neighbouring contact
_CANDIDATE_MARGIN_UM = 60.0


@hookimpl
def hybridkit_template_sources():
    return [LocalTemplates]

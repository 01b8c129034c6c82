"""Template source ``synthetic``: parametric spike waveforms with a spatial decay, seeded.

For users with neither a sorting nor the database. Each unit is a point source (soma) at a
random place beside the target probe: x within the probe's width, y within ``depth_um`` (default
the probe's span), at ``distance_um`` from the probe plane. Every contact sees the same
parametric waveform, scaled by ``exp(-(d - d_nearest) / spatial_decay_um)`` (d = 3-D distance from
the soma) and delayed by ``(d - d_nearest) / propagation_um_per_ms``, evaluated analytically (no
resampling). The waveform: a trough (half-Gaussian rise of width depolarization_ms, half-Gaussian
return of width repolarization_ms) plus a positive after-potential ``positive_ratio * (t/tau)
exp(1 - t/tau)`` (tau = recovery_ms), tapered to zero at the window's ends.

Every parameter is drawn uniformly in its [min, max] range from a generator per unit, spawned from
the run's seed, so the same seed gives the same templates. Units are keyed 0..n_units-1.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from hybridkit.errors import TemplateError
from hybridkit.hookspecs import TemplateSource, hookimpl
from hybridkit.model import Recording, Sorting, TemplateBank
from hybridkit.options import PluginOptions, Range
from hybridkit.plugins.templates import targets as tt


#: fraction of the window at each end tapered to zero (no step at the template's edges)
_TAPER_FRACTION = 0.1
#: the after-potential (t/tau) exp(1 - t/tau) is below 1 % of its peak from t = 7.7 tau on
_RECOVERED_TAUS = 7.7


def default_ms_after(ms_before: float, recovery_ms_max: float) -> float:
    """The shortest window after the trough (ms, rounded up to 0.1 ms) whose end taper starts
    once the slowest after-potential has recovered to 1 % of its peak: otherwise the taper pulls
    a still-positive phase to zero and every template gets a kink there.

    The taper covers ``_TAPER_FRACTION`` of the whole window ``ms_before + ms_after``, so
    ``ms_after - f (ms_before + ms_after) >= 7.7 tau``.
    """
    need = (_RECOVERED_TAUS * recovery_ms_max + _TAPER_FRACTION * ms_before) / (1 - _TAPER_FRACTION)
    return float(np.ceil(need * 10 - 1e-9) / 10)


def _scaling_default() -> tt.ScalingOptions:
    return tt.ScalingOptions(mode="amplitude", min=50.0, max=200.0)


class SyntheticOptions(PluginOptions):
    """Parametric templates with a spatial decay, seeded and reproducible."""

    type: Literal["synthetic"] = "synthetic"
    n_units: int = Field(5, ge=1, description="templates made; count")
    ms_before: float = Field(1.0, gt=0, description="window before the trough; ms")
    ms_after: float | None = Field(None, gt=0, description="window from the trough on; ms; "
                                   "default: long enough that the slowest after-potential "
                                   "(recovery_ms max) has fallen below 1% of its peak where the "
                                   "end taper begins (7 ms with the default ranges)")
    depth_um: Range | None = Field(None, description="[min, max] y of the soma; um; default "
                                   "the span of the probe's contacts")
    distance_um: Range = Field((10.0, 40.0), description="[min, max] distance of the soma from "
                               "the probe plane; um")
    spatial_decay_um: Range = Field((20.0, 40.0), description="[min, max] length over which the "
                                    "amplitude falls by e with distance from the soma; um")
    propagation_um_per_ms: Range = Field((300.0, 800.0), description="[min, max] speed of the "
                                         "delay across contacts; um/ms")
    depolarization_ms: Range = Field((0.08, 0.15), description="[min, max] width of the "
                                     "trough's fall; ms")
    repolarization_ms: Range = Field((0.15, 0.30), description="[min, max] width of the "
                                     "trough's return; ms")
    recovery_ms: Range = Field((0.4, 0.8), description="[min, max] time to the positive "
                               "after-potential's peak; ms")
    positive_ratio: Range = Field((0.1, 0.4), description="[min, max] after-potential peak "
                                  "over the trough depth; ratio")
    scaling: tt.ScalingOptions = Field(default_factory=_scaling_default, description=(
        "how each template's amplitude is set: {mode: amplitude | snr, min, max}"))
    sparsity_fraction: float = Field(tt.DEFAULT_SPARSITY_FRACTION, **tt.SPARSITY_FRACTION_FIELD)
    sparsity_radius_um: float = Field(tt.DEFAULT_RADIUS_UM, **tt.SPARSITY_RADIUS_FIELD)

    @field_validator("scaling")
    @classmethod
    def _scaled(cls, value):
        if value.mode == "none":
            raise ValueError("synthetic templates have no amplitude of their own (their trough is "
                             "1 uV); use scaling.mode \"amplitude\" or \"snr\"")
        return value


    @field_validator("distance_um", "spatial_decay_um", "propagation_um_per_ms",
                     "depolarization_ms", "repolarization_ms", "recovery_ms")
    @classmethod
    def _positive(cls, value):
        if value[0] <= 0:
            raise ValueError(f"range {list(value)} must be > 0")
        return value


def waveform_shape(t_ms: np.ndarray, dep_ms: float, rep_ms: float, rec_ms: float,
                   positive: float) -> np.ndarray:
    """The unit-depth waveform at times ``t_ms`` (ms from the trough, any shape): trough -1 at 0."""
    t = np.asarray(t_ms, dtype=np.float64)
    width = np.where(t < 0, dep_ms, rep_ms)
    trough = -np.exp(-0.5 * (t / width) ** 2)
    tp = np.maximum(t, 0.0) / rec_ms
    return trough + positive * tp * np.exp(1.0 - tp)


def _taper(n: int) -> np.ndarray:
    ramp = max(1, int(round(n * _TAPER_FRACTION)))
    w = np.ones(n)
    edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    w[:ramp], w[n - ramp:] = edge, edge[::-1]
    return w


class SyntheticTemplates(TemplateSource):
    """Seeded parametric templates made directly on the target probe's contacts."""

    name: ClassVar[str] = "synthetic"
    Options: ClassVar[type[PluginOptions]] = SyntheticOptions
    uses_sorting_units: ClassVar[bool] = False

    def build(self, recording: Recording, sorting: Sorting | None, unit_ids: list[int]) -> TemplateBank:
        """``n_units`` templates (uV, sparse, on ``recording``'s file columns), keyed 0..n-1."""
        opt: SyntheticOptions = self.options  # type: ignore[assignment]
        rng = self.context.rng if self.context is not None else np.random.default_rng(0)
        fs = recording.sampling_rate
        n_before = int(round(opt.ms_before * fs / 1000.0))
        ms_after = opt.ms_after if opt.ms_after is not None else \
            default_ms_after(opt.ms_before, opt.recovery_ms[1])
        n_after = int(round(ms_after * fs / 1000.0))
        if n_before < 1 or n_after < 2:
            raise TemplateError(f"templates: ms_before={opt.ms_before} / ms_after={ms_after} "
                                f"give {n_before} / {n_after} samples at {fs} Hz; need >= 1 / 2")
        channels, pos = tt.target_contacts(recording)
        depth = opt.depth_um or (float(pos[:, 1].min()), float(pos[:, 1].max()))
        seeds = rng.integers(0, 2**63, size=opt.n_units)
        targets = tt.draw_targets(opt.scaling, opt.n_units, rng)
        noise = (tt.median_noise_uV(recording, self.noise_uV(recording))
                 if opt.scaling.mode == "snr" else None)
        t_ms = (np.arange(n_before + n_after) - n_before) * 1000.0 / fs
        taper = _taper(t_ms.size)[:, None]
        templates = {}
        for k, seed in enumerate(seeds):
            g = np.random.default_rng(int(seed))
            u = lambda r: float(g.uniform(r[0], r[1]))  # noqa: E731
            soma = np.array([u((pos[:, 0].min(), pos[:, 0].max())), u(depth), u(opt.distance_um)])
            decay, speed = u(opt.spatial_decay_um), u(opt.propagation_um_per_ms)
            dep, rep, rec, positive = (u(opt.depolarization_ms), u(opt.repolarization_ms),
                                       u(opt.recovery_ms), u(opt.positive_ratio))
            dist = np.sqrt(((pos - soma[:2]) ** 2).sum(axis=1) + soma[2] ** 2)
            extra = dist - dist.min()
            delay_ms = extra / speed
            dense = (waveform_shape(t_ms[:, None] - delay_ms[None, :], dep, rep, rec, positive)
                     * np.exp(-extra / decay)[None, :] * taper).astype(np.float32)
            prov = {"uri": "hybridkit:synthetic", "generator": "hybridkit synthetic", "index": k, "soma_um": soma.tolist(),
                    "spatial_decay_um": decay, "propagation_um_per_ms": speed,
                    "depolarization_ms": dep, "repolarization_ms": rep, "recovery_ms": rec,
                    "positive_ratio": positive}
            templates[k] = tt.finish_template(
                k, dense, n_before, channels, pos, recording, opt.scaling, float(targets[k]),
                noise, opt.sparsity_fraction, opt.sparsity_radius_um, self.name, prov)
        return TemplateBank(templates=templates, sampling_rate=fs)


@hookimpl
def hybridkit_template_sources():
    return [SyntheticTemplates]

"""What the database and synthetic template sources share: target contacts, scaling, sparsity.

Both sources compute a template densely over the target recording's neural contacts, scale it
(to a peak amplitude or an SNR against the recording's measured noise), and keep the channels that
carry its signal.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from hybridkit.engine import relocate as rel
from hybridkit.engine.templates import DEFAULT_SPARSITY_RADIUS_UM
from hybridkit.errors import TemplateError
from hybridkit.model import Recording, Template
from hybridkit.options import StrictModel, check_min_max


class ScalingOptions(StrictModel):
    """How each template's amplitude is set; one value per template, uniform in [min, max]."""

    mode: Literal["none", "amplitude", "snr"] = Field(
        "none", description="none: keep the template's own amplitude; amplitude: scale its peak "
        "|amplitude| to a value in uV drawn in [min, max]; snr: scale its peak |amplitude| to a "
        "value in [min, max] times the recording's noise (median over the target contacts of the "
        "run's noise estimate, uV)")
    min: float = Field(100.0, gt=0, description="smallest target; uV (amplitude) or multiples of "
                       "the noise std (snr)")
    max: float = Field(100.0, gt=0, description="largest target; same unit as min")

    @model_validator(mode="after")
    def _ordered(self):
        check_min_max(self.min, self.max)
        return self


SPARSITY_FRACTION_FIELD = dict(
    ge=0, le=1, description="a channel is part of the placed template when its peak |amplitude| "
    "is at least this fraction of the template's peak; fraction")
SPARSITY_RADIUS_FIELD = dict(
    gt=0, description="and when its contact is within this distance of the peak contact; um")
DEFAULT_SPARSITY_FRACTION = 0.05
DEFAULT_RADIUS_UM = DEFAULT_SPARSITY_RADIUS_UM


def target_contacts(recording: Recording) -> tuple[np.ndarray, np.ndarray]:
    """(n,) file columns and (n, 2) um positions of the neural contacts that have a position."""
    pos = recording.channel_positions
    ok = recording.neural & np.isfinite(pos).all(axis=1)
    channels = np.flatnonzero(ok).astype(np.int64)
    if channels.size == 0:
        raise TemplateError(f"recording {recording.name}: no neural contacts with positions to "
                            "place templates on")
    return channels, pos[channels]


def draw_targets(scaling: ScalingOptions, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) target values (uV or SNR), one per template; empty-mode draws nothing."""
    if scaling.mode == "none":
        return np.full(n, np.nan)
    return rng.uniform(scaling.min, scaling.max, n)


def median_noise_uV(recording: Recording, noise_uV: np.ndarray) -> float:
    """Median over the target contacts of the run's per-channel noise std (uV; ``noise_uV`` is
    (n_channels,) per file column, :meth:`hybridkit.hookspecs.TemplateSource.noise_uV`), for
    SNR scaling."""
    channels, _ = target_contacts(recording)
    value = float(np.median(np.asarray(noise_uV, np.float64)[channels]))
    if not value > 0:
        raise TemplateError(f"recording {recording.name}: measured noise is {value} uV; cannot "
                            "scale templates to an SNR (use scaling.mode \"amplitude\")")
    return value


def finish_template(
    unit_id: int, dense: np.ndarray, peak_index: int, channels: np.ndarray,
    positions: np.ndarray, recording: Recording, scaling: ScalingOptions, target: float,
    noise_uV: float | None, fraction: float, radius_um: float, source: str, provenance: dict,
    n_spikes: int = 0,
) -> Template:
    """Scale a template given densely on the target contacts, keep its footprint, wrap it.

    Args:
        dense: (n_times, n_contacts) uV on ``channels`` (file columns) at ``positions`` (um).
        target: the drawn amplitude (uV) or SNR; ignored for mode "none".
        noise_uV: the recording's noise for mode "snr".
    """
    if not np.isfinite(dense).all():
        raise TemplateError(f"{source} template {unit_id}: contains NaN or inf values")
    peak = rel.peak_amplitude(dense)
    if peak <= 0:
        raise TemplateError(f"{source} template {unit_id}: is zero on every contact of "
                            f"{recording.name} (placed off the probe?)")
    gain = 1.0
    if scaling.mode == "amplitude":
        gain = rel.gain_for_amplitude(dense, target)
    elif scaling.mode == "snr":
        gain = rel.gain_for_snr(dense, target, noise_uV)
    dense = (dense * np.float32(gain)).astype(np.float32)
    mask = rel.footprint_mask(dense, positions, fraction, radius_um)
    peak_col = int(np.argmax(np.abs(dense).max(axis=0)))
    peak_channel = int(channels[peak_col])
    prov = dict(provenance)
    prov.update({"scaling_mode": scaling.mode, "scale_factor": float(gain),
                 "peak_amplitude_uV": float(peak * gain)})
    if scaling.mode == "snr":
        prov.update({"target_snr": float(target), "noise_uV": float(noise_uV)})
    elif scaling.mode == "amplitude":
        prov["target_amplitude_uV"] = float(target)
    return Template(unit_id=int(unit_id), waveform=dense[:, mask], channels=channels[mask],
                    peak_index=int(peak_index), peak_channel=peak_channel,
                    position=recording.channel_positions[peak_channel].copy(), source=source,
                    n_spikes=int(n_spikes), provenance=prov)

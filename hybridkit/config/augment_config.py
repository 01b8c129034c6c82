"""The run config's ``augment`` section: what ``hybridkit augment CONFIG`` makes (docs/augment.md).

The rest of the run config (recording, sorting, units, templates, injection.placement, seed) says
where the templates and the noise come from, exactly as for ``generate``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hybridkit.options import ConfigPath, Range, StrictModel

#: the classes of a training set, in label-code order (label i = CLASSES[i])
CLASSES = ("clean", "collided", "misaligned_temporal", "misaligned_spatial", "noise")


class ClassCounts(StrictModel):
    """Snippets per class."""

    clean: int = Field(1000, ge=0, description="One template, aligned on the centre sample and "
                       "centre channel.")
    collided: int = Field(1000, ge=0, description="A clean spike plus a second template shifted "
                          "in time and place.")
    misaligned_temporal: int = Field(1000, ge=0, description="One template shifted in time by "
                                     "temporal_shift_ms (a negative for a detector).")
    misaligned_spatial: int = Field(1000, ge=0, description="One template whose peak is moved "
                                    "spatial_shift_um away from the centre channel (a negative).")
    noise: int = Field(1000, ge=0, description="Noise only.")


class AugmentConfig(StrictModel):
    """A training set for spike detectors, denoisers and triage (YASS's augment)."""

    output: ConfigPath = Field("training_set.h5", description="The HDF5 file written (relative "
                               "to the config file); written under a temporary name and renamed "
                               "when complete.")
    overwrite: bool = Field(False, description="Replace an existing output file.")
    counts: ClassCounts = Field(default_factory=ClassCounts)
    noise: Literal["recording", "model"] = Field(
        "recording", description="'recording': noise snippets read from stretches of the source "
        "recording with no sorted spike; 'model': drawn from the Kronecker (spatial x temporal) "
        "covariance measured on such snippets.")
    noise_snippets: int = Field(2000, ge=2, description="Noise snippets (over all channels) the "
                                "covariance is measured on, for noise 'model'.")
    quiet_margin_ms: float = Field(1.0, ge=0, description="A noise window keeps this far (ms) "
                                   "from any sorted spike.")
    n_channels: int = Field(7, ge=1, description="Channels of the neighbourhood: the contacts "
                            "nearest the centre channel, by distance.")
    ms_before: float = Field(1.0, gt=0, description="Window before the centre sample (ms).")
    ms_after: float = Field(1.5, gt=0, description="Window from the centre sample on (ms).")
    amplitude_uV: Range = Field((50.0, 300.0), description="[min, max] peak amplitude (uV) a "
                                "template is scaled to, uniform.")
    collision_shift_ms: Range = Field((0.2, 0.8), description="[min, max] |time shift| (ms) of the "
                                      "second spike of a collision.")
    collision_distance_um: Range = Field((0.0, 60.0), description="[min, max] distance (um) of the "
                                         "second spike's peak contact from the centre channel.")
    temporal_shift_ms: Range = Field((0.3, 0.8), description="[min, max] |time shift| (ms) of a "
                                     "temporally misaligned spike.")
    spatial_shift_um: Range = Field((40.0, 100.0), description="[min, max] distance (um) of a "
                                    "spatially misaligned spike's peak from the centre channel.")
    store_noise: bool = Field(False, description="Also write each snippet's noise (dataset "
                              "'noise'): doubles the file, lets a denoiser train on (noisy, clean) "
                              "pairs.")
    batch: int = Field(500, ge=1, description="Snippets made and written at once (bounds memory).")

    @model_validator(mode="after")
    def _not_empty(self):
        if sum(self.counts.model_dump().values()) == 0:
            raise ValueError(f"counts are all 0; give at least one of {', '.join(CLASSES)} > 0")
        return self

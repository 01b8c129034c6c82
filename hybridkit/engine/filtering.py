"""Zero-phase high-pass filtering of short snippets, for templates from wideband recordings.

A snippet of a wideband recording (e.g. a Neuropixels 2.0 AP file, which keeps the LFP) carries
slow potentials; averaged over a unit's spikes, the part locked to the spikes stays in the
template. Filtering each snippet forwards and backwards (no phase shift, so the spike's timing and
peak sample are kept) removes it. Edge effects span about one period of the corner frequency, so
snippets are read ``pad`` samples wider on each side and cut back after filtering.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hybridkit.errors import TemplateError

#: Butterworth order (applied twice by the zero-phase filter: 6th-order magnitude response)
ORDER = 3


@dataclass(frozen=True)
class Highpass:
    """A zero-phase Butterworth high-pass at ``corner_hz`` for data sampled at ``fs`` Hz."""

    corner_hz: float
    fs: float
    sos: np.ndarray  # second-order sections, scipy.signal layout
    pad: int  # samples read beyond each side of a window, then discarded

    @classmethod
    def for_recording(cls, corner_hz: float, fs: float,
                      field: str = "templates.highpass_hz") -> "Highpass":
        """Raises TemplateError (naming ``field``) when the corner is not below the Nyquist
        frequency."""
        from scipy.signal import butter

        if not 0 < corner_hz < fs / 2:
            raise TemplateError(f"{field} = {corner_hz} Hz: the corner must lie between "
                                f"0 and the Nyquist frequency ({fs / 2:g} Hz at {fs:g} Hz)")
        sos = butter(ORDER, corner_hz, btype="highpass", fs=fs, output="sos")
        # the impulse response of a 3rd-order high-pass has decayed to <1 % within ~1.5 periods of
        # the corner; three periods (plus the filter's own padding below) leaves no edge effect
        return cls(corner_hz, fs, sos, pad=int(math.ceil(3 * fs / corner_hz)))

    def apply(self, x: np.ndarray, axis: int, crop: int = 0) -> np.ndarray:
        """``x`` filtered along ``axis`` (float32), then ``crop`` samples cut from each end."""
        from scipy.signal import sosfiltfilt

        # the filter's own edge padding (scipy's default length), shortened for very short input
        padlen = min(3 * (2 * len(self.sos) + 1), x.shape[axis] - 1)
        y = sosfiltfilt(self.sos, x, axis=axis, padtype="odd", padlen=padlen)
        if crop:
            y = np.take(y, np.arange(crop, y.shape[axis] - crop), axis=axis)
        return np.ascontiguousarray(y, dtype=np.float32)

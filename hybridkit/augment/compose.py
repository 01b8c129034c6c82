"""The five classes of a training set: which templates, where, how large, and the snippets.

A snippet is ``n_before + n_after`` samples on a neighbourhood (neighbourhoods.py). A template
``t`` with gain ``g`` and time shift ``dt`` adds ``g * t.waveform[j, k]`` at sample
``n_before + dt - t.peak_index + j`` of the neighbourhood column holding ``t.channels[k]``
(samples and channels outside the snippet are dropped). ``waveform = noise + sum of rendered
templates``, in float32, so a snippet minus its rendered templates is its noise to float32
rounding (tests/augment/test_augment.py checks that on every class).

Per snippet: the main template (slot 0) and, for collisions, a second (slot 1).

* clean: slot 0 centred (dt 0) on its peak channel's neighbourhood;
* collided: clean + slot 1, another unit's template moved (engine/placement.shift_template) so
  its peak sits on a contact ``collision_distance_um`` from the centre, shifted in time by
  ``collision_shift_ms`` (either sign);
* misaligned_temporal: slot 0 on its peak's neighbourhood, shifted by ``temporal_shift_ms``;
* misaligned_spatial: slot 0 unshifted in time, on the neighbourhood of a contact
  ``spatial_shift_um`` from its peak (its peak is off-centre);
* noise: no template.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridkit.augment.neighbourhoods import contacts_at_distance
from hybridkit.config.augment_config import CLASSES
from hybridkit.engine.placement import shift_template, valid_shifts
from hybridkit.errors import ConfigError
from hybridkit.model import Recording, Template


@dataclass
class Batch:
    """Parameters of ``n`` snippets of one class (slot 0 = main template, 1 = second)."""

    label: int
    centres: np.ndarray        # (n,) int64 centre channel (file column)
    template_ids: np.ndarray   # (n, 2) int64 bank key, -1 = none
    gains: np.ndarray          # (n, 2) float32, 0 = none
    time_shifts: np.ndarray    # (n, 2) int32 samples
    space_shifts_um: np.ndarray  # (n, 2, 2) float32 (dx, dy) of the placed peak from the centre
    placed: list               # (n,) of (Template | None, Template | None), the placed templates


def render(t: Template, gain: np.float32, dt: int, nbhd: np.ndarray, n_before: int,
           n_times: int, out: np.ndarray) -> None:
    """Add ``gain * t`` shifted by ``dt`` samples into ``out`` (n_times, len(nbhd)) float32."""
    col = {int(c): k for k, c in enumerate(nbhd.tolist())}
    pairs = [(j, col[int(c)]) for j, c in enumerate(t.channels.tolist()) if int(c) in col]
    if not pairs:
        return
    src, dst = np.array(pairs).T
    first = n_before + dt - t.peak_index  # snippet sample of template sample 0
    a, b = max(0, -first), min(t.n_times, n_times - first)
    if a >= b:
        return
    out[first + a:first + b, dst] += np.float32(gain) * t.waveform[a:b][:, src]


class Composer:
    """Draws the classes' parameters from a seeded generator over a fixed set of placed templates."""

    def __init__(self, templates: dict[int, Template], recording: Recording, aug, n_before: int,
                 n_times: int) -> None:
        self.templates, self.recording, self.aug = templates, recording, aug
        self.ids = np.array(sorted(templates), dtype=np.int64)
        self.n_before, self.n_times = n_before, n_times
        fs = recording.sampling_rate
        self.ms = lambda r: (int(round(r[0] * fs / 1000)), int(round(r[1] * fs / 1000)))
        self._shifts: dict[int, np.ndarray] = {}

    def _gain(self, rng, t: Template) -> np.float32:
        lo, hi = self.aug.amplitude_uV
        return np.float32(rng.uniform(lo, hi) / t.peak_amplitude_uV)

    def _signed(self, rng, lo_hi: tuple[int, int]) -> int:
        return int(rng.integers(lo_hi[0], lo_hi[1] + 1)) * (1 if rng.random() < 0.5 else -1)

    def _moved_near(self, rng, t: Template, centre: int) -> Template:
        """``t`` moved so its peak lies on a contact collision_distance_um from ``centre``."""
        pos, neural = self.recording.channel_positions, self.recording.neural
        if t.unit_id not in self._shifts:
            self._shifts[t.unit_id] = valid_shifts(t, pos, neural)
        shifts = self._shifts[t.unit_id]
        lo, hi = self.aug.collision_distance_um
        d = np.linalg.norm(pos[t.peak_channel] + shifts - pos[centre], axis=1)
        ok = shifts[(d >= lo) & (d <= hi)]
        if ok.size == 0:
            raise ConfigError(f"augment.collision_distance_um = {list(self.aug.collision_distance_um)}: "
                              f"template {t.unit_id} cannot be placed that far from channel {centre} "
                              "with all its channels on the probe; widen the range")
        return shift_template(t, ok[rng.integers(len(ok))], pos, neural)

    def draw(self, rng: np.random.Generator, label: str, n: int) -> Batch:
        pos, neural = self.recording.channel_positions, self.recording.neural
        b = Batch(CLASSES.index(label), np.zeros(n, np.int64), np.full((n, 2), -1, np.int64),
                  np.zeros((n, 2), np.float32), np.zeros((n, 2), np.int32),
                  np.zeros((n, 2, 2), np.float32), [])
        for i in range(n):
            if label == "noise":
                b.centres[i] = neural.nonzero()[0][rng.integers(neural.sum())]
                b.placed.append((None, None))
                continue
            uid = int(self.ids[rng.integers(self.ids.size)])
            t = self.templates[uid]
            b.template_ids[i, 0], b.gains[i, 0] = uid, self._gain(rng, t)
            centre = t.peak_channel
            second = None
            if label == "misaligned_temporal":
                b.time_shifts[i, 0] = self._signed(rng, self.ms(self.aug.temporal_shift_ms))
            elif label == "misaligned_spatial":
                lo, hi = self.aug.spatial_shift_um
                far = contacts_at_distance(pos, neural, t.peak_channel, lo, hi)
                if far.size == 0:
                    raise ConfigError(f"augment.spatial_shift_um = {[lo, hi]}: no contact lies that "
                                      f"far from channel {t.peak_channel}; valid: distances on "
                                      "this probe")
                centre = int(far[rng.integers(far.size)])
            elif label == "collided":
                others = self.ids[self.ids != uid] if self.ids.size > 1 else self.ids
                uid2 = int(others[rng.integers(others.size)])
                second = self._moved_near(rng, self.templates[uid2], centre)
                b.template_ids[i, 1], b.gains[i, 1] = uid2, self._gain(rng, second)
                b.time_shifts[i, 1] = self._signed(rng, self.ms(self.aug.collision_shift_ms))
                b.space_shifts_um[i, 1] = pos[second.peak_channel] - pos[centre]
            b.centres[i] = centre
            b.space_shifts_um[i, 0] = pos[t.peak_channel] - pos[centre]
            b.placed.append((t, second))
        return b

    def snippets(self, b: Batch, noise: np.ndarray, nbhds: np.ndarray) -> np.ndarray:
        """(n, n_times, n_channels) float32: ``noise`` plus each snippet's rendered templates."""
        out = noise.astype(np.float32, copy=True)
        for i, pair in enumerate(b.placed):
            for slot, t in enumerate(pair):
                if t is not None:
                    render(t, b.gains[i, slot], int(b.time_shifts[i, slot]), nbhds[i],
                           self.n_before, self.n_times, out[i])
        return out

"""Probe motion and templates that follow it: pure numpy, no file formats (see hybridkit/motion.py).

Sign convention (the same as SpikeInterface's ``Motion`` and as the true displacement of its
drifting-recording generator): ``displacement(t, depth) > 0`` means that at time ``t`` a unit whose
reference position has probe depth ``depth`` (the y coordinate of the contact positions, um) is
seen at LARGER y, ``y + displacement``. Kilosort's ``dshift`` has the opposite sign (Kilosort
corrects a batch by resampling the data at ``y - dshift``), so its readers negate it.

A motion is a grid: ``displacement[i, j]`` um at time ``times_s[i]`` and depth ``depths_um[j]``.
Between depth bins the displacement is interpolated linearly (non-rigid motion), beyond the first
and last bins it is held; in time it is linear between points (``"linear"``) or held from each
point to the next (``"previous"``), and held beyond the ends.

Drift-aware injection (:func:`apply_motion`): each event of an injected unit is displaced by the
motion at the event's time and the unit's depth, rounded to a grid of ``grid_um`` offsets. For
every offset the unit uses, its template is precomputed once by moving the spatial footprint along
the probe's y axis (engine/relocate.py's linear interpolation between contacts): setup costs
units x offsets, never samples. Offset 0 is always the placed (static) template object itself, so
zero motion injects exactly what the static path injects.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridkit.model import DriftVariants, Plan, Template

#: |uV| at or below which a moved channel carries no signal: the footprint is exactly zero off
#: its sparse channels, so interpolation touching only those contacts gives exact zeros
_ZERO = 0.0
#: offsets moved per matrix product in ProbeDepthMover.variants (bounds its working memory)
_MOVE_BATCH = 256
#: bytes of one precomputed variant of a typical template (<= 64 contacts x <= 96 samples,
#: float32, plus its Template record): the unit of the memory bound on a motion's amplitude
VARIANT_BYTES = 64 * 96 * 4 + 1024


def variants_per_unit(max_displacement_um: float, grid_um: float) -> int:
    """Templates precomputed for a unit whose displacement spans +-``max_displacement_um``."""
    return 2 * int(np.ceil(max_displacement_um / grid_um)) + 1


class MotionModel:
    """Anything that gives a displacement (um) at times (s) and depths (um)."""

    def displacement_at(self, times_s, depth_um) -> np.ndarray:  # pragma: no cover - interface
        """(n,) float64 displacement, um, at ``times_s`` (n,) and ``depth_um`` (scalar or (n,))."""
        raise NotImplementedError


@dataclass
class Motion(MotionModel):
    """Displacement on a (time, depth) grid.

    Attributes:
        times_s: (n_t,) increasing times, s, on the recording's concatenated clock (0 = first sample).
        depths_um: (n_d,) increasing depths (probe y), um; one value for rigid motion.
        displacement_um: (n_t, n_d) um, > 0 = units seen at larger y.
        time_interpolation: "linear" between times, or "previous" (each value holds until the next).
        name: where it came from, for messages and provenance.
    """

    times_s: np.ndarray
    depths_um: np.ndarray
    displacement_um: np.ndarray
    time_interpolation: str = "linear"
    name: str = "motion"

    def __post_init__(self) -> None:
        self.times_s = np.asarray(self.times_s, np.float64).reshape(-1)
        self.depths_um = np.asarray(self.depths_um, np.float64).reshape(-1)
        self.displacement_um = np.asarray(self.displacement_um, np.float64)
        if self.displacement_um.ndim == 1:
            self.displacement_um = self.displacement_um[:, None]
        shape = (self.times_s.size, self.depths_um.size)
        if self.displacement_um.shape != shape:
            raise ValueError(f"{self.name}: displacement has shape {self.displacement_um.shape}, "
                             f"expected (n_times, n_depths) = {shape}")
        if self.times_s.size == 0 or self.depths_um.size == 0:
            raise ValueError(f"{self.name}: a motion needs at least one time and one depth")
        for label, a in (("times", self.times_s), ("depths", self.depths_um)):
            if not np.isfinite(a).all() or (a.size > 1 and not (np.diff(a) > 0).all()):
                raise ValueError(f"{self.name}: {label} must be finite and strictly increasing")
        if not np.isfinite(self.displacement_um).all():
            raise ValueError(f"{self.name}: displacement holds NaN or infinite values")
        if self.time_interpolation not in ("linear", "previous"):
            raise ValueError(f"{self.name}: time_interpolation {self.time_interpolation!r} is not "
                             "'linear' or 'previous'")

    @property
    def rigid(self) -> bool:
        return self.depths_um.size == 1

    def displacement_at(self, times_s, depth_um) -> np.ndarray:
        t = np.asarray(times_s, np.float64).reshape(-1)
        d = np.broadcast_to(np.asarray(depth_um, np.float64), t.shape)
        ti, tw = _interp_index(self.times_s, t, self.time_interpolation)
        di, dw = _interp_index(self.depths_um, d, "linear")
        D = self.displacement_um
        lo = D[ti, di] * (1 - dw) + D[ti, di + 1 if D.shape[1] > 1 else di] * dw
        hi = D[ti + 1 if D.shape[0] > 1 else ti, di] * (1 - dw)
        hi = hi + D[ti + 1 if D.shape[0] > 1 else ti, di + 1 if D.shape[1] > 1 else di] * dw
        return lo * (1 - tw) + hi * tw


def _interp_index(grid: np.ndarray, x: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Left grid index (clipped so index + 1 exists when the grid has 2+ points) and the weight of
    the right neighbour, for values held beyond the ends."""
    if grid.size == 1:
        return np.zeros(x.shape, np.int64), np.zeros(x.shape)
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, grid.size - 2)
    if mode == "previous":
        w = (x >= grid[i + 1]).astype(np.float64)  # only past the last point
    else:
        w = np.clip((x - grid[i]) / (grid[i + 1] - grid[i]), 0.0, 1.0)
    return i, w


@dataclass
class CombinedMotion(MotionModel):
    """The sum of several motions (a recording's estimate plus synthetic additions)."""

    parts: list[MotionModel]

    def displacement_at(self, times_s, depth_um) -> np.ndarray:
        t = np.asarray(times_s, np.float64).reshape(-1)
        out = np.zeros(t.shape)
        for p in self.parts:
            out += p.displacement_at(t, depth_um)
        return out


def shifted(motion: Motion, offset_um) -> Motion:
    """``motion`` minus ``offset_um`` (scalar or (n_depths,)): a new reference position."""
    return Motion(motion.times_s, motion.depths_um,
                  motion.displacement_um - np.asarray(offset_um, np.float64).reshape(1, -1),
                  motion.time_interpolation, motion.name)


# -- synthetic motion ---------------------------------------------------------------------------
def synthetic_motion(kind: str, duration_s: float, amplitude_um: float, period_s: float,
                     start_s: float = 0.0, stop_s: float | None = None,
                     depth_range_um: tuple[float, float] = (0.0, 1.0), gradient_per_mm: float = 0.0,
                     sampling_hz: float = 10.0, rng: np.random.Generator | None = None) -> Motion:
    """A synthetic motion: 0 before ``start_s``, then a pattern, held after ``stop_s``.

    Args:
        kind: "zigzag" (triangle wave 0 -> +A -> -A -> 0 per period, like SpikeInterface's
            generator), "bumps" (a smooth raised-cosine excursion to +A lasting half a period,
            once per period), or "random_walk" (Gaussian steps reflected into [-A, A], the step
            scaled so that the walk spans about A over one period; needs ``rng``).
        duration_s: recording length, s. amplitude_um: A, um. period_s: s.
        depth_range_um: (low, high) probe depths the non-rigid gradient is laid over, um.
        gradient_per_mm: non-rigid: the displacement at depth y is the rigid pattern times
            ``1 + gradient_per_mm * (y - mid) / 1000`` (mid = centre of depth_range_um), clipped >= 0.
        sampling_hz: time resolution of the sampled pattern (zigzag uses its exact corners).
    """
    stop = duration_s if stop_s is None else min(stop_s, duration_s)
    if kind == "zigzag":
        n = int(np.ceil(max(stop - start_s, 0) / (period_s / 4))) + 1
        t = start_s + np.arange(n) * period_s / 4
        cycle = np.array([0.0, 1.0, 0.0, -1.0])
        d = amplitude_um * cycle[np.arange(n) % 4]
        keep = t <= stop
        t_end = np.clip(stop, start_s, None)
        if not keep.all():  # cut the last segment at stop
            d_end = np.interp(t_end, t, d)
            t, d = np.r_[t[keep], t_end], np.r_[d[keep], d_end]
    else:
        t = np.arange(start_s, max(stop, start_s) + 0.5 / sampling_hz, 1.0 / sampling_hz)
        phase = ((t - start_s) % period_s) / period_s
        if kind == "bumps":
            d = amplitude_um * np.where(phase < 0.5, 0.5 - 0.5 * np.cos(4 * np.pi * phase), 0.0)
        elif kind == "random_walk":
            if rng is None:
                raise ValueError("a random walk needs a seeded generator")
            step = amplitude_um * np.sqrt(1.0 / (sampling_hz * period_s))
            d = np.zeros(t.size)
            for i in range(1, t.size):  # reflection keeps it within [-A, A]
                v = d[i - 1] + step * rng.standard_normal()
                v = 2 * amplitude_um - v if v > amplitude_um else v
                d[i] = -2 * amplitude_um - v if v < -amplitude_um else v
        else:
            raise ValueError(f"synthetic motion kind {kind!r} is not zigzag, bumps or random_walk")
    # every pattern starts at 0, and a Motion holds its first value before its first time
    if gradient_per_mm == 0:
        return Motion(t, [0.0], d, "linear", f"synthetic {kind}")
    lo, hi = depth_range_um
    depths = np.array([lo, hi if hi > lo else lo + 1.0])
    factor = np.clip(1.0 + gradient_per_mm * (depths - 0.5 * (lo + hi)) / 1000.0, 0.0, None)
    return Motion(t, depths, d[:, None] * factor[None, :], "linear", f"synthetic {kind}")


# -- templates across depth ---------------------------------------------------------------------
class ProbeDepthMover:
    """The neural contacts of a recording, ready to move templates along the probe's y axis.

    Args:
        channel_positions: (n_channels, 2) um, NaN rows for channels without a contact.
        neural: (n_channels,) bool.
        decay_um: attenuation length of a footprint continued beyond the probe's contacts, um.
    """

    def __init__(self, channel_positions: np.ndarray, neural: np.ndarray, decay_um: float = 30.0) -> None:
        from hybridkit.engine.relocate import SourceGeometry

        pos = np.asarray(channel_positions, np.float64)
        self.channels = np.flatnonzero(np.asarray(neural, bool) & np.isfinite(pos).all(axis=1))
        self.positions = pos[self.channels]
        self.column = np.full(pos.shape[0], -1, np.int64)  # file column -> contact index
        self.column[self.channels] = np.arange(self.channels.size)
        self.geometry = SourceGeometry(self.positions, decay_um)
        ys = np.unique(self.positions[:, 1])
        self.pitch_um = float(np.median(np.diff(ys))) if ys.size > 1 else 20.0

    def variants(self, template: Template, offsets_um: np.ndarray) -> DriftVariants:
        """The template moved by each of ``offsets_um`` along y.

        Args:
            template: a placed template (its channels are neural contacts of this recording).
            offsets_um: (n_grid,) increasing y offsets, um, containing 0.0 exactly.

        Returns:
            DriftVariants whose template at offset 0 is ``template`` itself; each other variant
            is float32 over only the contacts its interpolation reaches (exact zeros elsewhere),
            with ``peak_channel`` the column of largest |amplitude| and ``position`` the
            template's position + (0, offset).
        """
        from hybridkit.engine.relocate import weight_matrix

        offsets = np.asarray(offsets_um, np.float64).reshape(-1)
        zero = np.flatnonzero(offsets == 0.0)
        if zero.size != 1:
            raise ValueError(f"unit {template.unit_id}: the offset grid must contain 0 exactly once")
        src = self.column[template.channels]
        if (src < 0).any():
            raise ValueError(f"unit {template.unit_id}: template channels "
                             f"{template.channels[src < 0].tolist()} are not neural contacts")
        # candidate targets: contacts within the footprint's y extent over the offsets, plus one
        # row of margin (interpolation reaches one pitch at most)
        ys = self.positions[src, 1]
        lo = ys.min() + offsets[0] - 2 * self.pitch_um
        hi = ys.max() + offsets[-1] + 2 * self.pitch_um
        tgt = np.flatnonzero((self.positions[:, 1] >= lo) & (self.positions[:, 1] <= hi))
        moving = np.flatnonzero(offsets != 0.0)
        # the footprint is the template on its sparse contacts and zero on every other contact
        full = np.zeros((self.channels.size, template.n_times), np.float32)
        full[src] = template.waveform.T
        templates: list[Template] = [template] * offsets.size
        # offsets are moved a batch at a time: the dense (offsets, contacts, samples) product of
        # a wide motion would otherwise be far larger than the sparse variants it is cut into
        for first in range(0, moving.size, _MOVE_BATCH):
            batch = moving[first:first + _MOVE_BATCH]
            points = self.positions[tgt][None, :, :] - np.c_[np.zeros(batch.size), offsets[batch]][:, None, :]
            index, weight = self.geometry.weights(points)  # (n_batch, n_tgt, 3)
            w = weight_matrix(index, weight, self.channels.size)
            moved = np.asarray(w @ full, np.float32).reshape(batch.size, tgt.size, template.n_times)
            carries = (np.abs(moved) > _ZERO).any(axis=2)  # (n_batch, n_tgt)
            for m, k in enumerate(batch):
                keep = np.flatnonzero(carries[m])
                if keep.size == 0:  # moved entirely off the probe: nothing to inject
                    keep = np.array([int(np.argmin(np.abs(self.positions[tgt, 1] - template.position[1]
                                                          - offsets[k])))])
                wf = np.ascontiguousarray(moved[m, keep].T)
                cols = self.channels[tgt[keep]]
                peak = int(cols[np.argmax(np.abs(wf).max(axis=0))])
                templates[k] = Template(
                    unit_id=template.unit_id, waveform=wf, channels=cols, peak_index=template.peak_index,
                    peak_channel=peak, position=template.position + np.array([0.0, offsets[k]]),
                    source=template.source, n_spikes=template.n_spikes,
                    provenance={"drift_offset_um": float(offsets[k])})
        return DriftVariants(offsets_um=offsets, templates=templates, zero=int(zero[0]))


def event_offsets(motion: MotionModel, times: np.ndarray, fs: float, depth_um: float,
                  grid_um: float) -> np.ndarray:
    """(n,) int64 grid steps (offset = step x grid_um) of events at ``times`` (samples)."""
    d = motion.displacement_at(np.asarray(times, np.float64) / fs, depth_um)
    return np.rint(d / grid_um).astype(np.int64)


def apply_motion(plan: Plan, motion: MotionModel, mover: ProbeDepthMover, fs: float,
                 grid_um: float = 1.0) -> Plan:
    """The plan with each event displaced by ``motion`` at its time and its unit's depth.

    A unit whose events all round to offset 0 keeps ``variants=None`` (the static path). Others get
    ``DriftVariants`` over every grid step from min(0, lowest) to max(0, highest) their events use,
    and ``plan.variant_index`` points each event at its step's template.
    """
    from hybridkit.model import PlacedUnit

    variant_index = np.zeros(plan.n_events, np.int64)
    units = []
    for k, unit in enumerate(plan.units):
        mine = np.flatnonzero(plan.unit_index == k)
        steps = event_offsets(motion, plan.times[mine], fs, float(unit.template.position[1]), grid_um)
        lo, hi = min(int(steps.min(initial=0)), 0), max(int(steps.max(initial=0)), 0)
        if lo == hi == 0:
            units.append(unit)
            continue
        offsets = np.arange(lo, hi + 1) * float(grid_um)
        offsets[-lo] = 0.0  # exactly (not -0.0)
        units.append(PlacedUnit(new_unit_id=unit.new_unit_id, source_unit_id=unit.source_unit_id,
                                template=unit.template, shift_um=unit.shift_um,
                                variants=mover.variants(unit.template, offsets)))
        variant_index[mine] = steps - lo
    return Plan(units=units, times=plan.times, unit_index=plan.unit_index, gains=plan.gains,
                variant_index=variant_index)

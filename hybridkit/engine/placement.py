"""Where an injected unit goes: moving a template along the probe by contact POSITIONS.

A template is moved by a displacement ``shift = (dx, dy)`` in um. The shift is valid when every
sparse channel's contact position plus the shift lands on a neural contact (within ``tol_um``).
Channel-index arithmetic is never used: on a Neuropixels 1.0 probe the columns are staggered
(x in {43, 11} on even rows and {59, 27} on odd rows, rows 20 um apart), so a 20 um move maps a
contact to empty space while 40 um maps it to a contact; gaps and reference channels (not
``neural``) are respected the same way.
"""
from __future__ import annotations

import logging

import numpy as np

from hybridkit.errors import PlacementError
from hybridkit.model import Template

log = logging.getLogger(__name__)

DEFAULT_TOL_UM = 0.5


class _Contacts:
    """The neural contacts of a recording: positions, their file columns, their order on the probe."""

    def __init__(self, channel_positions: np.ndarray, neural: np.ndarray) -> None:
        positions = np.asarray(channel_positions, dtype=np.float64)
        neural = np.asarray(neural, dtype=bool)
        usable = neural & np.isfinite(positions).all(axis=1)
        self.channels = np.flatnonzero(usable).astype(np.int64)
        self.positions = positions[self.channels]
        if self.channels.size == 0:
            raise PlacementError("the recording has no neural contacts with positions to place units on")
        # "channels up or down the probe": contacts sorted by (y, then x)
        self.order = np.lexsort((self.positions[:, 0], self.positions[:, 1]))
        self.rank = np.empty_like(self.order)
        self.rank[self.order] = np.arange(self.order.size)

    def lookup(self, points: np.ndarray, tol_um: float) -> np.ndarray:
        """Index into the contacts of the contact at each point, -1 where none is within tol."""
        # A grid hash instead of a KD-tree: contacts are binned into cells of 2 * tol_um, and a
        # point can only match a contact in its own cell or one of the 8 around it. Vectorised
        # over points, and it spares importing scipy.spatial (~0.3 s of every run's start-up).
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        idx = np.full(len(pts), -1, np.int64)
        best = np.full(len(pts), np.inf)
        cell = 2.0 * max(float(tol_um), 1e-6)
        keys, order = self._cells(cell)
        finite = np.isfinite(pts).all(axis=1)
        # far-off or NaN points get a cell no contact has; their distance check fails anyway
        base = np.floor(np.where(finite[:, None], np.clip(pts / cell, -2**30, 2**30), 0)).astype(np.int64)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                k = _cell_key(base[:, 0] + dx, base[:, 1] + dy)
                lo = np.searchsorted(keys, k, side="left")
                hi = np.searchsorted(keys, k, side="right")
                # a cell holds more than one contact only when contacts are < 2 tol apart
                for extra in range(int((hi - lo).max(initial=0))):
                    has = lo + extra < hi
                    cand = order[np.where(has, lo + extra, 0)]
                    d2 = ((pts - self.positions[cand]) ** 2).sum(axis=1)
                    take = has & finite & (d2 <= tol_um ** 2) & (d2 < best)
                    idx[take], best[take] = cand[take], d2[take]
        return idx

    def lands(self, offsets: np.ndarray, tol_um: float) -> np.ndarray:
        """(n_offsets, n_contacts) bool: whether each contact (in probe order, ``self.order``)
        moved by each (dx, dy) offset lands on a contact within ``tol_um``.

        Remembered per offset: the offsets of a template's channels from its peak are contact
        spacings, which repeat from template to template, so placing many units looks up each
        spacing once instead of every template's every channel (80 units: ~0.3 s -> ~0.01 s).
        """
        offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
        cache = self.__dict__.setdefault("_lands", {})
        keys = [(float(tol_um), dx, dy) for dx, dy in offsets.tolist()]
        new = list(dict.fromkeys(k for k in keys if k not in cache))
        if new:
            start = self.positions[self.order]  # (n_contacts, 2)
            moved = np.asarray([k[1:] for k in new])[:, None, :] + start[None, :, :]
            hit = self.lookup(moved.reshape(-1, 2), tol_um).reshape(len(new), -1) >= 0
            cache.update(zip(new, hit))
        return np.array([cache[k] for k in keys]).reshape(len(keys), self.order.size)

    def _cells(self, cell: float) -> tuple[np.ndarray, np.ndarray]:
        """Sorted cell keys of the contacts and the contact index of each, for one cell size."""
        if getattr(self, "_cell_size", None) != cell:
            c = np.floor(self.positions / cell).astype(np.int64)
            keys = _cell_key(c[:, 0], c[:, 1])
            order = np.argsort(keys, kind="stable")
            self._cell_size, self._cell_index = cell, (keys[order], order)
        return self._cell_index


def _cell_key(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """One int64 per grid cell (cell coordinates stay far below 2**31 for any probe)."""
    return (cx << 32) + (cy & 0xFFFFFFFF)


def _template_positions(template: Template, channel_positions: np.ndarray) -> np.ndarray:
    """(n_sparse, 2) contact positions of the template's channels; error when one has none."""
    positions = np.asarray(channel_positions, dtype=np.float64)
    ch = template.channels
    if ch.size == 0:
        raise PlacementError(f"unit {template.unit_id}: the template has no channels to place")
    if ch.min() < 0 or ch.max() >= positions.shape[0]:
        raise PlacementError(f"unit {template.unit_id}: template channels {ch.min()}..{ch.max()} "
                             f"are not file columns 0..{positions.shape[0] - 1} of this recording")
    pos = positions[ch]
    if not np.isfinite(pos).all():
        bad = ch[~np.isfinite(pos).all(axis=1)]
        raise PlacementError(f"unit {template.unit_id}: template channels {bad.tolist()} have no "
                             f"contact position")
    return pos


def _peak_position(template: Template) -> np.ndarray:
    pos = np.asarray(template.position, dtype=np.float64).reshape(2)
    if not np.isfinite(pos).all():
        raise PlacementError(f"unit {template.unit_id}: template position {pos.tolist()} is not finite")
    return pos


def _valid(template: Template, contacts: _Contacts, channel_positions: np.ndarray,
           tol_um: float) -> np.ndarray:
    """(n_valid, 2) valid shifts, in the contact order (y, then x) of the peak's target."""
    src = _template_positions(template, channel_positions)
    peak = _peak_position(template)
    candidates = contacts.positions[contacts.order] - peak  # (n_contacts, 2)
    # the peak onto contact c puts channel j at contact c + (channel j - peak)
    return candidates[contacts.lands(src - peak, tol_um).all(axis=0)]


def valid_shifts(template: Template, channel_positions: np.ndarray, neural: np.ndarray,
                 tol_um: float = DEFAULT_TOL_UM) -> np.ndarray:
    """Every displacement that maps all of the template's channels onto neural contacts.

    Candidates are (position of any neural contact) - (template's peak position), so the placed
    peak always sits on a contact; a candidate is valid when each sparse channel's position plus
    the shift lies within ``tol_um`` of a neural contact. Includes (0, 0) whenever the template's
    own channels are neural contacts.

    Args:
        template: a template whose channels are file columns of this recording.
        channel_positions: (n_channels, 2) um, NaN rows for channels without a contact.
        neural: (n_channels,) bool, where injection is allowed.
        tol_um: position tolerance, um.

    Returns:
        (n_shifts, 2) float64 (dx, dy) in um, ordered by the target contact's (y, then x).
    """
    contacts = _Contacts(channel_positions, neural)
    return _valid(template, contacts, channel_positions, tol_um)


def shift_template(template: Template, shift_um, channel_positions: np.ndarray,
                   neural: np.ndarray, tol_um: float = DEFAULT_TOL_UM) -> Template:
    """The template moved by ``shift_um`` (dx, dy) um onto the contacts at position + shift.

    The waveform is the same array; each column's channel becomes the contact at its position +
    shift (column order kept); ``peak_channel`` and ``position`` follow the peak. ``provenance``
    gains ``source_channels``, ``source_peak_channel`` and ``source_position`` (the first
    placement's, if the template was already moved) and the ``shift_um`` applied.

    Raises:
        PlacementError: some channel would land where there is no neural contact.
    """
    shift = np.asarray(shift_um, dtype=np.float64).reshape(-1)
    if shift.shape != (2,) or not np.isfinite(shift).all():
        raise PlacementError(f"unit {template.unit_id}: shift {np.asarray(shift_um).tolist()} is "
                             f"not a finite (dx, dy) pair in um")
    contacts = _Contacts(channel_positions, neural)
    src = _template_positions(template, channel_positions)
    hit = contacts.lookup(src + shift, tol_um)
    if (hit < 0).any():
        missing = template.channels[hit < 0]
        raise PlacementError(
            f"unit {template.unit_id}: shift {shift.tolist()} um moves channels {missing.tolist()} "
            f"off the probe's neural contacts; {len(_valid(template, contacts, channel_positions, tol_um))} "
            f"valid shifts exist (see valid_shifts)"
        )
    new_channels = contacts.channels[hit]
    peak_cols = np.flatnonzero(template.channels == template.peak_channel)
    if peak_cols.size:
        new_peak = int(new_channels[peak_cols[0]])
    else:  # the peak channel is not among the sparse channels: move it by position too
        peak_hit = contacts.lookup(_peak_position(template) + shift, tol_um)[0]
        if peak_hit < 0:
            raise PlacementError(f"unit {template.unit_id}: shift {shift.tolist()} um moves the "
                                 f"peak channel {template.peak_channel} off the probe")
        new_peak = int(contacts.channels[peak_hit])
    provenance = dict(template.provenance)
    provenance.setdefault("source_channels", template.channels.tolist())
    provenance.setdefault("source_peak_channel", int(template.peak_channel))
    provenance.setdefault("source_position", _peak_position(template).tolist())
    provenance["shift_um"] = (np.asarray(provenance.get("shift_um", (0.0, 0.0))) + shift).tolist()
    return Template(
        unit_id=template.unit_id,
        waveform=template.waveform,
        channels=new_channels,
        peak_index=template.peak_index,
        peak_channel=new_peak,
        position=np.asarray(channel_positions, dtype=np.float64)[new_peak].copy(),
        source=template.source,
        n_spikes=template.n_spikes,
        provenance=provenance,
    )


def offset_to_shift(template: Template, offset: int, channel_positions: np.ndarray,
                    neural: np.ndarray, tol_um: float = DEFAULT_TOL_UM) -> np.ndarray:
    """The shift moving the peak to the contact ``offset`` places away in (y, then x) order.

    This is "n channels up (positive) or down (negative) the probe" counted over neural contacts
    sorted by depth then x, which does not depend on how the file orders its channels.

    Returns:
        (2,) float64 shift in um.

    Raises:
        PlacementError: the target contact does not exist or the shift is not valid for this
            template's footprint; the message lists the nearest valid offsets.
    """
    contacts = _Contacts(channel_positions, neural)
    peak = _peak_position(template)
    here = contacts.lookup(peak, tol_um)[0]
    if here < 0:
        raise PlacementError(f"unit {template.unit_id}: the template's peak position "
                             f"{peak.tolist()} is not a neural contact of this probe")
    start = int(contacts.rank[here])
    valid = _valid(template, contacts, channel_positions, tol_um)
    valid_targets = contacts.lookup(peak + valid, tol_um)
    valid_offsets = np.sort(contacts.rank[valid_targets] - start) if valid.size else np.zeros(0, int)
    target = start + int(offset)
    if 0 <= target < contacts.order.size:
        shift = contacts.positions[contacts.order[target]] - peak
        if np.isin(int(offset), valid_offsets):
            return shift
    nearest = valid_offsets[np.argsort(np.abs(valid_offsets - int(offset)), kind="stable")[:6]]
    raise PlacementError(
        f"unit {template.unit_id}: channel offset {int(offset)} is not a valid place for this "
        f"template (contact {target} of {contacts.order.size} by depth); nearest valid offsets: "
        f"{', '.join(str(int(o)) for o in sorted(nearest)) or '(none)'}"
    )


def choose_places(templates: list[Template], channel_positions: np.ndarray, neural: np.ndarray,
                  rng: np.random.Generator, min_distance_um: float,
                  fixed: dict[int, np.ndarray] | None = None,
                  tol_um: float = DEFAULT_TOL_UM,
                  order: list[int] | None = None) -> list[np.ndarray | None]:
    """A shift for each template: random, valid, and away from the source and other placed units.

    ``fixed`` maps a template index to a shift chosen by the user; those are checked for
    validity (PlacementError otherwise) and placed first, so random places keep away from them;
    a fixed place closer than ``min_distance_um`` to its source or another fixed place is kept,
    with a warning.
    Each other template, in ``order`` (template indices, best-ranked first; default list order),
    gets a shift drawn uniformly (from ``rng``) among its valid shifts whose placed peak position
    is at least ``min_distance_um`` from its own source position and from every unit placed
    before it (fixed ones included), so when the probe runs out of room the last in ``order``
    go without a place.

    Returns:
        one entry per template: a (2,) float64 shift in um, or None where no place satisfies the
        constraints (the caller decides whether that is an error or a skipped unit).
    """
    fixed = dict(fixed or {})
    contacts = _Contacts(channel_positions, neural)
    out: list[np.ndarray | None] = [None] * len(templates)
    placed: list[np.ndarray] = []
    for i, shift in sorted(fixed.items()):
        if not 0 <= i < len(templates):
            raise PlacementError(f"fixed place given for template index {i}, but there are "
                                 f"{len(templates)} templates")
        shift = np.asarray(shift, dtype=np.float64).reshape(2)
        t = templates[i]
        src = _template_positions(t, channel_positions)
        if (contacts.lookup(src + shift, tol_um) < 0).any():
            valid = _valid(t, contacts, channel_positions, tol_um)
            near = valid[np.argsort(np.hypot(*(valid - shift).T), kind="stable")[:4]]
            raise PlacementError(
                f"unit {t.unit_id}: shift {shift.tolist()} um moves channels off the probe's "
                f"neural contacts; nearest valid shifts: {near.tolist() or '(none)'}"
            )
        here = _peak_position(t) + shift
        # the user's choice stands, but say when it breaks the distance the random places keep
        near = [float(np.hypot(*(here - p))) for p in placed]
        if np.hypot(*shift) < min_distance_um or any(d < min_distance_um for d in near):
            log.warning("unit %s: its fixed place is closer than min_distance_um (%g um) to its "
                        "source or to another fixed unit (%s um); kept as configured",
                        t.unit_id, min_distance_um,
                        ", ".join(f"{d:.0f}" for d in [float(np.hypot(*shift))] + near))
        out[i] = shift
        placed.append(here)
    order = list(range(len(templates))) if order is None else [int(i) for i in order]
    if sorted(order) != list(range(len(templates))):
        raise ValueError(f"order {order} is not a permutation of the {len(templates)} template indices")
    for i in order:
        t = templates[i]
        if i in fixed:
            continue
        valid = _valid(t, contacts, channel_positions, tol_um)
        source = _peak_position(t)
        targets = source + valid
        ok = np.hypot(*(targets - source).T) >= min_distance_um
        for p in placed:
            ok &= np.hypot(*(targets - p).T) >= min_distance_um
        if not ok.any():
            continue
        choice = valid[np.flatnonzero(ok)[rng.integers(int(ok.sum()))]]
        out[i] = choice.copy()
        placed.append(source + choice)
    return out

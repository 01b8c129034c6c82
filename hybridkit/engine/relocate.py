"""Any template onto any probe: spatial interpolation, time resampling, amplitude scaling.

A template recorded on one probe (source contacts at ``source_positions``) is placed on another
probe (target contacts at ``target_positions``) by translation: the source point ``source_anchor``
(usually the source's peak contact) goes to the target point ``target_anchor``, so the value at a
target contact ``q`` is the source footprint evaluated at ``q - target_anchor + source_anchor``.

The footprint between source contacts is **linear** (barycentric on the Delaunay triangulation of
the source contacts; along the line for a single-column source). A linear interpolant is a convex
combination of the source values, so it never exceeds the source's peak: placed with the source's
peak contact on a target contact, the template keeps its peak amplitude exactly and its peak stays
on that contact. Outside the source contacts' convex hull the footprint is continued from the
nearest point of the hull and attenuated by ``exp(-distance / decay_um)`` (extracellular spikes
fade within tens of um); a footprint is never invented where the source probe saw nothing.

Interpolation is a sparse linear map (at most 3 source contacts per target contact) applied to the
whole waveform at once, and :func:`relocate` accepts many target anchors at a time: drift-aware
injection precomputes a template over a grid of depths with one call.

All amplitudes are microvolts; waveforms are (n_times, n_channels) float32.
"""
from __future__ import annotations

import numpy as np

#: um; amplitude continued beyond the source contacts falls by e over this distance
DEFAULT_DECAY_UM = 30.0
#: relative sampling-rate difference below which no time resampling is done: over a 240-sample
#: template the timing error stays under 0.03 samples (e.g. SpikeGLX 30000.39 Hz vs 30000 Hz)
DEFAULT_RATE_RTOL = 1e-4
#: half-width of the windowed-sinc resampling kernel, in samples of the slower rate
_SINC_HALF_WIDTH = 12
#: rows of outside points processed at once against the hull edges (bounds memory)
_HULL_BLOCK = 4096


class SourceGeometry:
    """Source contact positions prepared for interpolation; build once, reuse for many placements.

    Args:
        positions: (n_src, 2) contact positions, um.
        decay_um: length constant of the attenuation outside the contacts' convex hull, um.
    """

    def __init__(self, positions: np.ndarray, decay_um: float = DEFAULT_DECAY_UM) -> None:
        pos = np.asarray(positions, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] == 0 or not np.isfinite(pos).all():
            raise ValueError(f"source positions must be a finite (n, 2) array, got shape {pos.shape}")
        if not decay_um > 0:
            raise ValueError(f"decay_um must be > 0, got {decay_um}")
        self.positions = pos
        self.decay_um = float(decay_um)
        self.center = pos.mean(axis=0)
        centered = pos - self.center
        sv = np.linalg.svd(centered, compute_uv=False) if pos.shape[0] > 1 else np.zeros(2)
        # a single column (or one contact) has no 2-D triangulation: interpolate along its line
        self.linear = pos.shape[0] < 3 or sv[1] <= 1e-9 * max(sv[0], 1.0)
        if self.linear:
            if pos.shape[0] > 1 and sv[0] > 0:
                axis = np.linalg.svd(centered, full_matrices=False)[2][0]
            else:
                axis = np.array([0.0, 1.0])
            self.axis = axis / np.linalg.norm(axis)
            self.normal = np.array([-self.axis[1], self.axis[0]])
            s = centered @ self.axis
            self.order = np.argsort(s, kind="stable")
            self.s_sorted = s[self.order]
        else:
            from scipy.spatial import Delaunay  # lazy: keeps `import hybridkit` fast

            self.tri = Delaunay(pos)
            self.hull_edges = np.asarray(self.tri.convex_hull, dtype=np.int64)  # (n_edges, 2)

    # -- weights -----------------------------------------------------------------------------
    def weights(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolation weights of source contacts at ``points`` (in source coordinates).

        Args:
            points: (..., 2) um.

        Returns:
            ``(index, weight)``, each (..., 3): the value at a point is
            ``sum_k weight[..., k] * value[index[..., k]]``.
        """
        pts = np.asarray(points, dtype=np.float64)
        shape = pts.shape[:-1]
        flat = pts.reshape(-1, 2)
        index = np.zeros((flat.shape[0], 3), np.int64)
        weight = np.zeros((flat.shape[0], 3), np.float64)
        if self.linear:
            self._linear_weights(flat, index, weight)
        else:
            self._planar_weights(flat, index, weight)
        return index.reshape(*shape, 3), weight.astype(np.float32).reshape(*shape, 3)

    def _planar_weights(self, q: np.ndarray, index: np.ndarray, weight: np.ndarray) -> None:
        simplex = self.tri.find_simplex(q)
        inside = simplex >= 0
        if inside.any():
            s = simplex[inside]
            t = self.tri.transform[s]  # (m, 3, 2): affine map to barycentric coordinates
            b = np.einsum("mij,mj->mi", t[:, :2, :], q[inside] - t[:, 2, :])
            bary = np.clip(np.c_[b, 1.0 - b.sum(axis=1)], 0.0, 1.0)
            index[inside] = self.tri.simplices[s]
            weight[inside] = bary / bary.sum(axis=1, keepdims=True)
        outside = np.flatnonzero(~inside)
        a_idx, b_idx = self.hull_edges[:, 0], self.hull_edges[:, 1]
        a, ab = self.positions[a_idx], self.positions[b_idx] - self.positions[a_idx]
        ab2 = np.maximum((ab ** 2).sum(axis=1), 1e-12)
        for lo in range(0, outside.size, _HULL_BLOCK):
            rows = outside[lo:lo + _HULL_BLOCK]
            rel = q[rows, None, :] - a[None]  # (m, n_edges, 2)
            t = np.clip((rel * ab[None]).sum(axis=2) / ab2, 0.0, 1.0)
            d2 = ((rel - t[..., None] * ab[None]) ** 2).sum(axis=2)
            best = np.argmin(d2, axis=1)
            tb = t[np.arange(rows.size), best]
            att = np.exp(-np.sqrt(d2[np.arange(rows.size), best]) / self.decay_um)
            index[rows, 0], index[rows, 1], index[rows, 2] = a_idx[best], b_idx[best], a_idx[best]
            weight[rows, 0], weight[rows, 1] = (1.0 - tb) * att, tb * att

    def _linear_weights(self, q: np.ndarray, index: np.ndarray, weight: np.ndarray) -> None:
        rel = q - self.center
        s, perp = rel @ self.axis, np.abs(rel @ self.normal)
        ss = self.s_sorted
        k = np.clip(np.searchsorted(ss, s), 1, max(ss.size - 1, 1))
        lo, hi = k - 1, np.minimum(k, ss.size - 1)
        span = ss[hi] - ss[lo]
        frac = np.where(span > 0, (s - ss[lo]) / np.where(span > 0, span, 1.0), 0.0)
        frac = np.clip(frac, 0.0, 1.0)
        beyond = np.maximum(ss[0] - s, 0.0) + np.maximum(s - ss[-1], 0.0)
        att = np.exp(-np.hypot(perp, beyond) / self.decay_um)
        index[:, 0], index[:, 1], index[:, 2] = self.order[lo], self.order[hi], self.order[lo]
        weight[:, 0], weight[:, 1] = (1.0 - frac) * att, frac * att


def weight_matrix(index: np.ndarray, weight: np.ndarray, n_source: int):
    """The (n_points, n_source) scipy.sparse CSR matrix of ``(index, weight)`` from
    :meth:`SourceGeometry.weights`."""
    from scipy import sparse

    idx = np.asarray(index).reshape(-1, 3)
    w = np.asarray(weight, dtype=np.float32).reshape(-1, 3)
    rows = np.repeat(np.arange(idx.shape[0]), 3)
    return sparse.csr_matrix((w.ravel(), (rows, idx.ravel())), shape=(idx.shape[0], n_source))


def relocate(
    waveform: np.ndarray,
    source_positions: np.ndarray | SourceGeometry,
    source_anchor,
    target_positions: np.ndarray,
    target_anchor,
    decay_um: float = DEFAULT_DECAY_UM,
) -> np.ndarray:
    """A template's footprint moved from its source contacts onto target contacts.

    Args:
        waveform: (n_times, n_src) uV on the source contacts.
        source_positions: (n_src, 2) um, or a prebuilt :class:`SourceGeometry` (faster when the
            same source probe is used many times).
        source_anchor: (2,) um, the source point that is moved (e.g. the peak contact's position).
        target_positions: (n_tgt, 2) um.
        target_anchor: (2,) um where the anchor goes, or (n_pos, 2) for many placements at once.
        decay_um: attenuation length outside the source contacts (ignored for a prebuilt geometry).

    Returns:
        (n_times, n_tgt) float32 uV, or (n_pos, n_times, n_tgt) when ``target_anchor`` is 2-D.
    """
    wf = np.asarray(waveform, dtype=np.float32)
    geom = (source_positions if isinstance(source_positions, SourceGeometry)
            else SourceGeometry(source_positions, decay_um))
    if wf.ndim != 2 or wf.shape[1] != geom.positions.shape[0]:
        raise ValueError(f"waveform {wf.shape} does not match {geom.positions.shape[0]} source contacts")
    tgt = np.asarray(target_positions, dtype=np.float64).reshape(-1, 2)
    anchors = np.asarray(target_anchor, dtype=np.float64)
    single = anchors.ndim == 1
    anchors = anchors.reshape(-1, 2)
    offset = np.asarray(source_anchor, dtype=np.float64).reshape(2) - anchors  # (n_pos, 2)
    points = tgt[None, :, :] + offset[:, None, :]  # (n_pos, n_tgt, 2) in source coordinates
    index, weight = geom.weights(points)
    w = weight_matrix(index, weight, geom.positions.shape[0])
    out = np.asarray(w @ wf.T, dtype=np.float32)  # (n_pos * n_tgt, n_times)
    out = out.reshape(anchors.shape[0], tgt.shape[0], wf.shape[0]).transpose(0, 2, 1)
    return np.ascontiguousarray(out[0] if single else out)


# -- time ------------------------------------------------------------------------------------
def resampling_matrix(n_in: int, peak_in: int, fs_in: float, fs_out: float,
                      half_width: int = _SINC_HALF_WIDTH) -> tuple[np.ndarray, int]:
    """Windowed-sinc matrix taking a waveform from ``fs_in`` to ``fs_out``, peak-aligned.

    Output sample ``peak_out`` is at the same time as input sample ``peak_in``; the output spans
    the same time before and after the peak (rounded to whole samples). The kernel's cut-off is
    the lower Nyquist frequency (so downsampling does not alias), the input is held at its edge
    values beyond its ends, and each row sums to 1 (DC kept).

    Returns:
        ``(R, peak_out)`` with R (n_out, n_in) float64; resampled = R @ waveform.
    """
    ratio = fs_out / fs_in
    peak_out = int(round(peak_in * ratio))
    n_out = peak_out + int(round((n_in - peak_in) * ratio))
    x = peak_in + (np.arange(n_out) - peak_out) / ratio  # input-sample position of each output
    cutoff = min(1.0, ratio)  # in cycles per input sample relative to the input Nyquist
    reach = int(np.ceil(half_width / cutoff))
    base = np.floor(x).astype(np.int64)
    taps = base[:, None] + np.arange(-reach, reach + 2)[None, :]  # (n_out, n_taps)
    d = x[:, None] - taps
    kernel = np.sinc(cutoff * d) * np.where(np.abs(d) < reach + 1,
                                           0.5 + 0.5 * np.cos(np.pi * d / (reach + 1)), 0.0)
    kernel /= kernel.sum(axis=1, keepdims=True)
    R = np.zeros((n_out, n_in))
    rows = np.repeat(np.arange(n_out), taps.shape[1])
    np.add.at(R, (rows, np.clip(taps, 0, n_in - 1).ravel()), kernel.ravel())
    return R, peak_out


def resample(waveform: np.ndarray, peak_index: int, fs_in: float, fs_out: float,
             rtol: float = DEFAULT_RATE_RTOL) -> tuple[np.ndarray, int]:
    """The waveform (n_times, n_ch) at ``fs_out`` Hz, and its new peak index.

    Returned unchanged when the rates differ by less than ``rtol`` (relative).
    """
    wf = np.asarray(waveform, dtype=np.float32)
    if abs(fs_out / fs_in - 1.0) < rtol:
        return wf, int(peak_index)
    R, peak_out = resampling_matrix(wf.shape[0], int(peak_index), float(fs_in), float(fs_out))
    return (R @ wf.astype(np.float64)).astype(np.float32), peak_out


# -- amplitude -------------------------------------------------------------------------------
def peak_amplitude(waveform: np.ndarray) -> float:
    """max |waveform| (uV): the template's peak amplitude as hybridkit defines it."""
    wf = np.asarray(waveform)
    return float(np.abs(wf).max()) if wf.size else 0.0


def gain_for_amplitude(waveform: np.ndarray, amplitude_uV: float) -> float:
    """Factor making the peak |amplitude| equal ``amplitude_uV``."""
    peak = peak_amplitude(waveform)
    if peak <= 0:
        raise ValueError("the waveform is all zeros; it cannot be scaled to an amplitude")
    return float(amplitude_uV) / peak


def gain_for_snr(waveform: np.ndarray, snr: float, noise_uV: float) -> float:
    """Factor making peak |amplitude| / ``noise_uV`` equal ``snr``."""
    if not noise_uV > 0:
        raise ValueError(f"noise level {noise_uV} uV must be > 0 to scale to an SNR")
    return gain_for_amplitude(waveform, float(snr) * float(noise_uV))


def footprint_mask(waveform: np.ndarray, positions: np.ndarray, fraction: float,
                   radius_um: float) -> np.ndarray:
    """Columns carrying the signal: peak |amp| >= fraction x the template's peak, within radius.

    Args:
        waveform: (n_times, n_ch) uV. positions: (n_ch, 2) um.

    Returns:
        (n_ch,) bool; the peak column is always kept.
    """
    amp = np.abs(np.asarray(waveform)).max(axis=0)
    peak = int(np.argmax(amp))
    dist = np.hypot(*(np.asarray(positions, float) - np.asarray(positions, float)[peak]).T)
    mask = (amp >= fraction * amp[peak]) & (dist <= radius_um)
    mask[peak] = True
    return mask

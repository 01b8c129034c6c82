"""Templates from spike snippets: align, average, rank-k SVD denoise, sparsify.

The noise level they are sparsified against is the run's (:mod:`hybridkit.engine.noise`).

All amplitudes here are microvolts. Snippet arrays are (n_spikes, n_times, n_channels); waveforms
are (n_times, n_channels).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hybridkit.errors import TemplateError

#: Sparsity defaults for Neuropixels-like probes (12 um square contacts, 16-32 um apart).
#: A channel is kept where the template's peak |amplitude| is at least this many times the
#: channel's noise std. An averaged, rank-k denoised template has a residual noise far below 1 std,
#: so 1.5 std sits above that floor, while a signal below 1.5 std (~10 uV on NP1) is invisible to
#: any sorter and leaving it out changes nothing a sorter can see.
DEFAULT_SPARSITY_THRESHOLD = 1.5
#: ... and within this distance of the peak contact: extracellular spikes decay to a few percent
#: of their peak within ~100 um (a common sparsity radius for Neuropixels), which spans +-5 rows
#: of 2 contacts (about 20 channels) around the peak on an NP1/NP2 probe.
DEFAULT_SPARSITY_RADIUS_UM = 100.0

#: default alignment search: +-5 samples (0.17 ms at 30 kHz)
DEFAULT_MAX_SHIFT = 5
#: alignment uses at most this many of the strongest channels (those above half the peak)
_N_ALIGN_CHANNELS = 16
#: the SVD learns its temporal components from at most this many of the strongest channels: the
#: unit's waveforms live there, while hundreds of noise-only channels would only add noise to the
#: components and cost time (500 spikes x 384 channels is a 192000 x 90 matrix)
_N_SVD_CHANNELS = 32


def _unit_label(unit_id) -> str:
    return "template" if unit_id is None else f"unit {unit_id}"


# -- building -----------------------------------------------------------------------------------
def _shift_take(snippets: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """out[i, t] = snippets[i, t + shifts[i]], indices clamped to the window (edge replication).

    Only the ``|shift|`` outermost samples are replicated; they are then tapered to zero anyway.
    Done as one slice copy per distinct shift (a dozen at most) rather than a per-element gather.
    """
    out = np.empty_like(snippets)
    for s in np.unique(shifts).tolist():
        sel = np.flatnonzero(shifts == s)
        _shift_into(snippets[sel], s, out, sel)
    return out


def _shift_into(src: np.ndarray, s: int, out: np.ndarray, where) -> None:
    """out[where] = src shifted by ``s`` samples along axis 1 (see :func:`_shift_take`);
    ``where`` is an index array or a slice of ``out``'s first axis."""
    n_times = src.shape[1]
    s = max(-(n_times - 1), min(n_times - 1, int(s)))
    if s >= 0:
        out[where, : n_times - s] = src[:, s:]
        out[where, n_times - s :] = src[:, -1:]
    else:
        out[where, -s:] = src[:, : n_times + s]
        out[where, :-s] = src[:, :1]


def _groups_of(sorted_shifts: np.ndarray) -> list[tuple[int, int, int]]:
    """(shift, start, stop) of each run of equal values in sorted ``sorted_shifts``."""
    values, starts = np.unique(sorted_shifts, return_index=True)
    stops = [*starts[1:].tolist(), sorted_shifts.size]
    return list(zip(values.tolist(), starts.tolist(), stops))


def _xcorr_shifts(snippets: np.ndarray, ref: np.ndarray, max_shift: int) -> np.ndarray:
    """Per-spike shift in [-max_shift, max_shift] maximising the dot product with ``ref``.

    ``ref`` (n_times, n_ch) is the current mean on the few strongest channels. Using the whole
    waveform instead of a single extremum sample keeps noise from biasing the alignment (picking
    each spike's noisy maximum would inflate the averaged peak).
    """
    n_spikes, n_times, n_ch = snippets.shape
    r = ref[max_shift : n_times - max_shift]
    # score j of spike i is <snippet_i[max_shift + s_j + t], r[t]>: one (n_spikes, n_times * n_ch)
    # x (n_times * n_ch, n_shifts) product against r placed at every shift, instead of one pass
    # over the snippets per shift
    placed = np.zeros((2 * max_shift + 1, n_times, n_ch), dtype=snippets.dtype)
    for j in range(2 * max_shift + 1):
        placed[j, j : j + r.shape[0]] = r
    scores = snippets.reshape(n_spikes, -1) @ placed.reshape(2 * max_shift + 1, -1).T
    return np.argmax(scores, axis=1) - max_shift


def _strongest(amp: np.ndarray, n_max: int, min_fraction: float = 0.0) -> np.ndarray:
    """Indices of up to ``n_max`` largest ``amp`` values that reach ``min_fraction`` of the max."""
    order = np.argsort(-amp, kind="stable")[:n_max]
    return np.sort(order[amp[order] >= min_fraction * amp[order[0]]])


def _vertex(trace: np.ndarray, i: int, half: int = 2) -> float:
    """Sub-sample location of the extremum at sample ``i``: a least-squares parabola through the
    ``2 * half + 1`` samples around it. A trough is often flat over 2-3 samples, where the
    largest single sample is decided by noise; the fitted vertex is not."""
    lo, hi = max(0, i - half), min(trace.size, i + half + 1)
    if hi - lo < 3:
        return float(i)
    t = np.arange(lo, hi) - i
    a, b, _ = np.polyfit(t, trace[lo:hi], 2)
    if a == 0 or np.sign(a) == np.sign(trace[i]):  # not an extremum of the trace's sign
        return float(i)
    return float(i + np.clip(-b / (2 * a), -half, half))


def _taper(n_times: int, n_ramp: int) -> np.ndarray:
    """(n_times,) window: 1 except half-cosine ramps over the ``n_ramp`` outermost samples.

    The first and last samples are exactly 0, so an injected waveform starts and ends at 0 and
    never leaves a step in the hybrid trace.
    """
    w = np.ones(n_times)
    n_ramp = max(1, min(n_ramp, n_times // 2))
    ramp = 0.5 * (1.0 - np.cos(np.pi * np.arange(n_ramp) / n_ramp))
    w[:n_ramp] = ramp
    w[n_times - n_ramp :] = ramp[::-1]
    return w


class BuiltTemplate(NamedTuple):
    """What :func:`build_template` returns."""

    waveform: np.ndarray
    n_used: int
    rank: int


def build_template(
    snippets_uV: np.ndarray,
    rank: int = 6,
    max_shift: int = DEFAULT_MAX_SHIFT,
    peak_index: int | None = None,
    *,
    unit_id: int | None = None,
) -> BuiltTemplate:
    """One unit's denoised mean waveform.

    Steps:

    1. Find the peak channel: largest |amplitude| of the mean once each channel's baseline (see 3)
       is removed, so DC offsets never pick it.
    2. Align: each spike is shifted by up to ``max_shift`` samples to best match the mean on the
       strongest channels (cross-correlation of DC-removed waveforms, two passes); then the whole
       set is shifted so that the extremum of the mean on the peak channel falls on
       ``peak_index`` (searched within ``max_shift`` of it). Samples shifted in from beyond the
       window replicate the edge sample; this touches at most the ``2 * max_shift`` outermost
       samples, where a 1 ms / 2 ms window is near baseline.
    3. Baseline: per spike and channel, the mean of the first ``max(1, peak_index // 2)``
       samples (the part of the window furthest from the spike and its slow tail) is subtracted;
       the template is the average of these aligned, baseline-free spikes.
    4. Denoise: economy SVD (through the eigenvectors of its Gram matrix) of the aligned, baseline-subtracted snippet matrix with one row per
       (spike, channel) time course of the 32 strongest channels, shape (n_spikes * n_ch', n_times);
       the mean of every channel is projected onto the top ``k`` temporal components, so the
       result has rank <= k as an (n_times, n_ch) matrix. ``k = min(rank, rows, n_times)`` and
       further limited to the components with non-zero singular values; ``rank = 0`` disables
       denoising.
    5. Taper: multiply the ``max(2, max_shift)`` outermost samples at each end by a half-cosine
       ramp so the waveform starts and ends at exactly 0. The rest of the waveform is untouched.

    Args:
        snippets_uV: (n_spikes, n_times, n_ch) float, microvolts.
        rank: number of SVD components kept (0: no denoising).
        max_shift: alignment search range, samples (at most a quarter of the window is used).
        peak_index: sample of the spike time within the window (``n_before``); default: where the
            mean's largest |value| (each channel's median removed) falls.
        unit_id: used in error messages only.

    Returns:
        BuiltTemplate: waveform (n_times, n_ch) float32 uV, n_used spikes averaged, and the rank
        used: the SVD components kept, which is less than ``rank`` when the spikes, channels or
        samples allow fewer (``n_times`` when nothing was projected away; 0 when disabled).

    Raises:
        TemplateError: no spikes, NaN/inf in the snippets or the result, or a template that is
            zero everywhere (no signal).
    """
    label = _unit_label(unit_id)
    x = np.asarray(snippets_uV, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise TemplateError(f"{label}: need snippets of shape (n_spikes>0, n_times>0, n_ch>0), "
                            f"got {x.shape}")
    n_spikes, n_times, n_ch = x.shape
    max_shift = int(max(0, min(int(max_shift), (n_times - 1) // 4)))

    mean = x.mean(axis=0, dtype=np.float64)
    # a float64 sum of float32 values cannot overflow, so the mean is finite exactly when every
    # snippet is (one pass over the snippets instead of two)
    if not np.isfinite(mean).all():
        n_bad = int((~np.isfinite(x)).any(axis=(1, 2)).sum())
        raise TemplateError(f"{label}: {n_bad} of {x.shape[0]} snippets contain NaN or inf values")
    if peak_index is None:
        centered = mean - np.median(mean, axis=0)  # DC offsets must not pick the peak
        peak_index = int(np.unravel_index(np.argmax(np.abs(centered)), centered.shape)[0])
    peak_index = int(peak_index)
    if not 0 <= peak_index < n_times:
        raise TemplateError(f"{label}: peak_index {peak_index} outside the window 0..{n_times - 1}")
    n_base = max(1, peak_index // 2)
    amp = np.abs(mean - mean[:n_base].mean(axis=0)).max(axis=0)
    peak_ch = int(np.argmax(amp))

    shifts = np.zeros(n_spikes, dtype=np.int64)
    if max_shift > 0 and n_spikes > 1:
        # align on the strongest channels, each spike's own DC removed so offsets do not dominate
        strong = _strongest(amp, _N_ALIGN_CHANNELS, min_fraction=0.5)
        xs = x[:, :, strong]
        xs -= xs.mean(axis=1, keepdims=True)
        for _ in range(2):
            aligned = _shift_take(xs, shifts) if shifts.any() else xs
            shifts = shifts + _xcorr_shifts(aligned, aligned.mean(axis=0), max_shift)
            shifts = np.clip(shifts, -max_shift, max_shift)
        # put the aligned mean's extremum on the peak channel onto peak_index
        col = int(np.flatnonzero(strong == peak_ch)[0])
        trace = _shift_take(xs[:, :, col : col + 1], shifts)[:, :, 0].mean(axis=0)
        trace -= trace[:n_base].mean()
        lo, hi = max(0, peak_index - max_shift), min(n_times, peak_index + max_shift + 1)
        offset = int(np.rint(_vertex(trace, lo + int(np.argmax(np.abs(trace[lo:hi]))))) - peak_index)
        shifts = shifts + offset
        del xs, aligned
    # every snippet shifted by its spike's shift, the spikes in shift order (stable) so each
    # shift's group is one gather and one slice copy; the order of the spikes changes neither the
    # mean nor the Gram matrix below
    order = np.argsort(shifts, kind="stable")
    xa = np.empty_like(x)
    for s, a, b in _groups_of(shifts[order]):
        _shift_into(x if b - a == n_spikes else x[order[a:b]], s, xa, slice(a, b))
    x = xa
    del xa
    # baseline: each spike's own mean over the first half of the pre-peak samples, per channel;
    # removing it per spike (not only from the mean) keeps slow LFP offsets out of the SVD
    x -= x[:, :n_base].mean(axis=1, keepdims=True)
    mean = x.mean(axis=0, dtype=np.float64)

    k = min(int(rank), n_spikes * min(n_ch, _N_SVD_CHANNELS), n_times)
    if k > 0 and k < n_times:
        best = _strongest(amp, _N_SVD_CHANNELS)
        xb = x if best.size == n_ch else x[:, :, best]  # (best is sorted: all columns = x itself)
        rows = xb.transpose(0, 2, 1).reshape(-1, n_times)
        # The right singular vectors of rows are the eigenvectors of its (n_times, n_times) Gram
        # matrix, with eigenvalues s**2: the same components as an economy SVD at ~1/20 of the
        # cost (16000 x 90 rows). The product is summed in float32 (half the time of float64; the
        # top components it keeps move by ~1e-5) and decomposed in float64.
        evals, evecs = np.linalg.eigh((rows.T @ rows).astype(np.float64))
        evals, evecs = evals[::-1], evecs[:, ::-1]  # descending, like the SVD's
        top = evals[0] if evals.size else 0.0
        k = min(k, int(np.count_nonzero(evals > top * 1e-12))) if top > 0 else 0
        basis = evecs[:, :k].T  # (k, n_times) temporal components
        mean = basis.T @ (basis @ mean)

    waveform = (mean * _taper(n_times, max(2, max_shift))[:, None]).astype(np.float32)
    if not np.isfinite(waveform).all():
        raise TemplateError(f"{label}: the template contains NaN or inf values")
    if not np.any(waveform):
        # injecting it would add nothing while the truth table lists every event as injected
        raise TemplateError(f"{label}: the template is zero on every channel: its {n_spikes} "
                            "spikes carry no signal in the recording (a blank stretch, or an "
                            "all-zero file?); choose units whose spikes are in the recording")
    return BuiltTemplate(waveform, n_spikes, max(k, 0))


def sparsify(
    waveform: np.ndarray,
    noise_uV: np.ndarray,
    positions: np.ndarray,
    peak_channel_idx: int,
    threshold: float = DEFAULT_SPARSITY_THRESHOLD,
    radius_um: float = DEFAULT_SPARSITY_RADIUS_UM,
    *,
    unit_id: int | None = None,
) -> np.ndarray:
    """Which columns of ``waveform`` carry the unit's signal.

    A column is kept when its peak |amplitude| is at least ``threshold`` times that channel's
    noise std AND its contact lies within ``radius_um`` of the peak column's contact. The peak
    column is always kept. See :data:`DEFAULT_SPARSITY_THRESHOLD` and
    :data:`DEFAULT_SPARSITY_RADIUS_UM` for why the defaults suit Neuropixels probes.

    Args:
        waveform: (n_times, n_ch) uV.
        noise_uV: (n_ch,) noise std per column, uV.
        positions: (n_ch, 2) contact positions, um.
        peak_channel_idx: column index (into ``waveform``) of the peak channel.

    Returns:
        (n_ch,) bool mask.
    """
    label = _unit_label(unit_id)
    waveform = np.asarray(waveform, dtype=np.float64)
    noise = np.asarray(noise_uV, dtype=np.float64).ravel()
    positions = np.asarray(positions, dtype=np.float64)
    n_ch = waveform.shape[1] if waveform.ndim == 2 else -1
    if noise.shape != (n_ch,) or positions.shape != (n_ch, 2):
        raise TemplateError(f"{label}: waveform {waveform.shape}, noise {noise.shape} and "
                            f"positions {positions.shape} do not describe the same channels")
    if not 0 <= int(peak_channel_idx) < n_ch:
        raise TemplateError(f"{label}: peak channel index {peak_channel_idx} outside 0..{n_ch - 1}")
    for name, arr in (("waveform", waveform), ("noise", noise), ("channel positions", positions)):
        if not np.isfinite(arr).all():
            raise TemplateError(f"{label}: the {name} contain NaN or inf values")
    amp = np.abs(waveform).max(axis=0)
    dist = np.hypot(*(positions - positions[int(peak_channel_idx)]).T)
    mask = (amp >= threshold * noise) & (dist <= radius_um)
    mask[int(peak_channel_idx)] = True
    return mask

"""Match a sorter's spikes to ground-truth spikes; agreement, assignment, performance, unit classes.

Pure numpy/scipy. Definitions follow SpikeInterface's ``GroundTruthComparison`` (with
``match_mode="hungarian"``, ``agreement_method="count"``, ``exhaustive_gt=True``) so that numbers
can be compared one to one:

* Two spikes match when their times differ by at most ``delta`` samples (inclusive).
* ``match_counts[i, j]``: the number of spike pairs of ground-truth unit ``i`` and sorted unit ``j``
  that match, each spike used at most once (a maximum one-to-one pairing, computed exactly).
  SpikeInterface counts with a greedy sweep that can count a sorted spike twice when two
  ground-truth spikes of one unit fall within ``2 * delta`` of each other; for trains with a
  refractory period longer than ``2 * delta`` (every train hybridkit injects with the defaults)
  both give the same number.
* ``agreement[i, j] = m / (n_gt_i + n_sorted_j - m)``.
* Hungarian assignment (scipy's ``linear_sum_assignment``) on the agreement matrix with scores
  below ``match_score`` set to 0; only pairs with agreement >= ``match_score`` count as matched.
* Best matches use ``chance_score``; classes of sorted units use ``well_detected_score``,
  ``redundant_score`` and ``overmerged_score`` exactly as SpikeInterface does.

Everything is vectorised: 1M against 1M spikes take about a second.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: SpikeInterface's defaults
MATCH_SCORE = 0.5
CHANCE_SCORE = 0.1
WELL_DETECTED_SCORE = 0.8
REDUNDANT_SCORE = 0.2
OVERMERGED_SCORE = 0.2


def tolerance_samples(tolerance_ms: float, sampling_rate: float) -> int:
    """The match tolerance in samples: ``int(tolerance_ms / 1000 * fs)``, truncated as SpikeInterface does.

    (At 29999.97 Hz, 0.4 ms is 11 samples, not 12.)
    """
    return int(tolerance_ms / 1000 * sampling_rate)


def _unit_index(units: np.ndarray, unit_ids: np.ndarray) -> np.ndarray:
    """(n,) int64 position of each spike's unit in ``unit_ids`` (which must contain them all)."""
    order = np.argsort(unit_ids, kind="stable")
    pos = np.searchsorted(unit_ids[order], units)
    pos = np.clip(pos, 0, max(unit_ids.size - 1, 0))
    if units.size and (unit_ids.size == 0 or np.any(unit_ids[order][pos] != units)):
        missing = np.setdiff1d(units, unit_ids)[:5].tolist()
        raise ValueError(f"spike unit ids {missing} are not in unit_ids")
    return order[pos].astype(np.int64)


def _greedy_pairs(a_times: np.ndarray, b_times: np.ndarray, delta: int) -> int:
    """Maximum one-to-one pairing of two sorted trains within ``delta`` (exact, by a greedy sweep).

    Each ground-truth spike, in time order, takes the earliest unused sorted spike in its window;
    with windows of equal width this is optimal (an interval-scheduling exchange argument).
    """
    used = np.zeros(b_times.size, bool)
    j0, count = 0, 0
    for a in a_times.tolist():
        while j0 < b_times.size and b_times[j0] < a - delta:
            j0 += 1
        j = j0
        while j < b_times.size and b_times[j] <= a + delta:
            if not used[j]:
                used[j] = True
                count += 1
                break
            j += 1
    return count


def match_count_matrix(
    gt_times: np.ndarray, gt_index: np.ndarray, n_gt: int,
    sorted_times: np.ndarray, sorted_index: np.ndarray, n_sorted: int, delta: int,
) -> np.ndarray:
    """(n_gt, n_sorted) int64 numbers of matching spike pairs (each spike paired at most once).

    Args:
        gt_times, sorted_times: (n,) int64 spike samples, any order.
        gt_index, sorted_index: (n,) int64 unit position of each spike (0..n_gt-1 / 0..n_sorted-1).
        delta: tolerance in samples, inclusive.
    """
    counts = np.zeros((n_gt, n_sorted), np.int64)
    if gt_times.size == 0 or sorted_times.size == 0:
        return counts
    oa = np.argsort(gt_times, kind="stable")
    ob = np.argsort(sorted_times, kind="stable")
    at, au = gt_times[oa], gt_index[oa]
    bt, bu = sorted_times[ob], sorted_index[ob]
    lo = np.searchsorted(bt, at - delta, side="left")
    hi = np.searchsorted(bt, at + delta, side="right")
    deg = hi - lo
    total = int(deg.sum())
    if total == 0:
        return counts
    # every (gt spike, sorted spike) pair within the tolerance
    ia = np.repeat(np.arange(at.size, dtype=np.int64), deg)
    starts = np.cumsum(deg) - deg
    ib = lo[ia] + (np.arange(total, dtype=np.int64) - starts[ia])
    code = au[ia] * n_sorted + bu[ib]  # the unit pair of each spike pair

    # Within one unit pair the spike pairs form a bipartite graph whose connected components are
    # runs of consecutive spikes (windows move forward with time). A component with one spike on
    # either side contributes exactly 1; only components with two or more spikes on both sides
    # (spikes closer than 2 * delta within a unit) need the exact sweep, and they are tiny.
    # pairs come out ordered by (ia, ib): a stable sort on the unit pair keeps that order inside it
    order = np.argsort(code, kind="stable")
    code, ia, ib = code[order], ia[order], ib[order]
    new_a = np.r_[True, (code[1:] != code[:-1]) | (ia[1:] != ia[:-1])]
    a_start = np.flatnonzero(new_a)                       # first row of each (unit pair, gt spike)
    a_stop = np.r_[a_start[1:], code.size]
    a_code = code[a_start]
    b_min, b_max = ib[a_start], ib[a_stop - 1]
    # b_max grows with time within a unit pair; lift each unit pair above the previous one so one
    # running maximum never carries over from one unit pair to the next
    pair_seg = np.cumsum(np.r_[True, a_code[1:] != a_code[:-1]]) - 1
    lift = pair_seg * (int(ib.max()) + 1)
    comp_max = np.maximum.accumulate(b_max + lift) - lift
    comp_break = np.r_[True, (a_code[1:] != a_code[:-1]) | (b_min[1:] > comp_max[:-1])]
    comp_of_a = np.cumsum(comp_break) - 1
    n_comp = int(comp_of_a[-1]) + 1
    comp_row = np.repeat(comp_of_a, a_stop - a_start)
    n_a = np.bincount(comp_of_a, minlength=n_comp)
    width = int(ib.max()) + 1
    key = np.sort(comp_row * width + ib)                  # distinct (component, sorted spike)
    distinct_b = np.r_[True, key[1:] != key[:-1]]
    n_b = np.bincount(key[distinct_b] // width, minlength=n_comp)
    value = np.ones(n_comp, np.int64)
    comp_code = a_code[comp_break]
    row_start = np.searchsorted(comp_row, np.arange(n_comp + 1))  # components are row-contiguous
    for c in np.flatnonzero((n_a > 1) & (n_b > 1)):
        rows = slice(row_start[c], row_start[c + 1])
        value[c] = _greedy_pairs(at[np.unique(ia[rows])], bt[np.unique(ib[rows])], delta)
    codes = np.unique(comp_code)
    value = np.bincount(np.searchsorted(codes, comp_code), weights=value, minlength=codes.size)
    value = np.rint(value).astype(np.int64)
    counts.ravel()[codes] = value
    return counts


def agreement_from_counts(match_counts: np.ndarray, n_gt: np.ndarray, n_sorted: np.ndarray) -> np.ndarray:
    """(n_gt, n_sorted) float64 ``m / (n1 + n2 - m)`` (0 where both units are empty)."""
    denom = n_gt[:, None] + n_sorted[None, :] - match_counts
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denom > 0, match_counts / np.where(denom > 0, denom, 1), 0.0)
    return out.astype(np.float64)


def hungarian_match(agreement: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one assignment; (n_gt,) and (n_sorted,) partner positions, -1 when unmatched.

    Scores below ``min_score`` are zeroed before the assignment; assigned pairs below it are dropped.
    """
    from scipy.optimize import linear_sum_assignment

    n1, n2 = agreement.shape
    m12, m21 = np.full(n1, -1, np.int64), np.full(n2, -1, np.int64)
    if n1 == 0 or n2 == 0:
        return m12, m21
    scores = agreement.copy()
    scores[scores < min_score] = 0
    rows, cols = linear_sum_assignment(-scores)
    keep = agreement[rows, cols] >= min_score
    m12[rows[keep]] = cols[keep]
    m21[cols[keep]] = rows[keep]
    return m12, m21


def best_match(agreement: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's highest-agreement partner (first on ties) when >= ``min_score``, else -1."""
    n1, n2 = agreement.shape
    b12, b21 = np.full(n1, -1, np.int64), np.full(n2, -1, np.int64)
    if n1 and n2:
        j = np.argmax(agreement, axis=1)
        ok = agreement[np.arange(n1), j] >= min_score
        b12[ok] = j[ok]
        i = np.argmax(agreement, axis=0)
        ok = agreement[i, np.arange(n2)] >= min_score
        b21[ok] = i[ok]
    return b12, b21


@dataclass
class Comparison:
    """A sorting compared with the ground truth. Positions index ``gt_ids`` / ``sorted_ids``.

    Attributes:
        gt_ids, sorted_ids: (n_gt,), (n_sorted,) int64 unit ids.
        n_gt_spikes, n_sorted_spikes: spikes per unit.
        match_counts: (n_gt, n_sorted) int64 matched spike pairs.
        agreement: (n_gt, n_sorted) float64.
        match_12: (n_gt,) sorted position assigned to each gt unit (Hungarian), -1 if none;
            match_21 the inverse. best_12/best_21: best partner above the chance score.
        tp, fn, fp: (n_gt,) spike counts against the assigned sorted unit (fp = 0, fn = n_gt
            when unmatched).
        accuracy, recall: (n_gt,) float64 (0 when unmatched); precision, false_discovery_rate:
            NaN when unmatched (undefined; SpikeInterface writes 0).
        well_detected, redundant, overmerged, false_positive: (n_sorted,) bool, as SpikeInterface.
        delta: tolerance in samples.
    """

    gt_ids: np.ndarray
    sorted_ids: np.ndarray
    n_gt_spikes: np.ndarray
    n_sorted_spikes: np.ndarray
    match_counts: np.ndarray
    agreement: np.ndarray
    match_12: np.ndarray
    match_21: np.ndarray
    best_12: np.ndarray
    best_21: np.ndarray
    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray
    accuracy: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    false_discovery_rate: np.ndarray
    well_detected: np.ndarray
    redundant: np.ndarray
    overmerged: np.ndarray
    false_positive: np.ndarray
    delta: int

    @property
    def bad(self) -> np.ndarray:
        """(n_sorted,) bool: sorted units with no Hungarian partner (SpikeInterface's "bad")."""
        return self.match_21 < 0

    def category(self) -> list[str]:
        """One label per sorted unit: the first true of well_detected, overmerged, redundant,
        false_positive; else "matched" (assigned, agreement below well_detected_score) or
        "unassigned" (a close second best of a gt unit, neither redundant nor false positive)."""
        out = []
        for j in range(self.sorted_ids.size):
            for name in ("well_detected", "overmerged", "redundant", "false_positive"):
                if getattr(self, name)[j]:
                    out.append(name)
                    break
            else:
                out.append("matched" if self.match_21[j] >= 0 else "unassigned")
        return out


def compare(
    gt_times: np.ndarray, gt_units: np.ndarray, sorted_times: np.ndarray, sorted_units: np.ndarray,
    delta: int, *, gt_ids: np.ndarray | None = None, sorted_ids: np.ndarray | None = None,
    match_score: float = MATCH_SCORE, chance_score: float = CHANCE_SCORE,
    well_detected_score: float = WELL_DETECTED_SCORE, redundant_score: float = REDUNDANT_SCORE,
    overmerged_score: float = OVERMERGED_SCORE,
) -> Comparison:
    """Compare a sorting with the ground truth (see the module docstring for the definitions).

    Args:
        gt_times, sorted_times: (n,) int spike samples on one clock, any order.
        gt_units, sorted_units: (n,) int unit id of each spike.
        delta: tolerance in samples (inclusive); see :func:`tolerance_samples`.
        gt_ids, sorted_ids: all unit ids (units without spikes included); default the ids seen.
    """
    gt_times = np.asarray(gt_times, np.int64).ravel()
    sorted_times = np.asarray(sorted_times, np.int64).ravel()
    gt_units = np.asarray(gt_units, np.int64).ravel()
    sorted_units = np.asarray(sorted_units, np.int64).ravel()
    g_ids = np.unique(gt_units) if gt_ids is None else np.unique(np.asarray(gt_ids, np.int64))
    s_ids = np.unique(sorted_units) if sorted_ids is None else np.unique(np.asarray(sorted_ids, np.int64))
    gi = _unit_index(gt_units, g_ids)
    si = _unit_index(sorted_units, s_ids)
    n1 = np.bincount(gi, minlength=g_ids.size).astype(np.int64)
    n2 = np.bincount(si, minlength=s_ids.size).astype(np.int64)
    counts = match_count_matrix(gt_times, gi, g_ids.size, sorted_times, si, s_ids.size, int(delta))
    agr = agreement_from_counts(counts, n1, n2)
    m12, m21 = hungarian_match(agr, match_score)
    b12, b21 = best_match(agr, chance_score)

    matched = m12 >= 0
    tp = np.where(matched, counts[np.arange(g_ids.size), np.maximum(m12, 0)] if s_ids.size else 0, 0)
    fn = n1 - tp
    fp = np.where(matched, n2[np.maximum(m12, 0)] if s_ids.size else 0, 0) - tp
    keep = matched & (tp > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(keep, tp / np.maximum(tp + fn + fp, 1), 0.0)
        recall = np.where(keep, tp / np.maximum(tp + fn, 1), 0.0)
        precision = np.where(keep, tp / np.maximum(tp + fp, 1), np.nan)
        fdr = np.where(keep, fp / np.maximum(tp + fp, 1), np.nan)
    # a matched pair with no shared spike cannot happen (agreement >= match_score > 0)

    n_s = s_ids.size
    unassigned = m21 < 0
    j = np.arange(n_s)
    well = ~unassigned & (agr[np.maximum(m21, 0), j] >= well_detected_score) if n_s and g_ids.size \
        else np.zeros(n_s, bool)
    best_score = agr[np.maximum(b21, 0), j] if n_s and g_ids.size else np.zeros(n_s)
    has_best = b21 >= 0
    false_pos = unassigned & (~has_best | (best_score < redundant_score))
    is_best_of_best = np.zeros(n_s, bool)
    if n_s and g_ids.size:
        is_best_of_best[has_best] = b12[b21[has_best]] == j[has_best]
    redundant = unassigned & has_best & ~is_best_of_best & (best_score >= redundant_score)
    overmerged = (agr > overmerged_score).sum(axis=0) > 1 if g_ids.size else np.zeros(n_s, bool)

    return Comparison(
        gt_ids=g_ids, sorted_ids=s_ids, n_gt_spikes=n1, n_sorted_spikes=n2, match_counts=counts,
        agreement=agr, match_12=m12, match_21=m21, best_12=b12, best_21=b21,
        tp=tp.astype(np.int64), fn=fn.astype(np.int64), fp=fp.astype(np.int64),
        accuracy=accuracy, recall=recall, precision=precision, false_discovery_rate=fdr,
        well_detected=np.asarray(well, bool), redundant=redundant, overmerged=np.asarray(overmerged, bool),
        false_positive=false_pos, delta=int(delta),
    )


def ordered_agreement(cmp: Comparison) -> tuple[np.ndarray, np.ndarray]:
    """Row and column orders for drawing the agreement matrix with matches on the diagonal.

    Rows by decreasing best agreement; each row then takes its best remaining column, as
    SpikeInterface's ``get_ordered_agreement_scores`` does. Returns (row_order, col_order).
    """
    agr = cmp.agreement
    n1, n2 = agr.shape
    if n1 == 0 or n2 == 0:
        return np.arange(n1), np.arange(n2)
    rows = np.argsort(-agr.max(axis=1), kind="stable")
    taken = np.zeros(n2, bool)
    cols: list[int] = []
    for r in rows:
        free = np.flatnonzero(~taken)
        if free.size == 0:
            break
        c = int(free[np.argmax(agr[r, free])])
        cols.append(c)
        taken[c] = True
    cols.extend(np.flatnonzero(~taken).tolist())
    return rows, np.asarray(cols, np.int64)

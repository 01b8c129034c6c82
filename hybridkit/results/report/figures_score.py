"""Score figures of the report: accuracy, agreement, SNR, matched waveforms, where spikes went.

Inputs are the rows of a ``score.json`` (or arrays derived from them); each function returns a
matplotlib Figure.
"""
from __future__ import annotations

import numpy as np

from hybridkit.results.report.figures import new_figure


def accuracy_figure(rows: list[dict]):
    """Accuracy, recall and precision of each ground-truth unit (grouped bars)."""
    # at most the page's width: past ~20 units the bars get thinner and the labels sparser
    fig = new_figure(min(max(5.0, 0.5 * len(rows) + 2), 11.0), 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    for k, (key, c) in enumerate((("accuracy", "tab:blue"), ("recall", "tab:green"), ("precision", "tab:orange"))):
        vals = [r[key] if r[key] is not None else 0.0 for r in rows]
        ax.bar(x + (k - 1) * 0.27, vals, width=0.27, color=c, label=key)
    step = 1 if len(rows) <= 30 else int(np.ceil(len(rows) / 30))
    ax.set_xticks(x[::step], [str(r["gt_unit"]) for r in rows][::step], fontsize=7)
    ax.set_xlabel("ground-truth unit")
    ax.set_ylim(0, 1.0)
    # above the axes: inside, a legend hides the bars of some unit whatever corner it takes
    ax.legend(fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


def agreement_figure(matrix: np.ndarray, gt_ids: list, sorted_ids: list):
    """The agreement matrix (rows ground-truth units, columns sorted units), already ordered."""
    n1, n2 = matrix.shape
    fig = new_figure(min(2.5 + 0.35 * n2, 14.0), min(2.0 + 0.35 * n1, 10.0))
    ax = fig.add_subplot()
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="auto", interpolation="nearest")
    ax.set_yticks(np.arange(n1), [str(u) for u in gt_ids], fontsize=7)
    ax.set_xticks(np.arange(n2), [str(u) for u in sorted_ids], fontsize=7, rotation=90)
    if n1 * n2 <= 400:
        for i in range(n1):
            for j in range(n2):
                if matrix[i, j] >= 0.01:
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="w" if matrix[i, j] < 0.6 else "k")
    ax.set_ylabel("ground-truth unit")
    ax.set_xlabel("sorted unit")
    fig.colorbar(im, ax=ax, label="agreement")
    return fig


def snr_figure(rows: list[dict]):
    """Accuracy against SNR, one point per ground-truth unit."""
    fig = new_figure(5.0, 3.6)
    ax = fig.add_subplot()
    pts = [(r["snr"], r["accuracy"], r["gt_unit"]) for r in rows if r.get("snr") is not None]
    if pts:
        snr, acc, ids = zip(*pts)
        ax.scatter(snr, acc, s=25, color="tab:blue")
        for s, a, u in pts:
            ax.annotate(str(u), (s, a), xytext=(3, 3), textcoords="offset points", fontsize=7)
    else:
        ax.text(0.5, 0.5, "SNR not stored (an output of an older hybridkit)", ha="center",
                va="center", transform=ax.transAxes)
    ax.set_xlabel("SNR (peak amplitude x mean gain / noise std)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.05, 1.05)
    return fig


def matched_waveforms_figure(panels: list[dict], fs: float):
    """Per ground-truth unit: its template x mean gain (black) and the matched sorted unit's mean
    hybrid waveform at the sorted unit's spikes (colour), on the template's strongest channels.

    Each panel: ``title``, ``template`` (n_t, n_ch) uV, ``sorted`` (n_t, n_ch) uV or None,
    ``peak_index``, ``channels`` (n_ch,) channel numbers; channels are drawn side by side.
    """
    n_cols = min(len(panels), 4)
    n_rows = -(-len(panels) // n_cols)
    fig = new_figure(11.0, 2.1 * n_rows + 0.2)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False).ravel())
    for ax, p in zip(axes, panels):
        tpl = p["template"]
        n_t, n_ch = tpl.shape
        t = (np.arange(n_t) - p["peak_index"]) * 1000.0 / fs
        span = float(t[-1] - t[0]) + 1000.0 / fs
        gap = np.full((1, n_ch), np.nan)
        x = np.vstack([t[:, None] + np.arange(n_ch)[None, :] * span * 1.1, gap]).T.ravel()
        if p["sorted"] is not None:
            obs = p["sorted"] - np.median(p["sorted"], axis=0)
            ax.plot(x, np.vstack([obs, gap]).T.ravel(), color="tab:red", lw=1.4, alpha=0.8)
        ax.plot(x, np.vstack([tpl, gap]).T.ravel(), color="k", lw=0.8)
        ax.set_xticks(np.arange(n_ch) * span * 1.1, [f"ch {c}" for c in p["channels"]], fontsize=6)
        ax.tick_params(labelsize=6)
        ax.set_title(p["title"], fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    axes[0].set_ylabel("uV", fontsize=7)
    axes[0].plot([], [], color="k", label="injected template x mean gain")
    axes[0].plot([], [], color="tab:red", label="matched sorted unit, mean")
    axes[0].legend(fontsize=6, loc="lower right")
    return fig


def spike_fate_figure(rows: list[dict]):
    """Where each not-well-detected unit's spikes went: one 100 % bar per unit, split by sorted unit.

    Each row: ``gt_unit``, ``n_gt_spikes``, ``parts`` [(sorted unit, spikes)] largest first,
    ``other`` spikes taken by further sorted units, ``unmatched``; they add up to the unit's spikes.
    """
    fig = new_figure(9.0, 1.0 + 0.42 * max(len(rows), 1))
    ax = fig.add_subplot()
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]
    for y, r in enumerate(rows):
        n = max(r["n_gt_spikes"], 1)
        left = 0.0
        segments = [(f"{sid}", m, palette[k % len(palette)]) for k, (sid, m) in enumerate(r["parts"])]
        segments += [("other", r["other"], "0.45"), ("missed", r["unmatched"], "0.85")]
        for label, m, c in segments:
            w = 100.0 * m / n
            if w <= 0:
                continue
            ax.barh(y, w, left=left, color=c, edgecolor="w")
            if w >= 7:
                ax.text(left + w / 2, y, f"{label} {w:.0f}%", ha="center", va="center", fontsize=7,
                        color="k" if c == "0.85" else "w")
            left += w
    ax.set_yticks(np.arange(len(rows)), [f"{r['gt_unit']}" for r in rows], fontsize=7)
    ax.set_ylabel("ground-truth unit")
    ax.set_xlabel("% of the unit's spikes, by the sorted unit that took them (bar labels: sorted unit id)")
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    return fig

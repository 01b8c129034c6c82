"""The report's figures: matplotlib ``Figure`` objects (no pyplot state), rendered to PNG.

Every function takes plain arrays or the loaded truth and returns a Figure; nothing here reads
files. Amplitudes are microvolts, times seconds or milliseconds as the axis labels say.
"""
from __future__ import annotations

import base64
import io

import numpy as np

#: waveform drawing on the probe layout: one template sample spans this many um horizontally
_UM_PER_SAMPLE = 0.15


def colors(n: int) -> list:
    """``n`` distinguishable colours (tab10, then tab20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def to_png_b64(fig) -> str:
    """The figure as a base64 PNG string (for a data: URL)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def probe_figure(positions: np.ndarray, units: list[int], injected: dict, source: dict, labels: dict):
    """Contacts (grey) with each unit's source place (open) and injected place (filled), arrows between.

    ``positions`` (n, 2) um (NaN rows skipped); ``injected``/``source``: unit -> (2,) um.
    """
    fig = new_figure(4.5, 8.0)
    ax = fig.add_subplot()
    ok = np.all(np.isfinite(positions), axis=1) if positions is not None else None
    if ok is not None and ok.any():
        ax.scatter(positions[ok, 0], positions[ok, 1], marker="s", s=6, color="0.8", label="contacts")
    for c, u in zip(colors(len(units)), units):
        x1, y1 = injected[u]
        ax.scatter([x1], [y1], s=60, color=c, edgecolor="k", zorder=3)
        ax.annotate(labels.get(u, str(u)), (x1, y1), xytext=(6, 0), textcoords="offset points",
                    fontsize=8, va="center")
        if u in source:
            x0, y0 = source[u]
            ax.scatter([x0], [y0], s=60, facecolor="none", edgecolor=c, linewidth=1.5, zorder=3)
            ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color=c, lw=1))
    ax.scatter([], [], s=60, facecolor="none", edgecolor="k", label="source place")
    ax.scatter([], [], s=60, color="0.5", edgecolor="k", label="injected place")
    ax.set_xlabel("x (um)")
    ax.set_ylabel("y (um)")
    ax.legend(loc="upper left", fontsize=7, framealpha=0.8)
    ax.set_title("probe: source and injected unit positions", fontsize=10)
    return fig


def _draw_on_layout(ax, wf: np.ndarray, pos: np.ndarray, scale: float, peak_index: int, **kw) -> None:
    """Draw (n_t, n_ch) ``wf`` with each channel's trace at its contact position ``pos`` (n_ch, 2)."""
    t = (np.arange(wf.shape[0]) - peak_index) * _UM_PER_SAMPLE
    # one line with NaN breaks instead of one line per channel: drawing is several times faster
    x = np.vstack([pos[:, 0][None, :] + t[:, None], np.full((1, wf.shape[1]), np.nan)])
    y = np.vstack([pos[:, 1][None, :] + wf * scale, np.full((1, wf.shape[1]), np.nan)])
    ax.plot(x.T.ravel(), y.T.ravel(), **kw)


def template_figure(titles: tuple[str, str, str], template, positions: np.ndarray,
                    shift: np.ndarray | None, observed_injected: np.ndarray | None,
                    observed_source: np.ndarray | None, color):
    """Two panels on the probe layout: the source unit at its place, the injected copy at its own.

    ``titles`` = (figure, source panel, injected panel).
    ``template`` is the placed Template (uV); ``positions`` (n_channels, 2); ``shift`` the (dx, dy)
    from source to injected place; ``observed_*`` are mean hybrid waveforms on the same channels
    (at the injected events / the source unit's spikes), or None.
    """
    fig = new_figure(7.0, 4.2)
    axes = fig.subplots(1, 2, sharey=False)
    wf = template.waveform
    pos = positions[template.channels]
    span = float(np.ptp(pos[:, 1])) if pos.shape[0] > 1 else 40.0
    scale = 0.35 * max(span, 40.0) / max(float(np.abs(wf).max()), 1e-6) / 2
    places = [(titles[1], pos - (shift if shift is not None else 0), observed_source),
              (titles[2], pos, observed_injected)]
    for ax, (title, p, observed) in zip(axes, places):
        near = np.all(np.isfinite(positions), axis=1)
        centre = p[np.argmax(np.abs(wf).max(axis=0))]
        box = near & (np.abs(positions[:, 1] - centre[1]) < span / 2 + 60)
        ax.scatter(positions[box, 0], positions[box, 1], marker="s", s=14, color="0.88", zorder=0)
        if observed is not None and np.all(np.isfinite(observed)):
            c = color if observed is observed_injected else "0.5"
            _draw_on_layout(ax, observed, p, scale, template.peak_index, color=c, lw=1.6, alpha=0.8)
        _draw_on_layout(ax, wf, p, scale, template.peak_index, color="k", lw=0.7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (um)")
        ax.set_ylabel("y (um)")
    axes[0].plot([], [], color="k", label="template")
    if observed_source is not None:
        axes[0].plot([], [], color="0.5", label="source unit mean")
        axes[0].legend(fontsize=7, loc="lower right")
    axes[1].plot([], [], color="k", label="template")
    if observed_injected is not None:
        axes[1].plot([], [], color=color, label="hybrid mean")
    axes[1].legend(fontsize=7, loc="lower right")
    bar = 100.0
    axes[0].text(0.02, 0.02, f"scale: {bar:.0f} uV = {bar * scale:.0f} um", transform=axes[0].transAxes,
                 fontsize=7)
    fig.suptitle(titles[0], fontsize=10)
    return fig


def traces_figure(panels: list[dict], fs: float):
    """Hybrid traces around injected events, one panel each, with the injected waveform overlaid.

    Each panel: ``data`` (n_t, n_ch) uV hybrid, ``injected`` (n_t, n_ch) uV added, ``channels``
    and ``ys`` (n_ch,) channel numbers and contact depths (um), ``t0`` first sample, ``events`` [(sample, unit, colour)], ``title``.
    """
    fig = new_figure(3.2 * max(len(panels), 1), 5.5)
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1), squeeze=False)[0])
    for ax, p in zip(axes, panels):
        n_t, n_ch = p["data"].shape
        t = (p["t0"] + np.arange(n_t)) / fs * 1000.0
        spacing = max(float(np.percentile(np.ptp(p["data"], axis=0), 75)), 20.0)
        base = np.arange(n_ch) * spacing
        gap = np.full((1, n_ch), np.nan)
        tt = np.vstack([np.repeat(t[:, None], n_ch, axis=1), gap]).T.ravel()
        data = p["data"] - np.median(p["data"], axis=0) + base
        ax.plot(tt, np.vstack([data, gap]).T.ravel(), color="0.25", lw=0.6)
        inj = np.where(p["injected"] != 0, p["injected"] + base, np.nan)
        ax.plot(tt, np.vstack([inj, gap]).T.ravel(), color=p["color"], lw=0.9, alpha=0.9)
        for s, unit, c in p["events"]:
            ax.axvline(s / fs * 1000.0, color=c, lw=0.8, ls="--")
        ax.set_yticks(base, [f"ch {c} ({y:.0f})" for c, y in zip(p["channels"], p["ys"])], fontsize=6)
        ax.set_xlabel("time (ms)")
        ax.set_title(p["title"], fontsize=9)
    axes[0].set_ylabel("channel (contact y, um)")
    return fig


def raster_figure(times_s: dict, units: list[int], duration_s: float, labels: dict):
    """Raster (top) and firing rate in 1-s bins (bottom) of each injected unit."""
    fig = new_figure(9.0, 2.0 + 0.35 * len(units) + 2.2)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[max(len(units), 1) * 0.35 + 0.5, 2.0])
    width = 1.0 if duration_s >= 10 else duration_s / 10
    bins = np.arange(0, duration_s + width, width)
    for row, (c, u) in enumerate(zip(colors(len(units)), units)):
        t = times_s[u]
        top.vlines(t, row + 0.6, row + 1.4, color=c, lw=0.5)
        counts, _ = np.histogram(t, bins)
        bottom.step(bins[:-1], counts / width, where="post", color=c, lw=1, label=labels.get(u, str(u)))
    top.set_yticks(np.arange(1, len(units) + 1))
    top.set_yticklabels([str(u) for u in units], fontsize=7)
    top.set_ylabel("injected unit")
    top.set_ylim(0.4, len(units) + 0.6)
    bottom.set_ylabel(f"rate (Hz, {width:g}-s bins)")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, duration_s)
    if len(units) <= 12:
        bottom.legend(fontsize=7, ncol=min(len(units), 6), loc="upper right")
    return fig


def gains_figure(times_s: dict, gains: dict, units: list[int]):
    """Per-event amplitude gain against time (left) and its distribution per unit (right)."""
    fig = new_figure(9.0, 3.2)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    cs = colors(len(units))
    for c, u in zip(cs, units):
        left.scatter(times_s[u], gains[u], s=4, color=c)
    data = [gains[u] for u in units]
    if data:
        parts = right.boxplot(data, patch_artist=True, widths=0.6)
        for patch, c in zip(parts["boxes"], cs):
            patch.set_facecolor(c)
        right.set_xticks(np.arange(1, len(units) + 1), [str(u) for u in units], fontsize=7)
    left.set_xlabel("time (s)")
    left.set_ylabel("amplitude gain")
    right.set_xlabel("injected unit")
    right.set_ylabel("amplitude gain")
    return fig


def clipped_figure(clipped: dict[int, int] | None, positions: np.ndarray | None):
    """Clipped (saturated) samples per channel; an explicit 'none' panel when nothing clipped."""
    fig = new_figure(9.0, 2.4)
    ax = fig.add_subplot()
    if clipped:
        ch = np.array(sorted(clipped))
        ax.bar(ch, [clipped[c] for c in ch], color="tab:red", width=1.0)
        ax.set_xlabel("channel (file column)")
        ax.set_ylabel("clipped samples")
    else:
        msg = "no sample clipped" if clipped is not None else "clipped-sample counts not recorded in this output"
        ax.text(0.5, 0.5, msg, ha="center", va="center", transform=ax.transAxes, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title("samples saturated at the dtype's limits, per channel", fontsize=9)
    return fig


def accuracy_figure(rows: list[dict]):
    """Accuracy, recall and precision of each ground-truth unit (grouped bars)."""
    fig = new_figure(max(5.0, 0.5 * len(rows) + 2), 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    for k, (key, c) in enumerate((("accuracy", "tab:blue"), ("recall", "tab:green"), ("precision", "tab:orange"))):
        vals = [r[key] if r[key] is not None else 0.0 for r in rows]
        ax.bar(x + (k - 1) * 0.27, vals, width=0.27, color=c, label=key)
    ax.set_xticks(x, [str(r["gt_unit"]) for r in rows], fontsize=7)
    ax.set_xlabel("ground-truth unit")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=3, loc="lower right")
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
        ax.text(0.5, 0.5, "SNR unavailable (hybrid recording not readable)", ha="center",
                va="center", transform=ax.transAxes)
    ax.set_xlabel("SNR (peak amplitude x mean gain / noise std)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.05, 1.05)
    return fig

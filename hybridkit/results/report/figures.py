"""The report's figures: matplotlib ``Figure`` objects (no pyplot state), rendered to PNG.

Every function takes plain arrays or the loaded truth and returns a Figure; nothing here reads
files. Amplitudes are microvolts, times seconds or milliseconds as the axis labels say.
"""
from __future__ import annotations

import base64
import io

import numpy as np

#: waveform drawing on the probe layout: one template sample spans at most this many um horizontally
_UM_PER_SAMPLE = 0.15
#: ... and a whole template at most this fraction of the horizontal gap between contact columns
_WIDTH_OF_GAP = 0.85


def colors(n: int) -> list:
    """``n`` distinguishable colours (tab10, then tab20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def new_figure(width: float, height: float, constrained: bool = True):
    """A Figure of ``width`` x ``height`` inches at 100 dpi; ``constrained=False`` for figures that
    place their axes themselves (constrained layout measures every tick label: on a page with
    a hundred figures it is half of the build time)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained" if constrained else None)


def to_png_b64(fig) -> str:
    """The figure as a base64 PNG string (for a data: URL), in 256 colours.

    Plots use a few flat colours plus their antialiasing; an adaptive 256-colour palette keeps
    them as they look and makes the file 2-3x smaller than 24-bit RGB.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    buf = io.BytesIO()
    rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, format="PNG", optimize=True)
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
    # units sharing a place get one label (ids only when there are many): no text over text
    at: dict[tuple, list[int]] = {}
    for u in units:
        at.setdefault(tuple(np.round(np.asarray(injected[u], float), 1)), []).append(u)
    for (x1, y1), us in at.items():
        text = labels.get(us[0], str(us[0])) if len(us) == 1 and len(units) <= 12 else \
            ", ".join(map(str, us))
        ax.annotate(text, (x1, y1), xytext=(6, 0), textcoords="offset points", fontsize=7, va="center")
    for c, u in zip(colors(len(units)), units):
        x1, y1 = injected[u]
        ax.scatter([x1], [y1], s=60, color=c, edgecolor="k", zorder=3)
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


def um_per_sample(positions: np.ndarray, n_times: int) -> float:
    """Horizontal scale that keeps a template of ``n_times`` samples inside its contact's column.

    A long template (8 ms from the template database) drawn at the fixed scale would run into the
    next column; the smallest x gap between the contacts' columns bounds its width.
    """
    xs = np.unique(np.round(positions[np.all(np.isfinite(positions), axis=1), 0], 3))
    gap = float(np.diff(xs).min()) if xs.size > 1 else 40.0
    return min(_UM_PER_SAMPLE, _WIDTH_OF_GAP * gap / max(n_times, 1))


def _draw_on_layout(ax, wf: np.ndarray, pos: np.ndarray, scale: float, peak_index: int,
                    um_per_sample: float, **kw) -> None:
    """Draw (n_t, n_ch) ``wf`` with each channel's trace at its contact position ``pos`` (n_ch, 2)."""
    t = (np.arange(wf.shape[0]) - peak_index) * um_per_sample
    # one line with NaN breaks instead of one line per channel: drawing is several times faster
    x = np.vstack([pos[:, 0][None, :] + t[:, None], np.full((1, wf.shape[1]), np.nan)])
    y = np.vstack([pos[:, 1][None, :] + wf * scale, np.full((1, wf.shape[1]), np.nan)])
    ax.plot(x.T.ravel(), y.T.ravel(), **kw)


def template_figure(titles: tuple[str, str | None, str], template, positions: np.ndarray,
                    shift: np.ndarray | None, observed_injected: np.ndarray | None,
                    observed_source: np.ndarray | None, color):
    """The injected copy at its place (right) beside the source unit at its own place (left).

    ``titles`` = (figure, source panel, injected panel); a source panel title of None (a database
    or synthetic template: no source unit on this probe) or no ``shift`` draws the injected
    panel alone. ``template`` is the placed Template (uV); ``positions`` (n_channels, 2);
    ``shift`` the (dx, dy) from source to injected place; ``observed_*`` are mean hybrid
    waveforms on the same channels (at the injected events / the source unit's spikes), or None.
    """
    with_source = titles[1] is not None and shift is not None
    fig = new_figure(7.0 if with_source else 3.8, 4.2, constrained=False)
    axes = np.atleast_1d(fig.subplots(1, 2 if with_source else 1, squeeze=False)[0])
    fig.subplots_adjust(left=0.12 if with_source else 0.2, right=0.98, bottom=0.11, top=0.84, wspace=0.3)
    wf = template.waveform
    pos = positions[template.channels]
    span = float(np.ptp(pos[:, 1])) if pos.shape[0] > 1 else 40.0
    scale = 0.35 * max(span, 40.0) / max(float(np.abs(wf).max()), 1e-6) / 2
    ups = um_per_sample(positions, wf.shape[0])
    places = [(titles[2], pos, observed_injected)]
    if with_source:
        places.insert(0, (titles[1], pos - shift, observed_source))
    for ax, (title, p, observed) in zip(axes, places):
        near = np.all(np.isfinite(positions), axis=1)
        centre = p[np.argmax(np.abs(wf).max(axis=0))]
        box = near & (np.abs(positions[:, 1] - centre[1]) < span / 2 + 60)
        ax.scatter(positions[box, 0], positions[box, 1], marker="s", s=14, color="0.88", zorder=0)
        if observed is not None and np.all(np.isfinite(observed)):
            c = color if observed is observed_injected else "0.5"
            _draw_on_layout(ax, observed, p, scale, template.peak_index, ups, color=c, lw=1.6, alpha=0.8)
        _draw_on_layout(ax, wf, p, scale, template.peak_index, ups, color="k", lw=0.7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (um)")
        ax.set_ylabel("y (um)")
    if with_source:
        axes[0].plot([], [], color="k", label="template")
        if observed_source is not None:
            axes[0].plot([], [], color="0.5", label="source unit mean")
            axes[0].legend(fontsize=7, loc="lower right")
    axes[-1].plot([], [], color="k", label="template")
    if observed_injected is not None:
        axes[-1].plot([], [], color=color, label="hybrid mean")
    axes[-1].legend(fontsize=7, loc="lower right")
    # the scale goes under the title: inside an axes it collides with the legend
    fig.suptitle(f"{titles[0]}\nscale: 100 uV = {100 * scale:.0f} um; "
                 f"{wf.shape[0]} samples = {wf.shape[0] * ups:.0f} um", fontsize=9)
    return fig


def traces_figure(panels: list[dict], fs: float):
    """Hybrid traces around injected events, one panel each, with the injected waveform overlaid.

    Each panel: ``data`` (n_t, n_ch) uV hybrid, ``injected`` (n_t, n_ch) uV added, ``channels``
    and ``ys`` (n_ch,) channel numbers and contact depths (um), ``t0`` first sample, ``centre``
    the panel's event sample (time 0 of its axis, so no axis needs an offset), ``events``
    [(sample, unit, colour)] of the injected events whose templates reach the drawn channels,
    ``title``.
    """
    fig = new_figure(2.7 * max(len(panels), 1), 5.5)
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1), squeeze=False)[0])
    for ax, p in zip(axes, panels):
        n_t, n_ch = p["data"].shape
        t = (p["t0"] + np.arange(n_t) - p["centre"]) / fs * 1000.0
        spacing = max(float(np.percentile(np.ptp(p["data"], axis=0), 75)), 20.0)
        base = np.arange(n_ch) * spacing
        gap = np.full((1, n_ch), np.nan)
        tt = np.vstack([np.repeat(t[:, None], n_ch, axis=1), gap]).T.ravel()
        data = p["data"] - np.median(p["data"], axis=0) + base
        ax.plot(tt, np.vstack([data, gap]).T.ravel(), color="0.25", lw=0.6)
        inj = np.where(p["injected"] != 0, p["injected"] + base, np.nan)
        ax.plot(tt, np.vstack([inj, gap]).T.ravel(), color=p["color"], lw=0.9, alpha=0.9)
        for s, unit, c in p["events"]:
            ax.axvline((s - p["centre"]) / fs * 1000.0, color=c, lw=0.8, ls="--")
        ax.set_yticks(base, [f"ch {c} ({y:.0f})" for c, y in zip(p["channels"], p["ys"])], fontsize=6)
        ax.set_xlabel("time from event (ms)")
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(p["title"], fontsize=8)
    axes[0].set_ylabel("channel (contact y, um)")
    return fig


def raster_figure(times_s: dict, units: list[int], duration_s: float, labels: dict,
                  shown_s: dict | None = None):
    """Raster (top) and firing rate (bottom) of each injected unit.

    ``times_s``: unit -> all event times (s), for the rates; ``shown_s``: the events drawn in the
    raster (a subsample on a long run), default all. Rates are in 1-s bins (wider past 2000 s);
    with more than 12 units they are a heat map (unit x time), which stays readable.
    """
    shown_s = times_s if shown_s is None else shown_s
    n = max(len(units), 1)
    row_in = 0.35 if n <= 12 else 0.14
    many = n > 12
    rate_in = 2.0 if not many else max(2.0, 0.08 * n)
    fig = new_figure(9.0, row_in * n + 0.5 + rate_in + 0.8)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[row_in * n + 0.5, rate_in])
    width = 1.0 if duration_s >= 10 else duration_s / 10
    if duration_s > 2000:  # an hour: 2-s bins, at most ~2000 per unit
        width = float(np.ceil(duration_s / 2000))
    bins = np.arange(0, duration_s + width, width)
    rates = np.zeros((n, bins.size - 1))
    for row, (c, u) in enumerate(zip(colors(len(units)), units)):
        top.vlines(shown_s[u], row + 0.6, row + 1.4, color=c, lw=0.5)
        rates[row] = np.histogram(times_s[u], bins)[0] / width
        if not many:
            bottom.step(bins[:-1], rates[row], where="post", color=c, lw=1, label=labels.get(u, str(u)))
    step = 1 if n <= 20 else int(np.ceil(n / 20))
    top.set_yticks(np.arange(1, n + 1)[::step], [str(u) for u in units][::step], fontsize=7)
    top.set_ylabel("injected unit")
    top.set_ylim(0.4, n + 0.6)
    if many:
        im = bottom.imshow(rates, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                           extent=(0, bins[-1], 0.5, n + 0.5))
        bottom.set_yticks(np.arange(1, n + 1)[::step], [str(u) for u in units][::step], fontsize=6)
        bottom.set_ylabel("injected unit")
        fig.colorbar(im, ax=bottom, label=f"rate (Hz, {width:g}-s bins)", fraction=0.03, pad=0.01)
    else:
        bottom.set_ylabel(f"rate (Hz, {width:g}-s bins)")
        bottom.legend(fontsize=7, ncol=min(len(units), 6), loc="upper right")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, duration_s)
    return fig


def gains_figure(times_s: dict, gains: dict, units: list[int], all_gains: dict | None = None):
    """Per-event amplitude gain against time (left) and its distribution per unit (right).

    ``times_s``/``gains``: unit -> the events drawn in the scatter; ``all_gains``: unit -> every
    event's gain, for the box plots (default ``gains``).
    """
    all_gains = gains if all_gains is None else all_gains
    fig = new_figure(9.0, 3.2)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    cs = colors(len(units))
    for c, u in zip(cs, units):
        left.scatter(times_s[u], gains[u], s=4, color=c)
    data = [all_gains[u] for u in units]
    if data:
        parts = right.boxplot(data, patch_artist=True, widths=0.6)
        for patch, c in zip(parts["boxes"], cs):
            patch.set_facecolor(c)
        step = int(np.ceil(len(units) / 12))
        right.set_xticks(np.arange(1, len(units) + 1)[::step], [str(u) for u in units][::step], fontsize=7)
    left.set_xlabel("time (s)")
    left.set_ylabel("amplitude gain")
    right.set_xlabel("injected unit")
    right.set_ylabel("amplitude gain")
    return fig


def clipped_figure(clipped: dict[int, int]):
    """Clipped (saturated) samples per channel (only drawn when some sample clipped)."""
    fig = new_figure(9.0, 2.4)
    ax = fig.add_subplot()
    ch = np.array(sorted(clipped))
    ax.bar(ch, [clipped[c] for c in ch], color="tab:red", width=1.0)
    ax.set_xlabel("channel (file column)")
    ax.set_ylabel("clipped samples")
    ax.set_title("samples saturated at the dtype's limits, per channel", fontsize=9)
    return fig

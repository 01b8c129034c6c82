"""The study report's figures: matplotlib ``Figure`` objects from the study's tidy tables.

Every function takes rows (dicts of one table) and returns a Figure; nothing here reads files.
Accuracy is SpikeInterface's tp / (tp + fn + fp), 0-1; SNR is the score's (peak amplitude x mean
gain / noise std).
"""
from __future__ import annotations

import numpy as np

from hybridkit.results.report.figures import colors, new_figure

#: counts shown per sorter (sorters table columns) and their labels
COUNTS = (("n_well_detected", "well detected"), ("n_false_positive", "false positive"),
          ("n_redundant", "redundant"), ("n_overmerged", "overmerged"))


def accuracy_snr_figure(units: list[dict], sorters: list[str]):
    """One panel per sorter: accuracy of every ground-truth unit of every dataset against its SNR."""
    fig = new_figure(min(3.6 * len(sorters) + 0.5, 14.0), 3.4)
    axes = fig.subplots(1, len(sorters), sharey=True, squeeze=False)[0]
    for ax, sorter, c in zip(axes, sorters, colors(len(sorters))):
        pts = [(r["snr"], r["accuracy"]) for r in units
               if r["sorter"] == sorter and r["snr"] is not None and r["accuracy"] is not None]
        if pts:
            snr, acc = np.array(pts, float).T
            ax.scatter(snr, acc, s=14, color=c, alpha=0.7)
        else:
            ax.text(0.5, 0.5, "no unit with an SNR", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{sorter} ({len(pts)} units)", fontsize=9)
        ax.set_xlabel("SNR")
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("accuracy")
    return fig


def parameter_figure(units: list[dict], sorters: list[str], key: str, values: list):
    """Mean accuracy (over ground-truth units) of each sorter at each value of grid key ``key``;
    ``values`` in grid order. Error bars: standard deviation over units."""
    fig = new_figure(max(4.5, 0.8 * len(values) + 2.5), 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(values))
    width = 0.8 / max(len(sorters), 1)
    for k, (sorter, c) in enumerate(zip(sorters, colors(len(sorters)))):
        means, stds = [], []
        for v in values:
            acc = [r["accuracy"] for r in units if r["sorter"] == sorter and r[key] == v
                   and r["accuracy"] is not None]
            means.append(np.mean(acc) if acc else np.nan)
            stds.append(np.std(acc) if acc else 0.0)
        ax.bar(x + (k - (len(sorters) - 1) / 2) * width, np.nan_to_num(means), width=width,
               yerr=stds, color=c, label=sorter, capsize=2)
    ax.set_xticks(x, [str(v) for v in values], fontsize=8)
    ax.set_xlabel(key)
    ax.set_ylabel("mean accuracy")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=7, ncol=min(len(sorters), 4), loc="upper right")
    return fig


def counts_figure(summaries: list[dict], sorters: list[str]):
    """Per sorter, the well-detected, false-positive, redundant and overmerged units summed over
    the datasets scored."""
    fig = new_figure(max(4.5, 1.2 * len(sorters) + 2.5), 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(sorters))
    width = 0.8 / len(COUNTS)
    for k, ((col, label), c) in enumerate(zip(COUNTS, colors(len(COUNTS)))):
        vals = [sum(r[col] or 0 for r in summaries if r["sorter"] == s and r["status"] == "scored")
                for s in sorters]
        ax.bar(x + (k - (len(COUNTS) - 1) / 2) * width, vals, width=width, color=c, label=label)
    ax.set_xticks(x, sorters, fontsize=8)
    ax.set_ylabel("units (all datasets)")
    ax.legend(fontsize=7, ncol=2)
    return fig

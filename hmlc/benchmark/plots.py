"""The benchmark figures: the cross-dataset heatmap and the suite's bar chart against published figures.

Drawn like the evaluation's figures (:mod:`hmlc.evaluation.plots`): matplotlib's
object API on the Agg canvas, no global state, no display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from hmlc.evaluation.plots import _png

__all__ = ["heatmap_png", "suite_png"]


def heatmap_png(values: np.ndarray, rows: Sequence[str], columns: Sequence[str], title: str) -> bytes:
    """A rows x columns heatmap of ``values`` (NaN: not scored yet, drawn blank), each cell labelled."""
    fig = Figure(figsize=(1.6 + 1.3 * len(columns), 1.2 + 0.6 * len(rows)))
    ax = fig.add_subplot(1, 1, 1)
    shown = np.ma.masked_invalid(np.asarray(values, dtype=float))
    image = ax.imshow(shown, cmap="viridis", vmin=0.5, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("trained in")
    for i in range(len(rows)):
        for j in range(len(columns)):
            v = values[i, j]
            ax.text(j, i, "-" if math.isnan(v) else f"{v:.3f}", ha="center", va="center",
                    color="white" if not math.isnan(v) and v < 0.8 else "black", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.05)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def suite_png(
    datasets: Sequence[str], methods: Sequence[str], ours: dict[str, dict[str, float]],
    reference: dict[str, float], reference_name: str, metric: str,
) -> bytes:
    """Grouped bars per dataset: each method's score (``ours[dataset][method]``) and the published figure."""
    fig = Figure(figsize=(max(5.0, 1.0 + 0.9 * len(datasets) * (len(methods) + 1) / 2), 3.8))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / (len(methods) + 1)
    x = np.arange(len(datasets))
    for k, method in enumerate(methods):
        heights = [ours.get(d, {}).get(method, math.nan) for d in datasets]
        ax.bar(x + k * width, np.nan_to_num(heights), width, label=method)
    ax.bar(x + len(methods) * width, [reference.get(d, 0.0) for d in datasets], width, label=reference_name,
           color="#888888")
    ax.set_xticks(x + width * len(methods) / 2, labels=list(datasets), rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)

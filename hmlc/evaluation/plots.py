"""PNG figures of an evaluation: one ROC curve per label with readers and operating points, the
precision-recall curves and reliability diagrams of all labels, the pooled reliability diagram.

Figures are drawn with matplotlib's object API on the Agg canvas, so nothing
touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hmlc.evaluation.calibration import ReliabilityBins
from hmlc.evaluation.evaluator import LabelResult

__all__ = [
    "roc_png", "reliability_png", "pr_curves_png", "label_reliability_png",
    "CURVE_COLOR", "BELOW_COLOR", "ABOVE_COLOR", "THRESHOLD_COLOR",
]

CURVE_COLOR = "#1f5fbf"
COMPARE_COLOR = "#888888"
BELOW_COLOR = "#d62728"  # reader below the curve
ABOVE_COLOR = "#2ca02c"  # reader on or above it
THRESHOLD_COLOR = "#ff7f0e"  # the model's operating thresholds
_GRID_COLUMNS = 4
#: The most panels of a per-label grid: beyond, the first ones are drawn and the title says so.
MAX_PANELS = 48


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    return buffer.getvalue()


def roc_png(result: LabelResult, compare_name: str = "compared") -> bytes:
    """The label's ROC curve, its AUC and CI, readers' operating points, and the compared curve."""
    fig = Figure(figsize=(4.2, 4.2))
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.92)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#cccccc", linewidth=0.8, linestyle=":")
    if result.compare_roc is not None and result.delong is not None:
        fpr, tpr = result.compare_roc
        ax.plot(fpr, tpr, color=COMPARE_COLOR, linewidth=1.2, linestyle="--",
                label=f"{compare_name} (AUC {result.delong.other_auc:.3f})")
    if result.roc is not None:
        fpr, tpr = result.roc
        lo, hi = result.auc_ci
        ci = "" if np.isnan(lo) else f" [{lo:.3f}, {hi:.3f}]"
        ax.plot(fpr, tpr, color=CURVE_COLOR, linewidth=2.0, label=f"model (AUC {result.auc:.3f}{ci})")
    for t, marker in zip(result.thresholds, ("D", "s")):
        ax.plot([1 - t.specificity], [t.sensitivity], marker=marker, markersize=6, color=THRESHOLD_COLOR,
                markeredgecolor="black", linestyle="none",
                label=f"{t.rule} (t = {t.threshold:.3g})")
    legend_done: set[bool] = set()
    for reader in result.readers:
        color = BELOW_COLOR if reader.below else ABOVE_COLOR
        name = None if reader.below in legend_done else ("reader below" if reader.below else "reader not below")
        legend_done.add(reader.below)
        ax.plot([reader.point.fpr], [reader.point.tpr], marker="o", markersize=7, color=color,
                markeredgecolor="black", linestyle="none", label=name)
        ax.annotate(reader.name, (reader.point.fpr, reader.point.tpr), textcoords="offset points",
                    xytext=(6, -10), fontsize=7)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    below = result.radiologists_below
    suffix = "" if below is None else f"  ({below}/{len(result.readers)} readers below)"
    ax.set_title(f"{result.label}{suffix}", fontsize=10)
    if result.roc is not None:
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    return _png(fig)


def reliability_png(bins: ReliabilityBins, ece: float) -> bytes:
    """Observed frequency of positives against mean predicted probability per bin, with counts."""
    fig = Figure(figsize=(5.0, 5.0), layout="constrained")
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = np.diff(bins.edges)
    left = bins.edges[:-1]
    full = bins.count > 0
    ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1.0, label="perfect calibration")
    ax.bar(left[full], bins.frequency[full], width=width[full], align="edge", color=CURVE_COLOR,
           edgecolor="white", alpha=0.85, label="observed frequency")
    ax.plot(bins.confidence[full], bins.frequency[full], marker="o", markersize=3, color="black",
            linewidth=0.8, label="bin mean")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of positives")
    ax.set_title(f"Reliability (ECE {ece:.3f}, {len(bins.count)} bins)", fontsize=10)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    hist.bar(left, bins.count, width=width, align="edge", color="#7f7f7f", edgecolor="white")
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("pairs")
    return _png(fig)


def _grid(n: int, title: str) -> tuple[Figure, list]:
    if n > MAX_PANELS:
        title, n = f"{title}: the first {MAX_PANELS} of {n} labels", MAX_PANELS
    columns = min(_GRID_COLUMNS, max(n, 1))
    rows = max(1, math.ceil(n / columns))
    fig = Figure(figsize=(2.6 * columns, 2.6 * rows + 0.4), layout="constrained")
    fig.suptitle(title, fontsize=11)
    axes = fig.subplots(rows, columns, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]


def _panel(ax: object, title: str, xlabel: str, ylabel: str) -> None:
    """The unit square with small labels: one panel of a grid."""
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)


def pr_curves_png(results: Sequence[LabelResult]) -> bytes:
    """Precision against recall for every label with a curve, with its AP and prevalence."""
    shown = [r for r in results if r.pr is not None]
    fig, axes = _grid(len(shown), "Precision-recall curves (dotted: prevalence, a random model)")
    shown = shown[: len(axes)]
    for ax, r in zip(axes, shown):
        recall, precision = r.pr
        prevalence = r.n_pos / (r.n_pos + r.n_neg)
        ax.axhline(prevalence, color="#cccccc", linewidth=0.8, linestyle=":")
        ax.step(recall, precision, where="post", color=CURVE_COLOR, linewidth=1.6)
        _panel(ax, f"{r.label}\nAP {r.pr_auc:.3f}", "recall (sensitivity)", "precision (PPV)")
    return _png(fig)


def label_reliability_png(results: Sequence[LabelResult]) -> bytes:
    """One reliability diagram per label: share of positives against mean probability per bin."""
    shown = [r for r in results if r.calibration is not None]
    fig, axes = _grid(len(shown), "Calibration per label (bar: share of positives per probability bin)")
    shown = shown[: len(axes)]
    for ax, r in zip(axes, shown):
        bins = r.calibration
        full = bins.count > 0
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=0.8)
        ax.bar(bins.edges[:-1][full], bins.frequency[full], width=np.diff(bins.edges)[full], align="edge",
               color=CURVE_COLOR, edgecolor="white", alpha=0.85)
        ax.plot(bins.confidence[full], bins.frequency[full], marker="o", markersize=2, color="black", linewidth=0.6)
        _panel(ax, f"{r.label}\nECE {bins.ece:.3f}, n = {int(bins.count.sum())}", "predicted probability",
               "share positive")
    return _png(fig)

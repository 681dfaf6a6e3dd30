"""The evaluation behind ``hmlc evaluate``: every metric of joined predictions and labels."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from hmlc.evaluation.bootstrap import (
    bootstrap_indices,
    bootstrap_sums,
    check_resamples,
    paired_bootstrap_aucs,
    percentile_ci,
)
from hmlc.evaluation.calibration import ReliabilityBins, reliability_bins
from hmlc.evaluation.coherence import Coherence, coherence_rate
from hmlc.evaluation.delong import DeLongResult, delong_test
from hmlc.evaluation.io import EvaluationData, StudyAggregation, TruthClosure
from hmlc.evaluation.metrics import AveragePrecision, average_precision, constant_prediction_labels, mean_auc, per_label_auc
from hmlc.evaluation.radiologists import OperatingPoint, is_below_curve, operating_point, roc_counts
from hmlc.evaluation.thresholds import (
    OperatingThreshold,
    rate_intervals,
    rate_weights,
    sensitivity_threshold,
    youden_threshold,
)
from hmlc.hierarchy import LabelGraph

__all__ = [
    "ReaderResult", "LabelResult", "EvaluationResult", "evaluate", "DEFAULT_BOOTSTRAP", "CI_LEVEL",
    "DEFAULT_SENSITIVITY", "constant_warning",
]

DEFAULT_BOOTSTRAP = 2000
CI_LEVEL = 0.95
#: The fixed sensitivity of the second operating threshold reported per label.
DEFAULT_SENSITIVITY = 0.9


def constant_warning(labels: list[str]) -> str:
    """The warning for labels whose predictions are all one value."""
    return (f"all predictions for {', '.join(labels)} are the same value: the model did not learn "
            "(or this is not the trained checkpoint); check the checkpoint")


@dataclass(frozen=True)
class ReaderResult:
    name: str
    point: OperatingPoint
    below: bool


@dataclass(frozen=True)
class LabelResult:
    """Metrics of one label on its rows coded 1 or 0 (``n_excluded`` rows were -1 or blank)."""

    label: str
    auc: float  # NaN when the rows lack a class
    auc_ci: tuple[float, float]
    pr_auc: float
    n_pos: int
    n_neg: int
    n_excluded: int
    boot_skipped: int  # resamples without both classes
    roc: tuple[np.ndarray, np.ndarray] | None  # (fpr, tpr) of roc_curve(drop_intermediate=False)
    readers: tuple[ReaderResult, ...] = ()
    delong: DeLongResult | None = None
    compare_roc: tuple[np.ndarray, np.ndarray] | None = None
    pr: tuple[np.ndarray, np.ndarray] | None = None  # (recall, precision) of precision_recall_curve
    thresholds: tuple[OperatingThreshold, ...] = ()  # Youden's J, then the fixed sensitivity
    calibration: ReliabilityBins | None = None  # this label's reliability bins
    constant: bool = False  # every prediction of the label is the same value

    @property
    def radiologists_below(self) -> int | None:
        """Readers strictly below the ROC curve; None without readers (or without a curve)."""
        return sum(r.below for r in self.readers) if self.readers else None


@dataclass(frozen=True)
class EvaluationResult:
    id_column: str
    n: int
    labels: tuple[LabelResult, ...]
    mean_auc: float
    mean_auc_ci: tuple[float, float]
    mean_boot_skipped: int
    calibration: ReliabilityBins
    coherence: Coherence | None
    n_boot: int
    seed: int
    missing: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    has_readers: bool = False
    compared: bool = False
    average_precision: AveragePrecision | None = None
    warnings: tuple[str, ...] = ()  # a broken model: printed and shown at the top of the report
    study_aggregation: StudyAggregation | None = None
    closure: TruthClosure | None = None
    closure_choice: str = ""  # why the truth was (not) closed, e.g. "--closure", "default of dataset padchest"
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def ece(self) -> float:
        return self.calibration.ece

    @property
    def radiologists_below_mean(self) -> float | None:
        counts = [r.radiologists_below for r in self.labels if r.radiologists_below is not None]
        return float(np.mean(counts)) if counts else None

    def label(self, name: str) -> LabelResult:
        return next(r for r in self.labels if r.label == name)

    def to_metrics(self) -> dict[str, Any]:
        """The metrics.json document (NaN written as null)."""
        labels = {}
        for r in self.labels:
            labels[r.label] = {
                "auc": json_number(r.auc),
                "auc_ci": [json_number(r.auc_ci[0]), json_number(r.auc_ci[1])],
                "pr_auc": json_number(r.pr_auc),
                "n_pos": r.n_pos,
                "n_neg": r.n_neg,
                "n_excluded": r.n_excluded,
                "radiologists_below": r.radiologists_below,
                "radiologists": {
                    x.name: {"tpr": json_number(x.point.tpr), "fpr": json_number(x.point.fpr), "below": x.below} for x in r.readers
                },
                "delong_p": None if r.delong is None else json_number(r.delong.p),
                "compare_auc": None if r.delong is None else json_number(r.delong.other_auc),
                "bootstrap_skipped": r.boot_skipped,
                "operating_points": {
                    t.rule: {
                        "threshold": json_number(t.threshold),
                        "sensitivity": json_number(t.sensitivity),
                        "specificity": json_number(t.specificity),
                        "sensitivity_ci": [json_number(t.sensitivity_ci[0]), json_number(t.sensitivity_ci[1])],
                        "specificity_ci": [json_number(t.specificity_ci[0]), json_number(t.specificity_ci[1])],
                    }
                    for t in r.thresholds
                },
                "ece": None if r.calibration is None else json_number(r.calibration.ece),
                "constant_predictions": r.constant,
            }
        coherence, ap, agg = self.coherence, self.average_precision, self.study_aggregation
        return {
            "n": self.n,
            "labels": labels,
            "mean_auc": json_number(self.mean_auc),
            "mean_auc_ci": [json_number(self.mean_auc_ci[0]), json_number(self.mean_auc_ci[1])],
            "radiologists_below_mean": self.radiologists_below_mean,
            "coherence": None if coherence is None else json_number(coherence.rate),
            "ece": json_number(self.ece),
            "id_column": self.id_column,
            "missing": dict(self.missing),
            "mean_auc_labels": [r.label for r in self.labels if not math.isnan(r.auc)],
            "bootstrap": {
                "resamples": self.n_boot,
                "seed": self.seed,
                "level": CI_LEVEL,
                "skipped_for_mean": self.mean_boot_skipped,
            },
            "coherence_pairs": None if coherence is None else coherence.pairs,
            "coherence_violations": None if coherence is None else coherence.violations,
            "calibration_bins": {
                "edges": [float(e) for e in self.calibration.edges],
                "count": [int(c) for c in self.calibration.count],
                "confidence": [json_number(c) for c in self.calibration.confidence],
                "frequency": [json_number(f) for f in self.calibration.frequency],
            },
            "average_precision": None if ap is None else {
                "micro": json_number(ap.micro),
                "macro": json_number(ap.macro),
                "labels": list(ap.labels),
                "excluded": list(ap.excluded),
                "labels_without_positives": list(ap.without_positives),
            },
            "study_aggregation": None if agg is None else {
                "rule": agg.rule, "images": agg.images, "studies": agg.studies,
                "description": "predictions by study; each study's label is the maximum code of its images "
                               "(positive if any image is positive)",
            },
            "closure": {
                "applied": self.closure is not None,
                "choice": self.closure_choice,
                "hierarchy": None if self.closure is None else self.closure.hierarchy,
                "codes_changed": 0 if self.closure is None else self.closure.codes_changed,
                "changed_per_label": {} if self.closure is None else dict(self.closure.changed),
            },
            "warnings": list(self.warnings),
            "provenance": dict(self.provenance),
        }


def json_number(x: float | None) -> float | None:
    """``x`` for JSON: None for NaN and infinities."""
    return None if x is None or not math.isfinite(x) else float(x)


def evaluate(
    data: EvaluationData,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    graph: LabelGraph | None = None,
    exclude: Sequence[str] = (),
    sensitivity: float = DEFAULT_SENSITIVITY,
) -> EvaluationResult:
    """Per-label AUC with bootstrap CI, PR-AUC, ROC, operating thresholds, readers, DeLong;
    mean AUC, micro/macro AP over the labels not in ``exclude``, coherence, ECE."""
    n = len(data.ids)
    check_resamples(n_boot, n)
    basic = per_label_auc(data.codes, data.probs, data.labels)
    notes = list(data.notes)
    constant = constant_prediction_labels(data.probs, data.labels)
    warnings = [constant_warning(constant)] if constant else []
    # (rows, y, scores) of each label: its rows coded 0 or 1
    per_label = []
    for k in range(len(data.labels)):
        rows = np.flatnonzero((data.codes[:, k] == 0) | (data.codes[:, k] == 1))
        per_label.append((rows, data.codes[rows, k], data.probs[rows, k]))
    defined = [k for k, base in enumerate(basic) if not math.isnan(base.auc)]
    indices = bootstrap_indices(n, n_boot, seed)
    boot_aucs = paired_bootstrap_aucs(indices, n, [per_label[k] for k in defined])  # (defined, B)
    boot_of = dict(zip(defined, boot_aucs))
    # the operating thresholds of every defined label, and their rates on every resample at once
    curves, thresholds = {}, {}
    for k in defined:
        _, y, scores = per_label[k]
        curves[k] = roc_curve(y, scores, drop_intermediate=False)
        thresholds[k] = [youden_threshold(*curves[k]), sensitivity_threshold(*curves[k], sensitivity)]
    if defined and n_boot:
        weights = [rate_weights(n, per_label[k][0], per_label[k][1],
                                np.stack([per_label[k][2] >= t.threshold for t in thresholds[k]], axis=1))
                   for k in defined]
        sums = bootstrap_sums(indices, n, np.concatenate(weights, axis=1))
        start = 0
        for k, w in zip(defined, weights):
            intervals = rate_intervals(sums[:, start : start + w.shape[1]], CI_LEVEL)
            start += w.shape[1]
            thresholds[k] = [replace(t, sensitivity_ci=sens, specificity_ci=spec)
                             for t, (sens, spec) in zip(thresholds[k], intervals)]
    results: list[LabelResult] = []
    for k, base in enumerate(basic):
        rows, y, scores = per_label[k]
        if k not in boot_of:
            notes.append(f"{base.label}: {base.n_pos} positive and {base.n_neg} negative rows; AUC undefined, "
                         "left out of the mean")
            results.append(LabelResult(
                base.label, math.nan, (math.nan, math.nan), math.nan,
                base.n_pos, base.n_neg, base.n_excluded, n_boot, None, constant=base.label in constant,
            ))
            continue
        boot = boot_of[k]
        fpr, tpr, _ = curves[k]
        precision, recall, _ = precision_recall_curve(y, scores)
        readers: list[ReaderResult] = []
        if data.readers:
            fp_curve, tp_curve = roc_counts(y, scores)
            for name, reads in data.readers.items():
                column = reads[rows, k]
                if np.isnan(column).any():  # this reader has no column for the label
                    continue
                point = operating_point(y, column)
                readers.append(ReaderResult(name, point, is_below_curve(fp_curve, tp_curve, point)))
        delong, compare_roc = None, None
        if data.compare is not None and not np.isnan(data.compare[rows, k]).any():
            other = data.compare[rows, k]
            delong = delong_test(y, scores, other)
            other_fpr, other_tpr, _ = roc_curve(y, other, drop_intermediate=False)
            compare_roc = (other_fpr, other_tpr)
        results.append(LabelResult(
            label=base.label,
            auc=base.auc,
            auc_ci=percentile_ci(boot, CI_LEVEL),
            pr_auc=float(average_precision_score(y, scores)),
            n_pos=base.n_pos,
            n_neg=base.n_neg,
            n_excluded=base.n_excluded,
            boot_skipped=int(np.isnan(boot).sum()),
            roc=(fpr, tpr),
            readers=tuple(readers),
            delong=delong,
            compare_roc=compare_roc,
            pr=(recall, precision),
            thresholds=tuple(thresholds[k]),
            calibration=reliability_bins(y, scores),
            constant=base.label in constant,
        ))
    if defined and all(basic[k].auc == 0.5 for k in defined) and not constant:
        warnings.append("every AUC is exactly 0.5: the predictions rank no positive above a negative; "
                        "the model did not learn, check the checkpoint")
    if defined and n_boot:
        complete = np.isfinite(boot_aucs).all(axis=0)  # same resamples for every label: paired
        mean_ci = percentile_ci(boot_aucs[:, complete].mean(axis=0), CI_LEVEL)
        mean_skipped = int((~complete).sum())
    else:
        mean_ci, mean_skipped = (math.nan, math.nan), n_boot
    coherence = None
    if graph is not None:
        coherence = coherence_rate(data.prediction_probs, data.prediction_labels, graph)
        if not coherence.edges:
            notes.append(f"no edge of the hierarchy {graph.name!r} joins two predicted labels; no coherence rate")
            coherence = None
    calibration = reliability_bins(
        np.concatenate([y for _, y, _ in per_label]), np.concatenate([p for _, _, p in per_label])
    )
    return EvaluationResult(
        id_column=data.id_column,
        n=n,
        labels=tuple(results),
        mean_auc=mean_auc(basic),
        mean_auc_ci=mean_ci,
        mean_boot_skipped=mean_skipped,
        calibration=calibration,
        coherence=coherence,
        n_boot=n_boot,
        seed=seed,
        missing=dict(data.missing),
        notes=tuple(notes),
        has_readers=bool(data.readers),
        compared=data.compare is not None,
        average_precision=average_precision(data.codes, data.probs, data.labels, exclude),
        warnings=tuple(warnings),
        study_aggregation=data.study_aggregation,
        closure=data.closure,
    )

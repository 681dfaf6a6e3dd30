"""Evaluation: per-label AUC with bootstrap CIs, micro/macro average precision, operating points, readers against the ROC curve, DeLong's test,
coherence, calibration, and the reports of ``hmlc evaluate`` (``hmlc.evaluation.report``, which
imports matplotlib, is left out here so that training does not load it)."""

from hmlc.evaluation.evaluator import EvaluationResult, LabelResult, evaluate
from hmlc.evaluation.io import CHEXPERT5, EvaluationData, load_evaluation_data
from hmlc.evaluation.metrics import (
    AveragePrecision,
    LabelAUC,
    average_precision,
    constant_prediction_labels,
    mean_auc,
    per_label_auc,
)

__all__ = [
    "LabelAUC",
    "per_label_auc",
    "mean_auc",
    "AveragePrecision",
    "average_precision",
    "constant_prediction_labels",
    "CHEXPERT5",
    "EvaluationData",
    "load_evaluation_data",
    "EvaluationResult",
    "LabelResult",
    "evaluate",
]

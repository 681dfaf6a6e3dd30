"""Evaluation: per-label AUC with bootstrap CIs, readers against the ROC curve, DeLong's test,
coherence, calibration, and the reports of ``hmlc evaluate`` (``hmlc.evaluation.report``, which
imports matplotlib, is left out here so that training does not load it)."""

from hmlc.evaluation.evaluator import EvaluationResult, LabelResult, evaluate
from hmlc.evaluation.io import CHEXPERT5, EvaluationData, load_evaluation_data
from hmlc.evaluation.metrics import LabelAUC, mean_auc, per_label_auc

__all__ = [
    "LabelAUC",
    "per_label_auc",
    "mean_auc",
    "CHEXPERT5",
    "EvaluationData",
    "load_evaluation_data",
    "EvaluationResult",
    "LabelResult",
    "evaluate",
]

"""Evaluation: per-label AUC and summaries (reports, CIs and radiologists come with issue 5)."""

from hmlc.evaluation.metrics import LabelAUC, mean_auc, per_label_auc

__all__ = ["LabelAUC", "per_label_auc", "mean_auc"]

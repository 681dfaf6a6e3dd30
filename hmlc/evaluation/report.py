"""Writing an evaluation: metrics.json, report.md, a self-contained report.html and the PNGs."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from hmlc.engine.rundir import atomic_write_bytes, atomic_write_text
from hmlc.evaluation.evaluator import CI_LEVEL, EvaluationResult, LabelResult
from hmlc.evaluation.plots import label_reliability_png, pr_curves_png, reliability_png, roc_png

__all__ = ["metrics_json", "write_report", "RELIABILITY_FILE", "PR_FILE", "LABEL_RELIABILITY_FILE", "roc_file_name"]

RELIABILITY_FILE = "reliability.png"
PR_FILE = "pr_curves.png"
LABEL_RELIABILITY_FILE = "reliability_per_label.png"


def metrics_json(result: EvaluationResult) -> str:
    """metrics.json as text: strict JSON, NaN written as null."""
    return json.dumps(result.to_metrics(), indent=2, allow_nan=False) + "\n"


def roc_file_name(label: str, taken: set[str] | None = None) -> str:
    """``roc_<label>.png`` with the label lower-cased and anything but letters and digits as ``_``."""
    stem = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "label"
    name, i = f"roc_{stem}.png", 2
    while taken is not None and name in taken:
        name, i = f"roc_{stem}_{i}.png", i + 1
    return name


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}"


def _rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    header = ["Label", f"AUC [{CI_LEVEL:.0%} CI]", "PR-AUC", "pos", "neg", "excluded"]
    if result.has_readers:
        header.append("readers below")
    if result.compared:
        header += ["compared AUC", "DeLong p"]
    rows = []
    for r in result.labels:
        ci = "" if not math.isfinite(r.auc_ci[0]) else f" [{_f(r.auc_ci[0])}, {_f(r.auc_ci[1])}]"
        row = [r.label, f"{_f(r.auc)}{ci}", _f(r.pr_auc), str(r.n_pos), str(r.n_neg), str(r.n_excluded)]
        if result.has_readers:
            row.append("n/a" if r.radiologists_below is None else f"{r.radiologists_below}/{len(r.readers)}")
        if result.compared:
            row += [_f(None if r.delong is None else r.delong.other_auc), _p(None if r.delong is None else r.delong.p)]
        rows.append(row)
    lo, hi = result.mean_auc_ci
    ci = "" if not math.isfinite(lo) else f" [{_f(lo)}, {_f(hi)}]"
    mean = [f"mean of {sum(math.isfinite(r.auc) for r in result.labels)}", f"{_f(result.mean_auc)}{ci}", "", "", "", ""]
    if result.has_readers:
        below = result.radiologists_below_mean
        mean.append("n/a" if below is None else f"{below:.2f}")
    if result.compared:
        mean += ["", ""]
    rows.append(mean)
    return header, rows


def _summary(result: EvaluationResult) -> list[tuple[str, str]]:
    out = [
        ("samples (n)", f"{result.n} ({result.id_column} ids in both files)"),
        ("ids only in predictions", str(result.missing.get("predictions_not_in_labels", 0))),
        ("ids only in labels", str(result.missing.get("labels_not_in_predictions", 0))),
        ("mean AUC", f"{_f(result.mean_auc)} [{_f(result.mean_auc_ci[0])}, {_f(result.mean_auc_ci[1])}]"),
        ("bootstrap", f"{result.n_boot} resamples, seed {result.seed}, percentile {CI_LEVEL:.0%} interval"),
        ("ECE (15 bins)", _f(result.ece, 4)),
    ]
    if result.coherence is not None:
        c = result.coherence
        out.append(("coherence", f"{_f(c.rate, 4)} ({c.violations} of {c.pairs} sample-edge pairs violate "
                                 f"p(child) <= p(parent), {len(c.edges)} edges)"))
    if result.has_readers:
        out.append(("readers below the curve (mean over labels)", _f(result.radiologists_below_mean, 2)))
    ap = result.average_precision
    if ap is not None:
        left_out = f"; excluded: {', '.join(ap.excluded)}" if ap.excluded else ""
        out.append(("average precision (AU(PRC))",
                    f"micro {_f(ap.micro)}, macro {_f(ap.macro)} over {len(ap.labels)} labels{left_out}"))
    agg = result.study_aggregation
    if agg is not None:
        out.append(("scored by study", f"{agg.images} label rows (images) aggregated into {agg.studies} studies: "
                                       "a study is positive for a label if any of its images is"))
    closure = result.closure
    out.append(("ground truth", (f"closed over {closure.hierarchy} (a positive label makes its ancestors positive): "
                                 f"{closure.codes_changed} codes changed" if closure is not None
                                 else "labels as given, not closed") + (f" ({result.closure_choice})"
                                                                         if result.closure_choice else "")))
    return out


def _threshold_rows(result: EvaluationResult) -> list[list[str]]:
    def rate(x: float, ci: tuple[float, float]) -> str:
        return _f(x) + ("" if not math.isfinite(ci[0]) else f" [{_f(ci[0])}, {_f(ci[1])}]")

    return [
        [r.label, t.rule, f"{t.threshold:.4g}", rate(t.sensitivity, t.sensitivity_ci), rate(t.specificity, t.specificity_ci)]
        for r in result.labels
        for t in r.thresholds
    ]


_THRESHOLD_HEADER = ("Label", "Rule", "Threshold", f"Sensitivity [{CI_LEVEL:.0%} CI]", f"Specificity [{CI_LEVEL:.0%} CI]")
_THRESHOLD_NOTE = ("A sample is called positive when its probability is at least the threshold. youden: the "
                   "threshold maximising sensitivity + specificity - 1; sensitivity>=S: the highest threshold "
                   "finding at least that share of the positives. Intervals: bootstrap with the threshold fixed.")


def _reader_rows(result: EvaluationResult) -> list[list[str]]:
    return [
        [r.label, x.name, _f(x.point.tpr), _f(x.point.fpr), "yes" if x.below else "no"]
        for r in result.labels
        for x in r.readers
    ]


def _figure_title(kind: str, label: LabelResult | None) -> str:
    return {"roc": f"ROC curve of {label.label}" if label is not None else "ROC curve",
            "pr": "Precision-recall curves", "reliability": "Reliability diagram (all labels pooled)",
            "label_reliability": "Reliability diagrams per label"}[kind]


def _markdown(result: EvaluationResult, figures: list[tuple[str, LabelResult | None, str]]) -> str:
    lines = ["# Evaluation report", ""]
    lines += [f"**WARNING: {w}**" for w in result.warnings]
    if result.warnings:
        lines.append("")
    lines += [f"- {key}: {value}" for key, value in _summary(result)]
    lines.append("")
    header, rows = _rows(result)
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    thresholds = _threshold_rows(result)
    if thresholds:
        lines += ["", "## Operating points", "", _THRESHOLD_NOTE, "",
                  "| " + " | ".join(_THRESHOLD_HEADER) + " |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in thresholds]
    readers = _reader_rows(result)
    if readers:
        lines += ["", "## Readers' operating points", "",
                  "| Label | Reader | TPR | FPR | below the curve |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in readers]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    lines += ["", "## Figures", ""]
    for kind, label, file in figures:
        lines.append(f"![{_figure_title(kind, label)}]({file})")
    if result.provenance:
        lines += ["", "## Provenance", ""] + [f"- {key}: `{value}`" for key, value in result.provenance.items()]
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 12px; } h2 { font-size: 17px; margin: 22px 0 8px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.mean td { font-weight: 600; border-top: 2px solid #999; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; font-size: 13px; }
dt { color: #555; } dd { margin: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 8px; }
.figures figure { margin: 0; } .figures img { width: 300px; height: auto; border: 1px solid #eee; }
.figures img.wide { width: 360px; } .figures img.grid { width: 100%; max-width: 1100px; }
.warning { background: #fdecea; border: 2px solid #d62728; color: #8b0000; padding: 8px 12px; font-weight: 600;
           margin: 8px 0; }
p.note { font-size: 12px; color: #555; max-width: 900px; }
code { font-size: 12px; }
"""


def _table(e: object, header: Sequence[str], rows: list[list[str]], mean_last: bool = False) -> str:
    parts = ["<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = ' class="mean"' if mean_last and i == len(rows) - 1 else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _html(result: EvaluationResult, images: list[tuple[str, LabelResult | None, bytes]]) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>hmlc evaluation report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>Evaluation report</h1>"]
    parts += [f'<div class="warning">WARNING: {e(w)}</div>' for w in result.warnings]
    parts.append("<dl>")
    for key, value in _summary(result):
        parts.append(f"<dt>{e(key)}</dt><dd>{e(value)}</dd>")
    parts.append("</dl>")
    header, rows = _rows(result)
    parts.append(_table(e, header, rows, mean_last=True))
    thresholds = _threshold_rows(result)
    if thresholds:
        parts.append("<h2>Operating points</h2>")
        parts.append(f'<p class="note">{e(_THRESHOLD_NOTE)}</p>')
        parts.append(_table(e, _THRESHOLD_HEADER, thresholds))
    parts.append("<h2>Figures</h2><div class=\"figures\">")
    for kind, label, png in images:
        data = base64.b64encode(png).decode("ascii")
        cls = {"roc": "", "reliability": ' class="wide"'}.get(kind, ' class="grid"')
        parts.append(f'<figure><img{cls} alt="{e(_figure_title(kind, label))}" '
                     f'src="data:image/png;base64,{data}"></figure>')
    parts.append("</div>")
    readers = _reader_rows(result)
    if readers:
        parts.append("<h2>Readers' operating points</h2>")
        parts.append(_table(e, ("Label", "Reader", "TPR", "FPR", "below the curve"), readers))
    if result.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in result.notes) + "</ul>")
    if result.provenance:
        parts.append("<h2>Provenance</h2><dl>")
        for key, value in result.provenance.items():
            parts.append(f"<dt>{e(key)}</dt><dd><code>{e(value)}</code></dd>")
        parts.append("</dl>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(result: EvaluationResult, out_dir: str | Path, compare_name: str = "compared") -> list[Path]:
    """Write metrics.json, report.md, report.html and the PNGs (``roc_<label>.png``, pr_curves.png,
    reliability_per_label.png, reliability.png); returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    images: list[tuple[str, LabelResult | None, bytes]] = []
    figures: list[tuple[str, LabelResult | None, str]] = []

    def add(kind: str, label: LabelResult | None, name: str, png: bytes) -> None:
        atomic_write_bytes(out_dir / name, png)
        written.append(out_dir / name)
        images.append((kind, label, png))
        figures.append((kind, label, name))

    taken: set[str] = set()
    for label in result.labels:
        if label.roc is None:
            continue
        name = roc_file_name(label.label, taken)
        taken.add(name)
        add("roc", label, name, roc_png(label, compare_name))
    if any(label.pr is not None for label in result.labels):
        add("pr", None, PR_FILE, pr_curves_png(result.labels))
        add("label_reliability", None, LABEL_RELIABILITY_FILE, label_reliability_png(result.labels))
    add("reliability", None, RELIABILITY_FILE, reliability_png(result.calibration, result.ece))
    for name, text in (
        ("metrics.json", metrics_json(result)),
        ("report.md", _markdown(result, figures)),
        ("report.html", _html(result, images)),
    ):
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    return written

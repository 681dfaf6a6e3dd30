"""Synthetic files in the CheXpert test-set layout, and the ``hmlc`` runner of these tests."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CHEXPERT14 = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
READERS = ("rad1", "rad2", "rad3")

cli_main = importlib.import_module("hmlc.cli.main")  # the module; hmlc.cli.main is also a function name


@dataclass
class ChexpertFiles:
    """Paths of the files and the truth they were written from (indexed by study id)."""

    predictions: Path
    labels: Path
    radiologists: Path
    compare: Path
    codes: pd.DataFrame  # index: Study, columns: the 14 labels, values 1/0/-1/NaN (as in labels.csv)
    probs: pd.DataFrame  # index: Study
    other: pd.DataFrame  # index: Study (compare file)
    reads: dict[str, pd.DataFrame]  # reader -> index Study, 0/1


def write_chexpert_files(
    folder: Path, n: int = 150, seed: int = 0, uncertain: float = 0.06, blank: float = 0.04,
    extra_predictions: int = 0, extra_labels: int = 0,
) -> ChexpertFiles:
    """Study-level labels, predictions, a compared model and three readers, each file shuffled its own way."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    total = n + extra_predictions + extra_labels
    studies = np.array([f"test/patient{64741 + i}/study1" for i in range(total)], dtype=object)
    prevalence = rng.uniform(0.15, 0.5, len(CHEXPERT14))
    truth = (rng.random((total, len(CHEXPERT14))) < prevalence).astype(float)
    # scores that track the truth, some labels rounded to 2 digits so that ties occur
    signal = rng.uniform(0.8, 2.5, len(CHEXPERT14))
    logits = truth * signal + rng.normal(0, 1, truth.shape) - 1
    probs = 1 / (1 + np.exp(-logits))
    probs[:, ::3] = np.round(probs[:, ::3], 2)
    other = 1 / (1 + np.exp(-(truth * signal * 0.7 + rng.normal(0, 1, truth.shape) - 1)))
    codes = truth.copy()
    codes[rng.random(truth.shape) < uncertain] = -1
    codes[rng.random(truth.shape) < blank] = np.nan

    label_rows = np.r_[np.arange(n), np.arange(n + extra_predictions, total)]
    pred_rows = np.arange(n + extra_predictions)
    codes_df = pd.DataFrame(codes[label_rows], index=studies[label_rows], columns=CHEXPERT14)
    probs_df = pd.DataFrame(probs[pred_rows], index=studies[pred_rows], columns=CHEXPERT14)
    other_df = pd.DataFrame(other[pred_rows], index=studies[pred_rows], columns=CHEXPERT14)
    for df in (codes_df, probs_df, other_df):
        df.index.name = "Study"

    labels = folder / "test_labels.csv"
    codes_df.sample(frac=1, random_state=seed + 1).reset_index().to_csv(labels, index=False, float_format="%g")
    predictions = folder / "predictions.csv"
    shuffled = probs_df.sample(frac=1, random_state=seed + 2)
    shuffled[list(CHEXPERT14[7:]) + list(CHEXPERT14[:7])].reset_index().to_csv(predictions, index=False)
    compare = folder / "other_model.csv"
    other_df.sample(frac=1, random_state=seed + 3).reset_index().to_csv(compare, index=False)

    radiologists = folder / "radiologists"
    radiologists.mkdir(exist_ok=True)
    reads = {}
    for r, name in enumerate(READERS):
        flip = rng.random(truth.shape) < rng.uniform(0.05, 0.25)
        read = np.where(flip, 1 - truth, truth)
        frame = pd.DataFrame(read[label_rows], index=studies[label_rows], columns=CHEXPERT14).astype(int)
        frame.index.name = "Study"
        reads[name] = frame
        columns = list(rng.permutation(CHEXPERT14))  # another column order per reader
        out = frame.sample(frac=1, random_state=seed + 10 + r)[columns].reset_index()
        out = out[columns[:5] + ["Study"] + columns[5:]]  # the id column not first either
        out.to_csv(radiologists / f"{name}.csv", index=False)
    return ChexpertFiles(predictions, labels, radiologists, compare, codes_df, probs_df, other_df, reads)


def run_hmlc(argv: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``hmlc argv`` in this process, ``evaluate`` wired in."""
    parser_builder = cli_main.build_parser

    def build_parser() -> argparse.ArgumentParser:  # evaluate, whether or not main.py lists it yet
        parser = parser_builder()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "evaluate" not in sub.choices:
            from hmlc.cli import evaluate

            evaluate.add_parsers(sub)
        return parser

    out, err = io.StringIO(), io.StringIO()
    cli_main.build_parser = build_parser
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli_main.main(argv)
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        cli_main.build_parser = parser_builder
    return code, out.getvalue(), err.getvalue()

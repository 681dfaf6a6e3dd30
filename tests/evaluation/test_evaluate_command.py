"""``hmlc evaluate`` on synthetic files in the CheXpert test-set layout.

Every number is checked against something computed here from the truth the
files were written from: sklearn on the rows joined by study, exact readers'
rule, the quadratic DeLong, a plain bootstrap loop, hand counts.
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from hmlc.evaluation import CHEXPERT5
from hmlc.evaluation.bootstrap import bootstrap_indices

from .chexpert_files import CHEXPERT14, READERS, ChexpertFiles, run_hmlc, write_chexpert_files
from .reference import below_curve_reference, delong_reference

TREE = """\
edges:
  - [Lung Opacity, Edema]
  - [Lung Opacity, Consolidation]
  - [Lung Opacity, Atelectasis]
  - [Consolidation, Pneumonia]
  - [Enlarged Cardiomediastinum, Cardiomegaly]
  - [Lung Opacity, Not Predicted]
"""


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChexpertFiles, dict[str, Any], str, Path]:
    """One run with every option: (files, metrics.json, stderr, out folder)."""
    folder = tmp_path_factory.mktemp("full")
    files = write_chexpert_files(folder / "files", n=150, extra_predictions=3, extra_labels=5)
    tree = folder / "tree.yaml"
    tree.write_text(TREE)
    out = folder / "out"
    code, stdout, stderr = run_hmlc([
        "evaluate", "--predictions", str(files.predictions), "--labels", str(files.labels),
        "--radiologists", str(files.radiologists), "--compare", str(files.compare),
        "--hierarchy", str(tree), "--bootstrap", "200", "--seed", "3", "--out", str(out), "--json",
    ])
    assert code == 0, stderr
    metrics = json.loads(stdout)
    assert metrics == json.loads((out / "metrics.json").read_text())
    return files, metrics, stderr, out


def joined(files: ChexpertFiles, label: str, frame: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(codes, scores) of ``label`` on the studies in both files, rows coded 0 or 1 only."""
    common = files.codes.index.intersection(files.probs.index)
    codes = files.codes.loc[common, label].to_numpy()
    scores = (files.probs if frame is None else frame).loc[common, label].to_numpy()
    keep = (codes == 0) | (codes == 1)
    return codes[keep], scores[keep]


# ---------------------------------------------------------------- the numbers
def test_aucs_and_pr_aucs_equal_sklearn_on_the_joined_rows(full: tuple) -> None:
    files, metrics, _, _ = full
    assert list(metrics["labels"]) == list(CHEXPERT14[7:] + CHEXPERT14[:7])  # predictions' column order
    for label in CHEXPERT14:
        y, p = joined(files, label)
        got = metrics["labels"][label]
        assert got["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert got["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        assert (got["n_pos"], got["n_neg"]) == (int((y == 1).sum()), int((y == 0).sum()))
    assert metrics["mean_auc"] == pytest.approx(np.mean([metrics["labels"][k]["auc"] for k in CHEXPERT14]))


def test_uncertain_and_blank_labels_are_excluded_and_counted(full: tuple) -> None:
    files, metrics, _, _ = full
    common = files.codes.index.intersection(files.probs.index)
    for label in CHEXPERT14:
        codes = files.codes.loc[common, label]
        excluded = int((codes == -1).sum() + codes.isna().sum())
        assert excluded > 0
        got = metrics["labels"][label]
        assert got["n_excluded"] == excluded
        assert got["n_pos"] + got["n_neg"] + excluded == metrics["n"] == 150


def test_missing_ids_are_counted_on_both_sides(full: tuple) -> None:
    _, metrics, stderr, _ = full
    assert metrics["missing"] == {"predictions_not_in_labels": 3, "labels_not_in_predictions": 5}
    assert "3 ids of predictions.csv are not in test_labels.csv" in stderr
    assert "5 ids of test_labels.csv are not in predictions.csv" in stderr
    assert metrics["id_column"] == "Study"


def test_radiologists_below_equal_the_independent_rule(full: tuple) -> None:
    files, metrics, _, _ = full
    common = files.codes.index.intersection(files.probs.index)
    counts = []
    for label in CHEXPERT14:
        codes = files.codes.loc[common, label]
        keep = codes.isin([0, 1]).to_numpy()
        y = codes.to_numpy()[keep]
        scores = files.probs.loc[common, label].to_numpy()[keep]
        got = metrics["labels"][label]
        assert set(got["radiologists"]) == set(READERS)
        expected = 0
        for reader in READERS:
            reads = files.reads[reader].loc[common, label].to_numpy()[keep]
            below = below_curve_reference(y, scores, reads)
            expected += below
            point = got["radiologists"][reader]
            assert point["below"] is below, (label, reader)
            assert point["tpr"] == pytest.approx(((reads == 1) & (y == 1)).sum() / (y == 1).sum())
            assert point["fpr"] == pytest.approx(((reads == 1) & (y == 0)).sum() / (y == 0).sum())
        assert got["radiologists_below"] == expected
        counts.append(expected)
    assert 0 < sum(counts) < 3 * len(CHEXPERT14)  # the data puts readers on both sides
    assert metrics["radiologists_below_mean"] == pytest.approx(np.mean(counts))


def test_delong_p_matches_the_quadratic_reference(full: tuple) -> None:
    files, metrics, _, _ = full
    for label in ("Edema", "Pleural Effusion", "Pneumonia", "No Finding"):
        y, p = joined(files, label)
        _, q = joined(files, label, files.other)
        auc, other_auc, pvalue = delong_reference(y, p, q)
        assert metrics["labels"][label]["delong_p"] == pytest.approx(pvalue, rel=1e-9)
        assert metrics["labels"][label]["compare_auc"] == pytest.approx(other_auc, abs=1e-12)


def test_coherence_counts_sample_edge_pairs_over_predicted_labels(full: tuple) -> None:
    files, metrics, _, _ = full
    common = files.codes.index.intersection(files.probs.index)
    probs = files.probs.loc[common]
    edges = [("Lung Opacity", "Edema"), ("Lung Opacity", "Consolidation"), ("Lung Opacity", "Atelectasis"),
             ("Consolidation", "Pneumonia"), ("Enlarged Cardiomediastinum", "Cardiomegaly")]
    coherent = sum(int((probs[child] <= probs[parent]).sum()) for parent, child in edges)
    assert metrics["coherence_pairs"] == len(edges) * 150
    assert metrics["coherence"] == pytest.approx(coherent / (len(edges) * 150))


def test_ece_pools_every_evaluated_label_and_sample(full: tuple) -> None:
    files, metrics, _, _ = full
    pairs = [joined(files, label) for label in CHEXPERT14]
    y = np.concatenate([a for a, _ in pairs])
    p = np.concatenate([b for _, b in pairs])
    ece = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        inside = (p >= lo) & ((p < hi) if b < 14 else (p <= 1))
        if inside.any():
            ece += inside.sum() / len(p) * abs(y[inside].mean() - p[inside].mean())
    assert sum(metrics["calibration_bins"]["count"]) == len(p)
    assert metrics["ece"] == pytest.approx(ece, abs=1e-12)


def test_bootstrap_intervals_equal_a_loop_over_the_same_resamples(chexpert_files: ChexpertFiles) -> None:
    files = chexpert_files
    argv = ["evaluate", "--predictions", str(files.predictions), "--labels", str(files.labels),
            "--labels-subset", "chexpert5", "--bootstrap", "200", "--seed", "11", "--json"]
    code, stdout, stderr = run_hmlc(argv)
    assert code == 0, stderr
    metrics = json.loads(stdout)
    assert list(metrics["labels"]) == list(CHEXPERT5)
    ids = np.array(sorted(files.probs.index))  # the evaluation sorts the joined rows by id
    indices = bootstrap_indices(len(ids), 200, seed=11)
    per_label = []
    for label in CHEXPERT5:
        codes = files.codes.loc[ids, label].to_numpy()
        scores = files.probs.loc[ids, label].to_numpy()
        aucs = []
        for idx in indices:
            keep = idx[(codes[idx] == 0) | (codes[idx] == 1)]
            y = codes[keep]
            aucs.append(roc_auc_score(y, scores[keep]) if 0 < y.sum() < len(y) else math.nan)
        aucs = np.array(aucs)
        per_label.append(aucs)
        got = metrics["labels"][label]
        np.testing.assert_allclose(got["auc_ci"], np.percentile(aucs[~np.isnan(aucs)], [2.5, 97.5]), atol=1e-12)
        assert got["auc_ci"][0] <= got["auc"] <= got["auc_ci"][1]
    means = np.mean(per_label, axis=0)  # paired: the same resample for every label
    np.testing.assert_allclose(metrics["mean_auc_ci"], np.percentile(means, [2.5, 97.5]), atol=1e-12)
    assert metrics["mean_auc_ci"][0] <= metrics["mean_auc"] <= metrics["mean_auc_ci"][1]
    # deterministic for a seed, different for another
    assert json.loads(run_hmlc(argv)[1]) == metrics
    other = json.loads(run_hmlc(argv[:-3] + ["--seed", "12", "--json"])[1])
    assert other["mean_auc_ci"] != metrics["mean_auc_ci"]
    assert other["mean_auc"] == metrics["mean_auc"]


def test_resamples_lacking_a_class_are_skipped_and_counted(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path, n=30, seed=4)
    frame = pd.read_csv(files.labels)
    frame["Edema"] = 0
    frame.loc[0, "Edema"] = 1  # one positive: many resamples miss it
    frame.to_csv(files.labels, index=False)
    code, stdout, _ = run_hmlc(["evaluate", "--predictions", str(files.predictions), "--labels", str(files.labels),
                                "--bootstrap", "200", "--json"])
    metrics = json.loads(stdout)
    assert code == 0
    skipped = metrics["labels"]["Edema"]["bootstrap_skipped"]
    assert 0.2 * 200 < skipped < 0.6 * 200  # about (29/30)^30 = 36 % of resamples lack it
    assert metrics["bootstrap"]["skipped_for_mean"] >= skipped


def test_file_order_of_rows_and_columns_changes_nothing(tmp_path: Path, full: tuple) -> None:
    files, metrics, _, _ = full
    rng = np.random.default_rng(9)

    def reshuffle(source: Path, target: Path) -> None:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False)
        frame = frame.sample(frac=1, random_state=int(rng.integers(1000)))
        frame[list(rng.permutation(frame.columns))].to_csv(target, index=False)

    (tmp_path / "readers").mkdir()
    for reader in READERS:
        reshuffle(files.radiologists / f"{reader}.csv", tmp_path / "readers" / f"{reader}.csv")
    for name in ("p.csv", "l.csv", "q.csv"):
        source = {"p.csv": files.predictions, "l.csv": files.labels, "q.csv": files.compare}[name]
        reshuffle(source, tmp_path / name)
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE)
    code, stdout, stderr = run_hmlc([
        "evaluate", "--predictions", str(tmp_path / "p.csv"), "--labels", str(tmp_path / "l.csv"),
        "--radiologists", str(tmp_path / "readers"), "--compare", str(tmp_path / "q.csv"),
        "--hierarchy", str(tree), "--bootstrap", "200", "--seed", "3", "--json",
    ])
    assert code == 0, stderr
    again = json.loads(stdout)
    assert list(again["labels"]) != list(metrics["labels"])  # label order follows the predictions' columns
    assert sorted(again.pop("mean_auc_labels")) == sorted(metrics["mean_auc_labels"])
    assert sorted(again["average_precision"].pop("labels")) == sorted(metrics["average_precision"]["labels"])
    again.pop("provenance")  # names the reshuffled files
    expected = {k: v for k, v in metrics.items() if k not in ("mean_auc_labels", "provenance")}
    expected["average_precision"] = {k: v for k, v in expected["average_precision"].items() if k != "labels"}
    assert_same(again, expected)


def assert_same(a: Any, b: Any, where: str = "metrics") -> None:
    """Equal documents; floats to 1e-12 (pooled sums such as the ECE add up in column order)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-12, abs=1e-15), where
    else:
        assert a == b and type(a) is type(b), where


def test_image_level_files_join_by_path(tmp_path: Path) -> None:
    paths = [f"CheXpert-v1.0-small/valid/patient{i}/study1/view1_frontal.jpg" for i in range(40)]
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(15), np.zeros(25)]
    p = np.clip(y * 0.3 + rng.random(40) * 0.7, 0, 1)
    pd.DataFrame({"Path": paths, "Sex": "Male", "Edema": y}).to_csv(tmp_path / "valid.csv", index=False)
    pd.DataFrame({"Path": paths[::-1], "Edema": p[::-1]}).to_csv(tmp_path / "p.csv", index=False)
    code, stdout, stderr = run_hmlc(["evaluate", "--predictions", str(tmp_path / "p.csv"),
                                     "--labels", str(tmp_path / "valid.csv"), "--bootstrap", "50", "--json"])
    assert code == 0, stderr
    metrics = json.loads(stdout)
    assert metrics["id_column"] == "Path" and metrics["n"] == 40
    assert metrics["labels"]["Edema"]["auc"] == pytest.approx(roc_auc_score(y, p))


def test_a_label_with_one_class_has_no_auc_and_is_left_out_of_the_mean(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path, n=40)
    frame = pd.read_csv(files.labels)
    frame["Fracture"] = 0
    frame.to_csv(files.labels, index=False)
    code, stdout, stderr = run_hmlc(["evaluate", "--predictions", str(files.predictions), "--labels",
                                     str(files.labels), "--radiologists", str(files.radiologists),
                                     "--bootstrap", "20", "--json", "--labels-subset", "Fracture,Edema"])
    assert code == 0, stderr
    metrics = json.loads(stdout)
    fracture = metrics["labels"]["Fracture"]
    assert fracture["auc"] is None and fracture["auc_ci"] == [None, None] and fracture["n_pos"] == 0
    assert fracture["radiologists_below"] is None and fracture["radiologists"] == {}
    assert metrics["mean_auc"] == metrics["labels"]["Edema"]["auc"]
    assert metrics["mean_auc_labels"] == ["Edema"]
    assert "Fracture: 0 positive" in stderr


def test_without_readers_compare_hierarchy_or_bootstrap_those_fields_are_null(chexpert_files: ChexpertFiles) -> None:
    code, stdout, _ = run_hmlc(["evaluate", "--predictions", str(chexpert_files.predictions),
                                "--labels", str(chexpert_files.labels), "--bootstrap", "0", "--json"])
    assert code == 0
    metrics = json.loads(stdout)
    check_schema(metrics)
    assert metrics["radiologists_below_mean"] is None and metrics["coherence"] is None
    assert metrics["mean_auc_ci"] == [None, None]
    for got in metrics["labels"].values():
        assert got["radiologists_below"] is None and got["radiologists"] == {} and got["delong_p"] is None
        assert got["auc_ci"] == [None, None]


def test_the_text_summary_lists_every_label(chexpert_files: ChexpertFiles) -> None:
    code, stdout, _ = run_hmlc(["evaluate", "--predictions", str(chexpert_files.predictions), "--labels",
                                str(chexpert_files.labels), "--labels-subset", "chexpert5", "--bootstrap", "20"])
    assert code == 0
    for label in CHEXPERT5:
        assert re.search(rf"^{label} +0\.\d{{3}}", stdout, re.M), stdout
    assert "mean AUC" in stdout and "ECE" in stdout


# ---------------------------------------------------------------- metrics.json schema
def _is_float(x: Any) -> bool:
    return isinstance(x, float)


def check_schema(metrics: dict[str, Any]) -> None:
    """Every key of the issue's metrics.json with exactly its type (extra keys allowed)."""
    assert type(metrics["n"]) is int
    assert isinstance(metrics["labels"], dict) and metrics["labels"]
    for label, got in metrics["labels"].items():
        assert isinstance(label, str)
        assert _is_float(got["auc"]) or got["auc"] is None
        ci = got["auc_ci"]
        assert isinstance(ci, list) and len(ci) == 2 and all(_is_float(x) or x is None for x in ci)
        assert _is_float(got["pr_auc"]) or got["pr_auc"] is None
        for key in ("n_pos", "n_neg", "n_excluded"):
            assert type(got[key]) is int, key
        assert got["radiologists_below"] is None or type(got["radiologists_below"]) is int
        assert isinstance(got["radiologists"], dict)
        for reader, point in got["radiologists"].items():
            assert isinstance(reader, str)
            assert _is_float(point["tpr"]) and _is_float(point["fpr"]) and type(point["below"]) is bool
        assert got["delong_p"] is None or _is_float(got["delong_p"])
    assert _is_float(metrics["mean_auc"])
    ci = metrics["mean_auc_ci"]
    assert isinstance(ci, list) and len(ci) == 2 and all(_is_float(x) or x is None for x in ci)
    assert metrics["radiologists_below_mean"] is None or _is_float(metrics["radiologists_below_mean"])
    assert metrics["coherence"] is None or _is_float(metrics["coherence"])
    assert _is_float(metrics["ece"])


def test_metrics_json_follows_the_schema_and_is_strict_json(full: tuple) -> None:
    _, metrics, _, out = full
    check_schema(metrics)
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert all(_is_float(v["delong_p"]) for v in metrics["labels"].values())
    assert _is_float(metrics["coherence"]) and _is_float(metrics["radiologists_below_mean"])


# ---------------------------------------------------------------- the report
def test_report_files_are_written_and_the_html_is_self_contained(full: tuple) -> None:
    _, metrics, _, out = full
    names = {p.name for p in out.iterdir()}
    assert {"metrics.json", "report.md", "report.html", "reliability.png", "pr_curves.png",
            "reliability_per_label.png"} <= names
    assert {f"roc_{re.sub('[^a-z0-9]+', '_', k.lower())}.png" for k in metrics["labels"]} <= names
    html = (out / "report.html").read_text()
    sources = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert len(sources) == len(metrics["labels"]) + 3  # ROC per label, PR curves, calibration per label, pooled
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http" not in html.replace("http-equiv", "") and "@import" not in html and "url(" not in html
    for source in sources:
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    markdown = (out / "report.md").read_text()
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown):
        assert (out / image).is_file()
    assert "| Edema |" in markdown and "Readers' operating points" in markdown


# ---------------------------------------------------------------- errors
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


ERRORS: dict[str, tuple[list[str], str]] = {
    # name: (argv after the files are set up, a phrase the message must hold); {p} {l} {r} {q} {x} are paths
    "missing predictions": (["--predictions", "{x}/nope.csv"], "does not exist"),
    "missing labels": (["--labels", "{x}/nope.csv"], "does not exist"),
    "no id column": (["--predictions", "{x}/noid.csv"], "no id column"),
    "mismatched id columns": (["--predictions", "{x}/predbypath.csv"], "has no 'Path' column"),
    "no shared label": (["--labels", "{x}/otherlabels.csv"], "no label column"),
    "text probability": (["--predictions", "{x}/text.csv"], "'high'"),
    "probability above one": (["--predictions", "{x}/big.csv"], "between 0 and 1"),
    "blank probability": (["--predictions", "{x}/blank.csv"], "is blank"),
    "label value 2": (["--labels", "{x}/two.csv"], "1, 0, -1 or blank"),
    "duplicate id": (["--predictions", "{x}/dup.csv"], "twice"),
    "duplicate column": (["--predictions", "{x}/dupcol.csv"], "twice"),
    "empty file": (["--predictions", "{x}/empty.csv"], "cannot read"),
    "no common id": (["--predictions", "{x}/strangers.csv"], "no Study id of"),
    "unknown subset label": (["--labels-subset", "Edema,Nodule"], "'Nodule'"),
    "missing readers folder": (["--radiologists", "{x}/nobody"], "radiologists folder"),
    "empty readers folder": (["--radiologists", "{x}/emptydir"], "no .csv"),
    "reader not binary": (["--radiologists", "{x}/unsure"], "1 or 0"),
    "reader lacks ids": (["--radiologists", "{x}/partial"], "lacks"),
    "compare lacks ids": (["--compare", "{x}/partialq.csv"], "lacks"),
    "negative bootstrap": (["--bootstrap", "-1"], "--bootstrap"),
    "huge bootstrap": (["--bootstrap", "1000000000"], "more than the 100,000 resamples"),
    "sensitivity above one": (["--sensitivity", "1.5"], "--sensitivity 1.5"),
    "unknown dataset": (["--dataset", "no-such-data"], "no-such-data"),
    "missing checkpoint": (["--checkpoint", "{x}/nothing"], "nothing"),
    "bootstrap not a number": (["--bootstrap", "many"], "invalid int"),
    "unknown hierarchy": (["--hierarchy", "no-such-tree"], "no-such-tree"),
    "out is a file": (["--out", "{x}/empty.csv"], "is a file"),
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChexpertFiles, Path]:
    x = tmp_path_factory.mktemp("broken")
    files = write_chexpert_files(x / "files", n=30)
    pred = pd.read_csv(files.predictions)
    pred.drop(columns="Study").to_csv(x / "noid.csv", index=False)
    pred.rename(columns={"Study": "Path"}).to_csv(x / "predbypath.csv", index=False)
    pd.DataFrame({"Study": pred["Study"], "Nodule": 1}).to_csv(x / "otherlabels.csv", index=False)
    for name, value in (("text", "high"), ("big", "1.5"), ("blank", "")):
        bad = pred.astype(str)
        bad.loc[4, "Edema"] = value
        bad.to_csv(x / f"{name}.csv", index=False)
    labels = pd.read_csv(files.labels)
    labels.loc[2, "Edema"] = 2
    labels.to_csv(x / "two.csv", index=False)
    pd.concat([pred, pred.iloc[:1]]).to_csv(x / "dup.csv", index=False)
    _write(x / "dupcol.csv", "Study,Edema,Edema\na,0.1,0.2\n")
    _write(x / "empty.csv", "")
    pred.assign(Study=[f"other{i}" for i in range(len(pred))]).to_csv(x / "strangers.csv", index=False)
    (x / "emptydir").mkdir()
    for folder, change in (("unsure", "value"), ("partial", "rows")):
        (x / folder).mkdir()
        reads = pd.read_csv(files.radiologists / "rad1.csv")
        if change == "value":
            reads.loc[3, "Edema"] = -1
        else:
            reads = reads.iloc[1:]
        reads.to_csv(x / folder / "rad1.csv", index=False)
    pd.read_csv(files.compare).iloc[2:].to_csv(x / "partialq.csv", index=False)
    return files, x


@pytest.mark.parametrize("case", list(ERRORS))
def test_every_user_error_exits_2_with_one_line(case: str, broken: tuple[ChexpertFiles, Path]) -> None:
    files, x = broken
    change, phrase = ERRORS[case]
    args = {"--predictions": str(files.predictions), "--labels": str(files.labels), "--bootstrap": "10"}
    for flag, value in zip(change[::2], change[1::2]):
        args[flag] = value.format(x=x)
    argv = ["evaluate"] + [s for kv in args.items() for s in kv]
    code, stdout, stderr = run_hmlc(argv)
    assert code == 2, (case, stderr)
    assert stderr.startswith("hmlc: error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    assert phrase in stderr, stderr
    assert stdout == ""


def test_a_reader_without_a_label_column_is_left_out_of_that_label(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path, n=60)
    pd.read_csv(files.radiologists / "rad2.csv").drop(columns="Edema").to_csv(files.radiologists / "rad2.csv",
                                                                                index=False)
    code, stdout, stderr = run_hmlc(["evaluate", "--predictions", str(files.predictions), "--labels",
                                     str(files.labels), "--radiologists", str(files.radiologists),
                                     "--labels-subset", "Edema,Atelectasis", "--bootstrap", "0", "--json"])
    assert code == 0, stderr
    metrics = json.loads(stdout)
    assert set(metrics["labels"]["Edema"]["radiologists"]) == {"rad1", "rad3"}
    assert set(metrics["labels"]["Atelectasis"]["radiologists"]) == set(READERS)
    assert "reader rad2 has no column for Edema" in stderr


def test_predictions_with_both_id_columns_join_on_the_one_the_labels_have(tmp_path: Path) -> None:
    y = np.r_[np.ones(10), np.zeros(10)]
    p = np.linspace(0.05, 0.95, 20)
    paths = [f"img{i}.png" for i in range(20)]
    pd.DataFrame({"Path": paths, "Edema": y}).to_csv(tmp_path / "l.csv", index=False)
    pd.DataFrame({"Study": [f"s{i // 2}" for i in range(20)], "Path": paths, "Edema": p}).to_csv(
        tmp_path / "p.csv", index=False)
    code, stdout, stderr = run_hmlc(["evaluate", "--predictions", str(tmp_path / "p.csv"), "--labels",
                                     str(tmp_path / "l.csv"), "--bootstrap", "0", "--json"])
    assert code == 0, stderr
    metrics = json.loads(stdout)
    assert metrics["id_column"] == "Path" and list(metrics["labels"]) == ["Edema"]
    assert metrics["labels"]["Edema"]["auc"] == pytest.approx(roc_auc_score(y, p))

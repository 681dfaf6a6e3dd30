"""``hmlc evaluate`` protocols: micro/macro AP, closure of the truth, study-level scoring, operating
points, a broken model's warning, provenance. Expected values are computed here, independently."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from hmlc.evaluation import constant_prediction_labels

from .chexpert_files import CHEXPERT14, run_hmlc, write_chexpert_files

CHEXPERT_VALID = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chexpert"
                  / "CheXpert-v1.0-small" / "valid.csv")


def evaluate_json(*argv: str) -> tuple[dict[str, Any], str]:
    code, stdout, stderr = run_hmlc(["evaluate", *argv, "--json"])
    assert code == 0, stderr
    return json.loads(stdout), stderr


# ---------------------------------------------------------------- average precision
def test_micro_and_macro_ap_equal_sklearn_on_the_label_matrix_without_the_excluded(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path, n=120, uncertain=0, blank=0)
    metrics, _ = evaluate_json("--predictions", str(files.predictions), "--labels", str(files.labels),
                               "--exclude", "No Finding,Support Devices", "--bootstrap", "0")
    kept = [label for label in CHEXPERT14 if label not in ("No Finding", "Support Devices")]
    truth = files.codes.loc[files.probs.index, kept].to_numpy()
    probs = files.probs[kept].to_numpy()
    ap = metrics["average_precision"]
    assert ap["micro"] == pytest.approx(average_precision_score(truth, probs, average="micro"), abs=1e-12)
    assert ap["macro"] == pytest.approx(average_precision_score(truth, probs, average="macro"), abs=1e-12)
    assert sorted(ap["labels"]) == sorted(kept) and sorted(ap["excluded"]) == ["No Finding", "Support Devices"]
    # the excluded labels are still scored one by one
    assert metrics["labels"]["No Finding"]["auc"] is not None


def test_ap_counts_only_the_codes_0_and_1_of_each_label(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path, n=120, uncertain=0.1, blank=0.05)
    metrics, _ = evaluate_json("--predictions", str(files.predictions), "--labels", str(files.labels),
                               "--bootstrap", "0")
    pooled_y, pooled_p, per_label = [], [], []
    for label in CHEXPERT14:
        y = files.codes.loc[files.probs.index, label].to_numpy()
        p = files.probs[label].to_numpy()
        known = (y == 0) | (y == 1)
        pooled_y.append(y[known])
        pooled_p.append(p[known])
        per_label.append(average_precision_score(y[known], p[known]))
    ap = metrics["average_precision"]
    assert ap["micro"] == pytest.approx(average_precision_score(np.concatenate(pooled_y), np.concatenate(pooled_p)))
    assert ap["macro"] == pytest.approx(np.mean(per_label))


def test_exclude_roots_takes_the_hierarchy_roots_and_an_unknown_label_is_one_error_line(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path / "f", n=60)
    tree = tmp_path / "tree.yaml"
    tree.write_text("edges:\n  - [Lung Opacity, Edema]\n  - [Lung Opacity, Atelectasis]\n")
    base = ["--predictions", str(files.predictions), "--labels", str(files.labels), "--bootstrap", "0"]
    metrics, _ = evaluate_json(*base, "--hierarchy", str(tree), "--exclude", "roots")
    assert metrics["average_precision"]["excluded"] == ["Lung Opacity"]
    code, stdout, stderr = run_hmlc(["evaluate", *base, "--exclude", "Nodule"])
    assert code == 2 and stderr.startswith("hmlc: error: --exclude: 'Nodule'") and stderr.count("\n") == 1


# ---------------------------------------------------------------- closure of the truth
TREE = "edges:\n  - [Lung Opacity, Edema]\n  - [Lung Opacity, Consolidation]\n  - [Consolidation, Pneumonia]\n"


def closed_by_hand(codes: pd.DataFrame) -> pd.DataFrame:
    out = codes.copy()
    out.loc[out["Pneumonia"] == 1, "Consolidation"] = 1
    for child in ("Edema", "Consolidation"):
        out.loc[out[child] == 1, "Lung Opacity"] = 1
    return out


def test_closure_makes_every_ancestor_of_a_positive_positive_before_scoring(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path / "f", n=150)
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE)
    base = ["--predictions", str(files.predictions), "--labels", str(files.labels), "--bootstrap", "0",
            "--hierarchy", str(tree)]
    closed, _ = evaluate_json(*base, "--closure")
    plain, _ = evaluate_json(*base)
    truth = closed_by_hand(files.codes)
    for label in ("Lung Opacity", "Consolidation"):
        y = truth.loc[files.probs.index, label].to_numpy()
        keep = (y == 0) | (y == 1)
        assert closed["labels"][label]["auc"] == pytest.approx(roc_auc_score(y[keep], files.probs[label][keep]))
    changed = (truth != files.codes) & ~(truth.isna() & files.codes.isna())
    in_both = files.codes.index.isin(files.probs.index)  # the labels file's rows the counts are taken over
    assert closed["closure"]["applied"] and closed["closure"]["choice"] == "--closure"
    assert closed["closure"]["changed_per_label"]["Lung Opacity"] == int(changed["Lung Opacity"].sum())
    assert closed["closure"]["codes_changed"] == int(changed.to_numpy().sum()) > 0
    assert in_both.all()
    assert not plain["closure"]["applied"] and plain["closure"]["codes_changed"] == 0
    y = files.codes.loc[files.probs.index, "Lung Opacity"].to_numpy()
    keep = (y == 0) | (y == 1)
    assert plain["labels"]["Lung Opacity"]["auc"] == pytest.approx(
        roc_auc_score(y[keep], files.probs["Lung Opacity"][keep]))


def test_the_dataset_protocol_decides_closure_and_no_closure_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hmlc.plugins import get_host

    files = write_chexpert_files(tmp_path / "f", n=80)
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE)
    base = ["--predictions", str(files.predictions), "--labels", str(files.labels), "--bootstrap", "0",
            "--hierarchy", str(tree), "--dataset", "chexpert"]
    metrics, _ = evaluate_json(*base)  # CheXpert's protocol scores the labels as given
    assert not metrics["closure"]["applied"] and "chexpert" in metrics["closure"]["choice"]
    reader = get_host().dataset("chexpert")
    monkeypatch.setattr(type(reader), "default_eval_closure", True, raising=False)  # a PadChest-like protocol
    metrics, _ = evaluate_json(*base)
    assert metrics["closure"]["applied"] and metrics["closure"]["codes_changed"] > 0
    metrics, _ = evaluate_json(*base, "--no-closure")
    assert not metrics["closure"]["applied"] and metrics["closure"]["choice"] == "--no-closure"


def test_closure_without_a_hierarchy_is_one_error_line(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path, n=30)
    code, _, stderr = run_hmlc(["evaluate", "--predictions", str(files.predictions), "--labels",
                                str(files.labels), "--closure"])
    assert code == 2 and "give --hierarchy" in stderr and stderr.count("\n") == 1


# ---------------------------------------------------------------- study level
@pytest.mark.skipif(not CHEXPERT_VALID.is_file(), reason="CheXpert valid.csv not in ../shared/data (optional real data)")
def test_study_predictions_are_scored_against_image_labels_aggregated_per_study(tmp_path: Path) -> None:
    valid = pd.read_csv(CHEXPERT_VALID)
    study = valid["Path"].str.rsplit("/", n=1).str[0]  # .../patientN/studyM
    truth = valid.assign(Study=study).groupby("Study")[list(CHEXPERT14)].max()
    rng = np.random.default_rng(4)
    probs = pd.DataFrame(
        np.clip(truth.to_numpy() * 0.3 + rng.random(truth.shape) * 0.7, 0, 1), index=truth.index,
        columns=list(CHEXPERT14),
    )
    probs.sample(frac=1, random_state=1).reset_index().to_csv(tmp_path / "by_study.csv", index=False)
    metrics, _ = evaluate_json("--predictions", str(tmp_path / "by_study.csv"), "--labels", str(CHEXPERT_VALID),
                               "--bootstrap", "100")
    assert metrics["n"] == 200 and metrics["id_column"] == "Study"
    assert metrics["study_aggregation"]["images"] == 234 and metrics["study_aggregation"]["studies"] == 200
    assert metrics["study_aggregation"]["rule"] == "max"
    assert metrics["missing"] == {"predictions_not_in_labels": 0, "labels_not_in_predictions": 0}
    for label in ("Edema", "Pleural Effusion", "Cardiomegaly"):
        expected = roc_auc_score(truth[label], probs.loc[truth.index, label])
        assert metrics["labels"][label]["auc"] == pytest.approx(expected, abs=1e-12)
        assert metrics["labels"][label]["n_pos"] == int(truth[label].sum())


# ---------------------------------------------------------------- operating points
def test_operating_points_equal_a_search_over_every_threshold(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path, n=150)
    metrics, _ = evaluate_json("--predictions", str(files.predictions), "--labels", str(files.labels),
                               "--labels-subset", "Edema,Atelectasis", "--bootstrap", "300", "--sensitivity", "0.8")
    for label in ("Edema", "Atelectasis"):
        y = files.codes.loc[files.probs.index, label].to_numpy()
        p = files.probs[label].to_numpy()
        keep = (y == 0) | (y == 1)
        y, p = y[keep], p[keep]
        cuts = np.unique(p)[::-1]  # from the highest: ties broken towards the highest threshold
        sens = np.array([(p[y == 1] >= t).mean() for t in cuts])
        spec = np.array([(p[y == 0] < t).mean() for t in cuts])
        points = metrics["labels"][label]["operating_points"]
        best = int(np.argmax(sens + spec - 1))
        assert points["youden"]["threshold"] == pytest.approx(cuts[best])
        assert (points["youden"]["sensitivity"], points["youden"]["specificity"]) == pytest.approx(
            (sens[best], spec[best]))
        at = int(np.flatnonzero(sens >= 0.8)[0])
        fixed = points["sensitivity>=0.80"]
        assert (fixed["threshold"], fixed["sensitivity"], fixed["specificity"]) == pytest.approx(
            (cuts[at], sens[at], spec[at]))
        for point in (points["youden"], fixed):
            lo, hi = point["sensitivity_ci"]
            assert lo <= point["sensitivity"] <= hi
            lo, hi = point["specificity_ci"]
            assert lo <= point["specificity"] <= hi


def test_operating_point_intervals_equal_a_loop_over_the_resamples(tmp_path: Path) -> None:
    from hmlc.evaluation.bootstrap import bootstrap_indices

    files = write_chexpert_files(tmp_path, n=80)
    metrics, _ = evaluate_json("--predictions", str(files.predictions), "--labels", str(files.labels),
                               "--labels-subset", "Edema", "--bootstrap", "200", "--seed", "5")
    ids = np.array(sorted(files.probs.index))  # evaluate joins rows sorted by id
    y = files.codes.loc[ids, "Edema"].to_numpy()
    p = files.probs.loc[ids, "Edema"].to_numpy()
    point = metrics["labels"]["Edema"]["operating_points"]["youden"]
    sens, spec = [], []
    for idx in bootstrap_indices(len(ids), 200, seed=5):
        yb, pb = y[idx], p[idx]
        sens.append((pb[yb == 1] >= point["threshold"]).mean())
        spec.append((pb[yb == 0] < point["threshold"]).mean())
    assert point["sensitivity_ci"] == pytest.approx(list(np.percentile(sens, [2.5, 97.5])), abs=1e-12)
    assert point["specificity_ci"] == pytest.approx(list(np.percentile(spec, [2.5, 97.5])), abs=1e-12)


# ---------------------------------------------------------------- a broken model
def test_constant_prediction_labels_names_the_columns_that_never_vary() -> None:
    probs = np.array([[0.2, 0.5, 0.1], [0.2, 0.6, 0.1], [0.2, 0.7, 0.1]])
    assert constant_prediction_labels(probs, ["a", "b", "c"]) == ["a", "c"]
    assert constant_prediction_labels(np.empty((0, 2)), ["a", "b"]) == []


def test_constant_predictions_give_a_warning_line_and_a_warning_in_the_report(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path / "f", n=60)
    frame = pd.read_csv(files.predictions)
    frame[list(CHEXPERT14)] = 0.5
    frame.to_csv(tmp_path / "flat.csv", index=False)
    code, stdout, stderr = run_hmlc(["evaluate", "--predictions", str(tmp_path / "flat.csv"), "--labels",
                                     str(files.labels), "--labels-subset", "Edema,Atelectasis", "--bootstrap", "20",
                                     "--out", str(tmp_path / "out")])
    assert code == 0, stderr
    line = "all predictions for Edema, Atelectasis are the same value: the model did not learn"
    assert f"hmlc evaluate: warning: {line}" in stderr and line in stdout
    assert "check the checkpoint" in stderr
    assert line in (tmp_path / "out" / "report.html").read_text()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["warnings"] and metrics["labels"]["Edema"]["constant_predictions"]
    assert metrics["labels"]["Edema"]["auc"] == 0.5
    fine, stderr = evaluate_json("--predictions", str(files.predictions), "--labels", str(files.labels),
                                 "--bootstrap", "0")
    assert fine["warnings"] == [] and "warning" not in stderr


# ---------------------------------------------------------------- provenance
def test_the_report_records_the_files_their_hashes_the_version_and_the_command(tmp_path: Path) -> None:
    import hmlc

    files = write_chexpert_files(tmp_path / "f", n=40)
    metrics, _ = evaluate_json("--predictions", str(files.predictions), "--labels", str(files.labels),
                               "--bootstrap", "10", "--seed", "2")
    source = metrics["provenance"]
    assert source["predictions"] == str(files.predictions.resolve())
    assert source["predictions sha256"] == hashlib.sha256(files.predictions.read_bytes()).hexdigest()
    assert source["labels sha256"] == hashlib.sha256(files.labels.read_bytes()).hexdigest()
    assert source["hmlc version"] == hmlc.__version__
    assert source["command"] == (f"hmlc evaluate --predictions {files.predictions} --labels {files.labels} "
                                 "--bootstrap 10 --seed 2 --json")


def test_a_checkpoint_is_recorded_and_its_score_exclude_is_the_default_exclude(tmp_path: Path) -> None:
    import torch

    from hmlc.models.checkpoint import save_checkpoint

    files = write_chexpert_files(tmp_path / "f", n=40, uncertain=0, blank=0)
    config = {"data": {"dataset": "chexpert", "root": "/data/chexpert"}, "seed": 0}
    checkpoint = save_checkpoint(tmp_path / "ckpt", {"w": torch.zeros(2)}, {
        "hmlc_version": "0.1.0", "backbone": "densenet121", "stage": "finetune", "hierarchy_name": "chexpert",
        "score_exclude": ["No Finding", "Not A Label"], "config": config,
    })
    base = ["--predictions", str(files.predictions), "--labels", str(files.labels), "--bootstrap", "0",
            "--checkpoint", str(checkpoint)]
    metrics, _ = evaluate_json(*base)
    assert metrics["average_precision"]["excluded"] == ["No Finding"]
    kept = [label for label in CHEXPERT14 if label != "No Finding"]
    truth = files.codes.loc[files.probs.index, kept].to_numpy()
    assert metrics["average_precision"]["micro"] == pytest.approx(
        average_precision_score(truth, files.probs[kept].to_numpy(), average="micro"))
    source = metrics["provenance"]
    assert source["checkpoint"] == str(checkpoint.resolve())
    details = source["checkpoint details"]
    assert "backbone densenet121" in details and "dataset chexpert" in details
    assert f"config sha256 {hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()}" in details
    assert f"--checkpoint {checkpoint}" in source["command"]
    metrics, _ = evaluate_json(*base, "--exclude", "Edema")  # the option wins over the checkpoint
    assert metrics["average_precision"]["excluded"] == ["Edema"]
    code, _, stderr = run_hmlc(["evaluate", *base[:-1], str(tmp_path / "nothing")])
    assert code == 2 and stderr.startswith("hmlc: error: ") and stderr.count("\n") == 1


def test_per_label_figures_draw_at_most_max_panels(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from PIL import Image

    from hmlc.evaluation import plots
    from hmlc.evaluation.evaluator import evaluate
    from hmlc.evaluation.io import EvaluationData

    monkeypatch.setattr(plots, "MAX_PANELS", 4)  # one row of 4 panels
    rng = np.random.default_rng(0)
    n, k = 40, 9
    codes = (rng.random((n, k)) < 0.4).astype(float)
    probs = np.clip(codes * 0.3 + rng.random((n, k)) * 0.7, 0, 1)
    labels = tuple(f"L{i}" for i in range(k))
    data = EvaluationData("Path", np.array([f"i{i}" for i in range(n)], dtype=object), labels, codes, probs,
                          labels, probs)
    result = evaluate(data, n_boot=0)
    for draw in (plots.pr_curves_png, plots.label_reliability_png):
        width, height = Image.open(io.BytesIO(draw(result.labels))).size
        assert width > 0 and height <= 90 * (2.6 + 0.4) + 1  # one row at 90 dpi, not three


def test_the_text_summary_shows_the_ap_the_operating_point_and_the_closure(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path / "f", n=60)
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE)
    code, stdout, stderr = run_hmlc(["evaluate", "--predictions", str(files.predictions), "--labels",
                                     str(files.labels), "--bootstrap", "0", "--hierarchy", str(tree), "--closure",
                                     "--exclude", "roots"])
    assert code == 0, stderr
    metrics, _ = evaluate_json("--predictions", str(files.predictions), "--labels", str(files.labels),
                               "--bootstrap", "0", "--hierarchy", str(tree), "--closure", "--exclude", "roots")
    ap = metrics["average_precision"]
    assert (f"average precision micro {ap['micro']:.3f}, macro {ap['macro']:.3f} over 13 labels, "
            "excluding Lung Opacity") in stdout
    assert f"truth closed over tree: {metrics['closure']['codes_changed']} codes changed" in stdout
    edema = metrics["labels"]["Edema"]["operating_points"]["youden"]
    row = next(line for line in stdout.splitlines() if line.startswith("Edema "))
    assert f"{edema['sensitivity']:.2f}  {edema['specificity']:.2f}" in row

"""``hmlc benchmark --config``: the cross-dataset matrix on CheXpert- and NIH-format data (generated images,
real label names, the shipped maps), the errors caught before anything trains, and resume."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from .bench_data import CHEXPERT_LABELS, NIH_FINDINGS, benchmark_file, run
from sklearn.metrics import roc_auc_score

import hmlc.benchmark.matrix as matrix_module
import hmlc.engine.trainer as trainer_module
from hmlc.plugins import get_host, hookimpl


def _matrix_rows(out: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(out / "matrix.csv", newline="") as f:
        return {(r["experiment"], r["dataset"], r["label"]): r for r in csv.DictReader(f)}


def _predict(checkpoint: Path, dataset: str, split: str, root: Path, out: Path, capsys: Any) -> pd.DataFrame:
    """The model's predictions through `hmlc predict` (not the benchmark's code path), by Path."""
    code, _, err = run(["predict", "--checkpoint", checkpoint, "--dataset", dataset, "--split", split,
                        "--set", f"data.root={root}", "--out", out], capsys)
    assert code == 0, err
    return pd.read_csv(out).set_index("Path")


def _nih_truth(root: Path) -> pd.DataFrame:
    """0/1 per finding of the official test images, read from Data_Entry_2017.csv with the csv module."""
    test = set((root / "test_list.txt").read_text().split())
    rows = {}
    with open(root / "Data_Entry_2017.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["Image Index"] in test:
                found = set(r["Finding Labels"].split("|"))
                rows[r["Image Index"]] = {label: float(label in found) for label in NIH_FINDINGS}
    return pd.DataFrame.from_dict(rows, orient="index")


def test_matrix_on_chexpert_and_nih_format_data(data: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    chexpert, nih = data
    extra = {"name": "nih-test-as-chexpert", "dataset": "nih", "root": str(nih), "split": "test",
             "label_maps": {"chexpert": "nih->chexpert"}}
    bench = benchmark_file(tmp_path / "bench.yaml", chexpert, nih)
    doc = yaml.safe_load(bench.read_text())
    doc["datasets"].append(extra)
    bench.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    code, stdout, err = run(["benchmark", "--config", bench, "--out", out], capsys)
    assert code == 0, err
    assert "6 cells" in stdout
    for i in range(1, 7):
        assert f"[cell {i}/6] " in err  # progress per cell
    for name in ("matrix.md", "matrix.csv", "matrix.json", "matrix.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((out / "matrix.json").read_text())
    assert result["complete"] is True
    rows = _matrix_rows(out)

    # The CheXpert model on NIH test: its predictions mapped by chexpert->nih (Nodule and Mass both from Lung Lesion).
    cell = result["cells"]["chexpert"]["nih-test"]
    assert (cell["label_map"], cell["mapped"]) == ("chexpert->nih", "predictions")
    probs = _predict(out / "runs" / "chexpert" / "checkpoints" / "last", "nih", "test", nih, tmp_path / "p1.csv", capsys)
    truth = _nih_truth(nih)
    source = {"Effusion": "Pleural Effusion", "Nodule": "Lung Lesion", "Mass": "Lung Lesion"}
    shared = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Pneumonia", "Pneumothorax",
              "Nodule", "Mass"]
    assert list(cell["labels"]) == shared
    ids = [Path(p).name for p in probs.index]
    expected = []
    for label in shared:
        y = truth.loc[ids, label].to_numpy()
        auc = roc_auc_score(y, probs[source.get(label, label)].to_numpy())
        expected.append(auc)
        assert float(rows["chexpert", "nih-test", label]["auc"]) == pytest.approx(auc, abs=1e-6)
        lo, hi = float(rows["chexpert", "nih-test", label]["ci_low"]), float(rows["chexpert", "nih-test", label]["ci_high"])
        assert lo <= auc + 1e-9 and auc - 1e-9 <= hi  # a 95 % interval around the estimate
    assert cell["mean_auc"] == pytest.approx(np.mean(expected), abs=1e-6)
    # Unmapped labels are listed, never dropped silently.
    assert cell["unmapped"]["model"] == ["No Finding", "Enlarged Cardiomediastinum", "Lung Opacity",
                                         "Pleural Other", "Fracture", "Support Devices"]
    assert cell["unmapped"]["dataset"] == ["Infiltration", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
    md = (out / "matrix.md").read_text()
    assert "model labels not mapped (6): No Finding, Enlarged Cardiomediastinum" in md
    assert "dataset labels not scored (5): Infiltration, Emphysema, Fibrosis, Pleural_Thickening, Hernia" in md

    # The CheXpert model on NIH test through nih->chexpert: the truth mapped (Lung Lesion = Nodule or Mass).
    cell = result["cells"]["chexpert"]["nih-test-as-chexpert"]
    assert cell["mapped"] == "labels"
    lesion = np.maximum(truth.loc[ids, "Nodule"].to_numpy(), truth.loc[ids, "Mass"].to_numpy())
    assert cell["labels"]["Lung Lesion"]["auc"] == pytest.approx(roc_auc_score(lesion, probs["Lung Lesion"]), abs=1e-6)
    assert cell["labels"]["Pleural Effusion"]["auc"] == pytest.approx(
        roc_auc_score(truth.loc[ids, "Effusion"], probs["Pleural Effusion"]), abs=1e-6)

    # The NIH model on CheXpert valid: Lung Lesion is the larger of its Nodule and Mass scores.
    cell = result["cells"]["nih"]["chexpert-valid"]
    assert cell["mapped"] == "predictions"
    probs = _predict(out / "runs" / "nih" / "checkpoints" / "last", "chexpert", "valid", chexpert, tmp_path / "p2.csv",
                     capsys)
    valid = pd.read_csv(chexpert / "CheXpert-v1.0-small" / "valid.csv").set_index("Path")
    lesion_p = np.maximum(probs.loc[valid.index, "Nodule"], probs.loc[valid.index, "Mass"])
    assert cell["labels"]["Lung Lesion"]["auc"] == pytest.approx(roc_auc_score(valid["Lung Lesion"], lesion_p), abs=1e-6)
    assert cell["labels"]["Pleural Effusion"]["auc"] == pytest.approx(
        roc_auc_score(valid["Pleural Effusion"], probs.loc[valid.index, "Effusion"]), abs=1e-6)

    # Same hierarchy, no map: every CheXpert label, scored as given.
    cell = result["cells"]["chexpert"]["chexpert-valid"]
    assert cell["mapped"] == "same" and list(cell["labels"]) == list(CHEXPERT_LABELS)
    assert "| chexpert | " in md and "| nih | " in md


class BadMaps:
    """A plugin registering maps that name a label or a hierarchy that does not exist."""

    @hookimpl
    def hmlc_register_label_maps(self, register: Callable[[str, Any], None]) -> None:
        register("typo-label", {"source": "chexpert", "target": "nih", "labels": {"Effusion": "Pleural Efusion"}})
        register("ghost-hierarchy", {"source": "chexpert", "target": "nih-2020", "labels": {"Effusion": "Edema"}})
        register("wrong-way", {"source": "padchest", "target": "nih", "labels": {"Effusion": "pleural effusion"}})


def _nih_maps(value: Any) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        doc["datasets"][1]["label_maps"] = value
    return change


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (_nih_maps({}), "dataset 'nih-test' (hierarchy 'nih') has no label map for experiment 'chexpert''s hierarchy"),
        (_nih_maps({"chexpert": "chexpert->nihh"}), "unknown label map 'chexpert->nihh'"),
        (_nih_maps({"chexpert": "typo-label"}), "source label(s) 'Pleural Efusion' not in hierarchy 'chexpert'"),
        (_nih_maps({"chexpert": "ghost-hierarchy"}), "names target hierarchy 'nih-2020', which no installed plugin"),
        (_nih_maps({"chexpert": "wrong-way"}), "maps 'padchest' -> 'nih', but it must relate"),
        (lambda d: d["datasets"][0].update(dataset="chexpret"), "unknown dataset 'chexpret'"),
        (lambda d: d["datasets"][0].update(split="tset"), "tset"),
        (lambda d: d["experiments"][0].update(preset="chexpert/nope"), "unknown preset 'chexpert/nope'"),
        (lambda d: d["experiments"][0]["set"].append("train.epochz=2"), "epochz"),
        (lambda d: d["experiments"][0].update(sets=["a=b"]), "unknown key(s) sets"),
        (lambda d: d["experiments"].append(dict(d["experiments"][0])), "experiment name(s) chexpert given more than once"),
        (lambda d: d["experiments"][0].update(name="a/b"), "may hold only letters"),
    ],
    ids=["missing-map", "unknown-map", "unknown-label", "unknown-hierarchy", "unrelated-map", "unknown-dataset",
         "unknown-split", "unknown-preset", "unknown-key", "unknown-file-key", "repeated-name", "bad-name"],
)
def test_errors_before_anything_trains(
    data: tuple[Path, Path], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
    change: Callable[[dict], None], fragment: str,
) -> None:
    get_host().pm.register(BadMaps(), name="bad-maps")
    bench = benchmark_file(tmp_path / "bench.yaml", *data)
    doc = yaml.safe_load(bench.read_text())
    change(doc)
    bench.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setattr(trainer_module, "train", _forbidden)
    code, out, err = run(["benchmark", "--config", bench, "--out", tmp_path / "out"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hmlc: error: "), err
    assert fragment in lines[0]
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("trained before every check passed")


@pytest.mark.parametrize("where", ["data", "file"])
def test_output_folder_that_is_an_input_is_refused(data: tuple[Path, Path], tmp_path: Path, capsys: Any, where: str) -> None:
    bench = benchmark_file(tmp_path / "bench.yaml", *data)
    out = data[1] / "results" if where == "data" else bench
    code, _, err = run(["benchmark", "--config", bench, "--out", out], capsys)
    assert code == 2 and err.startswith("hmlc: error: --out ") and len(err.strip().splitlines()) == 1, err
    assert not (data[1] / "results").exists()


def test_suite_options_with_a_benchmark_file_are_refused(data: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    bench = benchmark_file(tmp_path / "bench.yaml", *data)
    code, _, err = run(["benchmark", "--config", bench, "--out", tmp_path / "o", "--methods", "flat"], capsys)
    assert code == 2 and "--methods apply to --suite" in err


def test_interrupted_benchmark_continues_where_it_stopped(
    data: tuple[Path, Path], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = benchmark_file(tmp_path / "bench.yaml", *data)
    out = tmp_path / "out"
    real_predict, real_train = matrix_module.predict_split, trainer_module.train
    calls: dict[str, list[Any]] = {"predict": [], "train": []}

    def predict_once(*args: Any, **kwargs: Any) -> Any:
        calls["predict"].append(args[1].dataset)
        if len(calls["predict"]) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second cell is predicted
        return real_predict(*args, **kwargs)

    def counted_train(config: Any, *args: Any, **kwargs: Any) -> Any:
        calls["train"].append(config.output.name)
        return real_train(config, *args, **kwargs)

    monkeypatch.setattr(matrix_module, "predict_split", predict_once)
    monkeypatch.setattr(trainer_module, "train", counted_train)
    code, _, err = run(["benchmark", "--config", bench, "--out", out], capsys)
    assert code == 130 and "[cell 1/4] chexpert on chexpert-valid" in err
    first = json.loads((out / "cells" / "chexpert--chexpert-valid.json").read_text())
    partial = json.loads((out / "matrix.json").read_text())
    assert partial["complete"] is False and list(partial["cells"]["chexpert"]) == ["chexpert-valid"]
    assert "not yet scored" in (out / "matrix.md").read_text()
    assert calls["train"] == ["chexpert"]

    monkeypatch.setattr(matrix_module, "predict_split", lambda *a, **k: (calls["predict"].append(a[1].dataset),
                                                                         real_predict(*a, **k))[1])
    calls = {"predict": [], "train": []}
    code, _, err = run(["benchmark", "--config", bench, "--out", out], capsys)
    assert code == 0, err
    assert calls["train"] == ["nih"]  # the finished CheXpert run is not trained again
    assert calls["predict"] == ["nih", "chexpert", "nih"]  # cell 1 is not computed again
    assert "[cell 1/4] chexpert on chexpert-valid: scored earlier" in err
    final = json.loads((out / "matrix.json").read_text())
    assert final["complete"] is True
    first.pop("key")
    assert final["cells"]["chexpert"]["chexpert-valid"] == first

    # A third call does nothing again; a changed experiment is refused, naming the setting.
    calls = {"predict": [], "train": []}
    assert run(["benchmark", "--config", bench, "--out", out], capsys)[0] == 0
    assert calls == {"predict": [], "train": []}
    doc = yaml.safe_load(bench.read_text())
    doc["experiments"][1]["set"] = [s.replace("train.epochs=1", "train.epochs=2") for s in doc["experiments"][1]["set"]]
    bench.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, _, err = run(["benchmark", "--config", bench, "--out", out], capsys)
    assert code == 2 and "was trained with other settings (train.epochs: 1 there, 2 now)" in err
    assert err.strip().splitlines()[-1].startswith("hmlc: error: ")


def test_a_changed_dataset_entry_rescores_only_its_cells(data: tuple[Path, Path], tmp_path: Path, capsys: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bench = benchmark_file(tmp_path / "bench.yaml", *data)
    out = tmp_path / "out"
    assert run(["benchmark", "--config", bench, "--out", out], capsys)[0] == 0
    doc = yaml.safe_load(bench.read_text())
    doc["datasets"][0]["params"] = {"views": "frontal"}
    bench.write_text(yaml.safe_dump(doc, sort_keys=False))
    real_predict = matrix_module.predict_split
    seen: list[str] = []
    monkeypatch.setattr(matrix_module, "predict_split", lambda *a, **k: (seen.append(a[1].dataset), real_predict(*a, **k))[1])
    assert run(["benchmark", "--config", bench, "--out", out], capsys)[0] == 0
    assert seen == ["chexpert", "chexpert"]  # the chexpert-valid column, for both experiments
    assert not math.isnan(json.loads((out / "matrix.json").read_text())["cells"]["nih"]["chexpert-valid"]["mean_auc"])


def test_a_given_checkpoint_is_scored_as_it_is(data: tuple[Path, Path], tmp_path: Path, capsys: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    chexpert, nih = data
    bench = benchmark_file(tmp_path / "bench.yaml", chexpert, nih)
    assert run(["benchmark", "--config", bench, "--out", tmp_path / "out"], capsys)[0] == 0
    trained = json.loads((tmp_path / "out" / "matrix.json").read_text())["cells"]["chexpert"]
    doc = yaml.safe_load(bench.read_text())
    doc["experiments"] = [{"name": "given", "checkpoint": str(tmp_path / "out" / "runs" / "chexpert" / "checkpoints" / "last")}]
    bench.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setattr(trainer_module, "train", _forbidden)
    code, _, err = run(["benchmark", "--config", bench, "--out", tmp_path / "again"], capsys)
    assert code == 0, err
    given = json.loads((tmp_path / "again" / "matrix.json").read_text())["cells"]["given"]
    for name in ("chexpert-valid", "nih-test"):
        assert given[name]["labels"] == trained[name]["labels"]
        assert given[name]["mean_auc_ci"] == trained[name]["mean_auc_ci"]

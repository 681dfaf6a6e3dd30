"""Feature vectors end to end: train an MLP, restore its standardisation, predict, export, labels.

The built-in ``synthetic-vectors`` reader (20 features, ~5 % NaN, the synthetic
hierarchy) stands in for the HMC benchmark files, so no plugin is needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from hmlc.cli.main import main
from hmlc.data.datasets import DatasetSplit
from hmlc.data.features import ArrayFeatureSource
from hmlc.data.synthetic import SYNTHETIC_HIERARCHY, SyntheticVectorsDataset
from hmlc.data.table import LabelTable
from hmlc.hierarchy import LabelGraph
from hmlc.models import read_checkpoint_metadata
from tests.predict.conftest import assert_one_line_error

N_TRAIN, N_VALID = 300, 150
VECTOR_SETS = [
    "data.dataset=synthetic-vectors",
    f"data.params.n_train={N_TRAIN}",
    f"data.params.n_valid={N_VALID}",
    "model.backbone=mlp",
    "model.backbone_params.layers=1",
    "model.backbone_params.width=32",
    "train.epochs=3",
    "train.head_epochs=1",
    "train.batch_size=32",
    "train.lr=0.003",
    "train.progress=false",
    "train.device=cpu",
    "output.tensorboard=false",
    "output.name=run",
]


def _sets(*items: str) -> list[str]:
    out: list[str] = []
    for item in items:
        out += ["--set", item]
    return out


def _train(parent: Path, *overrides: str) -> Path:
    from hmlc.plugins import reset_host

    reset_host()
    assert main(["train", "--out", str(parent), *_sets(*VECTOR_SETS, *overrides)]) == 0
    return parent / "run"


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Conditional training in two stages (stage 2 on features computed once) of an MLP on vectors."""
    return _train(tmp_path_factory.mktemp("vectors"))


def _split(name: str, labels: Sequence[str] | None = SYNTHETIC_HIERARCHY.labels) -> DatasetSplit:
    n = {"n_train": N_TRAIN, "n_valid": N_VALID}
    return SyntheticVectorsDataset().load(name, root=None, params=n, image_size=None, labels=labels)


def test_mlp_on_vectors_learns_in_both_ct_stages(vector_run: Path) -> None:
    results = json.loads((vector_run / "results.json").read_text())
    assert results["completed"]
    assert results["final_mean_auc"] > 0.75  # chance is 0.5
    stages = [row["stage"] for row in results["history"]]
    assert stages == ["ct1", "ct1", "ct1", "ct2"]
    meta = read_checkpoint_metadata(vector_run / "checkpoints" / "last")
    assert meta["input_kind"] == "features" and meta["input_dim"] == 20
    assert meta["feature_names"] == [f"x{j + 1}" for j in range(20)]
    assert meta["backbone_params"] == {"layers": 1, "width": 32}
    assert meta["image_size"] is None and meta["score_exclude"] == []


def test_checkpoint_restores_the_standardisation_fitted_on_training_rows(vector_run: Path) -> None:
    from hmlc.engine.predictor import load_model

    loaded = load_model(vector_run)
    x = _split("train").inputs.array().astype(np.float64)
    # Computed here with numpy: the mean and (population) std of the observed values of each feature.
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    np.testing.assert_allclose(loaded.pipeline.transform.mean, mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(loaded.pipeline.transform.std, std, rtol=1e-5)
    assert loaded.input_kind == "features" and loaded.pipeline.dim == 20


def _aucs(predictions: pd.DataFrame, split: DatasetSplit) -> dict[str, float]:
    codes = split.table.codes()
    out = {}
    for k, label in enumerate(split.table.labels):
        keep = np.isin(codes[:, k], (0.0, 1.0))
        y = codes[keep, k]
        out[label] = roc_auc_score(y, predictions[label].to_numpy()[keep]) if 0 < y.sum() < len(y) else math.nan
    return out


def test_predict_on_the_valid_split_reproduces_training_validation(vector_run: Path, hmlc, tmp_path: Path) -> None:
    out = tmp_path / "preds.csv"
    best = vector_run / "checkpoints" / "best"
    code, _, err = hmlc(
        "predict", "--checkpoint", best, "--dataset", "synthetic-vectors", "--split", "valid",
        *_sets(f"data.params.n_train={N_TRAIN}", f"data.params.n_valid={N_VALID}"), "--out", out,
    )
    assert code == 0, err
    predictions = pd.read_csv(out)
    valid = _split("valid")
    assert predictions["Path"].tolist() == valid.table.frame["id"].tolist()
    recorded = read_checkpoint_metadata(best)["validation"]
    for label, auc in _aucs(predictions, valid).items():
        assert auc == pytest.approx(recorded[label], abs=1e-6), label


def test_predict_reads_npy_and_csv_vectors_like_the_dataset(vector_run: Path, hmlc, tmp_path: Path) -> None:
    valid = _split("valid", labels=None).inputs
    np.save(tmp_path / "v.npy", valid.array()[:7])
    frame = pd.DataFrame(valid.array()[:7], columns=valid.names).iloc[:, ::-1]  # columns in another order
    frame.insert(0, "id", [f"s{i}" for i in range(7)])
    frame.to_csv(tmp_path / "v.csv", index=False)
    for name in ("v.npy", "v.csv"):
        assert hmlc("predict", "--checkpoint", vector_run, tmp_path / name, "--out", tmp_path / f"{name}.out")[0] == 0
    a, b = pd.read_csv(tmp_path / "v.npy.out"), pd.read_csv(tmp_path / "v.csv.out")
    assert b["Path"].tolist() == [f"s{i}" for i in range(7)]
    np.testing.assert_allclose(a.iloc[:, 1:].to_numpy(), b.iloc[:, 1:].to_numpy(), rtol=1e-6)
    code, _, err = hmlc("predict", "--checkpoint", vector_run, tmp_path / "img.png", "--out", tmp_path / "x.csv")
    assert "feature vectors" in assert_one_line_error(code, err)


def test_onnx_export_includes_standardisation_and_equals_pytorch(vector_run: Path, hmlc, tmp_path: Path) -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    import onnxruntime as ort

    from hmlc.engine.predictor import load_member

    path = tmp_path / "m.onnx"
    code, out, err = hmlc("export", "--checkpoint", vector_run, "--format", "onnx", "--out", path)
    assert code == 0, err
    assert "float32 (B, 20) raw feature vectors" in out and "verified" in out
    x = _split("valid", labels=None).inputs.array()[:40]
    assert np.isnan(x).any()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    import torch

    expected = load_member(vector_run).probabilities(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_predict_dataset_loads_without_labels_for_a_model_of_other_labels(tmp_path: Path, hmlc) -> None:
    """A checkpoint whose labels are not the reader's default hierarchy still predicts a dataset split."""
    tree = tmp_path / "small.yaml"
    tree.write_text("labels: [Mass, Cavity, Line]\nedges:\n  - [Mass, Cavity]\n")
    run = _train(tmp_path / "small", f"hierarchy={tree}", "train.method=flat", "train.epochs=1")
    out = tmp_path / "p.csv"
    code, _, err = hmlc("predict", "--checkpoint", run, "--dataset", "synthetic-vectors", "--split", "valid", "--out", out)
    assert code == 0, err
    assert list(pd.read_csv(out).columns) == ["Path", "Mass", "Cavity", "Line"]


class RootedVectors(SyntheticVectorsDataset):
    """Vectors whose hierarchy comes with the data and has an artificial root left out of scores."""

    name = "rooted-vectors"
    default_hierarchy = ""

    def data_hierarchy(self, *, root: Path | None, params: Mapping[str, Any]) -> LabelGraph:
        labels = ["root", *SYNTHETIC_HIERARCHY.labels]
        tops = [label for label in SYNTHETIC_HIERARCHY.labels if not SYNTHETIC_HIERARCHY.parents(label)]
        edges = [("root", t) for t in tops] + list(SYNTHETIC_HIERARCHY.edges)
        return LabelGraph(labels, edges, name="rooted")

    def score_exclude(self, graph: LabelGraph) -> tuple[str, ...]:
        return ("root",)

    def load(self, split: str, *, root: Path | None, params: Mapping[str, Any], image_size: int | None,
             labels: Sequence[str] | None, graph: LabelGraph | None = None) -> DatasetSplit:
        self.seen_graph = graph
        base = super().load(split, root=root, params=params, image_size=image_size, labels=SYNTHETIC_HIERARCHY.labels)
        frame = base.table.frame.copy()
        frame.insert(5, "root", 1.0)
        table = LabelTable(frame, ("root", *SYNTHETIC_HIERARCHY.labels))
        if labels is not None:
            table = LabelTable(table.frame[[*table.frame.columns[:5], *labels]], tuple(labels))
        return DatasetSplit(table, ArrayFeatureSource(base.inputs.array(), base.inputs.names))


def test_data_hierarchy_and_score_exclude(tmp_path: Path) -> None:
    from hmlc.config import load_config
    from hmlc.engine.trainer import train
    from hmlc.plugins import get_host

    reader = RootedVectors()
    get_host().registry("datasets").add(reader.name, reader, "tests")
    overrides = [s for s in VECTOR_SETS if not s.startswith("data.dataset")] + [
        "data.dataset=rooted-vectors", "train.method=flat", "train.epochs=1", f"output.dir={tmp_path}",
    ]
    result = train(load_config(None, None, overrides))
    assert reader.seen_graph is not None and reader.seen_graph.name == "rooted"
    assert "root" in result.labels and "root" not in [a.label for a in result.final]
    assert result.mean_labels == SYNTHETIC_HIERARCHY.labels
    meta = read_checkpoint_metadata(result.run_dir / "checkpoints" / "last")
    assert meta["score_exclude"] == ["root"] and meta["hierarchy_name"] == "rooted"
    header = (result.run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "val_auc/root" not in header and "val_auc/Mass" in header


def test_image_backbone_on_vectors_and_bad_mlp_settings_are_one_line_errors(hmlc, tmp_path: Path) -> None:
    code, _, err = hmlc("train", "--out", tmp_path, *_sets("data.dataset=synthetic-vectors"))
    assert "model.backbone=mlp" in assert_one_line_error(code, err)
    code, _, err = hmlc("train", "--out", tmp_path, *_sets(*VECTOR_SETS, "model.backbone_params.depth=3"))
    assert "accepted: activation, dropout, layers, width" in assert_one_line_error(code, err)
    code, _, err = hmlc("train", "--out", tmp_path, *_sets(*VECTOR_SETS, "model.backbone_params.activation=soft"))
    assert "relu" in assert_one_line_error(code, err)
    assert not any(tmp_path.iterdir())


def test_labels_export_writes_what_evaluate_reads(hmlc, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    sets = _sets(f"data.params.n_train={N_TRAIN}", f"data.params.n_valid={N_VALID}")
    code, stdout, err = hmlc("labels", "export", "--dataset", "synthetic-vectors", "--split", "train", *sets,
                             "--closure", "--out", out)
    assert code == 0, err
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    train = _split("train")
    assert list(frame.columns) == ["Path", *SYNTHETIC_HIERARCHY.labels]
    assert frame["Path"].tolist() == train.table.frame["id"].tolist()
    assert set(frame.iloc[:, 1:].to_numpy().ravel()) <= {"1", "0", "-1", ""}
    # Closure, checked edge by edge: a positive child has positive parents.
    for parent, child in SYNTHETIC_HIERARCHY.edges:
        assert (frame.loc[frame[child] == "1", parent] == "1").all()
    raw = train.table.codes()
    k = SYNTHETIC_HIERARCHY.labels.index("Mass")
    changed = int(((frame["Mass"] == "1").to_numpy() & (raw[:, k] != 1)).sum())
    assert changed > 0 and f"closure changed" in stdout
    # Without --closure the codes are written as read.
    code, _, err = hmlc("labels", "export", "--dataset", "synthetic-vectors", "--split", "train", *sets, "--out", out)
    plain = pd.read_csv(out)
    np.testing.assert_array_equal(plain[list(SYNTHETIC_HIERARCHY.labels)].to_numpy(dtype=np.float32), raw)


def test_prepare_has_nothing_to_cache_for_vectors(hmlc, tmp_path: Path) -> None:
    code, _, err = hmlc("prepare", "--cache", tmp_path, *_sets("data.dataset=synthetic-vectors", "model.backbone=mlp"))
    assert "nothing to prepare" in assert_one_line_error(code, err)
    assert not any(tmp_path.iterdir())


def test_vector_run_stopped_and_resumed_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    from hmlc.plugins import reset_host

    flat = ["train.method=flat", "train.epochs=2", "train.deterministic=true"]
    whole = _train(tmp_path / "whole", *flat)
    reset_host()
    parent = tmp_path / "parts"
    assert main(["train", "--out", str(parent), "--stop-after-epochs", "1", *_sets(*VECTOR_SETS, *flat)]) == 0
    reset_host()
    assert main(["train", "--resume", str(parent / "run")]) == 0
    a = json.loads((whole / "results.json").read_text())
    b = json.loads((parent / "run" / "results.json").read_text())
    assert b["completed"] and a["final"] == b["final"]


def test_explain_refuses_a_vector_model_plainly(vector_run: Path, hmlc, tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(b"")  # never read: the model is refused first
    code, _, err = hmlc("explain", "--checkpoint", vector_run, image, "--out", tmp_path / "maps")
    assert code == 2 and "feature vectors" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "maps").exists()

"""``hmlc benchmark --suite``: a suite registered by a plugin, run generically (no dataset-specific code):
selection on valid, one training per setting scored after each number of epochs, the final model scored
once, results.json/md/png, resume, and the errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

import hmlc.benchmark.suite as suite_module
import hmlc.engine.trainer as trainer_module
from hmlc.plugins import get_host, hookimpl

from .bench_data import run

#: A suite over the built-in synthetic feature vectors; a "dataset" is the number of training rows.
TOY = {
    "description": "synthetic feature vectors",
    "reference": {"name": "Paper", "source": "made up for the test", "seeds": 3},
    "datasets": {"120": {"reference": 0.5}, "160": {}},
    "methods": ["flat", "chmcnn"],
    "config": {"set": [
        "data.dataset=synthetic-vectors", "data.params.n_train={dataset}", "data.params.n_valid=80",
        "train.method={method}", "model.backbone=mlp", "model.backbone_params.layers=1", "train.batch_size=32",
        "train.lr=0.003", "train.progress=false", "output.tensorboard=false",
    ]},
    "grid": {"model.backbone_params.width": [8, 16], "train.epochs": [1, 3]},
    "protocol": {"selection": {"train_split": "train", "eval_split": "valid"},
                 "final": {"train_split": "train", "eval_split": "valid"}, "metric": "micro_auprc"},
}


class ToySuite:
    @hookimpl
    def hmlc_register_benchmark_suites(self, register: Callable[[str, Any], None]) -> None:
        register("toy", TOY)
        register("broken", {**TOY, "protocol": {**TOY["protocol"], "metric": "accuracy"}})


@pytest.fixture(autouse=True)
def _toy() -> None:
    get_host().pm.register(ToySuite(), name="toy-suite")


def test_suite_selects_on_valid_and_scores_the_final_model(tmp_path: Path, capsys: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[tuple[str, int | None]] = []
    real_train = trainer_module.train

    def counted(config: Any, *args: Any, **kwargs: Any) -> Any:
        trained.append((str(config.output.name), kwargs.get("stop_after_epochs")))
        return real_train(config, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "train", counted)
    out = tmp_path / "out"
    code, stdout, err = run(["benchmark", "--suite", "toy", "--datasets", "120", "--out", out], capsys)
    assert code == 0, err
    assert "[1/2] 120 flat seed 0: select width=8, 1 epochs" in err and "[2/2] 120 chmcnn seed 0: chose" in err
    # One training per width, stopped after 1 epoch to be scored, then continued to its end (3): one run per width.
    assert trained[:4] == [("select-width_8", 1), ("select-width_8", None), ("select-width_16", 1), ("select-width_16", None)]
    assert trained[4] == ("final", None) and len(trained) == 10
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is True and list(results["datasets"]) == ["120"]
    assert results["grid"] == {"model.backbone_params.width": [8, 16], "train.epochs": [1, 3]}
    where = out / "runs" / "120" / "flat" / "seed0"
    selection = {}
    for width in (8, 16):
        scores = json.loads((where / f"select-width_{width}.json").read_text())["scores"]
        assert set(scores) == {"1", "3"}
        selection.update({(width, int(e)): s["micro_auprc"] for e, s in scores.items()})
    best = max(selection, key=lambda k: (selection[k], -k[0], -k[1]))
    record = results["datasets"]["120"]["methods"]["flat"]["seeds"][0]
    assert record["chosen"] == {"setting": f"width={best[0]}", "overrides": [f"model.backbone_params.width={best[0]}"],
                                "epochs": best[1]}
    assert record["selection_score"] == pytest.approx(selection[best])
    # The final model (trained with the chosen setting) scored once, checked with `hmlc predict` and scikit-learn.
    preds = tmp_path / "preds.csv"
    code, _, err = run(["predict", "--checkpoint", where / "final" / "checkpoints" / "last", "--dataset",
                        "synthetic-vectors", "--split", "valid", "--set", "data.params.n_train=120",
                        "--set", "data.params.n_valid=80", "--out", preds], capsys)
    assert code == 0, err
    from hmlc.engine.experiment import resolve_hierarchy  # the labels, to read the truth in their order
    from hmlc.config import load_config
    from hmlc.data.datasets import read_split

    reader = get_host().dataset("synthetic-vectors")
    graph = resolve_hierarchy(load_config(None, None, ["data.dataset=synthetic-vectors"]), reader)
    truth = read_split(reader, "valid", root=None, params={"n_train": 120, "n_valid": 80}, image_size=None,
                       labels=graph.labels).table.codes()
    p = pd.read_csv(preds)[list(graph.labels)].to_numpy()
    known = (truth == 0) | (truth == 1)
    assert record["micro_auprc"] == pytest.approx(average_precision_score(truth[known], p[known]), abs=1e-9)
    assert (where / "final" / "config.yaml").read_text().count(f"width: {best[0]}") == 1
    md = (out / "results.md").read_text()
    assert "| 120 | 0.500 | " in md and f"{record['micro_auprc'] - 0.5:+.3f}" in md
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "suite toy: 2 run(s) of 1 dataset(s)" in stdout


def test_interrupted_suite_continues_with_the_same_results(tmp_path: Path, capsys: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["benchmark", "--suite", "toy", "--datasets", "160", "--methods", "flat",
            "--grid", "model.backbone_params.width=8", "--grid", "train.epochs=1,2"]
    assert run([*args, "--out", tmp_path / "whole"], capsys)[0] == 0
    real_scored = suite_module._scored
    scored: list[str] = []

    def interrupted(checkpoint: Path, split: Any) -> Any:
        scored.append(checkpoint.parts[-3])
        if len(scored) == 2:
            raise KeyboardInterrupt
        return real_scored(checkpoint, split)

    monkeypatch.setattr(suite_module, "_scored", interrupted)
    out = tmp_path / "out"
    assert run([*args, "--out", out], capsys)[0] == 130
    assert json.loads((out / "results.json").read_text())["complete"] is False
    scored.clear()
    monkeypatch.setattr(suite_module, "_scored", lambda c, s: (scored.append(c.parts[-3]), real_scored(c, s))[1])
    code, _, err = run([*args, "--out", out], capsys)
    assert code == 0, err
    assert scored == ["select-width_8", "final"]  # the epoch-1 score is kept, not computed again
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())["datasets"]["160"]["methods"]["flat"]
    resumed = json.loads((out / "results.json").read_text())["datasets"]["160"]["methods"]["flat"]
    for key in ("micro_auprc", "macro_auprc", "chosen", "selection_score"):
        assert resumed["seeds"][0][key] == whole["seeds"][0][key]
    scored.clear()
    assert run([*args, "--out", out], capsys)[0] == 0 and scored == []  # everything done: nothing again


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--suite", "toi"], "unknown benchmark suite 'toi'; did you mean: toy"),
        (["--suite", "toy", "--datasets", "999"], "--datasets: 999 not in suite 'toy'; it has: 120, 160"),
        (["--suite", "toy", "--methods", "ct2"], "--methods: ct2 not in suite 'toy'; it has: flat, chmcnn"),
        (["--suite", "toy", "--seeds", "0"], "--seeds 0: give at least 1"),
        (["--suite", "toy", "--grid", "train.epochs=0,2"], "--grid train.epochs=0,2: give positive integers"),
        (["--suite", "toy", "--grid", "model.backbone_params.widht=3"], "widht"),
        (["--suite", "toy", "--data", "/nonexistent/hmc"], "--data /nonexistent/hmc is not a folder"),
        (["--suite", "broken"], "protocol.metric 'accuracy' is not one of micro_auprc"),
    ],
)
def test_suite_errors_before_anything_trains(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
                                             argv: list[str], fragment: str) -> None:
    monkeypatch.setattr(trainer_module, "train", lambda *a, **k: pytest.fail("trained before the checks"))
    code, _, err = run(["benchmark", *argv, "--out", tmp_path / "out"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("hmlc: error: "), err
    assert fragment in err
    assert not (tmp_path / "out").exists()


def test_listed_with_the_registered_kinds(capsys: Any) -> None:
    code, out, _ = run(["list", "benchmark_suites"], capsys)
    assert code == 0 and "toy" in out and "synthetic feature vectors" in out

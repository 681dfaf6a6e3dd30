"""`hmlc train`: run directories, checkpoints, stages, resume, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hmlc.cli.main import main
from hmlc.config import load_config
from hmlc.engine.experiment import prepare_experiment

from .conftest import TINY, sets


def _train(tmp_path: Path, *overrides: str, name: str = "run", extra: tuple[str, ...] = ()) -> Path:
    rc = main(["train", "--out", str(tmp_path), *sets(*overrides, f"output.name={name}"), *extra])
    assert rc == 0
    return tmp_path / name


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_train_writes_a_complete_run_directory(tmp_path, capsys):
    run = _train(tmp_path)
    out = capsys.readouterr().out
    assert "mean AUC" in out and "Line Through Mass" in out
    # The resolved configuration is saved and loads back to the same configuration.
    saved = load_config(run / "config.yaml")
    assert saved == load_config(None, None, [*TINY, "output.name=run", f"output.dir={tmp_path}"])
    closure = json.loads((run / "closure.json").read_text())
    assert closure["enabled"] and sum(closure["changed"].values()) > 0
    rows = _rows(run)
    assert [(r["stage"], r["epoch"]) for r in rows] == [("ct1", "1"), ("ct1", "2"), ("ct2", "1")]
    assert all(0.0 <= float(r["val_mean_auc"]) <= 1.0 for r in rows)
    # Learning rate divided by the decay after each epoch, reset per stage.
    assert float(rows[1]["lr"]) == pytest.approx(float(rows[0]["lr"]) * 0.7)
    for name in ("best", "last"):
        meta = json.loads((run / "checkpoints" / name / "meta.json").read_text())["metadata"]
        assert meta["labels"][0] == "Mass" and len(meta["labels"]) == 10
        assert meta["hierarchy_hash"] == prepare_experiment(saved, with_valid=False).graph.content_hash
        assert meta["backbone"] == "tiny_cnn" and meta["output"] == "conditional"
        assert meta["normalization"] == {"mean": [0.5], "std": [0.25]}
        assert meta["policy"]["default"] == "u-ones-lsr"
    assert json.loads((run / "checkpoints" / "last" / "meta.json").read_text())["metadata"]["stage"] == "ct2"
    results = json.loads((run / "results.json").read_text())
    assert results["completed"] and 0.5 < results["final_mean_auc"] <= 1.0


def test_flat_training_outputs_unconditional_probabilities(tmp_path):
    run = _train(tmp_path, "train.method=flat")
    assert [r["stage"] for r in _rows(run)] == ["flat", "flat"]
    meta = json.loads((run / "checkpoints" / "last" / "meta.json").read_text())["metadata"]
    assert meta["output"] == "unconditional"


def test_stage_one_draws_only_the_conditional_subset(tmp_path):
    # With uncertain and blank codes ignored, roots do not count on every sample,
    # so the conditional subset is smaller than the training set.
    run = _train(tmp_path, "policy.default=u-ignore", "data.blank=ignore", "data.params.blank_rate=0.5")
    config = load_config(run / "config.yaml")
    data = prepare_experiment(config, with_valid=False)
    from hmlc.conditional import conditional_mask

    targets, weights = data.encode(config.seed, 0, False)
    mask = conditional_mask(data.graph, data.train.codes)
    expected = int(((weights * mask) > 0).any(axis=1).sum())
    rows = _rows(run)
    assert expected < len(data.train)
    assert int(rows[0]["train_images"]) == expected
    assert int(rows[-1]["train_images"]) == len(data.train)  # stage 2: full data


def test_u_multiclass_trains_a_three_way_head(tmp_path):
    run = _train(tmp_path, "policy.default=u-multiclass")
    weights = load_file(str(run / "checkpoints" / "last" / "model.safetensors"))
    assert weights["head.weight"].shape[0] == 3 * 10
    assert json.loads((run / "checkpoints" / "last" / "meta.json").read_text())["metadata"]["multiclass"] is True


def test_chmcnn_trains_with_mcloss_and_predicts_coherent_probabilities(tmp_path):
    run = _train(tmp_path, "train.method=chmcnn", "train.epochs=3", "train.lr=0.01")
    rows = _rows(run)
    assert [r["stage"] for r in rows] == ["chmcnn"] * 3
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])  # MCLoss goes down
    meta = json.loads((run / "checkpoints" / "last" / "meta.json").read_text())["metadata"]
    assert meta["output"] == "max-constraint" and meta["stage"] == "chmcnn"
    from hmlc.engine.predictor import load_model

    loaded = load_model(run)
    x = torch.randn(16, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p = loaded.probabilities(x)
        f = torch.sigmoid(loaded.model(x))
    # Coherent on every edge, and each label is the max of its own and its descendants' sigmoids.
    for parent, child in loaded.graph.edge_indices:
        assert (p[:, parent] >= p[:, child]).all()
    for label in loaded.graph.labels:
        k = loaded.graph.index(label)
        family = [k] + [loaded.graph.index(d) for d in loaded.graph.descendants(label)]
        torch.testing.assert_close(p[:, k], f[:, family].amax(1))
    results = json.loads((run / "results.json").read_text())
    assert 0.5 < results["final_mean_auc"] <= 1.0


def test_chmcnn_with_u_multiclass_is_refused_before_the_run_starts(tmp_path, capsys):
    args = ["--set", "train.method=chmcnn", "--set", "policy.default=u-multiclass"]
    assert main(["train", "--out", str(tmp_path), *sets(), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hmlc: error:")
    assert "chmcnn" in err and "u-multiclass" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stop_after", [1, 2])
def test_resumed_run_ends_with_the_same_weights(tmp_path, stop_after, capsys):
    # Dropout makes the result depend on the restored random state too.
    full = _train(tmp_path, "model.dropout=0.2", name="full")
    part = _train(tmp_path, "model.dropout=0.2", name="part", extra=("--stop-after-epochs", str(stop_after)))
    assert "--resume" in capsys.readouterr().out
    rows = _rows(part)
    assert len(rows) == stop_after
    assert main(["train", "--resume", str(part)]) == 0
    a = load_file(str(full / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(part / "checkpoints" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["val_mean_auc"] for r in _rows(full)] == [r["val_mean_auc"] for r in _rows(part)]


def test_stage_two_on_cached_features_matches_running_the_backbone(tmp_path):
    cached = _train(tmp_path, name="cached", extra=())
    stages = (
        '[{"name": "ct1", "subset": "conditional", "loss": "conditional", "epochs": 2, "lr": 0.003},'
        ' {"name": "ct2", "loss": "unconditional", "train": "head", "epochs": 1, "lr": 0.001,'
        ' "features_once": false}]'
    )
    live = _train(tmp_path, f"train.stages={stages}", name="live", extra=("--set", "data.augment=false"))
    cached2 = _train(tmp_path, name="cached2", extra=("--set", "data.augment=false"))
    a = load_file(str(cached2 / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(live / "checkpoints" / "last" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert cached.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "model.backbone=nope"], "unknown backbone 'nope'"),
        (["--set", "policy.default=u-maybe"], "unknown uncertainty policy 'u-maybe'"),
        (["--set", "policy.overrides={Nope: u-ones}"], "unknown label"),
        (["--set", "data.dataset=nope"], "unknown dataset 'nope'"),
        (["--set", "train.epochz=3"], "train.epochz"),
        (["--set", "data.dataset=csv", "--set", "hierarchy=synthetic"], "data.root"),
        (["--resume", "{tmp}/missing"], "config.yaml"),
        (["--resume", "{tmp}", "--set", "train.epochs=1"], "--resume"),
    ],
)
def test_user_errors_end_in_one_line_and_exit_2(tmp_path, capsys, args, needle):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["train", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hmlc: error:")
    assert needle in err


def test_a_failed_start_leaves_no_run_directory(tmp_path):
    assert main(["train", "--out", str(tmp_path), "--set", "model.backbone=nope"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_an_existing_run_directory_is_never_overwritten(tmp_path, capsys):
    run = _train(tmp_path)
    before = (run / "checkpoints" / "last" / "model.safetensors").read_bytes()
    assert main(["train", "--out", str(tmp_path), *sets("output.name=run")]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run / "checkpoints" / "last" / "model.safetensors").read_bytes() == before


def test_closure_can_be_turned_off(tmp_path):
    run = _train(tmp_path, "data.closure.enabled=false")
    closure = json.loads((run / "closure.json").read_text())
    assert not closure["enabled"] and set(closure["changed"].values()) == {0}
    config = load_config(run / "config.yaml")
    data = prepare_experiment(config, with_valid=False)
    assert np.array_equal(np.nan_to_num(data.train.codes, nan=9), np.nan_to_num(data.train.table.codes(), nan=9))


def test_random_hflip_flips_a_reproducible_random_subset():
    from hmlc.engine.trainer import random_hflip

    x = torch.arange(64 * 2 * 3, dtype=torch.uint8).reshape(64, 1, 2, 3)
    out = random_hflip(x, torch.Generator().manual_seed(7))
    flipped = [bool(torch.equal(out[i], x[i].flip(-1))) for i in range(64)]
    kept = [bool(torch.equal(out[i], x[i])) for i in range(64)]
    assert all(f != k for f, k in zip(flipped, kept))  # every image is either flipped or untouched
    assert 16 < sum(flipped) < 48
    again = random_hflip(x, torch.Generator().manual_seed(7))
    assert torch.equal(out, again) and out.dtype == torch.uint8


@pytest.mark.slow
def test_compiled_training_compiles_once_per_stage(tmp_path):
    """train.compile=true trains, and compiles per batch shape, not per epoch."""
    import torch._dynamo.utils as dynamo_utils

    torch._dynamo.reset()
    dynamo_utils.counters.clear()
    run = _train(
        tmp_path, "train.compile=true", "train.method=flat", "train.epochs=3", "train.deterministic=false",
        "data.params.n_train=100",  # a last batch of 4 besides the full ones
    )
    assert [r["epoch"] for r in _rows(run)] == ["1", "2", "3"]
    assert 1 <= dynamo_utils.counters["frames"]["ok"] <= 2
    assert json.loads((run / "results.json").read_text())["completed"]


def test_loader_workers_change_nothing_but_speed(tmp_path):
    """data.num_workers=2 reads in worker processes and ends with the same weights as reading in-process."""
    inline = _train(tmp_path, "data.num_workers=0", name="inline")
    workers = _train(tmp_path, "data.num_workers=2", name="workers")
    a = load_file(str(inline / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(workers / "checkpoints" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_tensorboard_gets_the_same_scalars_as_metrics_csv(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _train(tmp_path, "output.tensorboard=true", name="tb")
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("val_mean_auc")]
    rows = _rows(run)
    assert [step for step, _ in logged] == [1, 2, 3]
    assert [v for _, v in logged] == pytest.approx([float(r["val_mean_auc"]) for r in rows], abs=1e-6)
    assert "val_auc/Line Through Mass" in events.Tags()["scalars"]
    off = _train(tmp_path, "output.tensorboard=false", name="off")
    assert not (off / "tensorboard").exists()


@pytest.mark.slow
def test_loader_workers_decoding_files_after_opencv_threads_do_not_hang(tmp_path):
    """The process that forks the DataLoader workers has used OpenCV's thread pool (as template
    fitting does); the workers then decode PNGs with OpenCV. A fork-unsafe step there hangs."""
    import subprocess
    import sys

    from hmlc.data.synthetic import export_synthetic

    export_synthetic(tmp_path / "synth", n=80, seed=1, image_size=40)
    settings = [
        arg
        for item in (
            "data.dataset=csv", "hierarchy=synthetic", f"data.root={tmp_path / 'synth'}", "data.num_workers=2",
            "data.image_size=32", "output.name=files", "train.epochs=2", "train.head_epochs=1",
            "train.batch_size=16", "train.progress=false", "output.tensorboard=false",
        )
        for arg in ("--set", item)
    ]
    script = f"""
import cv2, numpy as np
from hmlc.cli.main import main
big = np.random.default_rng(0).integers(0, 255, (2000, 2000), dtype=np.uint8)
for _ in range(10):
    cv2.GaussianBlur(cv2.resize(big, (1500, 1500)), (31, 31), 0)
raise SystemExit(main(["train", "--out", {str(tmp_path)!r}, *{settings!r}]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "files" / "results.json").read_text())["completed"]

"""A training split whose last batch holds one sample: BatchNorm cannot train on it, hmlc must not crash."""

from __future__ import annotations

import csv

from hmlc.cli.main import main

from .conftest import sets


def _rows(run_dir):
    with (run_dir / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_batch_of_one_sample_is_left_out_with_one_note(tmp_path, capsys):
    # 97 = 6 x 16 + 1: every epoch ends with a batch of one for tiny_cnn's BatchNorm.
    args = ["train", "--out", str(tmp_path), *sets("data.params.n_train=97", "train.method=flat", "output.name=r")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("a training batch of one sample is left out (BatchNorm needs two or more)") == 1
    assert "Traceback" not in err
    rows = _rows(tmp_path / "r")
    assert [int(r["train_images"]) for r in rows] == [96, 96]
    assert all(r["train_loss"] not in ("", "nan") for r in rows)


def test_without_batchnorm_a_batch_of_one_is_trained_on(tmp_path, capsys):
    # The MLP has no BatchNorm: nothing is left out and nothing is said.
    args = ["train", "--out", str(tmp_path), *sets("data.dataset=synthetic-vectors", "data.params.n_train=97",
                                                   "train.method=flat", "output.name=r", "model.backbone=mlp",
                                                   "model.backbone_params.layers=1", "model.backbone_params.width=16")]
    assert main(args) == 0
    assert "batch of one" not in capsys.readouterr().err
    assert [int(r["train_images"]) for r in _rows(tmp_path / "r")] == [97, 97]

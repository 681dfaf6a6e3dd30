"""data.on_bad_image=skip: training goes on without unreadable images and lists them in skipped.txt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hmlc.data.images import FileImageSource, ImageIndexDataset, SubsetImageSource, split_skipped
from hmlc.errors import DataError
from tests.reliability.conftest import run_cli, tiny_sets


def test_a_skipped_image_is_dropped_from_its_batch(tmp_path: Path) -> None:
    import cv2

    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((8, 8), 7, np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:30])
    source = SubsetImageSource(FileImageSource([bad, good, bad], 8), np.array([0, 1, 2]))
    with pytest.raises(DataError, match="bad.png"):
        ImageIndexDataset(source)[0]
    items = [ImageIndexDataset(source, "skip")[i] for i in range(3)]
    x, idx = torch.stack([i[0] for i in items]), torch.tensor([i[1] for i in items])
    kept, kept_idx, skipped = split_skipped(x, idx)
    assert kept_idx.tolist() == [1] and skipped == [0, 2] and int(kept[0, 0, 0, 0]) == 7


def _truncate(images: list[Path]) -> None:
    for image in images:
        image.write_bytes(image.read_bytes()[:60])  # the header survives, the pixels do not


@pytest.mark.parametrize("method", ["flat", "ct"])  # ct: stage 2 trains on features computed once
def test_training_and_validation_skip_unreadable_images_and_list_them(
    synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_folder, data)
    train_images = sorted((data / "train").rglob("*.png"))
    valid_images = sorted((data / "valid").rglob("*.png"))
    _truncate([*train_images[1:3], valid_images[0]])
    sets = tiny_sets(
        data, "output.name=s", "data.on_bad_image=skip", "train.epochs=2", f"train.method={method}",
        "train.head_epochs=1",
    )
    code, out, err = run_cli(["train", "--out", tmp_path / "runs", *sets], capsys)
    assert code == 0, err
    run = tmp_path / "runs" / "s"
    listed = (run / "skipped.txt").read_text().splitlines()
    assert sorted(Path(p).resolve() for p in listed) == sorted(
        p.resolve() for p in [*train_images[1:3], valid_images[0]]
    )
    assert f"skipped 3 unreadable image(s) (2 training, 1 validation; data.on_bad_image=skip); list: {run / 'skipped.txt'}" in err
    # Validation scores the images that could be read, and only those.
    final = json.loads((run / "results.json").read_text())["final"]
    assert final and all(v["n_pos"] + v["n_neg"] == len(valid_images) - 1 for v in final.values())
    # error, the default, stops at the first unreadable image, naming it.
    code, out, err = run_cli(["train", "--out", tmp_path / "runs", *tiny_sets(data, "output.name=e")], capsys)
    assert code == 2 and "cannot decode image" in err


def test_unreadable_validation_images_stop_a_run_by_default(
    synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_folder, data)
    bad = sorted((data / "valid").rglob("*.png"))[2]
    _truncate([bad])
    code, out, err = run_cli(["train", "--out", tmp_path / "runs", *tiny_sets(data, "output.name=e")], capsys)
    assert code == 2 and err.splitlines()[-1].startswith("hmlc: error: ") and str(bad) in err, err


def test_predict_skips_unreadable_images_when_asked(
    synth_folder: Path, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    shutil.copytree(synth_folder / "valid", images)
    files = sorted(images.rglob("*.png"))
    _truncate(files[1:3])
    out = tmp_path / "preds.csv"
    code, _, err = run_cli(["predict", "--checkpoint", tiny_run, images, "--out", out], capsys)
    assert code == 2 and str(files[1]) in err and not out.exists(), err
    code, stdout, err = run_cli(
        ["predict", "--checkpoint", tiny_run, images, "--out", out, "--on-bad-image", "skip"], capsys
    )
    assert code == 0, err
    rows = pd.read_csv(out)
    assert sorted(rows["Path"]) == sorted(p.as_posix() for p in [files[0], *files[3:]])
    assert rows.drop(columns="Path").notna().all().all()
    listed = tmp_path / "preds.skipped.txt"
    assert listed.read_text().splitlines() == [p.as_posix() for p in files[1:3]]
    assert f"skipped 2 unreadable image(s) (--on-bad-image skip), list: {listed}" in stdout
    # A dataset split: data.on_bad_image of the configuration says the same.
    shutil.copytree(synth_folder, tmp_path / "data")
    bad = sorted((tmp_path / "data" / "valid").rglob("*.png"))[0]
    _truncate([bad])
    dataset = ["--dataset", "csv", "--split", "valid", "--set", f"data.root={tmp_path / 'data'}", "--set",
               "hierarchy=synthetic"]
    code, _, err = run_cli(["predict", "--checkpoint", tiny_run, *dataset, "--out", out], capsys)
    assert code == 2 and "cannot decode image" in err
    code, stdout, err = run_cli(
        ["predict", "--checkpoint", tiny_run, *dataset, "--set", "data.on_bad_image=skip", "--out", out], capsys
    )
    assert code == 0, err
    assert len(pd.read_csv(out)) == len(files) - 1 and "skipped 1 unreadable image(s)" in stdout

"""data.on_bad_image=skip: training goes on without unreadable images and lists them in skipped.txt."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
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


def test_training_skips_unreadable_images_and_lists_them(
    synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_folder, data)
    images = sorted((data / "train").rglob("*.png"))
    for image in images[1:3]:
        image.write_bytes(image.read_bytes()[:60])
    sets = tiny_sets(data, "output.name=s", "data.on_bad_image=skip", "train.epochs=2")
    code, out, err = run_cli(["train", "--out", tmp_path / "runs", *sets], capsys)
    assert code == 0, err
    listed = (tmp_path / "runs" / "s" / "skipped.txt").read_text().splitlines()
    assert sorted(Path(p).resolve() for p in listed) == sorted(p.resolve() for p in images[1:3])
    assert "skipped 2 unreadable training image(s)" in err
    code, out, err = run_cli(["train", "--out", tmp_path / "runs", *tiny_sets(data, "output.name=e")], capsys)
    assert code == 2 and "cannot decode image" in err

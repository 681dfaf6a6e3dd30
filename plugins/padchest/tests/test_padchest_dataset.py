"""The PadChest reader: real label rows, name normalisation, filters, the patient split, images, 16-bit decode."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hmlc_padchest.dataset import PadChestDataset, patient_partition

from hmlc.data.datasets import DatasetSplit
from hmlc.data.images import decode_image
from hmlc.errors import ConfigError, DataError
from hmlc.plugins import get_host

CSV = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"


def graph(name: str = "padchest") -> Any:
    return get_host().hierarchy(name)


def load(root: Path, split: str = "all", *, hierarchy: str = "padchest", size: int | None = None, **params: Any) -> DatasetSplit:
    g = graph(hierarchy)
    return PadChestDataset().load(split, root=root, params=params, image_size=size, labels=g.labels, graph=g)


def positives(split: DatasetSplit) -> list[set[str]]:
    labels = split.table.labels
    return [{labels[k] for k in np.flatnonzero(row)} for row in split.table.codes()]


def row(i: int, labels: str, *, patient: str | None = None, projection: str = "PA", **extra: str) -> dict[str, str]:
    return {
        "ImageID": f"img{i}.png", "ImageDir": str(i % 3), "StudyID": f"study{i}",
        "PatientID": patient or f"patient{i}", "Projection": projection, "Labels": labels, **extra,
    }


@pytest.fixture(scope="module")
def sample_rows(sample_labels: Path) -> list[dict[str, str]]:
    with open(sample_labels, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.realdata
def test_real_rows_give_their_written_labels(sample_rows: list[dict[str, str]], tmp_path: Path, padchest_folder: Any) -> None:
    padchest_folder(tmp_path, sample_rows)
    for hierarchy, column_names in (("padchest", ["Labels"]), ("padchest-full", ["Labels", "Localizations"])):
        g = graph(hierarchy)
        split = load(tmp_path, hierarchy=hierarchy)
        assert split.table.frame["id"].tolist() == [r["ImageID"] for r in sample_rows]
        assert split.table.frame["patient"].tolist() == [r["PatientID"] for r in sample_rows]
        expected = []
        for r in sample_rows:
            names = {n.strip().removeprefix("loc ") for c in column_names for n in ast.literal_eval(r[c])}
            expected.append({n for n in names if n in g})
        assert positives(split) == expected
    # Row 9 writes ' hemidiaphragm elevation' with a leading space; row 2 names 'suboptimal study',
    # which only padchest-full has.
    assert "hemidiaphragm elevation" in positives(load(tmp_path))[8]
    assert "suboptimal study" not in positives(load(tmp_path))[2]
    paths = load(tmp_path).table.frame["path"].tolist()
    assert paths == [str(tmp_path / r["ImageDir"] / r["ImageID"]) for r in sample_rows]


def test_names_are_normalised_and_unknown_ones_reported(tmp_path: Path, padchest_folder: Any, capsys: Any) -> None:
    padchest_folder(tmp_path, [
        row(0, "['  Pleural   EFFUSION ', 'copd signs']"),
        row(1, "['pleural efusion', 'pleural efusion', 'cardiomegaly']"),
        row(2, "['not a finding']"),
    ])
    split = load(tmp_path)
    err = capsys.readouterr().err
    assert positives(split) == [{"pleural effusion", "COPD signs"}, {"cardiomegaly"}]  # row 3: nothing known
    assert "padchest: warning: 2 label names" in err
    assert "'pleural efusion' (1)" in err and "'not a finding' (1)" in err
    fixed = load(tmp_path, aliases={"pleural efusion": "pleural effusion"})
    assert positives(fixed)[1] == {"pleural effusion", "cardiomegaly"}
    with pytest.raises(ConfigError, match="not a PadChest label"):
        load(tmp_path, aliases={"x": "no such label"})
    with pytest.raises(DataError, match=r"dataset 'padchest' has no label\(s\) \['Cardiomegaly'\]"):
        PadChestDataset().load("all", root=tmp_path, params={}, image_size=None, labels=["normal", "Cardiomegaly"])


def test_normal_exclude_and_blank_rows(tmp_path: Path, padchest_folder: Any, capsys: Any) -> None:
    padchest_folder(tmp_path, [
        row(0, "['normal']"),
        row(1, "['normal', 'scoliosis']"),
        row(2, "['exclude']"),
        row(3, ""),
        row(4, "[]"),
        row(5, "['normal', 'suboptimal study']"),
    ])
    split = load(tmp_path)
    err = capsys.readouterr().err
    assert split.table.frame["id"].tolist() == ["img0.png", "img1.png", "img5.png"]
    assert positives(split) == [{"normal"}, {"scoliosis"}, {"normal"}]
    assert "2 rows without a known label skipped" in err and "1 rows labelled 'exclude' skipped" in err
    assert "'normal' dropped beside a finding in 1 rows" in err
    full = load(tmp_path, hierarchy="padchest-full")
    assert positives(full) == [{"normal"}, {"scoliosis"}, {"exclude"}, {"normal", "suboptimal study"}]


def test_a_cell_that_is_not_a_list_is_an_error_naming_the_row(tmp_path: Path, padchest_folder: Any) -> None:
    padchest_folder(tmp_path, [row(0, "['normal']"), row(1, "__import__('os').system('true')")])
    with pytest.raises(DataError, match=r"column 'Labels' on data row 2 .*not a list of label names"):
        load(tmp_path)


def test_prediction_needs_no_labels(tmp_path: Path, padchest_folder: Any) -> None:
    padchest_folder(tmp_path, [row(0, "['normal']"), row(1, "")])
    for labels in (None, ()):
        split = PadChestDataset().load("all", root=tmp_path, params={}, image_size=None, labels=labels)
        assert split.table.labels == () and len(split.table) == 2


def test_projection_and_method_filters(tmp_path: Path, padchest_folder: Any) -> None:
    padchest_folder(tmp_path, [
        row(0, "['normal']", projection="PA"),
        row(1, "['normal']", projection="AP_horizontal", MethodLabel="RNN_model"),
        row(2, "['normal']", projection="L"),
        row(3, "['normal']", projection="COSTAL"),
    ])
    ids = lambda **p: load(tmp_path, **p).table.frame["id"].tolist()  # noqa: E731
    assert ids(projections="pa, ap_horizontal") == ["img0.png", "img1.png"]
    assert ids(projections="L") == ["img2.png"]
    assert ids(method="model") == ["img1.png"]
    assert ids(method="physician") == ["img0.png", "img2.png", "img3.png"]
    assert load(tmp_path).table.frame["view"].tolist() == ["frontal", "frontal", "lateral", "costal"]
    resolved = PadChestDataset().resolve_params({"projections": "PA,L", "aliases": {"a": "normal"}})
    assert json.loads(json.dumps(resolved)) == resolved  # the core hashes resolved params into cache keys
    with pytest.raises(ConfigError, match="data.params.method"):
        load(tmp_path, method="robot")
    with pytest.raises(ConfigError, match="projections"):
        load(tmp_path, projections=" , ")


def test_patient_split_is_seeded_deterministic_and_disjoint(tmp_path: Path, padchest_folder: Any) -> None:
    rows = [row(i, "['normal']", patient=f"p{i // 3}") for i in range(600)]
    padchest_folder(tmp_path, rows, images=False)
    parts = {s: load(tmp_path, s, labels_only=True).table.frame for s in ("train", "valid", "test")}
    patients = {s: set(f["patient"]) for s, f in parts.items()}
    assert not (patients["train"] & patients["valid"] or patients["train"] & patients["test"]
                or patients["valid"] & patients["test"])
    assert sum(len(f) for f in parts.values()) == 600
    assert 10 <= len(patients["test"]) <= 30 and 10 <= len(patients["valid"]) <= 30  # about 10% of 200
    again = load(tmp_path, "test", labels_only=True).table.frame
    assert again["id"].tolist() == parts["test"]["id"].tolist()
    other = load(tmp_path, "test", labels_only=True, split_seed=1).table.frame
    assert set(other["patient"]) != patients["test"]
    # A patient's side does not depend on the other rows.
    sides = patient_partition([f"p{i}" for i in range(200)], 0.1, 0.1, 0)
    assert list(patient_partition(["p7"], 0.1, 0.1, 0)) == [sides[7]]
    with pytest.raises(ConfigError, match="below 1"):
        load(tmp_path, valid_fraction=0.5, test_fraction=0.5)


def test_images_flat_or_nested_and_a_partial_download(tmp_path: Path, padchest_folder: Any, capsys: Any) -> None:
    rows = [row(i, "['normal']") for i in range(6)]
    flat = padchest_folder(tmp_path / "flat", rows, flat=True).parent
    assert load(flat).table.frame["path"].tolist() == [str(flat / f"img{i}.png") for i in range(6)]
    part = padchest_folder(tmp_path / "part", rows, images=[0, 4]).parent
    capsys.readouterr()
    split = load(part)
    assert split.table.frame["id"].tolist() == ["img0.png", "img4.png"]
    assert f"padchest: using 2 of 6 images listed (the others are not in {part})" in capsys.readouterr().err
    none = padchest_folder(tmp_path / "none", rows, images=False).parent
    with pytest.raises(DataError, match="none of the 6 images"):
        load(none)
    assert len(load(none, labels_only=True).table) == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"no {CSV} in {tmp_path / 'empty'}"):
        load(tmp_path / "empty")


def test_sixteen_bit_png_is_read_at_full_depth(tmp_path: Path, padchest_folder: Any) -> None:
    """PadChest stores 12-bit values in 16-bit PNGs: the core decoder must use all of them.

    A 64 x 64 ramp over every 12-bit level: whatever window the decoder picks
    (the image's range, its maximum, percentiles), the levels keep their order,
    fill most of the 8-bit range and stay distinct. Dividing by 65535 (all
    below 16) or keeping the low byte (order broken) fails.
    """
    padchest_folder(tmp_path, [row(0, "['normal']")], images=False)
    values = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    (tmp_path / "0").mkdir()
    cv2.imwrite(str(tmp_path / "0" / "img0.png"), values)
    assert cv2.imread(str(tmp_path / "0" / "img0.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    image = load(tmp_path).images.read(0)
    assert image.dtype == np.uint8 and image.shape == values.shape
    flat = image.ravel().astype(int)
    assert (np.diff(flat) >= 0).all()
    assert flat.max() - flat.min() >= 250
    assert len(np.unique(flat)) >= 250
    assert np.array_equal(image, decode_image(tmp_path / "0" / "img0.png"))
    assert load(tmp_path, size=8).images.read(0).shape == (8, 8)


def test_reader_declares_closed_evaluation() -> None:
    reader = get_host().dataset("padchest")
    assert reader.default_eval_closure is True and reader.default_hierarchy == "padchest"
    with pytest.raises(ConfigError, match="set data.root"):
        reader.load("train", root=None, params={}, image_size=None, labels=("normal",))

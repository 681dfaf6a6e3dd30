"""The CheXpert reader: real CSVs (checked against the csv module), formats, filters, hold-out, missing images."""

from __future__ import annotations

import csv
import gzip
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from hmlc_chexpert import CHEXPERT_LABELS
from hmlc_chexpert.dataset import CheXpertDataset

from hmlc.data.datasets import DatasetSplit, patients_and_studies
from hmlc.errors import ConfigError, DataError
from hmlc.plugins import get_host

LABELS = list(CHEXPERT_LABELS)
CODE_OF = {"1": 1.0, "1.0": 1.0, "0": 0.0, "0.0": 0.0, "-1": -1.0, "-1.0": -1.0}


def load(root: Path | None, split: str = "train", size: int | None = None, **params: object) -> DatasetSplit:
    return CheXpertDataset().load(split, root=root, params=params, image_size=size, labels=LABELS)


class CsvText:
    """A CSV file's header and rows as read by the csv module (values as written)."""

    def __init__(self, path: Path) -> None:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", newline="") as f:
            reader = csv.reader(f)
            self.header = next(reader)
            self.rows = list(reader)

    def column(self, name: str, rows: list[list[str]] | None = None) -> list[str]:
        i = self.header.index(name)
        return [r[i] for r in (self.rows if rows is None else rows)]

    def where(self, name: str, value: str) -> list[list[str]]:
        i = self.header.index(name)
        return [r for r in self.rows if r[i] == value]

    def code_counts(self, rows: list[list[str]] | None = None) -> dict[str, Counter]:
        """Label -> Counter over 1.0 / 0.0 / -1.0 / "blank", counted from the text."""
        out = {}
        for label in LABELS:
            counts: Counter = Counter()
            for value, n in Counter(self.column(label, rows)).items():
                counts[CODE_OF[value] if value else "blank"] += n
            out[label] = counts
        return out


def table_counts(split: DatasetSplit) -> dict[str, Counter]:
    codes = split.table.codes()
    out = {}
    for k, label in enumerate(LABELS):
        column = codes[:, k]
        counts = Counter({c: int((column == c).sum()) for c in (1.0, 0.0, -1.0)})
        counts["blank"] = int(np.isnan(column).sum())
        out[label] = +counts  # drop zero counts, as counting rows gives none
    return out


# ------------------------------------------------------------- real data


@pytest.mark.realdata
def test_complete_train_csv(train_full: Path, chexpert_small: Path) -> None:
    text = CsvText(train_full)
    split = load(chexpert_small.parent, train_csv=str(train_full), labels_only=True)
    assert len(split.table) == len(text.rows) == 223_414
    assert table_counts(split) == text.code_counts()
    frame = split.table.frame
    paths = text.column("Path")
    assert frame["id"].tolist() == paths
    assert frame["patient"].tolist() == [p.split("/")[2] for p in paths]
    assert frame["study"].tolist() == ["/".join(p.split("/")[:4]) for p in paths]
    assert frame["patient"].nunique() == 64_540
    assert frame["path"].iloc[0] == str(chexpert_small / "train/patient00001/study1/view1_frontal.jpg")

    frontal_rows = text.where("Frontal/Lateral", "Frontal")
    frontal = load(chexpert_small.parent, train_csv=str(train_full), labels_only=True, views="frontal")
    assert len(frontal.table) == len(frontal_rows) == 191_027
    assert (frontal.table.frame["view"] == "frontal").all()
    assert table_counts(frontal) == text.code_counts(frontal_rows)
    lateral = load(chexpert_small.parent, train_csv=str(train_full), labels_only=True, views="lateral")
    assert len(lateral.table) == 223_414 - 191_027

    pa_rows = text.where("AP/PA", "PA")
    pa = load(chexpert_small.parent, train_csv=str(train_full), labels_only=True, ap_pa="PA")
    assert len(pa.table) == len(pa_rows)
    assert table_counts(pa) == text.code_counts(pa_rows)


@pytest.mark.realdata
def test_fast_path_ids_equal_the_core_parser(train_full: Path) -> None:
    split = load(None, train_csv=str(train_full), labels_only=True)
    ids = split.table.frame["id"].tolist()
    patients, studies = patients_and_studies(ids)
    assert split.table.frame["patient"].tolist() == patients
    assert split.table.frame["study"].tolist() == studies


@pytest.mark.realdata
def test_official_valid_split(chexpert_small: Path) -> None:
    text = CsvText(chexpert_small / "valid.csv")
    for root in (chexpert_small, chexpert_small.parent):
        split = load(root, "valid")
        assert len(split.table) == len(text.rows) == 234
        assert table_counts(split) == text.code_counts()
        assert all(Path(p).is_file() for p in split.table.frame["path"])
    frontal = load(chexpert_small, "valid", views="frontal")
    assert len(frontal.table) == 202
    assert table_counts(frontal) == text.code_counts(text.where("Frontal/Lateral", "Frontal"))
    assert frontal.table.frame["patient"].str.fullmatch(r"patient\d{5}").all()
    img = frontal.images.read(0)
    assert img.dtype == np.uint8 and img.ndim == 2 and min(img.shape) >= 300  # native size
    assert load(chexpert_small, "valid", size=64).images.read(0).shape == (64, 64)


@pytest.mark.realdata
def test_sample_train_split_with_images(chexpert_small: Path) -> None:
    text = CsvText(chexpert_small / "train.csv")
    split = load(chexpert_small, "train")
    assert len(split.table) == len(text.rows) == 636
    assert table_counts(split) == text.code_counts()
    assert get_host().dataset("chexpert").default_hierarchy == "chexpert"
    assert get_host().hierarchy("chexpert").labels == CHEXPERT_LABELS


@pytest.mark.realdata
def test_holdout_on_the_complete_train_csv(train_full: Path) -> None:
    params = {"train_csv": str(train_full), "labels_only": True, "holdout_fraction": 0.1, "holdout_seed": 3}
    held = load(None, "holdout", **params).table.frame
    rest = load(None, "train-holdout", **params).table.frame
    assert set(held["patient"]).isdisjoint(rest["patient"])
    assert len(held) + len(rest) == 223_414
    assert 0.09 < held["patient"].nunique() / 64_540 < 0.11


# ------------------------------------------------------ formats, made here


def write_dataset(folder: Path, rows: list[dict[str, str]], *, gz: bool = False, images: bool = True) -> Path:
    """A CheXpert-shaped folder with train.csv(.gz), valid.csv and (optionally) 8x8 JPEGs."""
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *LABELS]
    folder.mkdir(parents=True)
    for name in ("train.csv.gz" if gz else "train.csv", "valid.csv"):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(folder / name, "wt", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
    if images:
        for r in rows:
            path = folder.parent / r["Path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((8, 8), 100, np.uint8))
    return folder


def make_rows(folder_name: str, n: int, *, floats: bool) -> list[dict[str, str]]:
    rng = np.random.default_rng(0)
    values = ["1.0", "0.0", "-1.0", ""] if floats else ["1", "0", "-1", ""]
    rows = []
    for i in range(n):
        frontal = i % 3 != 2
        view = f"view{1 if frontal else 2}_{'frontal' if frontal else 'lateral'}.jpg"
        row = {
            "Path": f"{folder_name}/train/patient{i // 2 + 1:05d}/study{i % 2 + 1}/{view}",
            "Sex": "Female",
            "Age": "60",
            "Frontal/Lateral": "Frontal" if frontal else "Lateral",
            "AP/PA": ("AP" if i % 2 else "PA") if frontal else "",
        }
        row.update({label: values[int(rng.integers(4))] for label in LABELS})
        rows.append(row)
    return rows


@pytest.mark.parametrize(
    ("folder_name", "gz", "floats"), [("CheXpert-v1.0", True, True), ("CheXpert-v1.0-small", False, False)]
)
def test_both_releases_gz_and_value_styles(tmp_path: Path, folder_name: str, gz: bool, floats: bool) -> None:
    rows = make_rows(folder_name, 12, floats=floats)
    folder = write_dataset(tmp_path / folder_name, rows, gz=gz)
    inside, above = load(folder), load(tmp_path)
    assert inside.table.frame.equals(above.table.frame)
    assert table_counts(inside) == CsvText(next(folder.glob("train.csv*"))).code_counts()
    assert inside.table.frame["path"].tolist() == [str(tmp_path / r["Path"]) for r in rows]
    assert inside.images.read(0).shape == (8, 8)
    assert len(load(folder, views="frontal").table) == 8
    assert load(folder, ap_pa="AP").table.frame["view"].eq("frontal").all()
    assert len(load(folder, ap_pa="AP").table) + len(load(folder, ap_pa="PA").table) == 8


def test_missing_images_are_counted_and_named_before_any_decode(tmp_path: Path) -> None:
    rows = make_rows("CheXpert-v1.0-small", 12, floats=True)
    folder = write_dataset(tmp_path / "CheXpert-v1.0-small", rows)
    gone = [tmp_path / rows[i]["Path"] for i in (3, 5, 6, 7, 8, 9, 10)]
    for path in gone:
        path.unlink()
    with pytest.raises(DataError) as info:
        load(folder)
    message = str(info.value)
    assert "7 of 12 images" in message and "data.root" in message
    assert str(gone[0]) in message and str(gone[4]) in message and str(gone[5]) not in message
    assert "\n" not in message
    assert len(load(folder, labels_only=True).table) == 12  # label statistics need no images
    shutil.rmtree(tmp_path / "CheXpert-v1.0-small" / "train")
    assert "12 of 12" in str(pytest.raises(DataError, load, folder).value)


def test_holdout_is_patient_level_and_deterministic(tmp_path: Path) -> None:
    rows = make_rows("CheXpert-v1.0-small", 400, floats=True)
    folder = write_dataset(tmp_path / "CheXpert-v1.0-small", rows, images=False)
    params = {"labels_only": True, "holdout_fraction": 0.25}
    held, rest = load(folder, "holdout", **params).table.frame, load(folder, "train-holdout", **params).table.frame
    assert set(held["patient"]).isdisjoint(rest["patient"])
    assert sorted(held["id"].tolist() + rest["id"].tolist()) == sorted(r["Path"] for r in rows)
    assert 0.15 < held["patient"].nunique() / 200 < 0.35
    assert load(folder, "holdout", **params).table.frame.equals(held)
    other_seed = load(folder, "holdout", **params, holdout_seed=1).table.frame
    assert set(other_seed["patient"]) != set(held["patient"])
    # A patient's side does not depend on the view filter.
    held_frontal = load(folder, "holdout", **params, views="frontal").table.frame
    assert set(held_frontal["patient"]) <= set(held["patient"])
    assert (held_frontal["view"] == "frontal").all()
    assert len(held_frontal) == int((held["view"] == "frontal").sum())


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"views": "sideways"}, "data.params.views"),
        ({"ap_pa": "LL"}, "data.params.ap_pa"),
        ({"holdout_fraction": 1.0}, "data.params.holdout_fraction"),
        ({"frontal_only": True}, "no parameter 'frontal_only'"),
        ({"labels_only": "yes"}, "data.params.labels_only must be bool"),
    ],
)
def test_bad_params_are_config_errors(tmp_path: Path, params: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load(tmp_path, **params)


def test_root_errors_say_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.root"):
        load(None)
    with pytest.raises(DataError, match="no train.csv in"):
        load(tmp_path)
    with pytest.raises(DataError, match="no split 'test'"):
        load(tmp_path, "test")

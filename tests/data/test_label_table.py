"""LabelTable and read_label_csv."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hmlc.data.table import LabelTable, read_label_csv
from hmlc.errors import DataError

LABELS = ["A", "B", "C"]


def make_table(n: int = 4) -> LabelTable:
    codes = np.array([[1, 0, np.nan], [-1, 1, 0], [0, np.nan, 1], [1, 1, -1]], dtype=np.float32)[:n]
    return LabelTable.from_codes(
        [f"img{i}" for i in range(n)], codes, LABELS, patients=["p1", "p1", "p2", "p3"][:n]
    )


def test_table_columns_and_codes() -> None:
    table = make_table()
    assert list(table.frame.columns) == ["id", "path", "patient", "study", "view", *LABELS]
    assert len(table) == 4 and table.labels == tuple(LABELS)
    codes = table.codes()
    assert codes.dtype == np.float32 and codes.shape == (4, 3)
    assert codes[1, 0] == -1 and np.isnan(codes[0, 2])
    assert table.frame["view"].tolist() == ["frontal"] * 4
    codes[0, 0] = 0  # codes() is a copy
    assert table.codes()[0, 0] == 1


def test_subset_and_with_codes_keep_metadata() -> None:
    table = make_table()
    sub = table.subset([3, 1])
    assert sub.frame["id"].tolist() == ["img3", "img1"]
    np.testing.assert_array_equal(sub.codes(), table.codes()[[3, 1]])
    assert list(sub.frame.index) == [0, 1]
    assert len(table.subset(np.array([True, False, True, False]))) == 2

    new = np.zeros((4, 3), dtype=np.float32)
    replaced = table.with_codes(new)
    np.testing.assert_array_equal(replaced.codes(), new)
    assert replaced.frame["patient"].tolist() == table.frame["patient"].tolist()
    assert table.codes()[0, 0] == 1  # the original is untouched
    with pytest.raises(DataError, match="shape"):
        table.with_codes(np.zeros((3, 3)))


def test_table_refuses_duplicate_ids_and_bad_columns() -> None:
    with pytest.raises(DataError, match="duplicate id 'x'"):
        LabelTable.from_codes(["x", "y", "x"], np.zeros((3, 1)), ["A"])
    frame = make_table().frame.drop(columns=["study"])
    with pytest.raises(DataError, match="expected"):
        LabelTable(frame, tuple(LABELS))


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


CSV_TEXT = "Path,Sex,A,B,C\nx/1.jpg,F,1,0,-1\nx/2.jpg,M,1.0,,-1.0\nx/3.jpg,F,,0.0,\n"


@pytest.mark.parametrize("name", ["labels.csv", "labels.csv.gz"])
def test_read_label_csv_accepts_all_spellings(tmp_path: Path, name: str) -> None:
    frame = read_label_csv(write(tmp_path / name, CSV_TEXT), ["C", "A"])
    assert list(frame.columns) == ["Path", "C", "A"]
    assert frame["Path"].tolist() == ["x/1.jpg", "x/2.jpg", "x/3.jpg"]
    assert all(frame[c].dtype == np.float32 for c in ["C", "A"])
    np.testing.assert_array_equal(frame[["A", "C"]].to_numpy(), [[1, -1], [1, -1], [np.nan, np.nan]])


def test_read_label_csv_extra_columns(tmp_path: Path) -> None:
    frame = read_label_csv(write(tmp_path / "l.csv", CSV_TEXT), ["A"], extra_columns=["Sex"])
    assert list(frame.columns) == ["Path", "Sex", "A"]
    assert frame["Sex"].tolist() == ["F", "M", "F"]


@pytest.mark.parametrize("bad, shown", [("2", "2"), ("yes", "'yes'"), ("0.5", "0.5"), ("NA", "'NA'")])
def test_read_label_csv_refuses_other_values(tmp_path: Path, bad: str, shown: str) -> None:
    path = write(tmp_path / "bad.csv", f"Path,A,B\nx/1.jpg,1,0\nx/2.jpg,0,{bad}\n")
    with pytest.raises(DataError) as info:
        read_label_csv(path, ["A", "B"])
    message = str(info.value)
    assert str(path) in message and "'B'" in message and shown in message and "row 2" in message


def test_read_label_csv_missing_column_lists_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "l.csv", CSV_TEXT)
    with pytest.raises(DataError, match=r"no column 'D'.*Path, Sex, A, B, C"):
        read_label_csv(path, ["A", "D"])
    with pytest.raises(DataError, match="no column 'Image'"):
        read_label_csv(path, ["A"], id_column="Image")
    with pytest.raises(DataError, match="does not exist"):
        read_label_csv(tmp_path / "nope.csv", ["A"])


@settings(max_examples=25, deadline=None)
@given(
    codes=arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 4)), elements=st.sampled_from([1.0, 0.0, -1.0, np.nan])),
    spellings=st.sampled_from([("1", "0", "-1"), ("1.0", "0.0", "-1.0")]),
)
def test_read_label_csv_round_trips_codes(tmp_path_factory: pytest.TempPathFactory, codes: np.ndarray, spellings: tuple[str, str, str]) -> None:
    text = {1.0: spellings[0], 0.0: spellings[1], -1.0: spellings[2]}
    labels = [f"L{k}" for k in range(codes.shape[1])]
    lines = ["Path," + ",".join(labels)]
    for i, row in enumerate(codes):
        lines.append(f"img{i}.png," + ",".join("" if np.isnan(v) else text[float(v)] for v in row))
    path = tmp_path_factory.mktemp("rt") / "codes.csv"
    path.write_text("\n".join(lines) + "\n")
    frame = read_label_csv(path, labels)
    np.testing.assert_array_equal(frame[labels].to_numpy(), codes)


@pytest.mark.realdata
def test_read_label_csv_on_full_chexpert_train(chexpert_dir: Path, chexpert_labels: list[str]) -> None:
    path = chexpert_dir / "train_full.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    frame = read_label_csv(path, chexpert_labels, extra_columns=["Frontal/Lateral"])
    assert len(frame) == 223_414
    # Independent count with the csv module.
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 223_414
    expected = sum(1 for r in rows if r["Cardiomegaly"] in ("1", "1.0"))
    assert (frame["Cardiomegaly"] == 1).sum() == expected
    assert frame["Path"].iloc[0] == rows[0]["Path"]
    # The documented facts about closure on real data (frontal images).
    frontal = frame[frame["Frontal/Lateral"] == "Frontal"]
    assert len(frontal) == 191_027
    cardio = frontal[frontal["Cardiomegaly"] == 1]
    assert len(cardio) == 23_385
    ec = cardio["Enlarged Cardiomediastinum"]
    assert ((ec == 1).sum(), (ec == -1).sum(), (ec == 0).sum(), ec.isna().sum()) == (1582, 269, 116, 21418)


@pytest.mark.realdata
def test_read_label_csv_on_chexpert_small(chexpert_dir: Path, chexpert_labels: list[str]) -> None:
    valid = read_label_csv(chexpert_dir / "CheXpert-v1.0-small" / "valid.csv", chexpert_labels)
    assert len(valid) == 234
    assert set(np.unique(valid[chexpert_labels].to_numpy())) == {0.0, 1.0}
    train = read_label_csv(chexpert_dir / "CheXpert-v1.0-small" / "train.csv", chexpert_labels)
    assert len(train) == 636
    values = train[chexpert_labels].to_numpy()
    assert {-1.0, 0.0, 1.0} <= set(np.unique(values[~np.isnan(values)])) and np.isnan(values).any()
    assert pd.Series(train["Path"]).str.startswith("CheXpert-v1.0-small/train/").all()

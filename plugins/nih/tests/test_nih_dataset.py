"""The NIH ChestX-ray14 reader: the real Data_Entry (counted independently), splits, layouts, partial downloads."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hmlc_nih import NIH_LABELS, NO_FINDING
from hmlc_nih.dataset import NihDataset

from hmlc.data.datasets import DatasetSplit
from hmlc.errors import ConfigError, DataError
from hmlc.plugins import get_host


def load(root: Path, split: str = "all", labels: Any = NIH_LABELS, **params: Any) -> DatasetSplit:
    return NihDataset().load(split, root=root, params=params, image_size=None, labels=labels)


def positives(split: DatasetSplit) -> list[set[str]]:
    labels = split.table.labels
    return [{labels[k] for k in np.flatnonzero(row)} for row in split.table.codes()]


def entry(i: int, findings: str, patient: int | None = None, view: str = "PA") -> dict[str, str]:
    return {
        "Image Index": f"{i:08d}_000.png", "Finding Labels": findings,
        "Patient ID": str(patient if patient is not None else i), "View Position": view,
    }


@pytest.fixture(scope="module")
def real_rows(data_entry: Path) -> list[dict[str, str]]:
    with gzip.open(data_entry, "rt", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def real_folder(data_entry: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("nih")
    (folder / data_entry.name).symlink_to(data_entry)
    return folder


@pytest.mark.realdata
def test_real_data_entry_counts(real_rows: list[dict[str, str]], real_folder: Path) -> None:
    split = load(real_folder, labels_only=True)
    assert len(real_rows) == len(split.table) == 112_120
    assert len({r["Patient ID"] for r in real_rows}) == split.table.frame["patient"].nunique() == 30_805
    written = Counter(name for r in real_rows for name in r["Finding Labels"].split("|"))
    counts = split.table.codes().sum(axis=0)
    assert {label: int(c) for label, c in zip(NIH_LABELS, counts)} == {label: written[label] for label in NIH_LABELS}
    assert set(written) == {*NIH_LABELS, NO_FINDING}
    assert int((split.table.codes().sum(axis=1) == 0).sum()) == written[NO_FINDING] == 60_361
    assert split.table.frame["id"].tolist() == [r["Image Index"] for r in real_rows]
    pa = load(real_folder, labels_only=True, views="PA")
    assert len(pa.table) == sum(r["View Position"] == "PA" for r in real_rows)


@pytest.mark.realdata
def test_real_patient_split_without_official_lists(real_folder: Path) -> None:
    parts = {s: load(real_folder, s, labels_only=True).table.frame for s in ("train", "valid", "test")}
    assert sum(len(f) for f in parts.values()) == 112_120
    patients = {s: set(f["patient"]) for s, f in parts.items()}
    assert not (patients["train"] & patients["valid"] or patients["train"] & patients["test"]
                or patients["valid"] & patients["test"])
    assert abs(len(patients["test"]) / 30_805 - 0.2) < 0.02 and abs(len(patients["valid"]) / 30_805 - 0.1) < 0.02


@pytest.mark.realdata
def test_a_partial_download_uses_the_images_present(
    real_rows: list[dict[str, str]], real_folder: Path, nih_files: Any, tmp_path: Path, capsys: Any
) -> None:
    write_image, _ = nih_files
    folder = tmp_path / "ChestX-ray14"
    folder.mkdir()
    (folder / "Data_Entry_2017_v2020.csv.gz").symlink_to(real_folder / "Data_Entry_2017_v2020.csv.gz")
    chosen = [0, 1, 2, 500, 112_119]
    for k, i in enumerate(chosen):  # two of the official archives
        write_image(folder / f"images_00{1 + k % 2}" / "images" / real_rows[i]["Image Index"], seed=i)
    split = load(folder)
    err = capsys.readouterr().err
    assert f"nih: using 5 of 112120 images listed (the others are not in {folder})" in err
    assert split.table.frame["id"].tolist() == [real_rows[i]["Image Index"] for i in chosen]
    assert positives(split) == [set(real_rows[i]["Finding Labels"].split("|")) - {NO_FINDING} for i in chosen]
    assert split.images.read(3).shape == (24, 24)
    assert split.table.frame["path"].tolist()[1] == str(folder / "images_002" / "images" / real_rows[1]["Image Index"])


def test_official_lists_make_the_test_split(nih_files: Any, tmp_path: Path) -> None:
    write_image, write_data_entry = nih_files
    rows = [entry(i, "Effusion" if i % 2 else NO_FINDING, patient=i // 4) for i in range(200)]
    write_data_entry(tmp_path / "Data_Entry_2017.csv", rows)
    for r in rows:
        write_image(tmp_path / "images" / r["Image Index"], seed=0, size=8)
    names = [r["Image Index"] for r in rows]
    (tmp_path / "test_list.txt").write_text("\n".join(names[:40]) + "\n")
    (tmp_path / "train_val_list.txt").write_text("\n".join(names[40:]) + "\n")
    parts = {s: load(tmp_path, s).table.frame for s in ("train", "valid", "test")}
    assert parts["test"]["id"].tolist() == names[:40]
    assert sorted(parts["train"]["id"].tolist() + parts["valid"]["id"].tolist()) == names[40:]
    assert not set(parts["train"]["patient"]) & set(parts["valid"]["patient"])
    assert len(parts["valid"]) > 0
    unofficial = load(tmp_path, "test", official_split=False).table.frame
    assert unofficial["id"].tolist() != names[:40]


def test_layouts_views_and_names(nih_files: Any, tmp_path: Path, capsys: Any) -> None:
    write_image, write_data_entry = nih_files
    rows = [
        entry(0, "Cardiomegaly|Emphysema"), entry(1, " Effusion | Pleural_Thickening ", view="AP"),
        entry(2, "No Finding"), entry(3, "Cardiomegaly|Fracture"),
    ]
    write_data_entry(tmp_path / "flat" / "Data_Entry_2017.csv", rows)
    for r in rows:
        write_image(tmp_path / "flat" / r["Image Index"], seed=1, size=8)
    graph = get_host().hierarchy("nih")
    split = NihDataset().load("all", root=tmp_path / "flat", params={}, image_size=8, labels=graph.labels, graph=graph)
    assert "nih: warning: 1 names in 'Finding Labels'" in capsys.readouterr().err
    assert positives(split) == [{"Cardiomegaly", "Emphysema"}, {"Effusion", "Pleural_Thickening"}, set(), {"Cardiomegaly"}]
    assert split.table.frame["study"].tolist() == [f"{i:08d}_000" for i in range(4)]
    assert load(tmp_path / "flat", views="AP").table.frame["id"].tolist() == ["00000001_000.png"]
    assert load(tmp_path, labels=None, labels_csv=str(tmp_path / "flat" / "Data_Entry_2017.csv"), labels_only=True).table.labels == ()
    with pytest.raises(DataError, match=r"dataset 'nih' has no label\(s\) \['Pleural Effusion'\]"):
        load(tmp_path / "flat", labels=["Pleural Effusion"])
    with pytest.raises(DataError, match="none of the 4 images"):
        write_data_entry(tmp_path / "empty" / "Data_Entry_2017.csv", rows)
        load(tmp_path / "empty")
    with pytest.raises(DataError, match="no Data_Entry_2017_v2020.csv or"):
        (tmp_path / "nothing").mkdir()
        load(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="data.params.views"):
        load(tmp_path / "flat", views="LL")


def test_registered_with_the_flat_hierarchy() -> None:
    host = get_host()
    graph = host.hierarchy("nih")
    assert graph.labels == NIH_LABELS and graph.edges == () and len(graph.roots) == 14
    reader = host.dataset("nih")
    assert reader.default_hierarchy == "nih" and reader.default_eval_closure is False

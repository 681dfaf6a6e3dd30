"""CsvDataset, the DatasetReader contract and built-in registration."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hmlc.data.datasets import (
    CsvDataset,
    DatasetReader,
    DatasetSplit,
    patients_and_studies,
    register_builtin_datasets,
)
from hmlc.data.images import decode_image
from hmlc.data.synthetic import SYNTHETIC_HIERARCHY, SyntheticDataset
from hmlc.errors import ConfigError, DataError

LABELS = list(SYNTHETIC_HIERARCHY.labels)


def load(root: Path | None, split: str = "train", params: dict | None = None, labels=LABELS, size: int = 32) -> DatasetSplit:
    return CsvDataset().load(split, root=root, params=params or {}, image_size=size, labels=labels)


def copy_export(exported, tmp_path: Path) -> Path:
    out = tmp_path / exported.out.name
    shutil.copytree(exported.out, out)
    return out


def test_export_round_trips_through_csv_dataset(exported) -> None:
    """The CSV reader sees exactly what SyntheticDataset generates for the same seed."""
    n_valid = round(exported.n * 0.2)
    params = {"n_train": exported.n - n_valid, "n_valid": n_valid, "seed": exported.seed}
    for split in ("train", "valid"):
        generated = SyntheticDataset().load(split, root=None, params=params, image_size=exported.size, labels=LABELS)
        read = load(exported.out, split)
        np.testing.assert_array_equal(read.table.codes(), generated.table.codes())
        assert len(read.images) == len(generated.images)
        for i in range(len(read.images)):  # PNG is lossless
            np.testing.assert_array_equal(read.images.read(i), generated.images.read(i))
        frame = read.table.frame
        assert frame["patient"].tolist() == generated.table.frame["patient"].tolist()
        assert frame["id"].str.startswith(f"{exported.out.name}/{split}/patient").all()
        assert frame["study"].tolist() == [i.rsplit("/", 1)[0] for i in frame["id"]]
        assert (frame["view"] == "frontal").all()
        assert all(Path(p).is_file() for p in frame["path"])


def test_root_may_be_the_dataset_folder_or_its_parent(exported) -> None:
    inside = load(exported.out, "valid")
    above = load(exported.out.parent, "valid")
    assert inside.table.frame["path"].tolist() == above.table.frame["path"].tolist()


def test_labels_come_in_the_order_asked(exported) -> None:
    split = load(exported.out, labels=["Ring", "Mass"])
    full = load(exported.out)
    assert split.table.labels == ("Ring", "Mass")
    np.testing.assert_array_equal(split.table.codes(), full.table.codes()[:, [9, 0]])


def test_images_come_at_the_asked_size(exported) -> None:
    assert load(exported.out, "valid", size=20).images.read(0).shape == (20, 20)


def test_missing_root_says_to_set_data_root() -> None:
    with pytest.raises(ConfigError, match="data.root"):
        load(None)


def test_missing_folder_and_csv(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        load(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no train.csv"):
        load(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.csv").write_text("Path,Mass\n")
    with pytest.raises(DataError, match="several folders"):
        load(tmp_path)


def test_missing_images_are_counted_before_training(exported, tmp_path: Path) -> None:
    out = copy_export(exported, tmp_path)
    paths = load(out).table.frame["path"].tolist()
    for p in paths[2:6]:
        Path(p).unlink()
    with pytest.raises(DataError) as info:
        load(out)
    message = str(info.value)
    assert f"4 of {len(paths)} images" in message and "train.csv" in message
    assert paths[2] in message and paths[4] in message and paths[5] not in message


def test_bad_value_names_file_and_column(exported, tmp_path: Path) -> None:
    out = copy_export(exported, tmp_path)
    csv = out / "valid.csv"
    lines = csv.read_text().splitlines()
    cells = lines[3].split(",")
    cells[5] = "maybe"  # the first label column, Mass
    lines[3] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"valid.csv: column 'Mass' holds 'maybe' on data row 3"):
        load(out, "valid")


def test_unknown_label_split_and_params(exported) -> None:
    with pytest.raises(DataError, match=r"no column 'Nodule'.*Mass"):
        load(exported.out, labels=["Mass", "Nodule"])
    with pytest.raises(DataError, match="splits are: train, valid"):
        load(exported.out, "test")
    with pytest.raises(ConfigError, match=r"no parameter 'train_file'.*accepted: frontal_only, path_column, train_csv, valid_csv"):
        load(exported.out, params={"train_file": "x.csv"})
    with pytest.raises(ConfigError, match="frontal_only must be bool"):
        load(exported.out, params={"frontal_only": "yes"})


def test_custom_csv_names_and_frontal_only(tmp_path: Path) -> None:
    folder = tmp_path / "MyData"
    images = folder / "imgs" / "patient00007" / "study2"
    images.mkdir(parents=True)
    for name in ("view1_frontal.png", "view2_lateral.png"):
        shutil.copy(Path(__file__), images / name)  # existence is checked at load, decoding at read
    (folder / "labels_train.csv").write_text(
        "Image,Frontal/Lateral,Mass\n"
        "MyData/imgs/patient00007/study2/view1_frontal.png,Frontal,1\n"
        "imgs/patient00007/study2/view2_lateral.png,Lateral,-1\n"
    )
    params = {"train_csv": "labels_train.csv", "path_column": "Image"}
    split = load(tmp_path, params=params, labels=["Mass"])
    frame = split.table.frame
    assert frame["view"].tolist() == ["frontal", "lateral"]
    assert frame["patient"].tolist() == ["patient00007", "patient00007"]
    assert frame["path"].tolist() == [str(images / "view1_frontal.png"), str(images / "view2_lateral.png")]
    frontal = load(folder, params={**params, "frontal_only": True}, labels=["Mass"])
    assert frontal.table.frame["id"].tolist() == ["MyData/imgs/patient00007/study2/view1_frontal.png"]
    assert frontal.table.codes().tolist() == [[1.0]]
    with pytest.raises(DataError, match="cannot decode"):
        frontal.images.read(0)


def test_patients_and_studies_fall_back_to_folders() -> None:
    patients, studies = patients_and_studies(
        ["CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", "site/bob/visit3/img.png", "x.png"]
    )
    assert patients == ["patient64541", "bob", ""]
    assert studies == ["CheXpert-v1.0-small/valid/patient64541/study1", "site/bob/visit3", ""]


def test_register_builtin_datasets() -> None:
    found: dict[str, object] = {}

    def register(name: str, obj: object) -> None:
        assert name not in found
        found[name] = obj

    register_builtin_datasets(register)
    assert set(found) == {"synthetic", "synthetic-vectors", "csv"}
    for name, reader in found.items():
        assert isinstance(reader, DatasetReader) and reader.name == name
        assert reader.description and set(reader.splits) == {"train", "valid"}
    assert found["synthetic"].default_hierarchy == "synthetic"
    assert found["csv"].default_hierarchy == "" and found["csv"].default_blank == "negative"


@pytest.mark.realdata
def test_real_chexpert_valid_and_train(chexpert_dir: Path, chexpert_labels: list[str]) -> None:
    valid = load(chexpert_dir, "valid", labels=chexpert_labels, size=64)
    frame = valid.table.frame
    assert len(valid.table) == 234 and frame["study"].nunique() == 200
    assert (frame["view"] == "frontal").sum() == 202
    assert frame["study"].iloc[0] == frame["id"].iloc[0].rsplit("/", 1)[0]
    img = valid.images.read(0)
    assert img.shape == (64, 64) and img.dtype == np.uint8 and img.std() > 10
    assert decode_image(frame["path"].iloc[0]).ndim == 2
    frontal = load(chexpert_dir / "CheXpert-v1.0-small", "valid", {"frontal_only": True}, chexpert_labels)
    assert len(frontal.table) == 202
    train = load(chexpert_dir, "train", labels=chexpert_labels)
    assert len(train.table) == 636 and train.table.frame["patient"].str.match(r"patient\d{5}$").all()

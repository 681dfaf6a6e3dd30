"""``hmlc predict``: datasets, files and folders, ensembles, TTA, study aggregation, errors."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from hmlc.data.synthetic import SYNTHETIC_HIERARCHY, SyntheticDataset, export_synthetic
from hmlc.evaluation import per_label_auc
from hmlc.hierarchy import LabelGraph
from hmlc.models import load_checkpoint, save_checkpoint

from .conftest import (
    IMAGE_SIZE,
    N_TRAIN,
    N_VALID,
    SHARED_CHEXPERT,
    SYNTHETIC_SETS,
    assert_one_line_error,
    checkpoint_metadata,
    write_dicom,
)

LABELS = list(SYNTHETIC_HIERARCHY.labels)
#: The synthetic validation split the tiny runs were evaluated on.
SYNTHETIC_VALID = ["--dataset", "synthetic", "--split", "valid", *SYNTHETIC_SETS]


def csv_valid(root: Path) -> list[str]:
    """Arguments predicting the valid split of a CheXpert-layout folder."""
    return ["--dataset", "csv", "--split", "valid", "--set", f"data.root={root}"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic data written as PNGs in CheXpert's layout (valid: 12 images)."""
    out = tmp_path_factory.mktemp("export") / "synth"
    export_synthetic(out, n=40, seed=3, image_size=48, valid_fraction=0.3)
    return out


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def _probs(frame: pd.DataFrame) -> np.ndarray:
    return frame[LABELS].to_numpy(dtype=np.float64)


def _valid_split() -> tuple[np.ndarray, list[str], list[str]]:
    split = SyntheticDataset().load(
        "valid", root=None, params={"n_train": N_TRAIN, "n_valid": N_VALID}, image_size=IMAGE_SIZE, labels=LABELS
    )
    frame = split.table.frame
    return split.table.codes(), list(frame["id"]), list(frame["study"])


# ----------------------------------------------------------- the pipeline
@pytest.mark.parametrize("run_name", ["ct_run", "flat_run", "crop_run"])
def test_predicting_the_validation_split_reproduces_the_auc_training_measured(
    run_name: str, request: pytest.FixtureRequest, hmlc, tmp_path: Path
) -> None:
    """Same pipeline as training: the best checkpoint's recorded validation AUCs come back exactly."""
    run = request.getfixturevalue(run_name)
    out = tmp_path / "preds.csv"
    code, stdout, err = hmlc("predict", "--checkpoint", run, *SYNTHETIC_VALID, "--out", out)
    assert code == 0, err
    assert "48 images" in stdout
    frame = _read(out)
    codes, ids, _ = _valid_split()  # ids and codes do not depend on the image size
    assert list(frame.columns) == ["Path", *LABELS]
    assert list(frame["Path"]) == ids
    recorded = checkpoint_metadata(run / "checkpoints" / "best")["validation"]
    for auc in per_label_auc(codes, _probs(frame), LABELS):
        if math.isnan(auc.auc):
            assert recorded[auc.label] is None or math.isnan(recorded[auc.label])
        else:
            assert auc.auc == pytest.approx(recorded[auc.label], abs=1e-9)


def test_probabilities_respect_the_hierarchy_on_every_edge(ct_run: Path, hmlc, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    assert hmlc("predict", "--checkpoint", ct_run / "checkpoints" / "last", *SYNTHETIC_VALID, "--out", out)[0] == 0
    frame = _read(out)
    probs = _probs(frame)
    assert ((probs >= 0) & (probs <= 1)).all()
    for parent, child in SYNTHETIC_HIERARCHY.edges:
        assert (frame[child] <= frame[parent] + 1e-7).all(), (parent, child)


def test_exported_files_predict_through_the_csv_reader_and_as_a_folder(
    ct_run: Path, exported: Path, hmlc, tmp_path: Path
) -> None:
    """PNG files: the dataset route and the folder route give the same ids (the labels CSV's) and values."""
    by_dataset, by_folder = tmp_path / "dataset.csv", tmp_path / "folder.csv"
    code, _, err = hmlc("predict", "--checkpoint", ct_run, *csv_valid(exported), "--out", by_dataset)
    assert code == 0, err
    code, _, err = hmlc(
        "predict", "--checkpoint", ct_run, exported / "valid", "--relative-to", exported.parent, "--out", by_folder
    )
    assert code == 0, err
    labels_csv = pd.read_csv(exported / "valid.csv")
    a, b = _read(by_dataset), _read(by_folder)
    assert list(a["Path"]) == list(labels_csv["Path"])
    assert sorted(b["Path"]) == sorted(labels_csv["Path"])
    b = b.set_index("Path").loc[a["Path"]]
    np.testing.assert_allclose(_probs(b), _probs(a), atol=1e-7)


def test_files_are_named_as_given_and_duplicates_are_predicted_once(
    ct_run: Path, exported: Path, hmlc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(exported.parent)
    files = sorted(Path("synth/valid").rglob("*.png"))[:3]
    out = tmp_path / "p.csv"
    code, _, err = hmlc("predict", "--checkpoint", ct_run, *files, files[0], "--out", out)
    assert code == 0, err
    assert list(_read(out)["Path"]) == [f.as_posix() for f in files]


# --------------------------------------------------------------- ensembles
def _resave(source: Path, target: Path, **changes) -> Path:
    ckpt = load_checkpoint(source)
    meta = {**ckpt.metadata, **changes}
    return save_checkpoint(target, ckpt.state_dict, meta, extra_state=None)


def test_an_ensemble_averages_its_members_after_the_chain_rule(
    ct_run: Path, exported: Path, hmlc, tmp_path: Path
) -> None:
    """Members with different weights and image sizes: the ensemble is the mean of their predictions."""
    best, last = ct_run / "checkpoints" / "best", ct_run / "checkpoints" / "last"
    bigger = _resave(last, tmp_path / "bigger", image_size=40)  # tiny_cnn pools globally: any size runs
    members = [best, last, bigger]
    data = csv_valid(exported)
    singles = []
    for i, member in enumerate(members):
        out = tmp_path / f"single{i}.csv"
        assert hmlc("predict", "--checkpoint", member, *data, "--out", out)[0] == 0
        singles.append(_probs(_read(out)))
    assert not np.allclose(singles[0], singles[1]) and not np.allclose(singles[1], singles[2])
    out = tmp_path / "ensemble.csv"
    args = [a for m in members for a in ("--checkpoint", m)]
    code, stdout, err = hmlc("predict", *args, *data, "--out", out, "--batch-size", "5")
    assert code == 0, err
    assert "3 model(s)" in stdout
    np.testing.assert_allclose(_probs(_read(out)), np.mean(singles, axis=0), atol=1e-7)


def test_an_ensemble_with_another_label_order_is_refused(ct_run: Path, hmlc, tmp_path: Path) -> None:
    best = ct_run / "checkpoints" / "best"
    meta = checkpoint_metadata(best)
    order = list(reversed(meta["labels"]))
    graph = LabelGraph(order, [tuple(e) for e in meta["hierarchy"]["edges"]])
    other = _resave(
        best, tmp_path / "reordered", labels=order, hierarchy=graph.to_dict(), hierarchy_hash=graph.content_hash
    )
    code, _, err = hmlc(
        "predict", "--checkpoint", best, "--checkpoint", other, *SYNTHETIC_VALID, "--out", tmp_path / "p.csv"
    )
    err = assert_one_line_error(code, err)
    assert str(best) in err and str(other) in err and "order" in err
    assert not (tmp_path / "p.csv").exists()


def test_an_ensemble_over_another_hierarchy_is_refused(ct_run: Path, hmlc, tmp_path: Path) -> None:
    best = ct_run / "checkpoints" / "best"
    meta = checkpoint_metadata(best)
    graph = LabelGraph(meta["labels"], [e for e in SYNTHETIC_HIERARCHY.edges if e != ("Cavity", "Fluid Level")])
    other = _resave(best, tmp_path / "flatter", hierarchy=graph.to_dict(), hierarchy_hash=graph.content_hash)
    code, _, err = hmlc(
        "predict", "--checkpoint", other, "--checkpoint", best, *SYNTHETIC_VALID, "--out", tmp_path / "p.csv"
    )
    err = assert_one_line_error(code, err)
    assert str(best) in err and str(other) in err and "hierarch" in err


# --------------------------------------------------------------------- TTA
def _predict_files(
    hmlc, checkpoint: Path, files: list[Path], out: Path, *extra: object, index: str = "Path"
) -> pd.DataFrame:
    """``hmlc predict`` on files; the CSV indexed by its id column."""
    code, _, err = hmlc("predict", "--checkpoint", checkpoint, *files, "--out", out, *extra)
    assert code == 0, err
    return _read(out).set_index(index)


def test_tta_is_seeded_per_image_and_independent_of_batching_and_order(
    ct_run: Path, exported: Path, hmlc, tmp_path: Path
) -> None:
    files = sorted((exported / "valid").rglob("*.png"))
    plain = _predict_files(hmlc, ct_run, files, tmp_path / "plain.csv")
    a = _predict_files(hmlc, ct_run, files, tmp_path / "a.csv", "--tta", 4, "--seed", 7, "--batch-size", 1)
    b = _predict_files(hmlc, ct_run, files[::-1], tmp_path / "b.csv", "--tta", 4, "--seed", 7, "--batch-size", 5)
    c = _predict_files(hmlc, ct_run, files, tmp_path / "c.csv", "--tta", 4, "--seed", 8)
    np.testing.assert_allclose(_probs(b.loc[a.index]), _probs(a), atol=1e-7)
    assert not np.allclose(_probs(a), _probs(plain), atol=1e-6)
    assert not np.allclose(_probs(a), _probs(c.loc[a.index]), atol=1e-6)


def test_tta_with_one_identity_view_equals_plain_prediction(ct_run: Path, exported: Path, hmlc, tmp_path: Path) -> None:
    files = sorted((exported / "valid").rglob("*.png"))
    plain = _predict_files(hmlc, ct_run, files, tmp_path / "plain.csv")
    identity = _predict_files(hmlc, ct_run, files, tmp_path / "id.csv", "--tta", 1, "--tta-transforms", "none")
    flipped = _predict_files(hmlc, ct_run, files, tmp_path / "flip.csv", "--tta", 1, "--tta-transforms", "flip")
    np.testing.assert_array_equal(_probs(identity), _probs(plain))
    assert not np.allclose(_probs(flipped), _probs(plain), atol=1e-6)


def test_a_flip_only_view_equals_predicting_the_flipped_file(
    ct_run: Path, exported: Path, hmlc, tmp_path: Path
) -> None:
    source = sorted((exported / "valid").rglob("*.png"))[0]
    mirrored = tmp_path / "mirrored.png"
    cv2.imwrite(str(mirrored), cv2.imread(str(source), cv2.IMREAD_UNCHANGED)[:, ::-1])
    flipped = _predict_files(hmlc, ct_run, [source], tmp_path / "f.csv", "--tta", 3, "--tta-transforms", "flip")
    direct = _predict_files(hmlc, ct_run, [mirrored], tmp_path / "m.csv")
    np.testing.assert_allclose(_probs(flipped), _probs(direct), atol=1e-6)


# ------------------------------------------------------- study aggregation
@pytest.fixture(scope="module")
def studies_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CheXpert-layout folder whose studies hold one to three images."""
    root = tmp_path_factory.mktemp("studies") / "mini"
    rng = np.random.default_rng(5)
    studies = {
        "patient00001/study1": 2,
        "patient00001/study2": 1,
        "patient00002/study1": 3,
        "patient00003/study1": 1,
        "patient00003/study2": 2,
    }
    rows = [f"valid/{study}/view{v + 1}_frontal.png" for study, n in studies.items() for v in range(n)]
    for rel in rows:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), rng.integers(0, 256, (40, 44), dtype=np.uint8))
    frame = pd.DataFrame({"Path": [f"mini/{r}" for r in rows]})
    for label in LABELS:
        frame[label] = 0.0
    frame.to_csv(root / "valid.csv", index=False)
    return root


@pytest.mark.parametrize("how", ["mean", "max"])
def test_study_aggregation_combines_the_images_of_each_study(
    how: str, ct_run: Path, studies_dataset: Path, hmlc, tmp_path: Path
) -> None:
    images, studies = tmp_path / "images.csv", tmp_path / "studies.csv"
    base = ["--checkpoint", ct_run, *csv_valid(studies_dataset)]
    assert hmlc("predict", *base, "--out", images)[0] == 0
    code, stdout, err = hmlc("predict", *base, "--aggregate", f"study:{how}", "--out", studies)
    assert code == 0, err
    per_image = _read(images)
    study_of = per_image["Path"].str.rsplit("/", n=1).str[0]  # CheXpert: the study is the image's folder
    expected = per_image[LABELS].groupby(study_of.to_numpy(), sort=False).agg(how)
    got = _read(studies)
    assert list(got.columns) == ["Study", *LABELS]
    assert list(got["Study"]) == list(dict.fromkeys(study_of))
    assert got["Study"].iloc[0] == "mini/valid/patient00001/study1"
    assert (len(got), len(per_image)) == (5, 9)
    np.testing.assert_allclose(_probs(got), expected.loc[got["Study"]].to_numpy(), atol=1e-7)
    assert "5 studies from 9 images" in stdout


def test_files_aggregate_by_their_folder(ct_run: Path, hmlc, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for study, n in (("p1/study1", 2), ("p1/study2", 1), ("p2/study1", 3)):
        (tmp_path / "in" / study).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(tmp_path / "in" / study / f"view{i}.png"), rng.integers(0, 256, (40, 36), dtype=np.uint8))
    relative = ("--relative-to", tmp_path / "in")
    per_image = _predict_files(hmlc, ct_run, [tmp_path / "in"], tmp_path / "i.csv", *relative)
    got = _predict_files(
        hmlc, ct_run, [tmp_path / "in"], tmp_path / "s.csv", *relative, "--aggregate", "study:max", index="Study"
    )
    assert sorted(got.index) == ["p1/study1", "p1/study2", "p2/study1"]
    for study in got.index:
        rows = per_image[[p.startswith(study + "/") for p in per_image.index]]
        np.testing.assert_allclose(got.loc[study, LABELS].to_numpy(float), rows[LABELS].max().to_numpy(), atol=1e-7)


# ------------------------------------------------------------ image kinds
def test_a_16_bit_png_predicts_like_the_8_bit_png_of_the_same_picture(ct_run: Path, hmlc, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    img8 = rng.integers(0, 256, (50, 60), dtype=np.uint8)
    img8[0, 0] = 255  # 16-bit images are scaled by their own maximum
    cv2.imwrite(str(tmp_path / "a8.png"), img8)
    cv2.imwrite(str(tmp_path / "a16.png"), img8.astype(np.uint16) * 257)
    assert cv2.imread(str(tmp_path / "a16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    frame = _predict_files(hmlc, ct_run, [tmp_path / "a8.png", tmp_path / "a16.png"], tmp_path / "p.csv")
    np.testing.assert_array_equal(
        frame.loc[(tmp_path / "a8.png").as_posix()].to_numpy(), frame.loc[(tmp_path / "a16.png").as_posix()].to_numpy()
    )


def test_dicom_files_in_both_photometric_interpretations_are_predicted(ct_run: Path, hmlc, tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    from hmlc.data.dicom import decode_dicom

    rng = np.random.default_rng(2)
    stored = rng.integers(0, 4096, (44, 52), dtype=np.uint16)
    folder = tmp_path / "dicom"
    write_dicom(folder / "m2.dcm", stored, "MONOCHROME2", window=(1500, 2000), rescale=(1.0, -24.0))
    write_dicom(folder / "m1.dcm", stored, "MONOCHROME1", window=(1500, 2000), rescale=(1.0, -24.0))
    cv2.imwrite(str(folder / "m2-as.png"), decode_dicom(folder / "m2.dcm"))
    cv2.imwrite(str(folder / "m1-as.png"), decode_dicom(folder / "m1.dcm"))
    frame = _predict_files(hmlc, ct_run, [folder], tmp_path / "p.csv", "--relative-to", folder)
    assert sorted(frame.index) == ["m1-as.png", "m1.dcm", "m2-as.png", "m2.dcm"]
    np.testing.assert_array_equal(frame.loc["m2.dcm"].to_numpy(), frame.loc["m2-as.png"].to_numpy())
    np.testing.assert_array_equal(frame.loc["m1.dcm"].to_numpy(), frame.loc["m1-as.png"].to_numpy())
    assert not np.allclose(frame.loc["m1.dcm"].to_numpy(), frame.loc["m2.dcm"].to_numpy(), atol=1e-6)


def test_workers_give_the_same_predictions_and_one_line_errors(
    ct_run: Path, exported: Path, hmlc, tmp_path: Path
) -> None:
    files = sorted((exported / "valid").rglob("*.png"))
    serial = _predict_files(hmlc, ct_run, files, tmp_path / "a.csv", "--tta", 2)
    parallel = _predict_files(
        hmlc, ct_run, files, tmp_path / "b.csv", "--tta", 2, "--num-workers", 2, "--batch-size", 4
    )
    np.testing.assert_array_equal(_probs(parallel), _probs(serial))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    code, _, err = hmlc(
        "predict", "--checkpoint", ct_run, *files, broken, "--num-workers", 2, "--out", tmp_path / "c.csv"
    )
    assert str(broken) in assert_one_line_error(code, err)
    assert not (tmp_path / "c.csv").exists()


# --------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_chexpert_validation_jpegs_flow_through(ct_run: Path, hmlc, tmp_path: Path) -> None:
    """The 234 real validation JPEGs, by folder and through the CSV reader, with a synthetic-trained model."""
    folder = SHARED_CHEXPERT / "CheXpert-v1.0-small"
    if not (folder / "valid.csv").is_file():
        pytest.skip(f"CheXpert-v1.0-small is not in {SHARED_CHEXPERT}")
    by_folder = _predict_files(hmlc, ct_run, [folder / "valid"], tmp_path / "f.csv", "--relative-to", SHARED_CHEXPERT)
    code, _, err = hmlc(
        "predict", "--checkpoint", ct_run, *csv_valid(folder), "--out", tmp_path / "d.csv", "--batch-size", 50
    )
    assert code == 0, err
    by_dataset = _read(tmp_path / "d.csv")
    labels_csv = pd.read_csv(folder / "valid.csv")
    assert len(by_dataset) == len(labels_csv) == 234
    assert list(by_dataset["Path"]) == list(labels_csv["Path"])
    assert sorted(by_folder.index) == sorted(labels_csv["Path"])
    np.testing.assert_allclose(_probs(by_folder.loc[by_dataset["Path"]]), _probs(by_dataset), atol=1e-7)
    probs = _probs(by_dataset)
    assert np.isfinite(probs).all() and probs.std(axis=0).max() > 0  # images differ, so do the outputs


# ------------------------------------------------------------------ errors
def test_user_errors_exit_2_with_one_line(ct_run: Path, exported: Path, hmlc, tmp_path: Path) -> None:
    image = sorted((exported / "valid").rglob("*.png"))[0]
    out = ["--out", tmp_path / "p.csv"]
    no_best = tmp_path / "run-no-best"
    shutil.copytree(ct_run, no_best)
    shutil.rmtree(no_best / "checkpoints" / "best")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    unreadable = tmp_path / "unreadable.jpg"
    unreadable.write_bytes(b"not a jpeg")
    cases = {
        "missing checkpoint": (["--checkpoint", tmp_path / "nowhere", image], "nowhere"),
        "run dir without best": (["--checkpoint", no_best, image], "checkpoints/best"),
        "no inputs": (["--checkpoint", ct_run], "no inputs"),
        "folder without images": (["--checkpoint", ct_run, empty], "no images"),
        "missing input": (["--checkpoint", ct_run, tmp_path / "ghost.png"], "ghost.png"),
        "unreadable image": (["--checkpoint", ct_run, image, unreadable], "unreadable.jpg"),
        "bad --tta": (["--checkpoint", ct_run, "--tta", "0", image], "--tta"),
        "bad TTA transform": (["--checkpoint", ct_run, "--tta", "2", "--tta-transforms", "zoom", image], "zoom"),
        "dataset and paths": (["--checkpoint", ct_run, "--dataset", "synthetic", "--split", "valid", image], "either"),
        "dataset without split": (["--checkpoint", ct_run, "--dataset", "synthetic"], "--split"),
        "unknown split": (["--checkpoint", ct_run, "--dataset", "synthetic", "--split", "test"], "test"),
        "onnx runtime on a checkpoint": (["--checkpoint", ct_run, "--runtime", "onnx", image], "hmlc export"),
        "onnx file under torch": (["--checkpoint", tmp_path / "m.onnx", image], "--runtime onnx"),
    }
    (tmp_path / "m.onnx").write_bytes(b"")
    for name, (args, needle) in cases.items():
        code, _, err = hmlc("predict", *args, *out)
        assert needle in assert_one_line_error(code, err), name
    assert not (tmp_path / "p.csv").exists()


# ------------------------------------------------- dataset settings from the checkpoint
def test_a_dataset_split_is_read_as_the_checkpoint_was_validated_on_it(hmlc, ct_run: Path, tmp_path: Path) -> None:
    """Without --config/--preset, --dataset takes the reader settings the model was trained with."""
    out = tmp_path / "preds.csv"
    code, stdout, err = hmlc("predict", "--checkpoint", ct_run, "--dataset", "synthetic", "--split", "valid", "--out", out)
    assert code == 0, err
    assert f"n_valid={N_VALID}" in err and "dataset settings: " in err
    codes, ids, _ = _valid_split()
    frame = _read(out)
    assert list(frame["Path"]) == ids  # the 48 validation images of training, not the reader's default 500
    recorded = checkpoint_metadata(ct_run / "checkpoints" / "best")["validation"]
    for auc in per_label_auc(codes, _probs(frame), LABELS):
        assert auc.auc == pytest.approx(recorded[auc.label], abs=1e-6)
    # --set still wins over what the checkpoint says.
    code, stdout, _ = hmlc("predict", "--checkpoint", ct_run, "--dataset", "synthetic", "--split", "valid",
                           "--set", "data.params.n_valid=20", "--out", out)
    assert code == 0 and "20 images" in stdout


def test_another_dataset_than_the_checkpoints_gets_no_settings_from_it(hmlc, ct_run: Path, exported: Path,
                                                                       tmp_path: Path) -> None:
    code, _, err = hmlc("predict", "--checkpoint", ct_run, *csv_valid(exported), "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert "dataset settings" not in err

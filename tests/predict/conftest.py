"""Tiny trained checkpoints and a CLI runner shared by the inference tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hmlc.cli.main import main

#: Settings of the tiny synthetic runs; predictions of its valid split are compared with training's evaluation.
N_TRAIN, N_VALID, IMAGE_SIZE = 96, 48, 32
SYNTHETIC_SETS = ["--set", f"data.params.n_train={N_TRAIN}", "--set", f"data.params.n_valid={N_VALID}"]

SHARED_CHEXPERT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chexpert"

def run_hmlc(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``hmlc argv`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def hmlc(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """``hmlc(*args)`` -> (exit code, stdout, stderr)."""

    def run(*argv: object) -> tuple[int, str, str]:
        return run_hmlc([str(a) for a in argv], capsys, monkeypatch)

    return run


def assert_one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert err.startswith("hmlc: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err


def _train(parent: Path, *overrides: str) -> Path:
    sets: list[str] = []
    for item in (
        f"data.params.n_train={N_TRAIN}",
        f"data.params.n_valid={N_VALID}",
        f"data.image_size={IMAGE_SIZE}",
        "train.epochs=1",
        "train.head_epochs=1",
        "train.progress=false",
        "train.device=cpu",
        "output.tensorboard=false",
        "output.name=run",
        *overrides,
    ):
        sets += ["--set", item]
    from hmlc.plugins import reset_host

    reset_host()
    assert main(["train", "--out", str(parent), *sets]) == 0
    run = parent / "run"
    assert (run / "checkpoints" / "best" / "meta.json").is_file()
    return run


@pytest.fixture(scope="session")
def ct_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of conditional training (two stages): best is conditional (stage 1) or chain-rule stage 2."""
    return _train(tmp_path_factory.mktemp("ct"))


@pytest.fixture(scope="session")
def flat_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat run with U-MultiClass heads: sigmoid-style outputs from 3-way logits."""
    return _train(tmp_path_factory.mktemp("flat"), "train.method=flat", "policy.default=u-multiclass")


@pytest.fixture(scope="session")
def crop_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose images went through the built-in center-crop preprocessor before the resize."""
    return _train(
        tmp_path_factory.mktemp("crop"),
        "data.preprocessor=center-crop",
        "data.preprocessor_params.resize=48",
        "data.preprocessor_params.crop=40",
    )


def checkpoint_metadata(path: Path) -> dict:
    return json.loads((path / "meta.json").read_text())["metadata"]


def write_dicom(
    path: Path,
    stored: np.ndarray,
    photometric: str,
    *,
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    voi_lut: list[int] | None = None,
    bits_stored: int = 12,
) -> Path:
    """Write a single-frame uncompressed DICOM file of uint16 ``stored`` values with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        item = Dataset()
        item.add_new(0x00283002, "US", [len(voi_lut), 0, 16])  # LUT Descriptor (US or SS)
        item.add_new(0x00283006, "US", list(voi_lut))  # LUT Data (US or OW)
        ds.VOILUTSequence = [item]
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path

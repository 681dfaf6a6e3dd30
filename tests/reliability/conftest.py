"""Shared by the reliability tests: tiny hand-made files that claim to be huge."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from hmlc.data.images import MAX_IMAGE_PIXELS_ENV


@pytest.fixture(autouse=True)
def _restore_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A configuration's data.max_image_pixels sets the environment; undo it after each test."""
    monkeypatch.delenv(MAX_IMAGE_PIXELS_ENV, raising=False)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "")
    yield


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(path: Path, width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> Path:
    """A valid-looking PNG header claiming ``width`` x ``height``, with a few hundred bytes of compressed rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = zlib.compress(b"\0" * 100_000, 9)  # the first rows of zeros; far from the whole image
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))
    return path


def jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A JPEG's first segments (APP0, then a baseline SOF0 frame header) claiming ``width`` x ``height``."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    path.write_bytes(b"\xff\xd8" + app0 + sof0 + b"\xff\xd9")
    return path


def dicom_claiming(path: Path, rows: int, columns: int, photometric: str = "MONOCHROME2") -> Path:
    """A DICOM file whose header claims ``rows`` x ``columns`` with a few bytes of pixel data."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = b"\0" * 64
    ds.save_as(str(path), enforce_file_format=True)
    return path


def run_cli(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``hmlc argv`` run in this process."""
    from hmlc.cli.main import main
    from hmlc.plugins import reset_host

    reset_host()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


#: A tiny training on the exported folder: 16-pixel images, one flat epoch, on the CPU.
TINY_TRAIN = [
    "data.dataset=csv", "hierarchy=synthetic", "data.image_size=16", "train.method=flat", "train.epochs=1",
    "train.batch_size=8", "train.progress=false", "train.device=cpu", "output.tensorboard=false",
]


def tiny_sets(root: Path, *extra: str) -> list[str]:
    out: list[str] = []
    for item in [*TINY_TRAIN, f"data.root={root}", *extra]:
        out += ["--set", item]
    return out


@pytest.fixture(scope="session")
def synth_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CheXpert-layout folder (train.csv, valid.csv, PNGs) of 40 synthetic 16-pixel images; never written to."""
    from hmlc.cli.main import main

    root = tmp_path_factory.mktemp("synth") / "data"
    assert main(["synth", "export", str(root), "--n", "40", "--image-size", "16"]) == 0
    return root


@pytest.fixture(scope="session")
def tiny_run(synth_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run on :func:`synth_folder` (its best checkpoint is what predict reads)."""
    from hmlc.cli.main import main
    from hmlc.plugins import reset_host

    reset_host()
    parent = tmp_path_factory.mktemp("runs")
    assert main(["train", "--out", str(parent), *tiny_sets(synth_folder, "output.name=run")]) == 0
    assert (parent / "run" / "checkpoints" / "last" / "meta.json").is_file()
    return parent / "run"


def folder_state(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder`` (and '<dir>' for every folder)."""
    import hashlib

    state = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        state[rel] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state

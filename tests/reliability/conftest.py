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

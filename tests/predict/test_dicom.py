"""DICOM decoding: modality rescale, windowing, VOI LUTs and MONOCHROME1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hmlc.errors import DataError

from .conftest import write_dicom

pytest.importorskip("pydicom")

from hmlc.data.dicom import decode_dicom, is_dicom_file  # noqa: E402


@pytest.fixture
def stored() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4096, (30, 40), dtype=np.uint16)


def test_rescale_and_window_follow_the_dicom_linear_function(stored: np.ndarray, tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "a.dcm", stored, "MONOCHROME2", window=(1000.0, 1500.0), rescale=(2.0, -100.0))
    modality = stored * 2.0 - 100.0
    # PS3.3 C.11.2.1.2.1: linear window with centre c - 0.5 and width w - 1, then clipped
    expected = np.clip((modality - 999.5) / 1499.0 + 0.5, 0.0, 1.0) * 255.0
    got = decode_dicom(path)
    assert got.dtype == np.uint8 and got.shape == stored.shape
    assert np.abs(got - expected).max() <= 0.5 + 1e-9
    assert got.min() == 0 and got.max() == 255  # the window saturates both ends here


def test_monochrome1_is_the_inverse_of_monochrome2(stored: np.ndarray, tmp_path: Path) -> None:
    for window in ((2048.0, 4096.0), None):
        two = write_dicom(tmp_path / "m2.dcm", stored, "MONOCHROME2", window=window, rescale=(1.0, 0.0))
        one = write_dicom(tmp_path / "m1.dcm", stored, "MONOCHROME1", window=window, rescale=(1.0, 0.0))
        np.testing.assert_array_equal(decode_dicom(one).astype(int), 255 - decode_dicom(two).astype(int))
        # In MONOCHROME2 a larger stored value is brighter.
        bright = decode_dicom(two)
        assert bright[np.unravel_index(stored.argmax(), stored.shape)] == bright.max() > 250
        assert bright[np.unravel_index(stored.argmin(), stored.shape)] == bright.min() < 5


def test_without_a_window_the_image_range_spans_0_to_255(stored: np.ndarray, tmp_path: Path) -> None:
    got = decode_dicom(write_dicom(tmp_path / "a.dcm", stored, "MONOCHROME2"))
    expected = (stored - stored.min()) * 255.0 / (stored.max() - stored.min())
    assert np.abs(got - expected).max() <= 0.5 + 1e-9


def test_a_voi_lut_maps_values_and_its_output_range_spans_0_to_255(tmp_path: Path) -> None:
    stored = np.arange(16, dtype=np.uint16).reshape(4, 4)
    lut = [0, 0, 0, 0, 100, 200, 300, 400, 500, 600, 700, 800, 800, 800, 800, 800]
    got = decode_dicom(write_dicom(tmp_path / "lut.dcm", stored, "MONOCHROME2", voi_lut=lut, bits_stored=4))
    expected = np.array(lut, dtype=float).reshape(4, 4) * 255.0 / 800.0
    assert np.abs(got - expected).max() <= 0.5 + 1e-9
    assert got.min() == 0 and got.max() == 255


def test_unreadable_files_raise_a_data_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom" * 40)
    with pytest.raises(DataError, match="bad.dcm"):
        decode_dicom(bad)
    with pytest.raises(DataError, match="missing.dcm"):
        decode_dicom(tmp_path / "missing.dcm")


def test_dicom_files_are_recognised_by_suffix_or_preamble(stored: np.ndarray, tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "a.dcm", stored, "MONOCHROME2")
    plain = tmp_path / "IM0001"
    plain.write_bytes(path.read_bytes())
    assert is_dicom_file(path) and is_dicom_file(plain)
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    assert not is_dicom_file(png)
    np.testing.assert_array_equal(decode_dicom(plain), decode_dicom(path))

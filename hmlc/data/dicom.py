"""DICOM images as the grayscale uint8 arrays of the rest of the image pipeline.

The display pipeline of DICOM PS3.4 N.2 up to presentation: the modality LUT
(or rescale slope and intercept) turns stored values into modality units, the
VOI LUT (or window centre and width) selects the range to display, and
MONOCHROME1 images (where low values are white) are inverted so that every
image returned has bright bones, like a PNG or JPEG radiograph. Needs pydicom
(the ``dicom`` extra); compressed pixel data needs pydicom's optional decoders.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hmlc.errors import DataError

__all__ = ["decode_dicom", "is_dicom_file", "DICOM_SUFFIXES"]

#: File name endings read as DICOM (files without them are recognised by their preamble).
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")

_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def is_dicom_file(path: str | Path) -> bool:
    """Whether ``path`` ends in .dcm/.dicom or starts with the DICOM preamble ("DICM" at byte 128)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return True
    if suffix in (".png", ".jpg", ".jpeg"):
        return False  # the common case: no second open of every training image
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError:
        raise DataError(
            "reading DICOM files needs pydicom: pip install 'hmlc[dicom]' (or pip install pydicom)"
        ) from None
    # Invalid values are either usable (then nothing to say) or end in one DataError: no warning lines.
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    return pydicom


def _one_line(error: BaseException) -> str:
    from hmlc.errors import shorten

    text = shorten(" ".join(str(error).split()))
    return text or type(error).__name__


def decode_dicom(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Decode a single-frame DICOM image into a grayscale uint8 (H, W) array (see :func:`_decode`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _decode(path, max_pixels)


def _decode(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Decode a single-frame DICOM image into a grayscale uint8 (H, W) array.

    Applies the modality LUT / rescale, then the VOI LUT or window (the first
    one given), inverts MONOCHROME1 and scales the displayed range to 0..255.
    Without a VOI LUT or window the image's own minimum and maximum span
    0..255. Colour images are converted to gray. Rows x Columns are checked
    against ``max_pixels`` (default :func:`hmlc.data.images.max_image_pixels`)
    before the pixel data is decompressed. Raises :class:`DataError` naming
    the file when it cannot be read or decoded.
    """
    from hmlc.data.images import check_image_pixels, max_image_pixels

    pydicom = _pydicom()
    _check_inflated_size(path, max_image_pixels() if max_pixels is None else max_pixels)
    try:
        ds = pydicom.dcmread(str(path))
    except MemoryError:
        raise DataError(f"cannot read DICOM file {path}: its header claims more memory than is available") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt header fails in many ways inside pydicom
        raise DataError(f"cannot read DICOM file {path}: {_one_line(exc)}") from None
    try:
        if "PixelData" not in ds:
            raise DataError(f"DICOM file {path} holds no image (no Pixel Data element)")
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed values are parsed lazily
        raise DataError(f"cannot read DICOM file {path}: {_one_line(exc)}") from None
    if frames > 1:
        raise DataError(f"DICOM file {path} holds {frames} frames; give single-frame images")
    check_image_pixels(path, rows, columns, max_pixels)
    try:
        pixels = ds.pixel_array
    except MemoryError:
        raise DataError(f"cannot decode the pixel data of DICOM file {path}: not enough memory") from None
    except Exception as exc:  # noqa: BLE001 - missing decoders, truncated data, ...
        raise DataError(f"cannot decode the pixel data of DICOM file {path}: {_one_line(exc)}") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in _MONOCHROME:
        return _colour_to_gray(pixels, path)
    if pixels.ndim != 2:
        raise DataError(f"DICOM file {path} has pixel array shape {pixels.shape}; expected a 2-D grayscale image")
    try:
        gray = _displayed(pixels, ds)
    except (ValueError, NotImplementedError, AttributeError, TypeError) as exc:
        raise DataError(f"cannot apply the LUTs of DICOM file {path}: {_one_line(exc)}") from None
    return 255 - gray if photometric == "MONOCHROME1" else gray


#: Bytes a deflated DICOM data set may inflate to per allowed pixel (32-bit gray or 8-bit RGBA), plus headers.
_INFLATED_BYTES_PER_PIXEL, _INFLATED_SLACK = 4, 16 << 20


def _check_inflated_size(path: str | Path, max_pixels: int) -> None:
    """Refuse a deflated DICOM whose data set inflates past what ``max_pixels`` allows, without keeping it.

    pydicom inflates a Deflated Explicit VR Little Endian data set whole
    before its Rows and Columns can be read; 760 KB can hold 800 MB. The
    stream is inflated here in bounded chunks and only counted.
    """
    import struct
    import zlib

    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            if handle.read(4) != b"DICM":
                return
            first = handle.read(12)  # (0002,0000) UL: the length of the file meta group
            if len(first) < 12 or first[:6] != b"\x02\x00\x00\x00UL":
                return
            (group_length,) = struct.unpack("<I", first[8:12])
            meta = handle.read(min(group_length, 1 << 16))
            if b"1.2.840.10008.1.2.1.99" not in meta:  # Deflated Explicit VR Little Endian
                return
            handle.seek(144 + group_length)
            limit = max_pixels * _INFLATED_BYTES_PER_PIXEL + _INFLATED_SLACK
            inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
            while True:
                chunk = inflater.unconsumed_tail or handle.read(1 << 16)
                if not chunk:
                    return
                total += len(inflater.decompress(chunk, 1 << 20))
                if total > limit:
                    raise DataError(
                        f"DICOM file {path} inflates to more than {limit:,} bytes, more than an image of "
                        f"{max_pixels:,} pixels needs; raise data.max_image_pixels if it is genuine"
                    )
                if inflater.eof:
                    return
    except (OSError, zlib.error):
        return  # dcmread reports an unreadable or corrupt file in its own words


def _displayed(pixels: np.ndarray, ds: Any) -> np.ndarray:
    """Stored values -> modality values -> VOI range, scaled to uint8."""
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(pixels, ds)
    voi_lut = bool(ds.get("VOILUTSequence"))
    window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
    if voi_lut:
        # A LUT is indexed by integers; modality values of a rescale may be floats.
        values = np.rint(values).astype(np.int64)
        item = ds.VOILUTSequence[0]
        entries = int(item.LUTDescriptor[0]) or 2**16
        first = int(item.LUTDescriptor[1])
        table = np.asarray(apply_voi_lut(np.arange(first, first + entries, dtype=np.int64), ds), dtype=np.float64)
        low, high = float(table.min()), float(table.max())
        shown = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
    elif window:
        values = np.asarray(values, dtype=np.float64)
        # The window maps everything below / above it to the ends of its output range.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ends = np.asarray(apply_voi_lut(np.array([-1e300, 1e300]), ds), dtype=np.float64)
        low, high = float(ends.min()), float(ends.max())
        shown = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
    else:
        shown = np.asarray(values, dtype=np.float64)
        low, high = float(shown.min()), float(shown.max())
    if not high > low:
        return np.zeros(shown.shape, dtype=np.uint8)
    scaled = np.clip((shown - low) * (255.0 / (high - low)), 0.0, 255.0)
    return np.rint(scaled).astype(np.uint8)


def _colour_to_gray(pixels: np.ndarray, path: str | Path) -> np.ndarray:
    if pixels.ndim != 3 or pixels.shape[-1] not in (3, 4):
        raise DataError(f"DICOM file {path} has pixel array shape {pixels.shape}; expected a single-frame image")
    rgb = pixels[..., :3]
    if rgb.dtype != np.uint8:
        peak = float(rgb.max())
        rgb = np.zeros(rgb.shape, np.uint8) if peak <= 0 else np.rint(rgb * (255.0 / peak)).astype(np.uint8)
    return np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))

"""The image pipeline: decode, resize, image sources and the torch dataset.

Images are single-channel uint8 arrays (H, W) from decoding to the model's
input; the model side converts to float and normalises.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import cv2
import numpy as np

from hmlc.errors import ConfigError, DataError

if TYPE_CHECKING:  # decoding needs no torch: cache workers import this module without it
    import torch

__all__ = [
    "decode_image",
    "image_dimensions",
    "check_image_pixels",
    "max_image_pixels",
    "set_max_image_pixels",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "MAX_IMAGE_PIXELS_ENV",
    "resize_square",
    "ImageSource",
    "ArrayImageSource",
    "FileImageSource",
    "missing_files",
    "ImageIndexDataset",
    "BAD_IMAGE_POLICIES",
    "split_skipped",
    "write_skipped",
    "SubsetImageSource",
]


#: Largest image (height x width) decoded unless configured otherwise: 100 megapixels.
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
#: Environment variable holding the pixel limit (set by ``data.max_image_pixels`` too).
MAX_IMAGE_PIXELS_ENV = "HMLC_MAX_IMAGE_PIXELS"

try:  # a corrupt file is reported once, as a DataError; not also as OpenCV's own warning line
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # builds without the logging module
    pass

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def max_image_pixels() -> int:
    """The pixel limit in force: $HMLC_MAX_IMAGE_PIXELS (or ``data.max_image_pixels``), else 100 megapixels."""
    raw = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(float(raw))
    except (ValueError, OverflowError):
        raise ConfigError(f"{MAX_IMAGE_PIXELS_ENV}={raw[:40]!r} is not a number of pixels; e.g. 100000000") from None
    if value < 1:
        raise ConfigError(f"{MAX_IMAGE_PIXELS_ENV}={raw[:40]!r} must be at least 1")
    return value


def set_max_image_pixels(limit: int | None) -> None:
    """Make ``limit`` the pixel limit of this process and the workers it starts (None: leave as is)."""
    if limit is not None:
        os.environ[MAX_IMAGE_PIXELS_ENV] = str(int(limit))


def image_dimensions(path: str | Path) -> tuple[str, int, int]:
    """``(format, height, width)`` of a PNG or JPEG file, read from its header (IHDR / SOF) only.

    Raises :class:`DataError` when the file is neither, or its header is cut short.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
            if head.startswith(_PNG_SIGNATURE):
                if len(head) < 24 or head[12:16] != b"IHDR":
                    raise DataError(f"cannot decode image {path}: its PNG header (IHDR) is missing or cut short")
                width, height = struct.unpack(">II", head[16:24])
                return "PNG", height, width
            if head.startswith(b"\xff\xd8"):
                return ("JPEG", *_jpeg_dimensions(handle, path))
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from None
    raise DataError(f"cannot decode image {path}: not a PNG, JPEG or DICOM file")


def _jpeg_dimensions(handle: object, path: str | Path) -> tuple[int, int]:
    """Walk a JPEG's marker segments up to its start-of-frame; (height, width)."""
    handle.seek(2)  # type: ignore[attr-defined]
    for _ in range(10_000):
        marker = handle.read(2)  # type: ignore[attr-defined]
        while len(marker) == 2 and marker[0] == 0xFF and marker[1] == 0xFF:  # fill bytes
            marker = marker[1:] + handle.read(1)  # type: ignore[attr-defined]
        if len(marker) < 2 or marker[0] != 0xFF:
            break
        code = marker[1]
        if code == 0x01 or 0xD0 <= code <= 0xD7:  # segments without a length
            continue
        length_bytes = handle.read(2)  # type: ignore[attr-defined]
        if len(length_bytes) < 2:
            break
        (length,) = struct.unpack(">H", length_bytes)
        if code in _JPEG_SOF:
            frame = handle.read(5)  # type: ignore[attr-defined]
            if len(frame) < 5:
                break
            height, width = struct.unpack(">HH", frame[1:5])
            return height, width
        if code == 0xDA or length < 2:  # image data before any frame header
            break
        handle.seek(length - 2, os.SEEK_CUR)  # type: ignore[attr-defined]
    raise DataError(f"cannot decode image {path}: its JPEG header has no frame size (SOF marker)")


def check_image_pixels(path: str | Path, height: int, width: int, limit: int | None = None) -> None:
    """Refuse an image whose header claims more than ``limit`` pixels (default: :func:`max_image_pixels`)."""
    limit = max_image_pixels() if limit is None else limit
    if height * width > limit:
        raise DataError(
            f"image {path} is {width} x {height} = {height * width:,} pixels ({height * width / 1e6:.1f} megapixels), "
            f"over the limit of {limit:,} pixels; raise data.max_image_pixels (or ${MAX_IMAGE_PIXELS_ENV}) if it is genuine"
        )
    if height < 1 or width < 1:
        raise DataError(f"cannot decode image {path}: its header gives a size of {width} x {height}")


def decode_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Decode a PNG (8 or 16 bit), JPEG or DICOM file into a grayscale uint8 (H, W) array.

    The size is read from the file's header first (PNG IHDR, JPEG SOF, DICOM
    Rows/Columns) and an image over ``max_pixels`` (default
    :func:`max_image_pixels`, 100 megapixels) is refused before anything is
    decoded, so a small file cannot claim gigabytes.
    Colour images are converted to gray. A 16-bit image is read at full depth
    and scaled linearly so that its own maximum becomes 255 (0 stays 0; a
    12-bit image stored in 16 bits uses the whole 0..255 range); an all-zero
    image stays 0. DICOM files (by suffix or their ``DICM`` preamble) go through
    :func:`hmlc.data.dicom.decode_dicom` (modality and VOI LUTs, MONOCHROME1 inverted).
    """
    from hmlc.data.dicom import decode_dicom, is_dicom_file

    limit = max_image_pixels() if max_pixels is None else max_pixels
    if os.path.isfile(path) and is_dicom_file(path):
        return decode_dicom(path, max_pixels=limit)
    _, height, width = image_dimensions(path)
    check_image_pixels(path, height, width, limit)
    try:
        buffer = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from None
    try:
        img = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    except cv2.error:
        img = None
    if img is None:
        raise DataError(f"cannot decode image {path}: not a readable PNG or JPEG file (truncated or corrupt?)")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        else:
            code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            img = cv2.cvtColor(img, code)
    if img.dtype == np.uint16:
        peak = int(img.max())
        if peak == 0:
            return np.zeros(img.shape, dtype=np.uint8)
        return np.rint(img.astype(np.float32) * (255.0 / peak)).astype(np.uint8)
    if img.dtype != np.uint8:
        raise DataError(f"image {path} has pixel type {img.dtype}; expected 8- or 16-bit PNG or JPEG")
    return np.ascontiguousarray(img)


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size`` (aspect ratio not kept), area-averaging when shrinking."""
    if size <= 0:
        raise DataError(f"image size must be positive, got {size}")
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interpolation = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interpolation)


@runtime_checkable
class ImageSource(Protocol):
    """Indexable images: ``read(i)`` returns a uint8 (H, W) array at the source's size."""

    def __len__(self) -> int: ...

    def read(self, i: int) -> np.ndarray: ...


class ArrayImageSource:
    """Images held in memory as one uint8 (N, H, W) array."""

    def __init__(self, array: np.ndarray) -> None:
        array = np.asarray(array)
        if array.ndim != 3 or array.dtype != np.uint8:
            raise DataError(f"image array must be uint8 (N, H, W); got {array.dtype} {array.shape}")
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def read(self, i: int) -> np.ndarray:
        return self.array[i]


class FileImageSource:
    """Image files decoded on each read and resized to ``size`` x ``size`` (None: as stored)."""

    def __init__(self, paths: Sequence[str | Path], size: int | None) -> None:
        if size is not None and size <= 0:
            raise DataError(f"image size must be positive, got {size}")
        self.paths = [str(p) for p in paths]
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        img = decode_image(self.paths[i])
        return img if self.size is None else resize_square(img, self.size)


def missing_files(paths: Sequence[str | Path]) -> list[str]:
    """The paths, in order, that are not existing files."""
    return [str(p) for p in paths if not os.path.isfile(p)]


#: What ``data.on_bad_image`` may say: stop at the first image that cannot be read, or skip it.
BAD_IMAGE_POLICIES = ("error", "skip")


class ImageIndexDataset:
    """``(uint8 image (1, H, W), index)`` items of an image source: a map-style dataset for a DataLoader.

    Targets, weights and augmentation stay with the caller, which looks them
    up by index (the trainer redraws targets per epoch and flips on the
    device with a seeded generator, so runs resume exactly).

    With ``on_bad_image="skip"`` an image that cannot be read comes as a
    black image of the source's size with index ``-1 - i``: the caller drops
    negative indices from the batch (see :func:`split_skipped`) and can
    report which images were skipped.
    """

    def __init__(self, images: ImageSource, on_bad_image: str = "error") -> None:
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise ConfigError(f"data.on_bad_image {on_bad_image!r}: use error or skip")
        self.images = images
        self.on_bad_image = on_bad_image

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        import torch

        try:
            img = np.ascontiguousarray(self.images.read(int(i)))
        except DataError:
            size = getattr(self.images, "size", None)
            if self.on_bad_image != "skip" or not size:
                raise
            return torch.zeros((1, size, size), dtype=torch.uint8), -1 - int(i)
        return torch.from_numpy(img)[None], int(i)


def split_skipped(x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """A batch of :class:`ImageIndexDataset` without its skipped images, and their indices."""
    keep = idx >= 0
    if bool(keep.all()):
        return x, idx, []
    return x[keep], idx[keep], (-1 - idx[~keep]).tolist()


def write_skipped(path: Path, images: ImageSource, indices: Sequence[int]) -> int:
    """Write the files of the skipped ``indices`` (one per line, sorted, unique) to ``path``; how many."""
    from hmlc.engine.rundir import atomic_write_text

    paths = getattr(images, "paths", None)
    lines = {paths[i] if paths is not None else f"image {i}" for i in indices}
    if Path(path).is_file():  # a resumed run adds to what its earlier part skipped
        lines |= set(Path(path).read_text(encoding="utf-8").splitlines())
    atomic_write_text(Path(path), "".join(f"{line}\n" for line in sorted(lines)))
    return len(lines)


class SubsetImageSource:
    """Some images of another image source, by index."""

    def __init__(self, source: ImageSource, indices: np.ndarray) -> None:
        self.source = source
        self.indices = np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, i: int) -> np.ndarray:
        return self.source.read(int(self.indices[i]))

    @property
    def size(self) -> int | None:
        """The side images come at (that of the source), when known."""
        return getattr(self.source, "size", None)

    @property
    def paths(self) -> list[str] | None:
        """The files of these images, when the source has files."""
        paths = getattr(self.source, "paths", None)
        return None if paths is None else [paths[int(j)] for j in self.indices]


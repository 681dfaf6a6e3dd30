"""The image pipeline: decode, resize, image sources and the torch dataset.

Images are single-channel uint8 arrays (H, W) from decoding to the model's
input; the model side converts to float and normalises.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hmlc.errors import DataError

__all__ = [
    "decode_image",
    "resize_square",
    "ImageSource",
    "ArrayImageSource",
    "FileImageSource",
    "missing_files",
    "ImageIndexDataset",
    "SubsetImageSource",
]


def decode_image(path: str | Path) -> np.ndarray:
    """Decode a PNG (8 or 16 bit) or JPEG file into a grayscale uint8 (H, W) array.

    Colour images are converted to gray. A 16-bit image is scaled linearly so
    that its own maximum becomes 255 (0 stays 0); an all-zero image stays 0.
    DICOM files (by suffix or their ``DICM`` preamble) go through
    :func:`hmlc.data.dicom.decode_dicom` (modality and VOI LUTs, MONOCHROME1 inverted).
    """
    from hmlc.data.dicom import decode_dicom, is_dicom_file

    if os.path.isfile(path) and is_dicom_file(path):
        return decode_dicom(path)
    try:
        buffer = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from None
    img = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if img is None:
        raise DataError(f"cannot decode image {path}: not a readable PNG or JPEG file")
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


class ImageIndexDataset(Dataset):
    """``(uint8 image (1, H, W), index)`` items of an image source, for a DataLoader.

    Targets, weights and augmentation stay with the caller, which looks them
    up by index (the trainer redraws targets per epoch and flips on the
    device with a seeded generator, so runs resume exactly).
    """

    def __init__(self, images: ImageSource) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = np.ascontiguousarray(self.images.read(int(i)))
        return torch.from_numpy(img)[None], int(i)


class SubsetImageSource:
    """Some images of another image source, by index."""

    def __init__(self, source: ImageSource, indices: np.ndarray) -> None:
        self.source = source
        self.indices = np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, i: int) -> np.ndarray:
        return self.source.read(int(self.indices[i]))


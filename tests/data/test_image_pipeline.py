"""Decoding, resizing, image sources and ImageDataset."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hmlc.data.images import (
    ArrayImageSource,
    FileImageSource,
    ImageDataset,
    ImageSource,
    decode_image,
    missing_files,
    random_flip_augment,
    resize_square,
)
from hmlc.errors import DataError


def gradient(h: int = 40, w: int = 30) -> np.ndarray:
    return (np.add.outer(np.arange(h) * 3, np.arange(w) * 2) % 256).astype(np.uint8)


def save(path: Path, img: np.ndarray, *params: int) -> Path:
    ok, data = cv2.imencode(path.suffix, img, list(params))
    assert ok
    data.tofile(str(path))
    return path


def test_decode_8bit_png_exactly(tmp_path: Path) -> None:
    img = gradient()
    out = decode_image(save(tmp_path / "a.png", img))
    assert out.dtype == np.uint8 and out.shape == (40, 30)
    np.testing.assert_array_equal(out, img)


def test_decode_16bit_png_scales_by_its_maximum(tmp_path: Path) -> None:
    img = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    out = decode_image(save(tmp_path / "deep.png", img))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 64], [128, 255]])
    black = decode_image(save(tmp_path / "black.png", np.zeros((3, 3), np.uint16)))
    np.testing.assert_array_equal(black, np.zeros((3, 3), np.uint8))


def test_decode_jpeg_and_colour_to_gray(tmp_path: Path) -> None:
    img = gradient()
    out = decode_image(save(tmp_path / "a.jpg", img, cv2.IMWRITE_JPEG_QUALITY, 95))
    assert out.shape == img.shape and np.abs(out.astype(int) - img).mean() < 3
    bgr = np.stack([img, 255 - img, img // 2], axis=2)
    colour = decode_image(save(tmp_path / "c.png", bgr))
    np.testing.assert_array_equal(colour, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    bgra = np.concatenate([bgr, np.full((40, 30, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_image(save(tmp_path / "d.png", bgra)), colour)
    assert decode_image(save(tmp_path / "c.jpg", bgr)).shape == (40, 30)


def test_decode_odd_paths(tmp_path: Path) -> None:
    folder = tmp_path / "Röntgen bilder #1"
    folder.mkdir()
    img = gradient(8, 8)
    np.testing.assert_array_equal(decode_image(save(folder / "ü é.png", img)), img)


def test_decode_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"
    with pytest.raises(DataError, match="missing.png"):
        decode_image(missing)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match="junk.png"):
        decode_image(junk)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.jpg"):
        decode_image(empty)


def test_resize_square() -> None:
    board = np.kron(np.array([[0, 255], [255, 0]], np.uint8), np.ones((2, 2), np.uint8))
    board = np.tile(board, (4, 4))  # 16x16 checkerboard of 2x2 cells
    small = resize_square(board, 8)
    assert small.shape == (8, 8) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, cv2.resize(board, (8, 8), interpolation=cv2.INTER_AREA))
    assert resize_square(board, 4).std() < 1  # area averaging: every 4x4 block is half white
    assert resize_square(gradient(30, 50), 64).shape == (64, 64)
    img = gradient(10, 10)
    assert resize_square(img, 10) is img
    with pytest.raises(DataError):
        resize_square(img, 0)


def test_sources(tmp_path: Path) -> None:
    arr = np.stack([gradient(16, 16), 255 - gradient(16, 16)])
    source = ArrayImageSource(arr)
    assert isinstance(source, ImageSource) and len(source) == 2
    np.testing.assert_array_equal(source.read(1), arr[1])
    with pytest.raises(DataError, match="uint8"):
        ArrayImageSource(arr.astype(np.float32))

    paths = [save(tmp_path / f"{i}.png", gradient(20 + i, 30)) for i in range(2)]
    files = FileImageSource(paths, 12)
    assert isinstance(files, ImageSource) and len(files) == 2
    assert files.read(0).shape == (12, 12) and files.read(1).dtype == np.uint8
    assert FileImageSource(paths, None).read(1).shape == (21, 30)
    assert missing_files([*paths, tmp_path / "gone.png", tmp_path]) == [str(tmp_path / "gone.png"), str(tmp_path)]


def dataset(n: int = 6, augment=None) -> ImageDataset:
    imgs = np.stack([np.tile(np.arange(8, dtype=np.uint8), (8, 1)) + i for i in range(n)])
    targets = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return ImageDataset(ArrayImageSource(imgs), targets, np.ones((n, 3), np.float32), augment)


def test_image_dataset_items() -> None:
    ds = dataset()
    image, targets, weights, index = ds[4]
    assert image.dtype == torch.uint8 and image.shape == (1, 8, 8)
    assert targets.dtype == torch.float32 and targets.tolist() == [12, 13, 14]
    assert weights.dtype == torch.float32 and weights.shape == (3,)
    assert index == 4 and int(image[0, 0, 0]) == 4
    batch = next(iter(DataLoader(ds, batch_size=6)))
    assert batch[0].shape == (6, 1, 8, 8) and batch[3].tolist() == list(range(6))
    with pytest.raises(DataError, match="equal shape"):
        ImageDataset(ArrayImageSource(np.zeros((2, 4, 4), np.uint8)), np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(DataError):
        ImageDataset(ArrayImageSource(np.zeros((2, 4, 4), np.uint8)), np.zeros((3, 3)), np.zeros((3, 3)))


def test_random_flip_is_seeded_and_flips_about_half() -> None:
    def flips(seed: int) -> list[bool]:
        torch.manual_seed(seed)
        ds = dataset(200, random_flip_augment)
        return [bool(ds[i][0][0, 0, 0] == 7 + i) for i in range(200)]

    first = flips(0)
    assert first == flips(0)
    assert first != flips(1)
    assert 60 < sum(first) < 140
    ds = dataset(1, random_flip_augment)
    image = next(img for img, *_ in (ds[0] for _ in range(50)) if img[0, 0, 0] == 7)
    assert image[0, 0].tolist() == list(range(7, -1, -1))


def test_random_flip_differs_between_workers() -> None:
    torch.manual_seed(0)
    ds = dataset(64, random_flip_augment)
    loader = DataLoader(ds, batch_size=32, num_workers=2)
    # The corner pixel of item i holds i, or 7 + i when flipped.
    patterns = [(images[:, 0, 0, 0] != index).tolist() for images, _, _, index in loader]
    assert patterns[0] != patterns[1]

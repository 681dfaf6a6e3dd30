"""Decoding, resizing, image sources and the DataLoader dataset over them."""

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
    ImageIndexDataset,
    ImageSource,
    decode_image,
    missing_files,
    SubsetImageSource,
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


def test_image_index_dataset_items_through_a_dataloader() -> None:
    imgs = np.stack([np.full((4, 5), i, np.uint8) for i in range(6)])
    ds = ImageIndexDataset(ArrayImageSource(imgs))
    image, index = ds[4]
    assert len(ds) == 6 and index == 4
    assert image.dtype == torch.uint8 and image.shape == (1, 4, 5) and int(image[0, 0, 0]) == 4
    batches = list(DataLoader(ds, batch_size=4, num_workers=0))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5]]
    assert batches[1][0][:, 0, 0, 0].tolist() == [4, 5]


def test_subset_image_source_reads_by_index() -> None:
    imgs = np.stack([np.full((3, 3), i, np.uint8) for i in range(5)])
    subset = SubsetImageSource(ArrayImageSource(imgs), np.array([4, 1]))
    assert isinstance(subset, ImageSource) and len(subset) == 2
    assert [int(subset.read(i)[0, 0]) for i in range(2)] == [4, 1]


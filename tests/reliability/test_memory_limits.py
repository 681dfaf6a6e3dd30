"""Memory a small file controls: sizes are read from headers and checked before anything is decoded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import hmlc.data.images as images
from hmlc.cli.main import main
from hmlc.config import load_config
from hmlc.data.images import decode_image, image_dimensions
from hmlc.errors import CheckpointError, DataError
from tests.reliability.conftest import dicom_claiming, jpeg_claiming, png_claiming


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reaches OpenCV's decoder."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("cv2.imdecode was called for an image over the pixel limit")

    monkeypatch.setattr(images.cv2, "imdecode", refuse)


@pytest.mark.parametrize(
    ("name", "make", "claimed"),
    [
        ("huge.png", lambda p: png_claiming(p, 40000, 40000), (40000, 40000)),
        ("rgba16.png", lambda p: png_claiming(p, 32000, 32000, bit_depth=16, colour_type=6), (32000, 32000)),
        ("huge.jpg", lambda p: jpeg_claiming(p, 30000, 20000), (20000, 30000)),
    ],
)
def test_a_small_file_claiming_a_huge_image_is_refused_before_decoding(
    tmp_path: Path, no_decoding: None, name: str, make, claimed: tuple[int, int]
) -> None:
    path = make(tmp_path / name)
    assert path.stat().st_size < 2_000
    assert image_dimensions(path)[1:] == claimed
    with pytest.raises(DataError) as info:
        decode_image(path)
    message = str(info.value)
    assert str(path) in message and "megapixels" in message and "data.max_image_pixels" in message


def test_a_dicom_header_claiming_a_huge_image_is_refused_before_its_pixels(tmp_path: Path) -> None:
    path = dicom_claiming(tmp_path / "huge.dcm", 20000, 20000)
    with pytest.raises(DataError, match=r"20000 x 20000 = 400,000,000 pixels \(400\.0 megapixels\), over the limit of 100,000,000 pixels"):
        decode_image(path)


def test_the_limit_comes_from_the_environment_and_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.zeros((100, 80), np.uint8))
    assert decode_image(path).shape == (100, 80)
    monkeypatch.setenv(images.MAX_IMAGE_PIXELS_ENV, "7999")
    with pytest.raises(DataError, match="over the limit"):
        decode_image(path)
    monkeypatch.setenv(images.MAX_IMAGE_PIXELS_ENV, "")
    load_config(overrides=["data.max_image_pixels=8000"])
    assert decode_image(path).shape == (100, 80)
    load_config(overrides=["data.max_image_pixels=7999"])
    with pytest.raises(DataError, match="over the limit of 7,999 pixels"):
        decode_image(path)


def test_a_huge_png_under_predict_is_one_line_and_bounded(tmp_path: Path) -> None:
    """In a subprocess limited to 3 GB of address space over what it starts with: exit 2, one line."""
    path = png_claiming(tmp_path / "huge.png", 40000, 40000)
    code = (
        "import resource, sys\n"
        "from hmlc.data.images import decode_image\n"
        "from hmlc.errors import DataError\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
        "used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used + (3 << 30), hard))\n"
        "try:\n"
        f"    decode_image({str(path)!r})\n"
        "except DataError as e:\n"
        "    print(e); sys.exit(2)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "over the limit" in done.stdout and done.stderr == ""


def test_16bit_png_with_12bit_values_uses_its_full_depth(tmp_path: Path) -> None:
    """PadChest stores 12-bit values in 16-bit PNGs: scaled by the image's maximum, not cut to 8 bits."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 4096, size=(30, 20), dtype=np.uint16)
    img[0, 0] = 4095
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), img)
    out = decode_image(path)
    expected = np.floor(img.astype(np.float64) * 255.0 / 4095.0 + 0.5).astype(np.uint8)
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert out.max() == 255 and len(np.unique(out)) > 200  # 12 bits spread over 0..255, not 0..15


def _tamper(folder: Path, **changes: object) -> None:
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["metadata"].update(changes)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"image_size": 1_000_000}, "image_size 1000000"),
        ({"image_size": "64"}, "image_size \"64\""),
        ({"output": "bogus"}, "output \"bogus\""),
        ({"multiclass": "yes"}, "multiclass"),
    ],
)
def test_a_tampered_checkpoint_meta_is_one_clear_error(tmp_path: Path, changes: dict, needle: str) -> None:
    import torch

    from hmlc.models import load_checkpoint, save_checkpoint

    folder = save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(2)}, {"image_size": 64, "output": "conditional"})
    _tamper(folder, **changes)
    with pytest.raises(CheckpointError, match=needle.replace("(", r"\(")):
        load_checkpoint(folder)


def test_predict_with_a_checkpoint_claiming_a_huge_image_size_exits_2(tmp_path: Path, capsys) -> None:
    import torch

    from hmlc.models import save_checkpoint

    folder = save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(2)}, {"image_size": 1_000_000})
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8), np.uint8))
    assert main(["predict", "--checkpoint", str(folder), str(image), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "image_size 1000000" in err
    assert not (tmp_path / "p.csv").exists()


def test_identical_checkpoints_have_identical_bytes_across_processes(tmp_path: Path) -> None:
    code = (
        "import sys, torch\n"
        "from hmlc.models import save_checkpoint\n"
        "torch.manual_seed(0)\n"
        "state = {'b': torch.randn(3), 'a': torch.randn(2, 2), 'tied': None}\n"
        "state['tied'] = state['a']\n"
        "save_checkpoint(sys.argv[1], state, {'z': 1, 'a': 2})\n"
    )
    for name in ("one", "two", "three"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, timeout=120)
    blobs = {(tmp_path / n / "model.safetensors").read_bytes() for n in ("one", "two", "three")}
    assert len(blobs) == 1


def test_checkpoint_folders_get_the_mode_of_any_other_folder(tmp_path: Path) -> None:
    import torch

    from hmlc.models import save_checkpoint

    plain = tmp_path / "plain"
    plain.mkdir()
    folder = save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(2)}, {})
    assert os.stat(folder).st_mode & 0o777 == os.stat(plain).st_mode & 0o777


def test_a_deflated_dicom_is_measured_before_pydicom_inflates_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deflated data set of 4000 x 4000 16-bit zeros: 32 MB inflated from a few KB."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    path = dicom_claiming(tmp_path / "plain.dcm", 4000, 4000)
    ds = pydicom.dcmread(str(path))
    ds.PixelData = b"\0" * (4000 * 4000 * 2)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = tmp_path / "deflated.dcm"
    ds.save_as(str(deflated), enforce_file_format=True)
    assert deflated.stat().st_size < 100_000

    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("pydicom read (and inflated) the file")

    monkeypatch.setattr(pydicom, "dcmread", no_read)
    monkeypatch.setenv(images.MAX_IMAGE_PIXELS_ENV, "1000000")  # 4 MB + 16 MiB of inflated data allowed
    with pytest.raises(DataError, match="inflates to more than"):
        decode_image(deflated)
    monkeypatch.undo()
    monkeypatch.setenv(images.MAX_IMAGE_PIXELS_ENV, "")
    with pytest.raises(DataError, match="4000 x 4000"):  # under the inflation bound; still no pixel decoding
        decode_image(deflated, max_pixels=10_000_000)
    assert decode_image(deflated, max_pixels=16_000_000).shape == (4000, 4000)

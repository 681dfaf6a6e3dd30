"""Tracebacks instead of one line: known failures are one line and exit 2; a bug still shows its traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import hmlc.cli.info as info
from hmlc.cli.main import main, one_line
from tests.reliability.conftest import dicom_claiming, run_cli, tiny_sets


def _one_line(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    last = err.splitlines()[-1]
    assert last.startswith("hmlc: error: ") and err.count("hmlc: error") == 1 and "Traceback" not in err, err
    assert needle in last, err


def test_a_non_utf8_file_name_in_a_predicted_folder(
    tiny_run: Path, synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    image = next(synth_folder.rglob("*.png"))
    shutil.copy(image, folder / "ok.png")
    shutil.copy(image, Path(str(folder) + "/x\udcff.png"))  # the file name holds the byte 0xff
    code, _, err = run_cli(["predict", "--checkpoint", tiny_run, folder, "--out", tmp_path / "p.csv"], capsys)
    _one_line(code, err, "x\\xff.png")
    assert not (tmp_path / "p.csv").exists()


def test_a_dicom_with_a_corrupt_header(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = dicom_claiming(tmp_path / "a.dcm", 8, 8)
    data = bytearray(path.read_bytes())
    at = bytes(data).index(b"\x02\x00\x10\x00UI") + 4  # the transfer syntax's value representation
    data[at:at + 2] = b"U\x0b"  # an unknown one: pydicom raises NotImplementedError
    (tmp_path / "b.dcm").write_bytes(bytes(data))
    code, _, err = run_cli(["predict", "--checkpoint", tiny_run, tmp_path / "b.dcm", "--out", tmp_path / "p.csv"], capsys)
    _one_line(code, err, "b.dcm")


def test_a_truncated_training_image_read_by_workers(
    synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_folder, data)
    image = sorted((data / "train").rglob("*.png"))[2]
    image.write_bytes(image.read_bytes()[:60])
    code, _, err = run_cli(
        ["train", "--out", tmp_path / "runs", *tiny_sets(data, "data.num_workers=2", "output.name=w")], capsys
    )
    _one_line(code, err, f"cannot decode image {image}")
    assert "Original Traceback" not in err and list((tmp_path / "runs").iterdir()) == []


def test_one_line_keeps_the_error_of_a_worker_traceback() -> None:
    message = (
        "Caught DataError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise DataError(...)\nhmlc.errors.DataError: cannot decode image a.png: bad\n'
    )
    assert one_line(message) == "cannot decode image a.png: bad"
    assert one_line("two\nlines") == "two lines"


def test_an_unexpected_exception_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(info, "cmd_plugins", buggy)
    with pytest.raises(ZeroDivisionError):
        main(["plugins"])


def test_an_unwritable_output_is_one_line(
    tiny_run: Path, synth_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    image = next(synth_folder.rglob("*.png"))
    code, _, err = run_cli(["predict", "--checkpoint", tiny_run, image, "--out", blocker / "p.csv"], capsys)
    _one_line(code, err, str(blocker))

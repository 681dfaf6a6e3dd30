"""A catalogue of bad inputs through the CLI: exit 2, one stderr line naming the culprit, nothing written.

Each case gives hmlc one bad hierarchy file, labels CSV, configuration or
override, image, checkpoint or output path (built in :func:`bad`). Every run
must end with exit code 2 and exactly one stderr line ``hmlc: error: ...``
that names the file, row or key; no traceback; and leave every file as it
was, with no file or folder added (the inputs, the shared dataset and run,
and the output folder are hashed before and after).
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hmlc.data.images import MAX_IMAGE_PIXELS_ENV
from tests.reliability.conftest import (
    dicom_claiming,
    folder_state,
    jpeg_claiming,
    png_claiming,
    run_cli,
    tiny_sets,
)

BOMB = "l0: &l0 [a, a, a, a, a, a, a, a, a]\n" + "".join(
    f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 10)
)


@dataclass
class Paths:
    bad: Path  # the bad inputs of this module
    out: Path  # where outputs would go: must stay empty
    data: Path  # the shared synthetic dataset
    run: Path  # the shared tiny run

    @property
    def ckpt(self) -> Path:
        return self.run / "checkpoints" / "last"

    @property
    def image(self) -> Path:
        return sorted((self.data / "valid").rglob("*.png"))[0]


def _png(path: Path, rows: bytes, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, synth_folder: Path, tiny_run: Path) -> Path:
    """Every bad input of the catalogue, written once."""
    root = tmp_path_factory.mktemp("bad")
    w = lambda name, text: (root / name).write_text(text, encoding="utf-8")  # noqa: E731
    # hierarchy files
    w("cycle.yaml", "edges: [[a, b], [b, c], [c, a]]\n")
    w("selfloop.yaml", "edges: [[a, a]]\n")
    w("numbers.yaml", "[1, 2, 3]\n")
    w("syntax.yaml", "edges: [[a, b]\n")
    w("bomb.yaml", BOMB + "edges: *l9\n")
    w("recursive.yaml", "edges: &e [*e]\n")
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage\x80")
    w("empty.yaml", "")
    w("broken.json", '{"edges": [["a", "b"]')
    w("types.json", '{"edges": 7}')
    w("unknown_parent.yaml", "labels: [a, b]\nedges: [[a, b], [c, d]]\n")
    # labels and predictions CSVs
    valid = (synth_folder / "valid.csv").read_text()
    train = (synth_folder / "train.csv").read_text()
    header, *lines = valid.splitlines()
    labels = [header.split(",")[0], *header.split(",")[5:]]
    rows = [line.split(",") for line in lines]
    labels_ok = "\n".join([",".join(labels), *(",".join([r[0], *r[5:]]) for r in rows)]) + "\n"
    preds_ok = "\n".join([",".join(labels), *(",".join([r[0], *["0.5"] * (len(labels) - 1)]) for r in rows)]) + "\n"
    w("labels_ok.csv", labels_ok)
    w("preds_ok.csv", preds_ok)
    preds_header, first, *_ = preds_ok.splitlines()
    w("noid.csv", preds_ok.replace("Path,", "Picture,", 1))  # predictions: no id column in common
    w("two.csv", preds_ok.replace(",0.5", ",2.0", 1))  # a probability of 2
    w("nan.csv", preds_ok.replace(",0.5", ",nan", 1))
    w("empty.csv", "")
    (root / "latin1.csv").write_bytes(preds_ok.encode("utf-8").replace(b"0.5", b"0.\xe4", 1))
    (root / "latin1_header.csv").write_bytes(preds_ok.encode("utf-8").replace(b"Mass", b"M\xe4ss", 1))
    w("dupids.csv", preds_header + "\n" + first + "\n" + first + "\n")
    (root / "garbage.csv").write_bytes(bytes(range(256)) * 4)
    w("header_only.csv", preds_header + "\n")
    w("labels_code7.csv", labels_ok.replace(",0.0", ",7.0", 1))
    # datasets with a bad labels CSV (the images are the shared ones)
    for name, text in {
        "code7": train.replace(",0.0,", ",7.0,", 1),
        "nopath": train.replace("Path,", "Picture,", 1),
        "missing_image": train.replace("view1_frontal.png", "nope.png", 1),
        "empty_split": header + "\n",
        # a spreadsheet's Latin-1: in a data row far from the start, in the header
        "latin1_row": "view1_fr\xe4ntal.png".join(train.rsplit("view1_frontal.png", 1)),
        "latin1_header": train.replace("Path,", "P\xe4th,Path,", 1),
    }.items():
        folder = root / name / synth_folder.name
        folder.mkdir(parents=True)
        (folder / "train.csv").write_bytes(text.encode("latin-1"))
        (folder / "valid.csv").write_text(valid)
        for split in ("train", "valid"):
            (folder / split).symlink_to(synth_folder / split)
    # configurations
    w("unknown_key.yaml", "train:\n  epochz: 3\n")
    w("wrong_type.yaml", "train:\n  epochs: many\n")
    w("list.yaml", "- train\n- epochs\n")
    w("syntax_cfg.yaml", "train: {epochs: 3\n")
    w("bomb_cfg.yaml", "data:\n  params:\n" + "".join("    " + line + "\n" for line in BOMB.splitlines()))
    w("bomb_value.yaml", BOMB + "seed: *l9\n")
    w("recursive_cfg.yaml", "data:\n  params: &p\n    self: *p\n")
    (root / "binary_cfg.yaml").write_bytes(b"train:\n  epochs: \xff\xfe\n")
    # images
    png_claiming(root / "huge.png", 40000, 40000)
    png_claiming(root / "rgba16.png", 32000, 32000, bit_depth=16, colour_type=6)
    jpeg_claiming(root / "huge.jpg", 30000, 20000)
    dicom_claiming(root / "huge.dcm", 20000, 20000)
    (root / "truncated.png").write_bytes(sorted(synth_folder.rglob("*.png"))[0].read_bytes()[:50])
    (root / "zero.png").write_bytes(b"")
    w("text.png", "this is not an image\n")
    _png(root / "short_rows.png", b"\0" * 10, 64, 64)
    dicom_claiming(root / "ok.dcm", 8, 8)
    data = bytearray((root / "ok.dcm").read_bytes())
    at = bytes(data).index(b"\x02\x00\x10\x00UI") + 4
    data[at:at + 2] = b"U\x0b"
    (root / "corrupt_header.dcm").write_bytes(bytes(data))
    (root / "ok.dcm").unlink()
    (root / "nopixels.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x001.2\0")
    (root / "names").mkdir()
    shutil.copy(sorted(synth_folder.rglob("*.png"))[0], str(root / "names") + "/x\udcff.png")
    # checkpoints
    def ckpt(name: str, edit: Callable[[Path], None]) -> None:
        shutil.copytree(tiny_run / "checkpoints" / "last", root / name)
        edit(root / name)

    def meta(**changes: object) -> Callable[[Path], None]:
        def apply(folder: Path) -> None:
            m = json.loads((folder / "meta.json").read_text())
            for key, value in changes.items():
                if key == "format_version":
                    m[key] = value
                elif value is None:
                    m["metadata"].pop(key)
                else:
                    m["metadata"][key] = value
            (folder / "meta.json").write_text(json.dumps(m))
        return apply

    ckpt("ck_json", lambda f: (f / "meta.json").write_text("{not json"))
    ckpt("ck_size", meta(image_size=1_000_000))
    ckpt("ck_output", meta(output="bogus"))
    ckpt("ck_labels", meta(labels=None))
    ckpt("ck_future", meta(format_version=99))
    ckpt("ck_flipped", lambda f: (f / "model.safetensors").write_bytes(
        (f / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0"))
    ckpt("ck_nomodel", lambda f: (f / "model.safetensors").unlink())
    (root / "ck_empty").mkdir()
    w("ck_file.txt", "not a checkpoint\n")
    return root


def _cases() -> list[tuple[str, Callable[[Paths], list[object]], str | Callable[[Paths], str], dict[str, str]]]:
    """(id, argv, text the error line must hold, environment)."""
    c: list = []

    def case(name: str, argv: Callable[[Paths], list[object]], needle: object, env: dict[str, str] | None = None):
        c.append(pytest.param(argv, needle, env or {}, id=name))

    # hierarchy files
    for f, needle in [
        ("cycle.yaml", "cycle"), ("selfloop.yaml", "'selfloop'"), ("numbers.yaml", "numbers.yaml"),
        ("syntax.yaml", "syntax.yaml"), ("bomb.yaml", "alias bomb"), ("recursive.yaml", "recursive alias"),
        ("binary.yaml", "binary.yaml"), ("empty.yaml", "empty.yaml"), ("broken.json", "broken.json"),
        ("types.json", "types.json"), ("unknown_parent.yaml", "'unknown_parent'"), ("missing.yaml", "missing.yaml"),
    ]:
        case(f"hierarchy-{f}", lambda p, f=f: ["hierarchy", "check", p.bad / f], needle)
    case("hierarchy-folder", lambda p: ["hierarchy", "check", p.bad / "names"], "names")
    case("train-hierarchy-file", lambda p: ["train", "--out", p.out, *tiny_sets(p.data, f"hierarchy={p.bad / 'cycle.yaml'}")], "cycle")
    # labels / predictions CSVs for evaluate
    for f in ("noid.csv", "two.csv", "empty.csv", "latin1.csv", "nan.csv", "garbage.csv", "header_only.csv", "missing.csv"):
        case(f"evaluate-predictions-{f}", lambda p, f=f: ["evaluate", "--predictions", p.bad / f, "--labels", p.bad / "labels_ok.csv"], f)
    # Not UTF-8 (a spreadsheet's Latin-1): in a data row, in the header.
    for f in ("latin1.csv", "latin1_header.csv"):
        case(f"evaluate-labels-{f}", lambda p, f=f: ["evaluate", "--predictions", p.bad / "preds_ok.csv", "--labels",
                                                    p.bad / f], f"{f} is not valid UTF-8")
    case("evaluate-predictions-latin1_header.csv", lambda p: ["evaluate", "--predictions", p.bad / "latin1_header.csv",
                                                              "--labels", p.bad / "labels_ok.csv"],
         "latin1_header.csv is not valid UTF-8")
    for f in ("noid.csv", "empty.csv", "garbage.csv", "missing.csv", "labels_code7.csv"):
        case(f"evaluate-labels-{f}", lambda p, f=f: ["evaluate", "--predictions", p.bad / "preds_ok.csv", "--labels", p.bad / f], f)
    case("evaluate-dupids", lambda p: ["evaluate", "--predictions", p.bad / "dupids.csv", "--labels", p.bad / "labels_ok.csv"], "dupids.csv")
    # datasets with a bad labels CSV
    for name, needle in [("code7", "7"), ("nopath", "Path"), ("missing_image", "nope.png"),
                         ("empty_split", "train"), ("latin1_row", "train.csv is not valid UTF-8"),
                         ("latin1_header", "train.csv is not valid UTF-8")]:
        case(f"train-dataset-{name}", lambda p, name=name: ["train", "--out", p.out, *tiny_sets(p.bad / name / p.data.name)], needle)
    # configurations and overrides
    for f, needle in [
        ("unknown_key.yaml", "train.epochz"), ("wrong_type.yaml", "train.epochs"), ("list.yaml", "list.yaml"),
        ("syntax_cfg.yaml", "syntax_cfg.yaml"), ("bomb_cfg.yaml", "alias bomb"), ("bomb_value.yaml", "alias bomb"),
        ("recursive_cfg.yaml", "recursive alias"), ("binary_cfg.yaml", "binary_cfg.yaml"), ("missing.yaml", "missing.yaml"),
    ]:
        case(f"config-{f}", lambda p, f=f: ["config", "show", "--config", p.bad / f], needle)
    case("train-config-bomb", lambda p: ["train", "--config", p.bad / "bomb_value.yaml"], "alias bomb")
    for setting, needle in [
        ("train.lr=.inf", "train.lr"), ("train.betas=[1.0, 1.0]", "betas"), ("train.betas=[0.9]", "train.betas"),
        ("train.method=flat", None), ("data.max_image_pixels=0", "data.max_image_pixels"),
        ("train.batch_size=10000000000000", "train.batch_size"), ("data.image_size=100000", "data.image_size"),
        ("model.backbone=nope", "nope"), ("data.dataset=nope", "nope"), ("policy.default=u-what", "u-what"),
    ]:
        if needle is None:
            case("train-epochs-0", lambda p: ["train", "--out", p.out, *tiny_sets(p.data, "train.epochs=0")], "nothing to train")
            continue
        case(f"train-set-{setting.split('=')[0]}-{len(c)}", lambda p, s=setting: ["train", "--out", p.out, *tiny_sets(p.data, s)], needle)
    for text, needle in [("trainepochs", "trainepochs"), ("train..lr=1", "train..lr"), ("seed.x=1", "seed"),
                         ("=3", "=3")]:
        case(f"set-{text}", lambda p, t=text: ["config", "show", "--set", t], needle)
    case("preset-unknown", lambda p: ["config", "show", "--preset", "nope"], "nope")
    case("ablate-duplicate", lambda p: ["ablate", "--grid", "ct=on,on", "--out", p.out / "abl"], "more than once")
    case("env-pixels", lambda p: ["predict", "--checkpoint", p.ckpt, p.image, "--out", p.out / "p.csv"],
         MAX_IMAGE_PIXELS_ENV, {MAX_IMAGE_PIXELS_ENV: "lots"})
    # images through predict
    for f, needle in [
        ("huge.png", "megapixels"), ("rgba16.png", "megapixels"), ("huge.jpg", "megapixels"), ("huge.dcm", "megapixels"),
        ("truncated.png", "truncated.png"), ("zero.png", "zero.png"), ("text.png", "text.png"),
        ("short_rows.png", "short_rows.png"), ("corrupt_header.dcm", "corrupt_header.dcm"),
        ("nopixels.dcm", "nopixels.dcm"), ("missing.png", "missing.png"),
    ]:
        case(f"predict-image-{f}", lambda p, f=f: ["predict", "--checkpoint", p.ckpt, p.bad / f, "--out", p.out / "p.csv"], needle)
    case("predict-non-utf8-name", lambda p: ["predict", "--checkpoint", p.ckpt, p.bad / "names", "--out", p.out / "p.csv"], "x\\xff.png")
    case("explain-huge", lambda p: ["explain", "--checkpoint", p.ckpt, p.bad / "huge.png", "--out", p.out / "maps"], "megapixels")
    case("prepare-bad-hierarchy", lambda p: ["prepare", "--cache", p.out / "cache", *tiny_sets(p.data, f"hierarchy={p.bad / 'bomb.yaml'}")], "alias bomb")
    # checkpoints
    for f, needle in [
        ("ck_json", "meta.json"), ("ck_size", "image_size 1000000"), ("ck_output", "bogus"), ("ck_labels", "labels"),
        ("ck_future", "upgrade hmlc"), ("ck_flipped", "corrupt"), ("ck_nomodel", "model.safetensors"),
        ("ck_empty", "ck_empty"), ("ck_file.txt", "ck_file.txt"), ("ck_missing", "ck_missing"),
    ]:
        case(f"checkpoint-{f}", lambda p, f=f: ["predict", "--checkpoint", p.bad / f, p.image, "--out", p.out / "p.csv"], needle)
    case("export-bad-checkpoint", lambda p: ["export", "--checkpoint", p.bad / "ck_size", "--format", "onnx", "--out", p.out / "m.onnx"], "image_size")
    case("resume-missing", lambda p: ["train", "--resume", p.bad / "nothing"], "config.yaml")
    # output paths
    case("out-is-image", lambda p: ["predict", "--checkpoint", p.ckpt, p.image, "--out", p.image], "inputs")
    case("out-is-labels", lambda p: ["predict", "--checkpoint", p.ckpt, "--dataset", "csv", "--split", "valid",
                                     "--set", f"data.root={p.data}", "--out", p.data / "valid.csv"], "inside")
    case("out-in-checkpoint", lambda p: ["export", "--checkpoint", p.ckpt, "--format", "onnx", "--out", p.ckpt / "m.onnx"], "inside")
    case("out-in-radiologists", lambda p: ["evaluate", "--predictions", p.bad / "preds_ok.csv", "--labels", p.bad / "labels_ok.csv",
                                           "--radiologists", p.bad / "names", "--out", p.bad / "names" / "r"], "inside")
    case("out-in-data-root", lambda p: ["train", "--out", p.data / "runs", *tiny_sets(p.data)], "inside")
    case("out-under-a-file", lambda p: ["predict", "--checkpoint", p.ckpt, p.image, "--out", p.bad / "empty.csv" / "p.csv"], "empty.csv")
    case("evaluate-out-is-file", lambda p: ["evaluate", "--predictions", p.bad / "preds_ok.csv", "--labels", p.bad / "labels_ok.csv",
                                            "--out", p.bad / "empty.csv"], "empty.csv")
    return c


CASES = _cases()


def test_the_catalogue_is_big_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize(("argv", "needle", "env"), CASES)
def test_a_bad_input_is_one_line_exit_2_and_changes_nothing(
    bad: Path, synth_folder: Path, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, argv: Callable[[Paths], list[object]], needle: str, env: dict[str, str],
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    paths = Paths(bad, out, synth_folder, tiny_run)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    watched = [bad, synth_folder, tiny_run, tmp_path]
    before = [folder_state(folder) for folder in watched]
    code, stdout, err = run_cli(argv(paths), capsys)
    assert code == 2, (code, stdout[-500:], err[-2000:])
    assert err.count("\n") == 1 and err.startswith("hmlc: error: "), err[-3000:]
    assert "Traceback" not in err
    assert needle in err, err
    assert [folder_state(folder) for folder in watched] == before

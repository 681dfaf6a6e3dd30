"""`hmlc prepare` and training from the preprocessed-image cache."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from hmlc.cli.main import main
from hmlc.config import load_config
from hmlc.data.cache import MemmapImageSource
from hmlc.data.images import resize_square
from hmlc.data.preprocess import PreprocessedImages, Preprocessor
from hmlc.data.synthetic import export_synthetic
from hmlc.engine.experiment import prepare_experiment
from hmlc.plugins import get_host


class MeanTemplate(Preprocessor):
    """Fitted like CheXpert's template match: the mean of resized frontal training images.

    The output (image minus template, recentred) depends on the fitted state,
    so a wrong or missing state shows in the pixels.
    """

    name = "mean-template"
    requires_fit = True
    fit_views = ("frontal",)

    def __init__(self, size: int = 36, fit_images: int | None = 20) -> None:
        self.size, self.fit_images = size, fit_images
        self.template: np.ndarray | None = None

    def settings(self) -> dict[str, Any]:
        return {"size": self.size, "fit_images": self.fit_images}

    def fit(self, images, max_images=None) -> None:
        n = len(images) if max_images is None else min(len(images), max_images)
        stack = [resize_square(images.read(i), self.size).astype(np.float32) for i in range(n)]
        self.template = np.mean(stack, axis=0).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {} if self.template is None else {"template": self.template}

    def load_state(self, state) -> None:
        self.template = np.asarray(state["template"], dtype=np.float32)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        diff = resize_square(img, self.size).astype(np.float32) - self.template + 128.0
        return np.clip(np.rint(diff), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 synthetic images (48 train, 12 valid) at 40x40 in CheXpert's layout; read-only."""
    out = tmp_path_factory.mktemp("prepare") / "synth"
    export_synthetic(out, n=60, seed=2, image_size=40)
    return out


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HMLC_CACHE in tmp: nothing reaches the user's own cache folder."""
    monkeypatch.setenv("HMLC_CACHE", str(tmp_path / "cache"))
    get_host().registry("preprocessors").add("mean-template", MeanTemplate, "tests")
    return tmp_path / "cache"


def _sets(root: Path, *extra: str) -> list[str]:
    items = [
        "data.dataset=csv", "hierarchy=synthetic", f"data.root={root}", "data.image_size=32",
        "train.epochs=1", "train.head_epochs=1", "train.batch_size=16", "train.progress=false",
        "train.deterministic=true", "output.tensorboard=false", *extra,
    ]
    return [arg for item in items for arg in ("--set", item)]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("*/*") if p.is_dir())


def test_prepare_builds_complete_entries_and_a_second_run_has_nothing_to_do(export, cache, capsys) -> None:
    code, out, err = _run(["prepare", *_sets(export), "--workers", "2"], capsys)
    assert code == 0, err
    entries = _entries(cache)
    assert [e.name.split("-")[0] for e in entries] == ["train", "valid"]
    for entry, n in zip(entries, (48, 12)):
        index = json.loads((entry / "index.json").read_text())
        assert index["complete"] and index["shape"] == [n, 32, 32]
        assert str(entry) in out
    assert "built" in out and "img/s" in out
    code, out, _ = _run(["prepare", *_sets(export), "--splits", "valid"], capsys)
    assert code == 0 and out.count("already complete") == 1 and "train" not in out.split("\n", 2)[2]


def test_training_from_the_cache_gives_the_same_model(export, cache, tmp_path, capsys, monkeypatch) -> None:
    # Native-size reading, preprocessing and the final resize all differ between the two paths.
    preprocessing = ("data.preprocessor=center-crop", "data.preprocessor_params={resize: 40, crop: 36}", "train.method=flat")
    assert _run(["prepare", *_sets(export, *preprocessing), "--workers", "2"], capsys)[0] == 0
    code, _, err = _run(["train", "--out", str(tmp_path), *_sets(export, *preprocessing, "output.name=cached")], capsys)
    assert code == 0 and err.count("using preprocessed cache") == 2
    monkeypatch.setenv("HMLC_CACHE", str(tmp_path / "empty"))
    code, _, err = _run(["train", "--out", str(tmp_path), *_sets(export, *preprocessing, "output.name=live")], capsys)
    assert code == 0 and "using preprocessed cache" not in err
    cached = load_file(str(tmp_path / "cached" / "checkpoints" / "last" / "model.safetensors"))
    live = load_file(str(tmp_path / "live" / "checkpoints" / "last" / "model.safetensors"))
    assert cached.keys() == live.keys()
    for name in cached:
        np.testing.assert_array_equal(cached[name], live[name], err_msg=name)
    results = [json.loads((tmp_path / r / "results.json").read_text()) for r in ("cached", "live")]
    assert results[0]["final"] == results[1]["final"]


def test_a_fitted_preprocessor_is_fitted_once_and_its_state_kept_in_the_cache(export, cache, capsys, monkeypatch) -> None:
    config = load_config(None, None, [*_sets(export, "data.preprocessor=mean-template")][1::2])
    live = prepare_experiment(config)
    err = capsys.readouterr().err
    assert "fitting preprocessor 'mean-template' on 20 train images" in err and live.cache_entries == {}
    template = live.preprocessor.state()["template"]
    assert template.shape == (36, 36)
    # Training images reach the model as preprocessor output resized to data.image_size.
    assert isinstance(live.train.images, PreprocessedImages) and live.train.images.read(0).shape == (32, 32)

    assert _run(["prepare", *_sets(export, "data.preprocessor=mean-template")], capsys)[0] == 0
    for entry in _entries(cache):
        with np.load(entry / "preprocess.npz") as npz:
            np.testing.assert_array_equal(npz["template"], template)

    def no_fit(self, images, max_images=None):
        raise AssertionError("fitted again although the cache holds the state")

    monkeypatch.setattr(MeanTemplate, "fit", no_fit)
    cached = prepare_experiment(config)
    err = capsys.readouterr().err
    assert "fitted state from preprocessed cache" in err and err.count("using preprocessed cache") == 2
    assert set(cached.cache_entries) == {"train", "valid"}
    assert cached.preprocessor.fingerprint() == live.preprocessor.fingerprint()
    assert isinstance(cached.train.images, MemmapImageSource)
    for a, b in ((cached.train, live.train), (cached.valid, live.valid)):
        assert len(a) == len(b)
        for i in range(len(a)):
            np.testing.assert_array_equal(a.images.read(i), b.images.read(i))
    # data.limit takes the first N training images of the cached split.
    limited = prepare_experiment(config.model_copy(update={"data": config.data.model_copy(update={"limit": 10})}))
    assert len(limited.train) == 10
    np.testing.assert_array_equal(limited.train.images.read(9), live.train.images.read(9))


def test_prepare_never_writes_into_a_read_only_dataset_folder(export, cache, tmp_path, capsys) -> None:
    data = tmp_path / "ro" / "synth"
    shutil.copytree(export, data)
    before = sorted((str(p), p.stat().st_mtime_ns) for p in data.parent.rglob("*"))
    for p in [data.parent, *data.parent.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        code, _, err = _run(["prepare", *_sets(data, "data.preprocessor=mean-template")], capsys)
    finally:
        for p in [data.parent, *data.parent.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert code == 0, err
    assert sorted((str(p), p.stat().st_mtime_ns) for p in data.parent.rglob("*")) == before
    assert len(_entries(cache)) == 2


def _one_line_error(code: int, err: str) -> str:
    assert code == 2 and err.startswith("hmlc: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "data.root=/no/such/folder"], "data.root /no/such/folder is not a folder"),
        (["--set", "data.preprocessor=nope"], "unknown preprocessor 'nope'"),
        (["--set", "data.preprocessor=center-crop", "--set", "data.preprocessor_params={crop: 0}"], "crop must be"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "two"], "invalid int value"),
        (["--splits", "train,test"], "no split 'test'"),
        (["--splits", ","], "--splits is empty"),
    ],
)
def test_prepare_errors_exit_2_with_one_line(export, cache, capsys, args, message) -> None:
    err = _one_line_error(*_run(["prepare", *_sets(export), *args], capsys)[::2])
    assert message in err
    assert not _entries(cache)


def test_missing_images_are_reported_before_anything_is_decoded(export, cache, tmp_path, capsys) -> None:
    data = tmp_path / "synth"
    shutil.copytree(export, data)
    valid_image = next((data / "valid").rglob("*.png"))
    os.remove(valid_image)
    err = _one_line_error(*_run(["prepare", *_sets(data)], capsys)[::2])
    assert "1 of 12 images listed in" in err and "missing" in err
    assert not _entries(cache)  # the train split, read first, was not built either


def test_prepare_reports_fitting_worker_start_up_and_images_in_a_log(export, cache, capsys, monkeypatch) -> None:
    from hmlc.data import cache as cache_module

    monkeypatch.setattr(cache_module, "POOL_MIN_IMAGES", 0)  # 60 images: a pool only because of this
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "0")
    code, out, err = _run(["prepare", *_sets(export, "data.preprocessor=mean-template"), "--workers", "2"], capsys)
    assert code == 0, err
    lines = err.splitlines()
    fitting = [line for line in lines if line.startswith("fitting mean-template: ")]
    assert fitting and fitting[-1].startswith("fitting mean-template: 20/20 img (100%), ")
    cached = [line for line in lines if line.startswith("cache train+valid: ")]
    assert cached[0] == "cache train+valid: 0/60 img (0%), 0s elapsed, starting 2 worker processes"
    assert cached[-1].startswith("cache train+valid: 60/60 img (100%), ") and "img/s" in cached[-1]
    assert "60 images prepared in " in out


def test_prepare_on_a_complete_cache_starts_no_worker_processes(export, cache, capsys, monkeypatch) -> None:
    """The second `hmlc prepare` finds every entry complete: no server for workers that would decode nothing."""
    from hmlc.data import cache as cache_module

    monkeypatch.setattr(cache_module, "POOL_MIN_IMAGES", 0)  # 60 images: a pool only because of this
    started: list[list[str]] = []
    real = cache_module.start_worker_server
    monkeypatch.setattr(cache_module, "start_worker_server", lambda modules=(): (started.append(list(modules)),
                                                                                 real(modules))[1])
    argv = ["prepare", *_sets(export), "--workers", "2"]
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    assert started, "the first prepare decodes 60 images in 2 workers"
    started.clear()
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert started == [] and "starting 2 worker processes" not in err

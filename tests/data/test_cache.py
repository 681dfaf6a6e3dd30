"""The preprocessed-image cache: keys, builds, parallel builds, resume, corrupt entries."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_preprocess import LevelShift  # tests/data is on sys.path (no __init__.py)

from hmlc.data import cache
from hmlc.data.cache import (
    CacheJob,
    MemmapImageSource,
    build_cache,
    build_cache_entries,
    cache_inputs,
    cache_key,
    cache_root,
    entry_path,
    find_cache,
    load_fitted_state,
)
from hmlc.data.datasets import CsvDataset, DatasetSplit
from hmlc.data.images import FileImageSource
from hmlc.data.preprocess import CenterCrop, PreprocessedImages
from hmlc.data.synthetic import SYNTHETIC_HIERARCHY
from hmlc.errors import DataError

LABELS = list(SYNTHETIC_HIERARCHY.labels)


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a test does may touch the user's own cache folder."""
    monkeypatch.setenv("HMLC_CACHE", str(tmp_path / "hmlc-cache"))


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds with workers > 1 use a worker pool whatever their size (small ones run in process)."""
    monkeypatch.setattr(cache, "POOL_MIN_IMAGES", 0)


def _split(exported, name: str = "train", size: int | None = None) -> DatasetSplit:
    return CsvDataset().load(name, root=exported.out, params={}, image_size=size, labels=LABELS)


def _inputs(data: DatasetSplit, preprocessor=None, image_size: int = 24, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        dataset="csv", split="train", root=Path("/data/x"), params={"frontal_only": False},
        image_size=image_size, preprocessor=preprocessor, ids=list(data.table.frame["id"]),
    )
    base.update(changes)
    return cache_inputs(**base)


def _pixels(entry: Path) -> np.ndarray:
    source = MemmapImageSource(entry)
    return np.stack([source.read(i) for i in range(len(source))])


def test_cache_root_is_the_cli_value_then_the_variable_then_the_user_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HMLC_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "cli") == tmp_path / "cli"
    assert cache_root(None) == tmp_path / "env"
    monkeypatch.delenv("HMLC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(None) == tmp_path / "xdg" / "hmlc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root(None) == tmp_path / "home" / ".cache" / "hmlc"


def test_every_setting_that_changes_pixels_changes_the_key(exported) -> None:
    split = _split(exported)
    fitted = LevelShift()
    fitted.load_state({"level": np.array([60.0], np.float32)})
    refitted = LevelShift()
    refitted.load_state({"level": np.array([61.0], np.float32)})
    ids = list(split.table.frame["id"])
    variants = {
        "base": _inputs(split),
        "dataset": _inputs(split, dataset="other"),
        "split": _inputs(split, split="valid"),
        "root": _inputs(split, root=Path("/data/y")),
        "params": _inputs(split, params={"frontal_only": True}),
        "size": _inputs(split, image_size=32),
        "crop": _inputs(split, preprocessor=CenterCrop(28, 24)),
        "crop settings": _inputs(split, preprocessor=CenterCrop(30, 24)),
        "state": _inputs(split, preprocessor=fitted),
        "other state": _inputs(split, preprocessor=refitted),
        "ids": _inputs(split, ids=ids[:-1]),
        "id order": _inputs(split, ids=ids[::-1]),
    }
    keys = {name: cache_key(inputs) for name, inputs in variants.items()}
    assert len(set(keys.values())) == len(keys), keys
    assert cache_key(_inputs(split)) == keys["base"]  # and equal settings, equal key
    entry = entry_path(Path("/c"), variants["base"])
    assert entry == Path("/c/csv") / f"train-{keys['base']}"


@pytest.mark.parametrize("preprocessor", [None, CenterCrop(resize=28, crop=22)], ids=["resize only", "center-crop"])
def test_cached_pixels_equal_decoding_and_preprocessing(exported, tmp_path, preprocessor) -> None:
    size = 16
    split = _split(exported, size=None if preprocessor else size)
    inputs = _inputs(split, preprocessor, size)
    entry = entry_path(tmp_path, inputs)
    build = build_cache(split, preprocessor, size, entry, workers=1, progress=False, inputs=inputs)
    assert (build.images, build.processed, build.resumed, build.already_complete) == (32, 32, False, False)
    assert find_cache(tmp_path, inputs) == entry
    index = json.loads((entry / "index.json").read_text())
    assert index["complete"] and index["shape"] == [32, size, size] and index["inputs"] == inputs
    assert index["ids"] == list(split.table.frame["id"])
    paths = split.table.frame["path"].tolist()
    direct = PreprocessedImages(FileImageSource(paths, None if preprocessor else size), preprocessor, size)
    expected = np.stack([direct.read(i) for i in range(len(direct))])
    np.testing.assert_array_equal(_pixels(entry), expected)
    assert not (entry / "preprocess.npz").exists()  # nothing fitted, nothing stored
    # A second build finds the entry complete and does nothing.
    again = build_cache(split, preprocessor, size, entry, workers=1, progress=False, inputs=inputs)
    assert again.already_complete and again.processed == 0


def test_parallel_build_equals_serial_build(exported, tmp_path, pool) -> None:
    split = _split(exported)
    crop = CenterCrop(resize=30, crop=26)
    serial = build_cache(split, crop, 20, tmp_path / "serial", workers=1, progress=False)
    parallel = build_cache(split, crop, 20, tmp_path / "parallel", workers=2, progress=False)
    assert parallel.processed == serial.processed == 32
    assert (tmp_path / "serial" / "images.u8").read_bytes() == (tmp_path / "parallel" / "images.u8").read_bytes()


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_an_interrupted_build_resumes_and_equals_an_uninterrupted_one(exported, tmp_path, workers, pool) -> None:
    split = _split(exported)
    fitted = LevelShift(size=20)
    fitted.fit(split.images)
    inputs = _inputs(split, fitted, 16)
    entry = entry_path(tmp_path / "cache", inputs)
    seen: list[int] = []

    def stop_after_some(done: int, total: int) -> None:
        seen.append(done)
        if done >= 8:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        build_cache(split, fitted, 16, entry, workers=workers, progress=False, inputs=inputs, on_progress=stop_after_some)
    assert seen[-1] >= 8 and all(total < 32 for total in seen)
    done = np.load(entry / "done.npy")
    assert 8 <= done.sum() < 32
    assert json.loads((entry / "index.json").read_text())["complete"] is False
    assert find_cache(tmp_path / "cache", inputs) is None  # unfinished entries are not used
    with pytest.raises(DataError, match="unfinished.*hmlc prepare"):
        MemmapImageSource(entry)

    resumed = build_cache(split, fitted, 16, entry, workers=workers, progress=False, inputs=inputs)
    assert resumed.resumed and resumed.processed == 32 - int(done.sum())
    whole = build_cache(split, fitted, 16, tmp_path / "whole", workers=1, progress=False, inputs=inputs)
    assert (entry / "images.u8").read_bytes() == (whole.entry_dir / "images.u8").read_bytes()
    assert find_cache(tmp_path / "cache", inputs) == entry


def test_the_fitted_state_is_stored_with_the_entry_and_found_again(exported, tmp_path) -> None:
    split = _split(exported)
    fitted = LevelShift(size=20, fit_images=10)
    fitted.fit(split.images, max_images=fitted.fit_images)
    inputs = _inputs(split, fitted, 16)
    build_cache(split, fitted, 16, entry_path(tmp_path, inputs), workers=1, progress=False, inputs=inputs)
    fresh = LevelShift(size=20, fit_images=10)
    assert load_fitted_state(tmp_path, _inputs(split, fresh, 16), fresh) == entry_path(tmp_path, inputs)
    assert fresh.fingerprint() == fitted.fingerprint()
    # The state does not depend on the image size, so another size finds it too.
    resized = LevelShift(size=20, fit_images=10)
    assert load_fitted_state(tmp_path, _inputs(split, resized, 12), resized) == entry_path(tmp_path, inputs)
    # Other settings (here: fitted on more images) find no state.
    other = LevelShift(size=20, fit_images=20)
    assert load_fitted_state(tmp_path, _inputs(split, other, 16), other) is None and not other.fitted


def test_a_corrupt_entry_says_to_delete_it_or_rerun_prepare(exported, tmp_path) -> None:
    split = _split(exported, size=16)
    inputs = _inputs(split, None, 16)
    entry = entry_path(tmp_path, inputs)
    build_cache(split, None, 16, entry, workers=1, progress=False, inputs=inputs)
    good = (entry / "images.u8").read_bytes()
    with (entry / "images.u8").open("r+b") as fh:
        fh.truncate(100)
    with pytest.raises(DataError, match=r"corrupt \(images.u8 has 100 bytes.*delete that folder or rerun `hmlc prepare`"):
        find_cache(tmp_path, inputs)
    with pytest.raises(DataError, match="corrupt"):
        MemmapImageSource(entry)
    # hmlc prepare over a corrupt entry builds it again.
    rebuilt = build_cache(split, None, 16, entry, workers=1, progress=False, inputs=inputs)
    assert rebuilt.processed == 32 and (entry / "images.u8").read_bytes() == good
    (entry / "index.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt.*index.json"):
        find_cache(tmp_path, inputs)


def test_the_memmap_source_reopens_after_pickling(exported, tmp_path) -> None:
    split = _split(exported, size=16)
    build_cache(split, None, 16, tmp_path / "e", workers=1, progress=False)
    source = MemmapImageSource(tmp_path / "e")
    first = source.read(3)
    clone = pickle.loads(pickle.dumps(source))
    assert clone._map is None and len(clone) == 32 and clone.image_size == 16
    np.testing.assert_array_equal(clone.read(3), first)
    assert first.flags.writeable  # a copy: torch.from_numpy gets a writable array
    with pytest.raises(IndexError):
        source.read(32)


def test_build_rejects_an_unfitted_preprocessor_and_bad_worker_counts(exported, tmp_path) -> None:
    split = _split(exported)
    with pytest.raises(DataError, match="must be fitted"):
        build_cache(split, LevelShift(), 16, tmp_path / "e", workers=1, progress=False)
    with pytest.raises(DataError, match="at least 1"):
        build_cache(split, CenterCrop(), 16, tmp_path / "e", workers=0, progress=False)


def test_a_failing_preprocessor_names_the_image(exported, tmp_path) -> None:
    class Failing(CenterCrop):
        name = "failing"

        def __call__(self, img: np.ndarray) -> np.ndarray:
            raise ValueError("no lungs found")

    split = _split(exported)
    with pytest.raises(DataError, match=r"failing failed on .*view1_frontal.png: ValueError: no lungs found"):
        build_cache(split, Failing(), 16, tmp_path / "e", workers=1, progress=False)


class Crashing(CenterCrop):
    """Module level, so that worker processes started by forkserver can unpickle it."""

    name = "crashing"

    def __call__(self, img: np.ndarray) -> np.ndarray:
        os._exit(1)  # what the kernel's OOM killer does to a worker


def test_a_worker_that_dies_is_reported_with_what_to_do(exported, tmp_path, pool) -> None:
    with pytest.raises(DataError, match="worker process died.*fewer --workers"):
        build_cache(_split(exported), Crashing(), 16, tmp_path / "e", workers=2, progress=False)


def _jobs(exported, tmp_path: Path, preprocessor) -> list[CacheJob]:
    jobs = []
    for name in ("train", "valid"):
        split = _split(exported, name)
        jobs.append(CacheJob.of_split(name, split, tmp_path / name, _inputs(split, preprocessor, 16, split=name)))
    return jobs


def test_one_worker_pool_builds_every_split(exported, tmp_path, pool, monkeypatch) -> None:
    started: list[int] = []
    real_pool = cache.ProcessPoolExecutor

    def counting_pool(*args: Any, **kwargs: Any) -> Any:
        started.append(kwargs["max_workers"])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(cache, "ProcessPoolExecutor", counting_pool)
    crop = CenterCrop(resize=30, crop=26)
    builds = build_cache_entries(_jobs(exported, tmp_path / "pool", crop), crop, 16, workers=2, progress=False)
    assert started == [2]  # one pool, not one per split
    assert {name: (b.images, b.processed) for name, b in builds.items()} == {"train": (32, 32), "valid": (8, 8)}
    for job in _jobs(exported, tmp_path / "serial", crop):
        build_cache(_split(exported, job.name), crop, 16, job.entry_dir, workers=1, progress=False, inputs=job.inputs)
        pooled = tmp_path / "pool" / job.name
        assert json.loads((pooled / "index.json").read_text())["complete"] is True
        assert (pooled / "images.u8").read_bytes() == (job.entry_dir / "images.u8").read_bytes()


def test_a_small_build_runs_in_this_process(exported, tmp_path, monkeypatch) -> None:
    def no_pool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a worker pool was started for 40 images")

    monkeypatch.setattr(cache, "ProcessPoolExecutor", no_pool)
    assert cache.POOL_MIN_IMAGES > 40
    crop = CenterCrop(resize=30, crop=26)
    builds = build_cache_entries(_jobs(exported, tmp_path, crop), crop, 16, workers=2, progress=False)
    assert sum(b.processed for b in builds.values()) == 40


def test_workers_import_neither_torch_nor_pandas(exported, tmp_path, pool) -> None:
    from import_probe import ImportProbe  # tests/data is on sys.path

    probe = ImportProbe(resize=20, crop=16)
    assert probe(np.zeros((4, 4), np.uint8)).max() == 255  # this process has imported both
    build_cache(_split(exported), probe, 16, tmp_path / "e", workers=2, progress=False)
    assert _pixels(tmp_path / "e").max() == 0


def test_a_build_reports_progress_in_a_log(exported, tmp_path, pool, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HMLC_PROGRESS_SECONDS", "0")
    crop = CenterCrop(resize=30, crop=26)
    build_cache_entries(_jobs(exported, tmp_path, crop), crop, 16, workers=2, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "cache train+valid: 0/40 img (0%), 0s elapsed, starting 2 worker processes"
    assert lines[-1].startswith("cache train+valid: 40/40 img (100%), ") and "img/s" in lines[-1]
    assert len(lines) >= 3
    build_cache_entries(_jobs(exported, tmp_path / "quiet", crop), crop, 16, workers=2, progress=False)
    assert capsys.readouterr().err == ""

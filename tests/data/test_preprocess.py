"""The preprocessor contract, "center-crop", and the one place preprocessing happens."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmlc.data.images import ArrayImageSource, resize_square
from hmlc.data.preprocess import (
    CenterCrop,
    PreprocessedImages,
    Preprocessor,
    preprocess_image,
    resolve_preprocessor,
)
from hmlc.errors import ConfigError, DataError, PluginError
from hmlc.plugins import get_host


class LevelShift(Preprocessor):
    """Fitted test preprocessor: resize, then shift brightness so the training mean lands on ``target``."""

    name = "level-shift"
    requires_fit = True

    def __init__(self, size: int = 24, target: int = 128, fit_images: int | None = None) -> None:
        self.size, self.target, self.fit_images = size, target, fit_images
        self._level: np.ndarray | None = None

    def settings(self) -> dict[str, Any]:
        return {"size": self.size, "target": self.target, "fit_images": self.fit_images}

    def fit(self, images, max_images=None) -> None:
        n = len(images) if max_images is None else min(len(images), max_images)
        self._level = np.array([np.mean([images.read(i).mean() for i in range(n)])], dtype=np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {} if self._level is None else {"level": self._level}

    def load_state(self, state) -> None:
        self._level = np.asarray(state["level"], dtype=np.float32)

    @property
    def output_size(self) -> int:
        return self.size

    def __call__(self, img: np.ndarray) -> np.ndarray:
        shift = round(self.target - float(self._level[0]))
        return np.clip(resize_square(img, self.size).astype(np.int16) + shift, 0, 255).astype(np.uint8)


def _ramp(h: int, w: int) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 251).astype(np.uint8)


def test_center_crop_keeps_the_centre_of_the_resized_image() -> None:
    img = _ramp(10, 10)
    out = CenterCrop(resize=10, crop=6)(img)
    assert out.dtype == np.uint8 and out.shape == (6, 6)
    np.testing.assert_array_equal(out, img[2:8, 2:8])  # no resize when already at 10x10
    wide = _ramp(30, 50)
    out = CenterCrop(resize=20, crop=11)(wide)
    np.testing.assert_array_equal(out, resize_square(wide, 20)[4:15, 4:15])
    assert CenterCrop(resize=20, crop=11).output_size == 11


@pytest.mark.parametrize(
    "params", [{"resize": 0}, {"crop": -1}, {"resize": 2.5}, {"resize": True}, {"resize": 64, "crop": 65}]
)
def test_center_crop_rejects_bad_settings(params: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="preprocessor_params"):
        CenterCrop(**params)


@settings(max_examples=40, deadline=None)
@given(a=st.tuples(st.integers(1, 64), st.integers(1, 64)), b=st.tuples(st.integers(1, 64), st.integers(1, 64)))
def test_fingerprint_is_equal_exactly_when_settings_are(a: tuple[int, int], b: tuple[int, int]) -> None:
    pa = CenterCrop(resize=max(a), crop=min(a))
    pb = CenterCrop(resize=max(b), crop=min(b))
    assert (pa.fingerprint() == pb.fingerprint()) == (pa.settings() == pb.settings())


def test_fingerprint_changes_with_the_fitted_state_and_name() -> None:
    images = ArrayImageSource(np.stack([np.full((8, 8), v, np.uint8) for v in (10, 20, 90)]))
    unfitted = LevelShift()
    assert unfitted.requires_fit and not unfitted.fitted and unfitted.state() == {}
    a, b = LevelShift(), LevelShift()
    a.fit(images, max_images=2)
    b.fit(images)
    assert a.fitted and float(a.state()["level"][0]) == 15.0 and float(b.state()["level"][0]) == 40.0
    assert len({unfitted.fingerprint(), a.fingerprint(), b.fingerprint()}) == 3
    # The state round-trips, and an equal state gives an equal fingerprint and equal outputs.
    c = LevelShift()
    c.load_state(a.state())
    assert c.fingerprint() == a.fingerprint()
    img = _ramp(16, 16)
    np.testing.assert_array_equal(c(img), a(img))
    assert not np.array_equal(b(img), a(img))
    # Another preprocessor with equal settings is another fingerprint.
    other = type("Other", (LevelShift,), {"name": "other"})()
    other.load_state(a.state())
    assert other.fingerprint() != a.fingerprint()
    # A version bump (changed algorithm) changes it too.
    bumped = type("Bumped", (LevelShift,), {"version": "2"})()
    bumped.load_state(a.state())
    assert bumped.fingerprint() != a.fingerprint()


def test_a_preprocessor_without_state_refuses_one() -> None:
    crop = CenterCrop()
    assert crop.fitted and crop.state() == {}
    crop.load_state({})
    with pytest.raises(DataError, match="no fitted state"):
        crop.load_state({"template": np.zeros((2, 2), np.float32)})


def test_preprocess_image_resizes_once_to_the_image_size() -> None:
    img = _ramp(40, 30)
    crop = CenterCrop(resize=24, crop=20)
    out = preprocess_image(img, crop, 16)
    np.testing.assert_array_equal(out, resize_square(crop(img), 16))
    np.testing.assert_array_equal(preprocess_image(img, crop, 20), crop(img))  # no second resize
    np.testing.assert_array_equal(preprocess_image(img, None, 16), resize_square(img, 16))
    source = PreprocessedImages(ArrayImageSource(np.stack([img, img[::-1]])), crop, 16)
    assert len(source) == 2
    np.testing.assert_array_equal(source.read(1), resize_square(crop(img[::-1]), 16))


def test_a_preprocessor_returning_a_bad_image_is_reported_as_the_plugins_fault() -> None:
    class Broken(CenterCrop):
        name = "broken"

        def __call__(self, img: np.ndarray) -> np.ndarray:
            return img.astype(np.float32)

    with pytest.raises(PluginError, match="'broken' returned float32"):
        preprocess_image(_ramp(8, 8), Broken(), 8)


def test_preprocessors_pickle_for_worker_processes() -> None:
    a = LevelShift(size=12)
    a.load_state({"level": np.array([50.0], np.float32)})
    b = pickle.loads(pickle.dumps(a))
    assert b.fingerprint() == a.fingerprint()


def test_center_crop_is_a_builtin_and_resolves_from_the_registry() -> None:
    assert get_host().registry("preprocessors").entry("center-crop").plugin == "hmlc"
    crop = resolve_preprocessor("center-crop", {"resize": 32, "crop": 30})
    assert isinstance(crop, CenterCrop) and crop.settings() == {"resize": 32, "crop": 30}
    with pytest.raises(PluginError, match="does not accept"):
        resolve_preprocessor("center-crop", {"size": 3})


def test_a_registered_plain_callable_is_rejected_with_the_plugin_named() -> None:
    get_host().registry("preprocessors").add("plain", lambda: (lambda img: img), "acme")
    with pytest.raises(PluginError, match="'plain' is a function, not an hmlc.data.preprocess.Preprocessor"):
        resolve_preprocessor("plain")
    registered = LevelShift
    get_host().registry("preprocessors").add("level-shift", registered, "acme")
    fitted = resolve_preprocessor("level-shift", {"size": 8}, state={"level": np.array([3.0], np.float32)})
    assert fitted.fitted and fitted.size == 8

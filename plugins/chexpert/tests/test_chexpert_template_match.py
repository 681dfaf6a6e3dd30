"""Template-match cropping: against a brute-force NCC on real images, planted templates, fit and state."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from hmlc_chexpert import CHEXPERT_LABELS
from hmlc_chexpert.dataset import CheXpertDataset
from hmlc_chexpert.template_match import TemplateMatch, match_position
from hypothesis import given, settings
from hypothesis import strategies as st

from hmlc.data import ArrayImageSource, ImageSource, resize_square
from hmlc.data.preprocess import Preprocessor
from hmlc.errors import ConfigError, DataError
from hmlc.plugins import get_host


def brute_force_scores(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of mean-subtracted pixels at every window, in float64."""
    image, template = image.astype(np.float64), template.astype(np.float64)
    h, w = template.shape
    t = template - template.mean()
    t_norm = np.sqrt((t**2).sum())
    rows = image.shape[0] - h + 1
    scores = np.empty((rows, image.shape[1] - w + 1))
    for top in range(rows):  # one row of windows at a time keeps memory small
        windows = np.lib.stride_tricks.sliding_window_view(image[top : top + h], (h, w))[0]
        centred = windows - windows.mean(axis=(1, 2), keepdims=True)
        scores[top] = (centred * t).sum(axis=(1, 2)) / (np.sqrt((centred**2).sum(axis=(1, 2))) * t_norm)
    return scores


def centre_crop(img: np.ndarray, resize: int, crop: int) -> np.ndarray:
    top = (resize - crop) // 2
    return resize_square(img, resize)[top : top + crop, top : top + crop].astype(np.float64)


# ------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def frontal_train(chexpert_small: Path) -> ImageSource:
    return (
        CheXpertDataset()
        .load("train", root=chexpert_small, params={"views": "frontal"}, image_size=None, labels=CHEXPERT_LABELS)
        .images
    )


@pytest.fixture(scope="module")
def fitted(frontal_train: ImageSource) -> TemplateMatch:
    tm = TemplateMatch(fit_images=200)
    tm.fit(frontal_train, max_images=tm.fit_images)
    return tm


@pytest.mark.realdata
def test_fitted_template_is_the_mean_centre_crop(frontal_train: ImageSource, fitted: TemplateMatch) -> None:
    n = len(frontal_train)
    chosen = np.linspace(0, n - 1, 200).round().astype(int)
    expected = np.mean([centre_crop(frontal_train.read(int(i)), 256, 224) for i in chosen], axis=0)
    np.testing.assert_allclose(fitted.template, expected, atol=1e-3)
    assert fitted.template.dtype == np.float32
    assert fitted.fitted and fitted.state()["template"].shape == (224, 224)


@pytest.mark.realdata
def test_crops_are_224_inside_the_image_and_move_with_the_image(
    frontal_train: ImageSource, fitted: TemplateMatch
) -> None:
    positions = []
    for i in range(0, len(frontal_train), 17):
        img = frontal_train.read(i)
        out = fitted(img)
        assert out.shape == (224, 224) and out.dtype == np.uint8
        top, left = fitted.position(img)
        assert 0 <= top <= 32 and 0 <= left <= 32
        np.testing.assert_array_equal(out, resize_square(img, 256)[top : top + 224, left : left + 224])
        positions.append((top, left))
    assert len(set(positions)) > len(positions) // 3, "template matching should not be a fixed crop"
    assert set(positions) != {(16, 16)}


@pytest.mark.realdata
def test_same_position_as_brute_force_ncc(frontal_train: ImageSource, fitted: TemplateMatch) -> None:
    for i in (0, 101, 333):
        resized = resize_square(frontal_train.read(i), 256)
        scores = brute_force_scores(resized, fitted.template)
        expected = np.unravel_index(int(np.argmax(scores)), scores.shape)
        assert match_position(resized, fitted.template) == expected


# ------------------------------------------------------ synthetic images


def textured(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random texture (uint8), so that windows differ and none is flat."""
    noise = rng.random((size // 4 + 2, size // 4 + 2)).astype(np.float32)
    return (cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), top=st.integers(0, 16), left=st.integers(0, 16))
def test_a_planted_template_is_found_where_it_was_put(seed: int, top: int, left: int) -> None:
    rng = np.random.default_rng(seed)
    template = textured(rng, 24)
    image = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    image[top : top + 24, left : left + 24] = template
    assert match_position(image, template.astype(np.float32)) == (top, left)
    tm = TemplateMatch(resize=40, crop=24)
    tm.load_state({"template": template.astype(np.float32)})
    np.testing.assert_array_equal(tm(image), template)


def test_flat_image_gives_the_centre_crop() -> None:
    tm = TemplateMatch(resize=40, crop=24)
    tm.load_state({"template": textured(np.random.default_rng(0), 24).astype(np.float32)})
    assert tm.position(np.full((50, 60), 7, np.uint8)) == (8, 8)


def test_fit_averages_evenly_spread_centre_crops() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (10, 48, 56), dtype=np.uint8)
    tm = TemplateMatch(resize=40, crop=32, fit_images=4)
    assert tm.requires_fit and not tm.fitted and tm.state() == {}
    tm.fit(ArrayImageSource(images), max_images=tm.fit_images)
    expected = np.mean([centre_crop(images[i], 40, 32) for i in (0, 3, 6, 9)], axis=0)
    np.testing.assert_allclose(tm.template, expected, atol=1e-4)
    all_images = TemplateMatch(resize=40, crop=32, fit_images=None)
    all_images.fit(ArrayImageSource(images))
    expected_all = np.mean([centre_crop(im, 40, 32) for im in images], axis=0)
    np.testing.assert_allclose(all_images.template, expected_all, atol=1e-4)


def test_state_round_trips_and_keys_the_fingerprint() -> None:
    rng = np.random.default_rng(2)
    images = ArrayImageSource(np.stack([textured(rng, 64) for _ in range(6)]))
    tm = TemplateMatch(resize=48, crop=40)
    tm.fit(images)
    copy = TemplateMatch(resize=48, crop=40)
    copy.load_state(tm.state())
    assert copy.fingerprint() == tm.fingerprint()
    restored = pickle.loads(pickle.dumps(tm))  # cache builds run preprocessors in worker processes
    for i in range(len(images)):
        np.testing.assert_array_equal(copy(images.read(i)), tm(images.read(i)))
        np.testing.assert_array_equal(restored(images.read(i)), tm(images.read(i)))
    other = TemplateMatch(resize=48, crop=40)
    other.fit(ArrayImageSource(np.stack([textured(rng, 64) for _ in range(6)])))
    assert other.fingerprint() != tm.fingerprint()
    assert TemplateMatch(resize=50, crop=40).fingerprint() != TemplateMatch(resize=48, crop=40).fingerprint()
    with pytest.raises(DataError, match="crop is 32"):
        TemplateMatch(resize=48, crop=32).load_state(tm.state())
    with pytest.raises(DataError, match="another preprocessor"):
        TemplateMatch(resize=48, crop=40).load_state({"mean": np.zeros(3)})


def test_template_file_replaces_the_fit(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    template = textured(rng, 40).astype(np.float32)
    np.save(tmp_path / "t.npy", template)
    cv2.imwrite(str(tmp_path / "t.png"), cv2.resize(template, (80, 80)).astype(np.uint8))
    from_npy = TemplateMatch(resize=48, crop=40, template=str(tmp_path / "t.npy"))
    assert not from_npy.requires_fit and from_npy.fitted
    np.testing.assert_array_equal(from_npy.template, template)
    from_png = TemplateMatch(resize=48, crop=40, template=tmp_path / "t.png")
    assert from_png.template.shape == (40, 40)  # resized to the crop
    image = textured(rng, 48)
    assert from_npy(image).shape == from_png(image).shape == (40, 40)


def test_user_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="crop .* must not exceed resize"):
        TemplateMatch(resize=200, crop=224)
    with pytest.raises(ConfigError, match="fit_images"):
        TemplateMatch(fit_images=0)
    with pytest.raises(DataError, match="hmlc prepare"):
        TemplateMatch()(np.zeros((300, 300), np.uint8))
    missing = TemplateMatch(template=tmp_path / "nope.npy")  # read on first use, not when built
    with pytest.raises(DataError, match="nope.npy does not exist"):
        missing.state()
    np.save(tmp_path / "flat.npy", np.ones((224, 224), np.float32))
    with pytest.raises(DataError, match="constant"):
        TemplateMatch(template=tmp_path / "flat.npy")(np.zeros((300, 300), np.uint8))


def test_registered_as_a_preprocessor_factory() -> None:
    tm = get_host().preprocessor("template-match", resize=64, crop=56)
    assert isinstance(tm, TemplateMatch) and isinstance(tm, Preprocessor)
    assert tm.output_size == 56 and tm.settings() == {"resize": 64, "crop": 56, "fit_images": 2000}
    assert tm.fit_views == ("frontal",)

"""Test-time augmentation: the affine matrix, the views and their seeding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmlc.engine.tta import (
    TRANSFORM_KINDS,
    AffineParams,
    TestTimeAugmentation,
    affine_matrix,
    parse_transform_kinds,
    tta_transforms,
    warp_image,
)
from hmlc.errors import ConfigError


def _image(h: int = 9, w: int = 9) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w), dtype=np.uint8)


def _warp(img: np.ndarray, params: AffineParams) -> np.ndarray:
    return warp_image(img, affine_matrix(params, *img.shape))


def test_identity_flip_and_quarter_turn_are_exact() -> None:
    img = _image(7, 11)
    np.testing.assert_array_equal(_warp(img, AffineParams()), img)
    np.testing.assert_array_equal(_warp(img, AffineParams(flip=True)), img[:, ::-1])
    square = _image(8, 8)
    # Counter-clockwise on screen, about the centre of the pixel grid (np.rot90 turns the same way).
    np.testing.assert_array_equal(_warp(square, AffineParams(rotation=90.0)), np.rot90(square))


def test_shear_moves_the_top_row_right_and_the_bottom_row_left() -> None:
    img = np.zeros((21, 21), dtype=np.uint8)
    img[:, 10] = 255  # a vertical line through the centre
    out = _warp(img, AffineParams(shear=4.0))
    assert int(np.argmax(out[0])) == 14 and int(np.argmax(out[-1])) == 6
    assert int(np.argmax(out[10])) == 10


def test_scaling_keeps_the_centre_and_moves_points_outwards() -> None:
    m = affine_matrix(AffineParams(scale=1.02), 101, 101)
    centre = np.array([50.0, 50.0, 1.0])
    np.testing.assert_allclose(m @ centre, [50.0, 50.0])
    np.testing.assert_allclose(m @ np.array([100.0, 50.0, 1.0]), [101.0, 50.0])


def test_views_are_seeded_per_image() -> None:
    a = tta_transforms(10, seed=3, key="x.png")
    assert a == tta_transforms(10, seed=3, key="x.png")
    assert a != tta_transforms(10, seed=4, key="x.png")
    assert a != tta_transforms(10, seed=3, key="y.png")
    tta = TestTimeAugmentation(n=5, seed=3)
    img = _image(16, 16)
    np.testing.assert_array_equal(tta(img, "x.png"), tta(img.copy(), "x.png"))
    assert tta(img, "x.png").shape == (5, 16, 16)


def test_no_transform_kinds_give_identity_views() -> None:
    assert tta_transforms(3, seed=1, key="k", kinds=()) == [AffineParams()] * 3
    img = _image(12, 10)
    out = TestTimeAugmentation(n=2, kinds=())(img, "k")
    np.testing.assert_array_equal(out, np.stack([img, img]))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 20),
    seed=st.integers(0, 2**40),
    key=st.text(max_size=20),
    kinds=st.lists(st.sampled_from(TRANSFORM_KINDS), min_size=1, unique=True),
)
def test_each_view_applies_one_allowed_transform_within_its_range(
    n: int, seed: int, key: str, kinds: list[str]
) -> None:
    for view in tta_transforms(n, seed, key, kinds):
        changed = {
            "flip": view.flip,
            "rotate": view.rotation != 0.0,
            "scale": view.scale != 1.0,
            "shear": view.shear != 0.0,
        }
        assert sum(changed.values()) <= 1
        assert all(kind in kinds for kind, on in changed.items() if on)
        assert abs(view.rotation) <= 7.0 and abs(view.scale - 1.0) <= 0.02 and abs(view.shear) <= 5.0


def test_all_kinds_are_drawn() -> None:
    views = tta_transforms(200, seed=0, key="k")
    assert any(v.flip for v in views) and any(v.rotation for v in views)
    assert any(v.scale != 1.0 for v in views) and any(v.shear for v in views)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least"):
        TestTimeAugmentation(n=0)
    with pytest.raises(ConfigError, match="zoom"):
        TestTimeAugmentation(n=2, kinds=("zoom",))
    assert parse_transform_kinds("none") == ()
    assert parse_transform_kinds("flip, shear") == ("flip", "shear")
    with pytest.raises(ConfigError, match="blur"):
        parse_transform_kinds("flip,blur")

"""Test-time augmentation: seeded random affine transforms of each image.

As in Pham et al. 2019, each of N draws applies one transform chosen at
random among a horizontal flip, a rotation of up to +/-7 degrees, a scaling
of up to +/-2 % and a horizontal shear moving the top and bottom rows by up to
+/-5 pixels; the model's outputs over the N views are averaged. Draws are
seeded by (seed, image id), so an image gets the same views whatever the
batch size, the order of the inputs or the number of workers.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from hmlc.errors import ConfigError

__all__ = [
    "TRANSFORM_KINDS",
    "AffineParams",
    "affine_matrix",
    "warp_image",
    "tta_transforms",
    "TestTimeAugmentation",
    "parse_transform_kinds",
]

#: The transform kinds a draw chooses among, in this order.
TRANSFORM_KINDS: tuple[str, ...] = ("flip", "rotate", "scale", "shear")


@dataclass(frozen=True)
class AffineParams:
    """One view: flip, rotation (degrees, counter-clockwise), scale factor, shear (pixels)."""

    flip: bool = False
    rotation: float = 0.0
    scale: float = 1.0
    shear: float = 0.0


def affine_matrix(params: AffineParams, height: int, width: int) -> np.ndarray:
    """The 2x3 matrix (output pixel <- input pixel, cv2 convention) of ``params`` about the image centre.

    Applied in the order flip, shear, scale, rotation. ``shear`` is the
    horizontal displacement of the top row relative to the centre row, in
    pixels of this image (the bottom row moves the other way).
    """
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    flip = np.diag([-1.0 if params.flip else 1.0, 1.0])
    k = -params.shear / cy if cy > 0 else 0.0  # top row (y - cy = -cy) moves by +shear
    shear = np.array([[1.0, k], [0.0, 1.0]])
    a = math.radians(params.rotation)
    # Counter-clockwise on screen, where y grows downwards.
    rotation = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    linear = rotation @ (params.scale * np.eye(2)) @ shear @ flip
    centre = np.array([cx, cy])
    offset = centre - linear @ centre
    return np.hstack([linear, offset[:, None]]).astype(np.float64)


def warp_image(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` (H, W) warped by a 2x3 ``matrix``; borders repeat the edge pixels."""
    height, width = image.shape[:2]
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _image_seed(seed: int, key: str) -> list[int]:
    return [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, zlib.crc32(key.encode("utf-8"))]


def tta_transforms(
    n: int,
    seed: int = 0,
    key: str = "",
    kinds: Sequence[str] = TRANSFORM_KINDS,
    max_rotation: float = 7.0,
    max_scale: float = 0.02,
    max_shear: float = 5.0,
) -> list[AffineParams]:
    """The ``n`` views of the image ``key``: each one transform of ``kinds``, drawn uniformly.

    Parameters are uniform in [-max, max] (scale: 1 +/- ``max_scale``). With
    no ``kinds`` every view is the identity (the image itself).
    """
    if n < 1:
        raise ConfigError(f"test-time augmentation needs at least one view, got {n}")
    unknown = [k for k in kinds if k not in TRANSFORM_KINDS]
    if unknown:
        raise ConfigError(f"unknown TTA transform(s) {unknown}; choose among {', '.join(TRANSFORM_KINDS)} or none")
    if not kinds:
        return [AffineParams() for _ in range(n)]
    rng = np.random.default_rng(_image_seed(seed, key))
    views = []
    for _ in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        u = float(rng.uniform(-1.0, 1.0))
        if kind == "flip":
            views.append(AffineParams(flip=True))
        elif kind == "rotate":
            views.append(AffineParams(rotation=u * max_rotation))
        elif kind == "scale":
            views.append(AffineParams(scale=1.0 + u * max_scale))
        else:
            views.append(AffineParams(shear=u * max_shear))
    return views


def parse_transform_kinds(text: str) -> tuple[str, ...]:
    """``"flip,rotate"`` -> ("flip", "rotate"); ``"none"`` or "" -> () (identity views)."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if items in ((), ("none",)):
        return ()
    unknown = [t for t in items if t not in TRANSFORM_KINDS]
    if unknown:
        raise ConfigError(
            f"unknown TTA transform(s) {', '.join(unknown)}; choose among {', '.join(TRANSFORM_KINDS)} or none"
        )
    return items


@dataclass(frozen=True)
class TestTimeAugmentation:
    """N seeded views per image; calling it on (image, key) gives a uint8 (N, H, W) stack.

    ``shear`` is in pixels of the image it is applied to (the model's input size).
    """

    __test__ = False  # not a pytest test class, despite its name

    n: int = 10
    seed: int = 0
    kinds: tuple[str, ...] = TRANSFORM_KINDS
    max_rotation: float = 7.0
    max_scale: float = 0.02
    max_shear: float = 5.0

    def __post_init__(self) -> None:
        tta_transforms(1, self.seed, "", self.kinds)  # validates n's type and the kinds
        if self.n < 1:
            raise ConfigError(f"--tta {self.n}: give at least 1 view per image")

    def views(self, key: str) -> list[AffineParams]:
        """The parameters of the views of image ``key``."""
        return tta_transforms(self.n, self.seed, key, self.kinds, self.max_rotation, self.max_scale, self.max_shear)

    def __call__(self, image: np.ndarray, key: str) -> np.ndarray:
        height, width = image.shape[:2]
        return np.stack([warp_image(image, affine_matrix(p, height, width)) for p in self.views(key)])

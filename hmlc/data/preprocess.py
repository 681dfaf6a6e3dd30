"""Image preprocessors: the contract, the one place they are applied, and "center-crop".

A preprocessor maps a decoded uint8 (H, W) image at its native size to a
uint8 image; hmlc then resizes the result to ``data.image_size`` (when it
differs) in :func:`preprocess_image`, for training, inference and the
preprocessed-image cache alike. A preprocessor that learns something from
the training images (CheXpert's template) sets ``requires_fit`` and keeps
what it learnt in :meth:`Preprocessor.state`, which checkpoints and cache
entries store so that every later use applies exactly the same transform.

Plugins register factories: ``register(name, factory)`` where
``factory(**params)`` returns a :class:`Preprocessor`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from hmlc.data.images import ImageSource, resize_square
from hmlc.errors import ConfigError, DataError, PluginError

__all__ = [
    "Preprocessor",
    "CenterCrop",
    "PreprocessedImages",
    "preprocess_image",
    "crop_region",
    "resolve_preprocessor",
    "register_builtin_preprocessors",
]


class Preprocessor(ABC):
    """Maps a uint8 (H, W) image at native size to a uint8 (h, w) image.

    Subclasses set :attr:`name`, implement :meth:`__call__` and return every
    setting that changes the output from :meth:`settings`. A preprocessor
    with ``requires_fit`` learns a state from training images in :meth:`fit`
    and must give it back from :meth:`state` and accept it in
    :meth:`load_state`. Instances must be picklable (cache builds run them in
    worker processes).
    """

    name: str = ""
    #: Bump when the algorithm changes its output for the same settings and state.
    version: str = "1"
    requires_fit: bool = False
    #: At most this many training images are given to :meth:`fit` (None: all).
    fit_images: int | None = None
    #: Fit only on training images whose table ``view`` is one of these (None: any view).
    fit_views: tuple[str, ...] | None = None

    def settings(self) -> dict[str, Any]:
        """Every setting that changes the output (JSON-serialisable), usually the factory's params."""
        return {}

    def fit(self, images: ImageSource, max_images: int | None = None) -> None:
        """Learn the state from training images (native size), using at most ``max_images`` of them."""

    def state(self) -> dict[str, np.ndarray]:
        """The fitted state ({} when there is none)."""
        return {}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a state returned by :meth:`state`."""
        if state:
            raise DataError(
                f"preprocessor {self.name!r} has no fitted state but was given {', '.join(sorted(state))}; "
                "the checkpoint or cache entry was made with another preprocessor"
            )

    @property
    def fitted(self) -> bool:
        """True unless the preprocessor requires a fit and has no state yet."""
        return not self.requires_fit or bool(self.state())

    @property
    def output_size(self) -> int | None:
        """The side of the square output, or None when it depends on the input."""
        return None

    def region(self, img: np.ndarray) -> tuple[float, float, float, float] | None:
        """(top, left, height, width) of ``img`` that the output shows, in ``img``'s pixels; None: unknown.

        Lets ``hmlc explain`` lay a heatmap of the preprocessed image back
        onto the original. A crop after a resize to ``resize`` x ``resize``
        returns its window scaled back (see :func:`crop_region`).
        """
        return None

    def fingerprint(self) -> str:
        """sha256 over name, version, settings and state: equal fingerprints, equal outputs."""
        h = hashlib.sha256()
        head = {"name": self.name, "version": self.version, "settings": self.settings()}
        h.update(json.dumps(head, sort_keys=True, default=str).encode())
        for key, value in sorted(self.state().items()):
            array = np.ascontiguousarray(value)
            h.update(f"\0{key}\0{array.dtype.str}\0{array.shape}\0".encode())
            h.update(array.tobytes())
        return h.hexdigest()

    @abstractmethod
    def __call__(self, img: np.ndarray) -> np.ndarray:
        """The preprocessed uint8 (h, w) image of a uint8 (H, W) image."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({params})"


class CenterCrop(Preprocessor):
    """Resize to resize x resize, then keep the central crop x crop square."""

    name = "center-crop"

    def __init__(self, resize: int = 256, crop: int = 224) -> None:
        for key, value in (("resize", resize), ("crop", crop)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"preprocessor 'center-crop': data.preprocessor_params.{key} must be a positive integer, got {value!r}"
                )
        if crop > resize:
            raise ConfigError(
                f"preprocessor 'center-crop': crop ({crop}) must not exceed resize ({resize}) "
                "in data.preprocessor_params"
            )
        self.resize = resize
        self.crop = crop

    def settings(self) -> dict[str, Any]:
        return {"resize": self.resize, "crop": self.crop}

    @property
    def output_size(self) -> int:
        return self.crop

    def __call__(self, img: np.ndarray) -> np.ndarray:
        img = resize_square(img, self.resize)
        top = (self.resize - self.crop) // 2
        return np.ascontiguousarray(img[top : top + self.crop, top : top + self.crop])

    def region(self, img: np.ndarray) -> tuple[float, float, float, float]:
        top = (self.resize - self.crop) // 2
        return crop_region(img.shape, self.resize, top, top, self.crop)


def crop_region(
    shape: tuple[int, ...], resize: int, top: int, left: int, crop: int
) -> tuple[float, float, float, float]:
    """The window (top, left, crop, crop) of an image resized to ``resize`` x ``resize``, in the original's pixels."""
    sy, sx = shape[0] / resize, shape[1] / resize
    return top * sy, left * sx, crop * sy, crop * sx


def preprocess_image(img: np.ndarray, preprocessor: Preprocessor | None, image_size: int) -> np.ndarray:
    """``preprocessor(img)`` (when given) resized to ``image_size`` x ``image_size``: the model's input."""
    if preprocessor is not None:
        out = preprocessor(img)
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.ndim != 2 or 0 in out.shape:
            got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
            raise PluginError(
                f"preprocessor {preprocessor.name!r} returned {got}, not a uint8 (H, W) image; "
                "fix or update the plugin that provides it"
            )
        img = out
    return resize_square(img, image_size)


class PreprocessedImages:
    """Another image source (native size) seen through :func:`preprocess_image`."""

    def __init__(self, source: ImageSource, preprocessor: Preprocessor | None, image_size: int) -> None:
        self.source = source
        self.preprocessor = preprocessor
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.source)

    def read(self, i: int) -> np.ndarray:
        return preprocess_image(self.source.read(i), self.preprocessor, self.image_size)


def resolve_preprocessor(
    name: str, params: Mapping[str, Any] | None = None, state: Mapping[str, np.ndarray] | None = None
) -> Preprocessor:
    """The registered preprocessor ``name`` built with ``params``, its ``state`` loaded when given."""
    from hmlc.plugins import get_host

    preprocessor = get_host().preprocessor(name, **dict(params or {}))
    if not isinstance(preprocessor, Preprocessor):
        raise PluginError(
            f"preprocessor {name!r} is a {type(preprocessor).__name__}, not an hmlc.data.preprocess.Preprocessor; "
            "update the plugin that registers it"
        )
    if state:
        preprocessor.load_state(state)
    return preprocessor


def register_builtin_preprocessors(register: Callable[[str, Any], None]) -> None:
    """Register the built-in preprocessor factories: "center-crop"."""
    register(CenterCrop.name, CenterCrop)

"""Template-match cropping (Pham et al. 2019): resize, then crop where a chest template fits best.

The template is the mean of centre-cropped, resized frontal training images.
It is computed from the user's own data (CheXpert images may not be
redistributed, so none ships with the plugin) by ``hmlc prepare`` or at the
start of training, and travels with the cache and the checkpoints as the
preprocessor's state; a template file can be given instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hmlc.data import ImageSource, decode_image, resize_square
from hmlc.data.preprocess import Preprocessor, crop_region
from hmlc.errors import ConfigError, DataError

__all__ = ["TemplateMatch", "match_position"]

TEMPLATE_KEY = "template"


class TemplateMatch(Preprocessor):
    """Resize to ``resize`` x ``resize``; keep the ``crop`` x ``crop`` window most like the template.

    Similarity is the normalised cross-correlation of mean-subtracted pixels
    (OpenCV's TM_CCOEFF_NORMED). ``template`` is a .npy array or an image
    file; when absent the template is fitted as the mean of ``fit_images``
    centre-cropped frontal training images (None: all of them). A template
    of another size is resized to ``crop`` x ``crop``.
    """

    name = "template-match"
    description = "resize, then crop where a mean-chest template correlates best (Pham et al. 2019)"
    version = "1"
    fit_views = ("frontal",)

    def __init__(
        self, resize: int = 256, crop: int = 224, fit_images: int | None = 2000, template: str | Path | None = None
    ) -> None:
        where = "preprocessor 'template-match': data.preprocessor_params"
        for key, value in (("resize", resize), ("crop", crop)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{where}.{key} must be a positive integer, got {value!r}")
        if crop > resize:
            raise ConfigError(f"{where}: crop ({crop}) must not exceed resize ({resize})")
        if fit_images is not None and (
            not isinstance(fit_images, int) or isinstance(fit_images, bool) or fit_images < 1
        ):
            raise ConfigError(f"{where}.fit_images must be a positive integer or null (all), got {fit_images!r}")
        if template is not None and not isinstance(template, (str, Path)):
            raise ConfigError(f"{where}.template must be a file path, got {template!r}")
        self.resize = resize
        self.crop = crop
        self.fit_images = fit_images
        self.template_file = Path(template).expanduser() if template is not None else None
        # Read on first use, not here: a checkpoint's stored template must be
        # usable on a machine that lacks the original file.
        self._template: np.ndarray | None = None

    @property
    def requires_fit(self) -> bool:  # type: ignore[override]
        """True unless a template file is given."""
        return self.template_file is None

    @property
    def output_size(self) -> int:
        return self.crop

    def settings(self) -> dict[str, Any]:
        return {"resize": self.resize, "crop": self.crop, "fit_images": self.fit_images}

    # ------------------------------------------------------------ template
    @property
    def template(self) -> np.ndarray:
        """The float32 (crop, crop) template; DataError when there is none yet."""
        if self._template is None:
            if self.template_file is None:
                raise DataError(
                    "preprocessor 'template-match' has no template yet: run `hmlc prepare` (it fits one on the "
                    "training images) or set data.preprocessor_params.template to a .npy or image file"
                )
            self._template = self._checked(_read_template(self.template_file), str(self.template_file))
        return self._template

    def _checked(self, template: np.ndarray, source: str) -> np.ndarray:
        template = np.asarray(template, dtype=np.float32)
        if template.ndim != 2 or 0 in template.shape or not np.isfinite(template).all():
            raise DataError(f"template from {source} must be a finite 2-D array, got shape {template.shape}")
        if template.shape != (self.crop, self.crop):
            template = cv2.resize(template, (self.crop, self.crop), interpolation=cv2.INTER_AREA)
        if float(template.std()) == 0.0:
            # Correlation with a constant is undefined: every window would tie.
            raise DataError(f"template from {source} is constant; fit it on real images or give another file")
        return np.ascontiguousarray(template)

    def fit(self, images: ImageSource, max_images: int | None = None) -> None:
        """Average the centre crops of up to ``max_images`` (else ``fit_images``) images, spread evenly."""
        limit = max_images if max_images is not None else self.fit_images
        n = len(images) if limit is None else min(len(images), limit)
        if n == 0:
            raise DataError("preprocessor 'template-match' cannot fit a template on zero training images")
        indices = np.linspace(0, len(images) - 1, n).round().astype(np.int64)
        top = (self.resize - self.crop) // 2
        total = np.zeros((self.crop, self.crop), dtype=np.float64)
        for i in indices:
            img = resize_square(images.read(int(i)), self.resize)
            total += img[top : top + self.crop, top : top + self.crop]
        self._template = self._checked((total / n).astype(np.float32), f"{n} training images")

    def state(self) -> dict[str, np.ndarray]:
        if self._template is None and self.template_file is None:
            return {}
        return {TEMPLATE_KEY: self.template.copy()}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        if set(state) != {TEMPLATE_KEY}:
            raise DataError(
                f"preprocessor 'template-match' expects a state with {TEMPLATE_KEY!r} only, got {sorted(state)}; "
                "the checkpoint or cache entry was made with another preprocessor"
            )
        template = np.asarray(state[TEMPLATE_KEY])
        if template.shape != (self.crop, self.crop):
            raise DataError(
                f"stored template is {template.shape}, but data.preprocessor_params.crop is {self.crop}; "
                "use the crop it was made with"
            )
        self._template = self._checked(template, "the stored state")

    # ------------------------------------------------------------ matching
    def position(self, img: np.ndarray) -> tuple[int, int]:
        """(top, left) of the best window in ``img`` resized to ``resize`` x ``resize``."""
        return match_position(resize_square(img, self.resize), self.template)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        resized = resize_square(img, self.resize)
        top, left = match_position(resized, self.template)
        return np.ascontiguousarray(resized[top : top + self.crop, left : left + self.crop])

    def region(self, img: np.ndarray) -> tuple[float, float, float, float]:
        top, left = self.position(img)
        return crop_region(img.shape, self.resize, top, left, self.crop)


def match_position(image: np.ndarray, template: np.ndarray) -> tuple[int, int]:
    """(top, left) of the window of ``image`` with the highest TM_CCOEFF_NORMED score.

    Ties go to the first window in row-major order; an image with no
    contrast anywhere (every score undefined or equal) gives the centre.
    """
    scores = cv2.matchTemplate(image.astype(np.float32), template.astype(np.float32), cv2.TM_CCOEFF_NORMED)
    scores = np.nan_to_num(scores, nan=-np.inf)
    best = float(scores.max())
    if not np.isfinite(best) or best == float(scores.min()):
        return (scores.shape[0] - 1) // 2, (scores.shape[1] - 1) // 2
    top, left = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(top), int(left)


def _read_template(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(
            f"template file {path} does not exist; fix data.preprocessor_params.template or drop it to fit one"
        )
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read template file {path}: {exc}") from None
    return decode_image(path).astype(np.float32)

"""A dataset reader that generates catalogue "photos" in memory (nothing to download).

Each label has a visual feature, and a child's feature is drawn only with its
parents' features, so the true labels respect the hierarchy:

* Animal: a bright disc on the left; Dog: a dark bar across it; Cat: a dark
  bar down it.
* Product: a bright square on the right; Toy: a dark dot in it.
* Dog With Toy: a line from the disc to the square.

Training codes are corrupted like report-mined labels (some -1, some blank);
validation codes are clean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hmlc.data import ArrayImageSource, DatasetReader, DatasetSplit, LabelTable
from hmlc.errors import DataError
from hmlc.hierarchy import LabelGraph, load_hierarchy

from hmlc_example import HIERARCHY_FILE

__all__ = ["ShapesDataset", "generate_shapes"]

CATALOGUE = load_hierarchy(HIERARCHY_FILE)


class ShapesDataset(DatasetReader):
    """Generated catalogue images with the "example-catalogue" hierarchy."""

    name = "example-shapes"
    default_hierarchy = "example-catalogue"
    default_blank = "negative"
    splits = ("train", "valid")
    description = "generated shapes for the 6-label example-catalogue hierarchy"
    # Every key a user may set under data.params, with its default.
    param_defaults = {"n_train": 600, "n_valid": 200, "seed": 0, "uncertain_rate": 0.1, "blank_rate": 0.2}

    def load(
        self,
        split: str,
        *,
        root: Path | None,
        params: Mapping[str, Any],
        image_size: int | None,
        labels: Sequence[str] | None,
        graph: LabelGraph | None = None,
    ) -> DatasetSplit:
        # labels: the experiment's labels in output order, or None when the split is loaded
        # for prediction (return no label columns then). graph: the experiment's hierarchy
        # (None for prediction); this reader's labels are fixed, so it only needs `labels`.
        self.check_split(split)  # DataError for an unknown split
        p = self.resolve_params(params)  # ConfigError for an unknown key or a wrong type
        labels = list(labels or ())
        missing = [label for label in labels if label not in CATALOGUE]
        if missing:
            raise DataError(f"dataset {self.name!r} has no label(s) {missing}; use hierarchy=example-catalogue")
        train = split == "train"
        images, codes = generate_shapes(
            n=p["n_train"] if train else p["n_valid"],
            size=image_size or 64,  # None asks for native size; generated images have none
            seed=[p["seed"], 0 if train else 1],
            uncertain_rate=p["uncertain_rate"] if train else 0.0,
            blank_rate=p["blank_rate"] if train else 0.0,
        )
        ids = [f"{split}/{i:05d}" for i in range(len(images))]
        columns = [CATALOGUE.index(label) for label in labels]  # the codes in the order asked for
        table = LabelTable.from_codes(ids, codes[:, columns], labels)
        return DatasetSplit(table, ArrayImageSource(images))


def generate_shapes(
    n: int, size: int, seed: Any, uncertain_rate: float = 0.0, blank_rate: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (n, size, size) and raw codes (n, 6) in the catalogue's label order."""
    rng = np.random.default_rng(seed)
    k = len(CATALOGUE)
    truth = np.zeros((n, k), dtype=bool)
    for j in CATALOGUE.topological_indices:  # parents first
        parents = list(CATALOGUE.parent_indices[j])
        allowed = truth[:, parents].all(axis=1) if parents else np.ones(n, dtype=bool)
        truth[:, j] = allowed & (rng.random(n) < 0.5)
    images = np.stack([_draw(row, size, rng) for row in truth]) if n else np.zeros((0, size, size), np.uint8)
    codes = truth.astype(np.float32)
    draw = rng.random((n, k))
    codes[draw < uncertain_rate] = -1.0
    codes[(draw >= uncertain_rate) & (draw < uncertain_rate + blank_rate)] = np.nan
    return images, codes


def _draw(row: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    has = {label: bool(row[i]) for i, label in enumerate(CATALOGUE.labels)}
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = rng.uniform(0, 40, (size, size)).astype(np.float32)
    r = size / 7
    disc = (size * 0.28 + rng.uniform(-2, 2), size * 0.5 + rng.uniform(-4, 4))  # (x, y)
    box = (size * 0.72 + rng.uniform(-2, 2), size * 0.5 + rng.uniform(-4, 4))
    if has["Dog With Toy"]:
        t = np.clip(((xx - disc[0]) * (box[0] - disc[0]) + (yy - disc[1]) * (box[1] - disc[1]))
                    / ((box[0] - disc[0]) ** 2 + (box[1] - disc[1]) ** 2), 0, 1)
        dist = np.hypot(xx - disc[0] - t * (box[0] - disc[0]), yy - disc[1] - t * (box[1] - disc[1]))
        img[dist < 1.0] = 150
    if has["Animal"]:
        inside = (xx - disc[0]) ** 2 + (yy - disc[1]) ** 2 < r**2
        img[inside] = 210
        if has["Dog"]:
            img[inside & (np.abs(yy - disc[1]) < 1.5)] = 60
        if has["Cat"]:
            img[inside & (np.abs(xx - disc[0]) < 1.5)] = 60
    if has["Product"]:
        inside = (np.abs(xx - box[0]) < r) & (np.abs(yy - box[1]) < r)
        img[inside] = 210
        if has["Toy"]:
            img[inside & ((xx - box[0]) ** 2 + (yy - box[1]) ** 2 < (r / 2.5) ** 2)] = 60
    return np.clip(img, 0, 255).astype(np.uint8)

"""The built-in synthetic dataset: images with a planted label hierarchy.

Every label has a visual feature, and a child's feature only appears with its
parent's, so the true labels respect the hierarchy. Some children can only be
told apart from look-alike distractors in their parent's context (dots inside
a mass are calcifications, the same dots elsewhere are not), which is where
conditional training helps. The training codes are then corrupted like labels
mined from reports: uncertain (-1) codes that more often hide positives,
blanks that mostly hide negatives, label flips, and parents left blank when a
child is positive (so closure has work to do). Validation codes are clean.

The hierarchy ("child implies parent")::

    Mass -> Cavity -> Fluid Level
    Mass -> Calcification
    Mass, Line -> Line Through Mass
    Line -> Line Tip
    Haze, Speckle, Ring (no children)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from hmlc.data.datasets import DatasetReader, DatasetSplit
from hmlc.data.features import ArrayFeatureSource
from hmlc.data.images import ArrayImageSource
from hmlc.data.table import LabelTable
from hmlc.errors import ConfigError, DataError
from hmlc.hierarchy.graph import LabelGraph

__all__ = [
    "SYNTHETIC_HIERARCHY",
    "SyntheticConfig",
    "generate_synthetic",
    "SyntheticDataset",
    "generate_synthetic_vectors",
    "SyntheticVectorsDataset",
    "export_synthetic",
    "register_builtin_hierarchies",
]

SYNTHETIC_HIERARCHY = LabelGraph(
    labels=[
        "Mass",
        "Cavity",
        "Fluid Level",
        "Calcification",
        "Line",
        "Line Tip",
        "Line Through Mass",
        "Haze",
        "Speckle",
        "Ring",
    ],
    edges=[
        ("Mass", "Cavity"),
        ("Cavity", "Fluid Level"),
        ("Mass", "Calcification"),
        ("Line", "Line Tip"),
        ("Mass", "Line Through Mass"),
        ("Line", "Line Through Mass"),
    ],
    name="synthetic",
)

#: P(label | all its parents positive); roots: P(label).
DEFAULT_PREVALENCE: dict[str, float] = {
    "Mass": 0.35,
    "Cavity": 0.35,
    "Fluid Level": 0.25,
    "Calcification": 0.35,
    "Line": 0.30,
    "Line Tip": 0.50,
    "Line Through Mass": 0.50,
    "Haze": 0.25,
    "Speckle": 0.25,
    "Ring": 0.20,
}

_MARKER = "hmlc_synthetic.json"
_RATES = (
    "uncertain_rate",
    "blank_rate",
    "noise_rate",
    "parent_blank_rate",
    "uncertain_positive_share",
    "blank_positive_share",
    "distractor_rate",
)


@dataclass(frozen=True)
class SyntheticConfig:
    """How to generate one synthetic split.

    The same ``seed`` and ``split`` give the same bytes; different split names
    give independent data. Truth and images do not depend on the corruption
    rates, so a clean and a corrupted split of one seed show the same images.
    """

    n: int = 2000
    image_size: int = 64
    seed: int = 0
    #: Name mixed into the seed so that splits of one seed differ.
    split: str = "train"
    #: Fraction of codes written -1, per label (lower for rare labels, see uncertain_positive_share).
    uncertain_rate: float = 0.1
    #: Fraction of codes left blank, per label, before parents are blanked for a positive child.
    blank_rate: float = 0.3
    #: Probability that a code that is neither -1 nor blank is flipped.
    noise_rate: float = 0.02
    #: Probability that a parent's code is blanked when a child's code is 1.
    parent_blank_rate: float = 0.5
    #: Share of -1 codes that hide a true positive; a rare label gets fewer -1 codes
    #: so that at most 60 % of its positives are hidden.
    uncertain_positive_share: float = 0.7
    #: Share of blank codes that hide a true positive (rare labels capped likewise).
    blank_positive_share: float = 0.05
    #: Probability of each kind of look-alike in an image that lacks its parent feature.
    distractor_rate: float = 0.4
    #: Overrides of P(label | parents positive); see DEFAULT_PREVALENCE.
    prevalence: Mapping[str, float] = field(default_factory=dict)
    #: Number of the first patient (patientNNNNN), so splits can use disjoint patients.
    first_patient: int = 1
    #: Mean number of images (one study each) per patient.
    images_per_patient: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"synthetic n must be a positive integer, got {self.n!r}")
        if not isinstance(self.image_size, int) or self.image_size < 16:
            raise ConfigError(f"synthetic image_size must be an integer >= 16, got {self.image_size!r}")
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"synthetic {name} must lie in [0, 1], got {value!r}")
        for label, value in self.prevalence.items():
            if label not in DEFAULT_PREVALENCE:
                known = ", ".join(DEFAULT_PREVALENCE)
                raise ConfigError(f"synthetic prevalence names unknown label {label!r}; labels: {known}")
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"synthetic prevalence of {label!r} must lie in [0, 1], got {value!r}")
        if self.images_per_patient < 1:
            raise ConfigError(f"synthetic images_per_patient must be >= 1, got {self.images_per_patient!r}")
        if self.first_patient < 1:
            raise ConfigError(f"synthetic first_patient must be >= 1, got {self.first_patient!r}")

    def clean(self) -> SyntheticConfig:
        """The same split with uncorrupted codes (ground truth, 0/1 only)."""
        return replace(self, uncertain_rate=0.0, blank_rate=0.0, noise_rate=0.0, parent_blank_rate=0.0)


def register_builtin_hierarchies(register: Callable[[str, Any], None]) -> None:
    """Register the synthetic dataset's hierarchy as "synthetic"."""
    register("synthetic", SYNTHETIC_HIERARCHY)


# ---------------------------------------------------------------- generation
def generate_synthetic(cfg: SyntheticConfig) -> tuple[np.ndarray, LabelTable]:
    """Images uint8 (N, S, S) and their label table (raw codes, ids ``patientNNNNN/studyN/view1_frontal``)."""
    entropy = [cfg.seed & 0xFFFFFFFF, cfg.seed >> 32 & 0xFFFFFFFF, zlib.crc32(cfg.split.encode())]
    truth_seq, patient_seq, image_seq, code_seq = np.random.SeedSequence(entropy).spawn(4)
    truth = _sample_truth(np.random.default_rng(truth_seq), cfg)
    patient_of, study_of = _sample_patients(np.random.default_rng(patient_seq), cfg)
    images = _render_all(np.random.default_rng(image_seq), truth, patient_of, cfg)
    codes = _corrupt(np.random.default_rng(code_seq), truth, cfg)
    patients = [f"patient{cfg.first_patient + p:05d}" for p in patient_of]
    studies = [f"{patient}/study{s}" for patient, s in zip(patients, study_of)]
    ids = [f"{study}/view1_frontal" for study in studies]
    table = LabelTable.from_codes(ids, codes, SYNTHETIC_HIERARCHY.labels, patients=patients, studies=studies)
    return images, table


def _sample_truth(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    g = SYNTHETIC_HIERARCHY
    prevalence = {**DEFAULT_PREVALENCE, **cfg.prevalence}
    draws = rng.random((cfg.n, len(g)))
    truth = np.zeros((cfg.n, len(g)), dtype=bool)
    for k in g.topological_indices:
        allowed = np.ones(cfg.n, dtype=bool)
        for p in g.parent_indices[k]:
            allowed &= truth[:, p]
        truth[:, k] = allowed & (draws[:, k] < prevalence[g.labels[k]])
    return truth


def _sample_patients(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the patient number (from 0) and the study number (from 1)."""
    counts = 1 + rng.poisson(cfg.images_per_patient - 1.0, size=cfg.n)
    patient_of = np.repeat(np.arange(cfg.n), counts)[: cfg.n]
    starts = np.concatenate([[0], np.cumsum(counts)])[patient_of]
    study_of = np.arange(cfg.n) - starts + 1
    return patient_of, study_of


def _corrupt(rng: np.random.Generator, truth: np.ndarray, cfg: SyntheticConfig) -> np.ndarray:
    """Raw codes from true labels, corrupted like report-mined labels."""
    n, k = truth.shape
    codes = truth.astype(np.float32)
    prevalence = truth.mean(axis=0)
    p_unc = _class_rates(prevalence, cfg.uncertain_rate, cfg.uncertain_positive_share)
    p_blank = _class_rates(prevalence, cfg.blank_rate, cfg.blank_positive_share)
    pick = truth.astype(np.intp)  # column 0 for negatives, 1 for positives
    rows = np.arange(k)
    unc_p = p_unc[rows, pick]
    blank_p = p_blank[rows, pick]
    u1, u2, u3 = rng.random((3, n, k))
    uncertain = u1 < unc_p
    # P(blank | not uncertain) chosen so that P(blank) matches blank_p.
    blank = ~uncertain & (u2 * np.maximum(1.0 - unc_p, 1e-12) < blank_p)
    flip = ~uncertain & ~blank & (u3 < cfg.noise_rate)
    codes[flip] = 1.0 - codes[flip]
    codes[uncertain] = -1.0
    codes[blank] = np.nan
    g = SYNTHETIC_HIERARCHY
    for child in g.topological_indices:
        for parent in g.parent_indices[child]:
            hide = (codes[:, child] == 1) & (rng.random(n) < cfg.parent_blank_rate)
            codes[hide, parent] = np.nan
    return codes


def _class_rates(prevalence: np.ndarray, rate: float, positive_share: float) -> np.ndarray:
    """(K, 2) probabilities [given negative, given positive] of an event hitting ``rate`` of codes.

    ``positive_share`` of the events fall on true positives. For a rare label
    the rate is lowered so that at most 60 % of its positives are hit.
    """
    pi = np.clip(prevalence, 1e-9, 1.0 - 1e-9)
    if positive_share > 0:
        rate = np.minimum(rate, 0.6 * pi / positive_share)
    pos = positive_share * rate / pi
    neg = np.clip((1.0 - positive_share) * rate / (1.0 - pi), 0.0, 1.0)
    return np.stack([neg, np.broadcast_to(pos, neg.shape)], axis=1)


# ----------------------------------------------------------------- rendering
_IDX = {label: i for i, label in enumerate(SYNTHETIC_HIERARCHY.labels)}


def _render_all(
    rng: np.random.Generator, truth: np.ndarray, patient_of: np.ndarray, cfg: SyntheticConfig
) -> np.ndarray:
    s = cfg.image_size
    n_patients = int(patient_of.max()) + 1
    # A patient's images share brightness, gradient and noise level.
    style = np.stack(
        [rng.uniform(60, 100, n_patients), rng.uniform(-20, 20, n_patients), rng.uniform(4, 8, n_patients)],
        axis=1,
    )
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    images = np.empty((cfg.n, s, s), dtype=np.uint8)
    for i in range(cfg.n):
        images[i] = _render(rng, truth[i], style[patient_of[i]], cfg, yy, xx)
    return images


_SQUARE = 2.5  # half-width of line-tip squares (and their look-alikes) at 64 px


class _Canvas:
    """A float image plus the discs that later objects must keep clear of."""

    def __init__(self, rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> None:
        self.rng, self.s, self.yy, self.xx = rng, size, yy, xx
        self.f = size / 64.0
        self.layer = np.zeros((size, size), dtype=np.float32)
        self.taken: list[tuple[float, float, float]] = []

    def disc(self, cx: float, cy: float, r: float) -> np.ndarray:
        return (self.xx - cx) ** 2 + (self.yy - cy) ** 2 <= r * r

    def place(self, r: float, margin: float, tries: int = 60) -> tuple[float, float]:
        """A random centre at least ``margin`` from the border and clear of taken discs."""
        lo, hi = margin, self.s - margin
        cx = cy = self.s / 2.0
        for _ in range(tries):
            cx, cy = self.rng.uniform(lo, hi, 2)
            if all(math.hypot(cx - x, cy - y) > r + tr + 2 * self.f for x, y, tr in self.taken):
                break
        self.taken.append((cx, cy, r))
        return cx, cy

    def dots(self, count: int, value: float, where: Callable[[float, float], bool]) -> None:
        f = self.f
        placed = 0
        for _ in range(count * 20):
            if placed == count:
                break
            cx, cy = self.rng.uniform(3 * f, self.s - 3 * f, 2)
            if where(cx, cy):
                self.layer[self.disc(cx, cy, 1.3 * f)] += value
                placed += 1


def _render(
    rng: np.random.Generator,
    t: np.ndarray,
    style: np.ndarray,
    cfg: SyntheticConfig,
    yy: np.ndarray,
    xx: np.ndarray,
) -> np.ndarray:
    c = _Canvas(rng, cfg.image_size, yy, xx)
    s, f = c.s, c.f
    base, gradient, noise = style
    has = {label: bool(t[i]) for label, i in _IDX.items()}

    mass = None
    if has["Mass"]:
        r = rng.uniform(9, 13) * f
        cx, cy = rng.uniform(0.3 * s, 0.7 * s, 2)
        c.taken.append((cx, cy, r))
        c.layer[c.disc(cx, cy, r)] = 55
        mass = (cx, cy, r)
        if has["Cavity"]:
            rc = 0.45 * r
            ox, oy = rng.uniform(-0.12 * r, 0.12 * r, 2)
            hole = c.disc(cx + ox, cy + oy, rc)
            c.layer[hole] = -25
            if has["Fluid Level"]:
                level = cy + oy + rng.uniform(-0.1, 0.3) * rc
                c.layer[hole & (yy > level)] = 40
        if has["Calcification"]:
            hole_r = 0.45 * r + 1.5 * f if has["Cavity"] else 0.0

            def inside(x: float, y: float) -> bool:
                d = math.hypot(x - cx, y - cy)
                return hole_r < d < 0.8 * r

            c.dots(int(rng.integers(3, 6)), 70, inside)

    def outside_mass(x: float, y: float) -> bool:
        return mass is None or math.hypot(x - mass[0], y - mass[1]) > mass[2] + 3 * f

    if has["Line"]:
        _draw_line(c, rng, mass, through=has["Line Through Mass"], tip=has["Line Tip"])
    if has["Ring"]:
        r = rng.uniform(6, 8) * f
        cx, cy = c.place(r, r + 2 * f)
        ring = c.disc(cx, cy, r) & ~c.disc(cx, cy, r - 1.8 * f)
        c.layer[ring] += 50
    if has["Speckle"]:
        c.dots(int(rng.integers(12, 21)), 70, outside_mass)

    # Look-alikes of child features, only where the parent is absent: dark spots
    # like cavities and dots like calcifications without a mass, squares like line
    # tips without a line. Given the parent, the child is easy to see; without it,
    # a model must learn the context.
    d = rng.random(3) < cfg.distractor_rate
    d[:2] &= mass is None
    d[2] &= not has["Line"]
    if d[0]:
        r = rng.uniform(4, 6) * f
        cx, cy = c.place(r, r + 2 * f)
        c.layer[c.disc(cx, cy, r)] = -25
    if d[1]:
        c.dots(int(rng.integers(2, 5)), 70, outside_mass)
    if d[2]:
        h = _SQUARE * f
        cx, cy = c.place(h * 1.5, 4 * f)
        c.layer[(np.abs(xx - cx) <= h) & (np.abs(yy - cy) <= h)] += 80

    if has["Haze"]:
        side = 1.0 if rng.random() < 0.5 else -1.0
        c.layer += 28.0 / (1.0 + np.exp(-side * (xx - s / 2) / (4 * f)))

    img = base + gradient * (yy / s - 0.5) + c.layer
    img = cv2.GaussianBlur(img, (0, 0), 0.7 * f)
    img += rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _draw_line(
    c: _Canvas,
    rng: np.random.Generator,
    mass: tuple[float, float, float] | None,
    through: bool,
    tip: bool,
) -> None:
    """A bright line from the border into the image; its end is marked by a square for a tip.

    Lines with and without a tip have the same length, so only the square tells them apart.
    """
    s, f = c.s, c.f
    for _ in range(100):
        if through and mass is not None:
            px, py = mass[0], mass[1]
        else:
            px, py = rng.uniform(0.15 * s, 0.85 * s, 2)
        angle = rng.uniform(0, math.pi)
        dx, dy = math.cos(angle), math.sin(angle)
        t_lo, t_hi = _border_span(px, py, dx, dy, s)
        start = (px + t_lo * dx, py + t_lo * dy)
        end_t = rng.uniform(0.55, 0.85) * (t_hi - t_lo) + t_lo
        if through and mass is not None:
            end_t = max(end_t, min(mass[2] + 4 * f, t_hi - 3 * f))
        end = (px + end_t * dx, py + end_t * dy)
        if mass is None or through or _segment_distance(mass[0], mass[1], start, end) > mass[2] + 3 * f:
            break
    width = max(1, round(1.5 * f))
    line = np.zeros_like(c.layer)
    cv2.line(line, _pt(start), _pt(end), 45.0, thickness=width)
    if tip:
        h = _SQUARE * f
        line[(np.abs(c.xx - end[0]) <= h) & (np.abs(c.yy - end[1]) <= h)] = 80.0
        c.taken.append((end[0], end[1], 1.5 * h))
    c.layer += line


def _border_span(px: float, py: float, dx: float, dy: float, s: int) -> tuple[float, float]:
    """Parameters t (negative, positive) where the line p + t*d leaves the image."""
    lo, hi = -math.inf, math.inf
    for p, d in ((px, dx), (py, dy)):
        if abs(d) > 1e-9:
            a, b = (0 - p) / d, (s - 1 - p) / d
            lo, hi = max(lo, min(a, b)), min(hi, max(a, b))
    return lo, hi


def _segment_distance(x: float, y: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    ax, ay = a
    bx, by = b
    vx, vy = bx - ax, by - ay
    t = ((x - ax) * vx + (y - ay) * vy) / max(vx * vx + vy * vy, 1e-12)
    t = min(1.0, max(0.0, t))
    return math.hypot(x - (ax + t * vx), y - (ay + t * vy))


def _pt(p: tuple[float, float]) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


# ------------------------------------------------------------------- reader
def split_config(
    split: str,
    *,
    n_train: int,
    n_valid: int,
    seed: int,
    image_size: int,
    knobs: Mapping[str, Any],
) -> SyntheticConfig:
    """The config of one split as SyntheticDataset and export_synthetic build it.

    Valid patients are numbered after the train patients; valid codes are clean.
    """
    accepted = {f.name for f in fields(SyntheticConfig)} - {"n", "seed", "split", "image_size", "first_patient"}
    unknown = sorted(set(knobs) - accepted)
    if unknown:
        raise ConfigError(
            f"unknown synthetic option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(accepted))}"
        )
    cfg = SyntheticConfig(
        n=n_train if split == "train" else n_valid,
        image_size=image_size,
        seed=seed,
        split=split,
        first_patient=1 if split == "train" else n_train + 1,
        **knobs,
    )
    return cfg if split == "train" else cfg.clean()


class SyntheticDataset(DatasetReader):
    """Generated images with the "synthetic" hierarchy; nothing to download."""

    name = "synthetic"
    default_hierarchy = "synthetic"
    default_blank = "negative"
    splits = ("train", "valid")
    description = "generated images with a planted 10-label hierarchy (noisy train codes, clean valid codes)"
    param_defaults = {
        "n_train": 2000,
        "n_valid": 500,
        "seed": 0,
        "uncertain_rate": SyntheticConfig.uncertain_rate,
        "blank_rate": SyntheticConfig.blank_rate,
        "noise_rate": SyntheticConfig.noise_rate,
        "parent_blank_rate": SyntheticConfig.parent_blank_rate,
        "distractor_rate": SyntheticConfig.distractor_rate,
    }

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
        self.check_split(split)
        p = self.resolve_params(params)
        own = {key: p.pop(key) for key in self._own_params}
        n_train, n_valid, seed = p.pop("n_train"), p.pop("n_valid"), p.pop("seed")
        cfg = split_config(split, n_train=n_train, n_valid=n_valid, seed=seed, image_size=image_size or SyntheticConfig.image_size, knobs=p)
        table, samples = self._generate(cfg, **own)
        return DatasetSplit(select_labels(table, labels), samples)

    #: data.params keys that are not SyntheticConfig knobs; given to :meth:`_generate`.
    _own_params: tuple[str, ...] = ()

    def _generate(self, cfg: SyntheticConfig) -> tuple[LabelTable, Any]:
        images, table = generate_synthetic(cfg)
        return table, ArrayImageSource(images)


def generate_synthetic_vectors(
    cfg: SyntheticConfig, dim: int = 20, missing_rate: float = 0.05
) -> tuple[np.ndarray, LabelTable]:
    """Feature vectors float32 (N, dim) with NaN for missing values, and their label table.

    Truth and codes are drawn as for the images (same hierarchy, same
    corruption); each label adds a random direction to the vector, plus unit
    noise, and every feature then gets its own offset and scale (so features
    must be standardised), a ``missing_rate`` share of values set to NaN.
    Ids are ``row00001`` ...; the table's path, patient and study are "".
    """
    if not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"synthetic-vectors dim must be a positive integer, got {dim!r}")
    if not 0.0 <= missing_rate < 1.0:
        raise ConfigError(f"synthetic-vectors missing_rate must lie in [0, 1), got {missing_rate!r}")
    entropy = [cfg.seed & 0xFFFFFFFF, cfg.seed >> 32 & 0xFFFFFFFF, zlib.crc32(cfg.split.encode())]
    truth_seq, code_seq, vector_seq = np.random.SeedSequence(entropy).spawn(3)
    # The directions, offsets and scales belong to the dataset, not the split: one seed for all splits.
    shape_rng = np.random.default_rng([cfg.seed & 0xFFFFFFFF, 7919])
    truth = _sample_truth(np.random.default_rng(truth_seq), cfg)
    codes = _corrupt(np.random.default_rng(code_seq), truth, cfg)
    k = truth.shape[1]
    directions = shape_rng.normal(0.0, 1.0, (k, dim)) * 1.5
    offsets = shape_rng.uniform(-50.0, 50.0, dim)
    scales = np.exp(shape_rng.uniform(np.log(0.1), np.log(100.0), dim))
    rng = np.random.default_rng(vector_seq)
    values = truth.astype(np.float64) @ directions + rng.normal(0.0, 1.0, (cfg.n, dim))
    values = values * scales + offsets
    values[rng.random((cfg.n, dim)) < missing_rate] = np.nan
    ids = [f"row{i + 1:05d}" for i in range(cfg.n)]
    blank = [""] * cfg.n
    table = LabelTable.from_codes(
        ids, codes, SYNTHETIC_HIERARCHY.labels, paths=blank, patients=blank, studies=blank, views=""
    )
    return values.astype(np.float32), table


class SyntheticVectorsDataset(SyntheticDataset):
    """Generated feature vectors with the "synthetic" hierarchy, for tests and smoke runs."""

    name = "synthetic-vectors"
    default_hierarchy = "synthetic"
    default_blank = "negative"
    splits = ("train", "valid")
    input_kind = "features"
    description = "generated feature vectors (some NaN) with the 10-label synthetic hierarchy"
    param_defaults = {
        "n_train": 400,
        "n_valid": 200,
        "seed": 0,
        "dim": 20,
        "missing_rate": 0.05,
        "uncertain_rate": SyntheticConfig.uncertain_rate,
        "blank_rate": SyntheticConfig.blank_rate,
        "noise_rate": SyntheticConfig.noise_rate,
        "parent_blank_rate": SyntheticConfig.parent_blank_rate,
    }

    _own_params = ("dim", "missing_rate")

    def _generate(self, cfg: SyntheticConfig, dim: int = 20, missing_rate: float = 0.05) -> tuple[LabelTable, Any]:
        values, table = generate_synthetic_vectors(cfg, dim=dim, missing_rate=missing_rate)
        return table, ArrayFeatureSource(values, [f"x{j + 1}" for j in range(dim)])


def select_labels(table: LabelTable, labels: Sequence[str] | None) -> LabelTable:
    """The table with the codes of ``labels`` only, in that order (None: no label columns)."""
    labels = list(labels or ())
    unknown = [label for label in labels if label not in table.labels]
    if unknown:
        raise DataError(
            f"the data has no label(s) {', '.join(map(repr, unknown))}; it has: {', '.join(table.labels)}"
        )
    frame = table.frame[[*table.frame.columns[:5], *labels]]
    return LabelTable(frame.copy(), tuple(labels))


# ------------------------------------------------------------------- export
def export_synthetic(
    out_dir: Path,
    n: int,
    seed: int = 0,
    image_size: int = 64,
    valid_fraction: float = 0.2,
    **knobs: Any,
) -> dict[str, Any]:
    """Write ``n`` synthetic images in CheXpert's layout; return a summary.

    ``out_dir/train.csv`` and ``out_dir/valid.csv`` (header ``Path,Sex,Age,
    Frontal/Lateral,AP/PA,<labels>``, codes 1.0/0.0/-1.0/blank) and PNGs at
    ``out_dir/<split>/patientNNNNN/studyN/view1_frontal.png``; ``Path`` values
    start with ``out_dir.name``. The splits are those of SyntheticDataset with
    n_train = n - round(n * valid_fraction). An existing ``out_dir`` must be
    empty or a previous export (which is replaced).
    """
    out_dir = Path(out_dir)
    n_valid = int(round(n * valid_fraction))
    n_train = n - n_valid
    if n_train < 1 or n_valid < 1:
        raise ConfigError(
            f"export of n={n} with valid_fraction={valid_fraction} leaves {n_train} train and "
            f"{n_valid} valid images; both need at least one"
        )
    configs = {
        split: split_config(split, n_train=n_train, n_valid=n_valid, seed=seed, image_size=image_size, knobs=knobs)
        for split in ("train", "valid")
    }
    _prepare_export_dir(out_dir)
    marker = {"format": "hmlc synthetic export", "complete": False}
    _write_text_atomic(out_dir / _MARKER, json.dumps(marker))
    for name in ("train.csv", "valid.csv"):
        (out_dir / name).unlink(missing_ok=True)
    for split in configs:
        shutil.rmtree(out_dir / split, ignore_errors=True)

    summary: dict[str, Any] = {
        "out_dir": str(out_dir),
        "seed": seed,
        "image_size": image_size,
        "labels": list(SYNTHETIC_HIERARCHY.labels),
        "splits": {},
    }
    frames = {}
    for split, cfg in configs.items():
        images, table = generate_synthetic(cfg)
        rel_paths = [f"{split}/{i}.png" for i in table.frame["id"]]
        for rel, img in zip(rel_paths, images):
            target = out_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(".png", img)
            if not ok:
                raise DataError(f"cannot encode PNG for {target}")
            data.tofile(str(target))
        frames[split] = _chexpert_frame(table, [f"{out_dir.name}/{r}" for r in rel_paths], cfg)
        codes = table.codes()
        summary["splits"][split] = {
            "images": len(table),
            "patients": int(table.frame["patient"].nunique()),
            "positive": _rates(codes == 1),
            "uncertain": _rates(codes == -1),
            "blank": _rates(np.isnan(codes)),
        }
    # CSVs last, each by temp file + rename, so no CSV ever names a missing image.
    for split, frame in frames.items():
        tmp = out_dir / f".{split}.csv.tmp"
        frame.to_csv(tmp, index=False, na_rep="", float_format="%.1f")
        os.replace(tmp, out_dir / f"{split}.csv")
    marker = {"format": "hmlc synthetic export", "complete": True, **summary}
    _write_text_atomic(out_dir / _MARKER, json.dumps(marker, indent=2))
    return summary


def _prepare_export_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"export target {out_dir} is a file; give a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / _MARKER).is_file():
        raise DataError(
            f"export target {out_dir} is not empty and holds no earlier synthetic export; "
            "give an empty or new folder"
        )
    out_dir.mkdir(parents=True, exist_ok=True)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _chexpert_frame(table: LabelTable, paths: list[str], cfg: SyntheticConfig) -> pd.DataFrame:
    """CheXpert's columns: Path, Sex, Age, Frontal/Lateral, AP/PA, then the labels."""
    rng = np.random.default_rng([cfg.seed & 0xFFFFFFFF, zlib.crc32(cfg.split.encode()), 1])
    patients, codes = pd.factorize(table.frame["patient"])
    n_patients = len(codes)
    sex = np.where(rng.random(n_patients) < 0.5, "Female", "Male")[patients]
    age = rng.integers(18, 91, n_patients)[patients]
    ap_pa = np.where(rng.random(len(table)) < 0.6, "AP", "PA")
    frame = pd.DataFrame(
        {"Path": paths, "Sex": sex, "Age": age, "Frontal/Lateral": "Frontal", "AP/PA": ap_pa}
    )
    for label in table.labels:
        frame[label] = table.frame[label].to_numpy(dtype=np.float64)
    return frame


def _rates(mask: np.ndarray) -> dict[str, float]:
    return {label: round(float(v), 4) for label, v in zip(SYNTHETIC_HIERARCHY.labels, mask.mean(axis=0))}

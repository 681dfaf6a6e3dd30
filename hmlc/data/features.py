"""Feature vectors: samples that are float vectors instead of images.

A reader of vectors (``input_kind = "features"``) returns
``DatasetSplit(table, ArrayFeatureSource(values, names))``: one float32 row
of ``dim`` values per label-table row, NaN where a value is missing. Before
the model sees them, a :class:`FeatureTransform` fitted on the training rows
imputes missing values by the training mean and standardises every feature
(zero mean, unit variance); its fitted state travels with checkpoints and
exports like an image preprocessor's.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from hmlc.errors import DataError

__all__ = ["FeatureSource", "ArrayFeatureSource", "FeatureTransform", "INPUT_KINDS"]

#: What a sample is: an image (uint8 (H, W)) or a feature vector (float32 (D,)).
INPUT_KINDS: tuple[str, ...] = ("image", "features")


class FeatureSource(ABC):
    """Indexable feature vectors: ``read(i)`` is a float32 (dim,) row, NaN for a missing value."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def read(self, i: int) -> np.ndarray:
        """Row ``i`` as float32 (dim,)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Number of features per sample."""

    @property
    @abstractmethod
    def names(self) -> tuple[str, ...]:
        """The features' names, ``dim`` of them."""

    def array(self) -> np.ndarray:
        """Every row as one float32 (N, dim) array."""
        if len(self) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([self.read(i) for i in range(len(self))]).astype(np.float32, copy=False)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ArrayFeatureSource:
        """The rows at ``indices`` (positions), in that order."""
        return ArrayFeatureSource(self.array()[np.asarray(indices)], self.names)


class ArrayFeatureSource(FeatureSource):
    """Feature vectors held in memory as one (N, D) array (converted to float32).

    ``names`` default to ``f0 .. f{D-1}``. Infinite values are refused; NaN
    marks a missing value.
    """

    def __init__(self, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        values = np.asarray(values)
        if values.ndim != 2:
            raise DataError(f"feature values must be a 2-D (samples, features) array, got shape {values.shape}")
        if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
            raise DataError(f"feature values must be numbers, got dtype {values.dtype}")
        values = np.ascontiguousarray(values, dtype=np.float32)
        if np.isinf(values).any():
            row, col = np.argwhere(np.isinf(values))[0]
            raise DataError(f"feature {col} of row {row} is infinite; use NaN for a missing value")
        names = tuple(str(n) for n in names) if names is not None else tuple(f"f{j}" for j in range(values.shape[1]))
        if len(names) != values.shape[1]:
            raise DataError(f"{len(names)} feature names for {values.shape[1]} features")
        self._values = values
        self._names = names

    def __len__(self) -> int:
        return len(self._values)

    def read(self, i: int) -> np.ndarray:
        return self._values[i]

    @property
    def dim(self) -> int:
        return int(self._values.shape[1])

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def array(self) -> np.ndarray:
        return self._values


class FeatureTransform:
    """Mean imputation and standardisation, fitted on training rows.

    ``x -> (x - mean) / std`` per feature, a missing (NaN) value becoming 0
    (the training mean). A feature that is constant or never observed in the
    training rows gets std 1 (and mean 0 when never observed). Its state is
    ``{"mean", "std"}`` (float32 (D,)), what checkpoints and exports store.
    """

    name = "standardize"
    version = "1"

    def __init__(self, state: Mapping[str, np.ndarray] | None = None) -> None:
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        if state:
            self.load_state(state)

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    @property
    def dim(self) -> int:
        if self.mean is None:
            raise DataError("the feature transform is not fitted")
        return len(self.mean)

    def fit(self, values: np.ndarray) -> FeatureTransform:
        """Learn mean and std of every column of ``values`` (N, D), ignoring NaN."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or len(values) == 0:
            raise DataError(f"cannot fit the feature transform on an array of shape {values.shape}")
        observed = (~np.isnan(values)).sum(0)
        total = np.nansum(values, 0)
        mean = np.divide(total, observed, out=np.zeros(values.shape[1]), where=observed > 0)
        centred = np.where(np.isnan(values), 0.0, values - mean)
        var = np.divide((centred**2).sum(0), observed, out=np.zeros(values.shape[1]), where=observed > 0)
        std = np.sqrt(var)
        std[~(std > 1e-12)] = 1.0
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        return self

    def state(self) -> dict[str, np.ndarray]:
        """The fitted state ({} before :meth:`fit`)."""
        return {} if self.mean is None or self.std is None else {"mean": self.mean.copy(), "std": self.std.copy()}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a state returned by :meth:`state`."""
        if set(state) != {"mean", "std"}:
            raise DataError(f"a feature transform's state holds mean and std, got {', '.join(sorted(state))}")
        mean = np.asarray(state["mean"], dtype=np.float32).reshape(-1)
        std = np.asarray(state["std"], dtype=np.float32).reshape(-1)
        if mean.shape != std.shape or not np.isfinite(mean).all() or not (std > 0).all():
            raise DataError("a feature transform's state needs finite means and positive stds of one length")
        self.mean, self.std = mean, std

    def fingerprint(self) -> str:
        """A short hash of the name, version and state."""
        h = hashlib.sha256(f"{self.name}:{self.version}".encode())
        for key, value in sorted(self.state().items()):
            h.update(key.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()[:16]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Standardised float32 values (N, D) or (D,), missing values 0."""
        if self.mean is None or self.std is None:
            raise DataError("the feature transform is not fitted")
        values = np.asarray(values, dtype=np.float32)
        if values.shape[-1] != len(self.mean):
            raise DataError(f"vectors have {values.shape[-1]} features; the model takes {len(self.mean)}")
        out = (values - self.mean) / self.std
        return np.where(np.isnan(out), np.float32(0.0), out).astype(np.float32, copy=False)

"""Data sources: how one experiment's samples go from a reader to what training reads.

A :class:`DataSource` is the one interface behind which reading a split,
fitting what must be fitted on the training rows, and caching live:

- :class:`ImageDataSource`: the reader's images (native size when a
  preprocessor is configured), the preprocessor (fitted on training images
  when it needs a fit, or given the state a cache entry saved), one resize to
  ``data.image_size``; read from the preprocessed-image cache when
  ``hmlc prepare`` built an entry for the current settings.
- :class:`FeatureDataSource`: the reader's feature vectors, held in memory;
  a :class:`~hmlc.data.features.FeatureTransform` (mean imputation and
  standardisation) fitted on the training rows. Nothing to cache.

``DataSource.create`` picks one by the reader's ``input_kind``. The fitted
state (:meth:`DataSource.state`) is what checkpoints store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hmlc.data.datasets import DatasetReader, DatasetSplit, read_split
from hmlc.data.features import FeatureSource, FeatureTransform
from hmlc.data.images import SubsetImageSource
from hmlc.data.preprocess import Preprocessor
from hmlc.data.table import LabelTable
from hmlc.errors import ConfigError, DataError, PluginError
from hmlc.hierarchy.graph import LabelGraph
from hmlc.progress import say

__all__ = ["DataSource", "ImageDataSource", "FeatureDataSource", "subset_samples", "fitted_state_tensors", "say"]



def subset_samples(samples: Any, indices: np.ndarray) -> Any:
    """The samples (images or feature vectors) at ``indices``."""
    if isinstance(samples, FeatureSource):
        return samples.subset(indices)
    return SubsetImageSource(samples, indices)


class DataSource(ABC):
    """The samples of one experiment: read, fitted on the training split, cached where that pays.

    ``data`` is the experiment's ``data`` section (:class:`hmlc.config.DataConfig`),
    ``root`` the resolved dataset folder and ``cache_dir`` the cache root.
    """

    input_kind: ClassVar[str] = ""
    #: Checkpoint tensors of the fitted state are stored under this prefix.
    state_prefix: ClassVar[str] = ""

    def __init__(self, data: Any, reader: DatasetReader, root: Path | None, cache_dir: Path) -> None:
        self.data = data
        self.reader = reader
        self.root = root
        self.cache_dir = Path(cache_dir)
        #: Split name -> the cache entry its samples are read from.
        self.cache_entries: dict[str, Path] = {}

    @staticmethod
    def create(data: Any, reader: DatasetReader, root: Path | None, cache_dir: Path) -> DataSource:
        """The source for ``reader``'s ``input_kind``."""
        kind = getattr(reader, "input_kind", "image")
        classes: dict[str, type[DataSource]] = {"image": ImageDataSource, "features": FeatureDataSource}
        if kind not in classes:
            raise PluginError(
                f"dataset {data.dataset!r} has input_kind {kind!r}; hmlc reads {', '.join(classes)}"
            )
        return classes[kind](data, reader, root, cache_dir)

    @property
    def load_size(self) -> int | None:
        """The size readers deliver images at (None: native size, or not images)."""
        return None

    def load(self, split: str, labels: Sequence[str] | None, graph: LabelGraph | None = None) -> DatasetSplit:
        """One split as the reader gives it (``labels=None``: without label codes)."""
        return read_split(
            self.reader, split, root=self.root, params=self.data.params, image_size=self.load_size,
            labels=labels, graph=graph,
        )

    def training(self, split: str, loaded: DatasetSplit, limit: int | None = None) -> tuple[LabelTable, Any]:
        """The training table and samples (the first ``limit`` rows when given); fits first."""
        self.fit(split, loaded, limit)
        samples = self.samples(split, loaded)
        table = loaded.table
        if limit is not None and limit < len(table):
            idx = np.arange(limit)
            table, samples = table.subset(idx), subset_samples(samples, idx)
        return table, samples

    @abstractmethod
    def fit(self, split: str, loaded: DatasetSplit, limit: int | None = None) -> None:
        """Fit what needs a fit on the training split ``loaded`` (no-op when already fitted)."""

    @abstractmethod
    def samples(self, split: str, loaded: DatasetSplit) -> Any:
        """What the model reads for ``loaded``: an image source or a feature source."""

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """The fitted state that must travel with a checkpoint ({} when there is none)."""

    def metadata(self) -> dict[str, Any]:
        """What a checkpoint records about the inputs besides the state."""
        return {"input_kind": self.input_kind}

    def images_to_cache(self, loaded: Mapping[str, DatasetSplit]) -> int:
        """How many samples of ``loaded`` :meth:`build_caches` would still process (0: nothing to cache)."""
        return 0

    def build_caches(
        self, loaded: Mapping[str, DatasetSplit], workers: int | None = None, progress: bool = True
    ) -> dict[str, Any]:
        """Store each loaded split's prepared samples in the cache, with one pool of ``workers``
        processes for all; split name -> :class:`hmlc.data.cache.CacheBuild`."""
        raise ConfigError(
            f"dataset {self.data.dataset!r} gives {self.input_kind} samples, which hmlc reads from memory: "
            "there is nothing to prepare"
        )


class ImageDataSource(DataSource):
    """Images: reader -> preprocessor (fitted when it needs a fit) -> resize, or the preprocessed cache."""

    input_kind = "image"
    state_prefix = "preprocess/"

    def __init__(self, data: Any, reader: DatasetReader, root: Path | None, cache_dir: Path) -> None:
        super().__init__(data, reader, root, cache_dir)
        self.preprocessor: Preprocessor | None = None
        if data.preprocessor:
            from hmlc.data.preprocess import resolve_preprocessor

            self.preprocessor = resolve_preprocessor(data.preprocessor, data.preprocessor_params)

    @property
    def load_size(self) -> int | None:
        """None (native) when a preprocessor must see the original, else ``data.image_size``."""
        return None if self.data.preprocessor else self.data.image_size

    def cache_inputs(self, split: str, loaded: DatasetSplit) -> dict[str, Any]:
        """What the cache entry of ``split`` depends on (see :func:`hmlc.data.cache.cache_inputs`)."""
        from hmlc.data.cache import cache_inputs

        return cache_inputs(
            dataset=self.data.dataset,
            split=split,
            root=self.root,
            params=self.reader.resolve_params(self.data.params)
            if hasattr(self.reader, "resolve_params")
            else dict(self.data.params),
            image_size=self.data.image_size,
            preprocessor=self.preprocessor,
            ids=[str(v) for v in loaded.table.frame["id"]],
        )

    def fit(self, split: str, loaded: DatasetSplit, limit: int | None = None) -> None:
        """Give a preprocessor that needs a fit its state: from a cache entry, else by fitting now.

        The fit sees the whole training split (``limit`` does not change it), so
        the state matches the one ``hmlc prepare`` stores.
        """
        preprocessor = self.preprocessor
        if preprocessor is None or preprocessor.fitted:
            return
        from hmlc.data.cache import load_fitted_state

        entry = load_fitted_state(self.cache_dir, self.cache_inputs(split, loaded), preprocessor)
        if entry is not None:
            say(f"preprocessor {preprocessor.name!r}: fitted state from preprocessed cache {entry}")
            return
        images = loaded.images
        if preprocessor.fit_views is not None:
            views = loaded.table.frame["view"].astype(str).str.lower().to_numpy()
            keep = np.flatnonzero(np.isin(views, [v.lower() for v in preprocessor.fit_views]))
            if len(keep) == 0:
                raise DataError(
                    f"preprocessor {preprocessor.name!r} fits on {', '.join(preprocessor.fit_views)} images, "
                    f"but split {split!r} has none"
                )
            images = SubsetImageSource(images, keep)
        n = len(images) if preprocessor.fit_images is None else min(len(images), preprocessor.fit_images)
        say(
            f"fitting preprocessor {preprocessor.name!r} on {n} {split} images "
            "(`hmlc prepare` keeps the result in the preprocessed cache)"
        )
        from hmlc.progress import Progress

        with Progress(n, f"fitting {preprocessor.name}", unit="img") as progress:
            preprocessor.fit(_CountedReads(images, progress), max_images=preprocessor.fit_images)
        if not preprocessor.fitted:
            raise PluginError(
                f"preprocessor {preprocessor.name!r} requires a fit but fit() left no state; "
                "fix or update the plugin that provides it"
            )

    def samples(self, split: str, loaded: DatasetSplit) -> Any:
        """The cached images when a complete entry exists, else the reader's, preprocessed on each read."""
        from hmlc.data.cache import MemmapImageSource, find_cache
        from hmlc.data.preprocess import PreprocessedImages

        entry = find_cache(self.cache_dir, self.cache_inputs(split, loaded))
        if entry is not None:
            self.cache_entries[split] = entry
            say(f"using preprocessed cache {entry}")
            return MemmapImageSource(entry)
        if self.preprocessor is None:
            return loaded.images
        return PreprocessedImages(loaded.images, self.preprocessor, self.data.image_size)

    def state(self) -> dict[str, np.ndarray]:
        return self.preprocessor.state() if self.preprocessor is not None else {}

    def images_to_cache(self, loaded: Mapping[str, DatasetSplit]) -> int:
        """The images of the splits without a complete cache entry (an unfinished entry's count in full)."""
        from hmlc.data.cache import find_cache

        count = 0
        for split, data in loaded.items():
            try:
                complete = find_cache(self.cache_dir, self.cache_inputs(split, data)) is not None
            except DataError:  # a damaged entry: the build says what to do with it
                complete = False
            count += 0 if complete else len(data.images)
        return count

    def build_caches(
        self, loaded: Mapping[str, DatasetSplit], workers: int | None = None, progress: bool = True
    ) -> dict[str, Any]:
        from hmlc.data.cache import CacheJob, build_cache_entries, entry_path

        jobs = []
        for split, data in loaded.items():
            inputs = self.cache_inputs(split, data)
            jobs.append(CacheJob.of_split(split, data, entry_path(self.cache_dir, inputs), inputs))
        return build_cache_entries(jobs, self.preprocessor, self.data.image_size, workers, progress)


class FeatureDataSource(DataSource):
    """Feature vectors in memory; mean imputation and standardisation fitted on the training rows."""

    input_kind = "features"
    state_prefix = "features/"

    def __init__(self, data: Any, reader: DatasetReader, root: Path | None, cache_dir: Path) -> None:
        super().__init__(data, reader, root, cache_dir)
        if data.preprocessor:
            raise ConfigError(
                f"data.preprocessor {data.preprocessor!r} preprocesses images, but dataset {data.dataset!r} "
                "gives feature vectors; drop data.preprocessor"
            )
        self.transform = FeatureTransform()
        self.names: tuple[str, ...] = ()

    def fit(self, split: str, loaded: DatasetSplit, limit: int | None = None) -> None:
        """Fit the transform on the training rows (the first ``limit`` of them when given)."""
        values = self._features(loaded).array()
        self.names = self._features(loaded).names
        if self.transform.fitted:
            return
        if limit is not None:
            values = values[:limit]
        self.transform.fit(values)

    def samples(self, split: str, loaded: DatasetSplit) -> FeatureSource:
        source = self._features(loaded)
        if self.transform.fitted and source.dim != self.transform.dim:
            raise DataError(
                f"split {split!r} of dataset {self.data.dataset!r} has {source.dim} features; "
                f"the training split has {self.transform.dim}"
            )
        return source

    def state(self) -> dict[str, np.ndarray]:
        return self.transform.state()

    def metadata(self) -> dict[str, Any]:
        return {
            "input_kind": self.input_kind,
            "input_dim": self.transform.dim if self.transform.fitted else None,
            "feature_names": list(self.names),
            "feature_transform": {"name": self.transform.name, "version": self.transform.version},
        }

    def _features(self, loaded: DatasetSplit) -> FeatureSource:
        if not isinstance(loaded.images, FeatureSource):
            raise PluginError(f"dataset {self.data.dataset!r} declares feature vectors but gave images")
        return loaded.images


class _CountedReads:
    """An image source whose reads advance a progress reporter (a preprocessor's fit)."""

    def __init__(self, images: Any, progress: Any) -> None:
        self.images, self.progress = images, progress

    def __len__(self) -> int:
        return len(self.images)

    def read(self, i: int) -> np.ndarray:
        image = self.images.read(i)
        self.progress.update()
        return image

    def __getattr__(self, name: str) -> Any:  # what else a fit may look at (paths, size)
        if name in ("images", "progress"):
            raise AttributeError(name)
        return getattr(self.images, name)


def fitted_state_tensors(source: DataSource) -> Mapping[str, np.ndarray]:
    """The fitted state keyed as a checkpoint stores it (``<state_prefix><key>``)."""
    return {f"{source.state_prefix}{key}": value for key, value in source.state().items()}


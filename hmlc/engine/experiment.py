"""From a configuration to training-ready data: reader, hierarchy, closure, policies, images.

Images reach the model through one path: the reader's images (native size
when a preprocessor is configured), the preprocessor, one resize to
``data.image_size``. When ``hmlc prepare`` has stored that result in the
preprocessed-image cache for the current settings, training reads it from
there instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hmlc.config import ExperimentConfig
from hmlc.data.preprocess import Preprocessor
from hmlc.data.images import SubsetImageSource
from hmlc.errors import ConfigError, DataError, PluginError
from hmlc.hierarchy import LabelGraph

__all__ = [
    "PreparedSplit",
    "ExperimentData",
    "prepare_experiment",
    "check_experiment",
    "resolve_policies",
    "dataset_root",
    "reader_image_size",
    "experiment_cache_root",
    "build_caches",
]


@dataclass
class PreparedSplit:
    """One split: its label table, image source and (closed) raw codes."""

    table: Any  # hmlc.data.table.LabelTable
    images: Any  # hmlc.data.images.ImageSource
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class ExperimentData:
    graph: LabelGraph
    train: PreparedSplit
    valid: PreparedSplit | None
    policies: dict[str, Any]
    multiclass: bool
    blank: str
    closure_changed: dict[str, int]
    #: The configured preprocessor, fitted when it needs a fit (its state belongs in checkpoints).
    preprocessor: Preprocessor | None = None
    #: Split name -> the preprocessed-cache entry its images are read from.
    cache_entries: dict[str, Path] = field(default_factory=dict)

    def encode(self, seed: int, epoch: int, redraw: bool) -> tuple[np.ndarray, np.ndarray]:
        """Training targets and loss weights for ``epoch``."""
        from hmlc.policies import encode_labels

        return encode_labels(
            self.train.codes, self.graph.labels, self.policies, self.blank, seed=seed, epoch=epoch, redraw=redraw
        )


def dataset_root(config: ExperimentConfig) -> Path | None:
    """``data.root``, else ``$HMLC_DATA/<dataset>`` when that variable is set."""
    if config.data.root is not None:
        return Path(config.data.root).expanduser()
    base = os.environ.get("HMLC_DATA")
    if base:
        return Path(base).expanduser() / config.data.dataset
    return None


def resolve_policies(config: ExperimentConfig, graph: LabelGraph) -> dict[str, Any]:
    """Label -> policy instance from the default and per-label overrides."""
    from hmlc.plugins import get_host

    host = get_host()
    unknown = [label for label in config.policy.overrides if label not in graph]
    if unknown:
        raise ConfigError(
            f"policy.overrides names unknown label(s) {unknown}; the hierarchy's labels are: {', '.join(graph.labels)}"
        )
    cache: dict[str, Any] = {}

    def make(name: str) -> Any:
        if name not in cache:
            cache[name] = host.policy(name, **config.policy.params.get(name, {}))
        return cache[name]

    return {label: make(config.policy.overrides.get(label, config.policy.default)) for label in graph.labels}


def check_experiment(config: ExperimentConfig) -> LabelGraph:
    """Resolve every name in ``config`` (dataset, hierarchy, policies, backbone) without loading data."""
    from hmlc.plugins import get_host
    from hmlc.policies import is_multiclass

    host = get_host()
    reader = host.dataset(config.data.dataset)
    graph = _hierarchy(config, reader)
    is_multiclass(resolve_policies(config, graph))
    host.backbone(config.model.backbone)
    _preprocessor(config)
    return graph


def reader_image_size(config: ExperimentConfig) -> int | None:
    """The size readers load images at: None (native) when a preprocessor must see the original."""
    return None if config.data.preprocessor else config.data.image_size


def experiment_cache_root(config: ExperimentConfig, cli_value: Path | str | None = None) -> Path:
    """The preprocessed-cache root: ``cli_value`` (--cache), else ``data.cache_dir``, else ``cache_root()``."""
    from hmlc.data.cache import cache_root

    return cache_root(cli_value or config.data.cache_dir)


def _preprocessor(config: ExperimentConfig) -> Preprocessor | None:
    if not config.data.preprocessor:
        return None
    from hmlc.data.preprocess import resolve_preprocessor

    return resolve_preprocessor(config.data.preprocessor, config.data.preprocessor_params)


def _hierarchy(config: ExperimentConfig, reader: Any) -> LabelGraph:
    from hmlc.plugins import get_host

    hierarchy = config.hierarchy or reader.default_hierarchy
    if not hierarchy:
        raise ConfigError(
            f"dataset {config.data.dataset!r} has no default hierarchy; set hierarchy=NAME or a file "
            "(`hmlc list hierarchies`)"
        )
    return get_host().hierarchy(hierarchy)


def _say(text: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks
        print(text, file=sys.stderr, flush=True)


@dataclass
class _Source:
    """What the images of one split depend on: the reader's split and where it came from."""

    config: ExperimentConfig
    reader: Any
    root: Path | None
    name: str
    split: Any  # hmlc.data.datasets.DatasetSplit

    @classmethod
    def load(cls, config: ExperimentConfig, reader: Any, root: Path | None, name: str, labels: Sequence[str]) -> _Source:
        split = reader.load(
            name, root=root, params=config.data.params, image_size=reader_image_size(config), labels=labels
        )
        return cls(config, reader, root, name, split)

    def cache_inputs(self, preprocessor: Preprocessor | None) -> dict[str, Any]:
        from hmlc.data.cache import cache_inputs

        return cache_inputs(
            dataset=self.config.data.dataset,
            split=self.name,
            root=self.root,
            params=self.reader.resolve_params(self.config.data.params)
            if hasattr(self.reader, "resolve_params")
            else dict(self.config.data.params),
            image_size=self.config.data.image_size,
            preprocessor=preprocessor,
            ids=[str(v) for v in self.split.table.frame["id"]],
        )

    def images(self, preprocessor: Preprocessor | None, cache_dir: Path, entries: dict[str, Path]) -> Any:
        """The cached images when a complete entry exists, else the reader's, preprocessed on each read."""
        from hmlc.data.cache import MemmapImageSource, find_cache
        from hmlc.data.preprocess import PreprocessedImages

        entry = find_cache(cache_dir, self.cache_inputs(preprocessor))
        if entry is not None:
            entries[self.name] = entry
            _say(f"using preprocessed cache {entry}")
            return MemmapImageSource(entry)
        if preprocessor is None:
            return self.split.images
        return PreprocessedImages(self.split.images, preprocessor, self.config.data.image_size)


def _fit_preprocessor(preprocessor: Preprocessor | None, train: _Source, cache_dir: Path) -> None:
    """Give a preprocessor that needs a fit its state: from a cache entry, else by fitting now."""
    if preprocessor is None or preprocessor.fitted:
        return
    from hmlc.data.cache import load_fitted_state

    entry = load_fitted_state(cache_dir, train.cache_inputs(preprocessor), preprocessor)
    if entry is not None:
        _say(f"preprocessor {preprocessor.name!r}: fitted state from preprocessed cache {entry}")
        return
    images = train.split.images
    if preprocessor.fit_views is not None:
        views = train.split.table.frame["view"].astype(str).str.lower().to_numpy()
        keep = np.flatnonzero(np.isin(views, [v.lower() for v in preprocessor.fit_views]))
        if len(keep) == 0:
            raise DataError(
                f"preprocessor {preprocessor.name!r} fits on {', '.join(preprocessor.fit_views)} images, "
                f"but split {train.name!r} has none"
            )
        images = SubsetImageSource(images, keep)
    n = len(images) if preprocessor.fit_images is None else min(len(images), preprocessor.fit_images)
    _say(
        f"fitting preprocessor {preprocessor.name!r} on {n} {train.name} images "
        "(`hmlc prepare` keeps the result in the preprocessed cache)"
    )
    preprocessor.fit(images, max_images=preprocessor.fit_images)
    if not preprocessor.fitted:
        raise PluginError(
            f"preprocessor {preprocessor.name!r} requires a fit but fit() left no state; "
            "fix or update the plugin that provides it"
        )


def prepare_experiment(config: ExperimentConfig, with_valid: bool = True) -> ExperimentData:
    """Load the splits, close training labels over the hierarchy, resolve policies and images."""
    from hmlc.plugins import get_host
    from hmlc.policies import is_multiclass

    host = get_host()
    check_experiment(config)
    reader = host.dataset(config.data.dataset)
    graph = _hierarchy(config, reader)
    policies = resolve_policies(config, graph)
    multiclass = is_multiclass(policies)
    root = dataset_root(config)
    preprocessor = _preprocessor(config)
    cache_dir = experiment_cache_root(config)
    entries: dict[str, Path] = {}
    train_source = _Source.load(config, reader, root, config.data.train_split, graph.labels)
    _fit_preprocessor(preprocessor, train_source, cache_dir)
    table = train_source.split.table
    images = train_source.images(preprocessor, cache_dir, entries)
    if config.data.limit is not None and config.data.limit < len(table):
        idx = np.arange(config.data.limit)
        table = table.subset(idx)
        images = SubsetImageSource(images, idx)
    codes = table.codes()
    changed = {label: 0 for label in graph.labels}
    if config.data.closure.enabled:
        codes, changed = graph.closure(codes, negative_down=config.data.closure.negative_down)
    train = PreparedSplit(table, images, codes)
    valid = None
    if with_valid and config.data.eval_split:
        v = _Source.load(config, reader, root, config.data.eval_split, graph.labels)
        # Evaluation labels are scored as given: closure is a training-time step.
        valid = PreparedSplit(v.split.table, v.images(preprocessor, cache_dir, entries), v.split.table.codes())
    blank = config.data.blank or getattr(reader, "default_blank", "negative")
    return ExperimentData(graph, train, valid, policies, multiclass, blank, changed, preprocessor, entries)


def build_caches(
    config: ExperimentConfig,
    cache_dir: Path | str | None = None,
    splits: Sequence[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build the preprocessed-cache entries of ``splits`` (default: training and evaluation splits).

    Returns split name -> :class:`hmlc.data.cache.CacheBuild`. Every split's
    table is read first, so missing images are reported before any image is
    decoded; a preprocessor that needs a fit is fitted on the training split
    (or given the state an earlier build saved) and its state is stored with
    each entry.
    """
    from hmlc.data.cache import build_cache, entry_path
    from hmlc.plugins import get_host

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    host = get_host()
    check_experiment(config)
    reader = host.dataset(config.data.dataset)
    graph = _hierarchy(config, reader)
    names = list(splits) if splits else [config.data.train_split, *([config.data.eval_split] if config.data.eval_split else [])]
    names = list(dict.fromkeys(names))
    for name in names:
        reader.check_split(name)
    root = dataset_root(config)
    preprocessor = _preprocessor(config)
    cache_root_dir = experiment_cache_root(config, cache_dir)
    sources = {name: _Source.load(config, reader, root, name, graph.labels) for name in names}
    if preprocessor is not None and not preprocessor.fitted:
        train = sources.get(config.data.train_split) or _Source.load(
            config, reader, root, config.data.train_split, graph.labels
        )
        _fit_preprocessor(preprocessor, train, cache_root_dir)
    builds: dict[str, Any] = {}
    for name, source in sources.items():
        inputs = source.cache_inputs(preprocessor)
        builds[name] = build_cache(
            source.split,
            preprocessor,
            config.data.image_size,
            entry_path(cache_root_dir, inputs),
            workers=workers,
            progress=progress,
            inputs=inputs,
        )
    return builds

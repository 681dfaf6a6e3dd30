"""From a configuration to training-ready data: reader, hierarchy, closure, policies, samples.

Samples reach the model through one :class:`hmlc.data.source.DataSource`
chosen by the reader's ``input_kind``: images (reader, preprocessor, resize,
or the preprocessed-image cache that ``hmlc prepare`` builds) or feature
vectors (imputation and standardisation fitted on the training rows).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hmlc.config import ExperimentConfig
from hmlc.data.preprocess import Preprocessor
from hmlc.errors import ConfigError
from hmlc.hierarchy import LabelGraph

__all__ = [
    "PreparedSplit",
    "ExperimentData",
    "prepare_experiment",
    "check_experiment",
    "resolve_policies",
    "resolve_hierarchy",
    "check_backbone",
    "dataset_root",
    "reader_image_size",
    "experiment_cache_root",
    "experiment_source",
    "build_caches",
]


@dataclass
class PreparedSplit:
    """One split: its label table, samples (images or feature vectors) and (closed) raw codes."""

    table: Any  # hmlc.data.table.LabelTable
    images: Any  # hmlc.data.images.ImageSource or hmlc.data.features.FeatureSource
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def inputs(self) -> Any:
        """The samples, whatever they are (``images`` is the original name)."""
        return self.images


@dataclass
class ExperimentData:
    graph: LabelGraph
    train: PreparedSplit
    valid: PreparedSplit | None
    policies: dict[str, Any]
    multiclass: bool
    blank: str
    closure_changed: dict[str, int]
    #: The configured image preprocessor, fitted when it needs a fit (its state belongs in checkpoints).
    preprocessor: Preprocessor | None = None
    #: Split name -> the preprocessed-cache entry its images are read from.
    cache_entries: dict[str, Path] = field(default_factory=dict)
    #: Where the samples came from; its fitted state belongs in checkpoints.
    source: Any = None  # hmlc.data.source.DataSource
    #: Labels trained on but left out of every score (the reader's score_exclude).
    score_exclude: tuple[str, ...] = ()

    @property
    def input_kind(self) -> str:
        """"image" or "features"."""
        return self.source.input_kind if self.source is not None else "image"

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
    graph = resolve_hierarchy(config, reader)
    is_multiclass(resolve_policies(config, graph))
    check_backbone(config, getattr(reader, "input_kind", "image"))
    experiment_source(config, reader)
    return graph


def check_backbone(config: ExperimentConfig, input_kind: str) -> Any:
    """The configured backbone's spec, checked against the data's ``input_kind`` and its params."""
    from hmlc.models.backbones import resolve_backbone_params
    from hmlc.plugins import get_host

    spec = get_host().backbone(config.model.backbone)
    if spec.input_kind != input_kind:
        hint = "model.backbone=mlp" if input_kind == "features" else "an image backbone (`hmlc list backbones`)"
        raise ConfigError(
            f"backbone {config.model.backbone!r} takes {spec.input_kind} inputs but dataset "
            f"{config.data.dataset!r} gives {input_kind}; set {hint}"
        )
    resolve_backbone_params(spec, config.model.backbone_params)
    return spec


def reader_image_size(config: ExperimentConfig) -> int | None:
    """The size readers load images at: None (native) when a preprocessor must see the original."""
    return None if config.data.preprocessor else config.data.image_size


def experiment_cache_root(config: ExperimentConfig, cli_value: Path | str | None = None) -> Path:
    """The preprocessed-cache root: ``cli_value`` (--cache), else ``data.cache_dir``, else ``cache_root()``."""
    from hmlc.data.cache import cache_root

    return cache_root(cli_value or config.data.cache_dir)


def experiment_source(config: ExperimentConfig, reader: Any = None, cache_dir: Path | str | None = None) -> Any:
    """The :class:`hmlc.data.source.DataSource` of ``config`` (its reader's kind), nothing loaded yet."""
    from hmlc.data.source import DataSource
    from hmlc.plugins import get_host

    reader = reader if reader is not None else get_host().dataset(config.data.dataset)
    return DataSource.create(config.data, reader, dataset_root(config), experiment_cache_root(config, cache_dir))


def resolve_hierarchy(config: ExperimentConfig, reader: Any) -> LabelGraph:
    """``hierarchy``, else the reader's default hierarchy, else the hierarchy that comes with the data."""
    from hmlc.plugins import get_host

    hierarchy = config.hierarchy or reader.default_hierarchy
    if hierarchy:
        return get_host().hierarchy(hierarchy)
    data_hierarchy = getattr(reader, "data_hierarchy", None)
    graph = None
    if data_hierarchy is not None:
        params = reader.resolve_params(config.data.params) if hasattr(reader, "resolve_params") else config.data.params
        graph = data_hierarchy(root=dataset_root(config), params=params)
    if graph is None:
        raise ConfigError(
            f"dataset {config.data.dataset!r} has no default hierarchy; set hierarchy=NAME or a file "
            "(`hmlc list hierarchies`)"
        )
    if not isinstance(graph, LabelGraph):
        from hmlc.errors import PluginError

        raise PluginError(
            f"dataset {config.data.dataset!r}: data_hierarchy() returned {type(graph).__name__}, expected a LabelGraph"
        )
    return graph


def score_exclude(reader: Any, graph: LabelGraph) -> tuple[str, ...]:
    """The reader's labels left out of scores, checked against ``graph``."""
    from hmlc.errors import PluginError

    excluded = tuple(getattr(reader, "score_exclude", lambda g: ())(graph) or ())
    unknown = [label for label in excluded if label not in graph]
    if unknown:
        raise PluginError(f"dataset {getattr(reader, 'name', '?')!r}: score_exclude names unknown label(s) {unknown}")
    return excluded


def prepare_experiment(config: ExperimentConfig, with_valid: bool = True) -> ExperimentData:
    """Load the splits, close training labels over the hierarchy, resolve policies and samples."""
    from hmlc.plugins import get_host
    from hmlc.policies import is_multiclass

    host = get_host()
    reader = host.dataset(config.data.dataset)
    graph = resolve_hierarchy(config, reader)
    policies = resolve_policies(config, graph)
    multiclass = is_multiclass(policies)
    check_backbone(config, getattr(reader, "input_kind", "image"))
    source = experiment_source(config, reader)
    loaded = source.load(config.data.train_split, graph.labels, graph)
    table, samples = source.training(config.data.train_split, loaded, config.data.limit)
    codes = table.codes()
    changed = {label: 0 for label in graph.labels}
    if config.data.closure.enabled:
        codes, changed = graph.closure(codes, negative_down=config.data.closure.negative_down)
    train = PreparedSplit(table, samples, codes)
    valid = None
    if with_valid and config.data.eval_split:
        v = source.load(config.data.eval_split, graph.labels, graph)
        # Validation labels are scored as the dataset's protocol says: as given (CheXpert), or
        # closed over the hierarchy (PadChest writes only the most specific term).
        valid_codes = v.table.codes()
        if getattr(reader, "default_eval_closure", False):
            valid_codes = graph.closure(valid_codes).codes
        valid = PreparedSplit(v.table, source.samples(config.data.eval_split, v), valid_codes)
    blank = config.data.blank or getattr(reader, "default_blank", "negative")
    return ExperimentData(
        graph, train, valid, policies, multiclass, blank, changed,
        preprocessor=getattr(source, "preprocessor", None), cache_entries=source.cache_entries,
        source=source, score_exclude=score_exclude(reader, graph),
    )


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
    from hmlc.data.cache import POOL_MIN_IMAGES, start_worker_server
    from hmlc.plugins import get_host

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    reader = get_host().dataset(config.data.dataset)
    check_experiment(config)
    graph = resolve_hierarchy(config, reader)
    names = list(splits) if splits else [config.data.train_split, *([config.data.eval_split] if config.data.eval_split else [])]
    names = list(dict.fromkeys(names))
    for name in names:
        reader.check_split(name)
    source = experiment_source(config, reader, cache_dir)
    loaded = {name: source.load(name, graph.labels, graph) for name in names}
    if workers != 1 and source.images_to_cache(loaded) >= max(POOL_MIN_IMAGES, 1):
        # The workers' server imports what decoding needs while the preprocessor fits (not when every
        # entry is complete: then no image is decoded).
        preprocessor = getattr(source, "preprocessor", None)
        start_worker_server([type(preprocessor).__module__] if preprocessor is not None else [])
    train_name = config.data.train_split
    source.fit(train_name, loaded.get(train_name) or source.load(train_name, graph.labels, graph))
    return source.build_caches(loaded, workers=workers, progress=progress)

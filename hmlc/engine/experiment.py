"""From a configuration to training-ready data: reader, hierarchy, closure, policies."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hmlc.config import ExperimentConfig
from hmlc.errors import ConfigError
from hmlc.hierarchy import LabelGraph

__all__ = [
    "PreparedSplit",
    "ExperimentData",
    "prepare_experiment",
    "check_experiment",
    "resolve_policies",
    "dataset_root",
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
    if config.data.preprocessor:
        host.preprocessor(config.data.preprocessor, **config.data.preprocessor_params)
    return graph


def _hierarchy(config: ExperimentConfig, reader: Any) -> LabelGraph:
    from hmlc.plugins import get_host

    hierarchy = config.hierarchy or reader.default_hierarchy
    if not hierarchy:
        raise ConfigError(
            f"dataset {config.data.dataset!r} has no default hierarchy; set hierarchy=NAME or a file "
            "(`hmlc list hierarchies`)"
        )
    return get_host().hierarchy(hierarchy)


def _load_split(reader: Any, split: str, config: ExperimentConfig, graph: LabelGraph, root: Path | None) -> Any:
    return reader.load(
        split, root=root, params=config.data.params, image_size=config.data.image_size, labels=graph.labels
    )


def prepare_experiment(config: ExperimentConfig, with_valid: bool = True) -> ExperimentData:
    """Load the splits, close training labels over the hierarchy, resolve policies."""
    from hmlc.plugins import get_host
    from hmlc.policies import is_multiclass

    host = get_host()
    check_experiment(config)
    reader = host.dataset(config.data.dataset)
    graph = _hierarchy(config, reader)
    policies = resolve_policies(config, graph)
    multiclass = is_multiclass(policies)
    root = dataset_root(config)
    train_split = _load_split(reader, config.data.train_split, config, graph, root)
    table = train_split.table
    if config.data.limit is not None and config.data.limit < len(table):
        idx = np.arange(config.data.limit)
        table = table.subset(idx)
        images = _SubsetImages(train_split.images, idx)
    else:
        images = train_split.images
    codes = table.codes()
    changed = {label: 0 for label in graph.labels}
    if config.data.closure.enabled:
        codes, changed = graph.closure(codes, negative_down=config.data.closure.negative_down)
    train = PreparedSplit(table, images, codes)
    valid = None
    if with_valid and config.data.eval_split:
        v = _load_split(reader, config.data.eval_split, config, graph, root)
        # Evaluation labels are scored as given: closure is a training-time step.
        valid = PreparedSplit(v.table, v.images, v.table.codes())
    if config.data.preprocessor:
        fn = host.preprocessor(config.data.preprocessor, **config.data.preprocessor_params)
        train.images = PreprocessedImages(train.images, fn)
        if valid is not None:
            valid.images = PreprocessedImages(valid.images, fn)
    blank = config.data.blank or getattr(reader, "default_blank", "negative")
    return ExperimentData(graph, train, valid, policies, multiclass, blank, changed)


class _SubsetImages:
    """The first N images of another image source."""

    def __init__(self, source: Any, indices: np.ndarray) -> None:
        self.source = source
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, i: int) -> np.ndarray:
        return self.source.read(int(self.indices[i]))


class PreprocessedImages:
    """Another image source with a preprocessor applied to every image it reads."""

    def __init__(self, source: Any, fn: Any) -> None:
        self.source = source
        self.fn = fn

    def __len__(self) -> int:
        return len(self.source)

    def read(self, i: int) -> np.ndarray:
        return self.fn(self.source.read(i))

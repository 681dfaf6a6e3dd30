"""The HMC benchmark suite (``suite.yaml``): datasets, published figures, recipe, methods and search grid.

``hmlc benchmark --suite hmc`` runs it (:func:`benchmark_suite` gives it in
the form the core's :mod:`hmlc.benchmark.suite` reads); the presets ``hmc/...``
are built from it (:mod:`hmlc_hmc.presets`). :func:`load_suite` reads and checks
the file: every mistake is one :class:`~hmlc.errors.ConfigError` line.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hmlc.errors import ConfigError
from hmlc_hmc import SUITE_FILE

__all__ = ["HmcSuite", "SuiteDataset", "load_suite", "benchmark_suite", "ONTOLOGIES"]

#: Dataset name suffix -> what labels it: the FunCat tree or the Gene Ontology DAG.
ONTOLOGIES: dict[str, str] = {"FUN": "FunCat tree", "GO": "Gene Ontology DAG"}
_KEYS = {"name", "description", "sources", "protocol", "recipe", "methods", "search", "datasets", "cost"}
_RECIPE = {
    "batch_size": int, "lr": float, "weight_decay": float, "hidden_layers": int, "dropout": float, "activation": str,
    "max_hidden_dim": int, "fused_adam": bool, "checkpoint_every_s": float,
}
_DATASET_KEYS = {"hidden_dim", "epochs", "published_auprc"}
#: hmlc's own departures for one dataset, measured on valid (suite.yaml says why): its learning rate and the
#: fractions of its C-HMCNN epochs its search scores, in place of the recipe's and search.epochs.
_DEPARTURES = {"lr", "search_epochs"}


@dataclass(frozen=True)
class SuiteDataset:
    """One dataset of the suite.

    ``hidden_dim`` and ``epochs`` are C-HMCNN's when ``from_paper`` (main.py),
    else the median of its choices for the same ontology; ``width`` is the
    hidden size hmlc trains (``hidden_dim`` up to the recipe's ``max_hidden_dim``).
    ``lr`` and ``search_epochs``, where given, replace the recipe's learning
    rate and the suite's search fractions for this dataset alone.
    """

    name: str
    ontology: str
    hidden_dim: int
    epochs: int
    published_auprc: float | None
    from_paper: bool
    width: int
    lr: float | None = None
    search_epochs: tuple[float, ...] | None = None

    def epochs_grid(self, fractions: tuple[float, ...]) -> list[int]:
        """The numbers of epochs the search scores: ``fractions`` of C-HMCNN's epochs (the dataset's own
        ``search_epochs`` where given), rounded, at least 1."""
        return sorted({max(1, round(f * self.epochs)) for f in self.search_epochs or fractions})


@dataclass(frozen=True)
class HmcSuite:
    """The whole suite, checked."""

    name: str
    description: str
    sources: Mapping[str, str]
    protocol: Mapping[str, Any]
    recipe: Mapping[str, Any]
    methods: tuple[str, ...]
    grid: Mapping[str, tuple[Any, ...]]
    #: The fractions of each dataset's C-HMCNN epochs the search scores on valid.
    epochs: tuple[float, ...]
    datasets: Mapping[str, SuiteDataset]
    #: Ontology -> {"hidden_dim", "epochs"}: the medians of C-HMCNN's choices, for datasets it did not tune.
    defaults: Mapping[str, Mapping[str, int]]
    #: Dataset -> seconds its three units took in a measured run: only orders the work under --jobs.
    cost: Mapping[str, float]

    def published(self) -> dict[str, float]:
        """Dataset -> C-HMCNN's published test AU(PRC), for the datasets that have one."""
        return {n: d.published_auprc for n, d in self.datasets.items() if d.published_auprc is not None}


def load_suite(path: str | Path = SUITE_FILE) -> HmcSuite:
    """Read and check a suite file (default: the one shipped with the plugin)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read suite file {path}: {exc}") from None
    where = f"suite file {path}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(sorted(_KEYS))}")
    missing, extra = _KEYS - set(data), set(data) - _KEYS
    if missing or extra:
        raise ConfigError(f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(extra)}")
    recipe = _checked_recipe(where, data["recipe"])
    methods = data["methods"]
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise ConfigError(f"{where}: 'methods' must be a non-empty list of train.method names")
    search = data["search"] if isinstance(data["search"], dict) else {}
    grid = search.get("grid")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{where}: 'search.grid' must map --set keys to non-empty lists of values")
    if "train.epochs" in grid:
        raise ConfigError(f"{where}: search.grid cannot list train.epochs; give search.epochs (fractions)")
    fractions = search.get("epochs")
    if not _are_fractions(fractions):
        raise ConfigError(f"{where}: 'search.epochs' must list fractions of C-HMCNN's epochs (numbers above 0)")
    datasets, defaults = _checked_datasets(where, data["datasets"], recipe["max_hidden_dim"])
    cost = data["cost"]
    if not isinstance(cost, dict) or not set(cost) <= set(datasets) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in cost.values()
    ):
        raise ConfigError(f"{where}: 'cost' must map dataset names of the suite to positive numbers (seconds)")
    return HmcSuite(
        name=str(data["name"]),
        description=str(data["description"]),
        sources=dict(data["sources"]),
        protocol=dict(data["protocol"]),
        recipe=recipe,
        methods=tuple(methods),
        grid={str(k): tuple(v) for k, v in grid.items()},
        epochs=tuple(float(f) for f in fractions),
        datasets=datasets,
        defaults=defaults,
        cost={str(k): float(v) for k, v in cost.items()},
    )


def _are_fractions(value: Any) -> bool:
    """A non-empty list of numbers above 0 (fractions of C-HMCNN's epochs)."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f for f in value
    )


def _checked_recipe(where: str, recipe: Any) -> dict[str, Any]:
    if not isinstance(recipe, dict) or set(recipe) != set(_RECIPE):
        raise ConfigError(f"{where}: 'recipe' must hold exactly {', '.join(sorted(_RECIPE))}")
    for key, kind in _RECIPE.items():
        value = recipe[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            recipe[key] = value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ConfigError(f"{where}: recipe.{key} must be {kind.__name__}, got {value!r}")
    return dict(recipe)


def _checked_datasets(
    where: str, entries: Any, max_hidden_dim: int
) -> tuple[dict[str, SuiteDataset], dict[str, dict[str, int]]]:
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{where}: 'datasets' must map dataset names to their settings")
    for name, entry in entries.items():
        ontology = str(name).rsplit("_", 1)[-1]
        if ontology not in ONTOLOGIES:
            raise ConfigError(f"{where}: dataset {name!r} must end in _FUN or _GO")
        entry = entry or {}
        if not isinstance(entry, dict) or not set(entry) <= _DATASET_KEYS | _DEPARTURES:
            raise ConfigError(f"{where}: dataset {name!r} takes only {', '.join(sorted(_DATASET_KEYS | _DEPARTURES))}")
        if entry and set(entry) - _DEPARTURES != _DATASET_KEYS:
            raise ConfigError(f"{where}: dataset {name!r} needs all of {', '.join(sorted(_DATASET_KEYS))} or none")
        for key in ("hidden_dim", "epochs"):
            if key in entry and (not isinstance(entry[key], int) or entry[key] < 1):
                raise ConfigError(f"{where}: {name}.{key} must be a positive integer, got {entry[key]!r}")
        lr = entry.get("lr")
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < 1):
            raise ConfigError(f"{where}: {name}.lr must be a learning rate in (0, 1), got {lr!r}")
        if entry.get("search_epochs") is not None and not _are_fractions(entry["search_epochs"]):
            raise ConfigError(f"{where}: {name}.search_epochs must list fractions of its epochs (numbers above 0)")
        figure = entry.get("published_auprc")
        if figure is not None and not (isinstance(figure, float) and 0.0 < figure < 1.0):
            raise ConfigError(f"{where}: {name}.published_auprc must be a number in (0, 1), got {figure!r}")
    defaults: dict[str, dict[str, int]] = {}
    for ontology in ONTOLOGIES:
        chosen = [e for n, e in entries.items() if n.endswith("_" + ontology) and e]
        if chosen:
            defaults[ontology] = {
                key: int(statistics.median_low(e[key] for e in chosen)) for key in ("hidden_dim", "epochs")
            }
    out: dict[str, SuiteDataset] = {}
    for name, entry in entries.items():
        ontology = name.rsplit("_", 1)[-1]
        if not entry and ontology not in defaults:
            raise ConfigError(f"{where}: no {ontology} dataset has settings to take {name}'s defaults from")
        settings = entry or defaults[ontology]
        out[name] = SuiteDataset(
            name=name,
            ontology=ontology,
            hidden_dim=settings["hidden_dim"],
            epochs=settings["epochs"],
            published_auprc=entry.get("published_auprc") if entry else None,
            from_paper=bool(entry),
            width=min(settings["hidden_dim"], max_hidden_dim),
            lr=float(entry["lr"]) if entry.get("lr") is not None else None,
            search_epochs=tuple(float(f) for f in entry["search_epochs"]) if entry.get("search_epochs") else None,
        )
    return out, defaults


def benchmark_suite(suite: HmcSuite | None = None) -> dict[str, Any]:
    """The suite as ``hmlc benchmark --suite hmc`` takes it (the hook ``hmlc_register_benchmark_suites``).

    Each run starts from the preset ``hmc/<dataset>/<method>`` (C-HMCNN's recipe
    with its hidden size and epochs for the dataset) with ``data.root`` set to
    ``--data``; each dataset's search scores ``search.epochs`` (fractions) of its
    C-HMCNN epochs; the protocol and C-HMCNN's published figures come from the suite file.
    """
    suite = suite or load_suite()
    return {
        "description": " ".join(suite.description.split()),
        "reference": {"name": "C-HMCNN", "source": " ".join(suite.sources["figures"].split()),
                      "seeds": int(suite.protocol.get("seeds", 0)) or None},
        "datasets": {
            name: {"reference": d.published_auprc, "grid": {"train.epochs": d.epochs_grid(suite.epochs)},
                   **({"cost": suite.cost[name]} if name in suite.cost else {})}
            for name, d in suite.datasets.items()
        },
        "methods": list(suite.methods),
        "config": {"preset": "hmc/{dataset}/{method}", "set": ["data.root={data}"]},
        "grid": {key: list(values) for key, values in suite.grid.items()},
        "protocol": {
            "selection": dict(suite.protocol["selection"]),
            "final": dict(suite.protocol["final"]),
            "metric": suite.protocol["metric"],
        },
    }

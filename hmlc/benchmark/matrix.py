"""``hmlc benchmark --config FILE``: every experiment's model scored on every evaluation dataset.

The benchmark file (YAML) lists experiments (a training configuration, or a
given checkpoint) and evaluation datasets (a registered reader, its root,
params and split, and per experiment hierarchy the label map that relates
the two). Everything is checked before anything trains; then each
experiment is trained into ``OUT/runs/<name>`` (continued when an earlier
call stopped), each cell (experiment x dataset) predicted, mapped and scored,
and one matrix written after every cell: matrix.md, matrix.csv,
matrix.json and matrix.png. A cell already scored for the same experiment,
dataset, map and bootstrap settings is read back, never recomputed; one
whose entry in the file changed is computed again (docs/benchmarking.md).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hmlc.benchmark.common import (
    EvalSplit,
    Scores,
    check_out_folder,
    fmt,
    fingerprint,
    load_eval_split,
    lock_out_folder,
    predict_split,
    read_json,
    say,
    score,
    train_run,
)
from hmlc.errors import ConfigError

__all__ = ["BenchmarkFile", "Experiment", "EvalDataset", "read_benchmark_file", "plan_matrix", "run_matrix"]

_TOP_KEYS = {"experiments", "datasets", "bootstrap", "seed", "description"}
_EXPERIMENT_KEYS = {"name", "config", "preset", "set", "checkpoint"}
_DATASET_KEYS = {"name", "dataset", "root", "params", "split", "hierarchy", "closure", "label_maps", "labels"}


@dataclass
class Experiment:
    """One row of the matrix: a model to train (config/preset + overrides) or a given checkpoint."""

    name: str
    entry: dict[str, Any]
    config: Any = None  # ExperimentConfig when trained
    checkpoint: Path | None = None  # when given
    hierarchy: str = ""
    labels: tuple[str, ...] = ()


@dataclass
class EvalDataset:
    """One column of the matrix: a split of a registered dataset and the maps into it."""

    name: str
    entry: dict[str, Any]
    label_maps: dict[str, str]
    split: EvalSplit | None = None


@dataclass
class BenchmarkFile:
    """A checked benchmark file."""

    path: Path
    experiments: list[Experiment]
    datasets: list[EvalDataset]
    bootstrap: int
    seed: int
    description: str = ""
    #: (experiment, dataset) -> (map name or None, "predictions" / "labels" / "same")
    maps: dict[tuple[str, str], tuple[str | None, str]] = field(default_factory=dict)


def _where(path: Path) -> str:
    return f"benchmark file {path}"


def _name(value: Any, where: str) -> str:
    from hmlc.engine.ablation import slug

    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: 'name' must be a non-empty text, got {value!r}")
    if slug(value) != value:
        raise ConfigError(f"{where}: name {value!r} may hold only letters, digits, '-' and '_' (it names a folder)")
    return value


def _keys(entry: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping with keys among {', '.join(sorted(allowed))}")
    unknown = sorted(set(map(str, entry)) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(sorted(allowed))}")
    return entry


def _entry(raw: Any, allowed: set[str], position: str, kind: str) -> tuple[dict[str, Any], str, str]:
    """A list entry of the file as (a copy, its name, how errors name it), its keys and name checked."""
    entry = dict(_keys(raw, allowed, position))
    name = _name(entry.get("name"), position)
    return entry, name, f"{kind} {name!r}"


def _relative(base: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def read_benchmark_file(path: Path) -> BenchmarkFile:
    """Parse and check the file's shape (names, keys, types); registries are consulted by :func:`plan_matrix`."""
    from hmlc.yamlio import load_yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"benchmark file {path} does not exist; give the YAML file listing experiments and datasets") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read benchmark file {path}: {exc}") from None
    where = _where(path)
    data = _keys(load_yaml(text, where, ConfigError), _TOP_KEYS, where)
    for key in ("experiments", "datasets"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise ConfigError(f"{where}: '{key}' must be a non-empty list (see docs/benchmarking.md)")
    base = path.parent
    experiments: list[Experiment] = []
    for i, raw in enumerate(data["experiments"]):
        entry, name, here = _entry(raw, _EXPERIMENT_KEYS, f"{where}: experiments[{i}]", f"{where}: experiment")
        given = [k for k in ("config", "preset", "checkpoint") if entry.get(k) is not None]
        sets = entry.get("set") or []
        if "checkpoint" in given and len(given) > 1 or not given and not sets:
            raise ConfigError(
                f"{here}: give 'checkpoint' (a trained model), or 'config', 'preset' and/or 'set' to train"
            )
        if not isinstance(sets, list) or not all(isinstance(s, str) and "=" in s for s in sets):
            raise ConfigError(f"{here}: 'set' must be a list of KEY=VALUE overrides, e.g. [train.epochs=3]")
        if "checkpoint" in given and sets:
            raise ConfigError(f"{here}: 'set' applies to training; a given checkpoint is used as it is")
        for key in ("config", "checkpoint"):
            if entry.get(key) is not None:
                entry[key] = str(_relative(base, entry[key], f"{here}: '{key}'"))
        entry["set"] = list(sets)
        experiments.append(Experiment(name, entry))
    datasets: list[EvalDataset] = []
    for i, raw in enumerate(data["datasets"]):
        entry, name, here = _entry(raw, _DATASET_KEYS, f"{where}: datasets[{i}]", f"{where}: dataset")
        for key in ("dataset", "split"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError(f"{here}: '{key}' is required (a registered dataset and one of its splits)")
        if entry.get("root") is not None:
            entry["root"] = str(_relative(base, entry["root"], f"{here}: 'root'"))
        if not isinstance(entry.get("params") or {}, dict):
            raise ConfigError(f"{here}: 'params' must be a mapping of the reader's parameters")
        entry["params"] = dict(entry.get("params") or {})
        if entry.get("closure") is not None and not isinstance(entry["closure"], bool):
            raise ConfigError(f"{here}: 'closure' must be true or false")
        chosen = entry.get("labels")
        if chosen is not None and (not isinstance(chosen, list) or not chosen
                                   or not all(isinstance(x, str) and x for x in chosen)):
            raise ConfigError(f"{here}: 'labels' must be a non-empty list of the dataset's label names")
        maps = entry.get("label_maps") or {}
        if not isinstance(maps, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in maps.items()):
            raise ConfigError(f"{here}: 'label_maps' must map an experiment's hierarchy to a label map name")
        datasets.append(EvalDataset(name, entry, dict(maps)))
    for kind, items in (("experiment", experiments), ("dataset", datasets)):
        names = [item.name for item in items]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"{where}: {kind} name(s) {', '.join(repeated)} given more than once")
    bootstrap, seed = data.get("bootstrap", 2000), data.get("seed", 0)
    if not isinstance(bootstrap, int) or isinstance(bootstrap, bool) or not isinstance(seed, int):
        raise ConfigError(f"{where}: 'bootstrap' and 'seed' must be integers")
    from hmlc.evaluation.bootstrap import check_resamples

    check_resamples(bootstrap, 0)
    return BenchmarkFile(path, experiments, datasets, bootstrap, seed, str(data.get("description") or ""))


def plan_matrix(path: Path, out: Path) -> BenchmarkFile:
    """The checked benchmark: every name resolved, every split read, every map checked; trains nothing."""
    from hmlc.cli.paths import checkpoint_inputs, experiment_inputs
    from hmlc.config import load_config
    from hmlc.engine.experiment import check_experiment
    from hmlc.engine.predictor import resolve_checkpoint
    from hmlc.plugins import get_host
    from hmlc.models.checkpoint import read_checkpoint_metadata

    bench = read_benchmark_file(path)
    inputs: list[Path | None] = [bench.path]
    roots: list[Path | None] = []
    for exp in bench.experiments:
        e = exp.entry
        if e.get("checkpoint"):
            exp.checkpoint = resolve_checkpoint(e["checkpoint"])
            meta = read_checkpoint_metadata(exp.checkpoint)
            exp.hierarchy, exp.labels = str(meta.get("hierarchy_name") or ""), tuple(meta["labels"])
            inputs += checkpoint_inputs([Path(e["checkpoint"])])
        else:
            config_path = Path(e["config"]) if e.get("config") else None
            exp.config = load_config(config_path, e.get("preset"), [*e["set"], f"output.name={exp.name}"],
                                     presets=get_host().preset)
            graph = check_experiment(exp.config)
            exp.hierarchy, exp.labels = graph.name, tuple(graph.labels)
            inputs += experiment_inputs(exp.config, config_path)
    for ds in bench.datasets:
        e = ds.entry
        ds.split = load_eval_split(
            e["dataset"], e["split"], root=Path(e["root"]) if e.get("root") else None, params=e["params"],
            hierarchy=e.get("hierarchy"), closure=e.get("closure"),
        )
        roots.append(ds.split.root)
        unknown = [x for x in e.get("labels") or () if x not in ds.split.labels]
        if unknown:
            raise ConfigError(
                f"{_where(bench.path)}: dataset {ds.name!r}: labels {', '.join(map(repr, unknown))} are not in its "
                f"hierarchy {ds.split.hierarchy!r} (`hmlc hierarchy show {ds.split.hierarchy}`)"
            )
    for ds in bench.datasets:
        for exp in bench.experiments:
            bench.maps[exp.name, ds.name] = _cell_map(bench.path, exp, ds)
    check_out_folder(out, inputs, roots)
    return bench


def _cell_map(path: Path, exp: Experiment, ds: EvalDataset) -> tuple[str | None, str]:
    """The label map relating ``exp``'s model to ``ds``, and what it maps ("predictions" or "labels")."""
    from hmlc.labelmaps import resolve_label_map

    assert ds.split is not None
    mine, theirs = exp.hierarchy, ds.split.hierarchy
    name = ds.label_maps.get(mine)
    if name is None:
        if mine == theirs:
            return None, "same"
        maps = ", ".join(f"{k}: {v}" for k, v in ds.label_maps.items()) or "none"
        raise ConfigError(
            f"{_where(path)}: dataset {ds.name!r} (hierarchy {theirs!r}) has no label map for experiment "
            f"{exp.name!r}'s hierarchy {mine!r} (its label_maps: {maps}); add label_maps: {{{mine}: MAP}} "
            "(`hmlc list label_maps`)"
        )
    label_map = resolve_label_map(name)
    if (label_map.source, label_map.target) == (mine, theirs):
        return name, "predictions"
    if (label_map.source, label_map.target) == (theirs, mine):
        return name, "labels"
    raise ConfigError(
        f"{_where(path)}: dataset {ds.name!r}: label map {name!r} maps {label_map.source!r} -> "
        f"{label_map.target!r}, but it must relate experiment {exp.name!r}'s hierarchy {mine!r} and the "
        f"dataset's {theirs!r} (either way round)"
    )


def map_cell(
    direction: str, map_name: str | None, probs: np.ndarray, model_labels: tuple[str, ...], split: EvalSplit
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict[str, list[str]]]:
    """(truth codes, probabilities, shared labels, unmapped labels) of one cell.

    ``direction`` "predictions" maps the model's probabilities into the
    dataset's labels, "labels" maps the dataset's truth into the model's,
    "same" takes the labels both have. Unmapped: the model's labels and the
    dataset's labels that take no part in the scores.
    """
    from hmlc.labelmaps import resolve_label_map

    if direction == "same":
        shared = tuple(label for label in split.labels if label in model_labels)
        p = probs[:, [model_labels.index(label) for label in shared]]
        c = split.codes[:, [split.labels.index(label) for label in shared]]
        unmapped = {
            "model": [label for label in model_labels if label not in shared],
            "dataset": [label for label in split.labels if label not in shared],
        }
        return c, p, shared, unmapped
    label_map = resolve_label_map(str(map_name))
    shared = label_map.target_labels
    if direction == "predictions":
        p = label_map.map_probabilities(probs, model_labels)
        c = split.codes[:, [split.labels.index(label) for label in shared]]
        unmapped = {
            "model": label_map.unmapped_sources(model_labels),
            "dataset": [label for label in split.labels if label not in shared],
        }
    else:
        c = label_map.map_codes(split.codes, split.labels)
        p = probs[:, [model_labels.index(label) for label in shared]]
        unmapped = {
            "model": [label for label in model_labels if label not in shared],
            "dataset": label_map.unmapped_sources(split.labels),
        }
    return c, p, shared, unmapped


def _chosen(
    chosen: list[str] | None, direction: str, codes: np.ndarray, probs: np.ndarray, shared: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The shared labels restricted to the dataset's ``labels`` (names of the dataset's hierarchy).

    When the truth is mapped into the model's labels the names are the model's: nothing is restricted.
    """
    if not chosen or direction == "labels":
        return codes, probs, shared
    keep = [k for k, label in enumerate(shared) if label in chosen]
    return codes[:, keep], probs[:, keep], tuple(shared[k] for k in keep)


def _cell_key(bench: BenchmarkFile, exp: Experiment, ds: EvalDataset, checkpoint: Path) -> str:
    """What a cell's result depends on: both entries of the file, the map, the bootstrap, the model's metadata."""
    meta = (checkpoint / "meta.json").read_bytes() if (checkpoint / "meta.json").is_file() else b""
    import hashlib

    return fingerprint({
        "experiment": exp.entry, "dataset": ds.entry, "map": bench.maps[exp.name, ds.name],
        "bootstrap": bench.bootstrap, "seed": bench.seed, "model": hashlib.sha256(meta).hexdigest(),
    })


def run_matrix(path: Path, out: Path) -> dict[str, Any]:
    """Plan (every check first), then train, predict and score every cell; returns matrix.json's content."""
    bench = plan_matrix(path, out)
    out = Path(out)
    holder = lock_out_folder(out)
    try:
        return _run(bench, out)
    finally:
        holder.release()


def _run(bench: BenchmarkFile, out: Path) -> dict[str, Any]:
    from hmlc.engine.rundir import write_json

    cells: dict[str, dict[str, Any]] = {}
    n = len(bench.experiments) * len(bench.datasets)
    i = 0
    _write(bench, out, cells)
    for exp in bench.experiments:
        if exp.checkpoint is not None:
            checkpoint = exp.checkpoint
        else:
            say(f"== experiment {exp.name} ({out / 'runs' / exp.name})")
            run_dir, completed, _ = train_run(exp.config, out / "runs", "hmlc benchmark")
            if not completed:  # pragma: no cover - train() completes or raises
                raise ConfigError(f"experiment {exp.name} did not complete; run hmlc benchmark again")
            checkpoint = run_dir / "checkpoints" / "last"
        for ds in bench.datasets:
            i += 1
            assert ds.split is not None
            key = _cell_key(bench, exp, ds, checkpoint)
            cell_file = out / "cells" / f"{exp.name}--{ds.name}.json"
            earlier = read_json(cell_file)
            if isinstance(earlier, dict) and earlier.get("key") == key:
                cells.setdefault(exp.name, {})[ds.name] = earlier
                say(f"[cell {i}/{n}] {exp.name} on {ds.name}: scored earlier ({_shown(earlier)})")
                continue
            t0 = time.perf_counter()
            probs, model_labels = predict_split(checkpoint, ds.split)
            map_name, direction = bench.maps[exp.name, ds.name]
            codes, mapped, shared, unmapped = map_cell(direction, map_name, probs, model_labels, ds.split)
            codes, mapped, shared = _chosen(ds.entry.get("labels"), direction, codes, mapped, shared)
            scores = score(ds.split.ids, codes, mapped, shared, exclude=ds.split.score_exclude,
                           n_boot=bench.bootstrap, seed=bench.seed)
            cell = {
                "key": key, "experiment": exp.name, "dataset": ds.name, "checkpoint": str(checkpoint),
                "train_hierarchy": exp.hierarchy, "eval_hierarchy": ds.split.hierarchy, "label_map": map_name,
                "mapped": direction, "truth_closed": ds.split.closed, "unmapped": unmapped,
                "seconds": round(time.perf_counter() - t0, 2), **scores.to_json(),
            }
            write_json(cell_file, cell)
            cells.setdefault(exp.name, {})[ds.name] = cell
            _write(bench, out, cells)
            say(f"[cell {i}/{n}] {exp.name} on {ds.name}: {_shown(cell)}  {cell['seconds']:.1f}s")
    return _write(bench, out, cells)



def _shown(cell: Mapping[str, Any]) -> str:
    ci = cell["mean_auc_ci"]
    return (f"mean AUC {fmt(cell['mean_auc'])} [{fmt(ci[0])}, {fmt(ci[1])}] over "
            f"{len(cell['mean_over'])} label(s), n = {cell['n']}")


def _write(bench: BenchmarkFile, out: Path, cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """matrix.json, matrix.csv, matrix.md and matrix.png from the cells scored so far (atomic writes)."""
    from hmlc.engine.rundir import atomic_write_bytes, atomic_write_text, write_json

    exps = [e.name for e in bench.experiments]
    dss = [d.name for d in bench.datasets]
    doc = {
        "benchmark_file": str(bench.path), "description": bench.description,
        "experiments": {e.name: {"hierarchy": e.hierarchy, **{k: v for k, v in e.entry.items() if k != "name"}}
                        for e in bench.experiments},
        "datasets": {d.name: {"hierarchy": d.split.hierarchy if d.split else None,
                              **{k: v for k, v in d.entry.items() if k != "name"}} for d in bench.datasets},
        "bootstrap": {"resamples": bench.bootstrap, "seed": bench.seed, "level": 0.95},
        "complete": all(d in cells.get(e, {}) for e in exps for d in dss),
        "cells": {e: {d: {k: v for k, v in c.items() if k != "key"} for d, c in cells.get(e, {}).items()} for e in exps},
    }
    write_json(out / "matrix.json", doc)
    atomic_write_text(out / "matrix.csv", _csv(cells, exps, dss))
    atomic_write_text(out / "matrix.md", _markdown(bench, cells, exps, dss))
    from hmlc.benchmark.plots import heatmap_png

    values = np.array([[_mean(cells, e, d) for d in dss] for e in exps], dtype=float)
    atomic_write_bytes(out / "matrix.png", heatmap_png(values, exps, dss, "mean AUC over shared labels"))
    return doc


def _mean(cells: Mapping[str, Mapping[str, Any]], e: str, d: str) -> float:
    cell = cells.get(e, {}).get(d)
    return math.nan if cell is None or cell["mean_auc"] is None else float(cell["mean_auc"])


def _csv(cells: Mapping[str, Mapping[str, Any]], exps: list[str], dss: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["experiment", "dataset", "label", "auc", "ci_low", "ci_high", "n_pos", "n_neg"])
    for e in exps:
        for d in dss:
            cell = cells.get(e, {}).get(d)
            if cell is None:
                continue
            for label, r in cell["labels"].items():
                writer.writerow([e, d, label, _cell_num(r["auc"]), _cell_num(r["ci"][0]), _cell_num(r["ci"][1]),
                                 r["n_pos"], r["n_neg"]])
            ci = cell["mean_auc_ci"]
            writer.writerow([e, d, "mean", _cell_num(cell["mean_auc"]), _cell_num(ci[0]), _cell_num(ci[1]), "", ""])
    return buf.getvalue()


def _cell_num(x: float | None) -> str:
    return "" if x is None else f"{x:.6f}"


def _markdown(bench: BenchmarkFile, cells: Mapping[str, Mapping[str, Any]], exps: list[str], dss: list[str]) -> str:
    lines = ["# Cross-dataset benchmark", ""]
    if bench.description:
        lines += [bench.description, ""]
    lines += [
        f"Benchmark file: `{bench.path}`. Rows: the experiment a model was trained in; columns: the dataset it "
        f"was evaluated on. Cells: mean AUC over the labels both share (through the label map) with its 95 % "
        f"bootstrap interval ({bench.bootstrap} resamples, seed {bench.seed}).",
        "",
        "| trained \\ evaluated | " + " | ".join(dss) + " |",
        "|---|" + "---|" * len(dss),
    ]
    for e in exps:
        row = []
        for d in dss:
            cell = cells.get(e, {}).get(d)
            if cell is None:
                row.append("not yet scored")
            else:
                ci = cell["mean_auc_ci"]
                row.append(f"{fmt(cell['mean_auc'])} [{fmt(ci[0])}, {fmt(ci[1])}]")
        lines.append(f"| {e} | " + " | ".join(row) + " |")
    for e in exps:
        for d in dss:
            cell = cells.get(e, {}).get(d)
            if cell is None:
                continue
            how = ("same hierarchy, no map" if cell["mapped"] == "same"
                   else f"label map `{cell['label_map']}` applied to the {cell['mapped']}")
            lines += ["", f"## {e} on {d}", "",
                      f"{cell['train_hierarchy']} -> {cell['eval_hierarchy']}: {how}; n = {cell['n']}"
                      + ("; truth closed over the hierarchy" if cell["truth_closed"] else ""), "",
                      "| label | AUC | 95 % CI | pos | neg |", "|---|---|---|---|---|"]
            for label, r in cell["labels"].items():
                lines.append(f"| {label} | {fmt(r['auc'])} | {fmt(r['ci'][0])}-{fmt(r['ci'][1])} | "
                             f"{r['n_pos']} | {r['n_neg']} |")
            ci = cell["mean_auc_ci"]
            lines.append(f"| **mean** | **{fmt(cell['mean_auc'])}** | {fmt(ci[0])}-{fmt(ci[1])} | | |")
            for side, what in (("model", "model labels not mapped"), ("dataset", "dataset labels not scored")):
                left = cell["unmapped"][side]
                lines += ["", f"{what} ({len(left)}): {', '.join(left) if left else 'none'}"]
    return "\n".join(lines) + "\n"

"""``hmlc benchmark --suite NAME``: a registered suite of datasets x methods under a published protocol.

A plugin registers a suite (hook ``hmlc_register_benchmark_suites``) as a dict::

    description: ...
    reference: {name: C-HMCNN, source: "...", seeds: 10}  # whose published figures, over how many seeds
    datasets: {cellcycle_FUN: {reference: 0.255, grid: {train.epochs: [53, 106, 159]}, cost: 260}, pheno_FUN: {}}
    methods: [flat, ct, chmcnn]
    config: {preset: "hmc/{dataset}/{method}", set: ["data.root={data}"]}  # templates
    grid: {model.backbone_params.width: [250, 500, 1000], train.epochs: [25, 50, 100]}  # for every dataset
    protocol:
      selection: {train_split: train, eval_split: valid}
      final: {train_split: trainvalid, eval_split: test}
      metric: micro_auprc     # or macro_auprc, mean_auc

A dataset's own ``grid`` replaces the suite's values for the keys it names
(``--grid`` replaces both). Its ``cost`` (optional, any positive number, e.g. the
seconds its units took) only orders the work: with ``jobs`` > 1 the costliest
units start first, so that the last to finish are short ones and no worker
waits long for the others at the end. For every dataset x method x seed (a *unit*):
each setting of the grid (the keys other than ``train.epochs``) is trained
once on the selection train split, for the largest number of epochs, and
scored on the selection eval split after each
number of epochs the grid lists (the training stops there, the checkpoint is
scored, the training continues); the best (setting, epochs) by the metric is
trained on the final train split and scored on the final eval split once.
Labels the dataset's protocol excludes (``score_exclude``) are left out of
every score. Every run and score is kept under ``OUT``: a second call with
the same arguments continues where the first stopped. With several seeds,
each method's seeds are also scored as one ensemble (the mean of their final
models' probabilities) once the last of them is done.

Units are independent: ``jobs`` > 1 runs them in that many worker processes
(spawned; each gets ``cores // jobs`` torch threads unless ``train.threads``
is set), each unit's training output going to ``runs/<dataset>/<method>/seed<k>/log.txt``;
the main process prints one line per scored point and per finished unit, a
progress line every minute, and alone writes the results files.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hmlc.benchmark.common import (
    EvalSplit,
    check_out_folder,
    fmt,
    fingerprint,
    load_eval_split,
    lock_out_folder,
    predict_split,
    read_json,
    say,
    train_run,
)
from hmlc.evaluation.evaluator import json_number
from hmlc.errors import ConfigError, DataError, HmlcError, PluginError

__all__ = ["BenchmarkSuite", "suite_from_object", "resolve_suite", "protocol_scores", "run_suite", "METRICS"]

#: metric name -> what it is
METRICS: dict[str, str] = {
    "micro_auprc": "micro-averaged AU(PRC)",
    "macro_auprc": "macro-averaged AU(PRC)",
    "mean_auc": "mean AUC",
}
EPOCHS_KEY = "train.epochs"
_KEYS = {"description", "reference", "datasets", "methods", "config", "grid", "protocol"}


@dataclass(frozen=True)
class BenchmarkSuite:
    """A checked suite (see the module docstring for the registered form)."""

    name: str
    description: str
    datasets: Mapping[str, float | None]  # dataset -> the reference's published figure (None: none)
    dataset_grids: Mapping[str, Mapping[str, tuple[Any, ...]]]  # dataset -> its own grid values (replace the suite's)
    costs: Mapping[str, float]  # dataset -> its relative cost (given ones only): costliest first under --jobs
    methods: tuple[str, ...]
    preset: str | None
    sets: tuple[str, ...]
    grid: Mapping[str, tuple[Any, ...]]
    selection: tuple[str, str]  # (train split, eval split)
    final: tuple[str, str]
    metric: str
    reference_name: str
    reference_source: str
    reference_seeds: int | None

    def config_overrides(self, dataset: str, method: str, data: Path | None) -> list[str]:
        """The suite's ``--set`` overrides for one dataset and method (``{data}``: the --data folder)."""
        values = {"dataset": dataset, "method": method, "data": str(data) if data else ""}
        return [s.format(**values) for s in self.sets if data is not None or "{data}" not in s]

    def grid_for(self, dataset: str) -> dict[str, tuple[Any, ...]]:
        """The grid searched for ``dataset``: the suite's, with the dataset's own values in place."""
        return {**self.grid, **self.dataset_grids.get(dataset, {})}


def suite_from_object(name: str, obj: Any, plugin: str = "?") -> BenchmarkSuite:
    """Check a registered suite; every problem is one :class:`PluginError` naming the suite and its plugin."""
    where = f"benchmark suite {name!r} (plugin {plugin!r})"
    if callable(obj):
        obj = obj()
    if isinstance(obj, (str, Path)):
        from hmlc.plugins.registry import read_yaml_mapping

        obj = read_yaml_mapping(Path(obj), f"{where} file")
    if not isinstance(obj, dict):
        raise PluginError(f"{where} is a {type(obj).__name__}; register a dict (docs/hooks.md)")
    missing, extra = {"datasets", "methods", "config", "grid", "protocol"} - set(obj), set(obj) - _KEYS
    if missing or extra:
        raise PluginError(f"{where}: missing key(s) {sorted(missing)}, unknown key(s) {sorted(extra)}")
    datasets = obj["datasets"]
    if not isinstance(datasets, dict) or not datasets:
        raise PluginError(f"{where}: 'datasets' must map dataset names to {{reference: figure or null}}")
    figures: dict[str, float | None] = {}
    dataset_grids: dict[str, dict[str, tuple[Any, ...]]] = {}
    costs: dict[str, float] = {}
    for ds, entry in datasets.items():
        entry = entry or {}
        figure = entry.get("reference") if isinstance(entry, dict) else "?"
        if not isinstance(entry, dict) or set(entry) - {"reference", "grid", "cost"} or not (
            figure is None or isinstance(figure, (int, float)) and not isinstance(figure, bool)
        ):
            raise PluginError(
                f"{where}: dataset {ds!r} takes only 'reference' (a number or null), 'grid' and 'cost'"
            )
        figures[str(ds)] = None if figure is None else float(figure)
        cost = entry.get("cost")
        if cost is not None:
            if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 < cost < math.inf:
                raise PluginError(f"{where}: dataset {ds!r}: 'cost' must be a positive number, got {cost!r}")
            costs[str(ds)] = float(cost)
        own = entry.get("grid") or {}
        if not isinstance(own, dict) or not all(isinstance(v, list) and v for v in own.values()):
            raise PluginError(f"{where}: dataset {ds!r}: 'grid' must map --set keys to non-empty lists of values")
        if EPOCHS_KEY in own and not all(isinstance(v, int) and v > 0 for v in own[EPOCHS_KEY]):
            raise PluginError(f"{where}: dataset {ds!r}: grid {EPOCHS_KEY} must list positive integers")
        if own:
            dataset_grids[str(ds)] = {str(k): tuple(v) for k, v in own.items()}
    methods = obj["methods"]
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) and m for m in methods):
        raise PluginError(f"{where}: 'methods' must be a non-empty list of names")
    config = obj["config"]
    if not isinstance(config, dict) or set(config) - {"preset", "set"}:
        raise PluginError(f"{where}: 'config' takes 'preset' (a template) and 'set' (a list of KEY=VALUE templates)")
    sets = config.get("set") or []
    if not isinstance(sets, list) or not all(isinstance(s, str) and "=" in s for s in sets):
        raise PluginError(f"{where}: config.set must be a list of KEY=VALUE templates")
    grid = obj["grid"]
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise PluginError(f"{where}: 'grid' must map --set keys to non-empty lists of values")
    protocol = obj["protocol"]
    if not isinstance(protocol, dict):
        raise PluginError(f"{where}: 'protocol' must hold selection, final and metric")
    splits = []
    for phase in ("selection", "final"):
        part = protocol.get(phase)
        if not isinstance(part, dict) or not all(isinstance(part.get(k), str) for k in ("train_split", "eval_split")):
            raise PluginError(f"{where}: protocol.{phase} must give train_split and eval_split")
        splits.append((part["train_split"], part["eval_split"]))
    metric = protocol.get("metric")
    if metric not in METRICS:
        raise PluginError(f"{where}: protocol.metric {metric!r} is not one of {', '.join(METRICS)}")
    if EPOCHS_KEY in grid and not all(isinstance(v, int) and v > 0 for v in grid[EPOCHS_KEY]):
        raise PluginError(f"{where}: grid {EPOCHS_KEY} must list positive integers")
    reference = obj.get("reference") or {}
    if not isinstance(reference, dict):
        raise PluginError(f"{where}: 'reference' must hold name, source and seeds")
    seeds = reference.get("seeds")
    return BenchmarkSuite(
        name=name, description=str(obj.get("description") or ""), datasets=figures, dataset_grids=dataset_grids, costs=costs,
        methods=tuple(methods),
        preset=config.get("preset"), sets=tuple(sets), grid={str(k): tuple(v) for k, v in grid.items()},
        selection=splits[0], final=splits[1], metric=str(metric),
        reference_name=str(reference.get("name") or "published"), reference_source=str(reference.get("source") or ""),
        reference_seeds=int(seeds) if isinstance(seeds, int) else None,
    )


def resolve_suite(name: str) -> BenchmarkSuite:
    """The registered suite ``name``, checked (an unknown name lists the registered ones)."""
    from hmlc.plugins import get_host

    entry = get_host().registry("benchmark_suites").entry(name)
    return suite_from_object(name, entry.obj, entry.plugin)


def protocol_scores(
    codes: np.ndarray, probs: np.ndarray, labels: Sequence[str], exclude: Sequence[str]
) -> dict[str, float | None]:
    """micro and macro AU(PRC) and mean AUC over ``labels`` less ``exclude`` (as ``hmlc evaluate`` computes them)."""
    from hmlc.evaluation.metrics import average_precision, mean_auc, per_label_auc

    ap = average_precision(codes, probs, labels, exclude)
    kept = [k for k, label in enumerate(labels) if label not in set(exclude)]
    aucs = per_label_auc(codes[:, kept], probs[:, kept], [labels[k] for k in kept])
    return {
        "micro_auprc": json_number(ap.micro), "macro_auprc": json_number(ap.macro),
        "mean_auc": json_number(mean_auc(aucs)), "labels": len(ap.labels),
    }


@dataclass
class SuiteRequest:
    """What the command line asks of a suite."""

    data: Path | None
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: int
    grid: dict[str, tuple[str, ...]]  # --grid overrides
    sets: tuple[str, ...]  # --set overrides, after the suite's own
    jobs: int = 1  # units run at once; > 1: each in a worker process


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _grid(suite: BenchmarkSuite, request: SuiteRequest, dataset: str | None) -> dict[str, tuple[Any, ...]]:
    """The grid searched for ``dataset`` (None: the suite's own), with ``--grid`` applied."""
    grid = suite.grid_for(dataset) if dataset else dict(suite.grid)
    grid.update(request.grid)
    if EPOCHS_KEY in request.grid:
        try:
            epochs = tuple(int(v) for v in request.grid[EPOCHS_KEY])
        except ValueError:
            epochs = ()
        if not epochs or min(epochs) < 1:
            raise ConfigError(f"--grid {EPOCHS_KEY}={','.join(request.grid[EPOCHS_KEY])}: give positive integers")
        grid[EPOCHS_KEY] = epochs
    return grid


def _settings(grid: Mapping[str, tuple[Any, ...]]) -> list[tuple[str, list[str]]]:
    """(name, overrides) of every combination of the grid's keys other than train.epochs."""
    keys = [k for k in grid if k != EPOCHS_KEY]
    out = []
    for combo in itertools.product(*[grid[k] for k in keys]):
        name = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(keys, combo)) or "default"
        out.append((name, [f"{k}={v}" for k, v in zip(keys, combo)]))
    return out


def _config(suite: BenchmarkSuite, request: SuiteRequest, dataset: str, method: str, extra: Sequence[str]) -> Any:
    from hmlc.config import load_config
    from hmlc.plugins import get_host

    preset = suite.preset.format(dataset=dataset, method=method) if suite.preset else None
    return load_config(None, preset, [*suite.config_overrides(dataset, method, request.data), *request.sets, *extra],
                       presets=get_host().preset)


def plan_suite(
    name: str, request: SuiteRequest, out: Path
) -> tuple[BenchmarkSuite, dict[str, dict[str, tuple[Any, ...]]]]:
    """Check the suite, the choice of datasets and methods, the grids, --jobs and every configuration; trains nothing.

    Returns the suite and each chosen dataset's grid (``--grid`` applied).
    """
    from hmlc.cli.paths import experiment_inputs
    from hmlc.engine.experiment import check_experiment
    from hmlc.plugins import get_host

    suite = resolve_suite(name)
    for what, chosen, known in (("--datasets", request.datasets, suite.datasets),
                                ("--methods", request.methods, suite.methods)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ConfigError(f"{what}: {', '.join(unknown)} not in suite {name!r}; it has: {', '.join(known)}")
    if request.seeds < 1:
        raise ConfigError(f"--seeds {request.seeds}: give at least 1")
    cores = usable_cores()
    if not 1 <= request.jobs <= cores:
        raise ConfigError(f"--jobs {request.jobs}: give 1 to {cores} (the CPU cores this machine lets hmlc use)")
    if request.data is not None and not request.data.is_dir():
        raise ConfigError(f"--data {request.data} is not a folder; give the folder holding the suite's datasets")
    grids: dict[str, dict[str, tuple[Any, ...]]] = {}
    inputs: list[Path | None] = []
    for dataset in request.datasets or tuple(suite.datasets):
        grids[dataset] = grid = _grid(suite, request, dataset)
        for method in request.methods or suite.methods:
            for _, overrides in _settings(grid):
                config = _config(suite, request, dataset, method, overrides)
                check_experiment(config)
                threads = config.train.threads
                if request.jobs > 1 and threads and threads * request.jobs > cores:
                    raise ConfigError(
                        f"--jobs {request.jobs} x train.threads={threads} is more than the {cores} CPU core(s) here; "
                        f"lower one (without train.threads each worker gets {max(1, cores // request.jobs)})"
                    )
            reader = get_host().dataset(config.data.dataset)
            for split in {*suite.selection, *suite.final}:
                reader.check_split(split)
            inputs += experiment_inputs(config)
    check_out_folder(out, inputs)
    return suite, grids


def _epochs_done(run_dir: Path, config: Any) -> int:
    """Epochs of the first stage the run in ``run_dir`` has trained (all of them once it went past it)."""
    from hmlc.models import read_checkpoint_metadata

    last = run_dir / "checkpoints" / "last"
    if not (last / "meta.json").is_file():
        return 0
    progress = read_checkpoint_metadata(last).get("progress") or {}
    if int(progress.get("stage", 0)) > 0:
        return int(config.train.resolved_stages()[0].epochs)
    return int(progress.get("epoch", 0))


class _Splits:
    """Evaluation splits read once per process."""

    def __init__(self) -> None:
        self._cache: dict[str, EvalSplit] = {}

    def get(self, config: Any) -> EvalSplit:
        from hmlc.engine.experiment import dataset_root

        d = config.data
        key = fingerprint([d.dataset, d.eval_split, str(dataset_root(config)), d.params, config.hierarchy])
        if key not in self._cache:
            self._cache[key] = load_eval_split(
                d.dataset, d.eval_split, root=dataset_root(config), params=d.params, hierarchy=config.hierarchy,
            )
        return self._cache[key]


def _scored(checkpoint: Path | Sequence[Path], split: EvalSplit) -> dict[str, Any]:
    """The protocol's scores of one model (or of the ensemble of several: the mean of their probabilities)."""
    probs, labels = predict_split(checkpoint, split)
    if tuple(labels) != split.labels:
        raise ConfigError(f"the model in {checkpoint} predicts other labels than {split.dataset}/{split.split} holds")
    return protocol_scores(split.codes, probs, split.labels, split.score_exclude)


ENSEMBLE_FILE = "ensemble.json"


def _ensemble(
    suite: BenchmarkSuite, request: SuiteRequest, out: Path, dataset: str, method: str,
    records: Sequence[Mapping[str, Any]], splits: _Splits,
) -> tuple[dict[str, Any], bool]:
    """The ensemble of a method's seeds on a dataset: their final models' mean probabilities, scored once.

    Kept in ``runs/<dataset>/<method>/ensemble.json`` with the seeds' final
    keys: read back while those final models are the ones it was scored for.
    Returns the record and whether it was scored in this call.
    """
    from hmlc.engine.rundir import write_json

    key = fingerprint([r["key"] for r in records])
    file = _method_folder(out, dataset, method) / ENSEMBLE_FILE
    record = read_json(file)
    if isinstance(record, dict) and record.get("key") == key:
        return record, False
    checkpoints = [_method_folder(out, dataset, method) / f"seed{int(r['seed'])}" / "final" / "checkpoints" / "last"
                   for r in records]
    config = _config(suite, request, dataset, method, [f"data.eval_split={suite.final[1]}"])
    started = time.monotonic()
    scores = _scored(checkpoints, splits.get(config))
    record = {"key": key, "seeds": [int(r["seed"]) for r in records], **scores,
              "seconds": round(time.monotonic() - started, 1)}
    write_json(file, record)
    return record, True


def _method_folder(out: Path, dataset: str, method: str) -> Path:
    """``runs/<dataset>/<method>`` of a suite's output: its seeds' folders and their ensemble."""
    return out / "runs" / dataset / method


@dataclass(frozen=True)
class _Unit:
    """One dataset x method x seed of a suite: its selection and its final run."""

    number: int  # 1-based position in the run's list
    total: int
    dataset: str
    method: str
    seed: int

    @property
    def tag(self) -> str:
        return f"[{self.number}/{self.total}] {self.dataset} {self.method} seed {self.seed}"

    def folder(self, out: Path) -> Path:
        return _method_folder(out, self.dataset, self.method) / f"seed{self.seed}"


class _SuiteClock:
    """Elapsed time and an estimate of what is left, for units of unequal cost run by ``jobs`` workers.

    A unit is expected to take its dataset's ``cost`` (datasets without one:
    the mean of those given) times the seconds per unit of cost measured on the
    units finished in this call. What is left is the expected time of the units
    not started and what the running ones still need, spread over the workers
    (never less than the longest of what a running unit needs); a unit in
    ``finished_before`` (its final scores are on disk: it will most likely be
    read back) is expected to take no time. Counting units done (``elapsed x
    left / done``) would ignore all three: at ``--jobs 2`` it said 27 minutes
    left when the two first units ended together and two were left (9).
    """

    def __init__(
        self, costs: Mapping[str, float], units: Sequence[_Unit], jobs: int, finished_before: Sequence[_Unit] = ()
    ) -> None:
        given = [c for c in costs.values() if c > 0]
        default = statistics.fmean(given) if given else 1.0
        self._cost = {u.number: (costs.get(u.dataset) or default) for u in units}
        self._expected = dict(self._cost)  # what a unit is expected to take, in cost
        self._expected.update({u.number: 0.0 for u in finished_before})
        self._jobs = max(1, jobs)
        self._began = time.monotonic()
        self._waiting = set(self._cost)
        self._running: dict[int, float] = {}  # unit number -> when it started
        self._spent = 0.0  # seconds of the units finished in this call
        self._spent_cost = 0.0  # their cost

    def start(self, unit: _Unit, now: float | None = None) -> None:
        self._waiting.discard(unit.number)
        self._running[unit.number] = time.monotonic() if now is None else now

    def finish(self, unit: _Unit, fresh: bool, now: float | None = None) -> None:
        """``unit`` is done; ``fresh``: trained or scored in this call (else read back: its time says nothing)."""
        now = time.monotonic() if now is None else now
        started = self._running.pop(unit.number, None)
        self._waiting.discard(unit.number)
        if fresh and started is not None:
            self._spent += now - started
            self._spent_cost += self._cost[unit.number]

    def left(self, now: float | None = None) -> float:
        """Seconds until every unit is done (NaN before one finished in this call)."""
        if self._spent <= 0 or self._spent_cost <= 0:
            return math.nan
        now = time.monotonic() if now is None else now
        per_cost = self._spent / self._spent_cost
        running = [max(0.0, per_cost * self._expected[n] - (now - t)) for n, t in self._running.items()]
        waiting = per_cost * sum(self._expected[n] for n in self._waiting)
        return max((waiting + sum(running)) / self._jobs, max(running, default=0.0))

    def clock(self, now: float | None = None) -> str:
        """``8m55s elapsed, about 8m47s left`` (no estimate before a unit finished in this call)."""
        from hmlc.progress import format_clock

        now = time.monotonic() if now is None else now
        return format_clock(now - self._began, self.left(now))


def run_suite(name: str, request: SuiteRequest, out: Path) -> dict[str, Any]:
    """Plan (every check first), then select, train and score every dataset x method x seed; returns results.json."""
    suite, grids = plan_suite(name, request, out)
    out = Path(out)
    holder = lock_out_folder(out)
    try:
        return _run(suite, grids, request, out)
    finally:
        holder.release()


def _run(
    suite: BenchmarkSuite, grids: Mapping[str, Mapping[str, tuple[Any, ...]]], request: SuiteRequest, out: Path
) -> dict[str, Any]:
    from hmlc.engine.interrupt import Interrupted

    datasets = request.datasets or tuple(suite.datasets)
    methods = request.methods or suite.methods
    combos = [(d, m, s) for d in datasets for m in methods for s in range(request.seeds)]
    units = [_Unit(i, len(combos), d, m, s) for i, (d, m, s) in enumerate(combos, 1)]
    results: dict[tuple[str, str, int], dict[str, Any]] = {}
    ensembles: dict[tuple[str, str], dict[str, Any]] = {}  # (dataset, method) -> its seeds' ensemble, once all are done
    splits = _Splits()  # this process's: the units of one job and the ensembles
    jobs = min(request.jobs, len(units))
    clock = _SuiteClock(suite.costs, units, jobs, [u for u in units if (u.folder(out) / "final.json").is_file()])

    def status() -> str:
        return f"{len(results)}/{len(units)} done, {clock.clock()}"

    def finished(unit: _Unit, record: dict[str, Any], fresh: bool) -> None:
        results[(unit.dataset, unit.method, unit.seed)] = record
        _write(suite, grids, request, out, results, datasets, methods, ensembles)  # before the line that says so
        clock.finish(unit, fresh)
        say(f"{_finished_line(suite, unit, record)}" + ("" if fresh else " (earlier)") + f"  ({status()})")
        group = [results.get((unit.dataset, unit.method, s)) for s in range(request.seeds)]
        if request.seeds > 1 and all(r is not None for r in group):
            made, scored = _ensemble(suite, request, out, unit.dataset, unit.method, group, splits)  # type: ignore[arg-type]
            ensembles[(unit.dataset, unit.method)] = made
            _write(suite, grids, request, out, results, datasets, methods, ensembles)
            if scored:
                say(f"{unit.dataset} {unit.method}: ensemble of {request.seeds} seeds: {suite.final[1]}: "
                    f"{METRICS[suite.metric]} {fmt(made[suite.metric])}")

    _write(suite, grids, request, out, results, datasets, methods, ensembles)
    try:
        if jobs == 1:
            for unit in units:
                clock.start(unit)
                finished(unit, *_run_unit(suite, grids[unit.dataset], request, out, unit, splits, say))
        else:
            _run_parallel(suite, grids, request, out, units, jobs, finished, status, clock.start)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: what is finished is written; the same command continues
        what = getattr(exc, "what", "interrupted")
        raise Interrupted(
            getattr(exc, "signum", signal.SIGINT), what,
            f"{len(results)} of {len(units)} unit(s) finished; run the same hmlc benchmark command to continue",
        ) from None
    return _write(suite, grids, request, out, results, datasets, methods, ensembles)


def _run_unit(
    suite: BenchmarkSuite, grid: Mapping[str, tuple[Any, ...]], request: SuiteRequest, out: Path, unit: _Unit,
    splits: _Splits, report: Callable[[str], None],
) -> tuple[dict[str, Any], bool]:
    """Select on the selection split, train the final model and score it once (or read back what is done).

    Returns the unit's record and whether anything was trained or scored in this call.
    """
    from hmlc.engine.ablation import slug
    from hmlc.engine.rundir import write_json

    dataset, method, seed, where, tag = unit.dataset, unit.method, unit.seed, unit.folder(out), unit.tag
    epochs = sorted({int(e) for e in grid.get(EPOCHS_KEY, ())})
    sel_train, sel_eval = suite.selection
    candidates: list[tuple[float, int, str, list[str], int | None]] = []  # (-score, order, name, overrides, epochs)
    seconds = 0.0
    fresh = False  # anything trained or scored in this call
    for k, (setting, overrides) in enumerate(_settings(grid)):
        run_name = slug(f"select-{setting}")
        top = epochs[-1] if epochs else None
        extra = [*overrides, f"seed={seed}", f"data.train_split={sel_train}", f"data.eval_split={sel_eval}",
                 f"output.name={run_name}"] + ([f"{EPOCHS_KEY}={top}"] if top else [])
        config = _config(suite, request, dataset, method, extra)
        # Scored by the suite at the listed epochs only: the trainer's own validation after every epoch is not needed.
        train_config = _config(suite, request, dataset, method, [*extra, "data.eval_split=''"])
        key = fingerprint({"config": _comparable(config), "epochs": epochs})
        file = where / f"{run_name}.json"
        record = read_json(file)
        if not isinstance(record, dict) or record.get("key") != key:
            record = {"key": key, "setting": setting, "overrides": overrides, "scores": {}, "seconds": 0.0}
        scoring = 0.0  # seconds spent scoring while the training paused (not training time)

        def keep(e: int | None) -> None:
            """Score checkpoints/last as the point after ``e`` epochs (None: the whole training)."""
            nonlocal fresh, scoring
            started = time.monotonic()
            record["scores"][str(e) if e else "all"] = scores = _scored(
                where / run_name / "checkpoints" / "last", splits.get(config)
            )
            write_json(file, record)
            fresh = True
            report(f"{tag}: select {_chosen({'setting': setting, 'epochs': e})}: "
                   f"{METRICS[suite.metric]} on {sel_eval} {fmt(scores[suite.metric])}")
            scoring += time.monotonic() - started

        pending = [e for e in epochs or [None] if (str(e) if e else "all") not in record["scores"]]
        done = _epochs_done(where / run_name, train_config) if pending else 0
        midway = []  # points the training still has to reach: scored in one training that pauses there
        for e in pending:
            if e is None or e == top:
                continue
            if e < done:  # the run went past this point before its score was kept: it cannot be scored now
                record["scores"][str(e)] = None
            elif e == done:  # stopped here before its score was kept
                keep(e)
            else:
                midway.append(e)
        last = bool(pending) and pending[-1] == top  # the whole training (top is None without an epoch grid)
        if midway or last:  # one training to the end, paused (not left and resumed) at the points midway
            _, _, spent = train_run(train_config, where, "hmlc benchmark", pause_at=midway, on_pause=keep)
            record["seconds"] += spent - scoring
            if last:
                keep(top)
        seconds += record["seconds"]
        for point, scores in record["scores"].items():
            value = None if scores is None else scores[suite.metric]
            if value is not None:
                candidates.append((-value, k * 1000 + (int(point) if point != "all" else 0), setting, overrides,
                                   None if point == "all" else int(point)))
    if not candidates:
        raise ConfigError(f"{dataset} {method}: no setting could be scored on {sel_eval}; check the data")
    best = min(candidates)
    _, _, setting, overrides, chosen_epochs = best
    fin_train, fin_eval = suite.final
    extra = [*overrides, f"seed={seed}", f"data.train_split={fin_train}", f"data.eval_split={fin_eval}",
             "output.name=final"] + ([f"{EPOCHS_KEY}={chosen_epochs}"] if chosen_epochs else [])
    config = _config(suite, request, dataset, method, extra)
    key = fingerprint({"config": _comparable(config)})
    file = where / "final.json"
    record = read_json(file)
    if not isinstance(record, dict) or record.get("key") != key:
        # The test split is scored once: its model must not see it while training (no eval split then).
        train_config = _config(suite, request, dataset, method, [*extra, "data.eval_split=''"])
        run_dir, _, spent = train_run(train_config, where, "hmlc benchmark")
        scores = _scored(run_dir / "checkpoints" / "last", splits.get(config))
        record = {"key": key, "seed": seed, "chosen": {"setting": setting, "overrides": overrides,
                                                       "epochs": chosen_epochs},
                  "selection_score": -best[0], "selection_seconds": round(seconds, 1),
                  "final_seconds": round(spent, 1), **scores}
        write_json(file, record)
        fresh = True
    return record, fresh


def _finished_line(suite: BenchmarkSuite, unit: _Unit, record: Mapping[str, Any]) -> str:
    chosen = record["chosen"]
    figure = suite.datasets.get(unit.dataset)
    return (f"{unit.tag}: chose {_chosen(chosen)}"
            + f"; {suite.final[1]}: {METRICS[suite.metric]} {fmt(record[suite.metric])}"
            + (f" ({suite.reference_name}: {fmt(figure)})" if figure is not None else "")
            + f"; {record['selection_seconds'] + record['final_seconds']:.0f}s")


def _chosen(chosen: Mapping[str, Any]) -> str:
    """``width=500, 80 epochs`` (a grid of epochs alone: ``80 epochs``)."""
    parts = [chosen["setting"]] if chosen["setting"] != "default" or not chosen["epochs"] else []
    return ", ".join(parts + ([f"{chosen['epochs']} epochs"] if chosen["epochs"] else []))


#: Seconds between two "where the suite stands" lines while workers run.
PROGRESS_EVERY = 60.0


def costliest_first(suite: BenchmarkSuite, units: Sequence[_Unit]) -> list[_Unit]:
    """``units`` by their dataset's ``cost``, largest first (longest processing time first: the
    workers end together); units of datasets without a cost, and ties, keep their order, after the costed."""
    return sorted(units, key=lambda u: -suite.costs.get(u.dataset, 0.0))


def _run_parallel(
    suite: BenchmarkSuite, grids: Mapping[str, Mapping[str, tuple[Any, ...]]], request: SuiteRequest, out: Path,
    units: Sequence[_Unit], jobs: int, finished: Callable[[_Unit, dict[str, Any], bool], None],
    status: Callable[[], str], started: Callable[[_Unit], None],
) -> None:
    """Run ``units`` in ``jobs`` spawned worker processes; ``started`` and ``finished`` are called here, in the
    main process.

    Stopped (Ctrl-C, SIGTERM, or an error in one unit): the workers are asked
    to stop (SIGTERM: a training finishes its step and writes its checkpoint),
    the units that finish meanwhile are kept, and the exception goes on.
    """
    import multiprocessing
    import queue

    from hmlc.progress import format_duration

    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools: a known way to hang
    tasks, messages, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    for unit in costliest_first(suite, units):
        tasks.put(unit)
    for _ in range(jobs):
        tasks.put(None)
    threads = max(1, usable_cores() // jobs)
    workers = [ctx.Process(target=_worker, name=f"hmlc-benchmark-{k + 1}", daemon=True,
                           args=(k, suite, dict(grids), request, out, threads, tasks, messages, stop))
               for k in range(jobs)]
    by_number = {u.number: u for u in units}
    running: dict[int, tuple[_Unit, float]] = {}  # worker -> its unit, since when
    left = len(units)

    def handle(message: tuple[str, int, int, Any]) -> None:
        nonlocal left
        kind, worker, number, payload = message
        unit = by_number[number]
        if kind == "start":
            running[worker] = (unit, time.monotonic())
            started(unit)
        elif kind == "say":
            say(payload)
        elif kind == "done":
            running.pop(worker, None)
            left -= 1
            finished(unit, *payload)
        elif kind == "stopped":
            running.pop(worker, None)
        elif kind == "error":
            running.pop(worker, None)
            name, text = payload
            raise _error_class(name)(f"{unit.tag}: {text}")
        else:  # "crash": a bug, not the user's doing; its traceback is in the unit's log
            running.pop(worker, None)
            raise RuntimeError(f"{unit.tag} failed in its worker process (log: {unit.folder(out) / 'log.txt'}):\n{payload}")

    say(f"suite {suite.name}: {len(units)} unit(s) in {jobs} worker processes, {threads} torch thread(s) each; "
        f"training output in {out / 'runs'}/<dataset>/<method>/seed<k>/log.txt")
    for w in workers:
        w.start()
    next_line = time.monotonic() + PROGRESS_EVERY
    try:
        while left:
            try:
                handle(messages.get(timeout=2.0))
                continue
            except queue.Empty:
                pass
            for k, w in enumerate(workers):
                if k in running and not w.is_alive():
                    _drain(messages, handle, seconds=1.0)
                    if k in running:
                        unit = running[k][0]
                        raise DataError(
                            f"{unit.tag}: its worker process ended unexpectedly (exit code {w.exitcode}; out of "
                            f"memory?); see {unit.folder(out) / 'log.txt'}, then run the same command to continue"
                        )
            if not any(w.is_alive() for w in workers):
                _drain(messages, handle, seconds=1.0)
                if left:
                    raise DataError(f"the worker processes ended with {left} unit(s) not done; run the same command "
                                    "again to continue")
            if time.monotonic() >= next_line:
                next_line = time.monotonic() + PROGRESS_EVERY
                now = time.monotonic()
                doing = ", ".join(f"{u.dataset} {u.method} seed {u.seed} ({format_duration(now - t)})"
                                  for u, t in sorted(running.values(), key=lambda r: r[0].number))
                say(f"suite {suite.name}: running {doing or 'nothing'}; {status()}")
    except BaseException:
        stop.set()
        for w in workers:
            if w.is_alive() and w.pid is not None:
                os.kill(w.pid, signal.SIGTERM)
        deadline = time.monotonic() + 300.0  # a training finishes its step and writes its checkpoint
        while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
            _drain(messages, lambda m: m[0] == "done" and handle(m), seconds=0.5)
        for w in workers:
            if w.is_alive():
                w.kill()
        raise
    finally:
        for w in workers:
            w.join(timeout=10.0)
        for q in (tasks, messages):
            q.cancel_join_thread()
            q.close()


def _drain(messages: Any, handle: Callable[[Any], Any], seconds: float) -> None:
    """Handle the messages that arrive within ``seconds``."""
    import queue

    end = time.monotonic() + seconds
    while True:
        try:
            handle(messages.get(timeout=max(0.0, end - time.monotonic())))
        except queue.Empty:
            return


def _error_class(name: str) -> type[HmlcError]:
    import hmlc.errors

    cls = getattr(hmlc.errors, name, HmlcError)
    return cls if isinstance(cls, type) and issubclass(cls, HmlcError) else HmlcError


def _worker(
    worker: int, suite: BenchmarkSuite, grids: Mapping[str, Mapping[str, tuple[Any, ...]]], request: SuiteRequest,
    out: Path, threads: int, tasks: Any, messages: Any, stop: Any,
) -> None:
    """A worker process: take units until none is left or the main process asks to stop.

    Ctrl-C reaches every process of the terminal's group: the worker ignores
    SIGINT and stops on the SIGTERM the main process sends, quietly whenever it comes.
    """
    import torch

    from hmlc.engine.interrupt import raise_on_sigterm

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_on_sigterm()
    with contextlib.suppress(KeyboardInterrupt):  # SIGTERM while no unit runs (starting, waiting): nothing to save
        try:
            torch.set_num_threads(threads)  # train.threads, where set, takes over in each training
            _take_units(worker, suite, grids, request, out, _Splits(), tasks, messages, stop)
        finally:  # from here the process only exits (flushing its queues): a late SIGTERM changes nothing
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _take_units(
    worker: int, suite: BenchmarkSuite, grids: Mapping[str, Mapping[str, tuple[Any, ...]]], request: SuiteRequest,
    out: Path, splits: _Splits, tasks: Any, messages: Any, stop: Any,
) -> None:
    """The worker's loop: run units from ``tasks`` and report each one's outcome on ``messages``."""
    import traceback

    while not stop.is_set():
        unit = tasks.get()
        if unit is None:
            return
        messages.put(("start", worker, unit.number, None))
        where = unit.folder(out)
        where.mkdir(parents=True, exist_ok=True)
        try:
            with _output_to(where / "log.txt"):
                outcome = _run_unit(suite, grids[unit.dataset], request, out, unit, splits,
                                    lambda text, n=unit.number: messages.put(("say", worker, n, text)))
        except KeyboardInterrupt:
            messages.put(("stopped", worker, unit.number, None))
            return
        except HmlcError as exc:
            messages.put(("error", worker, unit.number, (type(exc).__name__, str(exc))))
            return
        except Exception:
            messages.put(("crash", worker, unit.number, traceback.format_exc()))
            return
        messages.put(("done", worker, unit.number, outcome))  # (record, fresh)


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Python's and the file descriptors) to ``log`` while inside."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "a", encoding="utf-8") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _comparable(config: Any) -> dict[str, Any]:
    """What a stored selection or final score was computed for: the settings that differ from hmlc's defaults.

    A setting a later hmlc adds, at its default, leaves the stored keys valid, so
    that a suite started before an upgrade continues after it.
    """
    from hmlc.config import config_to_dict, learning_settings, load_config

    return _changed(learning_settings(config_to_dict(config)), config_to_dict(load_config(None, None, [])))


def _changed(value: Any, default: Any) -> Any:
    """The parts of ``value`` (nested dicts) that differ from ``default``."""
    if not isinstance(value, dict) or not isinstance(default, dict):
        return value
    return {k: _changed(v, default.get(k)) for k, v in value.items() if k not in default or v != default[k]}


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(statistics.fmean(kept)) if kept else None


def _write(
    suite: BenchmarkSuite, grids: Mapping[str, Mapping[str, tuple[Any, ...]]], request: SuiteRequest, out: Path,
    results: Mapping[tuple[str, str, int], dict[str, Any]], datasets: Sequence[str], methods: Sequence[str],
    ensembles: Mapping[tuple[str, str], Mapping[str, Any]],
) -> dict[str, Any]:
    """results.json, results.md and results.png from the finished units (atomic writes)."""
    from hmlc.benchmark.plots import suite_png
    from hmlc.engine.rundir import atomic_write_bytes, atomic_write_text, write_json

    doc: dict[str, Any] = {
        "suite": suite.name, "metric": suite.metric, "selection": list(suite.selection), "final": list(suite.final),
        "grid": {k: list(v) for k, v in _grid(suite, request, None).items()}, "seeds": request.seeds,
        "sets": list(request.sets), "jobs": request.jobs,
        "reference": {"name": suite.reference_name, "source": suite.reference_source, "seeds": suite.reference_seeds},
        "complete": all((d, m, s) in results for d in datasets for m in methods for s in range(request.seeds)),
        "datasets": {},
    }
    for d in datasets:
        entry: dict[str, Any] = {"reference": suite.datasets.get(d), "grid": {k: list(v) for k, v in grids[d].items()},
                                 "methods": {}}
        for m in methods:
            runs = [{k: v for k, v in results[(d, m, s)].items() if k != "key"}
                    for s in range(request.seeds) if (d, m, s) in results]
            entry["methods"][m] = {
                "seeds": runs,
                "mean": {
                    "micro_auprc": _mean([r["micro_auprc"] for r in runs]),
                    "macro_auprc": _mean([r["macro_auprc"] for r in runs]),
                    "mean_auc": _mean([r["mean_auc"] for r in runs]),
                    "seconds": _mean([r["selection_seconds"] + r["final_seconds"] for r in runs]),
                    "n_seeds": len(runs),
                },
                # With --seeds above 1: the mean of the seeds' final models' probabilities, scored once.
                "ensemble": _ensemble_entry(ensembles.get((d, m))),
            }
        doc["datasets"][d] = entry
    doc["summary"] = _summary(suite, doc, datasets, methods)
    write_json(out / "results.json", doc)
    atomic_write_text(out / "results.md", _markdown(suite, doc, datasets, methods))
    ours = {d: {m: doc["datasets"][d]["methods"][m]["mean"][suite.metric] or math.nan for m in methods}
            for d in datasets}
    reference = {d: f for d in datasets if (f := suite.datasets.get(d)) is not None}
    atomic_write_bytes(out / "results.png", suite_png(datasets, methods, ours, reference, suite.reference_name,
                                                      METRICS[suite.metric]))
    return doc


def _ensemble_entry(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"micro_auprc": record["micro_auprc"], "macro_auprc": record["macro_auprc"],
            "mean_auc": record["mean_auc"], "n_seeds": len(record["seeds"]), "seconds": record["seconds"]}


def _summary(suite: BenchmarkSuite, doc: Mapping[str, Any], datasets: Sequence[str],
             methods: Sequence[str]) -> dict[str, Any]:
    """Per method, the metric averaged over the datasets with a published figure, beside the figures' mean.

    None where a dataset lacks a score (not finished yet): a mean over part
    of the datasets would not compare with the reference's.
    """
    with_figure = [d for d in datasets if doc["datasets"][d]["reference"] is not None]

    def mean(values: list[float | None]) -> float | None:
        return None if not values or any(v is None for v in values) else float(statistics.fmean(values))  # type: ignore[arg-type]

    per_method = {}
    for m in methods:
        entries = [doc["datasets"][d]["methods"][m] for d in with_figure]
        per_method[m] = {
            "mean": mean([e["mean"][suite.metric] for e in entries]),
            "ensemble": mean([(e["ensemble"] or {}).get(suite.metric) for e in entries]),
        }
    return {"metric": suite.metric, "datasets": with_figure,
            "reference": mean([doc["datasets"][d]["reference"] for d in with_figure]), "methods": per_method}


def _figure_table(suite: BenchmarkSuite, doc: Mapping[str, Any], datasets: Sequence[str], methods: Sequence[str],
                  which: str) -> list[str]:
    """Our figure (``which``: "mean" over seeds or "ensemble") beside the reference's, and their means."""
    lines = ["| dataset | " + suite.reference_name + " | " + " | ".join(f"{m} | Δ" for m in methods) + " |",
             "|---|---|" + "---|---|" * len(methods)]

    def row(name: str, figure: float | None, values: list[float | None]) -> str:
        cells = []
        for value in values:
            diff = value - figure if value is not None and figure is not None else None
            cells += [fmt(value), "n/a" if diff is None else f"{diff:+.3f}"]
        return f"| {name} | {fmt(figure)} | " + " | ".join(cells) + " |"

    for d in datasets:
        entry = doc["datasets"][d]
        lines.append(row(d, entry["reference"], [(entry["methods"][m][which] or {}).get(suite.metric) for m in methods]))
    summary = doc["summary"]
    if len(datasets) > 1 and summary["datasets"]:
        lines.append(row(f"mean of the {len(summary['datasets'])} with a figure", summary["reference"],
                         [summary["methods"][m][which] for m in methods]))
    return lines


def _markdown(suite: BenchmarkSuite, doc: Mapping[str, Any], datasets: Sequence[str], methods: Sequence[str]) -> str:
    metric = METRICS[suite.metric]
    ref = suite.reference_name
    lines = [f"# Benchmark suite {suite.name}", ""]
    if suite.description:
        lines += [suite.description, ""]
    grid = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in doc["grid"].items())
    own = any(doc["datasets"][d]["grid"] != doc["grid"] for d in datasets)
    search_text = "; ".join(([f"grid: {grid}"] if grid else []) + (["each dataset's own grid in the second table"] if own or not grid else []))
    lines += [
        f"Test {metric} (labels the protocol excludes left out), mean over {doc['seeds']} seed(s), beside "
        f"{ref}'s published figure" + (f" (mean of {suite.reference_seeds} seeds)" if suite.reference_seeds else "")
        + f" and the difference (ours - {ref}). Settings chosen on {doc['selection'][1]} after training on "
        f"{doc['selection'][0]} ({search_text}); the final model trained on {doc['final'][0]}, scored on {doc['final'][1]} once." + (f" Overrides: {', '.join(doc['sets'])}." if doc["sets"] else ""),
        "",
        *_figure_table(suite, doc, datasets, methods, "mean"),
    ]
    if doc["seeds"] > 1:
        lines += [
            "", f"The ensemble of each method's {doc['seeds']} seeds (the mean of their final models' probabilities, "
            f"as `hmlc predict` with several checkpoints), scored on {doc['final'][1]} once:", "",
            *_figure_table(suite, doc, datasets, methods, "ensemble"),
        ]
    lines += ["", "| dataset | method | seed | searched | chosen | micro AU(PRC) | macro AU(PRC) | mean AUC | "
              "seconds (select + final) |", "|---|---|---|---|---|---|---|---|---|"]
    for d in datasets:
        searched = "; ".join(f"{k.rsplit('.', 1)[-1]} {', '.join(map(str, v))}" for k, v in doc["datasets"][d]["grid"].items())
        for m in methods:
            for r in doc["datasets"][d]["methods"][m]["seeds"]:
                chosen = _chosen(r["chosen"])
                lines.append(f"| {d} | {m} | {r['seed']} | {searched} | {chosen} | {fmt(r['micro_auprc'])} | "
                             f"{fmt(r['macro_auprc'])} | {fmt(r['mean_auc'])} | "
                             f"{r['selection_seconds']:.0f} + {r['final_seconds']:.0f} |")
    if not doc["complete"]:
        lines += ["", "Not complete: run the same command again to continue."]
    return "\n".join(lines) + "\n"

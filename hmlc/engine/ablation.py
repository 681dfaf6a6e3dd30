"""``hmlc ablate``: a grid of settings x seeds, summarised as a Table-1-style table."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hmlc.config import ExperimentConfig, apply_overrides, config_to_dict, learning_settings, load_config
from hmlc.engine.experiment import check_experiment
from hmlc.engine.rundir import atomic_write_text, write_json
from hmlc.errors import ConfigError, HmlcError, shorten
from hmlc.plugins import get_host
from hmlc.progress import Progress, format_duration

__all__ = [
    "parse_grid", "grid_settings", "plan_ablation", "run_ablation", "PlannedRun", "AblationTable", "earlier_run",
    "slug",
]

#: grid keys with a meaning of their own; any other key is a dotted config path
GRID_ALIASES = {"policy": "policy.default", "ct": "train.method", "backbone": "model.backbone"}


def parse_grid(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["policy=a,b", "ct=off,on"]`` -> [("policy", ["a", "b"]), ("ct", ["off", "on"])]."""
    grid = []
    for item in items:
        key, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise ConfigError(f"--grid {item!r} is not KEY=V1,V2,...; write e.g. --grid policy=u-ones,u-zeros")
        if key in dict(grid):
            raise ConfigError(f"--grid {key} is given twice; list all its values in one --grid")
        repeated = sorted({v for v in vals if vals.count(v) > 1})
        if repeated:
            raise ConfigError(f"--grid {shorten(item)} lists {', '.join(map(shorten, repeated))} more than once; give each value once")
        grid.append((key.strip(), vals))
    if not grid:
        raise ConfigError("hmlc ablate needs at least one --grid KEY=V1,V2,...")
    return grid


def _override(key: str, value: str) -> str:
    if key == "ct":
        if value not in ("on", "off"):
            raise ConfigError(f"--grid ct={value}: use on or off")
        return f"train.method={'ct' if value == 'on' else 'flat'}"
    return f"{GRID_ALIASES.get(key, key)}={value}"


def grid_settings(grid: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """(setting name, overrides) for every combination, in grid order."""
    out = []
    keys = [k for k, _ in grid]
    for combo in itertools.product(*[v for _, v in grid]):
        parts = []
        for key, value in zip(keys, combo):
            if key == "ct":
                parts.append("CT" if value == "on" else "")
            else:
                parts.append(value if key in ("policy", "backbone") else f"{key}={value}")
        name = "+".join(p for p in parts if p) or "baseline"
        out.append((name, [_override(k, v) for k, v in zip(keys, combo)]))
    return out


class AblationTable:
    """Rows: settings; columns: labels and the mean; cells: mean and spread over seeds."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.rows: dict[str, list[dict[str, float]]] = {}

    def add(self, setting: str, aucs: dict[str, float]) -> None:
        self.rows.setdefault(setting, []).append(aucs)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        out: dict[str, dict[str, dict[str, float]]] = {}
        for setting, runs in self.rows.items():
            cols = {}
            for col in self.labels + ["mean"]:
                vals = np.array([r.get(col, math.nan) for r in runs], dtype=float)
                vals = vals[~np.isnan(vals)]
                cols[col] = {
                    "mean": float(vals.mean()) if len(vals) else math.nan,
                    "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                    "n": int(len(vals)),
                }
            out[setting] = cols
        return out

    def markdown(self) -> str:
        summary = self.summary()
        head = "| setting | " + " | ".join(self.labels + ["mean"]) + " |"
        rule = "|---|" + "---|" * (len(self.labels) + 1)
        lines = [head, rule]
        for setting, cols in summary.items():
            cells = []
            for col in self.labels + ["mean"]:
                c = cols[col]
                cell = "n/a" if math.isnan(c["mean"]) else f"{c['mean']:.3f}"
                if c["n"] > 1 and not math.isnan(c["mean"]):
                    cell += f" ± {c['std']:.3f}"
                cells.append(f"**{cell}**" if col == "mean" else cell)
            lines.append(f"| {setting} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["setting", "column", "mean", "std", "n_seeds"])
        for setting, cols in self.summary().items():
            for col, c in cols.items():
                writer.writerow([setting, col, f"{c['mean']:.6f}", f"{c['std']:.6f}", c["n"]])
        return buf.getvalue()


@dataclass
class PlannedRun:
    """One setting and seed of an ablation, and what its run directory holds already."""

    setting: str
    seed: int
    config: ExperimentConfig
    run_dir: Path
    #: None (not started), "interrupted" or "done"
    state: str | None


def plan_ablation(
    config_path: Path | None,
    preset: str | None,
    base_overrides: Sequence[str],
    grid: list[tuple[str, list[str]]],
    seeds: int,
    out_dir: Path,
) -> list[PlannedRun]:
    """Every setting x seed, validated, with the state of its run directory; trains nothing."""
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: give at least 1")
    base = load_config(config_path, preset, base_overrides, presets=get_host().preset)
    from hmlc.cli.paths import experiment_inputs, refuse_overwriting_inputs

    refuse_overwriting_inputs({"--out": out_dir}, experiment_inputs(base, config_path))
    plan = []
    for name, overrides in grid_settings(grid):
        for seed in range(seeds):
            cfg = load_config(
                None, None, list(overrides) + [f"seed={base.seed + seed}", f"output.name={slug(name)}-seed{seed}"],
                base=apply_overrides(config_to_dict(base), []),
            )
            check_experiment(cfg)
            run_dir = Path(out_dir) / "runs" / str(cfg.output.name)
            plan.append(PlannedRun(name, seed, cfg, run_dir, None))
    # Runs this folder already holds: a finished one is reused, an interrupted one continued.
    for item in plan:
        item.state = earlier_run(item.run_dir, item.config)
    return plan


def run_ablation(
    config_path: Path | None,
    preset: str | None,
    base_overrides: Sequence[str],
    grid: list[tuple[str, list[str]]],
    seeds: int,
    out_dir: Path,
) -> AblationTable:
    """Train every setting with ``seeds`` seeds; write table.md, table.csv, table.json in ``out_dir``.

    Settings whose run directory in ``out_dir`` finished are read back; an
    interrupted one continues from its last checkpoint.
    """
    from hmlc.engine.trainer import train

    plan = plan_ablation(config_path, preset, base_overrides, grid, seeds, out_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table: AblationTable | None = None
    runs = []
    # Runs finished earlier take no time: the time left is estimated from the runs trained here.
    progress = Progress(sum(item.state != "done" for item in plan), "ablate", unit="run", enabled=False)
    for item in plan:
        name, cfg, run_dir = item.setting, item.config, item.run_dir
        if item.state == "done":
            print(f"== {name} (seed {cfg.seed}): finished earlier in {run_dir}", flush=True)
            labels, aucs = _read_results(run_dir)
        else:
            where = f"run {progress.done + 1}/{progress.total}, {progress.clock()}"
            if item.state == "interrupted":
                print(f"== {name} (seed {cfg.seed}): continuing {run_dir} [{where}]", flush=True)
                result = train(cfg, resume=run_dir)
            else:
                print(f"== {name} (seed {cfg.seed}) [{where}]", flush=True)
                result = train(cfg, run_dir=out_dir / "runs")
            progress.update()
            labels = list(result.labels)
            aucs = {a.label: a.auc for a in result.final}
            aucs["mean"] = result.final_mean
        if table is None:
            table = AblationTable(labels)
        table.add(name, aucs)
        runs.append({"setting": name, "seed": cfg.seed, "run_dir": str(run_dir), "aucs": aucs})
        _write(out_dir, table, runs)
    assert table is not None
    if progress.done:
        print(f"== {progress.done} run(s) trained in {format_duration(progress.elapsed)}", flush=True)
    return table



def progress_of(item: PlannedRun) -> str:
    """Where an interrupted run stands, e.g. 'ct1 1/2 epochs done', from its checkpoints/last."""
    from hmlc.models import read_checkpoint_metadata

    stages = item.config.train.resolved_stages()
    try:
        progress = read_checkpoint_metadata(item.run_dir / "checkpoints" / "last")["progress"]
        stage = stages[min(int(progress["stage"]), len(stages) - 1)]
    except (HmlcError, KeyError, TypeError, ValueError):
        return "interrupted"
    if int(progress["stage"]) >= len(stages):
        return "all epochs done, results not written"
    return f"interrupted: {stage.name} {progress['epoch']}/{stage.epochs} epochs done"


def earlier_run(run_dir: Path, cfg: ExperimentConfig, command: str = "hmlc ablate") -> str | None:
    """'done', 'interrupted' or None (no run yet) for a run directory ``cfg`` trains into; refuses any other.

    ``command`` (the command that plans the runs) is named in the errors.
    """
    from hmlc.engine.rundir import RunDirectory

    if not run_dir.exists():
        return None
    run = RunDirectory(run_dir)
    saved = run_dir / "config.yaml"
    if not run.has_last_checkpoint():
        if not run.has_checkpoint():
            return None  # stopped before its first checkpoint: trained again from the start, in the same folder
        if not saved.is_file():
            raise ConfigError(
                f"{run_dir} holds checkpoint files but no config.yaml; delete that folder and rerun {command}"
            )
    elif not saved.is_file():
        raise ConfigError(f"{run_dir} holds a checkpoint but no config.yaml; delete that folder and rerun {command}")
    mine, theirs = (learning_settings(config_to_dict(c)) for c in (cfg, load_config(saved)))
    if mine != theirs:
        key = _first_difference(mine, theirs)
        raise ConfigError(
            f"{run_dir} was trained with other settings ({key}: {_get(theirs, key)!r} there, {_get(mine, key)!r} "
            f"now); give {command} a new --out folder"
        )
    results = run_dir / "results.json"
    if results.is_file() and json.loads(results.read_text(encoding="utf-8")).get("completed"):
        return "done"
    return "interrupted"


def _read_results(run_dir: Path) -> tuple[list[str], dict[str, float]]:
    data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    aucs = {label: float("nan") if v["auc"] is None else float(v["auc"]) for label, v in data["final"].items()}
    mean = data.get("final_mean_auc")
    aucs["mean"] = float("nan") if mean is None else float(mean)
    return list(data["labels"]), aucs


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "(the whole configuration)"


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def slug(name: str) -> str:
    """``name`` as a folder name: letters, digits, ``-`` and ``_`` kept, anything else ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _write(out_dir: Path, table: AblationTable, runs: list[dict[str, Any]]) -> None:
    atomic_write_text(out_dir / "table.md", table.markdown())
    atomic_write_text(out_dir / "table.csv", table.csv())
    write_json(out_dir / "table.json", {"labels": table.labels, "summary": table.summary(), "runs": runs})

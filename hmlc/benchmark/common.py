"""What both kinds of benchmark share: an evaluation split's truth, a model's predictions on it,
scores with bootstrap intervals, and training that continues where an earlier call stopped."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hmlc.errors import DataError, HmlcError
from hmlc.evaluation.evaluator import json_number
from hmlc.progress import say

__all__ = [
    "EvalSplit",
    "load_eval_split",
    "predict_split",
    "Scores",
    "score",
    "train_run",
    "fingerprint",
    "read_json",
    "say",
    "fmt",
    "check_out_folder",
    "lock_out_folder",
]


@dataclass
class EvalSplit:
    """One split of a dataset as scored: ids, label codes over ``graph`` (closed when its protocol says so)."""

    dataset: str
    split: str
    root: Path | None
    params: dict[str, Any]
    ids: list[str]
    codes: np.ndarray  # (n, len(labels)) 1 / 0 / -1 / NaN
    labels: tuple[str, ...]
    hierarchy: str
    closed: bool
    #: labels the dataset's protocol leaves out of the scores (e.g. the roots of an HMC hierarchy)
    score_exclude: tuple[str, ...]
    #: the split's prediction inputs by image size, read on the first prediction (the HMC suite predicts
    #: each split four times per unit: reading a GO split's ARFF again took 0.15-0.35 s each time)
    inputs: dict[int | None, Any] = field(default_factory=dict, repr=False, compare=False)


def load_eval_split(
    dataset: str,
    split: str,
    *,
    root: Path | None,
    params: Mapping[str, Any],
    hierarchy: str | None = None,
    closure: bool | None = None,
) -> EvalSplit:
    """Read ``split`` of the registered ``dataset`` with its labels over its hierarchy (or ``hierarchy``).

    The truth is closed over the hierarchy when ``closure`` says so, else when
    the dataset's protocol does (``default_eval_closure``), as ``hmlc evaluate`` does.
    """
    from hmlc.data.datasets import read_split
    from hmlc.engine.experiment import resolve_hierarchy, score_exclude
    from hmlc.config import load_config
    from hmlc.plugins import get_host

    reader = get_host().dataset(dataset)
    reader.check_split(split)
    resolved = reader.resolve_params(params) if hasattr(reader, "resolve_params") else dict(params)
    overrides = [f"data.dataset={dataset}"] + ([f"hierarchy={hierarchy}"] if hierarchy else [])
    base = {"data": {"root": str(root) if root else None, "params": dict(params)}}
    graph = resolve_hierarchy(load_config(None, None, overrides, base=base), reader)
    loaded = read_split(reader, split, root=root, params=resolved, image_size=None, labels=graph.labels, graph=graph)
    table = loaded.table
    codes = table.codes()
    close = bool(getattr(reader, "default_eval_closure", False)) if closure is None else closure
    if close:
        codes = graph.closure(codes).codes
    return EvalSplit(
        dataset=dataset, split=split, root=root, params=dict(params), ids=[str(v) for v in table.frame["id"]],
        codes=np.asarray(codes, dtype=np.float64), labels=tuple(graph.labels), hierarchy=graph.name, closed=close,
        score_exclude=score_exclude(reader, graph),
    )


def predict_split(
    checkpoint: Path | Sequence[Path], split: EvalSplit, batch_size: int = 64
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The model's probabilities on ``split``, rows in the order of ``split.ids``, and its labels.

    Several checkpoints: their ensemble, the mean of their probabilities (as
    ``hmlc predict`` with several ``--checkpoint``).
    """
    from hmlc.engine.predictor import Predictor, inputs_from_dataset, load_member

    checkpoints = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
    members = [load_member(c, "torch") for c in checkpoints]
    predictor = Predictor(members, batch_size=batch_size, progress=False)
    inputs = split.inputs.get(predictor.load_size)
    if inputs is None:
        inputs = split.inputs[predictor.load_size] = inputs_from_dataset(
            split.dataset, split.split, root=split.root, params=split.params, image_size=predictor.load_size
        )
    probs = predictor.predict(inputs)
    row = {i: k for k, i in enumerate(inputs.ids)}
    missing = [i for i in split.ids if i not in row]
    if missing:
        raise DataError(
            f"{len(missing)} of the {len(split.ids)} samples of {split.dataset}/{split.split} were not predicted "
            f"(first: {missing[0]}); the dataset changed while the benchmark ran?"
        )
    return probs[[row[i] for i in split.ids]], predictor.labels


@dataclass(frozen=True)
class Scores:
    """AUC per label with its 95 % bootstrap interval, the mean AUC with its interval, micro/macro AU(PRC)."""

    labels: dict[str, dict[str, Any]]  # label -> auc, ci, n_pos, n_neg
    mean_auc: float
    mean_auc_ci: tuple[float, float]
    mean_over: tuple[str, ...]  # the labels with both classes, averaged
    micro_auprc: float
    macro_auprc: float
    auprc_labels: int
    n: int

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": self.labels, "mean_auc": json_number(self.mean_auc),
            "mean_auc_ci": [json_number(self.mean_auc_ci[0]), json_number(self.mean_auc_ci[1])],
            "mean_over": list(self.mean_over),
            "micro_auprc": json_number(self.micro_auprc), "macro_auprc": json_number(self.macro_auprc),
            "auprc_labels": self.auprc_labels, "n": self.n,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scores:
        ci = data["mean_auc_ci"]
        return cls(
            labels=dict(data["labels"]), mean_auc=_float(data["mean_auc"]), mean_auc_ci=(_float(ci[0]), _float(ci[1])),
            mean_over=tuple(data["mean_over"]), micro_auprc=_float(data["micro_auprc"]),
            macro_auprc=_float(data["macro_auprc"]), auprc_labels=int(data["auprc_labels"]), n=int(data["n"]),
        )


def score(
    ids: Sequence[str],
    codes: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    *,
    exclude: Sequence[str] = (),
    n_boot: int = 2000,
    seed: int = 0,
) -> Scores:
    """Scores of ``probs`` against ``codes`` (rows alike, columns ``labels``), as ``hmlc evaluate`` computes them.

    Labels in ``exclude`` are left out of every score (as a dataset's
    ``score_exclude`` asks); the others are averaged over as ``hmlc evaluate`` does.
    """
    from hmlc.evaluation import EvaluationData, evaluate

    kept = [k for k, label in enumerate(labels) if label not in set(exclude)]
    names = tuple(labels[k] for k in kept)
    data = EvaluationData(
        id_column="Path", ids=np.asarray(list(ids), dtype=object), labels=names,
        codes=np.asarray(codes, dtype=np.float64)[:, kept], probs=np.asarray(probs, dtype=np.float64)[:, kept],
        prediction_labels=names, prediction_probs=np.asarray(probs, dtype=np.float64)[:, kept],
    )
    result = evaluate(data, n_boot=n_boot, seed=seed)
    per_label = {
        r.label: {
            "auc": json_number(r.auc), "ci": [json_number(r.auc_ci[0]), json_number(r.auc_ci[1])],
            "n_pos": r.n_pos, "n_neg": r.n_neg,
        }
        for r in result.labels
    }
    ap = result.average_precision
    return Scores(
        labels=per_label, mean_auc=result.mean_auc, mean_auc_ci=result.mean_auc_ci,
        mean_over=tuple(r.label for r in result.labels if not math.isnan(r.auc)),
        micro_auprc=ap.micro if ap else math.nan, macro_auprc=ap.macro if ap else math.nan,
        auprc_labels=len(ap.labels) if ap else 0, n=result.n,
    )


def train_run(
    config: Any, parent: Path, command: str,
    pause_at: Sequence[int] = (), on_pause: Callable[[int], None] | None = None,
) -> tuple[Path, bool, float]:
    """Train ``config`` into ``parent/<output.name>``, or continue (or reuse) the run an earlier call left there.

    Returns the run directory, whether training is complete, and the seconds spent here.
    A folder trained with other settings is refused (:func:`hmlc.engine.ablation.earlier_run`).
    ``pause_at`` / ``on_pause(epoch)``: a callback part-way (:meth:`hmlc.engine.trainer.Trainer.fit`).
    """
    from hmlc.engine.ablation import earlier_run
    from hmlc.engine.trainer import train

    run_dir = Path(parent) / str(config.output.name)
    state = earlier_run(run_dir, config, command)
    if state == "done":
        say(f"{run_dir}: trained earlier, reused")
        return run_dir, True, 0.0
    t0 = time.perf_counter()
    if state == "interrupted":
        say(f"{run_dir}: continuing the training an earlier call left there")
        result = train(config, resume=run_dir, pause_at=pause_at, on_pause=on_pause)
    else:
        result = train(config, run_dir=parent, pause_at=pause_at, on_pause=on_pause)
    return result.run_dir, result.completed, time.perf_counter() - t0


def fingerprint(data: Any) -> str:
    """A short stable hash of JSON-able ``data`` (to tell whether a stored result is still the one asked for)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_json(path: Path) -> Any:
    """A JSON file hmlc wrote, or None when it is absent or unreadable (a result to compute again)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def fmt(x: float | None, digits: int = 3) -> str:
    """A score for a table or a progress line ("n/a" for none)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _float(x: float | None) -> float:
    return math.nan if x is None else float(x)


def check_out_folder(out: Path, inputs: Sequence[Path | None], data_roots: Sequence[Path | None] = ()) -> None:
    """Refuse an output folder that is (or lies inside) an input; refuse a file."""
    from hmlc.cli.paths import refuse_overwriting_inputs
    from hmlc.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder")
    refuse_overwriting_inputs({"--out": out}, [p for p in inputs if p is not None], data_roots)


def lock_out_folder(out: Path) -> Any:
    """Hold ``out`` for this process (a second benchmark writing there is refused); returns the lock holder."""
    from hmlc.engine.rundir import RunDirectory
    from hmlc.errors import ConfigError

    out.mkdir(parents=True, exist_ok=True)
    holder = RunDirectory(out)
    try:
        holder.lock()
    except HmlcError:
        raise ConfigError(f"--out {out} is in use by another hmlc benchmark; wait for it or give another folder") from None
    return holder

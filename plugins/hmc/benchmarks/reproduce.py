"""How close hmlc comes to C-HMCNN's published test AU(PRC): one final run per dataset and method.

For each dataset and method: the preset ``hmc/<dataset>/<method>`` (C-HMCNN's MLP, its hidden
size and epochs, trained on ``trainvalid``), trained by hmlc's Trainer, then the test split
scored once with micro-averaged average precision over every label but the excluded roots
(:func:`hmlc.evaluation.metrics.average_precision`, the metric of ``hmlc evaluate``). Prints
one Markdown row per run (dataset, method, epochs, batch, lr, ours, published, difference,
seconds) and appends it as JSON to ``--out`` so an interrupted sweep keeps what it measured.

    python plugins/hmc/benchmarks/reproduce.py [--datasets eisen_FUN,derisi_FUN] [--methods chmcnn]
        [--epochs N] [--batch-size B] [--lr LR] [--seed S] [--threads T] [--out results.jsonl]

``--epochs``, ``--batch-size`` and ``--lr`` override the preset (to test a cheaper recipe);
``--set KEY=VALUE`` passes any other override. Training validates on the test split after every
epoch as the preset says (hmlc's per-epoch validation; its cost is part of the seconds); the
score is the last epoch's weights, as in C-HMCNN's final run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "hmc"


def run_one(dataset: str, method: str, root: Path, overrides: list[str], work: Path) -> dict[str, object]:
    """Train the preset with ``overrides`` and score test micro AU(PRC); returns the row."""
    from hmlc.config import load_config
    from hmlc.plugins import get_host
    from hmlc.engine.inference import forward_images, outputs_to_probabilities
    from hmlc.engine.experiment import prepare_experiment
    from hmlc.engine.rundir import RunDirectory
    from hmlc.engine.runtime import setup_runtime, teardown_runtime
    from hmlc.engine.trainer import Trainer, output_kind
    from hmlc.evaluation.metrics import average_precision
    from hmlc_hmc.suite import load_suite

    config = load_config(
        None, f"hmc/{dataset}/{method}", [f"data.root={root}", "train.progress=false", *overrides],
        presets=get_host().preset,
    )
    published = load_suite().datasets[dataset].published_auprc  # read before training: nothing left to fail after it
    t0 = time.perf_counter()
    runtime = setup_runtime(
        config.train.device, config.train.precision, config.train.channels_last,
        config.train.deterministic, config.train.threads,
    )
    try:
        data = prepare_experiment(config)
        run = RunDirectory.create(work, f"{dataset}-{method}-{time.time_ns()}")
        trainer = Trainer(config, run, runtime, data)
        trainer.fit()
        t_train = time.perf_counter() - t0
        trainer.model.eval()
        outs = forward_images(trainer.model, data.valid.images, trainer._prepare, runtime.device, batch_size=512)
        stage = trainer.stages[-1]
        probs = outputs_to_probabilities(outs, data.graph, output_kind(stage), config.train.combine, data.multiclass)
        ap = average_precision(data.valid.codes, probs.cpu().numpy(), data.graph.labels, data.score_exclude)
    finally:
        teardown_runtime(runtime)
    return {
        "dataset": dataset, "method": method, "epochs": config.train.epochs, "batch_size": config.train.batch_size,
        "lr": config.train.lr, "width": config.model.backbone_params.get("width"), "seed": config.seed,
        "eval_split": config.data.eval_split, "micro_auprc": ap.micro, "macro_auprc": ap.macro,
        "published": published, "difference": None if published is None else ap.micro - published,
        "train_seconds": t_train, "seconds": time.perf_counter() - t0,
        "history": [h["train_loss"] for h in trainer.history],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="eisen_FUN", help="comma-separated dataset names")
    parser.add_argument("--methods", default="chmcnn", help="comma-separated: flat, ct, chmcnn")
    parser.add_argument("--root", type=Path, default=DATA, help="folder holding FUN/ and GO/")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--batch-size", type=int, help="override train.batch_size")
    parser.add_argument("--lr", type=float, help="override train.lr (and head_lr)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, help="append each row as one JSON line here")
    args = parser.parse_args()
    overrides = [f"seed={args.seed}", f"train.threads={args.threads}", *args.overrides]
    if args.epochs is not None:
        overrides += [f"train.epochs={args.epochs}", f"train.head_epochs={max(1, round(args.epochs / 10))}"]
    if args.batch_size is not None:
        overrides.append(f"train.batch_size={args.batch_size}")
    if args.lr is not None:
        overrides += [f"train.lr={args.lr}", f"train.head_lr={args.lr}"]
    print("| dataset | method | epochs | batch | lr | micro AU(PRC) | published | difference | seconds |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as work:
        for dataset in args.datasets.split(","):
            for method in args.methods.split(","):
                row = run_one(dataset, method, args.root, overrides, Path(work))
                pub = "-" if row["published"] is None else f"{row['published']:.3f}"
                diff = "-" if row["difference"] is None else f"{row['difference']:+.3f}"
                print(
                    f"| {dataset} | {method} | {row['epochs']} | {row['batch_size']} | {row['lr']:g} | "
                    f"{row['micro_auprc']:.3f} | {pub} | {diff} | {row['seconds']:.0f} |", flush=True,
                )
                if args.out is not None:
                    with args.out.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

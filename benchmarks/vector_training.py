"""Per-step time of hmlc's feature-vector training against a plain PyTorch loop, same process.

For a FunCat-sized (cellcycle_FUN: 77 features, 499 labels) and a GO-sized (cellcycle_GO:
4,125 labels) label graph, each of the methods flat, ct (stage 1, conditional loss) and
chmcnn (MCLoss), at batch 4 and 64, with the HMC suite's presets (C-HMCNN's MLP, Adam):

- hmlc: :meth:`hmlc.engine.trainer.Trainer._train_epoch` (the real trainer on the real
  dataset held in memory) over the first ``steps * batch`` training rows;
- plain: a hand-written loop over the same rows: the same MLP (``nn.Sequential`` of the same
  layers), the same Adam settings, the same loss function of hmlc (masked BCE, conditional
  masks computed once, MCLoss), inputs standardised once, ``index_select`` per batch.

Prints milliseconds per step of each, the ratio hmlc / plain, the plain loop with Adam's fused
kernel (``train.fused_adam``) and its speed-up, with ``--previous REV`` the plain loop with
MCLoss as it was at git revision REV (read with ``git show``) and its time over today's, and
the seconds of one validation pass of the trainer (per-label AUC on the eval split, once per epoch).

    python benchmarks/vector_training.py [--steps 150] [--threads 1] [--datasets cellcycle_FUN,cellcycle_GO]
                                         [--methods flat,ct,chmcnn] [--batches 4,64] [--root DIR] [--previous REV]

Needs the HMC files in ../shared/data/hmc (or ``--root``) and the hmlc-hmc plugin.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "data" / "hmc").is_dir():
            return base / "shared" / "data" / "hmc"
    raise SystemExit("vector_training: ../shared/data/hmc not found; pass --root DIR")


def plain_loop(  # type: ignore[no-untyped-def]
    trainer, stage, steps: int, batch: int, seed: int, mc_loss=None, fused: bool | None = None
) -> float:
    """Seconds per step of a hand-written loop with the trainer's model layout, optimiser settings and loss.

    ``mc_loss``: the MCLoss function to use (default hmlc's); ``fused``: Adam's fused kernel.
    """
    from hmlc.chain_rule import masked_bce_with_logits

    if mc_loss is None:
        from hmlc.max_constraint import mc_loss

    torch.manual_seed(seed)
    cfg = trainer.config
    data = trainer.data
    layers = [m for m in trainer.model.modules() if isinstance(m, (nn.Linear, nn.ReLU, nn.Dropout))]
    mlp = nn.Sequential(*[copy.deepcopy(m) for m in layers])  # the same layers, fresh copies
    x_all = trainer._train_vectors.detach()  # standardised once, by the Trainer
    targets, weights = data.encode(cfg.seed, 0, False)
    weights = trainer._stage_weights(stage, weights)  # conditional masks once
    t_all = torch.from_numpy(targets)
    w_all = torch.from_numpy(weights.astype(np.float32))
    graph = trainer.graph
    if stage.loss == "mcloss":
        def loss_fn(out: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return mc_loss(out, t, w, graph)
    else:
        loss_fn = masked_bce_with_logits
    opt = torch.optim.Adam(
        mlp.parameters(), lr=stage.lr, betas=tuple(cfg.train.betas), weight_decay=cfg.train.weight_decay, fused=fused
    )
    mlp.train()
    order = torch.randperm(len(x_all))
    t0 = time.perf_counter()
    n = 0
    for i in range(0, min(len(order), steps * batch), batch):
        idx = order[i : i + batch]
        out = mlp(x_all.index_select(0, idx))
        loss = loss_fn(out, t_all.index_select(0, idx), w_all.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += 1
    return (time.perf_counter() - t0) / n


def hmlc_steps(trainer, stage, batch: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Seconds per step of one epoch of the trainer's own loop, and its steps."""
    trainer._optimizer = torch.optim.Adam(
        trainer.model.parameters(), lr=stage.lr, betas=tuple(trainer.config.train.betas),
        weight_decay=trainer.config.train.weight_decay,
    )
    t0 = time.perf_counter()
    _, n_images = trainer._train_epoch(0, stage, 0, None)
    steps = -(-n_images // batch)
    return (time.perf_counter() - t0) / steps, steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=150, help="training steps timed per configuration")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--datasets", default="cellcycle_FUN,cellcycle_GO")
    ap.add_argument("--methods", default="flat,ct,chmcnn")
    ap.add_argument("--batches", default="4,64")
    ap.add_argument("--root", type=Path, help="folder holding FUN/ and GO/ (default ../shared/data/hmc)")
    ap.add_argument("--previous", metavar="REV", help="also time the plain loop with MCLoss at this git revision")
    args = ap.parse_args()
    previous_mc_loss = None
    if args.previous:
        from dag_scale import module_at

        previous_mc_loss = module_at(args.previous, "hmlc/max_constraint.py")["mc_loss"]
    from hmlc.config import load_config
    from hmlc.plugins import get_host
    from hmlc.engine.experiment import prepare_experiment
    from hmlc.engine.rundir import RunDirectory
    from hmlc.engine.runtime import setup_runtime, teardown_runtime
    from hmlc.engine.trainer import Trainer

    root = args.root or _data_root()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); ms per training step, best of hmlc vs plain")
    previous = f"plain@{args.previous}" if args.previous else ""
    print(f"{'dataset':<14} {'labels':>6} {'method':<7} {'batch':>5} {'steps':>5} | {'hmlc':>8} {'plain':>8} "
          f"{'ratio':>6} | {'fused':>8} {'ratio':>6} | {previous:>14} {'ratio':>6} | validation pass")
    with tempfile.TemporaryDirectory() as work:
        for dataset in args.datasets.split(","):
            for method in args.methods.split(","):
                for batch in map(int, args.batches.split(",")):
                    config = load_config(None, f"hmc/{dataset}/{method}", [
                        f"data.root={root}", f"train.threads={args.threads}", f"train.batch_size={batch}",
                        f"data.limit={args.steps * batch}", "train.progress=false", "train.device=cpu",
                    ], presets=get_host().preset)
                    runtime = setup_runtime("cpu", config.train.precision, False, config.train.deterministic, args.threads)
                    try:
                        data = prepare_experiment(config)
                        run = RunDirectory.create(Path(work), f"{dataset}-{method}-{batch}")
                        trainer = Trainer(config, run, runtime, data)
                        stage = trainer.stages[0]
                        ours, steps = hmlc_steps(trainer, stage, batch)
                        base = plain_loop(trainer, stage, args.steps, batch, config.seed)
                        fused = plain_loop(trainer, stage, args.steps, batch, config.seed, fused=True)
                        old = math.nan
                        if previous_mc_loss is not None and stage.loss == "mcloss":
                            old = plain_loop(trainer, stage, args.steps, batch, config.seed, mc_loss=previous_mc_loss)
                        t0 = time.perf_counter()
                        trainer.evaluate(stage)
                        val = time.perf_counter() - t0
                    finally:
                        teardown_runtime(runtime)
                    print(
                        f"{dataset:<14} {len(data.graph):>6} {method:<7} {batch:>5} {steps:>5} | {ours * 1e3:8.2f} "
                        f"{base * 1e3:8.2f} {ours / base:5.2f}x | {fused * 1e3:8.2f} {base / fused:5.2f}x | "
                        f"{old * 1e3:14.2f} {old / base:5.2f}x | {val:.2f} s on {len(data.valid)} rows", flush=True,
                    )


if __name__ == "__main__":
    main()

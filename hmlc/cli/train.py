"""``hmlc train`` and ``hmlc ablate``."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from hmlc.cli.info import add_config_arguments
from hmlc.cli.paths import experiment_inputs, refuse_overwriting_inputs
from hmlc.cli.render import print_table

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (default: the synthetic data, U-Ones+CT+LSR in two stages)",
        description="Train as configured. With no arguments: the built-in synthetic dataset, "
        "U-Ones+LSR with conditional training in two stages, a tiny CNN on the CPU.",
    )
    add_config_arguments(p)
    p.add_argument("--out", type=Path, metavar="DIR", help="parent folder of the run directory (output.dir)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    p.add_argument(
        "--stop-after-epochs", type=int, metavar="N",
        help="stop after N epochs (counted over stages) with a resumable checkpoint",
    )
    p.set_defaults(func=cmd_train)

    a = sub.add_parser(
        "ablate",
        help="train a grid of settings over seeds and write a Table-1-style table",
        description="Example: hmlc ablate --grid policy=u-ignore,u-zeros,u-ones --grid ct=off,on --seeds 3",
    )
    add_config_arguments(a)
    a.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2",
        help="one axis of the grid: policy=..., ct=off,on, backbone=..., or any dotted config key (repeatable)",
    )
    a.add_argument("--seeds", type=int, default=1, help="seeds per setting (default 1)")
    a.add_argument(
        "--out", type=Path, default=Path("ablation"), metavar="DIR",
        help="output folder (default ./ablation); rerun with the same folder to continue",
    )
    a.add_argument(
        "--dry-run", action="store_true",
        help="validate every setting and show what each run directory holds; train nothing",
    )
    a.set_defaults(func=cmd_ablate)


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def cmd_train(args: argparse.Namespace) -> int:
    from hmlc.config import load_config
    from hmlc.engine.trainer import train
    from hmlc.errors import ConfigError

    if args.resume is not None and (args.config or args.preset or args.overrides):
        raise ConfigError("--resume continues a run with its saved config.yaml; drop --config/--preset/--set")
    if args.stop_after_epochs is not None and args.stop_after_epochs < 1:
        raise ConfigError("--stop-after-epochs must be at least 1")
    config = None if args.resume else load_config(args.config, args.preset, args.overrides)
    if config is not None and args.out is not None:
        config = config.model_copy(update={"output": config.output.model_copy(update={"dir": args.out})})
    if config is not None:
        refuse_overwriting_inputs({"output.dir": config.output.dir}, experiment_inputs(config, args.config))
    result = train(config, resume=args.resume, stop_after_epochs=args.stop_after_epochs)  # type: ignore[arg-type]
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports
    if not result.completed:
        print(f"stopped early; continue with: hmlc train --resume {result.run_dir}")
        return 0
    rows = [[a.label, _fmt(a.auc), a.n_pos, a.n_neg] for a in result.final]
    print()
    print_table(["label", "AUC", "pos", "neg"], rows, align_right=(1, 2, 3))
    shown = result.mean_labels or ()
    over = (
        f" over {', '.join(shown)}" if 0 < len(shown) <= 12
        else f" over {len(shown)} labels ({', '.join(shown[:3])}, ...; results.json lists them)" if shown else ""
    )
    print(f"mean AUC{over}: {_fmt(result.final_mean)}   (best epoch: {_fmt(result.best_mean)})")
    print(f"run directory: {result.run_dir}")
    if result.best_checkpoint:
        print(f"best checkpoint: {result.best_checkpoint}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from hmlc.engine.ablation import parse_grid, plan_ablation, progress_of, run_ablation

    grid = parse_grid(args.grid)
    if args.dry_run:
        plan = plan_ablation(args.config, args.preset, args.overrides, grid, args.seeds, args.out)
        states = {None: "to train", "done": "finished"}
        print_table(
            ["setting", "seed", "run directory", "state"],
            [[p.setting, p.config.seed, p.run_dir, states.get(p.state) or progress_of(p)] for p in plan],
        )
        left = sum(p.state != "done" for p in plan)
        print(f"{len(plan)} runs, {left} to train or continue; nothing was trained (--dry-run)")
        return 0
    from hmlc.engine.interrupt import Interrupted

    try:
        table = run_ablation(args.config, args.preset, args.overrides, grid, args.seeds, args.out)
    except Interrupted as exc:
        if not exc.hint:
            raise
        # The run continues from its checkpoint when the same ablation runs again.
        raise Interrupted(exc.signum, exc.what, f"continue with the same hmlc ablate command (--out {args.out})") from None
    print()
    print(table.markdown())
    print(f"tables written to {args.out}/table.md, table.csv, table.json")
    return 0

"""Flat vs conditional training and the uncertainty policies on the synthetic data.

Not a test: a measurement. It runs the same grid as
``hmlc ablate --grid policy=... --grid ct=off,on --seeds 3`` with the default
training recipe (tiny CNN, CPU) and prints the Table-1-style table, plus the
effect of CT and of LSR as paired differences over seeds.

    python benchmarks/ablation_synthetic.py [--seeds 3] [--out benchmarks/out/ablation_synthetic]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hmlc.engine.ablation import parse_grid, run_ablation

POLICIES = "u-ignore,u-zeros,u-zeros-lsr,u-ones,u-ones-lsr"


def paired_effects(runs: list[dict]) -> list[tuple[str, float, float]]:
    """Mean AUC differences (mean and std over seeds) for CT and for LSR, paired by seed."""
    by = {(r["setting"], r["seed"]): r["aucs"]["mean"] for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    out = []
    for policy in POLICIES.split(","):
        diffs = [by[(f"{policy}+CT", s)] - by[(policy, s)] for s in seeds if (policy, s) in by and (f"{policy}+CT", s) in by]
        if diffs:
            out.append((f"CT on {policy}", float(np.mean(diffs)), float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0))
    for base in ("u-zeros", "u-ones"):
        for ct in ("", "+CT"):
            diffs = [by[(f"{base}-lsr{ct}", s)] - by[(f"{base}{ct}", s)] for s in seeds if (f"{base}{ct}", s) in by and (f"{base}-lsr{ct}", s) in by]
            if diffs:
                out.append((f"LSR on {base}{ct}", float(np.mean(diffs)), float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/ablation_synthetic"))
    parser.add_argument("--set", dest="overrides", action="append", default=["train.progress=false", "output.tensorboard=false"])
    args = parser.parse_args()
    t0 = time.perf_counter()
    grid = parse_grid([f"policy={POLICIES}", "ct=off,on"])
    table = run_ablation(None, None, args.overrides, grid, args.seeds, args.out)
    elapsed = time.perf_counter() - t0
    runs = json.loads((args.out / "table.json").read_text())["runs"]
    print()
    print(table.markdown())
    print("Paired effects on the mean AUC (mean ± std over seeds):")
    for name, mean, std in paired_effects(runs):
        print(f"  {name:24s} {mean:+.4f} ± {std:.4f}")
    print(f"\n{len(runs)} runs in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()

"""``hmlc benchmark``: a cross-dataset matrix from a benchmark file, or a registered benchmark suite."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="train and score models across datasets (--config FILE) or run a benchmark suite (--suite NAME)",
        description="Two kinds of benchmark, both resumable: run the same command again to continue. "
        "--config FILE: the experiments and evaluation datasets of a benchmark file; writes matrix.md, "
        "matrix.csv, matrix.json and matrix.png (AUC per shared label and the mean, with 95%% bootstrap "
        "intervals). --suite NAME: a registered suite (`hmlc list benchmark_suites`): for each dataset x "
        "method x seed, settings chosen on the selection split, the final model scored on the test split "
        "once; writes results.json, results.md and results.png. See docs/benchmarking.md and "
        "docs/hmc-benchmark.md. Example: hmlc benchmark --suite hmc --data ../shared/data/hmc "
        "--datasets pheno_FUN --methods flat,chmcnn --grid train.epochs=5,10 --jobs 2 --out bench/",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", type=Path, metavar="FILE", help="a benchmark file (YAML): experiments and datasets")
    what.add_argument("--suite", metavar="NAME", help="a registered benchmark suite, e.g. hmc")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (runs, scores, results)")
    p.add_argument("--data", type=Path, metavar="DIR", help="--suite: the folder holding the suite's datasets")
    p.add_argument("--datasets", metavar="A,B,...", help="--suite: only these datasets (default: all)")
    p.add_argument("--methods", metavar="M1,M2,...", help="--suite: only these methods (default: all)")
    p.add_argument("--seeds", type=int, default=1, metavar="N", help="--suite: seeds 0..N-1 per dataset and method (default 1)")
    p.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2",
        help="--suite: replace the values the search tries for one key, e.g. --grid train.epochs=5,10 (repeatable)",
    )
    p.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="--suite: run N dataset x method x seed units at once, each in a worker process with "
        "cores/N torch threads (default 1: one unit at a time, in this process)",
    )
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="--suite: override one setting of every run, e.g. --set train.threads=2 (repeatable)",
    )
    p.set_defaults(func=cmd_benchmark, benchmark_parser=p)


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def cmd_benchmark(args: argparse.Namespace) -> int:
    from hmlc.errors import ConfigError

    if args.config is not None:
        given = [o for o, v in (("--data", args.data), ("--datasets", args.datasets), ("--methods", args.methods),
                                ("--grid", args.grid), ("--set", args.overrides)) if v]
        given += [o for o, v in (("--seeds", args.seeds), ("--jobs", args.jobs)) if v != 1]
        if given:
            shown = ", ".join(given)
            raise ConfigError(f"{shown} apply to --suite; with --config the benchmark file says everything")
        from hmlc.benchmark.matrix import run_matrix

        doc = run_matrix(args.config, args.out)
        n = sum(len(v) for v in doc["cells"].values())
        print(f"matrix of {len(doc['experiments'])} experiment(s) x {len(doc['datasets'])} dataset(s) ({n} cells) "
              f"written to {args.out}/matrix.md (and matrix.csv, matrix.json, matrix.png)")
        return 0
    from hmlc.benchmark.suite import SuiteRequest, run_suite
    from hmlc.engine.ablation import parse_grid

    request = SuiteRequest(
        data=args.data, datasets=_names(args.datasets), methods=_names(args.methods), seeds=args.seeds,
        grid={k: tuple(v) for k, v in parse_grid(args.grid)} if args.grid else {}, sets=tuple(args.overrides),
        jobs=args.jobs,
    )
    doc = run_suite(args.suite, request, args.out)
    runs = sum(len(m["seeds"]) for d in doc["datasets"].values() for m in d["methods"].values())
    print(f"suite {args.suite}: {runs} run(s) of {len(doc['datasets'])} dataset(s) written to "
          f"{args.out}/results.md (and results.json, results.png)")
    return 0

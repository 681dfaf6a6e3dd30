"""``hmlc prepare``: decode and preprocess every image once into the preprocessed-image cache."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from hmlc.cli.info import add_config_arguments
from hmlc.cli.paths import experiment_inputs, refuse_overwriting_inputs
from hmlc.cli.render import print_table

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="decode and preprocess every image once into the preprocessed-image cache",
        description="Build the preprocessed-image cache of a configuration's splits, so that training "
        "reads ready images instead of decoding files. Resolves the configuration like `hmlc train`; "
        "an interrupted run continues where it stopped. The cache lives in --cache DIR, else "
        "$HMLC_CACHE, else ~/.cache/hmlc (never in the dataset folder).",
    )
    add_config_arguments(p)
    p.add_argument("--cache", type=Path, metavar="DIR", help="cache root (default: $HMLC_CACHE or ~/.cache/hmlc)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per CPU)")
    p.add_argument(
        "--splits", metavar="S1,S2",
        help="comma-separated splits (default: data.train_split and data.eval_split)",
    )
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    from hmlc.config import load_config
    from hmlc.engine.experiment import build_caches, experiment_cache_root
    from hmlc.errors import ConfigError

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    splits = None
    if args.splits is not None:
        splits = [s.strip() for s in args.splits.split(",") if s.strip()]
        if not splits:
            raise ConfigError("--splits is empty; give split names such as train,valid")
    config = load_config(args.config, args.preset, args.overrides)
    refuse_overwriting_inputs({"--cache": experiment_cache_root(config, args.cache)}, experiment_inputs(config, args.config))
    start = time.perf_counter()
    builds = build_caches(config, cache_dir=args.cache, splits=splits, workers=args.workers, progress=True)
    seconds = time.perf_counter() - start
    rows = []
    for name, b in builds.items():
        status = "already complete" if b.already_complete else "resumed" if b.resumed else "built"
        rate = "-" if math.isnan(b.images_per_s) else f"{b.images_per_s:.0f}"
        rows.append([name, b.images, b.processed, f"{b.seconds:.1f}", rate, status, str(b.entry_dir)])
    print_table(["split", "images", "processed", "seconds", "img/s", "status", "entry"], rows, align_right=(1, 2, 3, 4))
    processed = sum(b.processed for b in builds.values())
    if processed:
        print(f"{processed} images prepared in {seconds:.1f}s, reading the tables and fitting included")
    built_in, read_from = experiment_cache_root(config, args.cache), experiment_cache_root(config)
    if built_in.expanduser().resolve() != read_from.expanduser().resolve():
        print(
            f"note: training reads the cache from {read_from}; to use this one, set data.cache_dir={built_in} or HMLC_CACHE={built_in}",
            file=sys.stderr,
        )
    return 0

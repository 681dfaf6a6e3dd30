"""``hmlc synth export``: write the built-in synthetic dataset in CheXpert's CSV layout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="the built-in synthetic dataset")
    ssub = p.add_subparsers(dest="synth_command", metavar="ACTION", required=True, parser_class=type(p))
    e = ssub.add_parser("export", help="write images and CheXpert-style train.csv / valid.csv to DIR")
    e.add_argument("directory", type=Path, metavar="DIR")
    e.add_argument("--n", type=int, default=2000, help="number of images (default 2000)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--image-size", type=int, default=64)
    e.add_argument("--valid-fraction", type=float, default=0.2)
    e.add_argument("--json", action="store_true", help="print the summary as JSON")
    e.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from hmlc.data.synthetic import export_synthetic
    from hmlc.errors import ConfigError

    if args.n < 2:
        raise ConfigError(f"--n {args.n}: export at least 2 images")
    if not 0 < args.valid_fraction < 1:
        raise ConfigError(f"--valid-fraction {args.valid_fraction}: give a fraction between 0 and 1")
    if args.image_size < 8:
        raise ConfigError(f"--image-size {args.image_size}: give at least 8 pixels")
    summary = export_synthetic(
        args.directory, n=args.n, seed=args.seed, image_size=args.image_size, valid_fraction=args.valid_fraction
    )
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(f"wrote the synthetic dataset to {args.directory}")
        for key, value in summary.items():
            print(f"  {key}: {value}")
        print(f"train on it with: hmlc train --set data.dataset=csv --set data.root={args.directory} "
              "--set hierarchy=synthetic")
    return 0

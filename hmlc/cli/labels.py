"""``hmlc labels export``: a split's labels as the labels CSV that ``hmlc evaluate`` reads."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hmlc.cli.info import add_config_arguments

__all__ = ["add_parsers", "labels_csv_text"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "labels",
        help="work with a dataset's labels (export a split as a labels CSV)",
        description="Commands on a dataset's labels.",
    )
    actions = p.add_subparsers(dest="labels_command", metavar="ACTION", parser_class=type(p))
    e = actions.add_parser(
        "export",
        help="write a split's labels as the labels CSV `hmlc evaluate` reads",
        description="Write the labels of one split of the configured dataset (data.dataset, or --dataset) as "
        "a labels CSV: a Path column with the sample ids and one column per label of the hierarchy holding "
        "1 / 0 / -1 / blank. Example: hmlc labels export --dataset synthetic --split valid --closure "
        "--out valid_labels.csv",
    )
    add_config_arguments(e)
    e.add_argument("--dataset", metavar="NAME", help="registered dataset (default: data.dataset of the configuration)")
    e.add_argument("--split", required=True, metavar="SPLIT", help="the split to export, e.g. valid")
    e.add_argument(
        "--closure", action="store_true",
        help="close the labels over the hierarchy first (a positive child makes its ancestors positive)",
    )
    e.add_argument("--out", required=True, type=Path, metavar="FILE", help="labels CSV to write")
    e.set_defaults(func=cmd_labels_export)
    p.set_defaults(func=lambda args: p.error("give an action: export"))


def labels_csv_text(ids: list[str], codes: np.ndarray, labels: tuple[str, ...]) -> str:
    """The labels CSV: ``Path`` then one column per label, codes written 1 / 0 / -1 or blank."""
    import pandas as pd

    def cell(v: float) -> str:
        return "" if np.isnan(v) else str(int(v))

    frame = pd.DataFrame({label: [cell(v) for v in codes[:, k]] for k, label in enumerate(labels)})
    frame.insert(0, "Path", ids)
    return frame.to_csv(index=False)


def cmd_labels_export(args: argparse.Namespace) -> int:
    from hmlc.config import load_config
    from hmlc.engine.experiment import experiment_source, resolve_hierarchy
    from hmlc.engine.rundir import atomic_write_text
    from hmlc.errors import DataError
    from hmlc.plugins import get_host

    config = load_config(args.config, args.preset, args.overrides)
    if args.dataset:
        config = config.model_copy(update={"data": config.data.model_copy(update={"dataset": args.dataset})})
    reader = get_host().dataset(config.data.dataset)
    reader.check_split(args.split)
    graph = resolve_hierarchy(config, reader)
    loaded = experiment_source(config, reader).load(args.split, graph.labels, graph)
    table = loaded.table
    codes = table.codes()
    changed = 0
    if args.closure:
        codes, per_label = graph.closure(codes)
        changed = sum(per_label.values())
    text = labels_csv_text([str(v) for v in table.frame["id"]], codes, graph.labels)
    try:
        atomic_write_text(args.out, text)
    except OSError as exc:
        raise DataError(f"cannot write labels to {args.out}: {exc.strerror or exc}") from None
    closed = f"; closure changed {changed} codes" if args.closure else ""
    print(f"wrote {len(table)} rows x {len(graph.labels)} labels of {config.data.dataset}/{args.split} to {args.out}{closed}")
    return 0

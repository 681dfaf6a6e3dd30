"""``hmlc evaluate``: AUCs with bootstrap CIs, readers, DeLong, coherence, calibration, reports."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shlex
import sys
import tempfile
from pathlib import Path

from hmlc.cli.paths import refuse_overwriting_inputs
from hmlc.cli.render import print_table

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a predictions CSV against a labels CSV (AUC + CI, readers, DeLong, report)",
        description="Join predictions and labels by their id column (Study or Path; Study predictions "
        "against labels by Path are joined by the study of each path, a study positive if any of its "
        "images is), match label columns by name, and compute per label AUC with a bootstrap CI, PR-AUC, "
        "the ROC and PR curves, sensitivity and specificity at Youden's J and at a fixed sensitivity; the "
        "mean AUC with its CI; micro and macro average precision; readers' operating points against the "
        "curve; DeLong's test against --compare; the coherence rate over --hierarchy; ECE. Labels coded "
        "-1 or blank are excluded per label. Example: hmlc evaluate --predictions preds.csv --labels "
        "test_labels.csv --radiologists readers/ --labels-subset chexpert5 --out report/",
    )
    p.add_argument("--predictions", type=Path, required=True, metavar="P.csv",
                   help="id column + one probability column per label")
    p.add_argument("--labels", type=Path, required=True, metavar="L.csv",
                   help="the same id column (or Path, for Study predictions) + one column per label "
                   "holding 1, 0, -1 or blank")
    p.add_argument("--radiologists", type=Path, metavar="DIR",
                   help="a folder of readers' labels CSVs (1/0), one per reader, named by file stem")
    p.add_argument("--labels-subset", metavar="chexpert5|A,B,...",
                   help="evaluate only these labels (default: every label in both files)")
    p.add_argument("--exclude", metavar="roots|A,B,...",
                   help="labels left out of the micro/macro average precision (their AUCs are still "
                   "reported); 'roots': the roots of --hierarchy")
    p.add_argument("--checkpoint", type=Path, action="append", metavar="DIR",
                   help="the checkpoint(s) that produced the predictions (repeatable): recorded in the "
                   "report, and its score_exclude is the default --exclude")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                   help="bootstrap resamples for the confidence intervals (default 2000; 0: none; at most 100000)")
    p.add_argument("--compare", type=Path, metavar="Q.csv",
                   help="a second predictions CSV: DeLong's test of the AUC difference per label")
    p.add_argument("--hierarchy", metavar="NAME|FILE",
                   help="a registered hierarchy or a hierarchy file: report the coherence rate")
    p.add_argument("--label-map", metavar="NAME",
                   help="map the labels CSV (in the map's source labels) into its target's labels, the labels "
                   "of the predictions (`hmlc list label_maps`)")
    p.add_argument("--dataset", metavar="NAME",
                   help="the dataset the labels come from: its protocol decides whether the truth is "
                   "closed over the hierarchy (see --closure) and gives the default --hierarchy")
    closure = p.add_mutually_exclusive_group()
    closure.add_argument("--closure", dest="closure", action="store_true", default=None,
                         help="close the truth over the hierarchy first: a positive label makes every "
                         "ancestor positive (default: the --dataset's protocol, else no)")
    closure.add_argument("--no-closure", dest="closure", action="store_false",
                         help="score the labels as given, whatever the dataset's protocol")
    p.add_argument("--sensitivity", type=float, default=0.9, metavar="S",
                   help="the fixed sensitivity of the second operating point per label (default 0.9)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write metrics.json, report.md, report.html and the PNGs here")
    p.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    p.set_defaults(func=cmd_evaluate, evaluate_parser=p)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _command_line(args: argparse.Namespace) -> str:
    """The ``hmlc evaluate`` command that produced ``args`` (options left at their default omitted)."""
    words = ["hmlc", "evaluate"]
    for action in args.evaluate_parser._actions:
        if not action.option_strings or action.dest in ("help",):
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == action.default and action.dest != "closure":
            continue
        if action.dest == "closure":
            if isinstance(action.const, bool) and value is action.const:
                words.append(action.option_strings[0])
            continue
        for one in value if isinstance(value, list) else [value]:
            words.append(action.option_strings[0])
            if action.nargs != 0:
                words.append(str(one))
    return " ".join(shlex.quote(w) for w in words)


def _provenance(args: argparse.Namespace, checkpoints: dict[Path, dict]) -> dict[str, str]:
    """What produced the report: the files (with their sha256), the checkpoints, hmlc's version, the command."""
    import hmlc

    out = {
        "predictions": str(args.predictions.resolve()),
        "predictions sha256": _sha256(args.predictions),
        "labels": str(args.labels.resolve()),
        "labels sha256": _sha256(args.labels),
    }
    if args.compare:
        out["compared predictions"] = str(args.compare.resolve())
        out["compared sha256"] = _sha256(args.compare)
    if args.radiologists:
        out["radiologists"] = str(args.radiologists.resolve())
    if args.hierarchy:
        out["hierarchy"] = str(args.hierarchy)
    if args.label_map:
        out["label map"] = args.label_map
    for i, (path, meta) in enumerate(checkpoints.items()):
        key = "checkpoint" if len(checkpoints) == 1 else f"checkpoint {i + 1}"
        out[key] = str(path.resolve())
        config = meta.get("config") or {}
        data = config.get("data") or {}
        described = {
            "trained with hmlc": meta.get("hmlc_version"), "backbone": meta.get("backbone"),
            "stage": meta.get("stage"), "hierarchy": meta.get("hierarchy_name"),
            "dataset": data.get("dataset"), "data root": data.get("root"),
            "config sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest() if config else None,
        }
        out[f"{key} details"] = ", ".join(f"{k} {v}" for k, v in described.items() if v not in (None, ""))
    out["hmlc version"] = hmlc.__version__
    out["command"] = _command_line(args)
    return out


def _closure_choice(args: argparse.Namespace) -> tuple[bool, str, str | None]:
    """(close the truth?, why, the hierarchy to use) from --closure/--no-closure/--dataset/--hierarchy."""
    from hmlc.errors import ConfigError

    hierarchy = args.hierarchy
    if args.dataset:
        from hmlc.plugins import get_host

        reader = get_host().dataset(args.dataset)
        hierarchy = hierarchy or getattr(reader, "default_hierarchy", "") or None
    if args.closure is not None:
        close, why = args.closure, "--closure" if args.closure else "--no-closure"
    elif args.dataset:
        close = bool(getattr(reader, "default_eval_closure", False))
        why = f"the protocol of dataset {args.dataset}"
    else:
        close, why = False, "the default without --closure or --dataset"
    if close and not hierarchy:
        raise ConfigError(f"{why} closes the truth over a hierarchy: give --hierarchy NAME|FILE")
    return close, why, hierarchy


def _checkpoints(paths: list[Path] | None) -> dict[Path, dict]:
    """The metadata of each --checkpoint (a checkpoint folder or file, or a run directory: its best), read without its tensors."""
    if not paths:
        return {}
    from hmlc.engine.predictor import resolve_checkpoint
    from hmlc.models.checkpoint import read_checkpoint_metadata

    resolved = [resolve_checkpoint(path) for path in paths]
    return {path: read_checkpoint_metadata(path) for path in resolved}


def _score_exclude(checkpoints: dict[Path, dict], labels: tuple[str, ...]) -> tuple[str, ...]:
    """The labels the checkpoints' protocol leaves out of the AP (``score_exclude``), among ``labels``."""
    named: list[str] = []
    for meta in checkpoints.values():
        named += [str(x) for x in meta.get("score_exclude") or ()]
    return tuple(label for label in dict.fromkeys(named) if label in labels)


def _excluded(spec: str | None, labels: tuple[str, ...], graph: object | None) -> tuple[str, ...]:
    from hmlc.errors import ConfigError

    if not spec:
        return ()
    names: list[str] = []
    for name in (s.strip() for s in spec.split(",")):
        if name == "roots":
            if graph is None:
                raise ConfigError("--exclude roots needs --hierarchy (or a --dataset with a default hierarchy)")
            names += [r for r in graph.roots if r in labels]
        elif name:
            if name not in labels:
                raise ConfigError(f"--exclude: {name!r} is not an evaluated label; evaluated: {', '.join(labels)}")
            names.append(name)
    return tuple(dict.fromkeys(names))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hmlc.errors import ConfigError, DataError
    from hmlc.evaluation.bootstrap import check_resamples
    from hmlc.evaluation.evaluator import evaluate
    from hmlc.evaluation.io import load_evaluation_data
    from hmlc.evaluation.report import metrics_json, write_report

    check_resamples(args.bootstrap, 0)  # before reading anything; evaluate() checks the memory with n
    if not 0 < args.sensitivity <= 1:
        raise ConfigError(f"--sensitivity {args.sensitivity}: give a share of positives in (0, 1], e.g. 0.9")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder")
    refuse_overwriting_inputs({"--out": args.out}, [args.predictions, args.labels, args.radiologists, args.compare])
    checkpoints = _checkpoints(args.checkpoint)
    close, closure_choice, hierarchy = _closure_choice(args)
    graph = None
    if hierarchy:
        from hmlc.plugins import get_host

        graph = get_host().hierarchy(hierarchy)
    labels_file = args.labels
    scratch = tempfile.TemporaryDirectory(prefix="hmlc-label-map-") if args.label_map else contextlib.nullcontext()
    with scratch as folder:
        if args.label_map:  # the labels CSV mapped into the map's target labels, in a temporary folder
            from hmlc.labelmaps import mapped_labels_file

            labels_file = mapped_labels_file(args.label_map, args.labels, Path(folder),
                                             lambda line: print(f"hmlc evaluate: {line}", file=sys.stderr))
        data = load_evaluation_data(args.predictions, labels_file, args.radiologists, args.compare,
                                    args.labels_subset, closure=graph if close else None)
    exclude = _excluded(args.exclude, data.labels, graph) if args.exclude else _score_exclude(checkpoints, data.labels)
    result = evaluate(data, n_boot=args.bootstrap, seed=args.seed, graph=graph if args.hierarchy else None,
                      exclude=exclude, sensitivity=args.sensitivity)
    result = replace(result, closure_choice=closure_choice, provenance=_provenance(args, checkpoints))
    shown_notes = result.notes if len(result.notes) <= 12 else result.notes[:5]
    for note in shown_notes:
        print(f"hmlc evaluate: {note}", file=sys.stderr)
    if len(shown_notes) < len(result.notes):
        print(f"hmlc evaluate: ... and {len(result.notes) - len(shown_notes)} more such notes "
              "(labels without both classes are left out of the mean AUC; metrics.json has every label)",
              file=sys.stderr)
    for warning in result.warnings:
        print(f"hmlc evaluate: warning: {warning}", file=sys.stderr)
    if args.out is not None:
        compare_name = args.compare.name.removesuffix(".gz").removesuffix(".csv") if args.compare else "compared"
        try:
            write_report(result, args.out, compare_name=compare_name)
        except OSError as exc:
            raise DataError(f"cannot write the report to {args.out}: {exc.strerror or exc}") from None
    if args.json:
        sys.stdout.write(metrics_json(result))
        return 0
    _print_summary(result)
    if args.out is not None:
        print(f"report written to {args.out}/report.html (and report.md, metrics.json)")
    return 0


def _print_summary(result: object) -> None:
    header = ["label", "AUC", "95% CI", "PR-AUC", "sens", "spec", "pos", "neg", "excl"]
    if result.has_readers:
        header.append("below")
    if result.compared:
        header.append("DeLong p")
    rows = []
    for r in result.labels:
        youden = r.thresholds[0] if r.thresholds else None
        row = [r.label, _fmt(r.auc), f"{_fmt(r.auc_ci[0])}-{_fmt(r.auc_ci[1])}", _fmt(r.pr_auc),
               _fmt(None if youden is None else youden.sensitivity, 2),
               _fmt(None if youden is None else youden.specificity, 2), r.n_pos, r.n_neg, r.n_excluded]
        if result.has_readers:
            row.append("n/a" if r.radiologists_below is None else f"{r.radiologists_below}/{len(r.readers)}")
        if result.compared:
            row.append("n/a" if r.delong is None else f"{r.delong.p:.3g}")
        rows.append(row)
    print_table(header, rows, align_right=tuple(range(1, len(header))))
    print("(sens, spec: at the threshold of Youden's J)")
    print(f"mean AUC {_fmt(result.mean_auc)} [{_fmt(result.mean_auc_ci[0])}, {_fmt(result.mean_auc_ci[1])}] "
          f"over {sum(r.auc == r.auc for r in result.labels)} labels, n = {result.n}")
    ap = result.average_precision
    if ap is not None:
        left_out = f", excluding {', '.join(ap.excluded)}" if ap.excluded else ""
        print(f"average precision micro {_fmt(ap.micro)}, macro {_fmt(ap.macro)} over {len(ap.labels)} labels{left_out}")
    if result.study_aggregation is not None:
        agg = result.study_aggregation
        print(f"by study: {agg.images} label rows -> {agg.studies} studies (a study is positive if any image is)")
    if result.closure is not None:
        print(f"truth closed over {result.closure.hierarchy}: {result.closure.codes_changed} codes changed")
    if result.has_readers:
        print(f"readers below the curve, mean over labels: {_fmt(result.radiologists_below_mean, 2)}")
    if result.coherence is not None:
        print(f"coherence {_fmt(result.coherence.rate, 4)} ({result.coherence.violations} violations)")
    print(f"ECE {_fmt(result.ece, 4)}")
    for warning in result.warnings:
        print(f"WARNING: {warning}")

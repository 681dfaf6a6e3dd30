"""``hmlc evaluate``: AUCs with bootstrap CIs, readers, DeLong, coherence, calibration, reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hmlc.cli.render import print_table

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a predictions CSV against a labels CSV (AUC + CI, readers, DeLong, report)",
        description="Join predictions and labels by their id column (Study or Path), match label columns "
        "by name, and compute per label AUC with a bootstrap CI, PR-AUC and the ROC curve; the mean AUC "
        "with its CI; readers' operating points against the curve; DeLong's test against --compare; "
        "the coherence rate over --hierarchy; ECE. Labels coded -1 or blank are excluded per label. "
        "Example: hmlc evaluate --predictions preds.csv --labels test_labels.csv --radiologists readers/ "
        "--labels-subset chexpert5 --out report/",
    )
    p.add_argument("--predictions", type=Path, required=True, metavar="P.csv",
                   help="id column + one probability column per label")
    p.add_argument("--labels", type=Path, required=True, metavar="L.csv",
                   help="the same id column + one column per label holding 1, 0, -1 or blank")
    p.add_argument("--radiologists", type=Path, metavar="DIR",
                   help="a folder of readers' labels CSVs (1/0), one per reader, named by file stem")
    p.add_argument("--labels-subset", metavar="chexpert5|A,B,...",
                   help="evaluate only these labels (default: every label in both files)")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                   help="bootstrap resamples for the confidence intervals (default 2000; 0: none; at most 100000)")
    p.add_argument("--compare", type=Path, metavar="Q.csv",
                   help="a second predictions CSV: DeLong's test of the AUC difference per label")
    p.add_argument("--hierarchy", metavar="NAME|FILE",
                   help="a registered hierarchy or a hierarchy file: report the coherence rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write metrics.json, report.md, report.html and the PNGs here")
    p.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    p.set_defaults(func=cmd_evaluate)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hmlc.errors import ConfigError, DataError
    from hmlc.evaluation.bootstrap import check_resamples
    from hmlc.evaluation.evaluator import evaluate
    from hmlc.evaluation.io import load_evaluation_data
    from hmlc.evaluation.report import metrics_json, write_report

    check_resamples(args.bootstrap, 0)  # before reading anything; evaluate() checks the memory with n
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder")
    graph = None
    if args.hierarchy:
        from hmlc.plugins import get_host

        graph = get_host().hierarchy(args.hierarchy)
    data = load_evaluation_data(args.predictions, args.labels, args.radiologists, args.compare, args.labels_subset)
    result = evaluate(data, n_boot=args.bootstrap, seed=args.seed, graph=graph)
    for note in result.notes:
        print(f"hmlc evaluate: {note}", file=sys.stderr)
    if args.out is not None:
        sources = {"predictions": str(args.predictions), "labels": str(args.labels)}
        if args.radiologists:
            sources["radiologists"] = str(args.radiologists)
        if args.compare:
            sources["compared with"] = str(args.compare)
        if args.hierarchy:
            sources["hierarchy"] = str(args.hierarchy)
        compare_name = args.compare.name.removesuffix(".gz").removesuffix(".csv") if args.compare else "compared"
        try:
            write_report(result, args.out, sources, compare_name)
        except OSError as exc:
            raise DataError(f"cannot write the report to {args.out}: {exc.strerror or exc}") from None
    if args.json:
        sys.stdout.write(metrics_json(result))
        return 0
    header = ["label", "AUC", "95% CI", "PR-AUC", "pos", "neg", "excl"]
    if result.has_readers:
        header.append("below")
    if result.compared:
        header.append("DeLong p")
    rows = []
    for r in result.labels:
        row = [r.label, _fmt(r.auc), f"{_fmt(r.auc_ci[0])}-{_fmt(r.auc_ci[1])}", _fmt(r.pr_auc),
               r.n_pos, r.n_neg, r.n_excluded]
        if result.has_readers:
            row.append("n/a" if r.radiologists_below is None else f"{r.radiologists_below}/{len(r.readers)}")
        if result.compared:
            row.append("n/a" if r.delong is None else f"{r.delong.p:.3g}")
        rows.append(row)
    print_table(header, rows, align_right=tuple(range(1, len(header))))
    print(f"mean AUC {_fmt(result.mean_auc)} [{_fmt(result.mean_auc_ci[0])}, {_fmt(result.mean_auc_ci[1])}] "
          f"over {sum(r.auc == r.auc for r in result.labels)} labels, n = {result.n}")
    if result.has_readers:
        print(f"readers below the curve, mean over labels: {_fmt(result.radiologists_below_mean, 2)}")
    if result.coherence is not None:
        print(f"coherence {_fmt(result.coherence.rate, 4)} ({result.coherence.violations} violations)")
    print(f"ECE {_fmt(result.ece, 4)}")
    if args.out is not None:
        print(f"report written to {args.out}/report.html (and report.md, metrics.json)")
    return 0

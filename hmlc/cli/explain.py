"""``hmlc explain``: Grad-CAM heatmaps per label, overlaid on the image."""

from __future__ import annotations

import argparse
from pathlib import Path

from hmlc.cli.paths import checkpoint_inputs, refuse_overwriting_inputs
from hmlc.cli.render import print_table

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="Grad-CAM heatmaps of a checkpoint's labels on one image",
        description="Write one PNG per label: the image with the Grad-CAM map of the label's "
        "unconditional log-probability laid over it.",
    )
    p.add_argument(
        "--checkpoint", required=True, type=Path, metavar="PATH", help="checkpoint folder, file or run directory"
    )
    p.add_argument("image", type=Path, metavar="IMAGE", help="a .png, .jpg or .dcm image")
    p.add_argument(
        "--label", action="append", default=[], metavar="LABEL", help="label to explain (repeatable; default all)"
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the PNGs")
    p.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity in [0, 1] (default 0.4)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    from hmlc.engine.explain import explain_image
    from hmlc.engine.predictor import resolve_device

    refuse_overwriting_inputs({"--out": args.out}, [args.image, *checkpoint_inputs([args.checkpoint])])
    written = explain_image(
        args.checkpoint,
        args.image,
        args.out,
        labels=args.label or None,
        device=resolve_device(args.device),
        alpha=args.alpha,
    )
    print_table(
        ["label", "probability", "heatmap"],
        [[e.label, f"{e.probability:.3f}", e.path] for e in written],
        align_right=(1,),
    )
    return 0

"""``hmlc export``: a checkpoint as ONNX or TorchScript (normalised images in, probabilities out)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hmlc.cli.paths import checkpoint_inputs, refuse_overwriting_inputs

__all__ = ["add_parsers"]

#: Largest difference from PyTorch an export may show on random inputs.
PARITY_TOLERANCE = 1e-4
INPUT_SHAPE = "float32 (B, {c}, {s}, {s})"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX or TorchScript",
        description="The exported model takes a normalised float32 batch (B, C, S, S) and returns unconditional "
        "probabilities (chain rule inside); a model of feature vectors takes raw float32 vectors (B, D), NaN for "
        "missing, with imputation and standardisation inside. Metadata (labels, hierarchy hash, normalisation, "
        "image size, preprocessing) is embedded and written to FILE.json.",
    )
    p.add_argument(
        "--checkpoint", required=True, type=Path, metavar="PATH", help="checkpoint folder, file or run directory"
    )
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"), dest="fmt")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="file to write (e.g. model.onnx, model.pt)")
    p.add_argument("--image-size", type=int, metavar="S", help="input side S (default: the training image size)")
    p.add_argument("--no-verify", action="store_true", help="skip the check against PyTorch on random inputs")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from hmlc.engine.export import export_checkpoint, verify_export
    from hmlc.errors import CheckpointError

    refuse_overwriting_inputs({"--out": args.out, "--out (its .json)": f"{args.out}.json"}, checkpoint_inputs([args.checkpoint]))
    out, meta = export_checkpoint(args.checkpoint, args.fmt, args.out, args.image_size)
    if meta.get("input_kind") == "features":
        shape = f"float32 (B, {meta['input_dim']}) raw feature vectors"
    else:
        shape = INPUT_SHAPE.format(c=meta["in_chans"], s=meta["image_size"])
    print(f"wrote {out} ({args.fmt}, input {shape}, {len(meta['labels'])} labels) and {out}.json")
    if args.no_verify:
        return 0
    diff = verify_export(out, args.checkpoint)
    if diff is None:
        print("not verified: onnxruntime is not installed (pip install 'hmlc[onnx]')")
    elif diff > PARITY_TOLERANCE:
        raise CheckpointError(
            f"{out} differs from PyTorch by {diff:.2e} on random inputs (tolerance {PARITY_TOLERANCE:g})"
        )
    else:
        print(f"verified: largest difference from PyTorch on random inputs {diff:.1e}")
    return 0

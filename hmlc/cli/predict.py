"""``hmlc predict``: probabilities of one model or an ensemble, with optional TTA, to a CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hmlc.cli.info import add_config_arguments
from hmlc.cli.paths import checkpoint_inputs, experiment_inputs, refuse_overwriting_inputs

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict probabilities for images, folders or a dataset split (ensembles, TTA)",
        description="Write a predictions CSV (Path or Study, then one probability column per label). "
        "Example: hmlc predict --checkpoint runs/a --checkpoint runs/b --tta 10 "
        "--dataset csv --split valid --set data.root=/data/CheXpert-v1.0-small --out preds.csv",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        type=Path,
        metavar="PATH",
        help="checkpoint folder, its meta.json/model.safetensors, or a run directory (its best checkpoint); "
        "an exported .onnx file with --runtime onnx; repeat for an ensemble",
    )
    p.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH",
        help="image files (.png .jpg .jpeg .dcm) or folders; for a model of feature vectors, one .npy or .csv file",
    )
    p.add_argument("--dataset", metavar="NAME", help="predict a split of a registered dataset (`hmlc list datasets`)")
    p.add_argument("--split", metavar="SPLIT", help="the split of --dataset, e.g. valid")
    add_config_arguments(p)
    p.add_argument(
        "--relative-to",
        type=Path,
        metavar="DIR",
        help="write image paths relative to DIR (to match a labels CSV's Path column)",
    )
    p.add_argument("--tta", type=int, metavar="N", help="average N seeded random views per image")
    p.add_argument(
        "--tta-transforms",
        default="flip,rotate,scale,shear",
        metavar="KINDS",
        help="transforms a view chooses among (default flip,rotate,scale,shear; 'none': the image itself)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the TTA views (default 0)")
    p.add_argument(
        "--aggregate",
        choices=("study:mean", "study:max"),
        help="one row per study (column Study): mean or max over its images",
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="predictions CSV to write")
    p.add_argument(
        "--label-map",
        metavar="NAME",
        help="write the predictions in the labels of a registered map's target hierarchy (`hmlc list label_maps`)",
    )
    p.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="torch (checkpoints) or onnx (exported .onnx files)",
    )
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="images per batch (default 64)")
    p.add_argument("--num-workers", type=int, default=0, metavar="N", help="DataLoader worker processes (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument(
        "--on-bad-image", choices=("error", "skip"), metavar="{error,skip}",
        help="an image that cannot be read: error stops (the default; with --dataset, data.on_bad_image), "
        "skip leaves it out of the CSV and lists it in OUT.skipped.txt",
    )
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from hmlc.engine.predictor import (
        VECTOR_SUFFIXES,
        Predictor,
        dataset_defaults,
        inputs_from_dataset,
        inputs_from_paths,
        inputs_from_vectors,
        load_member,
        predictions_frame,
        resolve_device,
        write_predictions,
    )
    from hmlc.engine.tta import TestTimeAugmentation, parse_transform_kinds
    from hmlc.errors import ConfigError

    if args.tta is not None and args.tta < 1:
        raise ConfigError(f"--tta {args.tta}: give at least 1 view per image")
    if args.dataset and args.paths:
        raise ConfigError("give either --dataset NAME --split SPLIT or image paths, not both")
    if args.dataset and not args.split:
        raise ConfigError(f"--dataset {args.dataset} needs --split (e.g. --split valid)")
    if not args.dataset and (args.split or args.config or args.preset or args.overrides):
        raise ConfigError("--split, --config, --preset and --set apply to --dataset NAME; add it or drop them")
    if args.dataset and args.relative_to:
        raise ConfigError("--relative-to applies to image paths; a dataset's ids come from its label file")
    skipped_list = args.out.with_suffix(".skipped.txt")
    outputs = {"--out": args.out, "the list of skipped images": skipped_list}
    refuse_overwriting_inputs(outputs, [*args.paths, *checkpoint_inputs(args.checkpoint)])
    label_map = None
    if args.label_map:
        from hmlc.labelmaps import resolve_label_map

        label_map = resolve_label_map(args.label_map)
    kinds = parse_transform_kinds(args.tta_transforms)
    tta = TestTimeAugmentation(n=args.tta, seed=args.seed, kinds=kinds) if args.tta is not None else None
    device = resolve_device(args.device)
    members = [load_member(path, args.runtime, device) for path in args.checkpoint]
    predictor = Predictor(
        members, tta=tta, batch_size=args.batch_size, num_workers=args.num_workers,
        on_bad_image=args.on_bad_image or "error",
    )
    labels = predictor.labels
    if label_map is not None:
        from hmlc.labelmaps import unmapped_lines

        label_map.source_columns(labels, "model's predictions")  # before predicting: fail fast
        for line in unmapped_lines(label_map, labels):
            print(f"hmlc predict: {line}", file=sys.stderr)
    if args.dataset:
        from hmlc.config import load_config
        from hmlc.engine.experiment import dataset_root

        base: dict = {}
        source = None
        if not (args.config or args.preset):
            # Read the split as the model was validated on it (e.g. CheXpert's frontal images only).
            base, source = dataset_defaults(members, args.dataset)
        config = load_config(args.config, args.preset, args.overrides, base=base)
        config = config.model_copy(update={"data": config.data.model_copy(update={"dataset": args.dataset})})
        refuse_overwriting_inputs(outputs, experiment_inputs(config, args.config))
        predictor.on_bad_image = args.on_bad_image or config.data.on_bad_image
        inputs = inputs_from_dataset(
            args.dataset,
            args.split,
            root=dataset_root(config),
            params=config.data.params,
            image_size=predictor.load_size,
        )
        if source is not None and config.data.params:
            shown = ", ".join(f"{k}={v}" for k, v in config.data.params.items())
            print(f"dataset settings: {shown} (from {source}; change with --set data.params.KEY=...)", file=sys.stderr)
    elif predictor.input_kind == "features":
        if len(args.paths) != 1 or args.paths[0].suffix.lower() not in VECTOR_SUFFIXES:
            raise ConfigError(
                "the model takes feature vectors: give one .npy (N, D) or .csv file (a column per feature), "
                "or --dataset NAME --split SPLIT"
            )
        inputs = inputs_from_vectors(args.paths[0], members[0].pipeline.names)
    else:
        inputs = inputs_from_paths(args.paths, args.relative_to)
    probabilities = predictor.predict(inputs)
    skipped = ""
    if predictor.skipped:
        import numpy as np

        from hmlc.engine.rundir import atomic_write_text
        from hmlc.errors import DataError

        atomic_write_text(skipped_list, "".join(f"{inputs.ids[i]}\n" for i in sorted(predictor.skipped)))
        if len(predictor.skipped) == len(inputs):
            raise DataError(f"no image could be read ({len(inputs)} skipped); list: {skipped_list}")
        probabilities = np.delete(probabilities, predictor.skipped, axis=0)
        inputs = inputs.without(predictor.skipped)
        skipped = f"; skipped {len(predictor.skipped)} unreadable image(s) (--on-bad-image skip), list: {skipped_list}"
    if label_map is not None:
        probabilities, labels = label_map.map_probabilities(probabilities, labels), label_map.target_labels
    aggregate = args.aggregate.split(":", 1)[1] if args.aggregate else None
    frame = predictions_frame(inputs, probabilities, labels, aggregate)
    write_predictions(frame, args.out)
    views = f" x {tta.n} TTA views" if tta is not None else ""
    noun = "vectors" if predictor.input_kind == "features" else "images"
    rows = f"{len(frame)} studies from {len(inputs)} {noun}" if aggregate else f"{len(frame)} {noun}"
    print(f"wrote predictions for {rows} ({len(members)} model(s){views}) to {args.out}{skipped}")
    return 0

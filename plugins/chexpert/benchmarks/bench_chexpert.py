"""Speed of the CheXpert reader and of template matching, as ratios to a baseline run in the same process.

    python plugins/chexpert/benchmarks/bench_chexpert.py [--train-csv PATH] [--images DIR] [--repeats N]

Defaults read ../shared/data/chexpert (the project's optional real data):
``train_full.csv.gz`` (the complete train.csv, 223,414 rows) and the
CheXpert-v1.0-small sample. Baselines: ``pandas.read_csv`` of the same file
(the reader can hardly beat it) and hmlc's built-in centre crop (the same
resize, no matching). Prints the best of N runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from hmlc_chexpert import CHEXPERT_LABELS
from hmlc_chexpert.dataset import CheXpertDataset
from hmlc_chexpert.template_match import TemplateMatch

from hmlc.data.preprocess import CenterCrop

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "chexpert"


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_index(train_csv: Path, repeats: int) -> None:
    reader = CheXpertDataset()
    params = {"train_csv": str(train_csv), "labels_only": True}

    def index() -> None:
        reader.load("train", root=None, params=params, image_size=None, labels=CHEXPERT_LABELS)

    baseline = best_of(repeats, lambda: pd.read_csv(train_csv))
    ours = best_of(repeats, index)
    rows = len(reader.load("train", root=None, params=params, image_size=None, labels=CHEXPERT_LABELS).table)
    print(
        f"index {rows:,} rows of {train_csv.name}: {ours:.3f} s  "
        f"(pandas.read_csv alone {baseline:.3f} s, ratio {ours / baseline:.2f})"
    )


def bench_template_match(folder: Path, repeats: int, n: int = 100) -> None:
    split = CheXpertDataset().load(
        "train", root=folder, params={"views": "frontal"}, image_size=None, labels=CHEXPERT_LABELS
    )
    images = [split.images.read(i) for i in range(min(n, len(split.images)))]
    tm = TemplateMatch()
    fit = best_of(1, lambda: tm.fit(split.images))
    centre = CenterCrop(256, 224)
    baseline = best_of(repeats, lambda: [centre(img) for img in images])
    ours = best_of(repeats, lambda: [tm(img) for img in images])
    shape = f"{images[0].shape[0]}x{images[0].shape[1]}"
    print(
        f"template fit on {len(split.images)} frontal images: {fit:.2f} s\n"
        f"template-match 256 -> 224 on {len(images)} images of ~{shape}: {1e3 * ours / len(images):.2f} ms/image "
        f"(centre crop {1e3 * baseline / len(images):.2f} ms/image, ratio {ours / baseline:.1f})"
    )
    positions = {tm.position(img) for img in images}
    print(f"distinct crop positions: {len(positions)} among {len(images)} images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-csv", type=Path, default=DATA / "train_full.csv.gz")
    parser.add_argument(
        "--images", type=Path, default=DATA / "CheXpert-v1.0-small", help="a CheXpert folder with images"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bench_index(args.train_csv, args.repeats)
    bench_template_match(args.images, args.repeats)


if __name__ == "__main__":
    main()

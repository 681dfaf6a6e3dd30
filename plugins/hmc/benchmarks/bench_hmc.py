"""Speed of the ARFF parser, as a ratio to a baseline run in the same process.

    python plugins/hmc/benchmarks/bench_hmc.py [--root DIR] [--repeats N] [NAME.split ...]

Defaults read ../shared/data/hmc (the project's optional real data): the
biggest files of the distribution (seq_FUN/seq_GO train: about 1,700 rows of
478 attributes; cellcycle_GO: 4,126 labels). Baseline: gunzip the file and
split every row into its values with ``str.split`` (no number parsed, no
label matrix built), what any reader has to do at least. Prints the best of
N runs.
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections.abc import Callable
from pathlib import Path

from hmlc_hmc.arff import read_arff

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "hmc"
DEFAULT_FILES = ("seq_FUN.train", "seq_GO.train", "cellcycle_GO.train")


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def split_only(path: Path) -> int:
    """The baseline: gunzip and split every data row into values."""
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip().upper() == "@DATA")
    return sum(len(line.split(",")) for line in lines[start + 1 :] if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", default=list(DEFAULT_FILES), help="NAME.split, e.g. seq_GO.train")
    parser.add_argument("--root", type=Path, default=DATA, help="folder holding FUN/ and GO/")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for item in args.files:
        name, split = item.split(".")
        path = args.root / name.rsplit("_", 1)[1] / name / f"{name}.{split}.arff.gz"
        baseline = best_of(args.repeats, lambda: split_only(path))
        ours = best_of(args.repeats, lambda: read_arff(path))
        arff = read_arff(path)
        print(
            f"{path.name}: {len(arff):,} rows, {arff.features.shape[1]} features, {arff.labels.shape[1]} labels: "
            f"read_arff {ours:.3f} s  (gunzip + str.split {baseline:.3f} s, ratio {ours / baseline:.2f})"
        )


if __name__ == "__main__":
    main()

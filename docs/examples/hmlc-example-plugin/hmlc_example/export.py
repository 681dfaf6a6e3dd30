"""Write the generated shapes as a CSV folder, the layout hmlc's "csv" reader reads.

``python -m hmlc_example.export DIR [N]`` writes ``DIR/train.csv``,
``DIR/valid.csv`` (a ``Path`` column, then one column per label holding
1 / 0 / -1 / blank) and the PNGs they name, relative to ``DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import pandas as pd

from hmlc_example.shapes import CATALOGUE, generate_shapes

__all__ = ["export_csv"]


def export_csv(directory: Path, n: int = 600, size: int = 64, seed: int = 0) -> None:
    """Write ``n`` training and ``n // 3`` validation images with their labels under ``directory``."""
    directory = Path(directory)
    for split, count, noisy in (("train", n, True), ("valid", max(n // 3, 1), False)):
        images, codes = generate_shapes(
            count, size, [seed, 0 if split == "train" else 1],
            uncertain_rate=0.1 if noisy else 0.0, blank_rate=0.2 if noisy else 0.0,
        )
        paths = []
        for i, image in enumerate(images):
            relative = f"{split}/{i:05d}.png"
            (directory / split).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(directory / relative), image)
            paths.append(relative)
        frame = pd.DataFrame(codes, columns=list(CATALOGUE.labels))
        frame.insert(0, "Path", paths)
        frame.to_csv(directory / f"{split}.csv", index=False, float_format="%.0f")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m hmlc_example.export DIR [N]")
    export_csv(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 600)
    print(f"wrote {sys.argv[1]}/train.csv, valid.csv and their images")

"""Fixtures of the PadChest plugin's tests: a fresh plugin host and the optional real data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hmlc.plugins import reset_host

PLUGIN = Path(__file__).resolve().parents[1]
#: ../shared/data relative to the project root (absent on a user's machine).
SHARED_DATA = PLUGIN.parents[1].parent / "shared" / "data"
PADCHEST_DATA = SHARED_DATA / "padchest"


@pytest.fixture(autouse=True)
def _fresh_plugin_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HMLC_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HMLC_DISABLED_PLUGINS", raising=False)
    reset_host()
    yield
    reset_host()


def _real(name: str) -> Path:
    path = PADCHEST_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not found (optional real data, see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def trees_code() -> Path:
    """PadChest's published trees_code.txt; skips when absent."""
    return _real("trees_code.txt")


@pytest.fixture(scope="session")
def sample_labels() -> Path:
    """Ten real rows of PadChest's label CSV; skips when absent."""
    return _real("sample_labels.csv")


#: The columns the reader reads, in the order of PadChest's CSV.
COLUMNS = ["ImageID", "ImageDir", "StudyID", "PatientID", "Projection", "MethodLabel", "Labels", "Localizations"]


def write_padchest(
    folder: Path,
    rows: list[dict[str, str]],
    *,
    images: bool | list[int] = True,
    flat: bool = False,
    size: int = 24,
    name: str = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
) -> Path:
    """A PadChest-format folder: the label CSV and 16-bit PNGs (all rows, the rows listed, or none).

    Each image is a seeded 12-bit gradient with noise, stored in 16 bits as
    PadChest's are; ``flat`` puts them in the folder itself instead of ``<ImageDir>/``.
    """
    import csv

    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["", *COLUMNS], extrasaction="ignore")
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({"": str(i), "Localizations": "[]", "MethodLabel": "Physician", **row})
    chosen = range(len(rows)) if images is True else images or []
    for i in chosen:
        row = rows[i]
        where = folder if flat else folder / row["ImageDir"]
        where.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        ramp = np.linspace(0, 3000, size, dtype=np.float64)[None, :] + rng.normal(0, 200, (size, size))
        cv2.imwrite(str(where / row["ImageID"]), np.clip(ramp, 0, 4095).astype(np.uint16))
    return folder / name


@pytest.fixture(scope="session")
def padchest_folder() -> Any:
    """The :func:`write_padchest` function, for tests that build PadChest-format folders."""
    return write_padchest

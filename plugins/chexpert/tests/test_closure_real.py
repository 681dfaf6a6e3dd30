"""Label closure on the real CheXpert train.csv (frontal images), checked with plain pandas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmlc.hierarchy import LabelGraph
from hmlc.plugins import get_host, reset_host

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TRAIN_FULL = PROJECT_ROOT.parent / "shared" / "data" / "chexpert" / "train_full.csv.gz"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not TRAIN_FULL.is_file(),
        reason=f"CheXpert train_full.csv.gz not found at {TRAIN_FULL} (optional real data, see ../shared/data/README.md)",
    ),
]

EC, CM, LO = "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity"
LO_DESCENDANTS = ["Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis"]


@pytest.fixture(scope="module")
def graph() -> Iterator[LabelGraph]:
    reset_host()
    yield get_host().hierarchy("chexpert")
    reset_host()


@pytest.fixture(scope="module")
def frontal() -> pd.DataFrame:
    table = pd.read_csv(TRAIN_FULL)
    return table[table["Frontal/Lateral"] == "Frontal"].reset_index(drop=True)


@pytest.fixture(scope="module")
def closed(graph: LabelGraph, frontal: pd.DataFrame) -> pd.DataFrame:
    result = graph.closure(frontal[list(graph.labels)].to_numpy(dtype=float))
    out = pd.DataFrame(result.codes, columns=list(graph.labels))
    out.attrs["changed"] = result.changed
    return out


def test_documented_facts_of_the_frontal_rows(frontal: pd.DataFrame) -> None:
    assert len(frontal) == 191_027
    cardiomegaly = frontal[frontal[CM] == 1]
    assert len(cardiomegaly) == 23_385
    ec = cardiomegaly[EC]
    assert (ec == 1).sum() == 1_582
    assert (ec == -1).sum() == 269
    assert (ec == 0).sum() == 116
    assert ec.isna().sum() == 21_418
    assert (frontal[LO] == 1).sum() == 94_211


def test_closure_makes_enlarged_cardiomediastinum_cover_cardiomegaly(frontal: pd.DataFrame, closed: pd.DataFrame) -> None:
    union = (frontal[EC] == 1) | (frontal[CM] == 1)
    assert (closed[EC] == 1).sum() == union.sum()
    assert ((closed[EC] == 1) == union).all()
    # Every Cardiomegaly positive that was not already an EC positive changed: 23,385 - 1,582.
    assert closed.attrs["changed"][EC] == 23_385 - 1_582
    assert closed.attrs["changed"][CM] == 0


def test_closure_makes_lung_opacity_cover_its_descendants(frontal: pd.DataFrame, closed: pd.DataFrame) -> None:
    union = frontal[LO] == 1
    for label in LO_DESCENDANTS:
        union |= frontal[label] == 1
    assert (closed[LO] == 1).sum() == union.sum()
    assert ((closed[LO] == 1) == union).all()
    # Consolidation also covers Pneumonia.
    consolidation = (frontal["Consolidation"] == 1) | (frontal["Pneumonia"] == 1)
    assert ((closed["Consolidation"] == 1) == consolidation).all()


def test_closure_leaves_unrelated_labels_alone(
    graph: LabelGraph, frontal: pd.DataFrame, closed: pd.DataFrame
) -> None:
    for label in graph.leaves:
        pd.testing.assert_series_equal(closed[label], frontal[label].astype(np.float32), check_names=False)
    assert graph.coherence_violations(closed[list(graph.labels)].to_numpy()).sum() == 0
    changed = closed.attrs["changed"]
    assert {label for label, n in changed.items() if n} == {EC, LO, "Consolidation"}

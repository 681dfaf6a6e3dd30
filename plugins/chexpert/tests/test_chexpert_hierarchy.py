"""The CheXpert label tree as the installed plugin registers it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from hmlc.cli.main import main
from hmlc.plugins import reset_host

CHEXPERT_COLUMNS = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]

CHEXPERT_EDGES = {
    ("Enlarged Cardiomediastinum", "Cardiomegaly"),
    ("Lung Opacity", "Lung Lesion"),
    ("Lung Opacity", "Edema"),
    ("Lung Opacity", "Consolidation"),
    ("Lung Opacity", "Atelectasis"),
    ("Consolidation", "Pneumonia"),
}


@pytest.fixture(autouse=True)
def _fresh_host() -> Iterator[None]:
    reset_host()
    yield
    reset_host()


def test_hierarchy_show_chexpert_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hierarchy", "show", "chexpert", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["labels"] == CHEXPERT_COLUMNS
    assert len(data["edges"]) == len(CHEXPERT_EDGES)
    assert {tuple(edge) for edge in data["edges"]} == CHEXPERT_EDGES
    children = {child for _, child in CHEXPERT_EDGES}
    roots = [label for label in data["labels"] if label not in children]
    assert roots == [
        "No Finding",
        "Enlarged Cardiomediastinum",
        "Lung Opacity",
        "Pneumothorax",
        "Pleural Effusion",
        "Pleural Other",
        "Fracture",
        "Support Devices",
    ]


def test_label_order_matches_the_plugin_constant() -> None:
    from hmlc_chexpert import CHEXPERT_LABELS

    from hmlc.plugins import get_host

    graph = get_host().hierarchy("chexpert")
    assert list(graph.labels) == CHEXPERT_COLUMNS == list(CHEXPERT_LABELS)
    assert graph.name == "chexpert"
    assert get_host().registry("hierarchies").entry("chexpert").plugin == "chexpert"

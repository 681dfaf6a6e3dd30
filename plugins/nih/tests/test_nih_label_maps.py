"""The label maps nih->chexpert and chexpert->nih name real labels of both hierarchies."""

from __future__ import annotations

import pytest
from hmlc_nih.label_maps import CHEXPERT_TO_NIH, NIH_TO_CHEXPERT

from hmlc.plugins import get_host


def sources(mapping: dict) -> list[str]:
    return [s for value in mapping["labels"].values() for s in ([value] if isinstance(value, str) else value)]


@pytest.mark.parametrize("mapping", [NIH_TO_CHEXPERT, CHEXPERT_TO_NIH], ids=["nih->chexpert", "chexpert->nih"])
def test_map_names_labels_of_its_hierarchies(mapping: dict) -> None:
    host = get_host()
    source, target = host.hierarchy(mapping["source"]), host.hierarchy(mapping["target"])
    assert set(mapping) <= {"source", "target", "labels", "description", "combine"}
    assert all(label in target for label in mapping["labels"])
    assert all(label in source for label in sources(mapping))
    several = any(not isinstance(v, str) for v in mapping["labels"].values())
    assert ("combine" in mapping) == several and mapping.get("combine", "max") in ("max", "noisy-or")


def test_the_seven_shared_findings_and_lung_lesion() -> None:
    assert NIH_TO_CHEXPERT["labels"]["Pleural Effusion"] == "Effusion"
    assert NIH_TO_CHEXPERT["labels"]["Lung Lesion"] == ["Nodule", "Mass"]
    assert CHEXPERT_TO_NIH["labels"]["Nodule"] == CHEXPERT_TO_NIH["labels"]["Mass"] == "Lung Lesion"
    back = {v: k for k, v in CHEXPERT_TO_NIH["labels"].items() if k not in ("Nodule", "Mass")}
    assert back == {k: v for k, v in NIH_TO_CHEXPERT["labels"].items() if k != "Lung Lesion"}
    assert len(back) == 7


def test_registered_under_their_names() -> None:
    host = get_host()
    assert host.label_map("nih->chexpert") == NIH_TO_CHEXPERT
    assert host.label_map("chexpert->nih") == CHEXPERT_TO_NIH

"""The label map padchest->chexpert names real labels of both hierarchies."""

from __future__ import annotations

from hmlc_padchest.label_maps import PADCHEST_TO_CHEXPERT

from hmlc.plugins import get_host


def test_map_names_labels_of_both_hierarchies() -> None:
    host = get_host()
    mapping = host.label_map("padchest->chexpert")
    assert mapping == PADCHEST_TO_CHEXPERT
    assert set(mapping) <= {"source", "target", "labels", "description", "combine"}
    padchest, chexpert = host.hierarchy(mapping["source"]), host.hierarchy(mapping["target"])
    sources = [s for v in mapping["labels"].values() for s in ([v] if isinstance(v, str) else v)]
    assert all(label in chexpert for label in mapping["labels"])
    assert all(label in padchest for label in sources)
    assert mapping["labels"]["Lung Lesion"] == ["nodule", "pulmonary mass"] and mapping["combine"] == "max"
    unmapped = set(chexpert.labels) - set(mapping["labels"])
    assert unmapped == {"Enlarged Cardiomediastinum", "Lung Opacity", "Pleural Other", "Support Devices"}

"""Label maps: shape and hierarchy checks, combining probabilities and codes, and --label-map end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hmlc.cli.main import main
from hmlc.errors import DataError, PluginError
from hmlc.labelmaps import label_map_from_dict, map_labels_csv, resolve_label_map
from hmlc.plugins import get_host, hookimpl, reset_host

# Two tiny datasets' hierarchies: "src" (finer) and "tgt" (coarser).
SRC = {"edges": [["opacity", "nodule"], ["opacity", "mass"], ["fluid", "effusion"]], "labels": [
    "opacity", "nodule", "mass", "fluid", "effusion", "device"]}
TGT = {"edges": [["Abnormal", "Lesion"], ["Abnormal", "Effusion"]], "labels": ["Abnormal", "Lesion", "Effusion", "Other"]}
SRC_TO_TGT = {
    "source": "src",
    "target": "tgt",
    "labels": {"Lesion": ["nodule", "mass"], "Effusion": "effusion", "Abnormal": ["opacity", "fluid"]},
    "description": "tgt scored from src",
}


class MapsPlugin:
    """A plugin registering the two hierarchies and the given maps."""

    def __init__(self, maps: dict[str, Any]) -> None:
        self.maps = maps

    @hookimpl
    def hmlc_register_hierarchies(self, register: Callable[[str, Any], None]) -> None:
        register("src", SRC)
        register("tgt", TGT)

    @hookimpl
    def hmlc_register_label_maps(self, register: Callable[[str, Any], None]) -> None:
        for name, mapping in self.maps.items():
            register(name, mapping)


@pytest.fixture
def maps(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``maps(name=mapping, ...)``: register a fake plugin with these maps in a fresh host (no installed plugin)."""
    monkeypatch.setenv("HMLC_LOAD_PLUGINS", "")

    def install(**registered: Any) -> None:
        get_host().pm.register(MapsPlugin(registered), name="maps")

    return install


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------- shape
@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([1, 2], "is a list; register a dict"),
        ({"source": "src", "labels": {"A": "a"}}, "has no 'target'"),
        ({**SRC_TO_TGT, "extra": 1}, r"unknown key\(s\) \['extra'\]"),
        ({**SRC_TO_TGT, "combine": "mean"}, "combine 'mean' is unknown; use max or noisy-or"),
        ({**SRC_TO_TGT, "labels": {}}, "'labels' must be a non-empty dict"),
        ({**SRC_TO_TGT, "labels": {"Lesion": []}}, "'Lesion': \\[\\] is not a source label"),
        ({**SRC_TO_TGT, "labels": {"Lesion": 3}}, "'Lesion': 3 is not a source label"),
        ({**SRC_TO_TGT, "source": ""}, "'source' must name a hierarchy"),
    ],
)
def test_a_malformed_map_is_one_error_naming_it(data: Any, match: str) -> None:
    with pytest.raises(PluginError, match=match) as info:
        label_map_from_dict("bad-map", data, "acme")
    assert str(info.value).startswith("label map 'bad-map' (plugin 'acme')")


def test_a_single_source_is_a_list_of_one_and_combine_defaults_to_max() -> None:
    label_map = label_map_from_dict("m", SRC_TO_TGT)
    assert label_map.labels["Effusion"] == ("effusion",)
    assert label_map.combine == "max"
    assert label_map.source_labels == ("nodule", "mass", "effusion", "opacity", "fluid")


# ---------------------------------------------------------- against hierarchies
def test_resolve_checks_both_hierarchies(maps: Callable[..., None]) -> None:
    maps(good=SRC_TO_TGT)
    label_map = resolve_label_map("good")
    assert label_map.plugin == "maps"
    assert label_map.target_labels == ("Lesion", "Effusion", "Abnormal")


def test_a_map_naming_a_missing_hierarchy_is_refused_on_first_use(maps: Callable[..., None]) -> None:
    maps(ghost={**SRC_TO_TGT, "target": "no-such-tree"})
    with pytest.raises(PluginError) as info:
        resolve_label_map("ghost")
    message = str(info.value)
    assert message.startswith(
        "label map 'ghost' (plugin 'maps') names target hierarchy 'no-such-tree', which no installed plugin registers"
    )
    assert "(registered: src, synthetic, tgt)" in message and "\n" not in message


@pytest.mark.parametrize(
    ("labels", "side", "label", "hierarchy"),
    [
        ({"Lesion": "tumour"}, "source", "tumour", "src"),
        ({"Lesions": "nodule"}, "target", "Lesions", "tgt"),
    ],
)
def test_an_unknown_label_names_the_map_the_label_and_where_to_look(
    maps: Callable[..., None], labels: dict, side: str, label: str, hierarchy: str
) -> None:
    maps(typo={**SRC_TO_TGT, "labels": labels})
    with pytest.raises(PluginError) as info:
        resolve_label_map("typo")
    message = str(info.value)
    assert f"label map 'typo' (plugin 'maps'): {side} label(s) {label!r} not in hierarchy {hierarchy!r}" in message
    assert f"`hmlc hierarchy show {hierarchy}`" in message


def test_an_unknown_map_lists_the_registered_ones(maps: Callable[..., None]) -> None:
    maps(good=SRC_TO_TGT)
    with pytest.raises(PluginError, match=r"unknown label map 'nope'; did you mean: good\?"):
        resolve_label_map("nope")


# --------------------------------------------------------------- combining
def test_max_and_noisy_or_of_several_sources() -> None:
    labels = ["nodule", "mass", "effusion", "opacity", "fluid", "device"]
    p = np.array([[0.2, 0.5, 0.9, 0.1, 0.0, 0.7], [0.0, 0.0, 0.0, 0.6, 0.5, 0.7]])
    by_max = label_map_from_dict("m", SRC_TO_TGT).map_probabilities(p, labels)
    np.testing.assert_allclose(by_max, [[0.5, 0.9, 0.1], [0.0, 0.0, 0.6]])
    noisy = label_map_from_dict("m", {**SRC_TO_TGT, "combine": "noisy-or"}).map_probabilities(p, labels)
    # 1 - (1 - 0.2)(1 - 0.5) = 0.6; 1 - (1 - 0.6)(1 - 0.5) = 0.8
    np.testing.assert_allclose(noisy, [[0.6, 0.9, 0.1], [0.0, 0.0, 0.8]])


def test_probabilities_lacking_a_source_label_are_refused() -> None:
    with pytest.raises(DataError, match=r"reads source label\(s\) 'mass'.*the predictions lack"):
        label_map_from_dict("m", SRC_TO_TGT).map_probabilities(np.zeros((1, 2)), ["nodule", "effusion"])


NAN = np.nan


@pytest.mark.parametrize(
    ("nodule", "mass", "lesion"),
    [
        (1, 0, 1), (1, NAN, 1), (1, -1, 1),  # any positive: positive
        (0, 0, 0),  # every source negative: negative
        (0, -1, -1), (-1, NAN, -1), (-1, -1, -1),  # else an uncertain source: uncertain
        (0, NAN, NAN), (NAN, NAN, NAN),  # else unknown
    ],
)
def test_codes_rule(nodule: float, mass: float, lesion: float) -> None:
    label_map = label_map_from_dict("m", {**SRC_TO_TGT, "labels": {"Lesion": ["nodule", "mass"]}})
    out = label_map.map_codes(np.array([[nodule, mass]]), ["nodule", "mass"])
    np.testing.assert_equal(out, [[lesion]])


# ------------------------------------------------------------------ listing
def test_list_label_maps_shows_source_target_labels_and_description(
    maps: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    maps(good=SRC_TO_TGT, broken=[1])
    code, out, err = run(["list", "label_maps", "--json"], capsys)
    assert code == 0, err
    items = {item["name"]: item for item in json.loads(out)}
    assert items["good"] | {} == {
        "name": "good", "plugin": "maps", "description": "tgt scored from src",
        "source": "src", "target": "tgt", "labels": 3, "combine": "max",
    }
    assert items["broken"]["description"].startswith("INVALID: label map 'broken'")
    code, out, err = run(["list", "label_maps"], capsys)
    assert code == 0, err
    (row,) = [line for line in out.splitlines() if line.startswith("good ")]
    assert row.split()[:7] == ["good", "maps", "src", "->", "tgt", "3", "max"]


# ------------------------------------------------------- labels CSV, evaluate
def write_source_labels(path: Path) -> Path:
    pd.DataFrame({
        "Path": ["a.png", "b.png", "c.png", "d.png"],
        "Sex": ["F", "M", "F", "M"],
        "nodule": [1, 0, 0, None],
        "mass": [0, 0, -1, None],
        "effusion": [0, 1, 0, 1],
        "opacity": [1, 0, -1, 0],
        "fluid": [0, 1, 0, 1],
        "device": [1, 1, 0, 0],
    }).to_csv(path, index=False)
    return path


def test_map_labels_csv_writes_target_codes_and_names_the_unmapped(
    maps: Callable[..., None], tmp_path: Path
) -> None:
    maps(good=SRC_TO_TGT)
    out = tmp_path / "mapped.csv"
    lines = map_labels_csv(resolve_label_map("good"), write_source_labels(tmp_path / "src.csv"), out)
    mapped = pd.read_csv(out)
    assert list(mapped.columns) == ["Path", "Lesion", "Effusion", "Abnormal"]
    np.testing.assert_equal(mapped["Lesion"].to_numpy(), [1, 0, -1, NAN])
    np.testing.assert_equal(mapped["Abnormal"].to_numpy(), [1, 1, -1, 1])
    assert lines == [
        "label map 'good': 1 label(s) not mapped into 'tgt', left out: device",
        "label map 'good': 1 'tgt' label(s) have no source, not scored: Other",
    ]


def test_evaluate_with_a_label_map_maps_the_ground_truth(
    maps: Callable[..., None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    maps(good=SRC_TO_TGT)
    labels = write_source_labels(tmp_path / "src.csv")
    predictions = tmp_path / "pred.csv"
    pd.DataFrame({
        "Path": ["a.png", "b.png", "c.png", "d.png"],
        "Lesion": [0.9, 0.2, 0.5, 0.4],
        "Effusion": [0.3, 0.8, 0.1, 0.7],
        "Abnormal": [0.8, 0.6, 0.5, 0.3],
    }).to_csv(predictions, index=False)
    code, out, err = run(
        ["evaluate", "--predictions", predictions, "--labels", labels, "--label-map", "good", "--bootstrap", "0",
         "--json"], capsys,
    )
    assert code == 0, err
    metrics = json.loads(out)
    by_label = metrics["labels"]
    # Lesion: a.png positive (0.9), b.png negative (0.2); c (-1) and d (blank) excluded: AUC 1.
    assert by_label["Lesion"]["n_pos"] == 1 and by_label["Lesion"]["n_neg"] == 1
    assert by_label["Lesion"]["auc"] == pytest.approx(1.0)
    # Effusion: b, d positive (0.8, 0.7), a, c negative (0.3, 0.1): AUC 1.
    assert by_label["Effusion"]["auc"] == pytest.approx(1.0)
    # Abnormal: a, b, d positive (0.8, 0.6, 0.3); c uncertain, excluded: no negative, no AUC.
    assert by_label["Abnormal"]["n_neg"] == 0
    assert "hmlc evaluate: label map 'good': 1 label(s) not mapped into 'tgt', left out: device" in err


def test_evaluate_with_a_map_whose_sources_the_labels_lack(
    maps: Callable[..., None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    maps(good=SRC_TO_TGT)
    labels = tmp_path / "l.csv"
    pd.DataFrame({"Path": ["a.png"], "nodule": [1]}).to_csv(labels, index=False)
    predictions = tmp_path / "p.csv"
    pd.DataFrame({"Path": ["a.png"], "Lesion": [0.5]}).to_csv(predictions, index=False)
    code, out, err = run(["evaluate", "--predictions", predictions, "--labels", labels, "--label-map", "good"], capsys)
    assert code == 2
    assert err.startswith("hmlc: error: label map 'good' (plugin 'maps') reads source label(s) 'mass'")
    assert err.count("\n") == 1


# ------------------------------------------------------------------ predict
@pytest.mark.slow
def test_predict_with_a_label_map_writes_the_target_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = []
    for item in ("data.params.n_train=32", "data.params.n_valid=8", "data.image_size=32", "train.epochs=1",
                 "train.head_epochs=1", "train.progress=false", "train.device=cpu", "train.method=flat",
                 "output.tensorboard=false", "output.name=run"):
        sets += ["--set", item]
    assert main(["train", "--out", str(tmp_path), *sets]) == 0
    capsys.readouterr()
    run_dir = tmp_path / "run"
    plain, mapped = tmp_path / "plain.csv", tmp_path / "mapped.csv"
    synthetic_to_tgt = {
        "source": "synthetic", "target": "tgt", "combine": "noisy-or",
        "labels": {"Lesion": ["Mass", "Calcification"], "Abnormal": "Haze"},
    }
    common = ["predict", "--checkpoint", run_dir, "--dataset", "synthetic", "--split", "valid",
              "--set", "data.params.n_valid=8", "--device", "cpu"]
    assert run([*common, "--out", plain], capsys)[0] == 0
    reset_host()
    get_host().pm.register(MapsPlugin({"syn": synthetic_to_tgt, "src-map": SRC_TO_TGT}), name="maps")
    code, out, err = run([*common, "--out", mapped, "--label-map", "syn"], capsys)
    assert code == 0, err
    p, q = pd.read_csv(plain), pd.read_csv(mapped)
    assert list(q.columns) == ["Path", "Lesion", "Abnormal"]
    np.testing.assert_allclose(q["Lesion"], 1 - (1 - p["Mass"]) * (1 - p["Calcification"]), atol=1e-6)
    np.testing.assert_allclose(q["Abnormal"], p["Haze"], atol=1e-6)
    assert "label map 'syn': 7 label(s) not mapped into 'tgt', left out: Cavity, Fluid Level, Line" in err
    assert "label(s) have no source, not scored: Effusion, Other" in err

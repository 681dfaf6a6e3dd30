"""Fuzzing: whatever bytes a hierarchy file, labels CSV, configuration or DICOM header holds, only hmlc's errors escape."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmlc.config import load_config
from hmlc.data.dicom import decode_dicom
from hmlc.data.table import read_label_csv
from hmlc.errors import HmlcError
from hmlc.evaluation.io import read_predictions
from hmlc.hierarchy.io import load_hierarchy
from tests.reliability.conftest import dicom_claiming

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABELS = ["a", "b", "c"]

names = st.sampled_from(["a", "b", "c", "d", "", "a b", "é", "1", "null", "-"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), names)
values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)), max_leaves=12
)
hierarchy_data = st.one_of(
    values,
    st.fixed_dictionaries({"edges": st.lists(st.lists(names, min_size=0, max_size=3), max_size=5)},
                          optional={"labels": st.lists(names, max_size=5), "name": names}),
    st.dictionaries(names, values, max_size=4),
)


def _write(suffix: str, data: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)
    handle.write(data)
    handle.close()
    return Path(handle.name)


def _only_hmlc_errors(call, *args) -> None:  # noqa: ANN001
    try:
        call(*args)
    except HmlcError as error:
        assert "Traceback" not in str(error)


@FUZZ
@given(data=hierarchy_data, as_json=st.booleans())
def test_hierarchy_files(data: object, as_json: bool) -> None:
    try:
        text = json.dumps(data) if as_json else yaml.safe_dump(data)
    except ValueError:
        return
    path = _write(".json" if as_json else ".yaml", text.encode())
    _only_hmlc_errors(load_hierarchy, str(path))
    path.unlink()


@FUZZ
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".yaml", ".json"]))
def test_hierarchy_files_of_any_bytes(raw: bytes, suffix: str) -> None:
    path = _write(suffix, raw)
    _only_hmlc_errors(load_hierarchy, str(path))
    path.unlink()


cells = st.sampled_from(["1", "0", "-1", "", "1.0", "2", "nan", "x", "0.5", '"', "1e999", "-0", " 1"])
rows = st.lists(st.lists(cells, min_size=0, max_size=5), max_size=6)


@FUZZ
@given(header=st.lists(st.sampled_from(["Path", "a", "b", "c", "Study", "", "a"]), max_size=5), body=rows)
def test_labels_and_predictions_csvs(header: list[str], body: list[list[str]]) -> None:
    text = "\n".join([",".join(header), *(",".join(r) for r in body)]) + "\n"
    path = _write(".csv", text.encode())
    _only_hmlc_errors(read_label_csv, path, LABELS)
    _only_hmlc_errors(read_predictions, path)
    path.unlink()


@FUZZ
@given(raw=st.binary(max_size=200))
def test_csvs_of_any_bytes(raw: bytes) -> None:
    path = _write(".csv", raw)
    _only_hmlc_errors(read_label_csv, path, LABELS)
    _only_hmlc_errors(read_predictions, path)
    path.unlink()


config_keys = st.sampled_from([
    "seed", "data", "data.image_size", "data.params", "train", "train.lr", "train.betas", "train.epochs",
    "train.stages", "policy.overrides", "output.name", "model.dropout", "data.max_image_pixels", "nope",
])


@FUZZ
@given(settings_=st.lists(st.tuples(config_keys, values), max_size=4))
def test_configs_and_overrides(settings_: list[tuple[str, object]]) -> None:
    overrides = [f"{key}={json.dumps(value)}" for key, value in settings_]
    _only_hmlc_errors(load_config, None, None, overrides)
    try:
        text = yaml.safe_dump({key.split(".")[0]: value for key, value in settings_})
    except ValueError:
        return
    path = _write(".yaml", text.encode())
    _only_hmlc_errors(load_config, path)
    path.unlink()


_DICOM = None


def _dicom_bytes() -> bytes:
    global _DICOM
    if _DICOM is None:
        folder = Path(tempfile.mkdtemp())
        _DICOM = dicom_claiming(folder / "a.dcm", 4, 4).read_bytes()
    return _DICOM


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(128, 400), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(132, 420)))
def test_dicom_headers(edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(_dicom_bytes())
    for offset, value in edits:
        if offset < len(data):
            data[offset] = value
    path = _write(".dcm", bytes(data[:cut] if cut else data))
    _only_hmlc_errors(decode_dicom, path)
    path.unlink()


def test_an_unclosed_quote_in_a_labels_csv_is_one_clear_error(tmp_path) -> None:
    """Found by the fuzzing above: the second read that names the bad value raised pandas' ParserError."""
    path = tmp_path / "l.csv"
    path.write_text('Path,a,b,c\n1\n"\n')
    with pytest.raises(HmlcError, match="cannot parse label file"):
        read_label_csv(path, ["a", "b", "c"])


def test_a_csv_column_without_a_name_is_one_clear_error(tmp_path) -> None:
    """Found by the fuzzing above: a header cell '' made read_predictions raise KeyError."""
    path = tmp_path / "p.csv"
    path.write_text("Path,\n")
    with pytest.raises(HmlcError, match="column 2 of the header has no name"):
        read_predictions(path)

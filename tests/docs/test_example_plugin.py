"""The example plugin of docs/plugins.md works as the tutorial says, quickly and in process.

Nothing is installed (tests/docs/test_doc_outputs.py installs a copy for real
and runs the tutorial's commands): as in tests/plugins/test_plugin_manager.py, the
``importlib.metadata.distributions`` the plugin manager calls is replaced by
one returning a fake ``hmlc-example`` distribution whose ``hmlc`` entry point
names ``hmlc_example.plugin``, and the package folder is put on sys.path.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hmlc.config import load_config
from hmlc.errors import ConfigError
from hmlc.hierarchy import load_hierarchy
from hmlc.plugins import ENTRY_POINT_GROUP, get_host
from hmlc.plugins import manager as manager_module

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "hmlc-example-plugin"
CATALOGUE = ("Animal", "Dog", "Cat", "Product", "Toy", "Dog With Toy")


class FakeDistribution:
    """Just enough of ``importlib.metadata.Distribution`` for the plugin manager."""

    def __init__(self, name: str, version: str, entry_points: dict[str, str]) -> None:
        self.metadata = {"name": name}
        self.version = version
        self.entry_points = [
            importlib.metadata.EntryPoint(name=n, value=v, group=ENTRY_POINT_GROUP) for n, v in entry_points.items()
        ]


def _forget_example_modules() -> None:
    for name in [m for m in sys.modules if m == "hmlc_example" or m.startswith("hmlc_example.")]:
        del sys.modules[name]


@pytest.fixture
def example_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """hmlc sees exactly one installed plugin: the example, as `pip install -e` would install it."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    _forget_example_modules()
    dist = FakeDistribution("hmlc-example", "0.1.0", {"example": "hmlc_example.plugin"})
    metadata = types.ModuleType("importlib.metadata")
    metadata.__dict__.update(vars(importlib.metadata))
    metadata.distributions = lambda **_: [dist]  # type: ignore[attr-defined]
    fake_importlib = types.ModuleType("importlib")
    fake_importlib.__dict__.update(vars(importlib))
    fake_importlib.metadata = metadata  # type: ignore[attr-defined]
    monkeypatch.setattr(manager_module, "importlib", fake_importlib)
    yield
    _forget_example_modules()


def test_pyproject_declares_the_entry_point_the_fake_uses() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "hmlc-example"
    assert project["entry-points"]["hmlc"] == {"example": "hmlc_example.plugin"}


def test_example_plugin_is_listed_with_its_hooks_and_registrations(example_installed: None) -> None:
    info = {item["name"]: item for item in get_host().plugins_info()}
    assert list(info) == ["hmlc", "example"]
    assert info["example"] == {
        "name": "example",
        "version": "0.1.0",
        "distribution": "hmlc-example",
        "hooks": ["hmlc_register_datasets", "hmlc_register_hierarchies", "hmlc_register_presets"],
        "registers": {
            "hierarchies": ["example-catalogue"],
            "datasets": ["example-shapes"],
            "presets": ["example/csv", "example/shapes"],
        },
        "error": None,
    }


def test_example_hierarchy_loads_and_validates(example_installed: None) -> None:
    graph = get_host().hierarchy("example-catalogue")
    assert graph.name == "example-catalogue"
    assert graph.labels == CATALOGUE
    assert graph.parents("Dog With Toy") == ("Dog", "Toy")
    assert graph.roots == ("Animal", "Product")
    assert graph.leaves == ("Cat", "Dog With Toy")
    assert graph.max_depth == 2
    from hmlc_example import HIERARCHY_FILE

    assert graph.content_hash == load_hierarchy(HIERARCHY_FILE).content_hash


def test_example_presets_resolve_to_valid_configurations(example_installed: None) -> None:
    shapes = load_config(preset="example/shapes")
    assert shapes.hierarchy == "example-catalogue"
    assert shapes.data.dataset == "example-shapes"
    assert shapes.train.method == "ct"
    csv = load_config(preset="example/csv", overrides=["data.root=/somewhere"])
    assert csv.hierarchy == "example-catalogue"
    assert csv.data.dataset == "csv"
    assert str(csv.data.root) == "/somewhere"
    rows = {row["name"]: row for row in get_host().listing("presets", "example/*")}
    assert rows["example/shapes"]["plugin"] == "example"


def test_example_reader_returns_coherent_labels_and_images(example_installed: None) -> None:
    host = get_host()
    graph = host.hierarchy("example-catalogue")
    reader = host.dataset("example-shapes")
    valid = reader.load("valid", root=None, params={"n_valid": 50}, image_size=32, labels=graph.labels)
    assert len(valid.table) == len(valid.images) == 50
    assert valid.table.labels == CATALOGUE
    image = valid.images.read(0)
    assert image.shape == (32, 32) and image.dtype == np.uint8
    codes = valid.table.codes()
    assert set(np.unique(codes)) <= {0.0, 1.0}  # validation codes are clean
    assert not graph.coherence_violations(codes).any()
    train = reader.load("train", root=None, params={"n_train": 200}, image_size=32, labels=graph.labels)
    assert (train.table.codes() == -1).any() and np.isnan(train.table.codes()).any()
    with pytest.raises(ConfigError, match="data.params.n"):
        reader.load("train", root=None, params={"n": 3}, image_size=32, labels=graph.labels)


def test_example_export_is_read_by_the_builtin_csv_reader(example_installed: None, tmp_path: Path) -> None:
    from hmlc_example.export import export_csv
    from hmlc_example.shapes import generate_shapes

    export_csv(tmp_path / "catalogue", n=12, size=16, seed=3)
    graph = get_host().hierarchy("example-catalogue")
    split = get_host().dataset("csv").load("train", root=tmp_path, params={}, image_size=16, labels=graph.labels)
    _, expected = generate_shapes(12, 16, [3, 0], uncertain_rate=0.1, blank_rate=0.2)
    np.testing.assert_array_equal(split.table.codes(), expected)
    np.testing.assert_array_equal(split.images.read(5), generate_shapes(12, 16, [3, 0])[0][5])

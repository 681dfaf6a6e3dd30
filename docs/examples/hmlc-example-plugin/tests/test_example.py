"""Tests of the example plugin as users get it: run ``pytest tests`` after ``pip install -e .``.

The plugin is installed, so hmlc finds it through its entry point, exactly as
``hmlc`` commands do; nothing is faked.
"""

from pathlib import Path

from hmlc.config import load_config
from hmlc.engine.trainer import train
from hmlc.plugins import get_host


def test_plugin_loads_and_registers_its_components() -> None:
    info = {plugin["name"]: plugin for plugin in get_host().plugins_info()}
    assert info["example"]["error"] is None
    assert info["example"]["registers"] == {
        "hierarchies": ["example-catalogue"],
        "datasets": ["example-shapes"],
        "presets": ["example/csv", "example/shapes"],
    }


def test_dog_with_toy_has_two_parents() -> None:
    graph = get_host().hierarchy("example-catalogue")
    assert graph.parents("Dog With Toy") == ("Dog", "Toy")
    assert graph.roots == ("Animal", "Product")


def test_reader_gives_images_and_labels_that_respect_the_hierarchy() -> None:
    host = get_host()
    graph = host.hierarchy("example-catalogue")
    valid = host.dataset("example-shapes").load(
        "valid", root=None, params={"n_valid": 40}, image_size=32, labels=graph.labels, graph=graph
    )
    assert len(valid.table) == len(valid.images) == 40
    assert valid.images.read(0).shape == (32, 32)
    assert not graph.coherence_violations(valid.table.codes()).any()


def test_preset_trains_a_tiny_model(tmp_path: Path) -> None:
    config = load_config(
        preset="example/shapes",
        overrides=[
            "data.params.n_train=64",
            "data.params.n_valid=32",
            "data.image_size=32",
            "train.epochs=1",
            "train.head_epochs=1",
            f"output.dir={tmp_path}",
            "output.tensorboard=false",
            "train.progress=false",
        ],
    )
    result = train(config)
    assert result.completed
    assert result.labels == ("Animal", "Dog", "Cat", "Product", "Toy", "Dog With Toy")

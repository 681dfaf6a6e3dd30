"""Hook specifications of hmlc (entry-point group ``hmlc``).

Every hook receives a ``register`` callback and returns nothing; the host
owns duplicate checks and remembers which plugin registered what. All
implementations of a hook are called (none is first-result). A plugin
implements a hook by defining a function of the same name decorated with
:data:`hookimpl`::

    from hmlc.plugins import hookimpl

    @hookimpl
    def hmlc_register_hierarchies(register):
        register("my-tree", "my_plugin/tree.yaml")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["hookspec", "hookimpl", "PROJECT", "HOOK_NAMES"]

PROJECT = "hmlc"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[str, Any], None]


@hookspec
def hmlc_register_hierarchies(register: Register) -> None:
    """Register label hierarchies.

    ``register(name, source)``: ``source`` is a :class:`hmlc.hierarchy.LabelGraph`,
    a dict in the ``edges`` or nested ``children`` form, a path to a YAML/JSON
    file, or a zero-argument callable returning one of these (loaded lazily,
    on first use).
    """


@hookspec
def hmlc_register_datasets(register: Register) -> None:
    """Register dataset readers.

    ``register(name, reader)``: ``reader`` is a
    :class:`hmlc.data.datasets.DatasetReader` instance; its ``load`` returns a
    label table and an image source for a split.
    """


@hookspec
def hmlc_register_backbones(register: Register) -> None:
    """Register CNN backbones.

    ``register(name, spec)``: ``spec`` is a :class:`hmlc.models.BackboneSpec`
    (builder, feature width, input size, normalisation, where its pretrained
    weights live). Names prefixed ``timm:`` and ``torchvision:`` are resolved
    generically and need no registration.
    """


@hookspec
def hmlc_register_uncertainty_policies(register: Register) -> None:
    """Register uncertainty-label policies.

    ``register(name, factory)``: ``factory(**params)`` returns a
    :class:`hmlc.policies.UncertaintyPolicy` that maps raw codes of one label
    to (targets, loss weights).
    """


@hookspec
def hmlc_register_preprocessors(register: Register) -> None:
    """Register image preprocessors.

    ``register(name, factory)``: ``factory(**params)`` returns a
    :class:`hmlc.data.preprocess.Preprocessor`, a callable mapping a uint8
    grayscale image (H, W) to the preprocessed uint8 image, optionally fitted
    on training images first (``requires_fit``; e.g. a template).
    """


@hookspec
def hmlc_register_presets(register: Register) -> None:
    """Register configuration presets.

    ``register(name, preset)``: ``preset`` is a (partial) configuration dict or
    a path to a YAML file; ``hmlc train --preset NAME`` starts from it.
    Names are conventionally ``<plugin>/<setting>``.
    """


@hookspec
def hmlc_register_label_maps(register: Register) -> None:
    """Register label maps between datasets.

    ``register(name, mapping)``: ``mapping`` is a dict ``{"source": hierarchy
    name, "target": hierarchy name, "labels": {target label: source label or
    [source labels]}}``, used to evaluate a model on another dataset.
    """


@hookspec
def hmlc_register_benchmark_suites(register: Register) -> None:
    """Register benchmark suites for ``hmlc benchmark --suite NAME``.

    ``register(name, suite)``: ``suite`` is a dict (or a path to a YAML file,
    or a zero-argument callable returning one) with ``description``,
    ``datasets`` (name -> ``{reference: figure or null}``), ``methods``,
    ``config`` (``preset`` and ``set``, templates over ``{dataset}``,
    ``{method}`` and ``{data}``), ``grid`` (``--set`` key -> values searched
    on the selection split; ``train.epochs`` is read off one training per
    setting), ``protocol`` (``selection`` and ``final`` train/eval splits,
    ``metric``) and ``reference`` (whose published figures these are). See
    :mod:`hmlc.benchmark.suite` and docs/hmc-benchmark.md.
    """


HOOK_NAMES: tuple[str, ...] = tuple(
    name for name in sorted(globals()) if name.startswith("hmlc_register_")
)

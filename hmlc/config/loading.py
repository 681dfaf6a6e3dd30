"""Reading configurations: presets, YAML files and ``--set a.b=c`` overrides."""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import ValidationError

from hmlc.config.models import ExperimentConfig
from hmlc.errors import ConfigError, shorten
from hmlc.yamlio import load_yaml

__all__ = [
    "read_config_file",
    "parse_override",
    "apply_overrides",
    "deep_merge",
    "load_config",
    "format_validation_error",
    "config_to_yaml",
    "config_to_dict",
    "learning_settings",
    "NOT_LEARNED",
]


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) configuration file as a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {shorten(exc)}") from None
    data = load_yaml(text, f"config file {path}", ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, not a {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> (["train", "epochs"], 3); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {shorten(repr(text))} is not KEY=VALUE; write e.g. --set train.epochs=3")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"--set {shorten(repr(text))}: {shorten(repr(key))} is not a dotted path like train.epochs")
    try:
        value = load_yaml(raw, f"--set {shorten(key)}", ConfigError) if raw.strip() else None
    except ConfigError as exc:
        if "not valid YAML" not in str(exc):
            raise  # an alias bomb or a recursive alias, not text
        value = raw  # not YAML: take the text as it is
    if isinstance(value, str):
        # YAML 1.1 reads 1e-4 as a string; a number is what anyone typing it means.
        try:
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return parts, value


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``update`` merged into ``base`` (nested mappings merged, the rest replaced)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _takes_text(parts: Sequence[str]) -> bool:
    """Whether the configuration key at ``parts`` holds text (a name or a path) and nothing else.

    For such keys ``--set`` keeps what was typed: ``output.name=off`` or
    ``output.name=2026-11-26`` name a run, although YAML reads them as a
    boolean and a date.
    """
    from pydantic import BaseModel

    model: Any = ExperimentConfig
    annotation: Any = None
    for part in parts:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        nested = [a for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
        model = nested[0] if len(nested) == 1 else None
    args = [a for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
    if get_origin(annotation) not in (None, Union, types.UnionType):
        return False
    return bool(args) and all(isinstance(a, type) and issubclass(a, (str, PurePath)) for a in args)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides in order to a configuration dict."""
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        raw = text.partition("=")[2].strip()
        if value is not None and not isinstance(value, str) and _takes_text(parts):
            value = raw
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                dotted = ".".join(parts[: i + 1])
                raise ConfigError(f"--set {shorten(repr(text))}: {shorten(dotted)} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def format_validation_error(exc: ValidationError, source: str = "config") -> str:
    """One line: every problem as ``dotted.path: message``."""
    problems = []
    for err in exc.errors():
        loc = shorten(".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after")))
        msg = shorten(err["msg"])
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `hmlc config show` prints every key)"
        elif "input" in err and err["type"] not in ("missing",) and _small(err["input"]):
            shown = json.dumps(err["input"], default=str)
            if len(shown) <= 60:
                msg = f"{msg} (got {shown})"
        problems.append(f"{loc}: {msg}" if loc else msg)
    return f"invalid {source}: " + "; ".join(problems)


def _small(value: Any) -> bool:
    """Whether ``value`` is worth repeating in a message (cheap to tell: no walking of big containers)."""
    if isinstance(value, (dict, list, tuple)):
        return len(value) <= 8 and all(_small(v) for v in (value.values() if isinstance(value, dict) else value))
    return not isinstance(value, str) or len(value) <= 60


#: ``lookup(name)`` -> a preset's configuration dict, raising hmlc's own error for an unknown name.
PresetLookup = Callable[[str], Mapping[str, Any]]

_preset_lookup: PresetLookup | None = None


def use_presets(lookup: PresetLookup | None) -> None:
    """Tell configuration loading where preset names are looked up.

    Configuration knows nothing of plugins: :mod:`hmlc.plugins` tells it, when
    imported, to ask the plugin host (every registered preset, built-in or a
    plugin's). ``load_config(presets=...)`` overrides this for one call.
    """
    global _preset_lookup
    _preset_lookup = lookup


def _preset(name: str, presets: PresetLookup | None) -> dict[str, Any]:
    lookup = presets or _preset_lookup
    if lookup is None:
        raise ConfigError(
            f"preset {name!r}: no presets are known to hmlc.config yet; import hmlc.plugins first "
            "(hmlc's commands do), or pass presets= to load_config"
        )
    return dict(lookup(name))


def load_config(
    path: Path | None = None,
    preset: str | None = None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
    presets: PresetLookup | None = None,
) -> ExperimentConfig:
    """Defaults <- ``base`` <- preset <- file <- overrides, validated.

    Preset names (``preset``, or a file's ``preset:`` key) are looked up with
    ``presets``, else where :func:`use_presets` said (the plugin host).
    """
    data: dict[str, Any] = dict(base or {})
    sources = []
    if preset:
        data = deep_merge(data, _preset(preset, presets))
        sources.append(f"preset {preset}")
    if path is not None:
        file_data = read_config_file(Path(path))
        if "preset" in file_data:
            name = file_data.pop("preset")
            data = deep_merge(data, _preset(str(name), presets))
        data = deep_merge(data, file_data)
        sources.append(f"config {path}")
    data = apply_overrides(data, overrides)
    if overrides:
        sources.append("--set")
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, " + ".join(sources) or "config")) from None
    from hmlc.data.images import set_max_image_pixels

    set_max_image_pixels(config.data.max_image_pixels)
    return config


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """A JSON-safe dict of the resolved configuration."""
    return config.model_dump(mode="json")


#: (section, key) of the settings that change where a run is written, what it shows or how often it
#: saves its progress, never what it learns.
NOT_LEARNED: tuple[tuple[str, str], ...] = (
    ("output", "dir"), ("output", "tensorboard"), ("train", "progress"), ("train", "checkpoint_every_s"),
)


def learning_settings(data: dict[str, Any]) -> dict[str, Any]:
    """A :func:`config_to_dict` result without :data:`NOT_LEARNED`: what two runs share when they learn the same.

    ``data`` is left as it is.
    """
    out = {section: dict(values) if isinstance(values, dict) else values for section, values in data.items()}
    for section, key in NOT_LEARNED:
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return out


def config_to_yaml(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)

"""Generate the configuration reference (docs/configuration-reference.md) from the models.

Run ``python -m hmlc.config.reference > docs/configuration-reference.md``; a
test fails when the committed file differs from what this prints.
"""

from __future__ import annotations

import json
import sys
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from hmlc.config.models import ExperimentConfig

__all__ = ["render_reference"]


def _type_name(annotation: Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    for prefix in ("typing.", "pathlib.", "hmlc.config.models."):
        text = text.replace(prefix, "")
    return text.replace("NoneType", "None").replace(" | ", " or ")


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        if field.default_factory is not None:
            value = field.default_factory()
            if isinstance(value, BaseModel):
                return "(section)"
            return json.dumps(value)
        return "required"
    value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    return json.dumps(value, default=str)


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _render(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    rows = []
    subsections = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _section_model(field.annotation)
        if sub is not None:
            subsections.append((key, sub))
            continue
        desc = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{_type_name(field.annotation)}` | `{_default(field)}` | {desc} |")
    title = prefix.rstrip(".") or "top level"
    doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
    out.append(f"## `{title}`\n")
    if doc:
        out.append(doc + "\n")
    if rows:
        out.append("| key | type | default | description |")
        out.append("|---|---|---|---|")
        out.extend(rows)
        out.append("")
    for key, sub in subsections:
        _render(sub, f"{key}.", out)
    # Sections that are lists of sub-models (train.stages) get their own table.
    for name, field in model.model_fields.items():
        args = typing.get_args(field.annotation)
        for arg in args:
            for inner in typing.get_args(arg) or (arg,):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner is not model:
                    if _section_model(field.annotation) is None:
                        _render(inner, f"{prefix}{name}[].", out)


def render_reference() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from `hmlc/config/models.py` by `python -m hmlc.config.reference`; do not edit by hand.",
        "Every key can be set in a YAML file (`--config`) or on the command line (`--set key=value`).",
        "",
    ]
    _render(ExperimentConfig, "", out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_reference())

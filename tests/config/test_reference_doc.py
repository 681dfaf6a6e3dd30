"""docs/configuration-reference.md is generated from the pydantic models and kept in sync."""

from __future__ import annotations

from pathlib import Path

from hmlc.config import ExperimentConfig
from hmlc.config.reference import render_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration-reference.md"


def test_reference_matches_the_models():
    assert DOC.read_text(encoding="utf-8") == render_reference(), (
        "docs/configuration-reference.md is stale: run "
        "`python -m hmlc.config.reference > docs/configuration-reference.md`"
    )


def _keys(model, prefix=""):
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            yield from _keys(ann, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_every_key_has_a_description_and_appears_in_the_reference():
    text = DOC.read_text(encoding="utf-8")
    for key in _keys(ExperimentConfig):
        assert f"`{key}`" in text, key
    for model in (ExperimentConfig,):
        for name, field in model.model_fields.items():
            assert field.description, name

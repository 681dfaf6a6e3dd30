"""YAML alias bombs and recursion: one bounded loader for configs, --set values and hierarchy files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hmlc.errors import ConfigError, HmlcError, shorten
from hmlc.yamlio import MAX_YAML_DEPTH, load_yaml, load_yaml_all
from tests.reliability.conftest import run_cli


def bomb(levels: int = 9, indent: str = "") -> str:
    """The billion-laughs document: level i is a list of nine aliases of level i-1."""
    lines = [f"{indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"{indent}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("data:\n  params:\n" + bomb(indent="    "), "alias bomb"),
        (bomb() + "seed: *l9\n", "alias bomb"),
        ("data:\n  params: &p\n    self: *p\n", "recursive alias"),
        ("seed: &s [*s]\n", "recursive alias"),
        ("a: " + "[" * (MAX_YAML_DEPTH + 5) + "]" * (MAX_YAML_DEPTH + 5) + "\n", "too deeply"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "too deeply"),
    ],
)
def test_config_show_refuses_bombs_fast_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    start = time.perf_counter()
    code, out, err = run_cli(["config", "show", "--config", path], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err and str(path) in err and len(err) < 400
    assert time.perf_counter() - start < 10


def test_a_bomb_in_a_set_value_and_in_a_hierarchy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    value = "{" + bomb().replace("\n", ", ").rstrip(", ") + "}"
    code, _, err = run_cli(["config", "show", "--set", f"data.params={value}"], capsys)
    assert code == 2 and "alias bomb" in err and err.count("\n") == 1
    hierarchy = tmp_path / "h.yaml"
    hierarchy.write_text(bomb() + "edges: *l9\n")
    code, _, err = run_cli(["hierarchy", "check", hierarchy], capsys)
    assert code == 2 and "alias bomb" in err and str(hierarchy) in err and err.count("\n") == 1


def test_ordinary_aliases_and_several_documents_still_load() -> None:
    assert load_yaml("a: &x [1, 2]\nb: *x\n", "t") == {"a": [1, 2], "b": [1, 2]}
    assert list(load_yaml_all("a: 1\n---\nb: 2\n", "t")) == [{"a": 1}, {"b": 2}]
    assert load_yaml("", "t") is None
    with pytest.raises(ConfigError, match="t is not valid YAML"):
        load_yaml("a: [1,", "t", ConfigError)
    with pytest.raises(HmlcError, match="2 YAML documents"):
        load_yaml("a: 1\n---\nb: 2\n", "t")


def test_a_huge_value_is_shortened_in_the_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    huge = "x" * 1_000_000
    for argv in (["config", "show", "--set", f"train.epochs={huge}"], ["config", "show", "--set", f"{huge}"],
                 ["hierarchy", "show", huge],
                 ["train", "--set", f"model.backbone={huge}"]):
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and err.count("\n") == 1 and len(err) < 2200, len(err)
    assert shorten("y" * 500) == "y" * 200 + "... (500 characters)"

"""The documentation stays true: links resolve, commands exist, configuration keys exist."""

from __future__ import annotations

import argparse
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from hmlc.cli.main import build_parser
from hmlc.config import ExperimentConfig

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

MARKDOWN = sorted(
    {ROOT / "README.md", *DOCS.rglob("*.md"), *(ROOT / "datasets").rglob("*.md")},
)

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _without_code(text: str) -> str:
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _code_spans(text: str) -> list[str]:
    """Inline code spans outside fenced blocks."""
    return [m.group(2).strip() for m in _CODE_SPAN.finditer(_FENCE.sub("", text))]


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    slugs: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        slug, n = base, 0
        while slug in slugs:
            n += 1
            slug = f"{base}-{n}"
        slugs.add(slug)
    return slugs


# ------------------------------------------------------------------- links
def test_the_documentation_pages_exist() -> None:
    names = {_rel(p) for p in MARKDOWN}
    for page in ("index", "concepts", "configuration", "cli", "hooks", "plugins", "training"):
        assert f"docs/{page}.md" in names
    for dataset in ("synthetic", "chexpert", "padchest", "nih"):
        assert f"datasets/{dataset}/README.md" in names


@pytest.mark.parametrize("page", MARKDOWN, ids=_rel)
def test_relative_links_point_at_existing_files_and_headings(page: Path) -> None:
    broken = []
    for target in _LINK.findall(_without_code(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{_rel(page)}: broken links: {', '.join(broken)}"


def test_anchor_slugs_follow_github() -> None:
    assert "hmlc_register_datasets" in _anchors(DOCS / "hooks.md")
    assert "hmlc-hierarchy-show" in _anchors(DOCS / "cli.md")
    assert "stage-1-the-conditional-subset" in _anchors(DOCS / "concepts.md")


# ---------------------------------------------------------------- commands
def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands_named(text: str) -> set[tuple[str, ...]]:
    """Every `hmlc COMMAND [ACTION]` in inline code and in command lines of code blocks."""
    candidates = _code_spans(text)
    for block in (m.group(0) for m in _FENCE.finditer(text)):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("$ "):
                candidates.append(line[2:])
            elif re.match(r"^(hmlc|torchrun|python\S* -m hmlc|\S*/hmlc)\b", line) and not line.startswith("hmlc:"):
                candidates.append(line)
    found = set()
    for text_ in candidates:
        for m in re.finditer(r"(?<![\w-])hmlc ([a-z][\w-]*)(?: ([a-z][\w-]*))?", text_):
            found.add(tuple(g for g in m.groups() if g))
    return found


def test_cli_doc_names_commands_that_exist() -> None:
    commands = _subcommands(build_parser())
    named = _commands_named((DOCS / "cli.md").read_text(encoding="utf-8"))
    assert ("hierarchy", "show") in named  # the scan finds what it should
    unknown = []
    for name in sorted(named):
        if name[0] not in commands:
            unknown.append(" ".join(name))
            continue
        actions = _subcommands(commands[name[0]])
        if actions and len(name) > 1 and name[1] not in actions:
            unknown.append(" ".join(name))
    assert not unknown, f"docs/cli.md names commands the parser lacks: {unknown}"


def test_cli_doc_covers_every_command() -> None:
    commands = _subcommands(build_parser())
    named = _commands_named((DOCS / "cli.md").read_text(encoding="utf-8"))
    for command, parser in commands.items():
        actions = _subcommands(parser)
        for action in actions or [None]:
            key = (command, action) if action else (command,)
            assert any(n[: len(key)] == key for n in named), f"docs/cli.md does not describe `hmlc {' '.join(key)}`"
            heading = "hmlc " + " ".join(key)
            assert f"## {heading}\n" in (DOCS / "cli.md").read_text(encoding="utf-8"), f"no section for {heading}"


# ------------------------------------------------------- configuration keys
_FILE_SUFFIXES = {"yaml", "yml", "json", "csv", "md", "py", "txt", "toml", "safetensors", "png", "jpg", "gz"}
_DOTTED = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+)(?:=.*)?$", re.S)


def _section(annotation: typing.Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (directly, in a list, or optional)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section(arg)
        if found is not None:
            return found
    return None


def _is_mapping(annotation: typing.Any) -> bool:
    return typing.get_origin(annotation) is dict or annotation is dict


def config_key_exists(dotted: str) -> bool:
    """Whether ``dotted`` is a key of ExperimentConfig (free keys below dict fields allowed)."""
    model: type[BaseModel] = ExperimentConfig
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i == len(parts) - 1:
            return True
        if _is_mapping(field.annotation):
            return True
        section = _section(field.annotation)
        if section is None:
            return False
        model = section
    return True


def _dotted_keys(text: str) -> set[str]:
    keys = set()
    for span in _code_spans(text):
        m = _DOTTED.match(span)
        if not m:
            continue
        key = m.group(1)
        first, last = key.split(".")[0], key.split(".")[-1]
        if last in _FILE_SUFFIXES or first in {"hmlc", "torch", "np", "numpy", "importlib"}:
            continue  # a file name or a Python name, not a configuration key
        keys.add(key)
    return keys


def test_config_key_check_is_strict() -> None:
    assert config_key_exists("train.epochs")
    assert config_key_exists("data.closure.negative_down")
    assert config_key_exists("data.params.n_train")  # reader options are free keys
    assert not config_key_exists("train.epoch")
    assert not config_key_exists("trian.epochs")
    assert not config_key_exists("train.epochs.value")
    assert _dotted_keys("`train.lr=1e-4`, `config.yaml`, `hmlc.config.reference`") == {"train.lr"}


@pytest.mark.parametrize("page", MARKDOWN, ids=_rel)
def test_config_keys_named_in_the_docs_exist(page: Path) -> None:
    keys = _dotted_keys(page.read_text(encoding="utf-8"))
    if page.parent == DOCS and page.name in ("configuration.md", "training.md"):
        assert len(keys) >= 5, "the scan found too few keys; is the pattern broken?"
    unknown = sorted(k for k in keys if not config_key_exists(k))
    assert not unknown, f"{_rel(page)} names configuration keys that do not exist: {unknown}"


def test_cli_doc_shows_the_current_top_level_help(monkeypatch) -> None:
    """The `$ hmlc --help` block of cli.md is what the program prints (80 columns)."""
    monkeypatch.setenv("COLUMNS", "80")
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    shown = text.split("```\n$ hmlc --help\n", 1)[1].split("```", 1)[0]
    assert shown == build_parser().format_help()


def test_cli_doc_usage_lines_are_the_programs(monkeypatch) -> None:
    """Every ``usage: hmlc ...`` block of cli.md is the usage its parser prints (80 columns)."""
    monkeypatch.setenv("COLUMNS", "80")
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(usage: hmlc .*?)```", text, re.S)
    assert len(blocks) >= 10
    parsers = {(): build_parser()}
    for command, parser in _subcommands(build_parser()).items():
        parsers[(command,)] = parser
        for action, sub in (_subcommands(parser) or {}).items():
            parsers[(command, action)] = sub
    stale = []
    for block in blocks:
        words = block.split()[2:4]
        key = next((k for k in ((words[0], words[1]), (words[0],)) if k in parsers), None)
        if key is None or parsers[key].format_usage() != block:
            stale.append(block.splitlines()[0])
    assert not stale, f"cli.md usage blocks differ from the program: {stale}"

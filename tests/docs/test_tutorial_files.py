"""The plugin tutorial (docs/plugins.md) shows the example package whole: a reader can type it in.

Every source block of the tutorial follows a caption line ``File `PATH`:`` and is,
byte for byte, the file PATH of docs/examples/hmlc-example-plugin; every file of
the package (build outputs, egg-info and caches aside) is shown, once; the
package trees drawn in the tutorial and in the package's README list exactly
its files. The other blocks are commands (``bash``) and program outputs (checked
by test_doc_outputs.py).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "docs" / "examples" / "hmlc-example-plugin"

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.S | re.M)
_CAPTION = re.compile(r"File `([^`]+)`:\n\n$")
_IGNORED_PARTS = {"__pycache__", "build", "dist", ".pytest_cache"}


def package_files() -> set[str]:
    """The package's files, relative to its folder, without build outputs and caches."""
    return {
        path.relative_to(EXAMPLE).as_posix()
        for path in EXAMPLE.rglob("*")
        if path.is_file()
        and not _IGNORED_PARTS & set(path.relative_to(EXAMPLE).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
        and path.suffix not in (".pyc", ".pyo")
    }


def blocks(text: str) -> list[tuple[str | None, str, str, str]]:
    """Every fenced block as (captioned path or None, info string, body, the text before it)."""
    found = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()]
        caption = _CAPTION.search(before)
        found.append((caption.group(1) if caption else None, m.group("info").strip(), m.group("body"), before))
    return found


def tree_paths(tree: str) -> set[str]:
    """Files of a drawn tree: two spaces of indentation per level, folders end in ``/``, comments after the name."""
    paths, stack = set(), []
    for line in tree.splitlines()[1:]:  # the first line is the package folder
        depth = (len(line) - len(line.lstrip(" "))) // 2 - 1
        name = line.split()[0]
        del stack[depth:]
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
        else:
            paths.add("/".join([*stack, name]))
    return paths


def test_the_package_files_are_found() -> None:
    files = package_files()
    assert {"pyproject.toml", "README.md", "hmlc_example/plugin.py", "hmlc_example/shapes.py"} <= files
    assert not any("egg-info" in f or f.endswith(".pyc") for f in files)


def test_every_file_block_is_the_package_file_byte_for_byte() -> None:
    shown = [(path, body) for path, _, body, _ in blocks(TUTORIAL.read_text(encoding="utf-8")) if path]
    assert len(shown) >= 5, "the caption pattern finds too few file blocks"
    for path, body in shown:
        file = EXAMPLE / path
        assert file.is_file(), f"docs/plugins.md shows {path}, which the example package lacks"
        assert body.encode("utf-8") == file.read_bytes(), (
            f"docs/plugins.md shows {path} otherwise than it is; copy the file into the tutorial"
        )


def test_every_package_file_is_shown_once() -> None:
    shown = [path for path, _, _, _ in blocks(TUTORIAL.read_text(encoding="utf-8")) if path]
    assert sorted(shown) == sorted(set(shown)), "a file is shown twice"
    missing = package_files() - set(shown)
    assert not missing, f"docs/plugins.md does not show {sorted(missing)}"


def test_every_other_block_is_a_command_an_output_or_the_tree() -> None:
    partial = []
    for path, info, body, before in blocks(TUTORIAL.read_text(encoding="utf-8")):
        if path:
            continue
        if before.endswith("<!-- output -->\n") or re.search(r"<!-- output [^>]*-->\n$", before):
            continue
        if info == "bash" and all(line and not line.startswith(" ") for line in body.splitlines()):
            continue  # one command per line
        if info == "" and (body.startswith("hmlc-example-plugin/\n") or body.startswith("catalogue-csv/\n")):
            continue  # a drawn folder
        partial.append(body.splitlines()[0] if body else "(empty)")
    assert not partial, f"docs/plugins.md has blocks that are neither whole files, commands nor outputs: {partial}"


def test_the_drawn_trees_list_exactly_the_package_files() -> None:
    trees = [body for path, info, body, _ in blocks(TUTORIAL.read_text(encoding="utf-8"))
             if body.startswith("hmlc-example-plugin/\n")]  # fmt: skip
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    trees += [body for _, _, body, _ in blocks(readme) if body.startswith("hmlc-example-plugin/\n")]
    assert len(trees) == 2  # the tutorial's and the README's (shown whole in the tutorial)
    for tree in trees:
        assert tree_paths(tree) == package_files()

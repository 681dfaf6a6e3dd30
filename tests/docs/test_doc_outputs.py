"""Every program output shown in docs/plugins.md, docs/hooks.md and docs/cli.md is what the program prints.

A block that shows output is marked in the Markdown by an HTML comment on the line
above its fence (invisible on GitHub)::

    <!-- output -->
    ```
    $ hmlc hierarchy check chexpert
    ok: chexpert: 14 labels, ...
    ```

Each ``$ COMMAND`` line (a trailing ``\\`` continues it on the next line) is run
with bash, ``hmlc`` being ``python -m hmlc`` of this interpreter, and what it
prints on stdout and stderr together (unbuffered, so in the order it was
written) must be the lines below it, up to the next ``$``. A command that
prints ``hmlc: error:`` must exit with code 2, any other with 0. The blocks of
one page run in order in one working directory, so a block may use files an
earlier one wrote. Options in the comment:

* ``plugins=a,b``: only these installed plugins load (``HMLC_LOAD_PLUGINS``);
  ``copycat``, ``broken`` and ``maps`` are the small plugins of
  :data:`FIXTURE_PLUGINS`, installed for the block as pip would install them (a
  module and a ``.dist-info`` folder on ``PYTHONPATH``). Without it: the plugins
  under plugins/ (what the README installs), and on plugins.md the example plugin.
* ``normalise=...``: what may differ from run to run, replaced on both sides
  before comparing: ``times`` (durations, images per second, the timestamp in a
  run directory's name; in a table, the ``seconds`` and ``img/s`` columns),
  ``hashes`` (a cache entry's key, which hashes the dataset's absolute path),
  ``columns`` (runs of spaces and dashes: a table's widths follow the length of
  the temporary paths in it), ``floats`` (decimals within 0.02: a loss or an AUC
  after training rounds differently on another CPU, whose thread count and
  vector instructions change the order of float sums).

A block under ``<!-- file: NAME -->`` is written to the file NAME of the page's
working directory before its commands run (the inputs the commands read).

Progress is off (``HMLC_PROGRESS_SECONDS=off``): a bar leaves nothing on a terminal, and
the timed lines of a log depend on the machine's speed.

Paths: ``/tmp/`` in a command is a private temporary folder, written back as
``/tmp/`` in the output; the home folder is written ``~``. A line ``...`` alone
stands for any number of lines, and ``...`` within a line for any text (for long
outputs cut in the docs). Nothing else is normalised.

plugins.md runs as its reader does: a copy of docs/examples/hmlc-example-plugin
is installed for real (``pip install --no-deps --no-build-isolation --no-index
--target``; a folder of this test, never the shared environment), so the
plugin manager finds its entry point as it finds any installed plugin, and the
commands run in the copy, as a reader who typed the files in runs them.

``HMLC_UPDATE_DOC_OUTPUTS=1`` writes what the program printed into the blocks
instead of comparing (times as measured; put back ``...`` cuts by hand).
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "hmlc-example-plugin"
PAGES = ("plugins.md", "hooks.md", "cli.md")
UPDATE = os.environ.get("HMLC_UPDATE_DOC_OUTPUTS") == "1"

_MARKED = re.compile(
    r"^(?P<indent>[ \t]*)<!-- output(?P<opts>[^>]*?)-->\n(?P=indent)(?P<fence>`{3,}|~{3,})[^\n]*\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.S | re.M,
)
_FILE = re.compile(
    r"^<!-- file: (?P<name>\S+) -->\n(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.S | re.M
)
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.S | re.M,
)

#: Plugins installed only for the blocks that name them: name -> (distribution, version, module source).
FIXTURE_PLUGINS: dict[str, tuple[str, str, str]] = {
    # registers a policy name the built-in plugin registers too
    "copycat": (
        "hmlc-copycat",
        "1.0",
        "from hmlc.plugins import hookimpl\n\n\n"
        "@hookimpl\ndef hmlc_register_uncertainty_policies(register):\n"
        "    from hmlc.policies import ConstantPolicy\n\n"
        "    register('u-ones', lambda: ConstantPolicy(1.0, name='u-ones'))\n",
    ),
    # a half-installed plugin: importing it raises
    "broken": ("hmlc-broken", "1.0", "raise RuntimeError('half-installed')\n"),
    # two hierarchies and two label maps with a mistake each
    "maps": (
        "hmlc-maps",
        "1.0",
        "from hmlc.plugins import hookimpl\n\n\n"
        "@hookimpl\ndef hmlc_register_hierarchies(register):\n"
        "    register('src', {'labels': ['tumor', 'fluid'], 'edges': []})\n"
        "    register('tgt', {'labels': ['mass', 'effusion'], 'edges': []})\n\n\n"
        "@hookimpl\ndef hmlc_register_label_maps(register):\n"
        "    register('typo', {'source': 'src', 'target': 'tgt', 'labels': {'mass': 'tumour', 'effusion': 'fluid'}})\n"
        "    register('ghost', {'source': 'src', 'target': 'no-such-tree', 'labels': {'mass': 'tumor'}})\n",
    ),
}


def repo_plugins() -> list[str]:
    """Entry-point names of the plugins under plugins/ (what the README's install command installs)."""
    names = []
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        names += list(project.get("entry-points", {}).get("hmlc", {}))
    return names


# ------------------------------------------------------------------ parsing
@dataclass
class Command:
    line: str  # as written, without "$ " (continuation lines joined with their backslashes)
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    page: str
    options: dict[str, str]
    commands: list[Command]
    start: int  # offset of the body in the page
    end: int
    indent: str  # of the fence (a block inside a list item)

    @property
    def where(self) -> str:
        return f"docs/{self.page}: block of `$ {self.commands[0].line.splitlines()[0]}`"


def parse_blocks(page: str, text: str) -> list[Block]:
    """The marked output blocks of one page, in order."""
    blocks = []
    for m in _MARKED.finditer(text):
        options = dict(opt.split("=", 1) for opt in m.group("opts").split())
        commands: list[Command] = []
        continued = False
        indent = m.group("indent")
        for line in m.group("body").splitlines():
            line = line[len(indent) :] if line.startswith(indent) else line.lstrip(" ")
            if continued:
                commands[-1].line += "\n" + line
            elif line.startswith("$ "):
                commands.append(Command(line[2:]))
            elif commands:
                commands[-1].expected.append(line)
            else:
                raise AssertionError(f"docs/{page}: an output block starts with {line!r}, not with `$ COMMAND`")
            continued = bool(commands) and commands[-1].line.endswith("\\") and (continued or line.startswith("$ "))
        blocks.append(Block(page, options, commands, m.start("body"), m.end("body"), indent))
    return blocks


def test_the_parser_reads_commands_continuations_and_options() -> None:
    text = "<!-- output plugins=a,b normalise=times -->\n```\n$ hmlc x \\\n    --y 1\nout 1\n\n$ hmlc z\n```\n"
    (block,) = parse_blocks("p.md", text)
    assert block.options == {"plugins": "a,b", "normalise": "times"}
    assert [c.line for c in block.commands] == ["hmlc x \\\n    --y 1", "hmlc z"]
    assert block.commands[0].expected == ["out 1", ""]
    assert text[block.start : block.end].startswith("$ hmlc x")


# ------------------------------------------------------------ normalising
_TIMES = [
    (re.compile(r"\b\d{8}-\d{6}\b"), "<timestamp>"),
    (re.compile(r"\b\d+(\.\d+)? img/s\b"), "<speed> img/s"),
    (re.compile(r"(?<![\w.])\d+(\.\d+)?s\b"), "<seconds>"),
]
_FLOAT = re.compile(r"-?\d+\.\d+")


def normalise(lines: list[str], kinds: set[str]) -> list[str]:
    """``lines`` with trailing spaces and trailing blank lines dropped, and ``kinds`` replaced."""
    out = []
    for line in lines:
        line = line.rstrip()
        if "times" in kinds:
            for pattern, placeholder in _TIMES:
                line = pattern.sub(placeholder, line)
        if "hashes" in kinds:
            line = re.sub(r"-[0-9a-f]{16}\b", "-<hash>", line)
        if "columns" in kinds:
            line = re.sub(r" {2,}", "  ", re.sub(r"-{2,}", "--", line))
        out.append(line)
    if "times" in kinds:
        out = _table_times(out)
    while out and not out[-1]:
        out.pop()
    return out


def _table_times(lines: list[str]) -> list[str]:
    """The ``seconds`` and ``img/s`` columns of a table replaced (its rows re-joined by two spaces)."""
    out, columns, width = [], [], 0
    for line in lines:
        fields = line.split()
        if "seconds" in fields and "img/s" in fields:
            columns, width = [fields.index("seconds"), fields.index("img/s")], len(fields)
        elif columns and len(fields) == width and not set(line) <= {"-", " "}:
            for i in columns:
                fields[i] = "<time>"
        elif columns and not set(line) <= {"-", " "}:
            columns = []
        out.append("  ".join(fields) if columns else line)
    return out


def _same_line(expected: str, actual: str, floats: bool) -> bool:
    if expected == actual:
        return True
    if "..." in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split("..."))
        return re.fullmatch(pattern, actual) is not None
    if not floats or _FLOAT.split(expected) != _FLOAT.split(actual):
        return False
    pairs = zip(_FLOAT.findall(expected), _FLOAT.findall(actual), strict=True)
    return all(abs(float(e) - float(a)) <= 0.02 for e, a in pairs)


def lines_match(expected: list[str], actual: list[str], floats: bool = False) -> bool:
    """Whether ``actual`` is ``expected``, a line ``...`` standing for any number of lines."""
    if not expected:
        return not actual
    if expected[0].strip() == "...":
        return any(lines_match(expected[1:], actual[i:], floats) for i in range(len(actual) + 1))
    return bool(actual) and _same_line(expected[0], actual[0], floats) and lines_match(expected[1:], actual[1:], floats)


def test_the_comparison_can_fail() -> None:
    assert lines_match(["a", "...", "d"], ["a", "b", "c", "d"])
    assert lines_match(["[", "  ...", "]"], ["[", "  {", "  }", "]"])
    assert not lines_match(["a", "...", "d"], ["a", "b", "c"])
    assert not lines_match(["loss 0.50"], ["loss 0.60"], floats=True)
    assert lines_match(["loss 0.50"], ["loss 0.51"], floats=True)
    assert not lines_match(["loss 0.50"], ["loss 0.51"])
    progress = normalise(["[ct1] epoch 1/3  47 img/s  12.8s  ", ""], {"times"})
    assert progress == ["[ct1] epoch 1/3  <speed> img/s  <seconds>"]
    assert normalise(["runs/x-ct-20261130-224136"], {"times"}) == ["runs/x-ct-<timestamp>"]
    assert normalise(["a     b", "---  -----"], {"columns"}) == ["a  b", "--  --"]
    assert lines_match(["splits: {'images': 2, ...}"], ["splits: {'images': 2, 'patients': 1}"])
    assert not lines_match(["splits: {'images': 2, ...}"], ["splits: {'images': 3, 'patients': 1}"])
    table = ["split  seconds  img/s  status", "-----  -------  -----  ------", "train      0.2   1015  built"]
    assert normalise(table, {"times"})[2] == "train  <time>  <time>  built"


# ------------------------------------------------------------- running
@dataclass
class Page:
    """Where one page's commands run."""

    tmp: Path  # what "/tmp/" in a command means
    cwd: Path
    bin: Path  # hmlc, python and pytest of this interpreter
    pythonpath: list[str]
    default_plugins: list[str]


def _bin(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in (("hmlc", " -m hmlc"), ("python", ""), ("pytest", " -m pytest")):
        script = folder / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}"{module} "$@"\n', encoding="utf-8")
        script.chmod(0o755)
    return folder


def _inherited_pythonpath() -> list[str]:
    """The caller's PYTHONPATH without the example's source folder: the example must come from its install."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [p for p in parts if Path(p).resolve() != EXAMPLE.resolve()]


def install_example(tmp: Path) -> tuple[Path, Path]:
    """A copy of the example package (the reader's folder) and the folder pip installed it into."""
    package = tmp / "hmlc-example-plugin"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__", ".*"))
    site = tmp.parent / (tmp.name + "-site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--no-cache-dir", "--target", str(site), str(package)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # --no-build-isolation builds with this environment's setuptools (torch requires it), offline
    assert done.returncode == 0, f"pip could not install the example package:\n{done.stdout}{done.stderr}"
    return package, site


def install_fixture(name: str, folder: Path) -> Path:
    """Install fixture plugin ``name`` into ``folder`` as pip lays a distribution out."""
    distribution, version, source = FIXTURE_PLUGINS[name]
    module = f"hmlc_fixture_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source, encoding="utf-8")
    info = folder / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    metadata = f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[hmlc]\n{name} = {module}\n", encoding="utf-8")
    return folder


def run_block(block: Block, page: Page) -> tuple[list[str], list[str]]:
    """Run a block's commands; return (problems, the block's body as the program printed it)."""
    names = block.options.get("plugins", ",".join(page.default_plugins)).split(",")
    fixtures = [str(install_fixture(n, page.tmp.parent / "fixtures" / n)) for n in names if n in FIXTURE_PLUGINS]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMLC_") and k not in ("COLUMNS", "PYTEST_ADDOPTS")}
    env.update(
        PATH=f"{page.bin}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(fixtures + page.pythonpath),
        PYTHONUNBUFFERED="1",
        HMLC_LOAD_PLUGINS=",".join(n for n in names if n),
        HMLC_OFFLINE="1",
        # Progress lines in a log come every 10 s, so how many depends on the machine's speed;
        # the blocks show what a terminal keeps once each progress bar has gone.
        HMLC_PROGRESS_SECONDS="off",
    )
    env.pop("PYTEST_XDIST_WORKER", None)
    kinds = set(filter(None, block.options.get("normalise", "").split(",")))
    problems, printed = [], []
    tmp = str(page.tmp)
    for command in block.commands:
        done = subprocess.run(
            ["bash", "-c", command.line.replace("/tmp/", tmp + "/")],
            cwd=page.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
        )  # fmt: skip
        actual = done.stdout.replace(tmp, "/tmp")
        if len(str(Path.home())) > 1:
            actual = actual.replace(str(Path.home()), "~")
        actual = actual.splitlines()
        printed += ["$ " + command.line, *actual]
        errors = any(line.startswith("hmlc: error:") for line in actual)
        if done.returncode != (2 if errors else 0):
            problems.append(f"`$ {command.line}` exited with {done.returncode}:\n" + "\n".join(actual[-20:]))
        want, got = normalise(command.expected, kinds), normalise(actual, kinds)
        if not lines_match(want, got, floats="floats" in kinds):
            diff = "\n".join(difflib.unified_diff(want, got, "docs", "program", lineterm=""))
            problems.append(f"{block.where}: `$ {command.line}` prints otherwise:\n{diff}")
    return problems, printed


def _update(path: Path, replacements: list[tuple[Block, list[str]]]) -> None:
    text = path.read_text(encoding="utf-8")
    for block, printed in sorted(replacements, key=lambda item: -item[0].start):
        body = "".join((block.indent + line).rstrip() + "\n" for line in printed)
        text = text[: block.start] + body + text[block.end :]
    path.write_text(text, encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("page_name", PAGES)
def test_every_output_shown_is_what_the_program_prints(page_name: str, tmp_path: Path) -> None:
    path = DOCS / page_name
    blocks = parse_blocks(page_name, path.read_text(encoding="utf-8"))
    assert blocks, f"docs/{page_name} marks no output block"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    pythonpath = _inherited_pythonpath()
    defaults = repo_plugins()
    cwd = tmp
    if page_name == "plugins.md":
        cwd, site = install_example(tmp)
        pythonpath = [str(site), *pythonpath]
        defaults = [*defaults, "example"]
    page = Page(tmp, cwd, _bin(tmp_path / "bin"), pythonpath, defaults)
    for m in _FILE.finditer(path.read_text(encoding="utf-8")):
        (cwd / m.group("name")).write_text(m.group("body"), encoding="utf-8")
    problems, updates = [], []
    for block in blocks:
        found, printed = run_block(block, page)
        problems += found
        updates.append((block, printed))
    if UPDATE:
        _update(path, updates)
        return
    assert not problems, "\n\n".join(problems)


# ----------------------------------------------------- every output is marked
def _looks_like_output(info: str, body: str) -> bool:
    """A block that shows what hmlc prints: a command followed by its output, or a message of hmlc."""
    if info.strip() not in ("", "text", "console"):
        return False
    lines = [line.strip() for line in body.splitlines()]
    printed = any(line.startswith(("hmlc: error:", "hmlc: warning:")) for line in lines)
    after_command = continued = waiting = False  # waiting: the line before ended a command
    for line in lines:
        if continued or line.startswith("$ "):
            continued = line.endswith("\\")
            waiting = not continued
            continue
        after_command |= waiting and bool(line)
        waiting = False
    return printed or after_command


@pytest.mark.parametrize("page_name", PAGES)
def test_every_block_showing_output_is_marked(page_name: str) -> None:
    text = (DOCS / page_name).read_text(encoding="utf-8")
    marked = {b.start for b in parse_blocks(page_name, text)}
    unmarked = [
        m.group("body").splitlines()[0]
        for m in _FENCE.finditer(text)
        if m.start("body") not in marked and _looks_like_output(m.group("info"), m.group("body"))
    ]
    assert not unmarked, f"docs/{page_name}: blocks showing output without `<!-- output -->` above them: {unmarked}"

#!/usr/bin/env python3
"""Build the wheel and sdist of hmlc and of every plugin under plugins/, and check them.

    python .ci/build_dists.py [--out DIR] [--no-isolation]

Builds with ``python -m build`` (one project per pyproject.toml: the root and
plugins/*/pyproject.toml), then checks each distribution is ready to publish:
``twine check --strict``; metadata with a summary, a Markdown readme, a licence
expression and licence file, project URLs, classifiers and Requires-Python;
every file of the source packages (Python modules and package data such as
YAML) in the wheel; plugins declaring an ``hmlc`` entry point; the sdist
holding pyproject.toml, README.md and LICENSE. Prints one line per
distribution; exits 1 listing every problem found. Needs ``build`` and
``twine`` (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import email.parser
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_URLS = ("Homepage", "Documentation", "Source", "Issues")
SDIST_FILES = ("pyproject.toml", "README.md", "LICENSE")


def projects(root: Path = ROOT) -> list[Path]:
    """The root project and every plugin folder with a pyproject.toml, in build order."""
    return [root] + sorted(p.parent for p in root.glob("plugins/*/pyproject.toml"))


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _source_packages(project: Path, config: dict) -> list[Path]:
    """Top-level package folders of ``project`` matched by tool.setuptools.packages.find.include."""
    include = config.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {}).get("include", [])
    tops = {pattern.rstrip("*").rstrip(".") for pattern in include}
    return sorted(project / top for top in tops if (project / top / "__init__.py").is_file())


def _package_files(package: Path, project: Path) -> set[str]:
    """Paths (relative to ``project``, as in a wheel) of every file of a source package."""
    return {
        path.relative_to(project).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    }


def check_wheel(wheel: Path, project: Path, config: dict) -> list[str]:
    """Problems with a wheel's metadata and contents ([] when ready to publish)."""
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        meta_name = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        if meta_name is None:
            return [f"{wheel.name}: no METADATA"]
        metadata = email.parser.Parser().parsestr(archive.read(meta_name).decode("utf-8"))
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        entry_text = archive.read(entry_points).decode("utf-8") if entry_points else ""
    for field in ("Summary", "Requires-Python", "Description-Content-Type"):
        if not metadata.get(field):
            problems.append(f"{wheel.name}: metadata has no {field}")
    if metadata.get("Description-Content-Type", "").split(";")[0] != "text/markdown":
        problems.append(f"{wheel.name}: the long description is not the Markdown README")
    if len(metadata.get_payload() or "") < 200:
        problems.append(f"{wheel.name}: the long description (README) is missing or too short")
    if not (metadata.get("License-Expression") or metadata.get("License")):
        problems.append(f"{wheel.name}: metadata names no licence")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append(f"{wheel.name}: the LICENSE file is not in the wheel")
    urls = {u.split(",", 1)[0].strip() for u in metadata.get_all("Project-URL") or []}
    missing_urls = [u for u in REQUIRED_URLS if u not in urls]
    if missing_urls:
        problems.append(f"{wheel.name}: no project URL for {', '.join(missing_urls)}")
    if len(metadata.get_all("Classifier") or []) < 3:
        problems.append(f"{wheel.name}: fewer than 3 classifiers")
    for package in _source_packages(project, config):
        absent = sorted(_package_files(package, project) - names)
        if absent:
            problems.append(f"{wheel.name}: {len(absent)} source file(s) not in the wheel, e.g. {absent[0]}")
    if project != ROOT and "[hmlc]" not in entry_text:
        problems.append(f"{wheel.name}: a plugin without an [hmlc] entry point")
    return problems


def check_sdist(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    return [f"{sdist.name}: {name} is not in the sdist" for name in SDIST_FILES if name not in names]


def build_and_check(out: Path, isolation: bool = True, root: Path = ROOT) -> list[str]:
    """Build every project into ``out`` and return the problems found."""
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.whl")) + list(out.glob("*.tar.gz")):
        old.unlink()
    problems: list[str] = []
    for project in projects(root):
        config = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
        name = _normalised(config["project"]["name"])
        command = [sys.executable, "-m", "build", "--outdir", str(out), str(project)]
        if not isolation:
            command.insert(3, "--no-isolation")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            problems.append(f"{project.name}: python -m build failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        wheels = sorted(out.glob(f"{name}-*.whl"))
        sdists = sorted(out.glob(f"{name}-*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            problems.append(f"{config['project']['name']}: expected one wheel and one sdist, got {wheels + sdists}")
            continue
        found = check_wheel(wheels[0], project, config) + check_sdist(sdists[0])
        problems += found
        print(f"{'ok' if not found else 'FAIL'}: {wheels[0].name}, {sdists[0].name}")
    built = sorted(out.glob("*.whl")) + sorted(out.glob("*.tar.gz"))
    if built:
        twine = subprocess.run(
            [sys.executable, "-m", "twine", "check", "--strict", *map(str, built)], capture_output=True, text=True
        )
        if twine.returncode != 0:
            problems.append("twine check --strict failed: " + " | ".join(twine.stdout.strip().splitlines()[-3:]))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument(
        "--no-isolation", action="store_true",
        help="build with this environment's setuptools instead of a fresh one per project (faster)",
    )
    args = parser.parse_args(argv)
    problems = build_and_check(args.out.resolve(), isolation=not args.no_isolation)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s): the distributions are not ready to publish", file=sys.stderr)
        return 1
    print(f"all distributions in {args.out} are ready to publish")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The distributions: built, checked, installed from the wheels alone into a fresh venv, used.

The slow test builds every project (.ci/build_dists.py), installs the wheels
(and nothing of the source tree) into a new virtual environment and trains
there. The wheels' dependencies (torch, ...) come from this interpreter's
site-packages through a .pth file, with this environment's editable installs
(the source tree) left out, so the test needs no network and no multi-GB
download, yet imports hmlc and its plugins only from the installed wheels.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "build_dists.py"


def _build_tool() -> object:
    spec = importlib.util.spec_from_file_location("build_dists", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


needs_build = pytest.mark.skipif(
    importlib.util.find_spec("build") is None or importlib.util.find_spec("twine") is None,
    reason="needs the build and twine packages (pip install -e '.[test]')",
)


def test_every_plugin_folder_is_a_project_to_build() -> None:
    tool = _build_tool()
    found = tool.projects(ROOT)
    assert found[0] == ROOT
    assert sorted(p.name for p in found[1:]) == sorted(p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml"))
    assert ROOT / "plugins" / "chexpert" in found


def _wheel(tmp_path: Path, files: dict[str, str], metadata: str) -> Path:
    wheel = tmp_path / "demo-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("demo-0.1.dist-info/METADATA", metadata)
    return wheel


def test_the_wheel_check_finds_missing_package_data_and_metadata(tmp_path: Path) -> None:
    """The checks the build script applies catch what a user would miss after `pip install`."""
    tool = _build_tool()
    project = tmp_path / "demo"
    (project / "demo").mkdir(parents=True)
    (project / "demo" / "__init__.py").write_text("")
    (project / "demo" / "tree.yaml").write_text("edges: []\n")
    config = {"tool": {"setuptools": {"packages": {"find": {"include": ["demo*"]}}}}}
    bare = _wheel(tmp_path, {"demo/__init__.py": ""}, "Metadata-Version: 2.4\nName: demo\nVersion: 0.1\n\n")
    problems = " | ".join(tool.check_wheel(bare, project, config))
    for expected in ("no Summary", "no Requires-Python", "names no licence", "LICENSE", "project URL", "classifiers",
                     "demo/tree.yaml", "README"):
        assert expected in problems, expected


@needs_build
@pytest.mark.slow
def test_wheels_install_into_a_fresh_venv_and_train(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(dist), "--no-isolation"], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = sorted(dist.glob("*.whl"))
    assert {w.name.split("-")[0] for w in wheels} >= {"hmlc", "hmlc_chexpert"}
    with zipfile.ZipFile(next(w for w in wheels if w.name.startswith("hmlc_chexpert-"))) as archive:
        assert "hmlc_chexpert/hierarchy.yaml" in archive.namelist()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip())
    (site / "_hmlc_test_deps.pth").write_text(str(_third_party_only(tmp_path / "deps")) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # pip of this interpreter installs into the new venv: the wheels only, from no index.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-deps", "-q",
         *map(str, wheels)],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )
    assert install.returncode == 0, install.stderr

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)

    where = run(str(python), "-c", "import hmlc, hmlc_chexpert; print(hmlc.__file__); print(hmlc_chexpert.__file__)")
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert Path(path).is_relative_to(site), f"{path} is not the installed wheel"
    check = run(str(python), "-m", "pip", "check")
    assert check.returncode == 0, check.stdout + check.stderr  # every declared dependency is there
    plugins = run(str(venv / "bin" / "hmlc"), "plugins", "--json")
    assert plugins.returncode == 0, plugins.stderr
    assert "chexpert" in {p["name"] for p in json.loads(plugins.stdout)}
    tree = run(str(venv / "bin" / "hmlc"), "hierarchy", "check", "chexpert")  # the YAML package data
    assert tree.returncode == 0 and "14 labels" in tree.stdout, tree.stdout + tree.stderr
    train = run(
        str(venv / "bin" / "hmlc"), "train", "--out", str(tmp_path / "runs"),
        *[arg for item in ("data.params.n_train=96", "data.params.n_valid=48", "data.image_size=32",
                           "train.epochs=1", "train.head_epochs=1", "train.progress=false",
                           "output.tensorboard=false") for arg in ("--set", item)],
    )
    assert train.returncode == 0, train.stdout + train.stderr
    assert "mean AUC" in train.stdout and list((tmp_path / "runs").glob("*/checkpoints/best*"))


def _third_party_only(folder: Path) -> Path:
    """A folder linking every package of this interpreter's site-packages except editable installs.

    Editable installs point into a source tree; leaving them (and every .pth
    file) out means the new venv can import hmlc and its plugins only from
    the wheels installed into it.
    """
    folder.mkdir()
    source = Path(sysconfig.get_paths()["purelib"])
    editable_tops: set[str] = set()
    for direct_url in source.glob("*.dist-info/direct_url.json"):
        if json.loads(direct_url.read_text()).get("dir_info", {}).get("editable"):
            editable_tops.add(direct_url.parent.name)
    for entry in source.iterdir():
        if entry.suffix == ".pth" or entry.name.startswith("__editable__") or entry.name in editable_tops:
            continue
        if entry.name.startswith(("hmlc", "_hmlc")):
            continue
        (folder / entry.name).symlink_to(entry)
    return folder

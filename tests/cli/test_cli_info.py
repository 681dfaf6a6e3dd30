"""The inspection commands of ``hmlc`` and how every error reaches the user."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hmlc import __version__
from hmlc.cli.main import main
from hmlc.config import ExperimentConfig, load_config
from hmlc.hierarchy import load_hierarchy
from hmlc.plugins import HOOK_NAMES

VALID_TREE = "labels: [r, a, b, c]\nedges:\n  - [r, a]\n  - [r, b]\n  - [a, c]\n  - [b, c]\n"
CYCLIC_TREE = "edges:\n  - [root, alpha]\n  - [alpha, beta]\n  - [beta, gamma]\n  - [gamma, alpha]\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``hmlc argv`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --version, --help and usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str) -> str:
    assert code == 2
    assert err.startswith("hmlc: error: "), err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def valid_tree(tmp_path: Path) -> Path:
    path = tmp_path / "valid.yaml"
    path.write_text(VALID_TREE)
    return path


@pytest.fixture
def cyclic_tree(tmp_path: Path) -> Path:
    path = tmp_path / "cyclic.yaml"
    path.write_text(CYCLIC_TREE)
    return path


# ------------------------------------------------------------------- version
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"hmlc {__version__}"


# ------------------------------------------------------------------- plugins
def test_plugins_json_lists_builtin_and_chexpert(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["plugins", "--json"], capsys)
    assert code == 0, err
    items = json.loads(out)
    assert isinstance(items, list)
    for item in items:
        assert {"name", "version", "hooks", "registers"} <= set(item)
        assert set(item["hooks"]) <= set(HOOK_NAMES)
        assert isinstance(item["registers"], dict)
    by_name = {item["name"]: item for item in items}
    assert by_name["hmlc"]["version"] == __version__
    assert "synthetic" in by_name["hmlc"]["registers"]["hierarchies"]
    assert "u-ones-lsr" in by_name["hmlc"]["registers"]["policies"]
    assert "hmlc_register_hierarchies" in by_name["chexpert"]["hooks"]
    assert "chexpert" in by_name["chexpert"]["registers"]["hierarchies"]
    assert by_name["chexpert"]["distribution"] == "hmlc-chexpert"


def test_plugins_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["plugins"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["plugin", "version", "distribution", "registers"]
    assert any(line.startswith("hmlc ") for line in lines)
    assert any(line.startswith("chexpert ") and "hierarchies: chexpert" in line for line in lines)


# ---------------------------------------------------------------------- list
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("hierarchies", {"chexpert", "synthetic"}),
        ("datasets", {"synthetic"}),
        ("backbones", {"tiny_cnn"}),
        ("policies", {"u-ignore", "u-zeros", "u-ones", "u-zeros-lsr", "u-ones-lsr", "u-multiclass"}),
        ("presets", {"synthetic/u-ones-lsr-ct", "synthetic/u-ignore"}),
    ],
)
def test_list_kind(kind: str, expected: set[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list", kind], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["name", "plugin", "description"]
    names = {line.split()[0] for line in lines[2:]}
    assert expected <= names

    code, out, err = run(["list", kind, "--json"], capsys)
    assert code == 0, err
    items = json.loads(out)
    assert expected <= {item["name"] for item in items}
    for item in items:
        assert set(item) == {"name", "plugin", "description"}
        assert "\n" not in item["description"]
    assert [item["name"] for item in items] == sorted(item["name"] for item in items)


def test_list_accepts_singular_kind_and_a_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list", "preset", "synthetic/*-ct", "--json"], capsys)
    assert code == 0, err
    names = [item["name"] for item in json.loads(out)]
    assert names and all(n.startswith("synthetic/") and n.endswith("-ct") for n in names)
    assert "synthetic/u-ones-lsr-ct" in names


def test_list_that_matches_nothing_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list", "presets", "no-such-*"], capsys)
    assert code == 0
    assert out == ""
    assert err == "no presets match 'no-such-*'\n"
    code, out, err = run(["list", "presets", "no-such-*", "--json"], capsys)
    assert (code, json.loads(out)) == (0, [])


def test_list_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list", "widgets"], capsys)
    err = assert_one_line_error(code, err)
    assert "unknown kind 'widgets'" in err
    assert "hierarchies" in err and "policies" in err
    assert out == ""


# ----------------------------------------------------------------- hierarchy
def test_hierarchy_show_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["hierarchy", "show", "chexpert"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert "Enlarged Cardiomediastinum" in lines
    assert "└── Cardiomegaly" in lines
    assert lines[-1].startswith("14 labels, 6 edges, 8 roots, 11 leaves, depth 2, 0 labels with several parents, hash ")


def test_hierarchy_show_json_is_the_graph_with_name_hash_and_statistics(
    valid_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["hierarchy", "show", str(valid_tree), "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["labels"] == ["r", "a", "b", "c"]
    assert data["edges"] == [["r", "a"], ["r", "b"], ["a", "c"], ["b", "c"]]
    assert data["name"] == "valid"
    assert data["content_hash"] == load_hierarchy(valid_tree).content_hash
    # r -> {a, b} -> c: one root, one leaf (c, under both a and b), depth 2.
    assert data["statistics"] == {
        "labels": 4, "edges": 4, "roots": 1, "leaves": 1, "max_depth": 2, "labels_with_several_parents": 1,
    }
    # What `show --format json` prints loads back as the same hierarchy.
    assert load_hierarchy(data) == load_hierarchy(valid_tree)


def test_hierarchy_show_dot(valid_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["hierarchy", "show", str(valid_tree), "--format", "dot"], capsys)
    assert code == 0, err
    assert out.startswith('digraph "valid" {')
    for edge in ('"r" -> "a";', '"r" -> "b";', '"a" -> "c";', '"b" -> "c";'):
        assert edge in out
    code, out, err = run(["hierarchy", "show", "chexpert", "--format", "dot"], capsys)
    assert code == 0, err
    assert '"Lung Opacity" -> "Edema";' in out


def test_hierarchy_show_text_of_a_file(valid_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["hierarchy", "show", str(valid_tree), "--format", "text"], capsys)
    assert code == 0, err
    assert out.splitlines()[:3] == ["r", "├── a", "│   └── c  (parents: a, b)"]
    assert "4 labels, 4 edges, 1 roots, 1 leaves, depth 2, 1 labels with several parents" in out


def test_hierarchy_show_json_of_a_registered_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["hierarchy", "show", "synthetic", "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"name", "content_hash", "statistics", "labels", "edges"}
    assert data["name"] == "synthetic"
    assert load_hierarchy(data).content_hash == data["content_hash"]


def test_hierarchy_check_valid_file(valid_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["hierarchy", "check", str(valid_tree)], capsys)
    assert code == 0, err
    assert out.startswith(
        f"ok: {valid_tree}: 4 labels, 4 edges, 1 roots, 1 leaves, depth 2, 1 labels with several parents, hash "
    )
    assert err == ""


def test_hierarchy_check_cycle_names_the_labels(cyclic_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["hierarchy", "check", str(cyclic_tree)], capsys)
    err = assert_one_line_error(code, err)
    assert "cycle" in err
    for label in ("alpha", "beta", "gamma"):
        assert label in err
    assert "root" not in err.split("cycle")[1]
    assert out == ""


def test_hierarchy_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["hierarchy", "check", str(tmp_path / "nope.yaml")], capsys)
    err = assert_one_line_error(code, err)
    assert "nope.yaml does not exist" in err


def test_hierarchy_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["hierarchy", "show", "no-such-tree"], capsys)
    err = assert_one_line_error(code, err)
    assert "unknown hierarchy 'no-such-tree'" in err and "chexpert" in err


# -------------------------------------------------------------------- config
def test_config_show_prints_yaml_that_validates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["config", "show"], capsys)
    assert code == 0, err
    assert ExperimentConfig.model_validate(yaml.safe_load(out)) == load_config()


def test_config_show_applies_preset_file_and_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\n")
    code, out, err = run(
        ["config", "show", "--preset", "synthetic/u-zeros", "--config", str(path), "--set", "seed=5", "--set", "train.lr=0.5"],
        capsys,
    )
    assert code == 0, err
    data = yaml.safe_load(out)
    assert (data["seed"], data["train"]["epochs"], data["train"]["lr"]) == (5, 7, 0.5)
    assert (data["policy"]["default"], data["train"]["method"]) == ("u-zeros", "flat")


@pytest.mark.parametrize(
    ("override", "dotted"),
    [("bad.key=1", "bad: unknown key"), ("train.epochz=1", "train.epochz: unknown key"), ("train.epochs=x", "train.epochs: ")],
)
def test_config_show_with_a_bad_set_names_the_dotted_path(
    override: str, dotted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["config", "show", "--set", override], capsys)
    err = assert_one_line_error(code, err)
    assert dotted in err
    assert out == ""


# ------------------------------------------------------------ every error
@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["--frobnicate"],
        ["plugins", "--frobnicate"],
        ["list", "widgets"],
        ["hierarchy"],
        ["hierarchy", "draw", "chexpert"],
        ["hierarchy", "show"],
        ["hierarchy", "show", "chexpert", "--format", "png"],
        ["hierarchy", "show", "no-such-tree"],
        ["hierarchy", "check", "{tmp}/missing.yaml"],
        ["hierarchy", "check", "{tmp}/cyclic.yaml"],
        ["hierarchy", "check", "{tmp}/bad.yaml"],
        ["hierarchy", "check", "{tmp}/bad.json"],
        ["hierarchy", "check", "{tmp}"],
        ["config"],
        ["config", "show", "--config", "{tmp}/missing.yaml"],
        ["config", "show", "--config", "{tmp}/bad.yaml"],
        ["config", "show", "--preset", "no-such-preset"],
        ["config", "show", "--set", "no-equals-sign"],
        ["config", "show", "--set", "seed.deeper=1"],
        ["config", "show", "--set"],
        pytest.param(
            ["hierarchy", "check", "{tmp}/list_end.yaml"],
        ),
        pytest.param(
            ["hierarchy", "check", "{tmp}/raising.py"],
        ),
    ],
)
def test_every_error_is_one_line_with_exit_code_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cyclic.yaml").write_text(CYCLIC_TREE)
    (tmp_path / "bad.yaml").write_text("edges:\n  - [a, b\n  c: d\n")
    (tmp_path / "bad.json").write_text('{"edges": [["a", "b"],]}')
    (tmp_path / "list_end.yaml").write_text("edges:\n  - [a, [b, c]]\n")
    (tmp_path / "raising.py").write_text("def hierarchy():\n    raise RuntimeError('inner')\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, err)


# ------------------------------------------------------ the console script
def test_installed_console_script_runs_with_exit_codes(cyclic_tree: Path, valid_tree: Path) -> None:
    script = Path(sys.executable).with_name("hmlc")
    executable = str(script) if script.exists() else shutil.which("hmlc")
    if executable is None:
        pytest.skip("the hmlc console script is not installed (pip install -e .)")
    ok = subprocess.run([executable, "hierarchy", "check", str(valid_tree)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: ")
    bad = subprocess.run([executable, "hierarchy", "check", str(cyclic_tree)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("hmlc: error: ")
    assert "cycle" in bad.stderr and "Traceback" not in bad.stderr


# ---------------------------------------------------------------- hmlc weights
@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Empty torch hub and Hugging Face caches in tmp: the user's own are never read."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    return hub, tmp_path / "hf"


def test_weights_lists_found_missing_and_unpublished(caches, capsys) -> None:
    hub, hf = caches
    (hub / "resnet18-f37072fd.pth").write_bytes(b"x")
    snapshot = hf / "models--timm--resnet10t.c3_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"x")
    code, out, err = run(["weights", "resnet18", "timm:resnet10t", "tiny_cnn"], capsys)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "found" in rows["resnet18"] and str(hub / "resnet18-f37072fd.pth") in rows["resnet18"]
    assert str(snapshot / "model.safetensors") in rows["timm:resnet10t"]
    assert "none published" in rows["tiny_cnn"]


def test_weights_missing_is_a_table_then_one_line_and_exit_2(caches, capsys) -> None:
    hub, _ = caches
    (hub / "resnet18-f37072fd.pth").write_bytes(b"x")
    code, out, err = run(["weights", "resnet18", "mobilenet_v3_small"], capsys)
    msg = assert_one_line_error(code, err)
    assert "for 1 of 2 backbone(s): mobilenet_v3_small;" in msg and "model.pretrained=false" in msg
    assert f"put mobilenet_v3_small-047dcff4.pth in {hub}" in out


def test_weights_patterns_and_json(caches, capsys) -> None:
    code, out, _ = run(["weights", "tiny*", "--json"], capsys)
    assert code == 0
    assert json.loads(out) == [{"backbone": "tiny_cnn", "status": "none published", "path": None, "expected": None}]
    code, _, err = run(["weights", "nothing*"], capsys)
    assert "no registered backbone matches 'nothing*'" in assert_one_line_error(code, err)
    code, _, err = run(["weights", "nope"], capsys)
    assert "unknown backbone 'nope'" in assert_one_line_error(code, err)

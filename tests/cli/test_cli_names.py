"""Names a user types: presets and their aliases, did-you-mean, `hmlc list` and `config show`."""

from __future__ import annotations

import json

import pytest

from hmlc.cli.main import main
from hmlc.config import load_config
from hmlc.config.presets import DEPRECATED_PRESET_ALIASES, SYNTHETIC_PRESETS
from hmlc.plugins import KINDS, get_host


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert err.startswith("hmlc: error: ") and err.count("\n") == 1, err
    return err


def test_preset_names_follow_one_order_policy_ct_lsr() -> None:
    names = set(get_host().registry("presets").names())
    for lsr_ct in ("synthetic/u-ones-ct-lsr", "synthetic/u-zeros-ct-lsr", "chexpert/u-ones-ct-lsr"):
        assert lsr_ct in names
    current = {n for n in names if n not in DEPRECATED_PRESET_ALIASES}
    assert not [n for n in current if n.endswith("-lsr-ct")]


@pytest.mark.parametrize("old", sorted(DEPRECATED_PRESET_ALIASES))
def test_old_preset_names_still_work_and_are_listed_as_deprecated(
    old: str, capsys: pytest.CaptureFixture[str]
) -> None:
    new = DEPRECATED_PRESET_ALIASES[old]
    assert load_config(preset=old) == load_config(preset=new)
    code, out, _ = run(["list", "presets", "--json"], capsys)
    assert code == 0
    described = {item["name"]: item["description"] for item in json.loads(out)}
    assert described[old].startswith(f"deprecated alias of {new}")
    assert "deprecated" not in described[new]


def test_synthetic_presets_cover_every_policy_with_and_without_ct() -> None:
    got = {(p["policy"]["default"], p["train"]["method"]) for p in SYNTHETIC_PRESETS.values()}
    policies = ("u-ignore", "u-zeros", "u-ones", "u-zeros-lsr", "u-ones-lsr")
    assert got == {(p, m) for p in policies for m in ("flat", "ct")}


@pytest.mark.parametrize(
    ("argv", "closest"),
    [
        (["train", "--preset", "chexpert/u-ones-lsr-ct"], "chexpert/u-ones-ct-lsr"),
        (["config", "show", "--set", "model.backbone=densenet12"], "densenet121"),
        (["config", "show", "--set", "data.dataset=synthetc"], "synthetic"),
        (["config", "show", "--set", "hierarchy=chexprt"], "chexpert"),
        (["config", "show", "--set", "policy.default=u-onez"], "u-ones"),
    ],
)
def test_unknown_names_say_did_you_mean(argv: list[str], closest: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(argv, capsys)
    err = one_line_error(code, err)
    suggestions = err.split("did you mean: ", 1)[1].split("?", 1)[0].split(", ")
    assert closest in suggestions and len(suggestions) <= 3


def test_config_show_of_valid_names_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["config", "show", "--preset", "synthetic/u-ones-ct-lsr"], capsys)
    assert code == 0, err
    assert "backbone: tiny_cnn" in out


def test_list_without_a_kind_lists_the_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["list"], capsys)
    assert code == 0
    for kind in KINDS:
        assert kind in out
    code, out, _ = run(["list", "--json"], capsys)
    counts = {item["kind"]: item["count"] for item in json.loads(out)}
    assert counts["presets"] == len(get_host().registry("presets"))


def test_builtin_policies_describe_what_they_do(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["list", "policies", "--json"], capsys)
    described = {item["name"]: item["description"] for item in json.loads(out)}
    assert "negative" in described["u-zeros"] and "positive" in described["u-ones"]
    assert "U(0.55, 0.85)" in described["u-ones-lsr"]
    assert not [d for d in described.values() if d.startswith("Build the")]

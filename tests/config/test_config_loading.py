"""Configuration: defaults, strict validation with dotted paths, files, presets, --set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hmlc.config import (
    ExperimentConfig,
    StageConfig,
    TrainConfig,
    apply_overrides,
    config_to_dict,
    config_to_yaml,
    deep_merge,
    load_config,
    parse_override,
    read_config_file,
)
from hmlc.errors import ConfigError, HmlcError


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------- defaults
def test_defaults_validate() -> None:
    config = load_config()
    assert config == ExperimentConfig()
    assert config.data.dataset == "synthetic"
    assert config.train.method == "ct"
    assert config.data.closure.enabled is True
    assert config.data.closure.negative_down is False


def test_every_field_has_a_description() -> None:
    def walk(model: type, prefix: str) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(prefix + name)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                missing += walk(annotation, f"{prefix}{name}.")
        return missing

    assert walk(ExperimentConfig, "") == []


# ----------------------------------------------------------- strict validation
@pytest.mark.parametrize(
    ("overrides", "dotted"),
    [
        (["epochz=3"], "epochz"),
        (["train.epochz=3"], "train.epochz"),
        (["data.closure.enabeld=false"], "data.closure.enabeld"),
        (["policy.defualt=u-ones"], "policy.defualt"),
    ],
)
def test_unknown_key_at_any_depth_names_its_dotted_path(overrides: list[str], dotted: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    message = str(info.value)
    assert f"{dotted}: unknown key" in message
    assert "\n" not in message


def test_unknown_key_inside_a_list_of_stages_names_the_index(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train:\n  stages:\n    - {name: a, epochs: 1, lr: 0.1}\n    - {name: b, epochs: 1, lr: 0.1, lossy: bce}\n",
    )
    with pytest.raises(ConfigError, match=r"train\.stages\.1\.lossy: unknown key"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "dotted", "shown"),
    [
        ("train.epochs=many", "train.epochs", '"many"'),
        ("train.lr=-1", "train.lr", "-1"),
        ("data.image_size=[1, 2]", "data.image_size", "[1, 2]"),
        ("train.method=deep", "train.method", '"deep"'),
        ("data.closure.enabled=maybe", "data.closure.enabled", '"maybe"'),
    ],
)
def test_wrong_value_names_the_dotted_path_and_the_value(override: str, dotted: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    message = str(info.value)
    assert f"{dotted}: " in message
    assert f"(got {shown})" in message
    assert "--set" in message
    assert "\n" not in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: x\n  batch_size: 0\ndata:\n  colour: red\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    for dotted in ("train.epochs", "train.batch_size", "data.colour"):
        assert dotted in message
    assert str(path) in message


def test_empty_stages_list_is_rejected() -> None:
    with pytest.raises(ConfigError, match="stages is empty"):
        load_config(overrides=["train.stages=[]"])


# -------------------------------------------------------------- --set parsing
@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("train.epochs=3", ["train", "epochs"], 3),
        ("train.lr=0.0001", ["train", "lr"], 0.0001),
        ("train.lr=2.5", ["train", "lr"], 2.5),
        ("train.compile=true", ["train", "compile"], True),
        ("train.compile=false", ["train", "compile"], False),
        ("train.betas=[0.8, 0.9]", ["train", "betas"], [0.8, 0.9]),
        ("evaluation.labels=[a, b c]", ["evaluation", "labels"], ["a", "b c"]),
        ("data.limit=null", ["data", "limit"], None),
        ("data.limit=", ["data", "limit"], None),
        ("output.name=run-1", ["output", "name"], "run-1"),
        ("data.params.query=a=b", ["data", "params", "query"], "a=b"),
        ("seed = 7", ["seed"], 7),
        ("policy.params.u-ones-lsr={low: 0.5, high: 0.9}", ["policy", "params", "u-ones-lsr"], {"low": 0.5, "high": 0.9}),
        ("output.name=[unclosed", ["output", "name"], "[unclosed"),
    ],
)
def test_parse_override_reads_the_value_as_yaml(text: str, path: list[str], value: Any) -> None:
    assert parse_override(text) == (path, value)


def test_parse_override_reads_scientific_notation_as_a_float() -> None:
    assert parse_override("policy.params.u-ones-lsr.low=1e-4") == (["policy", "params", "u-ones-lsr", "low"], 1e-4)


def test_scientific_notation_reaches_a_float_field() -> None:
    assert load_config(overrides=["train.lr=1e-4"]).train.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("text", ["train.epochs", "=3", " =3", "train..epochs=3", ".epochs=3", "train.=3"])
def test_malformed_override_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)
    with pytest.raises(ConfigError):
        load_config(overrides=[text])


def test_setting_inside_a_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs is a value, not a section"):
        apply_overrides({"train": {"epochs": 3}}, ["train.epochs.max=4"])
    # Into a default (not in the data yet): validation names the path.
    with pytest.raises(ConfigError, match=r"seed: "):
        load_config(overrides=["seed.value=1"])


def test_apply_overrides_creates_sections_and_applies_in_order() -> None:
    data = {"train": {"epochs": 1}}
    out = apply_overrides(data, ["train.epochs=2", "data.closure.enabled=false", "train.epochs=5"])
    assert out == {"train": {"epochs": 5}, "data": {"closure": {"enabled": False}}}
    assert data == {"train": {"epochs": 1}}  # the input is not modified


def test_deep_merge_merges_sections_and_replaces_values() -> None:
    base = {"train": {"epochs": 1, "lr": 0.1}, "evaluation": {"labels": ["a", "b"]}}
    out = deep_merge(base, {"train": {"epochs": 2}, "evaluation": {"labels": ["c"]}})
    assert out == {"train": {"epochs": 2, "lr": 0.1}, "evaluation": {"labels": ["c"]}}
    assert base["train"]["epochs"] == 1


# ---------------------------------------------------------------- precedence
def test_precedence_is_preset_then_file_then_set(tmp_path: Path) -> None:
    # synthetic/u-zeros: policy.default u-zeros, train.method flat, data.dataset synthetic.
    path = write(tmp_path, "policy:\n  default: u-ones\ntrain:\n  epochs: 7\n  lr: 0.5\n")
    config = load_config(path, preset="synthetic/u-zeros", overrides=["train.lr=0.25"])
    assert config.train.method == "flat"  # from the preset only
    assert config.policy.default == "u-ones"  # file beats preset
    assert config.train.epochs == 7  # file beats default
    assert config.train.lr == 0.25  # --set beats file


def test_set_beats_preset() -> None:
    config = load_config(preset="synthetic/u-zeros", overrides=["policy.default=u-ignore"])
    assert config.policy.default == "u-ignore"
    assert config.train.method == "flat"


def test_preset_named_in_the_file_sits_under_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "preset: synthetic/u-zeros-ct\ntrain:\n  epochs: 9\n")
    config = load_config(path)
    assert config.policy.default == "u-zeros"
    assert config.train.method == "ct"
    assert config.train.epochs == 9


def test_preset_description_is_not_a_config_key() -> None:
    config = load_config(preset="synthetic/u-ones-lsr-ct")
    assert config.policy.default == "u-ones-lsr"


def test_unknown_preset_is_an_error_naming_the_closest_presets() -> None:
    with pytest.raises(HmlcError, match=r"unknown preset 'synthetic/u-onez'; did you mean: synthetic/u-ones, "):
        load_config(preset="synthetic/u-onez")


# ----------------------------------------------------------------- YAML files
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "3\n"])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, text))


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: 3\n  lr: [0.1\nseed: 1\n")
    with pytest.raises(ConfigError, match=r"not valid YAML.*\(line \d+\)") as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing\n")) == ExperimentConfig()
    assert read_config_file(write(tmp_path, "", "empty.yaml")) == {}


def test_json_file_is_yaml_too(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, '{"train": {"epochs": 2}}', "c.json")).train.epochs == 2


# ------------------------------------------------------------------- stages
def test_resolved_stages_for_flat() -> None:
    train = TrainConfig(method="flat", epochs=3, lr=0.01)
    assert train.resolved_stages() == [
        StageConfig(name="flat", subset="all", loss="bce", train="all", epochs=3, lr=0.01)
    ]


def test_resolved_stages_for_ct() -> None:
    train = TrainConfig(method="ct", epochs=3, lr=0.01, head_epochs=2, head_lr=0.001)
    stage1, stage2 = train.resolved_stages()
    assert stage1 == StageConfig(name="ct1", subset="conditional", loss="conditional", train="all", epochs=3, lr=0.01)
    assert stage2 == StageConfig(name="ct2", subset="all", loss="unconditional", train="head", epochs=2, lr=0.001)
    conditional_head = TrainConfig(method="ct", head_loss="conditional").resolved_stages()[1]
    assert conditional_head.loss == "conditional"
    assert conditional_head.train == "head"


def test_explicit_stages_win_over_method() -> None:
    config = load_config(overrides=["train.method=flat", "train.stages=[{name: only, epochs: 1, lr: 0.5, train: head}]"])
    assert [s.name for s in config.train.resolved_stages()] == ["only"]
    assert config.train.resolved_stages()[0].train == "head"


# ---------------------------------------------------------------- round trip
def test_config_to_yaml_round_trips_through_load_config(tmp_path: Path) -> None:
    config = load_config(
        overrides=[
            "seed=11",
            "hierarchy=chexpert",
            "data.root=/data/chexpert",
            "data.params={frontal_only: true}",
            "data.closure.negative_down=true",
            "policy.overrides={Atelectasis: u-ones, Cardiomegaly: u-multiclass}",
            "policy.params={u-ones-lsr: {low: 0.55, high: 0.85}}",
            "model.weights=/w/densenet121.safetensors",
            "train.betas=[0.8, 0.99]",
            "train.grad_clip=1.5",
            "train.stages=[{name: s1, epochs: 1, lr: 0.1}]",
            "evaluation.labels=[Edema]",
            "output.dir=/tmp/runs",
        ]
    )
    text = config_to_yaml(config)
    assert yaml.safe_load(text) == config_to_dict(config)
    again = load_config(write(tmp_path, text))
    assert again == config
    assert config_to_yaml(again) == text
    assert isinstance(again.data.root, Path)
    assert again.train.betas == (0.8, 0.99)


def test_default_config_yaml_round_trips(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, config_to_yaml(ExperimentConfig()))) == ExperimentConfig()


def test_assignment_is_validated() -> None:
    config = ExperimentConfig()
    with pytest.raises(ValidationError, match="epochs"):
        config.train.epochs = -1  # type: ignore[misc]


@pytest.mark.parametrize("typed", ["off", "yes", "2026-11-26", "1e-4", "12", "true"])
def test_set_keeps_the_text_typed_for_names_and_paths(typed: str) -> None:
    """YAML reads these as booleans, dates and numbers; a run name or a folder is still what was typed."""
    cfg = load_config(None, None, [f"output.name={typed}", f"data.root=/data/{typed}", f"output.dir={typed}"])
    assert cfg.output.name == typed
    assert str(cfg.output.dir) == typed
    assert str(cfg.data.root) == f"/data/{typed}"


def test_set_null_still_clears_an_optional_text_key() -> None:
    assert load_config(None, None, ["output.name=run", "output.name=null"]).output.name is None


def test_set_reads_typed_values_for_typed_keys() -> None:
    cfg = load_config(None, None, ["train.epochs=12", "data.augment=off", "train.lr=1e-4"])
    assert cfg.train.epochs == 12 and cfg.data.augment is False and cfg.train.lr == 1e-4


def test_configuration_is_told_where_presets_come_from_and_never_imports_plugins() -> None:
    """hmlc.config knows nothing of plugins: hmlc.plugins tells it (use_presets); a caller may pass its own."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hmlc.config import load_config\n"
        "from hmlc.errors import ConfigError\n"
        "assert not [m for m in sys.modules if m.startswith('hmlc.plugins')], 'hmlc.config imported hmlc.plugins'\n"
        "try:\n"
        "    load_config(preset='synthetic/u-ones-ct-lsr')\n"
        "except ConfigError as e:\n"
        "    print('ERR', e)\n"
        "own = {'mine': {'train': {'epochs': 7}}}\n"
        "print('OWN', load_config(preset='mine', presets=own.__getitem__).train.epochs)\n"
        "assert not [m for m in sys.modules if m.startswith('hmlc.plugins')]\n"
        "import hmlc.plugins\n"
        "print('HOST', load_config(preset='synthetic/u-ones-ct-lsr').train.method)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ERR preset 'synthetic/u-ones-ct-lsr': no presets are known") and "import hmlc.plugins" in lines[0]
    assert lines[1:] == ["OWN 7", "HOST ct"]

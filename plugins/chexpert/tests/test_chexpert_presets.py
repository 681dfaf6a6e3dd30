"""The paper's presets: each validates, resolves and holds the paper's recipe; the docs' ablation grid gives Table 1."""

from __future__ import annotations

import pytest
from hmlc_chexpert.backbones import PAPER_BACKBONES
from hmlc_chexpert.presets import CHEXPERT_PRESETS, COMPETITION_LABELS, TABLE1_SETTINGS

from hmlc.config import load_config
from hmlc.engine.ablation import grid_settings, parse_grid
from hmlc.engine.experiment import check_experiment
from hmlc.plugins import get_host

TABLE1 = [
    "u-ignore", "u-ignore-ct", "u-zeros", "u-zeros-ct", "u-zeros-lsr", "u-zeros-ct-lsr",
    "u-ones", "u-ones-ct", "u-ones-lsr", "u-ones-ct-lsr",
]
#: The grid docs/reproduce-chexpert.md gives `hmlc ablate`.
DOCS_GRID = ["policy=u-ignore,u-zeros,u-zeros-lsr,u-ones,u-ones-lsr", "ct=off,on"]


def test_preset_names() -> None:
    registered = get_host().registry("presets").by_plugin()["chexpert"]
    expected = [f"chexpert/{n}" for n in TABLE1] + [f"chexpert/ensemble/{b}" for b in PAPER_BACKBONES]
    assert sorted(registered) == sorted(expected + ["chexpert/smoke"]) == sorted([*CHEXPERT_PRESETS, "chexpert/smoke"])
    assert list(TABLE1_SETTINGS) == TABLE1


@pytest.mark.parametrize("name", sorted(CHEXPERT_PRESETS))
def test_every_preset_validates_and_resolves(name: str) -> None:
    config = load_config(preset=name, overrides=["data.root=/data/chexpert"])
    graph = check_experiment(config)
    assert graph.name == "chexpert" and len(graph) == 14
    assert config.data.dataset == "chexpert" and config.data.params == {"views": "frontal"}
    assert config.data.preprocessor == "template-match"
    spec = get_host().backbone(config.model.backbone)
    crop = config.data.preprocessor_params["crop"]
    assert config.data.image_size == crop == spec.input_size
    assert config.data.preprocessor_params["resize"] == round(crop * 256 / 224)
    preprocessor = get_host().preprocessor("template-match", **config.data.preprocessor_params)
    assert preprocessor.requires_fit and preprocessor.output_size == config.data.image_size
    assert config.model.pretrained is True
    assert config.data.closure.enabled is True and config.data.blank == "negative"
    t = config.train
    assert (t.epochs, t.lr, t.lr_decay, t.batch_size, tuple(t.betas)) == (5, 1e-4, 0.1, 32, (0.9, 0.999))
    assert config.evaluation.labels == list(COMPETITION_LABELS)
    assert config.policy.params["u-zeros-lsr"] == {"low": 0.0, "high": 0.3}
    assert config.policy.params["u-ones-lsr"] == {"low": 0.55, "high": 0.85}


@pytest.mark.parametrize("key", TABLE1)
def test_table1_rows(key: str) -> None:
    config = load_config(preset=f"chexpert/{key}")
    policy, ct = TABLE1_SETTINGS[key]
    assert config.policy.default == policy and not config.policy.overrides
    assert config.model.backbone == "densenet121" and config.data.image_size == 224
    assert config.data.preprocessor_params == {"resize": 256, "crop": 224}
    stages = config.train.resolved_stages()
    if ct:
        assert [(s.name, s.subset, s.loss, s.train) for s in stages] == [
            ("ct1", "conditional", "conditional", "all"),
            ("ct2", "all", "unconditional", "head"),
        ]
        assert (stages[0].epochs, stages[0].lr, stages[1].epochs, stages[1].lr) == (5, 1e-4, 3, 1e-4)
    else:
        assert [(s.name, s.loss, s.train, s.epochs, s.lr) for s in stages] == [("flat", "bce", "all", 5, 1e-4)]


def test_ensemble_members_differ_from_u_ones_ct_lsr_only_in_backbone_and_size() -> None:
    base = load_config(preset="chexpert/u-ones-ct-lsr").model_dump()
    for backbone in PAPER_BACKBONES:
        member = load_config(preset=f"chexpert/ensemble/{backbone}").model_dump()
        assert member["model"]["backbone"] == backbone
        size = member["data"]["image_size"]
        for section, key in (("model", "backbone"), ("data", "image_size"), ("data", "preprocessor_params")):
            member[section][key] = base[section][key]
        assert member == base, backbone
        assert size == {"inception_resnet_v2": 299, "xception": 299, "nasnetalarge": 331}.get(backbone, 224)


def test_the_documented_ablation_grid_reproduces_the_ten_presets() -> None:
    grid_name = {
        "u-ignore": "u-ignore", "u-ignore-ct": "u-ignore+CT", "u-zeros": "u-zeros", "u-zeros-ct": "u-zeros+CT",
        "u-zeros-lsr": "u-zeros-lsr", "u-zeros-ct-lsr": "u-zeros-lsr+CT", "u-ones": "u-ones",
        "u-ones-ct": "u-ones+CT", "u-ones-lsr": "u-ones-lsr", "u-ones-ct-lsr": "u-ones-lsr+CT",
    }
    settings = dict(grid_settings(parse_grid(DOCS_GRID)))
    assert sorted(settings) == sorted(grid_name.values())
    for key in TABLE1:
        from_grid = load_config(preset="chexpert/u-ones-ct-lsr", overrides=settings[grid_name[key]])
        assert from_grid == load_config(preset=f"chexpert/{key}"), key


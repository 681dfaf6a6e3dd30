"""Plugin loading, registries and the host, with installed distributions faked.

As pytest does in testing/test_config.py, nothing is installed: the
``importlib.metadata.distributions`` the plugin manager calls is replaced by
one returning fake distributions whose ``hmlc`` entry points name modules
created here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hmlc.errors import HmlcError, PluginError
from hmlc.hierarchy import LabelGraph
from hmlc.plugins import (
    ENTRY_POINT_GROUP,
    HOOK_NAMES,
    KINDS,
    Registry,
    get_host,
    get_plugin_manager,
    hookimpl,
    reset_host,
)
from hmlc.plugins import host as host_module
from hmlc.plugins import manager as manager_module

ROOT = Path(__file__).resolve().parents[2]


class FakeDistribution:
    """Just enough of ``importlib.metadata.Distribution`` for the plugin manager."""

    def __init__(self, name: str, version: str, entry_points: dict[str, str], group: str = ENTRY_POINT_GROUP) -> None:
        self.metadata = {"name": name}
        self.version = version
        self.entry_points = [importlib.metadata.EntryPoint(name=n, value=v, group=group) for n, v in entry_points.items()]


class FakeSite:
    """The installed distributions the plugin manager sees during one test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.distributions: list[FakeDistribution] = []
        # Patch only the namespace the manager uses (`importlib.metadata.distributions()`):
        # torch and others read the real metadata while the built-in plugin imports them.
        metadata = types.ModuleType("importlib.metadata")
        metadata.__dict__.update(vars(importlib.metadata))
        metadata.distributions = lambda **_: list(self.distributions)  # type: ignore[attr-defined]
        fake_importlib = types.ModuleType("importlib")
        fake_importlib.__dict__.update(vars(importlib))
        fake_importlib.metadata = metadata  # type: ignore[attr-defined]
        monkeypatch.setattr(manager_module, "importlib", fake_importlib)

    def install(self, dist_name: str, entry_points: dict[str, str], version: str = "1.0") -> None:
        self.distributions.append(FakeDistribution(dist_name, version, entry_points))

    def module(self, **hooks: Callable[..., Any]) -> str:
        """A fresh importable module implementing ``hooks``; returns its name."""
        name = f"hmlc_fake_plugin_{uuid.uuid4().hex[:12]}"
        module = types.ModuleType(name)
        for hook_name, function in hooks.items():
            setattr(module, hook_name, hookimpl(function))
        self.monkeypatch.setitem(sys.modules, name, module)
        return name

    def plugin(self, name: str, version: str = "1.0", dist_name: str | None = None, **hooks: Callable[..., Any]) -> str:
        """Install a distribution with one plugin ``name`` implementing ``hooks``."""
        module = self.module(**hooks)
        self.install(dist_name or f"hmlc-{name}", {name: module}, version)
        return module


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> FakeSite:
    return FakeSite(monkeypatch)


def registering(*items: tuple[str, Any]) -> Callable[..., None]:
    """A hook implementation that registers ``items``."""

    def hook(register: Callable[[str, Any], None]) -> None:
        for name, obj in items:
            register(name, obj)

    return hook


# --------------------------------------------------- a plugin using every hook
class AcmeReader:
    description = "ACME dataset reader"


class AcmeBackbone:
    description = "ACME backbone"


def acme_policy(scale: float = 1.0) -> tuple[str, float]:
    """ACME uncertainty policy."""
    return ("acme-policy", scale)


def acme_preprocessor(size: int = 2) -> Callable[[Any], Any]:
    """ACME crop."""
    return lambda image: image[:size, :size]


ACME_TREE = {"labels": ["thing", "part"], "edges": [["thing", "part"]]}
ACME_PRESET = {"description": "ACME quick run", "train": {"epochs": 1, "method": "flat"}}
ACME_MAP = {"source": "acme-tree", "target": "synthetic", "labels": {"part": "part"}}
ACME_SUITE = {
    "description": "ACME benchmark suite",
    "datasets": {"acme-data": {"reference": 0.5}},
    "methods": ["flat"],
    "config": {"set": ["data.dataset=acme-data"]},
    "grid": {"train.epochs": [1, 2]},
    "protocol": {"selection": {"train_split": "train", "eval_split": "valid"},
                 "final": {"train_split": "train", "eval_split": "test"}, "metric": "micro_auprc"},
}


def acme_hooks() -> dict[str, Callable[..., None]]:
    return {
        "hmlc_register_hierarchies": registering(
            ("acme-tree", ACME_TREE), ("acme-lazy", lambda: LabelGraph(["x", "y"], [("x", "y")]))
        ),
        "hmlc_register_datasets": registering(("acme-data", AcmeReader())),
        "hmlc_register_backbones": registering(("acme-net", AcmeBackbone())),
        "hmlc_register_uncertainty_policies": registering(("acme-policy", acme_policy)),
        "hmlc_register_preprocessors": registering(("acme-crop", acme_preprocessor)),
        "hmlc_register_presets": registering(("acme/quick", ACME_PRESET)),
        "hmlc_register_label_maps": registering(("acme-to-synthetic", ACME_MAP)),
        "hmlc_register_benchmark_suites": registering(("acme-suite", ACME_SUITE)),
    }


ACME_REGISTERS = {
    "hierarchies": ["acme-lazy", "acme-tree"],
    "datasets": ["acme-data"],
    "backbones": ["acme-net"],
    "policies": ["acme-policy"],
    "preprocessors": ["acme-crop"],
    "presets": ["acme/quick"],
    "label_maps": ["acme-to-synthetic"],
    "benchmark_suites": ["acme-suite"],
}


@pytest.fixture
def acme(site: FakeSite) -> FakeSite:
    site.plugin("acme", version="2.3.4", dist_name="hmlc-acme", **acme_hooks())
    return site


def test_every_hook_of_a_plugin_fills_its_registry(acme: FakeSite) -> None:
    host = get_host()
    for kind, names in ACME_REGISTERS.items():
        registry = host.registry(kind)
        for name in names:
            assert registry.entry(name).plugin == "acme"
    assert host.hierarchy("acme-tree").labels == ("thing", "part")
    assert host.hierarchy("acme-tree").name == "acme-tree"
    assert host.hierarchy("acme-lazy").edges == (("x", "y"),)
    assert host.hierarchy("acme-lazy").name == "acme-lazy"
    assert isinstance(host.dataset("acme-data"), AcmeReader)
    assert isinstance(host.backbone("acme-net"), AcmeBackbone)
    assert host.policy("acme-policy", scale=2.0) == ("acme-policy", 2.0)
    assert host.preprocessor("acme-crop", size=1)(np.array([[1, 2], [3, 4]])).tolist() == [[1]]
    assert host.preset("acme/quick") == {"train": {"epochs": 1, "method": "flat"}}
    assert host.label_map("acme-to-synthetic") == ACME_MAP
    from hmlc.benchmark.suite import resolve_suite

    suite = resolve_suite("acme-suite")
    assert (suite.methods, suite.grid, suite.final) == (("flat",), {"train.epochs": (1, 2)}, ("train", "test"))


def test_plugin_preset_feeds_load_config(acme: FakeSite) -> None:
    from hmlc.config import load_config

    config = load_config(preset="acme/quick")
    assert config.train.epochs == 1
    assert config.train.method == "flat"


def test_plugins_info_reports_name_version_hooks_and_registers(acme: FakeSite) -> None:
    info = {item["name"]: item for item in get_host().plugins_info()}
    assert list(info) == ["hmlc", "acme"]
    assert info["acme"] == {
        "name": "acme",
        "version": "2.3.4",
        "distribution": "hmlc-acme",
        "hooks": sorted(HOOK_NAMES),
        "registers": ACME_REGISTERS,
        "error": None,
    }
    builtin = info["hmlc"]
    from hmlc import __version__

    assert builtin["version"] == __version__
    assert "hmlc_register_hierarchies" in builtin["hooks"]
    assert "synthetic" in builtin["registers"]["hierarchies"]


def test_listing_attributes_each_entry_to_its_plugin(acme: FakeSite) -> None:
    rows = {row["name"]: row for row in get_host().listing("datasets")}
    assert rows["acme-data"] == {"name": "acme-data", "plugin": "acme", "description": "ACME dataset reader"}
    assert [row["name"] for row in get_host().listing("presets", "acme/*")] == ["acme/quick"]
    assert get_host().listing("policies", "acme-*")[0]["description"] == "ACME uncertainty policy."


def test_listing_does_not_describe_a_path_by_the_str_docstring(site: FakeSite, tmp_path: Path) -> None:
    tree = tmp_path / "tree.yaml"
    tree.write_text("edges: [[a, b]]\n")
    site.plugin("paths", hmlc_register_hierarchies=registering(("path-tree", str(tree))))
    row = next(r for r in get_host().listing("hierarchies") if r["name"] == "path-tree")
    assert not row["description"].startswith("str(")


# --------------------------------------------------------------- duplicates
def test_duplicate_name_across_two_plugins_names_both(site: FakeSite) -> None:
    site.plugin("alpha", hmlc_register_hierarchies=registering(("shared-tree", ACME_TREE)))
    site.plugin("beta", hmlc_register_hierarchies=registering(("shared-tree", ACME_TREE)))
    with pytest.raises(PluginError) as info:
        get_host().registry("hierarchies")
    message = str(info.value)
    assert "'shared-tree'" in message
    assert "'alpha'" in message and "'beta'" in message
    assert "HMLC_DISABLED_PLUGINS" in message


def test_duplicate_of_a_builtin_name_names_the_builtin_plugin(site: FakeSite) -> None:
    site.plugin("copycat", hmlc_register_uncertainty_policies=registering(("u-ones", acme_policy)))
    with pytest.raises(PluginError, match=r"uncertainty policy 'u-ones' is registered by both plugin") as info:
        get_host().policy("u-ones")
    assert "'hmlc'" in str(info.value) and "'copycat'" in str(info.value)


def test_duplicate_of_a_builtin_name_advises_disabling_the_third_party_plugin(site: FakeSite) -> None:
    site.plugin("copycat", hmlc_register_uncertainty_policies=registering(("u-ones", acme_policy)))
    with pytest.raises(PluginError, match="HMLC_DISABLED_PLUGINS=copycat"):
        get_host().policy("u-ones")


def test_duplicate_within_one_plugin_is_an_error(site: FakeSite) -> None:
    site.plugin("twice", hmlc_register_datasets=registering(("dup", AcmeReader()), ("dup", AcmeReader())))
    with pytest.raises(PluginError, match="'dup' is registered by both plugin 'twice' and plugin 'twice'"):
        get_host().registry("datasets")


def test_same_plugin_name_in_two_distributions_names_both(site: FakeSite) -> None:
    site.install("hmlc-first", {"twin": site.module()})
    site.install("hmlc-second", {"twin": site.module()})
    with pytest.raises(PluginError, match=r"'twin' is used by both distribution 'hmlc-first' and 'hmlc-second'"):
        get_plugin_manager()


def test_entry_point_named_hmlc_is_reserved(site: FakeSite) -> None:
    site.install("hmlc-impostor", {"hmlc": site.module()})
    with pytest.raises(PluginError, match="reserved"):
        get_plugin_manager()


@pytest.mark.parametrize("bad_name", ["", "   ", 7])
def test_registering_an_invalid_name_is_an_error(site: FakeSite, bad_name: Any) -> None:
    site.plugin("sloppy", hmlc_register_backbones=registering((bad_name, AcmeBackbone())))
    with pytest.raises(PluginError, match="plugin 'sloppy' registered a backbone with an invalid name"):
        get_host().registry("backbones")


# ------------------------------------------------------------- unknown names
@pytest.mark.parametrize(
    ("kind", "lookup", "typo", "meant"),
    [
        ("datasets", lambda h, n: h.dataset(n), "acme-dat", "acme-data"),
        ("hierarchies", lambda h, n: h.hierarchy(n), "acme-tre", "acme-tree"),
        ("presets", lambda h, n: h.preset(n), "acme/quik", "acme/quick"),
    ],
)
def test_a_typo_suggests_the_closest_name_first(
    acme: FakeSite, kind: str, lookup: Callable[[Any, str], Any], typo: str, meant: str
) -> None:
    with pytest.raises(PluginError, match=f"did you mean: {meant}[,?]"):
        lookup(get_host(), typo)


@pytest.mark.parametrize(
    ("kind", "lookup"),
    [
        ("hierarchies", lambda h: h.hierarchy("nope")),
        ("datasets", lambda h: h.dataset("nope")),
        ("backbones", lambda h: h.backbone("nope")),
        ("policies", lambda h: h.policy("nope")),
        ("preprocessors", lambda h: h.preprocessor("nope")),
        ("presets", lambda h: h.preset("nope")),
        ("label_maps", lambda h: h.label_map("nope")),
    ],
)
def test_unknown_name_lists_what_is_available(acme: FakeSite, kind: str, lookup: Callable[[Any], Any]) -> None:
    with pytest.raises(PluginError) as info:
        lookup(get_host())
    message = str(info.value)
    assert "'nope'" in message
    assert KINDS[kind][1] in message  # "unknown dataset", "unknown uncertainty policy", ...
    registered = get_host().registry(kind).names()
    suggested = message.split("did you mean: ", 1)[1].split("?", 1)[0].split(", ")
    assert set(suggested) <= set(registered) and len(suggested) == min(3, len(registered))
    assert f"all {len(registered)}" in message
    assert "`hmlc plugins`" in message
    assert f"`hmlc list {kind}`" in message
    assert "\n" not in message


def test_unknown_kind_is_a_plugin_error() -> None:
    with pytest.raises(PluginError, match="unknown kind 'widgets'; kinds are: hierarchies, datasets"):
        get_host().registry("widgets")


def test_policy_with_unknown_parameters_is_a_plugin_error(acme: FakeSite) -> None:
    with pytest.raises(PluginError, match="'acme-policy' does not accept parameters"):
        get_host().policy("acme-policy", colour="red")
    with pytest.raises(PluginError, match="'acme-crop' does not accept parameters"):
        get_host().preprocessor("acme-crop", colour="red")


# ---------------------------------------------------------- plugin selection
@pytest.fixture
def two_plugins(site: FakeSite) -> FakeSite:
    site.plugin("alpha", dist_name="hmlc-alpha", hmlc_register_hierarchies=registering(("alpha-tree", ACME_TREE)))
    site.plugin("beta", dist_name="hmlc_beta", hmlc_register_hierarchies=registering(("beta-tree", ACME_TREE)))
    return site


def loaded_plugins() -> list[str]:
    pm, _ = get_plugin_manager()
    return [name for name, _ in pm.list_name_plugin()]


def test_every_installed_plugin_loads_by_default(two_plugins: FakeSite) -> None:
    assert loaded_plugins() == ["hmlc", "alpha", "beta"]
    assert get_host().registry("hierarchies").names("*-tree") == ["alpha-tree", "beta-tree"]


def test_load_plugins_loads_only_those_listed(two_plugins: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMLC_LOAD_PLUGINS", "beta")
    assert loaded_plugins() == ["hmlc", "beta"]
    assert "alpha-tree" not in get_host().registry("hierarchies")


def test_load_plugins_matches_distribution_names_too(two_plugins: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMLC_LOAD_PLUGINS", " hmlc-beta , HMLC_alpha ")
    assert loaded_plugins() == ["hmlc", "alpha", "beta"]


def test_empty_load_plugins_loads_none_but_the_builtin(two_plugins: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMLC_LOAD_PLUGINS", "")
    assert loaded_plugins() == ["hmlc"]
    assert "synthetic" in get_host().registry("hierarchies")


def test_disabled_plugins_are_not_imported(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.plugin("alpha", hmlc_register_hierarchies=registering(("alpha-tree", ACME_TREE)))
    # Importing "broken" would fail: disabling it must skip the import entirely.
    site.install("hmlc-broken", {"broken": "hmlc_no_such_module_for_tests"})
    monkeypatch.setenv("HMLC_DISABLED_PLUGINS", "broken,other")
    assert loaded_plugins() == ["hmlc", "alpha"]
    monkeypatch.setenv("HMLC_DISABLED_PLUGINS", "hmlc")
    _, records = get_plugin_manager()
    assert records["broken"].error.startswith("failed to load: ModuleNotFoundError")


def test_only_entry_points_of_the_hmlc_group_are_plugins(site: FakeSite) -> None:
    site.distributions.append(FakeDistribution("other-tool", "1.0", {"other": "hmlc_no_such_module"}, group="console_scripts"))
    assert loaded_plugins() == ["hmlc"]


def test_without_installed_plugins_only_the_builtin_loads(acme: FakeSite) -> None:
    _, records = get_plugin_manager(load_installed=False)
    assert list(records) == ["hmlc"]


# ------------------------------------------------------------ broken plugins
def test_plugin_whose_module_is_missing_is_recorded_with_its_error(site: FakeSite) -> None:
    site.install("hmlc-ghost", {"ghost": "hmlc_no_such_module_for_tests"})
    pm, records = get_plugin_manager()
    assert not pm.has_plugin("ghost")
    error = records["ghost"].error
    assert error is not None and error.startswith("failed to load: ModuleNotFoundError")
    assert records["ghost"].distribution == "hmlc-ghost"


@pytest.fixture
def broken_import(site: FakeSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSite:
    """An installed plugin whose module raises on import, beside a working one."""
    name = f"hmlc_fake_broken_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('half-installed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    site.install("hmlc-broken", {"broken": name})
    site.plugin("alpha", hmlc_register_hierarchies=registering(("alpha-tree", ACME_TREE)))
    yield site
    sys.modules.pop(name, None)


def test_a_plugin_that_raises_on_import_is_left_out_and_the_rest_works(
    broken_import: FakeSite, capsys: pytest.CaptureFixture[str]
) -> None:
    host = get_host()
    assert host.hierarchy("alpha-tree").labels == ("thing", "part")
    assert "tiny_cnn" in host.registry("backbones")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("hmlc: warning: plugin 'broken' (distribution hmlc-broken) failed to load: ")
    assert "RuntimeError: half-installed" in err and "HMLC_DISABLED_PLUGINS=broken" in err
    assert host.failures() == {"broken": "failed to load: RuntimeError: half-installed"}


def test_an_unknown_name_mentions_the_broken_plugin(broken_import: FakeSite) -> None:
    with pytest.raises(PluginError, match=r"unknown dataset 'broken-data'.*broken \(failed to load: RuntimeError"):
        get_host().dataset("broken-data")


def test_cli_list_keeps_working_and_says_which_plugin_failed(
    broken_import: FakeSite, capsys: pytest.CaptureFixture[str]
) -> None:
    from hmlc.cli.main import main

    assert main(["list", "backbones"]) == 0
    out, err = capsys.readouterr()
    assert "tiny_cnn" in out
    assert "plugin 'broken'" in err and "RuntimeError: half-installed" in err


def test_cli_plugins_lists_every_plugin_and_the_broken_one_with_its_error(
    broken_import: FakeSite, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hmlc.cli.main import main

    monkeypatch.setenv("COLUMNS", "100")
    assert main(["plugins"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    # Installed plugins by distribution name (found as broken, then alpha): one order on every machine.
    assert list(rows) == ["hmlc", "alpha", "broken"]
    assert "BROKEN: failed to load: RuntimeError: half-installed" in rows["broken"]
    assert "hierarchies: alpha-tree" in rows["alpha"]
    assert main(["plugins", "--json"]) == 0
    info = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert info["broken"]["error"] == "failed to load: RuntimeError: half-installed"
    assert info["alpha"]["error"] is None


def test_cli_plugins_rows_fit_the_terminal(site: FakeSite, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from hmlc.cli.main import main

    many = [(f"wide-preset-with-a-long-name-{i}", {"train": {"epochs": 1}}) for i in range(40)]
    site.plugin("wide", hmlc_register_presets=registering(*many))
    for columns in ("100", "60"):
        monkeypatch.setenv("COLUMNS", columns)
        assert main(["plugins"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert max(len(line) for line in lines) <= int(columns)
        (wide,) = [line for line in lines if line.startswith("wide ")]
        assert "wide-preset-with-a-long-name-0" in wide or wide.endswith("…")
    monkeypatch.setenv("COLUMNS", "400")
    main(["plugins"])
    (wide,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wide ")]
    assert wide.endswith("presets: wide-preset-with-a-long-name-0, wide-preset-with-a-long-name-1, "
                         "wide-preset-with-a-long-name-10 +37 more")


def test_plugin_whose_hook_raises_is_left_out_of_that_kind_only(
    site: FakeSite, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(register: Callable[[str, Any], None]) -> None:
        register("fragile-data", AcmeReader())  # made before the failure: not kept
        raise KeyError("missing resource")

    site.plugin(
        "fragile", hmlc_register_datasets=explode,
        hmlc_register_hierarchies=registering(("fragile-tree", ACME_TREE)),
    )
    host = get_host()
    assert host.dataset("synthetic") is not None
    assert "fragile-data" not in host.registry("datasets")
    assert host.hierarchy("fragile-tree").labels == ("thing", "part")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "plugin 'fragile' (distribution hmlc-fragile) failed in hmlc_register_datasets: KeyError" in err
    assert "HMLC_DISABLED_PLUGINS=fragile" in err
    info = {item["name"]: item for item in host.plugins_info()}
    assert info["fragile"]["error"].startswith("failed in hmlc_register_datasets: KeyError")
    assert info["fragile"]["registers"] == {"hierarchies": ["fragile-tree"]}
    with pytest.raises(PluginError, match=r"unknown dataset 'fragile-data'.*fragile \(failed in hmlc_register_datasets"):
        host.dataset("fragile-data")
    with pytest.raises(PluginError) as info:
        host.hierarchy("fragile-other")
    assert "fragile (" not in str(info.value)  # its hierarchies hook worked: nothing to blame


def test_cli_plugins_shows_a_plugin_whose_hook_raises(
    site: FakeSite, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hmlc.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")

    def explode(register: Callable[[str, Any], None]) -> None:
        raise ValueError("no such catalogue")

    site.plugin("fragile", hmlc_register_backbones=explode,
                hmlc_register_hierarchies=registering(("fragile-tree", ACME_TREE)))
    assert main(["plugins"]) == 0
    out, err = capsys.readouterr()
    (row,) = [line for line in out.splitlines() if line.startswith("fragile ")]
    assert "BROKEN: failed in hmlc_register_backbones: ValueError: no such catalogue" in row
    assert "(still registers hierarchies: fragile-tree)" in row
    assert err.count("\n") == 1 and "plugin 'fragile'" in err
    assert main(["list", "hierarchies"]) == 0  # a command needing only hierarchies: no warning
    out, err = capsys.readouterr()
    assert "fragile-tree" in out


def test_hmlc_error_from_a_hook_is_reported_with_its_message(site: FakeSite, capsys: pytest.CaptureFixture[str]) -> None:
    def strict(register: Callable[[str, Any], None]) -> None:
        raise HmlcError("set ACME_HOME first")

    site.plugin("strict", hmlc_register_presets=strict)
    assert "synthetic/u-ignore" in get_host().registry("presets")
    assert "failed in hmlc_register_presets: set ACME_HOME first" in capsys.readouterr().err


def test_a_builtin_hook_failure_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    from hmlc.plugins import builtin

    def broken(register: Callable[[str, Any], None]) -> None:
        raise RuntimeError("bug in hmlc")

    monkeypatch.setattr(builtin.hmlc_register_presets, "__code__", broken.__code__)
    with pytest.raises(RuntimeError, match="bug in hmlc"):
        get_host().registry("presets")


def test_hook_with_a_wrong_signature_is_left_out(site: FakeSite) -> None:
    def wrong(reg: Callable[[str, Any], None], extra: int) -> None:
        pass

    site.plugin("wrongsig", hmlc_register_label_maps=wrong)
    pm, records = get_plugin_manager()
    assert not pm.has_plugin("wrongsig")
    assert records["wrongsig"].error.startswith("is invalid: PluginValidationError")


def test_misspelled_hook_is_caught_by_check_pending(site: FakeSite) -> None:
    site.plugin("typo", hmlc_register_hierarchys=registering(("typo-tree", ACME_TREE)))
    site.plugin("alpha", hmlc_register_hierarchies=registering(("alpha-tree", ACME_TREE)))
    pm, records = get_plugin_manager()
    assert not pm.has_plugin("typo") and pm.has_plugin("alpha")
    assert "hmlc_register_hierarchys" in records["typo"].error
    assert "hook hmlc does not know" in records["typo"].error


# ------------------------------------------------------------------ the host
def test_get_host_is_cached_until_reset(acme: FakeSite) -> None:
    first = get_host()
    assert get_host() is first
    reset_host()
    assert host_module._host is None
    assert get_host() is not first


def test_reset_host_forgets_filled_registries(site: FakeSite) -> None:
    assert "late-tree" not in get_host().registry("hierarchies")
    site.plugin("late", hmlc_register_hierarchies=registering(("late-tree", ACME_TREE)))
    assert "late-tree" not in get_host().registry("hierarchies")
    reset_host()
    assert "late-tree" in get_host().registry("hierarchies")


def test_hierarchy_accepts_a_file_path(tmp_path: Path) -> None:
    tree = tmp_path / "mine.yaml"
    tree.write_text("edges: [[a, b]]\n")
    graph = get_host().hierarchy(str(tree))
    assert graph.labels == ("a", "b")
    assert get_host().hierarchy(str(tree)) is graph


def test_backbone_accepts_generic_timm_and_torchvision_names_without_registration() -> None:
    with pytest.raises(PluginError, match="or use timm:NAME / torchvision:NAME"):
        get_host().backbone("no-such-backbone")
    assert get_host().backbone("torchvision:resnet18").num_features == 512


def test_registry_names_filter_and_attribution() -> None:
    registry: Registry[int] = Registry("presets")
    registry.add("b/one", 1, "p2")
    registry.add("a/two", 2, "p1")
    registry.add("a/three", 3, "p1")
    assert registry.names() == ["a/three", "a/two", "b/one"]
    assert registry.names("a/*") == ["a/three", "a/two"]
    assert registry.by_plugin() == {"p1": ["a/three", "a/two"], "p2": ["b/one"]}
    assert registry.get("a/two") == 2
    assert len(registry) == 3 and "b/one" in registry
    with pytest.raises(ValueError):
        Registry("widgets")


# ------------------------------------------------------- nothing at import time
def test_import_hmlc_loads_no_plugin_and_no_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        import hmlc
        import hmlc.plugins
        from hmlc.plugins import host
        assert host._host is None, "a plugin host was built at import time"
        for module in ("torch", "hmlc_chexpert", "hmlc_chexpert.plugin", "hmlc.data", "hmlc.models"):
            assert module not in sys.modules, module + " imported by `import hmlc`"
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMLC_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# ------------------------------------------------------- config is told, not asked
def test_the_plugin_machinery_does_not_import_config() -> None:
    """No import cycle: hmlc.config never imports hmlc.plugins (tests/config checks it), and the plugin
    machinery never imports config (the host reads preset files itself); the built-in plugin, which
    registers the core's presets, tells config where preset names are looked up."""
    import ast

    for module in ("__init__", "host", "manager", "registry", "hookspecs"):
        tree = ast.parse((ROOT / "hmlc" / "plugins" / f"{module}.py").read_text())
        imported = [
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        ]
        assert not [name for name in imported if name and name.startswith("hmlc.config")], module


def test_a_preset_registered_as_a_yaml_file_is_read_by_the_host(site: FakeSite, tmp_path: Path) -> None:
    good = tmp_path / "quick.yaml"
    good.write_text("description: quick\ntrain:\n  epochs: 2\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    site.plugin("files", hmlc_register_presets=registering(("f/good", good), ("f/bad", bad), ("f/list", listed)))
    host = get_host()
    assert host.preset("f/good") == {"train": {"epochs": 2}}
    assert {e["name"]: e["description"] for e in host.listing("presets", "f/*")}["f/good"] == "quick"
    with pytest.raises(PluginError, match=r"preset 'f/bad' file .*bad.yaml is not valid YAML: .*\(line \d+\)"):
        host.preset("f/bad")
    with pytest.raises(PluginError, match=r"preset 'f/list' file .*must hold a mapping"):
        host.preset("f/list")

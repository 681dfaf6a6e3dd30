"""``hmlc plugins``, ``hmlc list``, ``hmlc weights``, ``hmlc hierarchy`` and ``hmlc config``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any

from hmlc.cli.render import format_table, print_table
from hmlc.errors import HmlcError

__all__ = ["add_parsers"]

_KIND_ALIASES = {
    "hierarchy": "hierarchies",
    "dataset": "datasets",
    "backbone": "backbones",
    "policy": "policies",
    "uncertainty_policies": "policies",
    "preprocessor": "preprocessors",
    "preset": "presets",
    "label_map": "label_maps",
    "label-maps": "label_maps",
    "labelmaps": "label_maps",
    "benchmark_suite": "benchmark_suites",
    "benchmark-suites": "benchmark_suites",
    "suites": "benchmark_suites",
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list installed plugins, their hooks and what they register")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("list", help="list registered components of one kind, or the kinds")
    p.add_argument(
        "kind", nargs="?",
        help="hierarchies, datasets, backbones, policies, preprocessors, presets, label_maps or benchmark_suites "
        "(default: list the kinds)",
    )
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'synthetic/*'")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "weights",
        help="check that backbones' pretrained weights are on this machine, and say where missing ones go",
    )
    p.add_argument(
        "backbones", nargs="*", metavar="BACKBONE",
        help="registered names, shell-style patterns or timm:/torchvision: names (default: every registered backbone)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("hierarchy", help="show or check a label hierarchy")
    hsub = p.add_subparsers(dest="hierarchy_command", metavar="ACTION", required=True, parser_class=type(p))
    show = hsub.add_parser("show", help="print a hierarchy as a text tree, JSON or DOT")
    show.add_argument("source", help="registered hierarchy name or a YAML/JSON/.py file")
    show.add_argument("--format", choices=("text", "json", "dot"), default="text")
    show.set_defaults(func=cmd_hierarchy_show)
    check = hsub.add_parser(
        "check",
        help="validate a hierarchy and warn about repeats, conflicting codes, duplicate and redundant edges "
        "(exit 0 valid, 2 invalid)",
    )
    check.add_argument("source", help="YAML/JSON/.py file or registered name")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors (exit 2)")
    check.set_defaults(func=cmd_hierarchy_check)

    p = sub.add_parser("config", help="print the resolved configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True, parser_class=type(p))
    cshow = csub.add_parser("show", help="print the configuration a run would use, as YAML")
    add_config_arguments(cshow)
    cshow.set_defaults(func=cmd_config_show)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """--config / --preset / --set, shared by every command that reads a configuration."""
    p.add_argument("--config", "-c", metavar="FILE", help="YAML configuration file")
    p.add_argument("--preset", metavar="NAME", help="start from a registered preset (`hmlc list presets`)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set train.epochs=3 (repeatable)",
    )


def resolve_kind(kind: str) -> str:
    from hmlc.plugins import KINDS

    key = _KIND_ALIASES.get(kind, kind)
    if key not in KINDS:
        raise HmlcError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    return key


def cmd_plugins(args: argparse.Namespace) -> int:
    from hmlc.plugins import get_host

    info = get_host().plugins_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    rows = []
    for item in info:
        regs = "; ".join(
            f"{k}: {', '.join(v[:3])}" + (f" +{len(v) - 3} more" if len(v) > 3 else "")
            for k, v in item["registers"].items()
        )
        if item["error"]:
            regs = f"BROKEN: {item['error']}" + (f" (still registers {regs})" if regs else "")
        rows.append([item["name"], item["version"], item["distribution"], regs or "-"])
    table = format_table(["plugin", "version", "distribution", "registers"], rows)
    sys.stdout.write(fit_to_terminal(table))
    return 0


def fit_to_terminal(text: str, default_width: int = 100) -> str:
    """Cut every line longer than the terminal (``$COLUMNS``; ``default_width`` when not a terminal) with ``…``."""
    width = max(20, shutil.get_terminal_size((default_width, 24)).columns)
    return "".join(
        line if len(line) <= width else line[: width - 1] + "…\n"
        for line in (part + "\n" for part in text.splitlines())
    )


def cmd_list(args: argparse.Namespace) -> int:
    from hmlc.plugins import KINDS, get_host

    if args.kind is None:
        counts = {kind: len(get_host().registry(kind)) for kind in KINDS}
        if args.json:
            print(json.dumps([{"kind": k, "count": n} for k, n in counts.items()], indent=2))
        else:
            print_table(["kind", "registered"], [[k, n] for k, n in counts.items()], align_right=(1,))
            print("\n`hmlc list KIND` lists one kind, e.g. `hmlc list presets`")
        return 0
    kind = resolve_kind(args.kind)
    host = get_host()
    items = host.listing(kind, args.pattern)
    if kind == "label_maps":
        items = [_label_map_item(host, item) for item in items]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print(f"no {kind} match" + (f" {args.pattern!r}" if args.pattern else ""), file=sys.stderr)
        return 0
    if kind == "label_maps":
        print_table(
            ["name", "plugin", "source -> target", "labels", "combine", "description"],
            [[i["name"], i["plugin"], f"{i['source']} -> {i['target']}", i["labels"], i["combine"], i["description"]]
             for i in items],
        )
        return 0
    print_table(["name", "plugin", "description"], [[i["name"], i["plugin"], i["description"]] for i in items])
    return 0


def _label_map_item(host: Any, item: dict[str, str]) -> dict[str, Any]:
    """A listing entry of a label map with its source, target, combine rule and number of mapped labels."""
    from hmlc.labelmaps import label_map_from_dict

    entry = host.registry("label_maps").entry(item["name"])
    try:
        label_map = label_map_from_dict(entry.name, entry.obj, entry.plugin)
    except HmlcError as exc:
        return item | {"source": "?", "target": "?", "labels": 0, "combine": "?", "description": f"INVALID: {exc}"}
    return item | {
        "source": label_map.source, "target": label_map.target, "labels": len(label_map.labels),
        "combine": label_map.combine,
    }


def cmd_weights(args: argparse.Namespace) -> int:
    from hmlc.models.weights import lookup_weights
    from hmlc.plugins import get_host

    host = get_host()
    names: list[str] = []
    for given in args.backbones or ["*"]:
        if any(c in given for c in "*?["):
            matched = [e["name"] for e in host.listing("backbones", given)]
            if not matched:
                raise HmlcError(f"no registered backbone matches {given!r}; `hmlc list backbones` lists them")
            names += matched
        else:
            names.append(given)
    names = list(dict.fromkeys(names))
    found = [lookup_weights(host.backbone(name)) for name in names]
    if args.json:
        print(json.dumps([
            {"backbone": f.backbone, "status": _weights_status(f), "path": str(f.path) if f.path else None,
             "expected": f.expected}
            for f in found
        ], indent=2))
    else:
        print_table(
            ["backbone", "weights", "where"],
            [[f.backbone, _weights_status(f), str(f.path) if f.path else f.put or "random initialisation only"]
             for f in found],
        )
    missing = [f.backbone for f in found if f.path is None and not f.unpublished]
    if missing:
        raise HmlcError(
            f"no local ImageNet weights for {len(missing)} of {len(found)} backbone(s): {', '.join(missing)}; "
            "put each file where the table says, or let `hmlc train` download them on a machine with internet access, "
            "or train with model.pretrained=false"
        )
    return 0


def _weights_status(found: Any) -> str:
    return "none published" if found.unpublished else ("found" if found.path else "missing")


def _read_hierarchy(source: str) -> Any:
    from hmlc.plugins import get_host

    return get_host().read_hierarchy(source)


def _summary(graph: Any) -> str:
    from hmlc.hierarchy.check import hierarchy_statistics

    stats = hierarchy_statistics(graph)
    return (
        f"{stats['labels']} labels, {stats['edges']} edges, {stats['roots']} roots, {stats['leaves']} leaves, "
        f"depth {stats['max_depth']}, {stats['labels_with_several_parents']} labels with several parents, "
        f"hash {graph.content_hash[:12]}"
    )


def cmd_hierarchy_show(args: argparse.Namespace) -> int:
    from hmlc.hierarchy.check import hierarchy_statistics

    graph = _read_hierarchy(args.source).graph
    if args.format == "json":
        shown = {"name": graph.name, "content_hash": graph.content_hash, "statistics": hierarchy_statistics(graph)}
        print(json.dumps(shown | graph.to_dict(), indent=2, ensure_ascii=False))
    elif args.format == "dot":
        sys.stdout.write(graph.to_dot())
    else:
        sys.stdout.write(graph.to_text())
        print(f"\n{_summary(graph)}")
    return 0


def cmd_hierarchy_check(args: argparse.Namespace) -> int:
    from hmlc.errors import HierarchyError
    from hmlc.hierarchy.check import check_hierarchy

    reading = _read_hierarchy(args.source)
    warnings = check_hierarchy(reading)
    for warning in warnings:
        print(f"warning: {warning.message}")
    if not warnings:
        print(f"ok: {args.source}: {_summary(reading.graph)}")
        return 0
    kinds = ", ".join(f"{w.count} {w.kind}" for w in warnings)
    print(f"loaded with warnings ({kinds}): {args.source}: {_summary(reading.graph)}")
    if args.strict:
        raise HierarchyError(
            f"hierarchy {args.source} has {len(warnings)} kind(s) of warning ({kinds}) and --strict was given; "
            "fix them (docs/hierarchies.md says how) or drop --strict"
        )
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from hmlc.config import config_to_yaml, load_config
    from hmlc.engine.experiment import check_experiment

    config = load_config(args.config, args.preset, args.overrides)
    check_experiment(config)  # unknown names fail here as they would in `hmlc train`
    sys.stdout.write(config_to_yaml(config))
    return 0

"""The one guard every command with outputs calls: never write over an input or into a data folder."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hmlc.errors import ConfigError, shorten

__all__ = ["refuse_overwriting_inputs", "checkpoint_inputs", "experiment_inputs"]

PathLike = str | os.PathLike[str]


def _resolved(path: PathLike) -> Path:
    return Path(path).expanduser().resolve(strict=False)


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(
    outputs: Mapping[str, PathLike | None],
    inputs: Iterable[PathLike | None] = (),
    data_roots: Iterable[PathLike | None] = (),
) -> None:
    """Raise :class:`ConfigError` when an output path is an input or lies inside an input folder or a data root.

    ``outputs`` maps the option that names each output (``--out``) to its
    path; None entries are skipped everywhere. Paths are compared resolved
    (symbolic links followed, ``..`` removed) and, for existing files, by
    identity (hard links). Called before anything is computed.
    """
    given = [Path(p) for p in inputs if p is not None]
    roots = [Path(p) for p in data_roots if p is not None] + [p for p in given if p.is_dir()]
    for option, output in outputs.items():
        if output is None:
            continue
        target = _resolved(output)
        for source in given:
            if _same(target, _resolved(source)):
                raise ConfigError(
                    f"{option} {shorten(str(output))} is one of this command's inputs ({shorten(str(source))}); "
                    "hmlc never writes over its inputs: choose another path"
                )
        for root in roots:
            folder = _resolved(root)
            if target.is_relative_to(folder):
                raise ConfigError(
                    f"{option} {shorten(str(output))} is inside the input folder {shorten(str(root))}; "
                    "hmlc never writes into its data: choose a path outside it"
                )


def checkpoint_inputs(paths: Iterable[PathLike | None]) -> list[Path]:
    """The folders a command reading these checkpoints must not write into.

    A checkpoint folder (or the folder of its file) itself; for a run
    directory, its ``checkpoints/`` folder and ``config.yaml``, so that
    predictions may still be written beside them.
    """
    out: list[Path] = []
    for given in paths:
        if given is None:
            continue
        path = Path(given)
        if path.is_file():
            out += [path, path.parent] if (path.parent / "meta.json").is_file() else [path]
        elif (path / "meta.json").is_file():
            out.append(path)
        elif path.is_dir():
            out += [path / "checkpoints", path / "config.yaml"]
        else:
            out.append(path)
    return out


def experiment_inputs(config: Any, *files: PathLike | None) -> list[Path]:
    """What an experiment reads: its dataset folder, its hierarchy file, and ``files`` (e.g. --config)."""
    from hmlc.engine.experiment import dataset_root

    out = [Path(f) for f in files if f is not None]
    root = dataset_root(config)
    if root is not None:
        out.append(root)
    if config.hierarchy and Path(config.hierarchy).expanduser().is_file():
        out.append(Path(config.hierarchy).expanduser())
    return out

"""Run directories: resolved config, metrics log, results, atomic writes."""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from hmlc.errors import ConfigError, HmlcError

__all__ = ["atomic_write_text", "write_json", "RunDirectory", "MetricsLog"]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


class RunDirectory:
    """A run's folder: config.yaml, metrics.csv, checkpoints/, results."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, parent: Path, name: str) -> RunDirectory:
        parent = Path(parent)
        path = parent / name
        if path.exists() and any(path.iterdir()):
            raise ConfigError(
                f"run directory {path} exists and is not empty; choose another output.name or "
                f"continue it with --resume {path}"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HmlcError(f"cannot create run directory {path}: {exc.strerror}; set output.dir") from None
        return cls(path)

    @staticmethod
    def default_name(dataset: str, method: str) -> str:
        return f"{dataset}-{method}-{time.strftime('%Y%m%d-%H%M%S')}"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"


class MetricsLog:
    """Append-only metrics.csv (one row per epoch), plus TensorBoard when installed."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None) -> None:
        self.path = Path(path)
        self._writer = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(tensorboard_dir))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self._writer = None

    def log(self, row: dict[str, Any], step: int) -> None:
        exists = self.path.exists()
        fields = list(row)
        if exists:
            with self.path.open(newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), None)
            if header and header != fields:
                fields = header + [f for f in fields if f not in header]
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            if not exists:
                writer.writeheader()
            writer.writerow(row)
        if self._writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

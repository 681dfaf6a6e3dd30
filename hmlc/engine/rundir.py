"""Run directories: resolved config, metrics log, results, atomic writes."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from hmlc.errors import ConfigError, HmlcError

__all__ = ["atomic_write_text", "atomic_write_bytes", "write_json", "RunDirectory", "MetricsLog"]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (a crash leaves the old file or the new)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
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
    """A run's folder: config.yaml, metrics.csv, checkpoints/, results.

    A process training into the folder holds an exclusive lock on it
    (``flock`` on the folder itself, released when the process ends, even by
    ``kill -9``), so two runs never share one folder. A folder that holds no
    checkpoint yet (a run that failed or was killed before its first epoch
    ended) can be resumed, which starts from the beginning, or reused by a
    new run of the same name.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    @classmethod
    def create(cls, parent: Path, name: str) -> RunDirectory:
        """A new run folder ``parent/name``, locked; exactly one of several concurrent creators wins.

        An existing folder is reused only when it holds no checkpoint and no
        running process holds it.
        """
        parent = Path(parent)
        path = parent / name
        try:
            parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path)  # atomic: of two processes, one creates, the other finds it
            fresh = True
        except FileExistsError:
            fresh = False
        except OSError as exc:
            raise HmlcError(f"cannot create run directory {path}: {exc.strerror}; set output.dir") from None
        run = cls(path)
        if not path.is_dir():
            raise ConfigError(f"run directory {path} exists and is not a folder; choose another output.name")
        run.lock()
        if not fresh:
            if run.has_checkpoint():
                run.release()
                raise ConfigError(
                    f"run directory {path} holds a run with checkpoints; choose another output.name or "
                    f"continue it with --resume {path}"
                )
            run.clear()  # a run that never saved a checkpoint: nothing in it is worth keeping
        return run

    def lock(self) -> None:
        """Hold this folder for this process; a run directory in use by another process is an error."""
        if self._lock_fd is not None:
            return
        import fcntl

        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"run directory {self.path} is in use by another hmlc process; wait for it or choose another output.name"
            ) from None
        self._lock_fd = fd

    def release(self) -> None:
        """Let other processes use this folder again."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the lock
            self._lock_fd = None

    def has_checkpoint(self) -> bool:
        """Whether any checkpoint (or an interrupted checkpoint save) is in the folder."""
        folder = self.checkpoints
        return folder.is_dir() and any(folder.iterdir())

    def has_last_checkpoint(self) -> bool:
        """Whether checkpoints/last (or the copy an interrupted save keeps) is there to resume from."""
        return (self.checkpoints / "last").exists() or (self.checkpoints / ".last.previous" / "meta.json").is_file()

    def remove_unfinished_writes(self) -> list[Path]:
        """Remove what writes cut short by ``kill -9`` left (temporary files and checkpoint folders); what it removed.

        Only for the process holding the folder: no other process writes there.
        """
        import shutil

        removed = []
        for folder in (self.path, self.checkpoints):
            if not folder.is_dir():
                continue
            for item in folder.iterdir():
                # atomic_write_bytes' ".NAME.XXXX.tmp" files, save_checkpoint's ".NAME.tmp-XXXX" folders
                if item.name.startswith(".") and (item.name.endswith(".tmp") or ".tmp-" in item.name):
                    if item.is_dir() and not item.is_symlink():
                        shutil.rmtree(item)
                    else:
                        item.unlink()
                    removed.append(item)
        return removed

    def clear(self) -> None:
        """Remove everything in the folder (kept: the folder itself and the lock on it)."""
        import shutil

        for item in self.path.iterdir():
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()

    def discard_if_unstarted(self) -> bool:
        """Remove the folder when it holds no checkpoint (a run that failed before saving one); whether it did."""
        import shutil

        if not self.path.is_dir() or self.has_checkpoint():
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()
        return True

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
    """metrics.csv (one row per epoch, idempotent under resume), plus TensorBoard when installed."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None) -> None:
        self.path = Path(path)
        self._writer = None
        #: The file's columns and rows as last written (None: not read yet).
        self._fields: list[str] | None = None
        self._rows: list[dict[str, Any]] = []
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(tensorboard_dir))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self._writer = None

    def log(self, row: dict[str, Any], step: int) -> None:
        """Record ``row`` as the ``step``-th row (1-based): rows at or after it are replaced.

        A resumed run logs its epochs again from where its checkpoint was;
        rows of epochs logged after that checkpoint (by a run that then
        failed) are dropped, so metrics.csv always has one row per epoch. The
        next row in the same columns is appended (a GO run has 4,000 columns:
        rewriting every epoch grew with the epochs); any other change rewrites
        the file atomically.
        """
        if self._fields is None:  # the file a resumed run left, read once
            self._fields, self._rows = [], []
            if self.path.exists():
                with self.path.open(newline="", encoding="utf-8") as fh:
                    reader = csv.DictReader(fh)
                    self._fields = list(reader.fieldnames or [])
                    self._rows = list(reader)
        keep = max(step - 1, 0)
        known = set(self._fields)
        new_fields = [f for f in row if f not in known]
        append = not new_fields and keep == len(self._rows) and self.path.exists()
        self._rows = self._rows[:keep] + [row]
        self._fields += new_fields
        if append:
            with self.path.open("a", newline="", encoding="utf-8") as fh:
                csv.DictWriter(fh, fieldnames=self._fields, extrasaction="ignore").writerow(row)
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self._fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self._rows)
            atomic_write_text(self.path, buffer.getvalue())
        if self._writer is not None:
            from tensorboard.compat.proto.summary_pb2 import Summary
            from torch.utils.tensorboard.summary import scalar

            # One event holding every scalar of the row (what add_scalar writes, one by one, 5x slower on GO).
            values = [
                v for key, value in row.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
                for v in scalar(key, value).value
            ]
            self._writer.file_writer.add_summary(Summary(value=values), step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

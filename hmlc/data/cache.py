"""The preprocessed-image cache: every image decoded, preprocessed and resized once.

An entry holds one split of one dataset for one set of settings, in
``<cache root>/<dataset>/<split>-<key>/``:

- ``images.u8``: the images, raw uint8 (N, S, S) in the label table's order;
- ``index.json``: ids, shape, the settings the key was made from and a
  ``complete`` flag (set last, atomically);
- ``done.npy``: one bool per image, so an interrupted build continues;
- ``preprocess.npz``: the preprocessor's fitted state, when it has one.

The key is a hash of everything that changes the pixels (dataset, split,
dataset folder, reader params, image size, the preprocessor's fingerprint)
and of the image ids, so any change of settings or of the label table
gives another entry. The cache root is ``--cache DIR``, else
``$HMLC_CACHE``, else the user's cache folder; never the dataset folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hmlc.errors import DataError, HmlcError

if TYPE_CHECKING:  # workers import this module: it must not import torch or pandas
    from hmlc.data.datasets import DatasetSplit
    from hmlc.data.images import ImageSource
    from hmlc.data.preprocess import Preprocessor

__all__ = [
    "cache_root",
    "cache_inputs",
    "cache_key",
    "entry_path",
    "find_cache",
    "load_fitted_state",
    "build_cache",
    "build_cache_entries",
    "start_worker_server",
    "CacheJob",
    "CacheBuild",
    "POOL_MIN_IMAGES",
    "MemmapImageSource",
]

CACHE_FORMAT = 1
_INDEX, _IMAGES, _DONE, _STATE, _LOCK = "index.json", "images.u8", "done.npy", "preprocess.npz", ".lock"
#: Seconds between two saves of done.npy during a build.
_SAVE_EVERY_S = 2.0


def cache_root(cli_value: Path | str | None = None) -> Path:
    """``cli_value`` (--cache DIR), else ``$HMLC_CACHE``, else ``$XDG_CACHE_HOME/hmlc`` or ``~/.cache/hmlc``."""
    if cli_value:
        return Path(cli_value).expanduser()
    env = os.environ.get("HMLC_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "hmlc"


def cache_inputs(
    *,
    dataset: str,
    split: str,
    root: Path | str | None,
    params: Mapping[str, Any],
    image_size: int,
    preprocessor: Preprocessor | None,
    ids: Sequence[str],
) -> dict[str, Any]:
    """Everything an entry's pixels depend on, as JSON data (what :func:`cache_key` hashes)."""
    digest = hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()
    inputs = {
        "format": CACHE_FORMAT,
        "dataset": dataset,
        "split": split,
        "root": None if root is None else str(Path(root).expanduser().resolve()),
        "params": dict(params),
        "image_size": int(image_size),
        "preprocessor": None
        if preprocessor is None
        else {
            "name": preprocessor.name,
            "version": preprocessor.version,
            "settings": preprocessor.settings(),
            "fingerprint": preprocessor.fingerprint(),
        },
        "count": len(ids),
        "ids_sha256": digest,
    }
    # Exactly what index.json will hold (tuples become lists), so stored and computed inputs compare equal.
    return json.loads(json.dumps(inputs, sort_keys=True, default=str))


def cache_key(inputs: Mapping[str, Any]) -> str:
    """A 16-hex-digit key of :func:`cache_inputs`."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def entry_path(root: Path, inputs: Mapping[str, Any]) -> Path:
    """``<root>/<dataset>/<split>-<key>``."""
    return Path(root) / _safe(inputs["dataset"]) / f"{_safe(inputs['split'])}-{cache_key(inputs)}"


def find_cache(root: Path, inputs: Mapping[str, Any]) -> Path | None:
    """The complete entry for ``inputs`` under ``root``; None when there is none (or it is unfinished)."""
    entry = entry_path(root, inputs)
    if not (entry / _INDEX).is_file():
        return None
    index = _read_index(entry)
    if index.get("inputs") != inputs:
        raise _corrupt(entry, "its index.json was written for other settings")
    if not index.get("complete"):
        return None
    _check_images_file(entry, index)
    return entry


def load_fitted_state(root: Path, inputs: Mapping[str, Any], preprocessor: Preprocessor) -> Path | None:
    """Load into ``preprocessor`` the state saved with an entry of the same split and settings.

    ``inputs`` are those of the split the preprocessor is fitted on; the
    fingerprint in them (it depends on the state being looked for) and the
    image size (the state does not) are ignored. Returns the entry the state
    came from, or None when no entry has one. Complete entries are
    preferred, then the newest.
    """
    folder = Path(root) / _safe(inputs["dataset"])
    wanted = _fit_inputs(inputs)
    found: list[tuple[bool, float, Path, dict[str, Any]]] = []
    for entry in folder.glob(f"{_safe(inputs['split'])}-*"):
        try:
            index = json.loads((entry / _INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an unreadable entry is reported when it is used, not while looking for state
        if (
            isinstance(index, dict)
            and isinstance(index.get("inputs"), dict)
            and _fit_inputs(index["inputs"]) == wanted
            and (entry / _STATE).is_file()
        ):
            found.append((bool(index.get("complete")), (entry / _INDEX).stat().st_mtime, entry, index))
    if not found:
        return None
    _, _, entry, index = max(found, key=lambda f: (f[0], f[1]))
    preprocessor.load_state(_read_state(entry))
    if preprocessor.fingerprint() != index["inputs"]["preprocessor"]["fingerprint"]:
        raise _corrupt(entry, f"its {_STATE} does not match the fingerprint in index.json")
    return entry


class MemmapImageSource:
    """The images of a complete cache entry, read through a read-only memory map.

    The map opens on first read, and is reopened in each DataLoader worker
    (it is not pickled).
    """

    def __init__(self, entry_dir: Path | str) -> None:
        self.entry_dir = Path(entry_dir)
        index = _read_index(self.entry_dir)
        if not index.get("complete"):
            raise DataError(
                f"preprocessed cache {self.entry_dir} is unfinished; rerun `hmlc prepare` to complete it"
            )
        self.shape: tuple[int, int, int] = _check_images_file(self.entry_dir, index)
        self._map: np.memmap | None = None

    @property
    def image_size(self) -> int:
        return self.shape[1]

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, i: int) -> np.ndarray:
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"image {i} out of range for {self.shape[0]} cached images")
        if self._map is None:
            self._map = np.memmap(self.entry_dir / _IMAGES, dtype=np.uint8, mode="r", shape=self.shape)
        return np.array(self._map[i])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_map"] = None
        return state


@dataclass
class CacheBuild:
    """What :func:`build_cache` did."""

    entry_dir: Path
    images: int
    #: Images decoded and written by this call (0 when the entry was already complete).
    processed: int
    seconds: float
    #: True when an earlier, interrupted build had already written some images.
    resumed: bool
    already_complete: bool

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else math.nan


@dataclass
class CacheJob:
    """One split to store in one cache entry: its images (in table order), ids and the entry's inputs."""

    name: str
    images: ImageSource
    ids: list[str]
    entry_dir: Path
    inputs: Mapping[str, Any] | None = None

    @classmethod
    def of_split(
        cls, name: str, split: DatasetSplit, entry_dir: Path, inputs: Mapping[str, Any] | None = None
    ) -> CacheJob:
        """The job of a loaded split."""
        return cls(name, split.images, [str(v) for v in split.table.frame["id"]], Path(entry_dir), inputs)


#: Below this many images to process in all, a build runs in this process: starting
#: workers would cost more than they save.
POOL_MIN_IMAGES = 200


def build_cache(
    split: DatasetSplit,
    preprocessor: Preprocessor | None,
    image_size: int,
    entry_dir: Path,
    workers: int | None = None,
    progress: bool = True,
    *,
    inputs: Mapping[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CacheBuild:
    """Decode, preprocess and resize every image of ``split`` once into the entry ``entry_dir``.

    One split of :func:`build_cache_entries`; ``on_progress(done, total)`` is
    called after each chunk of images.
    """
    job = CacheJob.of_split(str(entry_dir), split, entry_dir, inputs)
    report = None if on_progress is None else (lambda _name, done, total: on_progress(done, total))
    return build_cache_entries([job], preprocessor, image_size, workers, progress, on_progress=report)[job.name]


def build_cache_entries(
    jobs: Sequence[CacheJob],
    preprocessor: Preprocessor | None,
    image_size: int,
    workers: int | None = None,
    progress: bool = True,
    *,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, CacheBuild]:
    """Decode, preprocess and resize every image of each job once into its entry; job name -> build.

    Images come at native size when a preprocessor is given (else at
    ``image_size``), exactly as training reads them. One pool of ``workers``
    processes (default: one per CPU; 1: this process) serves every job; work
    of fewer than :data:`POOL_MIN_IMAGES` images runs in this process. An
    entry left unfinished by an earlier call with the same inputs continues
    where it stopped; an entry that is already complete is left alone; each
    entry is marked complete as soon as its last image is written.
    ``on_progress(name, done, total)`` is called after each chunk of images.
    """
    if preprocessor is not None and not preprocessor.fitted:
        raise DataError(f"preprocessor {preprocessor.name!r} must be fitted before its cache is built")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise DataError(f"the number of workers must be at least 1, got {workers}")
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise DataError(f"cache jobs must have distinct names, got {names}")
    start = time.perf_counter()
    builds: dict[str, CacheBuild] = {}
    with contextlib.ExitStack() as stack:
        open_jobs: list[_OpenJob] = []
        for job in jobs:
            stack.enter_context(_locked(job.entry_dir))
            inputs = dict(job.inputs) if job.inputs is not None else None
            done, resumed = _open_or_create(job.entry_dir, len(job.images), image_size, job.ids, inputs, preprocessor)
            if done is None:
                builds[job.name] = CacheBuild(job.entry_dir, len(job.ids), 0, time.perf_counter() - start, False, True)
            else:
                open_jobs.append(_OpenJob(job, done, resumed, stack.enter_context((job.entry_dir / _IMAGES).open("r+b"))))
        if open_jobs:
            builds.update(_fill(open_jobs, preprocessor, image_size, workers, progress, on_progress))
    return {job.name: builds[job.name] for job in jobs}


# -------------------------------------------------------------- the build
def _open_or_create(
    entry: Path,
    n: int,
    size: int,
    ids: list[str],
    inputs: dict[str, Any] | None,
    preprocessor: Preprocessor | None,
) -> tuple[np.ndarray | None, bool]:
    """The done flags of an entry to continue (None: already complete) and whether it resumes one."""
    shape = [n, size, size]
    if (entry / _INDEX).is_file():
        try:
            index = _read_index(entry)
            same = index.get("inputs") == inputs and index.get("shape") == shape and index.get("ids") == ids
            if same and index.get("complete"):
                _check_images_file(entry, index)
                return None, False
            if same:
                _check_images_file(entry, index)
                done = np.load(entry / _DONE, allow_pickle=False)
                if done.dtype == np.bool_ and done.shape == (n,):
                    return done, bool(done.any())
        except (HmlcError, OSError, ValueError):
            pass  # unreadable: build it again from scratch
        print(f"rebuilding cache entry {entry}: it was unfinished and unreadable or made for other settings",
              file=sys.stderr)
    for name in (_INDEX, _DONE, _STATE, _IMAGES):
        (entry / name).unlink(missing_ok=True)
    entry.mkdir(parents=True, exist_ok=True)
    state = preprocessor.state() if preprocessor is not None else {}
    if state:
        tmp = entry / f".{_STATE}.tmp"
        with tmp.open("wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in state.items()})  # type: ignore[arg-type]
        os.replace(tmp, entry / _STATE)
    with (entry / _IMAGES).open("wb") as fh:
        fh.truncate(n * size * size)
    done = np.zeros(n, dtype=bool)
    _save_done(entry, done)
    index = {
        "format": CACHE_FORMAT,
        "complete": False,
        "shape": shape,
        "dtype": "uint8",
        "ids": ids,
        "inputs": inputs,
        "created": _now(),
    }
    _write_json(entry / _INDEX, index)
    return done, False


@dataclass
class _OpenJob:
    """A job being built: its done flags, the open images file, what is left."""

    job: CacheJob
    done: np.ndarray
    resumed: bool
    images_file: Any
    processed: int = 0
    chunks_left: int = 0
    last_save: float = 0.0
    #: time.monotonic() when the first of its chunks began (in whichever process ran it).
    started: float = math.inf
    seconds: float = 0.0

    def chunks(self, workers: int) -> list[np.ndarray]:
        todo = np.flatnonzero(~self.done)
        size = max(1, min(64, len(todo) // (workers * 4)))
        return [todo[i : i + size] for i in range(0, len(todo), size)]


def _fill(
    jobs: list[_OpenJob],
    preprocessor: Preprocessor | None,
    size: int,
    workers: int,
    show: bool,
    on_progress: Callable[[str, int, int], None] | None,
) -> dict[str, CacheBuild]:
    """Process the images each job still needs into its entry, saving done flags as chunks finish."""
    from hmlc.progress import Progress

    chunks = [(j, c) for j, job in enumerate(jobs) for c in job.chunks(workers)]
    todo = sum(len(c) for _, c in chunks)
    for j, job in enumerate(jobs):
        job.chunks_left = sum(1 for k, _ in chunks if k == j)
        if job.chunks_left == 0:  # every image was written before an interruption: only the flag is missing
            _finish(job.job.entry_dir)
    workers = 1 if todo < POOL_MIN_IMAGES else min(workers, len(chunks))
    total = sum(len(job.done) for job in jobs)
    desc = "cache " + "+".join(Path(job.job.name).name for job in jobs)
    progress = Progress(total, desc, unit="img", enabled=show, initial=total - todo)
    initargs = ([(job.job.images, str(job.job.entry_dir / _IMAGES)) for job in jobs], preprocessor, size)

    def finished(j: int, indices: np.ndarray, began: float) -> None:
        job = jobs[j]
        job.started = min(job.started, began)
        job.done[indices] = True
        job.processed += len(indices)
        job.chunks_left -= 1
        progress.update(len(indices))
        if job.chunks_left == 0:
            _save_done(job.job.entry_dir, job.done, job.images_file)
            _finish(job.job.entry_dir)
            job.seconds = time.monotonic() - job.started
        elif time.monotonic() - job.last_save > _SAVE_EVERY_S:
            _save_done(job.job.entry_dir, job.done, job.images_file)
            job.last_save = time.monotonic()
        if on_progress is not None:
            on_progress(job.job.name, int(job.done.sum()), len(job.done))

    for job in jobs:
        job.last_save = time.monotonic()
    try:
        if workers == 1:
            _init_worker(*initargs)
            try:
                for j, c in chunks:
                    finished(*_process_chunk(j, c))
            finally:
                _close_worker()
        else:
            start_worker_server([type(preprocessor).__module__] if preprocessor is not None else [])
            _run_pool(chunks, workers, initargs, finished, progress)
    finally:
        progress.close()
        for job in jobs:
            if job.chunks_left:
                _save_done(job.job.entry_dir, job.done, job.images_file)
    return {
        job.job.name: CacheBuild(job.job.entry_dir, len(job.done), job.processed, job.seconds, job.resumed, False)
        for job in jobs
    }


def _run_pool(
    chunks: list[tuple[int, np.ndarray]],
    workers: int,
    initargs: tuple[Any, ...],
    finished: Callable[[int, np.ndarray, float], None],
    progress: Any,
) -> None:
    context = _worker_context()
    progress.status(f"starting {workers} worker processes")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=initargs)
    pending: set[Future[tuple[int, np.ndarray, float]]] = set()
    queue = iter(chunks)

    def submit() -> bool:
        item = next(queue, None)
        if item is None:
            return False
        pending.add(pool.submit(_process_chunk, *item))
        return True

    try:
        # A bounded window of chunks in flight, so an interrupted build stops soon.
        while len(pending) < 4 * workers and submit():
            pass
        first = True
        while pending:
            ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            if first:
                progress.status("")
                first = False
            for future in ready:
                finished(*future.result())
                submit()
    except BrokenProcessPool:
        raise DataError(
            "a worker process died while building the cache (out of memory?); rerun `hmlc prepare` "
            "with fewer --workers: it continues where it stopped"
        ) from None
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


_WORKER: dict[str, Any] = {}
#: What a worker imports before it starts: the modules that decode and preprocess (no torch, no pandas).
WORKER_MODULES = ("hmlc.data.cache", "hmlc.data.preprocess")


def start_worker_server(modules: Sequence[str] = ()) -> None:
    """Start, in the background, the process workers are forked from (forkserver), with the
    modules decoding needs (and ``modules``, e.g. a preprocessor's) already imported, so
    that a pool started later starts at once and its workers import nothing more.

    Call it before other work (reading tables, fitting): the server imports while
    that work runs. No-op where workers are spawned (no forkserver) or the server runs.
    """
    if _worker_context().get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    if getattr(forkserver._forkserver, "_forkserver_pid", None) is None:  # not started yet
        # Each worker re-imports the main script (not a package's __main__): have its imports ready.
        main = "hmlc.cli.main" if "hmlc.cli.main" in sys.modules else None
        preload = dict.fromkeys([*WORKER_MODULES, *modules, *([main] if main else [])])
        forkserver.set_forkserver_preload(list(preload))
    forkserver.ensure_running()


def _worker_context() -> multiprocessing.context.BaseContext:
    """A start method that does not fork a parent whose OpenCV thread pool may be busy.

    A forked child inherits OpenCV's thread pool in whatever state the parent
    left it, and can hang inside cv2 (opencv/opencv#5150); forkserver (or
    spawn where there is none) starts workers from a clean process.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _init_worker(jobs: list[tuple[ImageSource, str]], preprocessor: Preprocessor | None, size: int) -> None:
    import cv2

    if multiprocessing.parent_process() is not None:
        cv2.setNumThreads(1)  # one image per process at a time: parallelism comes from the processes
        _keep_freed_memory()
    _WORKER.update(jobs=jobs, preprocessor=preprocessor, size=size, files={})


def _keep_freed_memory() -> None:
    """Have glibc's malloc keep freed buffers instead of returning them to the system.

    In a fresh worker, the buffers of each image (decoded pixels, float copies,
    OpenCV's work areas: about 2 MB) went back to the system when freed and were
    faulted in again for the next image: about 450 page faults and half as much
    CPU time again per CheXpert image (measured by benchmarks/prepare_speed.py).
    Fixed thresholds (mallopt) stop that. Elsewhere than glibc: nothing to do.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (AttributeError, OSError, TypeError):  # not glibc (macOS, Windows)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    mallopt(m_trim_threshold, 128 * 1024 * 1024)


def _close_worker() -> None:
    for fh in _WORKER.get("files", {}).values():
        fh.close()
    _WORKER.clear()


def _process_chunk(job: int, indices: np.ndarray) -> tuple[int, np.ndarray, float]:
    """Write the images ``indices`` of job ``job``; returns them with when the work began (time.monotonic)."""
    from hmlc.data.preprocess import preprocess_image

    began = time.monotonic()  # one clock for all processes of the machine
    preprocessor, size, files = _WORKER["preprocessor"], _WORKER["size"], _WORKER["files"]
    images, path = _WORKER["jobs"][job]
    if job not in files:
        files[job] = open(path, "r+b")  # noqa: SIM115 - kept open for the worker's life
    fh = files[job]
    frame = size * size
    for i in indices:
        i = int(i)
        try:
            img = preprocess_image(images.read(i), preprocessor, size)
        except HmlcError:
            raise
        except Exception as exc:  # noqa: BLE001 - plugin code: name the image, keep one line
            paths = getattr(images, "paths", None)
            what = paths[i] if paths is not None else f"image {i}"
            name = preprocessor.name if preprocessor is not None else "decoding"
            raise DataError(f"{name} failed on {what}: {type(exc).__name__}: {exc}") from None
        fh.seek(i * frame)
        fh.write(img.tobytes())
    fh.flush()
    return job, indices, began


def _finish(entry: Path) -> None:
    index = _read_index(entry)
    with (entry / _IMAGES).open("r+b") as fh:
        os.fsync(fh.fileno())
    index["complete"] = True
    index["completed"] = _now()
    _write_json(entry / _INDEX, index)


def _save_done(entry: Path, done: np.ndarray, images_file: Any = None) -> None:
    """Write ``done`` atomically, after the images it marks are on disk."""
    if images_file is not None:
        images_file.flush()
        os.fsync(images_file.fileno())
    tmp = entry / f".{_DONE}.tmp"
    with tmp.open("wb") as fh:
        np.save(fh, done)
    os.replace(tmp, entry / _DONE)


@contextlib.contextmanager
def _locked(entry: Path) -> Iterator[None]:
    """Hold ``<entry>/.lock`` so two builds of one entry never interleave."""
    entry.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; builds of one entry must not overlap
        yield
        return
    with (entry / _LOCK).open("w") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DataError(f"another process is building the cache entry {entry}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------ entry files
def _read_index(entry: Path) -> dict[str, Any]:
    try:
        index = json.loads((entry / _INDEX).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{entry} is not a preprocessed cache entry (no {_INDEX}); run `hmlc prepare`") from None
    except (OSError, ValueError) as exc:
        raise _corrupt(entry, f"cannot read {_INDEX}: {exc}") from None
    if not isinstance(index, dict) or index.get("format") != CACHE_FORMAT:
        raise _corrupt(entry, f"{_INDEX} is not of cache format {CACHE_FORMAT}")
    for key, kind in (("shape", list), ("ids", list)):
        if not isinstance(index.get(key), kind):
            raise _corrupt(entry, f"{_INDEX} has no valid {key!r}")
    return index


def _check_images_file(entry: Path, index: Mapping[str, Any]) -> tuple[int, int, int]:
    shape = index["shape"]
    if len(shape) != 3 or not all(isinstance(s, int) and s >= 0 for s in shape) or shape[1] != shape[2]:
        raise _corrupt(entry, f"bad image shape {shape} in {_INDEX}")
    if len(index["ids"]) != shape[0]:
        raise _corrupt(entry, f"{len(index['ids'])} ids for {shape[0]} images")
    expected = shape[0] * shape[1] * shape[2]
    try:
        size = (entry / _IMAGES).stat().st_size
    except OSError:
        raise _corrupt(entry, f"{_IMAGES} is missing") from None
    if size != expected:
        raise _corrupt(entry, f"{_IMAGES} has {size} bytes, expected {expected}")
    return shape[0], shape[1], shape[2]


def _read_state(entry: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(entry / _STATE, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as exc:
        raise _corrupt(entry, f"cannot read {_STATE}: {exc}") from None


def _corrupt(entry: Path, why: str) -> DataError:
    return DataError(
        f"preprocessed cache entry {entry} is corrupt ({why}); delete that folder or rerun `hmlc prepare`"
    )


def _fit_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What a fitted state depends on: the inputs less the image size and the fingerprint."""
    out = {k: v for k, v in inputs.items() if k != "image_size"}
    if isinstance(out.get("preprocessor"), dict):
        out["preprocessor"] = {k: v for k, v in out["preprocessor"].items() if k != "fingerprint"}
    return out


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)) or "_"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

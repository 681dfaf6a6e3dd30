"""A compiled level walk for CPU inference over wide hierarchies (optional: numba).

The chain rule and the max-constraint module compute, per sample, one pass over
the labels in an order where every source of a label is final first:

    p[target] = p[target] * prod(p[sources])     (kind 1: the product rule)
    p[target] = p[target] * min(p[sources])      (kind 2: the min rule)
    p[target] = max(p[target], max(p[sources]))  (kind 3: the max-constraint module)

Written with torch operations, a pass is a few operations per level group over
label-major copies of the probabilities (:class:`hmlc.chain_rule._Levels`);
over a Gene Ontology DAG (4,125 labels, 66 groups) the transposes, gathers and
per-operation overhead cost several times the arithmetic. With `numba
<https://numba.pydata.org>`_ installed (``pip install hmlc[fast]``), this module
compiles the pass itself: each sample's row (16 KiB for 4,125 float32 labels)
stays in the core's cache while its labels are walked in order, and blocks of
rows run on ``torch.get_num_threads()`` threads (numba releases the GIL). The
operations are the same, in the same order (the product of a label's sources
left to right, then the label's own value times it), so the results are the
torch walk's, bit for bit; min and max propagate NaN like ``torch.minimum`` and
``torch.maximum``.

Without numba, or with the environment variable ``HMLC_NUMBA=0``, everything
runs the torch walk. The first call compiles the kernel (about a second) and
numba caches it on disk (``NUMBA_CACHE_DIR``, else beside this file or in the
user's cache folder).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Program", "available", "run", "shares", "torch_walk", "walk", "winners"]

#: Rows walked together by the kernel (8 measured fastest of 1-64 on GO: 40% less time than 1).
BLOCK_ROWS = 8
#: Fewest rows per thread: below it, the walk runs on the calling thread alone.
MIN_ROWS_PER_THREAD = 64

_lock = threading.Lock()
_state: dict[str, Any] = {}


class Program(NamedTuple):
    """A level walk in output-column indices: target ``targets[j]`` combines its own value with
    ``sources[offsets[j]:offsets[j + 1]]``, for j in order."""

    targets: np.ndarray  # int32 (T,)
    offsets: np.ndarray  # int32 (T + 1,)
    sources: np.ndarray  # int32 (offsets[-1],)


def _kernel() -> Any:
    """The compiled kernels (fold_rows, winner_rows), or None without numba (or with HMLC_NUMBA=0)."""
    if "kernel" in _state:
        return _state["kernel"]
    with _lock:
        if "kernel" not in _state:
            _state["kernel"] = _compile() if os.environ.get("HMLC_NUMBA", "1") != "0" else None
    return _state["kernel"]


def _compile() -> Any:
    try:
        import numba
    except ImportError:
        return None

    def jit(function: Any) -> Any:
        try:
            return numba.njit(nogil=True, cache=True, boundscheck=False)(function)
        except RuntimeError:  # no writable cache folder (read-only install and home): compile each time
            return numba.njit(nogil=True, boundscheck=False)(function)

    @jit
    def fold_rows(values, targets, offsets, sources, kind):  # pragma: no cover - compiled
        # Blocks of BLOCK_ROWS rows: each step of the walk on every row of the block at once,
        # so the program's indices are read once per block and the rows' chains overlap.
        n = values.shape[0]
        for first in range(0, n, BLOCK_ROWS):
            last = min(n, first + BLOCK_ROWS)
            for j in range(targets.shape[0]):
                a = offsets[j]
                b = offsets[j + 1]
                t = targets[j]
                s = sources[a]
                # Min and max as selects, not branches: on random scores a branch is mispredicted
                # half the time (the max walk over GO took 3x as long written with ifs).
                for r in range(first, last):
                    got = values[r, s]
                    for q in range(a + 1, b):
                        v = values[r, sources[q]]
                        if kind == 1:
                            got = got * v
                        elif kind == 2:  # NaN wins, as in torch.amin; a tie keeps the first
                            got = v if (v < got or v != v) else got
                        else:  # kind 3; NaN wins, as in torch.amax
                            got = v if (v > got or v != v) else got
                    own = values[r, t]
                    if kind != 3:
                        values[r, t] = own * got
                    else:  # torch.maximum: NaN wins (own's or got's); a tie keeps own
                        values[r, t] = got if (got > own or got != got) else own

    @jit
    def winner_rows(values, targets, offsets, sources, out):  # pragma: no cover - compiled
        # The max walk (kind 3) carrying each label's argmax in out: the first maximum among a
        # label's sources (NaN first, as torch.max), taken only when above the label's own value.
        n, k = values.shape
        for first in range(0, n, BLOCK_ROWS):
            last = min(n, first + BLOCK_ROWS)
            for r in range(first, last):
                for c in range(k):
                    out[r, c] = c
            for j in range(targets.shape[0]):
                a = offsets[j]
                b = offsets[j + 1]
                t = targets[j]
                for r in range(first, last):
                    s = sources[a]
                    got = values[r, s]
                    arg = out[r, s]
                    for q in range(a + 1, b):  # selects, not branches (see fold_rows)
                        v = values[r, sources[q]]
                        take = v > got or (v != v and got == got)
                        got = v if take else got
                        arg = out[r, sources[q]] if take else arg
                    own = values[r, t]
                    out[r, t] = arg if got > own else out[r, t]
                    values[r, t] = got if (got > own or (got != got and own == own)) else own

    return fold_rows, winner_rows


def available() -> bool:
    """Whether the compiled walk is in use (numba importable and HMLC_NUMBA is not 0)."""
    return _kernel() is not None


@contextlib.contextmanager
def torch_walk() -> Iterator[None]:
    """Within the block, inference runs the torch walk (for comparisons; not thread-safe)."""
    _kernel()
    saved = _state["kernel"]
    _state["kernel"] = None
    try:
        yield
    finally:
        _state["kernel"] = saved


def _pool(threads: int) -> ThreadPoolExecutor:
    """The walk's threads; a new pool when more are wanted, or in a forked child (which has none of its parent's)."""
    with _lock:
        pool = _state.get("pool")
        if pool is None or _state["pool_threads"] < threads or _state["pool_pid"] != os.getpid():
            if pool is not None and _state["pool_pid"] == os.getpid():
                pool.shutdown(wait=False)
            pool = _state["pool"] = ThreadPoolExecutor(threads, thread_name_prefix="hmlc-fold")
            _state["pool_threads"], _state["pool_pid"] = threads, os.getpid()
        return pool


def walk(values: np.ndarray, program: Program, kind: int, threads: int = 1) -> None:
    """Run ``program`` over every row of ``values`` (float32 or float64, C-contiguous (N, K)), in place.

    ``threads`` > 1 splits the rows into that many blocks, walked at once.
    Call only when :func:`available` is true.
    """
    _run(0, values, (program.targets, program.offsets, program.sources, kind), None, threads)


def winners(values: np.ndarray, program: Program, threads: int = 1) -> np.ndarray:
    """Int64 (N, K): per row and label, the column holding the max over the label and all it reaches.

    ``program`` is a max walk (a :class:`~hmlc.max_constraint.MaxConstraint`'s levels); ties go
    to the label itself, else to its first source reaching the max, as in the torch version
    (:func:`hmlc.max_constraint._winners`), whose numbers these are. ``values`` (float32 or
    float64, C-contiguous (N, K)) is overwritten with the maxima.
    """
    out = np.empty(values.shape, dtype=np.int64)
    _run(1, values, (program.targets, program.offsets, program.sources), out, threads)
    return out


def _run(which: int, values: np.ndarray, args: tuple, out: np.ndarray | None, threads: int) -> None:
    kernels = _kernel()
    if kernels is None:
        raise RuntimeError("the compiled walk needs numba: pip install hmlc[fast] (or numba)")
    if not (values.flags.c_contiguous and values.ndim == 2):
        raise ValueError("walk: values must be a C-contiguous 2-d array")
    kernel = kernels[which]
    extra = (lambda rows: ()) if out is None else (lambda rows: (out[rows],))
    run([functools.partial(kernel, values[rows], *args, *extra(rows)) for rows in shares(len(values), threads)])


def shares(n: int, threads: int) -> list[slice]:
    """``n`` rows split into at most ``threads`` consecutive shares of at least :data:`MIN_ROWS_PER_THREAD`
    (one share when fewer rows), one per thread of :func:`run`."""
    parts = max(1, min(threads, n // MIN_ROWS_PER_THREAD))
    step = max(1, -(-n // parts))
    return [slice(first, min(n, first + step)) for first in range(0, n, step)]


def run(calls: list[Callable[[], Any]]) -> None:
    """Call each of ``calls`` at once, one per thread (the walk's threads); a single call on this thread.

    For work that releases the GIL (the compiled walk, torch operations). Returns when all
    have finished; the first error raised by one of them is raised here.
    """
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    futures = [_pool(len(calls)).submit(call) for call in calls]
    wait(futures)
    for future in futures:
        future.result()

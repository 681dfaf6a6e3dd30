"""Chain-rule inference and the losses of conditional training.

A conditionally trained head outputs, per label k, a logit of
p(k | parents of k positive). The unconditional probability is

    p(k) = p(k | parents) * p(parents),

where p(parents), the probability that all parents are positive, comes from a
combine rule: ``"product"`` assumes the parents independent, ``"min"`` takes
the upper bound min_i p(parent_i). Either way p(child) <= p(parent) on every
edge, and :func:`chain_rule` guarantees it exactly in floating point too.

Everything runs level by level over the DAG (a level holds the labels whose
longest path from a root has the same length), labels along rows, so the
loops are over a fixed structure, never over samples or labels. Losses run in
log space; probabilities of the built-in rules in probability space, where the
products are exact enough and cheaper. For a U-MultiClass head pass
``logits3[..., 1] - logits3[..., 0]`` as the logits.
"""

# No `from __future__ import annotations`: TorchScript needs real annotations.
import functools
import math
import weakref
from collections.abc import Callable
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hmlc import fold_kernel
from hmlc.errors import ConfigError
from hmlc.hierarchy.graph import LabelGraph, LevelGroup

__all__ = [
    "COMBINE_RULES",
    "CombineRule",
    "register_builtin_combine_rules",
    "log1mexp",
    "log_chain_rule",
    "chain_rule",
    "ChainRule",
    "in_chunks",
    "unconditional_bce",
    "masked_bce_with_logits",
    "multiclass_ce",
]

#: Smallest denominator of the weighted-mean reduction of the losses.
LOSS_EPS = 1e-8
#: |log p| below which the product-rule loss treats p as 1 (its float64 gradients stay finite above it).
NEAR_ONE = 2.0**-900

CombineRule = Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]]
"""``rule(log_p, log_1mp)`` -> ``(log p(all parents positive), log(1 - that))``.

Inputs have shape (..., L, P): for L children with P parents each, their
parents' log p and log(1 - p). Rules must be TorchScript-compatible for
:class:`ChainRule` to be scriptable.
"""


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, accurate over the whole range (Maechler 2012).

    Each branch sees only its own range (-1 elsewhere), so the branch not taken
    adds no inf * 0 to the gradient.
    """
    near = x > -math.log(2.0)
    other = torch.full_like(x, -1.0)
    return torch.where(near, torch.log(-torch.expm1(torch.where(near, x, other))),
                       torch.log1p(-torch.exp(torch.where(near, other, x))))


def product_rule(log_p: Tensor, log_1mp: Tensor) -> Tuple[Tensor, Tensor]:
    """Independent parents: p = prod_i p_i."""
    acc = log_p[..., 0]
    acc_1m = log_1mp[..., 0]
    for i in range(1, log_p.shape[-1]):
        # 1 - a*b = (1 - a) + a*(1 - b): stays exact when a*b rounds to 1.
        acc_1m = torch.logaddexp(acc_1m, acc + log_1mp[..., i])
        acc = acc + log_p[..., i]
    return acc, acc_1m


def min_rule(log_p: Tensor, log_1mp: Tensor) -> Tuple[Tensor, Tensor]:
    """Upper bound: p = min_i p_i."""
    return log_p.amin(-1), log_1mp.amax(-1)


COMBINE_RULES: dict[str, CombineRule] = {"product": product_rule, "min": min_rule}


def register_builtin_combine_rules(register: Callable[[str, CombineRule], None]) -> None:
    """Register the built-in combine rules ``product`` and ``min``."""
    for name, rule in COMBINE_RULES.items():
        register(name, rule)


def _resolve(combine: Union[str, CombineRule]) -> CombineRule:
    if callable(combine):
        return combine
    try:
        return COMBINE_RULES[combine]
    except (KeyError, TypeError):
        raise ConfigError(
            f"combine rule {combine!r} is unknown; use one of: {', '.join(map(repr, COMBINE_RULES))}"
        ) from None


class _Levels(torch.nn.Module):
    """A graph's :class:`~hmlc.hierarchy.graph.LevelGroup` sequence, laid out for row operations.

    Values are held label-major, (K, R) for R samples: row ``j`` is label
    ``order[j]``, the labels no group updates come first, then each group's
    targets as one contiguous block ``start[i]:start[i+1]``. ``sources`` of
    group ``i`` are row numbers (flattened (L, widths[i])), so a level is one
    gather, one reduction and one slice update.
    Buffers are non-persistent: they follow ``.to(device)`` and stay out of
    ``state_dict``.
    """

    start: List[int]
    source_offsets: List[int]
    source_sizes: List[int]
    widths: List[int]

    def __init__(self, num_labels: int, groups: Tuple[LevelGroup, ...]) -> None:
        super().__init__()
        updated = np.concatenate([np.zeros(0, np.int64)] + [g.targets for g in groups])
        fixed = np.setdiff1d(np.arange(num_labels), updated)
        order = np.concatenate([fixed, updated])
        row = np.empty(num_labels, dtype=np.int64)
        row[order] = np.arange(num_labels)
        sources = [row[g.sources.reshape(-1)] for g in groups]
        self.register_buffer("order", torch.from_numpy(order), persistent=False)
        self.register_buffer("inverse", torch.from_numpy(row), persistent=False)
        self.register_buffer(
            "source_index", torch.from_numpy(np.concatenate([np.zeros(0, np.int64)] + sources)), persistent=False
        )
        self.start = (len(fixed) + np.cumsum([0] + [len(g.targets) for g in groups])).tolist()
        self.source_offsets = np.cumsum([0] + [len(s) for s in sources]).tolist()
        self.source_sizes = [len(s) for s in sources]
        self.widths = [int(g.sources.shape[1]) for g in groups]
        self.num_labels = num_labels
        # Narrow hierarchies (a few dozen labels): each target's source columns, in fold order.
        self.columns: List[Tuple[int, List[int]]] = (
            [(int(t), [int(c) for c in row]) for g in groups for t, row in zip(g.targets, g.sources)]
            if num_labels <= COLUMNS_MAX_LABELS
            else []
        )

    def rows(self, values: Tensor) -> Tensor:
        """(..., K) -> label-major (K, R) in level order."""
        flat = values.reshape(-1, self.num_labels)
        return flat.t().contiguous().index_select(0, self.order)  # transpose first: row gathers are fast

    def values(self, rows: Tensor, like: Tensor) -> Tensor:
        """Inverse of :meth:`rows`: (K, R) -> (..., K) in output order."""
        return rows.index_select(0, self.inverse).t().reshape(like.shape)

    def sources(self, rows: Tensor, i: int) -> Tensor:
        """Rows of group ``i``'s sources, (L, W, R)."""
        index = self.source_index[self.source_offsets[i] : self.source_offsets[i + 1]]
        return rows.index_select(0, index).reshape(-1, self.widths[i], rows.shape[1])

    def split_sources(self) -> List[Tensor]:
        """Each group's flattened source rows, split off in one operation."""
        return self.source_index.split(self.source_sizes)

    def fold(self, rows: Tensor, kind: int, scratch: Optional[Tensor] = None) -> Tensor:
        """Walk the groups over label-major ``rows``, each target combining its own row with its sources'.

        ``kind`` 1: own * product of sources; 2: own * min of sources; 3: max(own, max of sources).
        Without autograd ``rows`` is updated in place; with it, on a copy (autograd saves the
        unchanged rows and gathered copies, never rows it will see change). ``scratch`` (no
        autograd; at least ``max(source_sizes) * R`` values) receives the gathered sources
        instead of a new tensor per group.
        """
        own = rows
        if torch.is_grad_enabled():
            rows = rows.clone()
        sources = self.split_sources()
        r = rows.shape[1]
        for i in range(len(self.widths)):
            if scratch is None:
                got = rows.index_select(0, sources[i])
            else:
                got = torch.index_select(rows, 0, sources[i], out=scratch[: self.source_sizes[i] * r].view(-1, r))
            if self.widths[i] > 1:
                got = got.reshape(-1, self.widths[i], rows.shape[1])
                if kind == 1:
                    got = got.prod(1)
                elif kind == 2:
                    got = got.amin(1)
                else:
                    got = got.amax(1)
            a, b = self.start[i], self.start[i + 1]
            if own is rows:  # no autograd: straight into the rows, no temporary
                if kind == 3:
                    torch.maximum(rows[a:b], got, out=rows[a:b])
                else:
                    rows[a:b].mul_(got)
            elif kind == 3:
                rows[a:b] = torch.maximum(own[a:b], got)
            else:
                rows[a:b] = own[a:b] * got
        return rows

    @torch.jit.ignore
    def program(self) -> fold_kernel.Program:
        """The walk in output columns, for :func:`hmlc.fold_kernel.walk` (built once per module)."""
        program = _PROGRAMS.get(self)
        if program is None:
            order = self.order.cpu().numpy()
            targets = order[self.start[0] : self.start[-1]] if self.widths else order[:0]
            sources = order[self.source_index.cpu().numpy()]
            widths = np.repeat(self.widths, np.diff(self.start)).astype(np.int64)
            starts = np.cumsum(widths) - widths  # each target's first source
            # A group pads a target with few sources by repeating its first (child_groups): the
            # compiled walk reads each source once instead (max is idempotent; nothing else pads).
            keep = sources != np.repeat(sources[starts], widths)
            keep[starts] = True
            counts = np.add.reduceat(keep.astype(np.int64), starts) if len(starts) else starts
            offsets = np.concatenate([[0], np.cumsum(counts)])
            program = fold_kernel.Program(*(a.astype(np.int32) for a in (targets, offsets, sources[keep])))
            _PROGRAMS[self] = program
        return program

    @torch.jit.ignore
    def infer(self, logits: Tensor, kind: int, out: Optional[Tensor] = None) -> Tensor:
        """:meth:`fold` of ``sigmoid(logits)`` for inference, no autograd: (..., K) -> (..., K).

        The same numbers as ``values(fold(rows(_sigmoid(logits))))``, bit for bit, computed in
        chunks of rows through buffers allocated once per call: a fresh allocation of a
        chunk-sized tensor costs a page fault per 4 KiB, more than the arithmetic on it, and a
        transposed copy of a chunk is cheapest while it fits in cache. Hierarchies of up to
        :data:`COLUMNS_MAX_LABELS` labels fold column by column in the output instead. Wider
        ones, on the CPU with numba installed, walk compiled (:mod:`hmlc.fold_kernel`): the rows
        shared among ``torch.get_num_threads()`` threads, each taking blocks of
        :data:`COMPILED_ELEMENTS` values, their sigmoid, then their walk while in cache; the
        same numbers again. ``out`` (contiguous, the shape and dtype of ``logits``; may be ``logits`` itself)
        receives the result in place of a new tensor.
        """
        k = self.num_labels
        flat = logits.reshape(-1, k)
        n = flat.shape[0]
        if out is None:
            out = torch.empty_like(flat)
        elif out.shape != logits.shape or out.dtype != logits.dtype or not out.is_contiguous():
            raise ValueError(
                f"out must be a contiguous {logits.dtype} tensor of shape {tuple(logits.shape)}, "
                f"got {out.dtype} {tuple(out.shape)}{'' if out.is_contiguous() else ' (not contiguous)'}"
            )
        out = out.view(-1, k)
        # A GPU gains nothing from cache-sized chunks and pays a launch per operation: larger ones there.
        per_chunk = INFER_ELEMENTS if flat.device.type == "cpu" else max(INFER_ELEMENTS, 1 << 24)
        step = max(1, min(n, max(INFER_MIN_ROWS, per_chunk // max(k, 1))))
        if k <= COLUMNS_MAX_LABELS:
            # Few labels: straight in the output, one column operation per label, no transposes.
            for first in range(0, n, step):
                s = _sigmoid_into(flat[first : first + step], out[first : first + step])
                for target, sources in self.columns:
                    got = s[:, sources[0]]
                    for c in sources[1:]:  # left to right, as prod/amin/amax over the group's sources
                        if kind == 1:
                            got = got * s[:, c]
                        elif kind == 2:
                            got = torch.minimum(got, s[:, c])
                        else:
                            got = torch.maximum(got, s[:, c])
                    own = s[:, target]
                    if kind == 3:
                        torch.maximum(own, got, out=own)
                    else:
                        own.mul_(got)
            return out.reshape(logits.shape)
        if flat.device.type == "cpu" and fold_kernel.available():
            # Compiled: the rows split between the threads; each thread takes blocks of rows, their
            # sigmoid, then their walk in place while the block is in cache.
            program, values = self.program(), out.numpy()
            block = max(1, COMPILED_ELEMENTS // max(k, 1))

            def part(rows: slice) -> None:
                for a in range(rows.start, rows.stop, block):
                    b = min(rows.stop, a + block)
                    _sigmoid_into(flat[a:b], out[a:b], threads=1)
                    fold_kernel.walk(values[a:b], program, kind)

            fold_kernel.run([functools.partial(part, rows) for rows in fold_kernel.shares(n, torch.get_num_threads())])
            return out.reshape(logits.shape)
        sample_major = torch.empty((step, k), dtype=flat.dtype, device=flat.device)
        label_major = torch.empty(k * step, dtype=flat.dtype, device=flat.device)
        permuted = torch.empty(k * step, dtype=flat.dtype, device=flat.device)
        scratch = torch.empty(max(self.source_sizes + [0]) * step, dtype=flat.dtype, device=flat.device)
        for first in range(0, n, step):
            r = min(step, n - first)
            s = _sigmoid_into(flat[first : first + r], sample_major[:r])
            t = label_major[: k * r].view(k, r)
            t.copy_(s.t())
            rows = permuted[: k * r].view(k, r)
            torch.index_select(t, 0, self.order, out=rows)
            with torch.no_grad():  # in place (logits that need no grad may come while grad mode is on)
                self.fold(rows, kind, scratch)
            torch.index_select(rows, 0, self.inverse, out=t)
            out[first : first + r].copy_(t.t())
        return out.reshape(logits.shape)


#: Each :class:`_Levels`' program for the compiled walk, built on first use.
_PROGRAMS: "weakref.WeakKeyDictionary[_Levels, fold_kernel.Program]" = weakref.WeakKeyDictionary()

#: Values per chunk of :meth:`_Levels.infer` (its transposed copies are fastest while a chunk fits in L2).
INFER_ELEMENTS = 1 << 20
#: Values per block when :meth:`_Levels.infer` walks compiled (a block's sigmoid, then its walk, in cache).
COMPILED_ELEMENTS = 1 << 18
#: Hierarchies up to this many labels fold column by column in :meth:`_Levels.infer`, in sample-major order.
COLUMNS_MAX_LABELS = 64
#: Fewest rows per chunk of :meth:`_Levels.infer` (bounds the per-chunk Python overhead on wide hierarchies).
INFER_MIN_ROWS = 64


def _float(logits: Tensor) -> Tensor:
    return logits.float() if logits.dtype == torch.float16 or logits.dtype == torch.bfloat16 else logits


def _sigmoid(x: Tensor) -> Tensor:
    """The sigmoid of ``x`` (..., K), rounded the same wherever an element sits.

    ``1 / (1 + exp(-x))`` as four torch operations (negate, exp, add, reciprocal; torch's ``exp``
    rounds alike wherever an element sits): the numbers hmlc has always trained, traced,
    exported and computed on other devices with. Without autograd (``x`` needs no gradient) on
    the CPU it is :func:`_sigmoid_into`, which for wide hierarchies is torch's faster one-pass
    sigmoid, called so that no element falls in its differently rounded scalar tail.
    """
    if torch.jit.is_scripting():
        return torch.reciprocal(torch.exp(-x) + 1.0)
    else:
        autograd = torch.is_grad_enabled() and x.requires_grad
        if autograd or x.device.type != "cpu" or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return torch.reciprocal(torch.exp(-x) + 1.0)
        return _sigmoid_into(x, torch.empty_like(x, memory_format=torch.contiguous_format))


@torch.jit.unused
def _sigmoid_into(x: Tensor, out: Tensor, threads: int = 0) -> Tensor:
    """The sigmoid of ``x`` (..., K) written into ``out`` (contiguous, like ``x``; may be ``x``), no autograd.

    Every element rounded alike, whatever its position, in one of two ways chosen by the width
    K, so that every path of inference over one hierarchy, and its module, give the same numbers:

    * K above :data:`COLUMNS_MAX_LABELS` on the CPU (the compiled walk's blocks): torch's
      vectorised sigmoid (torch.sigmoid's kernel rounds the last few elements of a call, and of
      each thread's share, with another exp), called on pieces of a multiple of
      :data:`SIGMOID_ALIGN` elements below ATen's grain size (each piece runs whole on the
      calling thread, no scalar tail), the last elements through a padded piece; ``threads``
      (default ``torch.get_num_threads()``) share a large tensor's pieces
      (:func:`hmlc.fold_kernel.run`). One pass over memory: on the Gene Ontology's 4,125 labels
      2-3x faster than the four operations below.
    * otherwise (CheXpert's 14, inference over columns in torch's threads; other devices):
      ``1 / (1 + exp(-x))`` as four torch operations (negate, exp, add, reciprocal), which
      round alike wherever an element sits and share torch's threads without the pieces' overhead.
    """
    if out.device.type != "cpu" or x.shape[-1] <= COLUMNS_MAX_LABELS:
        torch.neg(x, out=out)
        return out.exp_().add_(1.0).reciprocal_()
    src, dst = x.reshape(-1), out.view(-1)
    n = src.numel()
    threads = threads or torch.get_num_threads()
    parts = max(1, min(threads, n // (4 * SIGMOID_PIECE)))
    if parts > 1:
        step = -(-n // parts // SIGMOID_ALIGN) * SIGMOID_ALIGN
        fold_kernel.run(
            [functools.partial(_sigmoid_pieces, src[a : a + step], dst[a : a + step]) for a in range(0, n, step)]
        )
    else:
        _sigmoid_pieces(src, dst)
    return out


def _sigmoid_pieces(src: Tensor, dst: Tensor) -> None:
    n = src.numel()
    whole = n - n % SIGMOID_ALIGN
    for a in range(0, whole, SIGMOID_PIECE):
        b = min(whole, a + SIGMOID_PIECE)
        torch.sigmoid(src[a:b], out=dst[a:b])
    if whole < n:
        pad = src.new_zeros(SIGMOID_ALIGN)
        pad[: n - whole] = src[whole:]
        dst[whole:] = torch.sigmoid(pad, out=pad)[: n - whole]


#: Elements per call of torch.sigmoid in :func:`_sigmoid_into`: a multiple of SIGMOID_ALIGN below
#: ATen's grain size (32,768), under which an elementwise kernel runs on the calling thread, unsplit.
SIGMOID_PIECE = 32_704
#: Pieces are multiples of this many elements: whole vectors (2 x 16 floats with AVX-512) leave no scalar tail.
SIGMOID_ALIGN = 64


class ChainRule(torch.nn.Module):
    """Conditional logits (..., K) -> unconditional probabilities (..., K) for one graph.

    Holds no weights: the graph's structure lives in non-persistent buffers.
    Traceable, exportable and, with a TorchScript-compatible combine rule,
    scriptable. Half-precision logits are computed in float32; outputs are
    float32 then.
    """

    def __init__(self, graph: LabelGraph, combine: Union[str, CombineRule] = "product") -> None:
        super().__init__()
        self.rule = _resolve(combine)
        self.combine = combine if isinstance(combine, str) else getattr(combine, "__name__", "custom")
        # The built-in rules also have an exact probability-space form (cheaper than log space).
        self.mode = 1 if self.rule is product_rule else 2 if self.rule is min_rule else 0
        self.num_labels = len(graph)
        self.levels = _Levels(len(graph), graph.parent_groups)

    def extra_repr(self) -> str:
        return f"labels={self.num_labels}, groups={len(self.levels.widths)}, combine={self.combine!r}"

    def _check(self, logits: Tensor) -> None:
        if logits.shape[-1] != self.num_labels:
            raise ValueError(f"chain rule expects logits with {self.num_labels} columns, got shape {logits.shape}")

    @torch.jit.export
    def log_forward(self, logits: Tensor) -> Tuple[Tensor, Tensor]:
        """(log p, log(1 - p)) of the unconditional probabilities, each (..., K)."""
        self._check(logits)
        x = _float(logits)
        lv = self.levels
        log_cond = lv.rows(F.logsigmoid(x))
        log_cond_1m = lv.rows(F.logsigmoid(-x))
        log_p = log_cond.clone()
        log_1mp = log_cond_1m.clone()
        for i in range(len(lv.widths)):
            a, b = lv.start[i], lv.start[i + 1]
            parent_log_p = lv.sources(log_p, i).permute(2, 0, 1)  # (R, L, W): the rule's layout
            parent_log_1mp = lv.sources(log_1mp, i).permute(2, 0, 1)
            log_a, log_1ma = self.rule(parent_log_p, parent_log_1mp)
            log_a, log_1ma = log_a.t(), log_1ma.t()
            new = log_a + log_cond[a:b]
            # 1 - a*c = (1 - a) + a*(1 - c)
            new_1m = torch.logaddexp(log_1ma, log_a + log_cond_1m[a:b])
            # Coherence whatever the rule and the rounding: p(child) <= min p(parent).
            bound = parent_log_p.amin(-1).t()
            bound_1m = parent_log_1mp.amax(-1).t()
            # In place: autograd saved only gathered copies, never these buffers.
            log_p[a:b] = torch.where(new <= bound, new, bound)
            log_1mp[a:b] = torch.where(new_1m >= bound_1m, new_1m, bound_1m)
        return lv.values(log_p, x), lv.values(log_1mp, x)

    def forward(self, logits: Tensor) -> Tensor:
        """Unconditional probabilities (..., K); p(child) <= p(parent) on every edge."""
        lv = self.levels
        if self.mode == 0:
            log_p, _ = self.log_forward(logits)
            p = lv.rows(torch.exp(log_p))
            # exp is not guaranteed monotone across vectorised code paths; re-clamp in
            # probability space so the invariant holds for the returned floats.
            for i in range(len(lv.widths)):
                a, b = lv.start[i], lv.start[i + 1]
                bound = lv.sources(p, i).amin(1)
                p[a:b] = torch.where(p[a:b] <= bound, p[a:b], bound)
            return lv.values(p, log_p)
        self._check(logits)
        x = _float(logits)
        # Products of numbers in [0, 1] never exceed a factor, and rounding is
        # monotone: p(child) <= p(parent) holds exactly, with no clamp.
        return lv.values(lv.fold(lv.rows(_sigmoid(x)), self.mode), x)


#: Values per chunk when a function below runs a module over a large batch (keeps buffers in cache).
CHUNK_ELEMENTS = 1 << 17
#: Fewest rows per chunk (bounds the per-chunk Python overhead on wide hierarchies).
CHUNK_MIN_ROWS = 64


def in_chunks(module: Callable[[Tensor], Tensor], values: Tensor) -> Tensor:
    """``module(values)`` for a row-wise module (..., K) -> (..., K'), over row chunks when large.

    Without autograd, a large batch runs in chunks of about
    :data:`CHUNK_ELEMENTS` values written into one output, so each chunk's
    intermediates stay in cache and are reused; each row's result is what one
    call gives.
    """
    k = max(values.shape[-1], 1)
    rows = values.numel() // k
    step = max(CHUNK_MIN_ROWS, CHUNK_ELEMENTS // k)
    if rows <= step or (torch.is_grad_enabled() and values.requires_grad):
        return module(values)
    flat = values.reshape(rows, values.shape[-1])
    first = module(flat[:step])
    out = torch.empty((rows, first.shape[-1]), dtype=first.dtype, device=first.device)
    out[:step] = first
    for start in range(step, rows, step):
        out[start : start + step] = module(flat[start : start + step])
    return out.reshape(list(values.shape[:-1]) + [first.shape[-1]])


@functools.lru_cache(maxsize=64)
def _chain_rule_module(graph: LabelGraph, rule: CombineRule, device: torch.device) -> ChainRule:
    return ChainRule(graph, rule).to(device)


def _check_width(logits: Tensor, graph: LabelGraph) -> None:
    if logits.shape[-1] != len(graph):
        raise ConfigError(
            f"chain rule: logits have {logits.shape[-1]} columns but the hierarchy has {len(graph)} labels; "
            "the model head and the hierarchy must match"
        )


def _module_for(logits: Tensor, graph: LabelGraph, combine: Union[str, CombineRule]) -> ChainRule:
    _check_width(logits, graph)
    return _chain_rule_module(graph, _resolve(combine), logits.device)


def log_chain_rule(
    logits: Tensor, graph: LabelGraph, combine: Union[str, CombineRule] = "product"
) -> Tuple[Tensor, Tensor]:
    """(log p, log(1 - p)) of the unconditional probabilities for conditional logits (..., K)."""
    return _module_for(logits, graph, combine).log_forward(logits)


def chain_rule(
    logits: Tensor, graph: LabelGraph, combine: Union[str, CombineRule] = "product", *, out: Optional[Tensor] = None
) -> Tensor:
    """Unconditional probabilities (..., K) for conditional logits (..., K).

    ``out``: without autograd and with a built-in rule, a float tensor shaped like ``logits``
    (``logits`` itself, when they are no longer needed) to write the probabilities into.
    """
    module = _module_for(logits, graph, combine)
    inference = not (torch.is_grad_enabled() and logits.requires_grad)
    if module.mode and inference:  # _module_for checked the width
        return module.levels.infer(_float(logits), module.mode, out)
    result = in_chunks(module, logits)
    if out is None:
        return result
    if inference:  # a custom rule: its log-space module, then a copy
        return out.copy_(result)
    raise ValueError("chain_rule(out=...) is for inference: logits that require grad get a new tensor; drop out=")


# -------------------------------------------------------------------- losses
def _weighted_mean(loss: Tensor, weights: Tensor) -> Tensor:
    """sum(w * loss) / max(sum(w), LOSS_EPS); zero-weight entries never reach the sum."""
    if loss.shape != weights.shape:
        raise ValueError(f"loss weights have shape {tuple(weights.shape)}, expected {tuple(loss.shape)}")
    w = weights.to(loss.dtype)
    loss = torch.where(w > 0, loss, torch.zeros_like(loss))
    return (loss * w).sum() / w.sum().clamp_min(LOSS_EPS)


@functools.lru_cache(maxsize=64)
def _path_counts(graph: LabelGraph, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Sparse (K, K): entry [i, a] the number of paths from label a down to label i (1 on the diagonal).

    Under the product rule ``log p_i = log s_i + sum over parents q of log p_q``, which unrolls to
    ``log p_i = sum over a of paths(a -> i) * log s_a``: one sparse product of the log-sigmoids.
    """
    import scipy.sparse as sp

    k = len(graph)
    edges = graph.edge_indices
    one_step = sp.csr_matrix((np.ones(len(edges)), (edges[:, 1], edges[:, 0])), shape=(k, k))  # [child, parent]
    counts = sp.identity(k, format="csr")
    for _ in range(graph.max_depth):  # paths of up to max_depth edges
        counts = sp.identity(k, format="csr") + one_step @ counts
    coo = counts.tocoo()
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.from_numpy(coo.data), (k, k), check_invariants=True).to(device=device, dtype=dtype).coalesce()


def _product_log_probs(logits: Tensor, graph: LabelGraph) -> Tuple[Tensor, Tensor]:
    """(log p, log(1 - p)) under the product rule, for a loss: log p as one sparse product, no level walk.

    The same probabilities as :meth:`ChainRule.log_forward` with ``product``, to rounding; for
    training, not for predictions (the sums run in another order, so a child's log p may exceed
    its parent's in the last bit). Computed in float64, returned in the logits' float type:
    log p of a confident path (logits of 100 give log p = -4e-44) stays exact, and so does
    log(1 - p) = ``log1mexp(log p)``, and its gradient 1 / log p stays finite while
    log p < -:data:`NEAR_ONE`. Nearer 1 (every logit on the label's paths above about 620) the
    value is log(1 - s) of the label's own conditional, the largest term of 1 - p, and so is
    the gradient. Finite, with finite gradients, for finite logits.
    """
    _check_width(logits, graph)
    x = _float(logits)
    flat = x.reshape(-1, x.shape[-1]).double()
    log_s = F.logsigmoid(flat)
    log_p = torch.sparse.mm(_path_counts(graph, x.device, torch.float64), log_s.t()).t()
    normal = log_p < -NEAR_ONE
    safe = torch.where(normal, log_p, torch.full_like(log_p, -1.0))  # no inf * 0 from the branch not taken
    log_1mp = torch.where(normal, log1mexp(safe), log_s - flat)  # log_s - x = logsigmoid(-x) = log(1 - s)
    return log_p.to(x.dtype).reshape(x.shape), log_1mp.to(x.dtype).reshape(x.shape)


def unconditional_bce(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor,
    graph: LabelGraph,
    combine: Union[str, CombineRule] = "product",
) -> Tensor:
    """Stage-2 loss: weighted BCE on the chain-rule probabilities, in log space.

    ``-(t log p + (1 - t) log(1 - p))`` per entry, reduced as
    ``sum(w * loss) / max(sum(w), LOSS_EPS)``. Finite, with finite gradients,
    for any finite logits. The product rule runs as one sparse product
    (:func:`_product_log_probs`); other rules walk the levels.
    """
    if _resolve(combine) is product_rule:
        log_p, log_1mp = _product_log_probs(logits, graph)
    else:
        log_p, log_1mp = log_chain_rule(logits, graph, combine)
    t = targets.to(log_p.dtype)
    return _weighted_mean(-(t * log_p + (1 - t) * log_1mp), weights)


def masked_bce_with_logits(logits: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """Stage-1 loss: weighted BCE on the conditional logits (weights include the conditional mask)."""
    x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    loss = F.binary_cross_entropy_with_logits(x, targets.to(x.dtype), reduction="none")
    return _weighted_mean(loss, weights)


def multiclass_ce(logits3: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """U-MultiClass loss: weighted cross-entropy over 3 classes per label.

    ``logits3`` is (..., K, 3); ``targets`` (..., K) hold class indices as
    floats (0 negative, 1 positive, 2 uncertain); same reduction as the BCE losses.
    """
    x = logits3.float() if logits3.dtype in (torch.float16, torch.bfloat16) else logits3
    classes = targets.to(torch.long)
    loss = F.cross_entropy(x.reshape(-1, 3), classes.reshape(-1), reduction="none").reshape(classes.shape)
    return _weighted_mean(loss, weights)

"""Chain-rule inference and the losses of conditional training.

A conditionally trained head outputs, per label k, a logit of
p(k | parents of k positive). The unconditional probability is

    p(k) = p(k | parents) * p(parents),

where p(parents), the probability that all parents are positive, comes from a
combine rule: ``"product"`` assumes the parents independent, ``"min"`` takes
the upper bound min_i p(parent_i). Either way p(child) <= p(parent) on every
edge, and :func:`chain_rule` guarantees it exactly in floating point too.

Everything runs in log space, level by level over the DAG (a level holds the
labels whose longest path from a root has the same length), so the loops are
over a fixed structure, never over samples. For a U-MultiClass head pass
``logits3[..., 1] - logits3[..., 0]`` as the logits.
"""

# No `from __future__ import annotations`: TorchScript needs real annotations.
import functools
import math
from collections.abc import Callable
from typing import List, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hmlc.errors import ConfigError
from hmlc.hierarchy.graph import LabelGraph

__all__ = [
    "COMBINE_RULES",
    "CombineRule",
    "register_builtin_combine_rules",
    "log1mexp",
    "log_chain_rule",
    "chain_rule",
    "ChainRule",
    "unconditional_bce",
    "masked_bce_with_logits",
    "multiclass_ce",
]

#: Smallest denominator of the weighted-mean reduction of the losses.
LOSS_EPS = 1e-8

CombineRule = Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]]
"""``rule(log_p, log_1mp)`` -> ``(log p(all parents positive), log(1 - that))``.

Inputs have shape (..., L, P): for L children, their P parents' log p and
log(1 - p). Children with fewer than P parents are padded with a certainly
positive parent (log p = 0, log(1 - p) = -inf), which a rule must treat as
neutral (it is, for any rule estimating "all parents positive"). Rules must be
TorchScript-compatible for :class:`ChainRule` to be scriptable.
"""


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x <= 0, accurate over the whole range (Maechler 2012)."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


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


def _levels(graph: LabelGraph) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """Non-root labels grouped by depth: child indices (M,), padded parent indices (M, P), offsets, widths."""
    k = len(graph)
    by_depth: dict[int, list[int]] = {}
    for label in graph.topological_order:
        d = graph.depth(label)
        if d:
            by_depth.setdefault(d, []).append(graph.index(label))
    width_max = max((len(p) for p in graph.parent_indices), default=0)
    children: list[int] = []
    offsets, widths = [0], []
    for d in sorted(by_depth):
        level = sorted(by_depth[d])
        children += level
        offsets.append(len(children))
        widths.append(max(len(graph.parent_indices[c]) for c in level))
    parents = np.full((len(children), max(width_max, 1)), k, dtype=np.int64)  # k = the padding column
    for row, c in enumerate(children):
        ps = graph.parent_indices[c]
        parents[row, : len(ps)] = ps
    return np.asarray(children, dtype=np.int64), parents, offsets, widths


class ChainRule(torch.nn.Module):
    """Conditional logits (..., K) -> unconditional probabilities (..., K) for one graph.

    The graph structure is held in non-persistent buffers (they follow
    ``.to(device)`` and stay out of ``state_dict``). Traceable, exportable and,
    with a TorchScript-compatible combine rule, scriptable. Half-precision
    logits are computed in float32; outputs are float32 then.
    """

    offsets: List[int]
    widths: List[int]

    def __init__(self, graph: LabelGraph, combine: Union[str, CombineRule] = "product") -> None:
        super().__init__()
        self.rule = _resolve(combine)
        self.combine = combine if isinstance(combine, str) else getattr(combine, "__name__", "custom")
        self.num_labels = len(graph)
        children, parents, offsets, widths = _levels(graph)
        self.register_buffer("child_index", torch.from_numpy(children), persistent=False)
        self.register_buffer("parent_index", torch.from_numpy(parents), persistent=False)
        self.offsets = offsets
        self.widths = widths

    def extra_repr(self) -> str:
        return f"labels={self.num_labels}, levels={len(self.widths)}, combine={self.combine!r}"

    def _gather(self, values: Tensor, index: Tensor) -> Tensor:
        """values (..., K+1) at index (L, P) -> (..., L, P)."""
        shape = list(values.shape[:-1]) + [index.shape[0], index.shape[1]]
        return values.index_select(-1, index.reshape(-1)).reshape(shape)

    @torch.jit.export
    def log_forward(self, logits: Tensor) -> Tuple[Tensor, Tensor]:
        """(log p, log(1 - p)) of the unconditional probabilities, each (..., K)."""
        if logits.shape[-1] != self.num_labels:
            raise ValueError(f"chain rule expects logits with {self.num_labels} columns, got shape {logits.shape}")
        x = logits
        if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
            x = x.float()
        log_cond = F.logsigmoid(x)
        log_cond_1m = F.logsigmoid(-x)
        pad = list(x.shape[:-1]) + [1]
        log_p = torch.cat([log_cond, torch.zeros(pad, dtype=x.dtype, device=x.device)], -1)
        log_1mp = torch.cat([log_cond_1m, torch.full(pad, -math.inf, dtype=x.dtype, device=x.device)], -1)
        for i in range(len(self.widths)):
            child = self.child_index[self.offsets[i] : self.offsets[i + 1]]
            parents = self.parent_index[self.offsets[i] : self.offsets[i + 1], : self.widths[i]]
            parent_log_p = self._gather(log_p, parents)
            parent_log_1mp = self._gather(log_1mp, parents)
            log_a, log_1ma = self.rule(parent_log_p, parent_log_1mp)
            new = log_a + log_cond.index_select(-1, child)
            # 1 - a*c = (1 - a) + a*(1 - c)
            new_1m = torch.logaddexp(log_1ma, log_a + log_cond_1m.index_select(-1, child))
            # Coherence whatever the rule and the rounding: p(child) <= min p(parent).
            bound = parent_log_p.amin(-1)
            new = torch.where(new <= bound, new, bound)
            bound_1m = parent_log_1mp.amax(-1)
            new_1m = torch.where(new_1m >= bound_1m, new_1m, bound_1m)
            log_p = log_p.index_copy(-1, child, new)
            log_1mp = log_1mp.index_copy(-1, child, new_1m)
        return log_p[..., : self.num_labels], log_1mp[..., : self.num_labels]

    def forward(self, logits: Tensor) -> Tensor:
        """Unconditional probabilities (..., K); p(child) <= p(parent) on every edge."""
        log_p, _ = self.log_forward(logits)
        p = torch.exp(log_p)
        # exp is not guaranteed monotone across vectorised code paths; re-clamp in
        # probability space so the invariant holds for the returned floats.
        pad = list(p.shape[:-1]) + [1]
        p = torch.cat([p, torch.ones(pad, dtype=p.dtype, device=p.device)], -1)
        for i in range(len(self.widths)):
            child = self.child_index[self.offsets[i] : self.offsets[i + 1]]
            parents = self.parent_index[self.offsets[i] : self.offsets[i + 1], : self.widths[i]]
            bound = self._gather(p, parents).amin(-1)
            value = p.index_select(-1, child)
            p = p.index_copy(-1, child, torch.where(value <= bound, value, bound))
        return p[..., : self.num_labels]


@functools.lru_cache(maxsize=64)
def _chain_rule_module(graph: LabelGraph, rule: CombineRule, device: torch.device) -> ChainRule:
    return ChainRule(graph, rule).to(device)


def _module_for(logits: Tensor, graph: LabelGraph, combine: Union[str, CombineRule]) -> ChainRule:
    if logits.shape[-1] != len(graph):
        raise ConfigError(
            f"chain rule: logits have {logits.shape[-1]} columns but the hierarchy has {len(graph)} labels; "
            "the model head and the hierarchy must match"
        )
    return _chain_rule_module(graph, _resolve(combine), logits.device)


def log_chain_rule(
    logits: Tensor, graph: LabelGraph, combine: Union[str, CombineRule] = "product"
) -> Tuple[Tensor, Tensor]:
    """(log p, log(1 - p)) of the unconditional probabilities for conditional logits (..., K)."""
    return _module_for(logits, graph, combine).log_forward(logits)


def chain_rule(logits: Tensor, graph: LabelGraph, combine: Union[str, CombineRule] = "product") -> Tensor:
    """Unconditional probabilities (..., K) for conditional logits (..., K)."""
    return _module_for(logits, graph, combine)(logits)


# -------------------------------------------------------------------- losses
def _weighted_mean(loss: Tensor, weights: Tensor) -> Tensor:
    """sum(w * loss) / max(sum(w), LOSS_EPS); zero-weight entries never reach the sum."""
    if loss.shape != weights.shape:
        raise ValueError(f"loss weights have shape {tuple(weights.shape)}, expected {tuple(loss.shape)}")
    w = weights.to(loss.dtype)
    loss = torch.where(w > 0, loss, torch.zeros_like(loss))
    return (loss * w).sum() / w.sum().clamp_min(LOSS_EPS)


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
    for any finite logits.
    """
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

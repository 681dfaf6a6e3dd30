"""The max-constraint module and MCLoss of C-HMCNN (Giunchiglia & Lukasiewicz, NeurIPS 2020).

A head trained this way outputs one logit per label, read as f_A = sigmoid(x_A).
The max-constraint module (MCM) makes the outputs coherent by construction:

    h_A = max_{B in D_A ∪ {A}} f_B            (D_A: the descendants of A)

so h_parent >= h_child on every edge, exactly in floating point (max is exact).
MCLoss trains the network through the MCM, per sample and label A:

    -[ y_A ln(max_{B in D_A ∪ {A}} y_B f_B) + (1 - y_A) ln(1 - h_A) ]

Both maxima are propagated over the DAG bottom-up, level by level (a label's
value becomes the max of its own and its children's), never as a (B, K, K)
tensor. The loss runs in log space: ln(1 - h_A) = logsigmoid(-max x_B) since
sigmoid is increasing, and ln(y_B f_B) = ln y_B + logsigmoid(x_B), so it is
finite for any finite logits. A descendant whose loss weight is zero (an
ignored label) is never counted as positive evidence.
"""

# No `from __future__ import annotations`: TorchScript needs real annotations.
import functools
import math

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from hmlc import fold_kernel
from hmlc.chain_rule import _float, _Levels, _sigmoid, _weighted_mean, in_chunks
from hmlc.errors import ConfigError
from hmlc.hierarchy.graph import LabelGraph

__all__ = ["MaxConstraint", "max_constraint", "mc_loss"]


class MaxConstraint(torch.nn.Module):
    """Logits (..., K) -> coherent probabilities h_A = max over A and its descendants of sigmoid(x_B).

    Holds no weights: the graph's structure lives in non-persistent buffers.
    Traceable, scriptable and exportable to ONNX. Half-precision logits are
    computed in float32.
    """

    def __init__(self, graph: LabelGraph) -> None:
        super().__init__()
        self.num_labels = len(graph)
        self.levels = _Levels(len(graph), graph.child_groups)

    def extra_repr(self) -> str:
        return f"labels={self.num_labels}, groups={len(self.levels.widths)}"

    @torch.jit.export
    def propagate(self, values: Tensor) -> Tensor:
        """(..., K) -> (..., K): each label's max over itself and its descendants."""
        if values.shape[-1] != self.num_labels:
            raise ValueError(f"max constraint expects {self.num_labels} columns, got shape {values.shape}")
        return self.levels.values(self.levels.fold(self.levels.rows(values), 3), values)

    def forward(self, logits: Tensor) -> Tensor:
        """Coherent probabilities (..., K): h_parent >= h_child on every edge."""
        return self.propagate(_sigmoid(_float(logits)))


@functools.lru_cache(maxsize=64)
def _module(graph: LabelGraph, device: torch.device) -> MaxConstraint:
    return MaxConstraint(graph).to(device)


def _module_for(values: Tensor, graph: LabelGraph) -> MaxConstraint:
    if values.shape[-1] != len(graph):
        raise ConfigError(
            f"max constraint: outputs have {values.shape[-1]} columns but the hierarchy has {len(graph)} labels; "
            "the model head and the hierarchy must match"
        )
    return _module(graph, values.device)


def max_constraint(logits: Tensor, graph: LabelGraph, *, out: Optional[Tensor] = None) -> Tensor:
    """MCM probabilities (..., K) of logits (..., K): max of sigmoid over each label and its descendants.

    ``out``: without autograd, a float tensor shaped like ``logits`` (``logits`` itself, when
    they are no longer needed) to write the probabilities into.
    """
    module = _module_for(logits, graph)
    if not (torch.is_grad_enabled() and logits.requires_grad):
        return module.levels.infer(_float(logits), 3, out)
    if out is not None:
        raise ValueError("max_constraint(out=...) is for inference: logits that require grad get a new tensor; drop out=")
    return in_chunks(module, logits)


def _winners(levels: _Levels, values: Tensor) -> Tensor:
    """Int64 (N, K), contiguous, of values (N, K): per label, the column holding the max over it and its descendants.

    The same level-wise fold as :meth:`MaxConstraint.propagate`, carrying the argmax
    along (a label keeps its own value on a tie, else the first child reaching the max),
    without autograd. ``values.gather(1, winners)`` is then the propagated max exactly;
    the index is made row-major, since a gather at a transposed index, and the
    scatter-add of its backward, are 2-3x slower. With numba on the CPU the walk runs
    compiled (:func:`hmlc.fold_kernel.winners`): the same winners (timings: docs/concepts.md).
    """
    if values.device.type == "cpu" and fold_kernel.available():  # compiled: the same winners
        with torch.no_grad():
            # One copy, contiguous: the walk writes into it.
            flat = values.reshape(-1, levels.num_labels).clone(memory_format=torch.contiguous_format)
            arg = fold_kernel.winners(flat.numpy(), levels.program(), torch.get_num_threads())
            return torch.from_numpy(arg).reshape(values.shape)
    with torch.no_grad():
        rows = levels.rows(values)
        arg = levels.order.to(torch.int32).unsqueeze(1).expand(-1, rows.shape[1]).contiguous()
        sources = levels.split_sources()
        for i in range(len(levels.widths)):
            got = rows.index_select(0, sources[i])
            got_arg = arg.index_select(0, sources[i])
            if levels.widths[i] > 1:
                got, best = got.reshape(-1, levels.widths[i], rows.shape[1]).max(1)
                got_arg = got_arg.reshape(-1, levels.widths[i], rows.shape[1]).gather(1, best.unsqueeze(1)).squeeze(1)
            own, own_arg = rows[levels.start[i] : levels.start[i + 1]], arg[levels.start[i] : levels.start[i + 1]]
            torch.where(got > own, got_arg, own_arg, out=own_arg)
            torch.maximum(own, got, out=own)
        return levels.values(arg, values).to(torch.int64, memory_format=torch.contiguous_format)


def mc_loss(logits: Tensor, targets: Tensor, weights: Tensor, graph: LabelGraph) -> Tensor:
    """MCLoss on logits (..., K), reduced like the other losses: sum(w * loss) / max(sum(w), eps).

    ``targets`` may be soft (label smoothing): y_B f_B is then taken literally,
    ln(y_B f_B) = ln y_B + ln f_B. Finite, with finite gradients, for finite logits.
    """
    module = _module_for(logits, graph)
    x = _float(logits)
    t = targets.to(x.dtype)
    w = weights.to(x.dtype)
    k = module.num_labels
    # ln max_B (y_B f_B) over known positives B; -inf where there is none.
    evidence = (t > 0) & (w > 0)
    log_f = F.logsigmoid(x)
    known_yf = torch.where(evidence, torch.log(torch.where(evidence, t, torch.ones_like(t))) + log_f, -math.inf)
    # Both maxima in one fold over the DAG: max_B x_B and max_B ln(y_B f_B), stacked along rows;
    # each is then a gather at its winners (the backward: one scatter-add, not a pass back through every level).
    flat_x, flat_known = x.reshape(-1, k), known_yf.reshape(-1, k)
    win_x, win_pos = _winners(module.levels, torch.cat([flat_x, flat_known]).detach()).split(flat_x.shape[0])
    # ln(1 - max_B f_B) = logsigmoid(-x_W) at the winner W of max_B x_B (sigmoid is increasing), and
    # logsigmoid(-x) = logsigmoid(x) - x: one logsigmoid for both terms.
    log_not = (log_f.reshape(-1, k) - flat_x).gather(1, win_x).reshape(x.shape)
    log_pos = flat_known.gather(1, win_pos).reshape(x.shape)
    # Entries with y_A > 0 and weight 0 are masked out by the reduction anyway.
    positive = torch.where(evidence, t * log_pos, torch.zeros_like(x))
    return _weighted_mean(-(positive + (1 - t) * log_not), weights)

"""Uncertainty policies: how raw label codes become loss targets and weights.

A policy handles one label's codes (1 positive, 0 negative, -1 uncertain;
blanks are resolved by :func:`encode_labels` before the policy sees them) and
returns float32 ``(targets, weights)``. A weight of 0 keeps a sample out of
that label's loss. The built-ins follow Pham et al. 2019:

=============  ===================================================
``u-ignore``     uncertain samples are masked out (weight 0)
``u-zeros``      uncertain -> 0
``u-ones``       uncertain -> 1
``u-zeros-lsr``  uncertain -> u ~ U(low, high), default U(0, 0.3)
``u-ones-lsr``   uncertain -> u ~ U(low, high), default U(0.55, 0.85)
``u-multiclass`` 3-way softmax head: class 0 negative, 1 positive, 2 uncertain
=============  ===================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from hmlc.errors import ConfigError, DataError, PluginError

if TYPE_CHECKING:
    import torch

__all__ = [
    "UncertaintyPolicy",
    "IgnorePolicy",
    "ConstantPolicy",
    "LSRPolicy",
    "MultiClassPolicy",
    "BUILTIN_POLICIES",
    "register_builtin_policies",
    "encode_labels",
    "is_multiclass",
    "multiclass_probability",
]

BlankMode = Literal["negative", "ignore"]
BLANK_MODES: tuple[str, ...] = ("negative", "ignore")


class UncertaintyPolicy(ABC):
    """Turns one label's codes into loss targets and weights.

    ``multiclass`` policies produce class indices (0 negative, 1 positive,
    2 uncertain) as float targets for a 3-way softmax head; binary policies
    produce targets in [0, 1] for a sigmoid head.
    """

    name: str = ""
    multiclass: bool = False
    #: True when ``encode`` draws nothing from ``rng`` and maps each code on its own: then
    #: :func:`encode_labels` hands it the codes of all its labels at once, as an (N, M) array
    #: (the Gene Ontology's 4,000 labels in one call instead of 4,000), and expects (N, M) back.
    elementwise: ClassVar[bool] = False

    @abstractmethod
    def encode(self, codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Float32 ``(targets, weights)`` of shape (N,) for codes (N,) in {1, 0, -1}."""

    @property
    def params(self) -> dict[str, Any]:
        """Parameters that rebuild this policy through its registered factory."""
        return {}


@dataclass(frozen=True)
class IgnorePolicy(UncertaintyPolicy):
    """U-Ignore: uncertain samples do not count for the label."""

    name: str = "u-ignore"
    elementwise: ClassVar[bool] = True

    def encode(self, codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        targets = (codes == 1).astype(np.float32)
        weights = (codes != -1).astype(np.float32)
        return targets, weights


@dataclass(frozen=True)
class ConstantPolicy(UncertaintyPolicy):
    """U-Zeros / U-Ones: uncertain -> a fixed target ``value``."""

    value: float
    name: str = "u-constant"
    elementwise: ClassVar[bool] = True

    def encode(self, codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        targets = np.where(codes == -1, self.value, codes == 1).astype(np.float32)
        return targets, np.ones(codes.shape, dtype=np.float32)


@dataclass(frozen=True)
class LSRPolicy(UncertaintyPolicy):
    """U-Zeros+LSR / U-Ones+LSR: uncertain -> a draw from U(low, high)."""

    low: float
    high: float
    name: str = "u-lsr"

    def __post_init__(self) -> None:
        try:
            low, high = float(self.low), float(self.high)
        except (TypeError, ValueError):
            raise ConfigError(
                f"uncertainty policy {self.name!r}: low and high must be numbers, got low={self.low!r}, high={self.high!r}"
            ) from None
        if not 0.0 <= low <= high <= 1.0:
            raise ConfigError(
                f"uncertainty policy {self.name!r}: need 0 <= low <= high <= 1, got low={low}, high={high}"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def encode(self, codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # One draw per sample, uncertain or not, so a sample's draw depends only
        # on its position and the stream, not on the other samples' codes.
        draws = rng.uniform(self.low, self.high, size=codes.shape)
        # Casting to float32 may round a draw just past an end; keep it inside.
        draws = np.clip(draws.astype(np.float32), np.float32(self.low), np.float32(self.high))
        targets = np.where(codes == -1, draws, codes == 1).astype(np.float32)
        return targets, np.ones(codes.shape, dtype=np.float32)

    @property
    def params(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True)
class MultiClassPolicy(UncertaintyPolicy):
    """U-MultiClass: targets are classes 0 negative, 1 positive, 2 uncertain."""

    name: str = "u-multiclass"
    multiclass: ClassVar[bool] = True
    elementwise: ClassVar[bool] = True

    def encode(self, codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        targets = np.select([codes == 1, codes == -1], [1.0, 2.0], default=0.0).astype(np.float32)
        return targets, np.ones(codes.shape, dtype=np.float32)


# ------------------------------------------------------------------ registry
PolicyFactory = Callable[..., UncertaintyPolicy]


def _factory(
    name: str, build: Callable[..., UncertaintyPolicy], defaults: Mapping[str, Any], description: str
) -> PolicyFactory:
    def factory(**params: Any) -> UncertaintyPolicy:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            takes = ", ".join(defaults) if defaults else "no parameters"
            raise ConfigError(f"uncertainty policy {name!r} has no parameter {', '.join(unknown)}; it takes {takes}")
        return build(name=name, **{**defaults, **params})

    factory.__name__ = name.replace("-", "_")
    factory.__doc__ = f"{description}. Builds the {name!r} policy" + (
        f" (parameters: {dict(defaults)})." if defaults else "."
    )
    factory.description = description  # type: ignore[attr-defined]  # what `hmlc list policies` shows
    return factory


BUILTIN_POLICIES: dict[str, PolicyFactory] = {
    "u-ignore": _factory("u-ignore", IgnorePolicy, {}, "Uncertain labels are left out of the loss (U-Ignore)"),
    "u-zeros": _factory(
        "u-zeros", lambda name: ConstantPolicy(0.0, name=name), {}, "Uncertain labels count as negative (U-Zeros)"
    ),
    "u-ones": _factory(
        "u-ones", lambda name: ConstantPolicy(1.0, name=name), {}, "Uncertain labels count as positive (U-Ones)"
    ),
    "u-zeros-lsr": _factory(
        "u-zeros-lsr", LSRPolicy, {"low": 0.0, "high": 0.3},
        "Uncertain labels get a soft target drawn from U(0, 0.3) (U-Zeros+LSR)",
    ),
    "u-ones-lsr": _factory(
        "u-ones-lsr", LSRPolicy, {"low": 0.55, "high": 0.85},
        "Uncertain labels get a soft target drawn from U(0.55, 0.85) (U-Ones+LSR)",
    ),
    "u-multiclass": _factory(
        "u-multiclass", MultiClassPolicy, {},
        "Negative, positive and uncertain as three classes of a softmax head (U-MultiClass)",
    ),
}


def register_builtin_policies(register: Callable[[str, PolicyFactory], None]) -> None:
    """Register each built-in policy factory (``factory(**params) -> UncertaintyPolicy``)."""
    for name, factory in BUILTIN_POLICIES.items():
        register(name, factory)


# ------------------------------------------------------------------ encoding
def is_multiclass(policies: Mapping[str, UncertaintyPolicy]) -> bool:
    """True when every policy is multi-class, False when none is.

    A model has one head kind, so U-MultiClass is all labels or none; a mix
    raises :class:`ConfigError`.
    """
    multi = [label for label, p in policies.items() if p.multiclass]
    if multi and len(multi) != len(policies):
        binary = [label for label, p in policies.items() if not p.multiclass]
        raise ConfigError(
            f"uncertainty policies mix multi-class ({', '.join(multi[:5])}) and binary ({', '.join(binary[:5])}) "
            "labels; use u-multiclass for all labels or for none"
        )
    return bool(multi)


def encode_labels(
    codes: np.ndarray,
    labels: Sequence[str],
    policies: Mapping[str, UncertaintyPolicy],
    blank: BlankMode,
    seed: int,
    epoch: int = 0,
    redraw: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Float32 ``(targets, weights)`` of shape (N, K) for raw codes (N, K).

    ``blank="negative"`` reads a blank (NaN) as 0 before the policy;
    ``blank="ignore"`` gives blanks weight 0 (target 0). Random draws (LSR)
    come from one stream per label seeded by ``(seed, label index, epoch)``
    with ``redraw`` and ``(seed, label index)`` without, so they are
    reproducible, and fixed across epochs unless ``redraw``.
    """
    try:
        codes = np.asarray(codes, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("label codes must be numbers (1, 0, -1) or blank (NaN)") from None
    labels = list(labels)
    if codes.ndim != 2 or codes.shape[1] != len(labels):
        raise DataError(f"label codes must have shape (N, {len(labels)}) for {len(labels)} labels, got {codes.shape}")
    if blank not in BLANK_MODES:
        raise ConfigError(f"blank handling {blank!r} is unknown; use one of: {', '.join(BLANK_MODES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ConfigError(f"epoch must be a non-negative integer, got {epoch!r}")
    missing = [label for label in labels if label not in policies]
    if missing:
        raise ConfigError(f"no uncertainty policy for label(s) {', '.join(missing[:10])}; give one for every label")
    is_multiclass({label: policies[label] for label in labels})

    n, k = codes.shape
    blanks = np.isnan(codes)
    bad = ~blanks & (codes != 1.0) & (codes != 0.0) & (codes != -1.0)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        raise DataError(
            f"label {labels[j]!r} has code {float(codes[bad[:, j], j][0]):g}; codes must be 1, 0, -1 or blank"
        )
    resolved = np.where(blanks, 0.0, codes)
    targets = np.zeros((n, k), dtype=np.float32)
    weights = np.zeros((n, k), dtype=np.float32)
    shared: dict[Any, list[int]] = {}  # elementwise policies: their labels' columns, encoded in one call
    for j, label in enumerate(labels):
        policy = policies[label]
        if policy.elementwise:
            shared.setdefault(_policy_key(policy), []).append(j)
            continue
        rng = np.random.default_rng([int(seed), j, int(epoch) if redraw else 0])
        _encode_into(policy, resolved[:, j], rng, blanks[:, j], blank, targets, weights, j, label)
    for columns in shared.values():
        policy = policies[labels[columns[0]]]
        cols = np.asarray(columns)
        _encode_into(policy, resolved[:, cols], _NO_DRAWS, blanks[:, cols], blank, targets, weights, cols,
                     labels[columns[0]] if len(columns) == 1 else f"{labels[columns[0]]} (and {len(columns) - 1} more)")
    return targets, weights


#: The generator handed to elementwise policies (they draw nothing from it).
_NO_DRAWS = np.random.default_rng(0)


def _policy_key(policy: UncertaintyPolicy) -> Any:
    """Labels whose policies are equal share one call (frozen dataclasses compare by value)."""
    try:
        hash(policy)
    except TypeError:
        return id(policy)
    return policy


def _encode_into(
    policy: UncertaintyPolicy, codes: np.ndarray, rng: np.random.Generator, blanks: np.ndarray, blank: BlankMode,
    targets: np.ndarray, weights: np.ndarray, columns: Any, what: str,
) -> None:
    """Encode ``codes`` (one label's, or an elementwise policy's block) into ``columns`` of targets/weights."""
    t, w = policy.encode(codes, rng)
    t, w = np.asarray(t, dtype=np.float32), np.asarray(w, dtype=np.float32)
    if t.shape != codes.shape or w.shape != codes.shape:
        raise PluginError(
            f"uncertainty policy {policy.name!r} returned shapes {t.shape} and {w.shape} for label {what!r}; "
            f"expected {codes.shape} each"
        )
    if blank == "ignore":
        t = np.where(blanks, 0.0, t)
        w = np.where(blanks, 0.0, w)
    targets[:, columns] = t
    weights[:, columns] = w


def multiclass_probability(logits3: torch.Tensor) -> torch.Tensor:
    """p(positive) = p1 / (p0 + p1) from U-MultiClass logits (..., K, 3)."""
    import torch  # here: configuration checks (`hmlc prepare`) import this module without torch

    # The softmax restricted to classes 0 and 1 is sigmoid(l1 - l0); no exp overflow.
    return torch.sigmoid(logits3[..., 1] - logits3[..., 0])

"""Tiny, fast training settings shared by the engine tests."""

from __future__ import annotations

import pytest

#: ~100 images of 32x32, two CT stage-1 epochs and one head epoch: seconds on a CPU
TINY = [
    "data.params.n_train=96",
    "data.params.n_valid=48",
    "data.image_size=32",
    "train.epochs=2",
    "train.head_epochs=1",
    "train.batch_size=16",
    "train.progress=false",
    "train.deterministic=true",
    "output.tensorboard=false",
]


def sets(*overrides: str) -> list[str]:
    """``--set`` arguments for the tiny settings plus ``overrides``."""
    out: list[str] = []
    for item in [*TINY, *overrides]:
        out += ["--set", item]
    return out


@pytest.fixture
def tiny_sets():
    return sets

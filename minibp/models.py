"""Model builders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layers import Dense, get_activation
from .layers.base import Layer
from .network import Sequential


def mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    *,
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
    bias: bool = True,
) -> Sequential:
    """A fully connected network ``sizes[0] → … → sizes[-1]`` (e.g. ``[64, 256, 256, 10]``).

    Every hidden layer is ``Dense`` then ``activation`` (eq 1); the output layer is
    linear (its softmax lives in the loss). The weights are drawn from ``seed`` on
    the host, so every learning rule and backend starts from the same numbers.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"an MLP needs at least two positive layer sizes (input, output), got {sizes}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([int(seed), 0])
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        act = get_activation("identity" if last else activation)
        layers.append(Dense(n_in, n_out, gain=act.gain, rng=rng, dtype=dtype, bias=bias))
        if not last:
            layers.append(act)
    return Sequential(layers)

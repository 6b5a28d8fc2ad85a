"""The whole model: a :class:`~minibp.layers.container.Sequential` that names its layers,
holds the feedback weights a rule gives it, and runs the full feedback path.

:meth:`Network.backward` is where a learning rule enters (through
:meth:`Sequential.backward_path`): eq (4) at every weight layer, the rule's feedback
matrix for eq (2) or (3), and KP's ``B`` gradient (eq 17).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .layers.base import Array, Layer
from .layers.container import FeedbackPass, Sequential
from .rules import Rule


class Network(Sequential):
    """The whole model: a :class:`Sequential` that names its layers and runs the full feedback path."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        super().__init__(layers)
        if not self.weight_layers:
            raise ValueError("a network needs at least one layer with weights")
        counts: dict[str, int] = {}
        for layer in (layer for layer in self.walk() if layer.params or layer.buffers):  # what a checkpoint keeps
            kind = type(layer).__name__.lower()
            counts[kind] = counts.get(kind, 0) + 1
            layer.name = layer.name or f"{kind}{counts[kind]}"

    def init_feedback(self, rule: Rule, rng: np.random.Generator, example: Array | None = None) -> None:
        """Give every weight layer the feedback weights ``rule`` keeps (FA, WM, KP: a random ``B``).

        ``example``, a batch of inputs, is sent forward first (in evaluation mode, so nothing
        trained moves) so that each layer has seen the shape of its input: direct feedback
        alignment shapes its ``B`` by it."""
        if example is not None:
            self.forward(example, train=False)
        for layer in self.weight_layers:
            layer.params.pop("B", None)
        rule.init_network(self, rng)

    def backward(self, dout: Array, rule: Rule, *, train: bool = True) -> list[Array]:
        """The feedback path from the output error ``dout = ∂L/∂(output)``.

        At each weight layer: eq (4) gives the forward gradient (when ``train``),
        the rule may add ``B``'s gradient (KP, eq 17), and ``F δ_{l+1}`` (eq 2 or 3)
        is passed down. Returns ``δ`` at the output of every weight layer, input to
        output. With ``train=False`` no gradient is stored: this is how metrics compute
        backprop's ``δ`` on the same forward pass without touching training.
        """
        fb = FeedbackPass(rule, train, error=dout)
        self.backward_path(dout, fb, need_input=False)
        return [fb.deltas[id(layer)] for layer in self.weight_layers]

    def buffer_arrays(self) -> dict[str, Any]:
        """Non-trained state (batch-norm running statistics) by ``layer.key``."""
        return {f"{layer.name}.{k}": v for layer in self.walk() for k, v in layer.buffers.items()}

    def n_params(self) -> int:
        return sum(int(p.size) for layer in self.param_layers for k, p in layer.params.items() if k != "B")

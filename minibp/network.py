"""A network is a list of layers run in order: the forward path one way, the feedback path back.

:meth:`Sequential.backward` is where a learning rule enters: at every weight
layer it asks the rule for the feedback matrix ``F`` (``Wᵀ`` or ``B``) and, when
training, lets the rule add a gradient for ``B``. Layers without weights use
their exact derivatives.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .layers.activations import Activation, Identity
from .layers.base import Array, Layer, WeightLayer
from .rules import Rule


class Sequential:
    """Layers applied in order. ``weight_layers`` are listed input to output."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        self.layers = list(layers)
        if not self.weight_layers:
            raise ValueError("a network needs at least one layer with weights")
        for i, layer in enumerate(self.weight_layers):
            layer.name = layer.name or f"{type(layer).__name__.lower()}{i + 1}"

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"

    @property
    def weight_layers(self) -> list[WeightLayer]:
        return [layer for layer in self.layers if layer.has_weights]

    def init_feedback(self, rule: Rule, rng: np.random.Generator) -> None:
        """Give every weight layer the feedback weights ``rule`` keeps (FA, WM, KP: a random ``B``)."""
        for layer in self.weight_layers:
            layer.params.pop("B", None)
            rule.init_feedback(layer, rng)

    def forward(self, x: Array, train: bool = True) -> Array:
        """The forward path, eq (1) layer by layer."""
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dout: Array, rule: Rule, *, train: bool = True) -> list[Array]:
        """The feedback path from the output error ``dout = ∂L/∂(output)``.

        At each weight layer: eq (4) gives the forward gradient (when ``train``),
        the rule may add ``B``'s gradient (KP, eq 17), and ``F δ_{l+1}`` (eq 2 or 3)
        is passed down. Returns ``δ`` at the output of every weight layer, input to
        output. With ``train=False`` nothing is stored: this is how metrics compute
        backprop's ``δ`` on the same forward pass without touching training.
        """
        deltas: list[Array] = []
        g = dout
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if not layer.has_weights:
                g = layer.backward(g)  # exact local derivative, e.g. φ'(y_l) ⊙ (eqs 2-3)
                continue
            deltas.append(g)
            if train:
                layer.grads = layer.weight_grads(g)  # eq (4)
                rule.feedback_grads(layer)  # eq (17) for KP; nothing for the others
            if i == 0:
                break  # the input needs no δ
            g = layer.backward_input(g, rule.feedback_matrix(layer))  # eq (2) or (3)
        deltas.reverse()
        return deltas

    def mirror_pairs(self) -> Iterator[tuple[WeightLayer, Activation]]:
        """Each weight layer with the activation φ right after it (identity if none): the
        pair that mirror mode drives with noise (Fig 1b)."""
        for i, layer in enumerate(self.layers):
            if layer.has_weights:
                nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
                yield layer, nxt if isinstance(nxt, Activation) else Identity()

    def n_params(self) -> int:
        return sum(int(layer.params[k].size) for layer in self.weight_layers for k in ("W", "b") if k in layer.params)

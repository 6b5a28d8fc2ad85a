"""Containers: layers made of layers, which run their own part of the feedback path.

A :class:`Sequential` runs its layers in order; at every weight layer of its feedback
path it asks the learning rule for the feedback matrix ``F`` (``Wᵀ`` or ``B``) and, when
training, lets the rule add a gradient for ``B``. Every other layer uses its exact
derivative. A residual block (``residual.py``) is a container of two sequentials.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .activations import Activation, Identity
from .base import Array, Layer, WeightLayer
from .norm import BatchNorm

if TYPE_CHECKING:
    from ..rules import Rule

Deltas = dict[int, Array]  # id(weight layer) -> δ at its output


@dataclass
class FeedbackPass:
    """One pass down the feedback path: the rule, whether gradients are stored (``train``), the
    network's output error ``δ_L`` (which direct feedback alignment sends to every layer), and the
    ``δ`` found at each weight layer's output, by ``id(layer)``."""

    rule: Rule
    train: bool
    error: Array
    deltas: Deltas = field(default_factory=dict)


class Container(Layer):
    """A layer made of other layers. It runs its own feedback path, so the rule reaches
    every weight layer inside it."""

    def children(self) -> list[Layer]:
        raise NotImplementedError

    def backward_path(self, g: Array, fb: FeedbackPass, need_input: bool = True) -> Array:
        raise NotImplementedError

    def walk(self) -> Iterator[Layer]:
        """Every layer inside, depth first, in forward order."""
        for child in self.children():
            yield child
            if isinstance(child, Container):
                yield from child.walk()

    @property
    def weight_layers(self) -> list[WeightLayer]:
        """The weight layers inside, input to output."""
        return [layer for layer in self.walk() if isinstance(layer, WeightLayer)]

    @property
    def param_layers(self) -> list[Layer]:
        """Every layer that has trainable params (weight layers and batch norms)."""
        return [layer for layer in self.walk() if layer.params]

    def mirror_pairs(self) -> Iterator[tuple[WeightLayer, Activation]]:
        """Each weight layer with the activation φ right after it (identity if none): the
        pair that mirror mode drives with noise (Fig 1b). A layer whose output goes to a
        normalisation first (batch norm or synaptic scaling before the unit) is paired with the
        identity, so its mirror sees the layer's own linear drive and eq (11)'s slope factor is 1."""
        for child in self.children():
            if isinstance(child, Container):
                yield from child.mirror_pairs()

    def feeders(self, before: Layer | None = None) -> tuple[dict[int, Layer | None], Layer | None]:
        """Which layer's output each weight layer inside takes as its input, by ``id(weight layer)``
        (``before`` for the container's own input; None where the input is the network's input or a
        residual sum), and the layer whose output is the container's output."""
        raise NotImplementedError

    def mirror_input_means(self) -> dict[int, Array]:
        """For each weight layer whose input is a batch norm's output, by ``id(layer)``: that batch
        norm's shift ``β``, the mean per channel of the layer's input over a training batch (batch
        norm's output has mean ``β`` there). The weight mirror without bias-blocking adds ``W β``
        to the layer's mirror-mode input (eq 11): in a network whose layers have no bias of their
        own and whose batch norm follows the ReLU (the paper's ResNets, Section 6), it is the bias
        that the ReLU after the layer sees."""
        found, _ = self.feeders()
        return {key: layer.params["beta"] for key, layer in found.items() if isinstance(layer, BatchNorm)}


class Sequential(Container):
    """Layers applied in order. ``weight_layers`` are listed input to output."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        super().__init__()
        self.layers = list(layers)

    def children(self) -> list[Layer]:
        return self.layers

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer).replace("\n", "\n  ") for layer in self.layers)
        return f"{type(self).__name__}(\n  {inner}\n)"

    def forward(self, x: Array, train: bool = True) -> Array:
        """The forward path, eq (1) layer by layer."""
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward_path(self, g: Array, fb: FeedbackPass, need_input: bool = True) -> Array:
        """The feedback path through these layers, from ``g = ∂L/∂(output)``; returns ``∂L/∂(input)``
        (``None`` when ``need_input`` is false and the first layer has weights)."""
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if isinstance(layer, Container):
                g = layer.backward_path(g, fb, need_input or i > 0)
            elif isinstance(layer, WeightLayer):
                fb.deltas[id(layer)] = g
                if fb.train:
                    layer.grads = layer.weight_grads(g)  # eq (4)
                    fb.rule.feedback_grads(layer)  # eq (17) for KP; nothing for the others
                if i == 0 and not need_input:
                    return None  # the network's input needs no δ
                g = fb.rule.feedback(layer, g, fb.error)  # eq (2) or (3)
            else:
                g = layer.backward(g)  # exact local derivative, e.g. φ'(y_l) ⊙ (eqs 2-3)
        return g

    def feeders(self, before: Layer | None = None) -> tuple[dict[int, Layer | None], Layer | None]:
        found: dict[int, Layer | None] = {}
        prev = before  # the layer whose output is the next layer's input
        for layer in self.layers:
            if isinstance(layer, Container):
                inner, prev = layer.feeders(prev)
                found.update(inner)
            else:
                if isinstance(layer, WeightLayer):
                    found[id(layer)] = prev
                prev = layer
        return found, prev

    def mirror_pairs(self) -> Iterator[tuple[WeightLayer, Activation]]:
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Container):
                yield from layer.mirror_pairs()
            elif isinstance(layer, WeightLayer):
                nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
                yield layer, nxt if isinstance(nxt, Activation) else Identity()

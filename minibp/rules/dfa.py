"""Direct feedback alignment (Nøkland 2016): the output error goes straight to every layer.

Every other rule here carries ``δ`` down layer by layer, ``δ_l = φ'(y_l) ⊙ F_{l+1} δ_{l+1}``
(eqs 2–3). DFA replaces that chain: the error at each weight layer's input comes from the
network's output error ``e = δ_L`` through a fixed random matrix of its own,

    δ_l = φ'(y_l) ⊙ B_{l+1} e,

so no feedback synapse needs to know any forward weight, nor any layer above its own. The rule
overrides :meth:`~minibp.rules.base.Rule.feedback` (the hook every container's feedback path
calls at a weight layer) and reads the output error the feedback pass carries; layers are
unchanged. Batch norm, pooling and residual sums still pass the error on with their exact
derivatives, so in a ResNet a block's input error is its skip path's exact error plus what its
branch's first convolution receives from ``e``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..layers.dense import Dense
from .base import Array, Rule

if TYPE_CHECKING:
    from ..layers.base import WeightLayer
    from ..network import Network


@dataclass(kw_only=True)
class DirectFeedbackAlignment(Rule):
    """DFA (Nøkland 2016): ``δ_l = φ'(y_l) ⊙ B_{l+1} e`` with ``e`` the output error and each
    ``B`` fixed and random.

    Needs to know: the output error, delivered to every layer; nothing of ``W``.

    A weight layer's ``B`` maps the ``K`` output errors to its input (the units of the layer
    below): shape ``(n, K)`` with ``n`` the size of one input sample (``C·H·W`` for a
    convolution), drawn from ``N(0, s²)`` with ``s`` the standard deviation of the layer's own
    initial weights. At the output layer ``n × K`` is ``Wᵀ``'s shape, and DFA is FA there.
    A convolution's ``B`` needs its input's height and width: give
    :meth:`~minibp.network.Network.init_feedback` an ``example`` input (``minibp.train`` does).
    Its size is ``C·H·W·K`` numbers per layer, which at ImageNet scale (``K`` = 1000, 224×224
    images) is gigabytes: DFA suits the small models.

    Matrix angle: ``B_{l+1}`` stands where backprop's linear path from ``e`` to the layer's input
    stands, ``W_{l+1}ᵀ ⋯ W_Lᵀ``; minibp reports the angle to that product where every weight
    layer from this one to the output is dense, and NaN elsewhere (a convolution or residual
    block above has no single matrix in its place). The delta angle is the same as for every rule.
    """

    name, label, title = "dfa", "DFA", "direct feedback alignment (Nøkland 2016): δ_l = φ' ⊙ B_l e, e the output error"

    def init_network(self, net: Network, rng: np.random.Generator) -> None:
        n_out = net.weight_layers[-1].W.shape[0]  # K, the size of the output error
        for layer in net.weight_layers:
            if isinstance(layer, Dense):
                n_in = layer.n_in
            elif layer.x is not None:
                n_in = math.prod(layer.x.shape[1:])
            else:
                raise ValueError(
                    f"direct feedback alignment shapes the B of {layer!r} by its input, which it has not seen: "
                    "give net.init_feedback(rule, rng, example=x[:1]) a batch of inputs"
                )
            B = rng.standard_normal((n_in, n_out)) * layer.init_std
            layer.params["B"] = layer.as_feedback(B)

    def feedback(self, layer: WeightLayer, delta: Array, error: Array) -> Array:
        # δ at the layer's input is B e, from the output error: delta from above is not used
        return (error @ layer.params["B"].T).reshape(layer.x.shape)

    def alignment_target(self, net: Network, layer: WeightLayer) -> Array | None:
        above = net.weight_layers[net.weight_layers.index(layer) :]
        if not all(isinstance(w, Dense) for w in above):
            return None
        target = above[-1].W.T
        for w in reversed(above[:-1]):
            target = w.W.T @ target  # backprop's linear path from e down to this layer's input
        return target

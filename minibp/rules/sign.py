"""The sign-symmetry variants that feedback-alignment benchmarks compare (Liao et al. 2016;
Moskovitz et al. 2018; named as in BioTorch, Sanfiz & Akrout 2021): feedback through the signs of
``W`` with magnitudes that carry no knowledge of ``W``.

* ``ss`` (:class:`~minibp.rules.paper.SignSymmetry`) is **uSF**: ``sign(W)ᵀ`` at a uniform
  magnitude fixed by the layer's shape;
* ``frsf``: ``sign(W)ᵀ ⊙ |R|`` with ``R`` a fixed random matrix;
* ``brsf``: the same with ``|R|`` drawn afresh for every batch.

Each reads the signs of ``W`` (one bit per synapse of weight transport) and nothing else of it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import get_array_module, get_backend
from .base import Array, Rule

if TYPE_CHECKING:
    from ..layers.base import WeightLayer
    from ..network import Network


class FixedRandomSignFeedback(Rule):
    """frSF (Moskovitz et al. 2018): ``F = sign(W)ᵀ ⊙ |R|``, with ``R`` drawn once like FA's ``B``.

    Needs to know: the signs of ``W``. ``|R|`` is kept as the layer's ``B`` (it never learns), so
    checkpoints hold it and the matrix angle compares ``sign(W)ᵀ ⊙ |R|`` with ``Wᵀ``.
    """

    name, label, title = "frsf", "frSF", "sign-symmetry with fixed random magnitudes: F = sign(W)ᵀ ⊙ |R|"

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        R = rng.standard_normal(layer.transpose_weight().shape) * layer.init_std
        layer.params["B"] = layer.as_feedback(np.abs(R))  # the fixed magnitudes |R|

    def feedback_matrix(self, layer: WeightLayer) -> Array:
        xp = get_array_module(layer.W)
        return xp.sign(layer.transpose_weight()) * layer.params["B"]  # only sign(W) crosses


@dataclass(kw_only=True)
class BatchRandomSignFeedback(Rule):
    """brSF (Moskovitz et al. 2018): ``F = sign(W)ᵀ ⊙ |R_t|``, ``R_t`` drawn afresh for every batch.

    Needs to know: the signs of ``W``. ``R_t`` of training step ``t`` comes from a generator
    seeded by ``(seed, t, layer name)``, so a resumed run draws the same magnitudes; its
    entries are ``N(0, s²)`` with ``s`` the standard deviation of the layer's initial weights.
    """

    name, label, title = "brsf", "brSF", "sign-symmetry with magnitudes redrawn every batch: F = sign(W)ᵀ ⊙ |R_t|"

    _steps: int = field(default=0, init=False, repr=False)  # training steps seen: numbers each batch's draw

    def magnitude_generator(self, step: int, layer: WeightLayer) -> Any:
        """The generator of step ``step``'s magnitudes for ``layer``, seeded by ``(seed, step, layer name)``
        on the backend's own random module (as the weight mirror's noise is)."""
        key = [int(self.seed), 5, int(step), zlib.crc32(layer.name.encode())]
        return get_backend().random.default_rng(int(np.random.SeedSequence(key).generate_state(1)[0]))

    def magnitudes(self, layer: WeightLayer) -> Array:
        """``|R_t|`` of the current step for ``layer``, in the layout of ``Wᵀ``."""
        rng = self.magnitude_generator(self._steps, layer)
        R = rng.standard_normal(layer.transpose_weight().shape, dtype=layer.W.dtype)
        return abs(R) * layer.W.dtype.type(layer.init_std)

    def feedback_matrix(self, layer: WeightLayer) -> Array:
        xp = get_array_module(layer.W)
        return xp.sign(layer.transpose_weight()) * self.magnitudes(layer)  # only sign(W) crosses

    def after_step(self, net: Network) -> None:
        self._steps += 1  # the next batch draws new magnitudes

    def state(self) -> dict[str, Any]:
        return {"steps": self._steps}

    def load_state(self, state: dict[str, Any]) -> None:
        self._steps = int(state["steps"])

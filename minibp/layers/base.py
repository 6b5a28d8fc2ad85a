"""What every layer provides, and what layers with weights add.

A layer maps a batch forward (``forward``) and maps a gradient from its output
back to its input (``backward``). Layers without weights (activations, and in
later modules pooling, batch norm, residual sums) use their exact local
derivative under every learning rule: weight transport concerns only the weight
matrices ``W``.

A :class:`WeightLayer` instead splits its backward pass in the paper's two
pieces, so that a learning rule can choose the feedback matrix:

* ``backward_input(delta, F)``: the feedback path, eq (2) with ``F = Wᵀ`` or
  eq (3) with ``F = B``;
* ``weight_grads(delta)``: the gradient of the forward update, eq (4).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_backend

Array = Any  # a NumPy or CuPy ndarray


class Layer:
    """A layer without weights: ``forward`` and an exact ``backward``.

    ``params``/``grads`` hold trainable arrays and their gradients by name (batch norm's
    ``gamma`` and ``beta``; empty for most layers); ``buffers`` holds state that is not
    trained (batch norm's running statistics). ``decayed`` names the params that get
    weight decay.
    """

    has_weights = False
    name: str = ""
    decayed: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}

    def forward(self, x: Array, train: bool = True) -> Array:
        raise NotImplementedError

    def backward(self, dy: Array) -> Array:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WeightLayer(Layer):
    """A layer with forward weights ``W``, bias ``b`` and (rule-given) feedback weights ``B``.

    ``params`` holds the arrays by name (``"W"``, ``"b"`` and, for rules that keep
    one, ``"B"``); ``grads`` holds the gradients of the last backward pass under the
    same names. The optimizer updates exactly the params that have a grad.
    ``decayed`` names the params that get weight decay (eqs 16–17: ``W`` and ``B``).
    """

    has_weights = True
    decayed: tuple[str, ...] = ("W", "B")
    #: standard deviation of the initial weights; random feedback weights use it too
    init_std: float = 1.0
    #: shape of one mirror-mode input sample ``y_l``
    mirror_input_shape: tuple[int, ...] = ()

    def init_weights(
        self, shape: tuple[int, ...], gain: float, bias: bool, rng: np.random.Generator | None, dtype: str, name: str
    ) -> None:
        """``W ~ N(0, gain² / fan_in)`` (He et al. 2015) drawn on the host from ``rng``, so every
        backend starts from the same numbers; ``b = 0``. Call after the shape attributes are set."""
        xp = get_backend()
        rng = rng if rng is not None else np.random.default_rng(0)
        self.init_std = float(gain) / np.sqrt(self.fan_in)
        self.dtype = np.dtype(dtype)
        self.name = name
        self.params["W"] = xp.asarray(rng.standard_normal(shape) * self.init_std, dtype=self.dtype)
        if bias:
            self.params["b"] = xp.zeros(shape[0], dtype=self.dtype)
        self.x: Array | None = None  # the input y_l of the last forward pass, for eqs (4) and (17)

    @property
    def W(self) -> Array:
        return self.params["W"]

    @property
    def b(self) -> Array | None:
        return self.params.get("b")

    @property
    def B(self) -> Array | None:
        return self.params.get("B")

    @property
    def fan_in(self) -> int:
        raise NotImplementedError

    @property
    def sign_scale(self) -> float:
        """The fixed magnitude of sign-symmetry's feedback weights (Xiao et al. 2018)."""
        raise NotImplementedError

    def transpose_weight(self) -> Array:
        """``W`` in the layout of the feedback weights (``Wᵀ`` for a dense layer)."""
        raise NotImplementedError

    def backward_input(self, delta: Array, F: Array) -> Array:
        raise NotImplementedError

    def weight_grads(self, delta: Array) -> dict[str, Array]:
        raise NotImplementedError

    def feedback_grad(self, grads: dict[str, Array]) -> Array:
        """``y_l δ_{l+1}ᵀ`` in the layout of ``B`` (eq 17), from the forward gradient."""
        raise NotImplementedError

    def mirror_forward(self, noise: Array, bias: bool, input_mean: Array | None = None) -> Array:
        """Mirror mode: ``W y_l (+ b)`` for a noise input ``y_l`` (eqs 6–7, 12). With ``bias`` and an
        ``input_mean`` ``m`` (the mean per input channel of the layer's input in training), also
        ``+ W m``: the bias that input puts on the layer's units, which the zero-mean noise lacks (eq 11)."""
        raise NotImplementedError

    def mirror_correlation(self, pre: Array, post: Array) -> Array:
        """``mean over the batch of y_l y_{l+1}ᵀ`` in the layout of ``B`` (eqs 5, 7)."""
        raise NotImplementedError

    def mirror_update(self, pre: Array, post: Array, lr: float, decay: float) -> None:
        """Eq (7) with decay, in place: ``B ← (1 − decay) B + lr · mean(y_l y_{l+1}ᵀ)``."""
        B = self.params["B"]
        B *= 1 - decay  # weight decay keeps ‖B‖ bounded (Section 4.1)
        B += lr * self.mirror_correlation(pre, post)  # eq (7)

    def as_feedback(self, values: Array) -> Array:
        """A copy of ``values`` (in the layout of ``Wᵀ``) as this layer's feedback-weight array."""
        return get_backend().array(values, dtype=self.W.dtype)

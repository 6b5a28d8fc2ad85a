"""The fully connected layer: eq (1) forward, eqs (2)/(3) feedback, eq (4) update.

Batches are rows: a batch of inputs ``x`` has shape ``(N, n_in)``; the paper's
column-vector ``W y_l`` becomes ``x @ W.T``. ``W`` has shape ``(n_out, n_in)`` as in
the paper and ``B`` has the shape of ``Wᵀ``, ``(n_in, n_out)``.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_backend
from .base import Array, WeightLayer


class Dense(WeightLayer):
    """``z = W y_l + b``: the linear part of eq (1); the activation φ is a separate layer.

    Weights start as ``N(0, gain² / n_in)`` (He et al. 2015 with ``gain=√2`` for ReLU),
    drawn on the host from ``rng`` so that every backend starts from the same numbers.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        bias: bool = True,
        gain: float = 1.0,
        rng: np.random.Generator | None = None,
        dtype: str = "float32",
        name: str = "",
    ) -> None:
        super().__init__()
        if int(n_in) < 1 or int(n_out) < 1:
            raise ValueError(f"Dense layer sizes must be positive, got n_in={n_in}, n_out={n_out}")
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.init_weights((self.n_out, self.n_in), gain, bias, rng, dtype, name)

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out})"

    @property
    def fan_in(self) -> int:
        return self.n_in

    @property
    def sign_scale(self) -> float:
        return 1.0 / float(np.sqrt(self.n_in))

    @property
    def mirror_input_shape(self) -> tuple[int, ...]:
        return (self.n_in,)

    def forward(self, x: Array, train: bool = True) -> Array:
        """Eq (1), linear part: ``z_{l+1} = W_{l+1} y_l + b_{l+1}`` for each row ``y_l`` of ``x``."""
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"{self!r} expects input of shape (batch, {self.n_in}), got {tuple(x.shape)}")
        self.x = x  # y_l, kept for eq (4) and eq (17)
        z = x @ self.W.T  # eq (1)
        if self.b is not None:
            z += self.b
        return z

    def backward_input(self, delta: Array, F: Array) -> Array:
        """Feedback path: ``F δ_{l+1}`` with ``F = Wᵀ`` (eq 2, backprop) or ``F = B`` (eq 3).

        The ``φ'(y_l) ⊙`` factor of eqs (2)–(3) is applied by the activation layer below.
        """
        return delta @ F.T  # eq (2)/(3): rows of delta times Fᵀ == F δ per example

    def weight_grads(self, delta: Array) -> dict[str, Array]:
        """Eq (4): ``ΔW = −η δ_{l+1} y_lᵀ``; returns the gradient ``δ_{l+1} y_lᵀ`` summed over the batch.

        ``delta`` already carries the ``1/N`` of a batch-mean loss.
        """
        grads = {"W": delta.T @ self.x}  # eq (4)
        if self.b is not None:
            grads["b"] = delta.sum(axis=0)
        return grads

    def transpose_weight(self) -> Array:
        return self.W.T

    def feedback_grad(self, grads: dict[str, Array]) -> Array:
        # eq (17): y_l δ_{l+1}ᵀ, which is exactly (δ_{l+1} y_lᵀ)ᵀ: the same products,
        # so we reuse eq (4)'s result instead of a second matmul.
        return grads["W"].T

    def mirror_forward(self, noise: Array, bias: bool, input_mean: Array | None = None) -> Array:
        z = noise @ self.W.T  # eq (1) driven by noise (mirror mode, Fig 1b)
        if bias and self.b is not None:
            z += self.b
        if bias and input_mean is not None:
            z += self.W @ input_mean  # eq (11)'s bias: W m, from an input of mean m
        return z

    def mirror_correlation(self, pre: Array, post: Array) -> Array:
        return (pre.T @ post) / pre.shape[0]  # eq (7): δ_l δ_{l+1}ᵀ = y_l y_{l+1}ᵀ (eq 6), batch mean

    def mirror_update(self, pre: Array, post: Array, lr: float, decay: float) -> None:
        """The fast path of the generic eq (7) update (:meth:`WeightLayer.mirror_update`), with the
        same result up to rounding: the factor ``lr / N`` is folded into the small ``(N, n_out)``
        array ``y_{l+1}`` before the product, so ``B`` is touched in two passes, not four."""
        Bt = self.params["B"].T  # B is stored in W's memory order: Bᵀ is the contiguous view
        Bt *= 1 - decay  # weight decay keeps ‖B‖ bounded (Section 4.1)
        Bt += (post * (lr / pre.shape[0])).T @ pre  # eq (7): η_B mean(y_l y_{l+1}ᵀ), transposed

    def as_feedback(self, values: Array) -> Array:
        # B has the shape of Wᵀ but is stored in W's memory order (Fortran order), so that
        # Bᵀ in the feedback product, KP's gradient grads["W"].T and the optimizer's
        # buffers all run through memory in the same order as W's
        return get_backend().array(values, dtype=self.W.dtype, order="F")  # always a copy

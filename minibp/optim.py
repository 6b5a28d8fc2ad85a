"""SGD with momentum and weight decay (eqs 4, 16, 17), and learning-rate schedules.

The update of every parameter ``p`` with gradient ``g`` is

    v ← μ v + g + wd · p          (v = g + wd · p when μ = 0)
    p ← p − η v

With plain SGD (μ = 0) this is eq (16) with decay factor ``λ = η · wd``:
``ΔW = −η δ yᵀ − λ W``; for KP's ``B`` it is eq (17). Under momentum the decay
goes through the momentum buffer as well, as in PyTorch's ``SGD(weight_decay=…)``.
Momentum is minibp's addition: the paper's eqs (16)–(17) have none. Kolen–Pollack
stays exact: ``W`` and ``Bᵀ`` receive identical gradients, so
their difference ``D = W − Bᵀ`` obeys ``v_D ← μ v_D + wd · D``, ``D ← D − η v_D``:
the gradients cancel and only decay acts on ``D``. Without momentum that is
``D_t = (1 − λ)^t D_0`` (eqs 13–14). With momentum ``D_{t+1} = (1 + μ − λ) D_t − μ D_{t−1}``:
while ``λ ≤ (1 − √μ)²`` (2.6·10⁻³ at μ = 0.9) the roots of ``z² − (1 + μ − λ) z + μ`` are real
and ``D`` shrinks by the larger one, about ``λ / (1 − μ)`` a step for small ``λ``; beyond that
they are complex, of modulus ``√μ``, and ``D`` shrinks by ``1 − √μ`` a step at most, however
large ``λ`` is.

Weight decay applies to the params a layer lists in ``decayed`` (``W`` and ``B``),
not to biases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .backend import get_array_module
from .layers.base import Layer


class Schedule:
    """Learning rate as a function of the (fractional) epoch."""

    def __call__(self, base_lr: float, epoch: float) -> float:
        raise NotImplementedError


class Constant(Schedule):
    def __call__(self, base_lr: float, epoch: float) -> float:
        return base_lr

    def __repr__(self) -> str:
        return "Constant()"


class Step(Schedule):
    """Multiply the rate by ``gamma`` at each milestone epoch (the paper: ×0.1 at epoch 32)."""

    def __init__(self, milestones: Sequence[float], gamma: float = 0.1) -> None:
        self.milestones = sorted(float(m) for m in milestones)
        self.gamma = float(gamma)

    def __call__(self, base_lr: float, epoch: float) -> float:
        return base_lr * self.gamma ** sum(epoch >= m for m in self.milestones)

    def __repr__(self) -> str:
        return f"Step({self.milestones}, gamma={self.gamma})"


class Cosine(Schedule):
    """Half a cosine from ``base_lr`` at epoch 0 to ``min_lr`` at ``epochs``."""

    def __init__(self, epochs: float, min_lr: float = 0.0) -> None:
        if not epochs > 0:
            raise ValueError(f"a cosine schedule needs a positive number of epochs, got {epochs}")
        self.epochs = float(epochs)
        self.min_lr = float(min_lr)

    def __call__(self, base_lr: float, epoch: float) -> float:
        frac = min(max(epoch / self.epochs, 0.0), 1.0)
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1 + math.cos(math.pi * frac))

    def __repr__(self) -> str:
        return f"Cosine({self.epochs}, min_lr={self.min_lr})"


#: the learning-rate schedules by name
SCHEDULES = ("constant", "cosine", "step")


def get_schedule(name: str, *, epochs: float, milestones: Sequence[float] = (), gamma: float = 0.1) -> Schedule:
    """``constant``, ``cosine`` (over ``epochs``) or ``step`` (×``gamma`` at ``milestones``)."""
    key = str(name).strip().lower()
    if key == "constant":
        return Constant()
    if key == "cosine":
        return Cosine(epochs)
    if key == "step":
        if not milestones:
            raise ValueError("the step schedule needs milestones, e.g. --milestones 32")
        return Step(milestones, gamma)
    raise ValueError(f"unknown learning-rate schedule {name!r}: choose constant, cosine or step")


class SGD:
    """Stochastic gradient descent with momentum ``μ`` and weight decay (eq 16)."""

    def __init__(
        self,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        schedule: Schedule | None = None,
    ) -> None:
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"the learning rate must be a finite number > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight decay must be a finite number >= 0, got {weight_decay}")
        self.base_lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.schedule = schedule or Constant()
        self.lr = self.base_lr
        self.velocity: dict[str, Any] = {}
        self._buffers: dict[str, Any] = {}

    def set_epoch(self, epoch: float) -> float:
        """Set the learning rate for the (fractional) ``epoch`` from the schedule; returns it."""
        self.lr = self.schedule(self.base_lr, epoch)
        return self.lr

    @property
    def decay_per_step(self) -> float:
        """``λ`` of eq (16) at the current learning rate: ``η · weight_decay``."""
        return self.lr * self.weight_decay

    def _scratch(self, slot: str, like: Any) -> Any:
        buf = self._buffers.get(slot)
        if buf is None:
            buf = self._buffers[slot] = get_array_module(like).empty_like(like)
        return buf

    def step(self, layers: Sequence[Layer]) -> None:
        """Apply eq (16) (and eq (17) to KP's ``B``) to every param that has a gradient.

        In place with one scratch buffer per param (laid out like the param, so every
        pass runs through memory in order): a step allocates nothing.
        """
        lr, mu = self.lr, self.momentum
        for layer in layers:
            for key, g in layer.grads.items():
                p = layer.params[key]
                wd = self.weight_decay if key in layer.decayed else 0.0
                slot = f"{layer.name}.{key}"
                buf = self._scratch(slot, p)
                xp = get_array_module(p)
                if mu:
                    v = self.velocity.get(slot)
                    if v is None:
                        v = self.velocity[slot] = xp.zeros_like(p)
                    v *= mu
                    v += g
                    if wd:
                        xp.multiply(p, wd, out=buf)  # eq (16): the − λ W term, λ = η · wd
                        v += buf
                    g = v
                elif wd:
                    xp.multiply(p, wd, out=buf)
                    buf += g
                    g = buf
                xp.multiply(g, lr, out=buf)
                p -= buf  # eq (16): ΔW = − η δ yᵀ − λ W

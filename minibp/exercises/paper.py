"""Checkers for the paper's equations, notebooks 01–05: eq (2), eqs (3)–(4), eq (5), eqs (7)+(12), eq (17).

Every function takes batches as rows, as minibp does: ``delta_next`` is ``δ_{l+1}`` of shape
``(N, n_out)``, ``y`` and ``y_prev`` are ``(N, n_in)``, ``W`` is ``(n_out, n_in)`` and ``B`` has the
shape of ``Wᵀ``, ``(n_in, n_out)``. The references call minibp's :class:`~minibp.layers.Dense`,
its activations and its rules, the code the test suite checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..layers import Dense, Tanh
from ..optim import SGD
from ..rules import Backprop, FeedbackAlignment, KolenPollack
from .core import Case, check, rng

Array = np.ndarray
_TANH = Tanh()

# the (N, n_in, n_out) of each checker's cases: first square, so that a transpose keeps the shape
SIZES = [(5, 4, 4), (7, 3, 6), (2, 8, 5)]


def _dense(W: Array, b: Array | None = None, B: Array | None = None) -> Dense:
    """A float64 Dense layer holding the given weights."""
    n_out, n_in = W.shape
    layer = Dense(n_in, n_out, bias=b is not None, dtype="float64")
    layer.params["W"] = np.array(W, dtype=np.float64)
    if b is not None:
        layer.params["b"] = np.array(b, dtype=np.float64)
    if B is not None:
        layer.params["B"] = layer.as_feedback(B)
    return layer


# ---------------------------------------------------------------- notebook 01: eq (2)


def eq2_delta_reference(delta_next: Array, W: Array, y: Array) -> Array:
    """Eq (2) for a tanh layer: ``δ_l = φ'(y_l) ⊙ W_{l+1}ᵀ δ_{l+1}`` with ``φ'(y) = 1 − y²``, in rows."""
    layer = _dense(W)
    return _TANH.dphi(y) * layer.backward_input(delta_next, Backprop().feedback_matrix(layer))  # eq (2)


def check_eq2_delta(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 01: ``student(delta_next, W, y)`` must compute eq (2) for a tanh layer below ``W``."""
    g, cases = rng(), []
    for n, n_in, n_out in SIZES:
        d, W, y = g.standard_normal((n, n_out)), g.standard_normal((n_out, n_in)), np.tanh(g.standard_normal((n, n_in)))
        back = d @ W
        cases.append(
            Case(
                dict(delta_next=d, W=W, y=y),
                eq2_delta_reference(d, W, y),
                [
                    (
                        "sign flipped: eq (2) has no minus sign; the loss's gradient already points uphill.",
                        -(1 - y**2) * back,
                    ),
                    ("missing φ': multiply Wᵀδ_{l+1} element-wise by φ'(y_l) = 1 − y_l².", back),
                    (
                        "φ' taken as 1 − tanh(y)²: y is already tanh of the pre-activation, so φ'(y) = 1 − y².",
                        (1 - np.tanh(y) ** 2) * back,
                    ),
                    ("φ' taken as 1 − y: for tanh, φ'(y) = 1 − y².", (1 - y) * back),
                    (
                        "transposed: it multiplies δ_{l+1} by W where eq (2) needs Wᵀ (in rows: delta_next @ W).",
                        (1 - y**2) * (d @ W.T) if n_in == n_out else None,
                    ),
                ],
            )
        )
    return check("eq (2), backprop's δ", student, eq2_delta_reference, _clean(cases))


# ---------------------------------------------------------------- notebook 02: eqs (3) and (4)


def eq3_delta_reference(delta_next: Array, B: Array, y: Array) -> Array:
    """Eq (3) for a tanh layer: ``δ_l = φ'(y_l) ⊙ B_{l+1} δ_{l+1}``, in rows."""
    n_in, n_out = B.shape
    layer = _dense(np.zeros((n_out, n_in)), B=B)
    return _TANH.dphi(y) * layer.backward_input(delta_next, FeedbackAlignment().feedback_matrix(layer))  # eq (3)


def check_eq3_delta(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 02: ``student(delta_next, B, y)`` must compute eq (3), FA's δ, for a tanh layer."""
    g, cases = rng(), []
    for n, n_in, n_out in SIZES:
        d, B, y = g.standard_normal((n, n_out)), g.standard_normal((n_in, n_out)), np.tanh(g.standard_normal((n, n_in)))
        back = d @ B.T
        cases.append(
            Case(
                dict(delta_next=d, B=B, y=y),
                eq3_delta_reference(d, B, y),
                [
                    ("sign flipped: eq (3) has no minus sign.", -(1 - y**2) * back),
                    ("missing φ': multiply Bδ_{l+1} element-wise by φ'(y_l) = 1 − y_l².", back),
                    (
                        "φ' taken as 1 − tanh(y)²: y is already tanh of the pre-activation, so φ'(y) = 1 − y².",
                        (1 - np.tanh(y) ** 2) * back,
                    ),
                    (
                        "transposed: B already has the shape of Wᵀ, so Bδ in rows is delta_next @ B.T.",
                        (1 - y**2) * (d @ B) if n_in == n_out else None,
                    ),
                ],
            )
        )
    return check("eq (3), feedback alignment's δ", student, eq3_delta_reference, _clean(cases))


def eq4_update_reference(delta_next: Array, y_prev: Array, lr: float) -> Array:
    """Eq (4): ``ΔW_{l+1} = −η δ_{l+1} y_lᵀ``, summed over the batch (``δ`` carries the loss's ``1/N``)."""
    layer = _dense(np.zeros((delta_next.shape[1], y_prev.shape[1])))
    layer.forward(y_prev)  # the layer keeps its input y_l for eq (4)
    return -lr * layer.weight_grads(delta_next)["W"]  # eq (4)


def check_eq4_update(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 02: ``student(delta_next, y_prev, lr)`` must return eq (4)'s ``ΔW`` (the change, not the new ``W``)."""
    g, cases = rng(), []
    for n, n_in, n_out in SIZES:
        d, y, lr = g.standard_normal((n, n_out)), g.standard_normal((n, n_in)), float(g.uniform(0.05, 0.5))
        grad = d.T @ y
        cases.append(
            Case(
                dict(delta_next=d, y_prev=y, lr=lr),
                eq4_update_reference(d, y, lr),
                [
                    ("sign flipped: eq (4) steps down the gradient, ΔW = −η δ yᵀ.", lr * grad),
                    ("missing η: multiply by the learning rate lr.", -grad),
                    (
                        "1/N applied twice: δ already carries the loss's 1/N, so sum δ yᵀ over the batch.",
                        -lr * grad / n,
                    ),
                    (
                        "transposed: ΔW has W's shape (n_out, n_in), δ_{l+1} y_lᵀ, or delta_next.T @ y_prev in rows.",
                        -lr * grad.T,
                    ),
                ],
            )
        )
    return check("eq (4), the forward update", student, eq4_update_reference, cases)


# ---------------------------------------------------------------- notebook 03: eq (5) with decay


def eq5_step_reference(B: Array, x: Array, y: Array, lr: float, decay: float) -> Array:
    """Eq (5) with decay, for one batch: ``B ← (1 − λ) B + η · mean_n(x_n y_nᵀ)``."""
    layer = _dense(np.zeros((y.shape[1], x.shape[1])), B=B)
    layer.mirror_update(x, y, lr, decay)  # eq (5), batch mean, plus decay
    return np.array(layer.B)


def check_eq5_step(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 03: ``student(B, x, y, lr, decay)`` must return ``B`` after one step of eq (5) with decay."""
    g, cases = rng(), []
    for n, n_in, n_out in SIZES:
        B, x, y = g.standard_normal((n_in, n_out)), g.standard_normal((n, n_in)), g.standard_normal((n, n_out))
        lr, lam = float(g.uniform(0.05, 0.5)), float(g.uniform(0.05, 0.3))
        corr = x.T @ y / n
        cases.append(
            Case(
                dict(B=B, x=x, y=y, lr=lr, decay=lam),
                eq5_step_reference(B, x, y, lr, lam),
                [
                    (
                        "missing 1/N: eq (5)'s x yᵀ is averaged over the batch, not summed.",
                        (1 - lam) * B + lr * corr * n,
                    ),
                    ("decay missing: B shrinks by (1 − λ) each step.", B + lr * corr),
                    (
                        "decay applied twice: B ← (1 − λ) B + η x yᵀ, one factor (1 − λ).",
                        (1 - lam) ** 2 * B + lr * corr,
                    ),
                    ("sign flipped: eq (5) is Hebbian, ΔB = +η x yᵀ.", (1 - lam) * B - lr * corr),
                    ("it returns ΔB; return the new B, B + ΔB.", -lam * B + lr * corr),
                    (
                        "transposed: x yᵀ has the shape of Wᵀ, (n_in, n_out): x.T @ y in rows.",
                        (1 - lam) * B + lr * corr.T if n_in == n_out else None,
                    ),
                ],
            )
        )
    return check("eq (5), the transposing rule", student, eq5_step_reference, _clean(cases))


# ---------------------------------------------------------------- notebook 04: eq (7) with bias-blocking


def mirror_step_reference(B: Array, W: Array, b: Array, noise: Array, lr: float, decay: float) -> Array:
    """One mirror-mode batch through a tanh layer with bias-blocking: ``y_{l+1} = tanh(W y_l)`` (eq 12),
    then ``B ← (1 − λ_B) B + η_B · mean(y_l y_{l+1}ᵀ)`` (eqs 6–7 with decay)."""
    layer = _dense(W, b, B)
    y_next = _TANH.phi(layer.mirror_forward(noise, bias=False))  # eq (12): biases blocked
    layer.mirror_update(noise, y_next, lr, decay)  # eq (7), δ_l = y_l and δ_{l+1} = y_{l+1} (eq 6)
    return np.array(layer.B)


def check_mirror_step(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 04: ``student(B, W, b, noise, lr, decay)`` must return ``B`` after one mirror-mode batch
    through a tanh layer, with bias-blocking (eqs 6, 7, 12)."""
    g, cases = rng(), []
    for n, n_in, n_out in SIZES:
        n = 4 * n
        B, W = g.standard_normal((n_in, n_out)), g.standard_normal((n_out, n_in)) / np.sqrt(n_in)
        b, noise = g.normal(0, 1.0, n_out), 0.5 * g.standard_normal((n, n_in))
        lr, lam = float(g.uniform(0.05, 0.5)), float(g.uniform(0.05, 0.3))
        y_up = np.tanh(noise @ W.T)
        corr = noise.T @ y_up / n
        cases.append(
            Case(
                dict(B=B, W=W, b=b, noise=noise, lr=lr, decay=lam),
                mirror_step_reference(B, W, b, noise, lr, lam),
                [
                    (
                        "bias not blocked: in mirror mode y_{l+1} = φ(W y_l) with no b (eq 12).",
                        (1 - lam) * B + lr * noise.T @ np.tanh(noise @ W.T + b) / n,
                    ),
                    (
                        "missing φ: the layer's output is y_{l+1} = tanh(W y_l), not W y_l.",
                        (1 - lam) * B + lr * noise.T @ (noise @ W.T) / n,
                    ),
                    (
                        "missing 1/N: eq (7)'s y_l y_{l+1}ᵀ is averaged over the noise batch, not summed.",
                        (1 - lam) * B + lr * corr * n,
                    ),
                    ("decay missing: B ← (1 − λ_B) B + η_B mean(y_l y_{l+1}ᵀ).", B + lr * corr),
                    ("decay applied twice: one factor (1 − λ_B) per batch.", (1 - lam) ** 2 * B + lr * corr),
                    ("sign flipped: eq (7) is Hebbian, ΔB = +η_B y_l y_{l+1}ᵀ.", (1 - lam) * B - lr * corr),
                    ("it returns ΔB; return the new B.", -lam * B + lr * corr),
                    (
                        "transposed: y_l y_{l+1}ᵀ has the shape of Wᵀ: noise.T @ y_next in rows.",
                        (1 - lam) * B + lr * corr.T if n_in == n_out else None,
                    ),
                ],
            )
        )
    return check("eqs (7) and (12), one mirror-mode batch", student, mirror_step_reference, _clean(cases))


# ---------------------------------------------------------------- notebook 05: eq (17)


def kp_step_reference(B: Array, y_prev: Array, delta_next: Array, lr: float, decay: float) -> Array:
    """One plain-SGD step of eq (17): ``B ← B − η y_l δ_{l+1}ᵀ − λ B``, with ``λ = η · weight_decay``."""
    n_in, n_out = B.shape
    layer = _dense(np.zeros((n_out, n_in)), B=B)
    layer.forward(y_prev)
    layer.grads = layer.weight_grads(delta_next)
    KolenPollack().feedback_grads(layer)  # eq (17): y_l δ_{l+1}ᵀ
    layer.grads = {"B": layer.grads["B"]}
    SGD(lr, weight_decay=decay / lr).step([layer])  # −η · grad − λ B
    return np.array(layer.B)


def check_kp_step(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 05: ``student(B, y_prev, delta_next, lr, decay)`` must return ``B`` after one step of eq (17)."""
    g, cases = rng(), []
    for n, n_in, n_out in SIZES:
        B, y, d = g.standard_normal((n_in, n_out)), g.standard_normal((n, n_in)), g.standard_normal((n, n_out))
        lr, lam = float(g.uniform(0.05, 0.5)), float(g.uniform(0.01, 0.2))
        grad = y.T @ d
        cases.append(
            Case(
                dict(B=B, y_prev=y, delta_next=d, lr=lr, decay=lam),
                kp_step_reference(B, y, d, lr, lam),
                [
                    (
                        "sign flipped: eq (17) steps B the way W steps, ΔB = −η y_l δ_{l+1}ᵀ − λB.",
                        B + lr * grad - lam * B,
                    ),
                    ("decay missing: eq (17) ends in − λB.", B - lr * grad),
                    ("decay applied twice: B − η y δᵀ − λB takes λ once.", B - lr * grad - 2 * lam * B),
                    ("decay applied twice: B − η y δᵀ − λB takes λ once.", (1 - lam) * (B - lr * grad - lam * B)),
                    (
                        "decay scaled by η: λ is the decay per step already (λ = η · weight decay).",
                        B - lr * grad - lr * lam * B,
                    ),
                    (
                        "1/N applied twice: δ already carries the loss's 1/N, so sum y δᵀ over the batch.",
                        B - lr * grad / n - lam * B,
                    ),
                    ("it returns ΔB; return the new B.", -lr * grad - lam * B),
                    (
                        "transposed: B gets W's update transposed, y_l δ_{l+1}ᵀ: y_prev.T @ delta_next.",
                        B - lr * grad.T - lam * B if n_in == n_out else None,
                    ),
                ],
            )
        )
    return check("eq (17), Kolen–Pollack's update of B", student, kp_step_reference, _clean(cases))


def _clean(cases: list[Case]) -> list[Case]:
    """Drop the mistakes a case cannot show (a transpose on unequal dimensions is a shape error)."""
    for case in cases:
        case.mistakes = [(s, m) for s, m in case.mistakes if m is not None]
    return cases

"""Alignment metrics of the paper's Fig 4, and accuracy.

* **matrix angle** (Fig 4a, c, e): the angle between ``vec(F_l)`` and ``vec(W_lᵀ)``, where
  ``F_l`` is the feedback matrix the rule actually uses (``B_l`` for FA, WM, KP;
  ``sign(W_l)ᵀ·scale`` for SS; ``W_lᵀ`` for BP, whose angle is 0 by definition);
* **delta angle** (Fig 4b, d, f): the angle between the rule's ``δ_l`` and backprop's
  ``δ_l`` computed on the *same* forward pass, flattened over the whole batch.
"""

from __future__ import annotations

import math
from typing import Any

from .backend import get_array_module, to_numpy
from .network import Network
from .rules import Backprop, Rule

Array = Any
_BP = Backprop()


def angle(a: Array, b: Array) -> float:
    """Angle in degrees between ``vec(a)`` and ``vec(b)``.

    Uses ``2·atan2(‖â − b̂‖, ‖â + b̂‖)`` on the unit vectors, which stays accurate for
    angles near 0° and 180° where ``arccos`` of the cosine loses all digits.
    Returns ``nan`` if either vector is zero.

    The norms are taken where the arrays live; the four numbers cross to the host in one
    explicit copy (:func:`~minibp.backend.to_numpy`).
    """
    xp = get_array_module(a, b)
    if a.size != b.size:
        raise ValueError(f"cannot take the angle between arrays of {a.size} and {b.size} elements")
    # a C-ordered copy, so ravel is free: images (δ of a conv layer) may be channel-major in memory
    a = a.astype(xp.float64, order="C").ravel()
    b = b.astype(xp.float64, order="C").ravel()
    na, nb = xp.sqrt(a @ a), xp.sqrt(b @ b)
    # â ∓ b̂ = (a·‖b‖ ∓ b·‖a‖) / (‖a‖‖b‖): the common positive factor leaves atan2 unchanged
    a *= nb
    b *= na
    diff, total = a - b, a + b
    na, nb, d, t = (float(v) for v in to_numpy(xp.stack([na, nb, xp.sqrt(diff @ diff), xp.sqrt(total @ total)])))
    if na == 0 or nb == 0:
        return math.nan
    return math.degrees(2 * math.atan2(d, t))


def matrix_angles(net: Network, rule: Rule) -> list[float]:
    """``∠(F_l, W_lᵀ)`` for every weight layer, input to output (Fig 4a, c, e); the rule's
    :meth:`~minibp.rules.Rule.alignment_target` stands for ``W_lᵀ`` (NaN where it has none)."""
    angles = []
    for layer in net.weight_layers:
        target = rule.alignment_target(net, layer)
        angles.append(math.nan if target is None else angle(rule.feedback_matrix(layer), target))
    return angles


def delta_angles(net: Network, rule: Rule, x: Array, targets: Array, loss_fn: Any) -> list[float]:
    """``∠(δ_l, δ_l^BP)`` at the output of every hidden weight layer (Fig 4b, d, f).

    One forward pass; two feedback passes from the same output error, one with the
    rule's feedback matrices and one with ``Wᵀ``. Neither stores gradients, so
    training is untouched. The output layer is left out: its ``δ`` is the loss
    gradient itself, the same under every rule.
    """
    saved = {k: v.copy() for k, v in net.buffer_arrays().items()}  # batch-norm running statistics
    out = net.forward(x, train=True)
    for k, v in net.buffer_arrays().items():
        v[...] = saved[k]  # the probe must not move them
    _, dout = loss_fn(out, targets)
    mine = net.backward(dout, rule, train=False)
    ref = net.backward(dout, _BP, train=False)
    return [angle(m, r) for m, r in zip(mine[:-1], ref[:-1])]


def accuracy(logits: Array, labels: Array) -> float:
    """Fraction of rows whose largest output is the label."""
    return float(to_numpy((logits.argmax(axis=1) == labels).mean()))

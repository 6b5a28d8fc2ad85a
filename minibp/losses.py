"""Losses: each returns the batch-mean loss and its gradient with respect to the network output.

The gradient is the output-layer error ``δ_L`` that starts the feedback path; it
is the same under every learning rule. It includes the ``1/N`` of the batch mean,
so layer gradients are sums over the batch.
"""

from __future__ import annotations

from typing import Any

import numpy

from .backend import get_array_module

Array = Any


def _check(out: Array, targets: Array) -> None:
    if out.ndim != 2:
        raise ValueError(f"the loss expects network outputs of shape (batch, classes), got {tuple(out.shape)}")
    if targets.shape[0] != out.shape[0]:
        raise ValueError(
            f"the loss got {out.shape[0]} outputs but {targets.shape[0]} targets: the batch sizes must match"
        )


def _one_hot(labels: Array, n: int, dtype: Any) -> Array:
    xp = get_array_module(labels)
    if labels.ndim != 1:
        raise ValueError(f"class labels must be a 1-D array of integers, got shape {tuple(labels.shape)}")
    # the range is checked on the host only: on a GPU the check would stop every step until the
    # device caught up (datasets check their labels once, when they are loaded)
    if isinstance(labels, numpy.ndarray) and labels.size and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"class labels must lie in [0, {n - 1}] for a network with {n} outputs")
    t = xp.zeros((labels.shape[0], n), dtype=dtype)
    t[xp.arange(labels.shape[0]), labels] = 1
    return t


class SoftmaxCrossEntropy:
    """``L = −mean_n log softmax(z_n)[t_n]``; ``∂L/∂z = (softmax(z) − onehot(t)) / N``."""

    name = "cross_entropy"

    def __call__(self, logits: Array, labels: Array) -> tuple[Array, Array]:
        _check(logits, labels)
        xp = get_array_module(logits)
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)  # stable: exp never overflows
        log_z = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        log_p = shifted - log_z
        rows = xp.arange(n)
        loss = -log_p[rows, labels].mean()
        dlogits = xp.exp(log_p)
        dlogits[rows, labels] -= 1
        dlogits /= n
        return loss, dlogits


class MeanSquaredError:
    """``L = mean_n ½‖z_n − t_n‖²``; ``∂L/∂z = (z − t) / N``.

    Integer class labels are turned into one-hot targets.
    """

    name = "mse"

    def __call__(self, out: Array, targets: Array) -> tuple[Array, Array]:
        _check(out, targets)
        if targets.ndim == 1 and targets.dtype.kind in "iu":
            targets = _one_hot(targets, out.shape[1], out.dtype)
        if targets.shape != out.shape:
            raise ValueError(f"MSE targets must have the output's shape {tuple(out.shape)}, got {tuple(targets.shape)}")
        n = out.shape[0]
        diff = out - targets
        loss = 0.5 * (diff * diff).sum() / n
        return loss, diff / n


LOSSES = {"cross_entropy": SoftmaxCrossEntropy, "mse": MeanSquaredError}


def get_loss(name: str) -> SoftmaxCrossEntropy | MeanSquaredError:
    key = str(name).strip().lower().replace("-", "_")
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")
    return LOSSES[key]()

"""Batch norm and pooling: their exact derivatives (used under every rule) against float64 finite
differences, their values against naive loops, and batch norm's statistics in training and
evaluation mode."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import channel_major, check_grad

from minibp.layers import AvgPool2D, BatchNorm, Flatten, GlobalAvgPool, MaxPool2D


def _check_batchnorm_gradients(bn: BatchNorm, x: np.ndarray, train: bool, rng: np.random.Generator) -> None:
    """Batch norm's backward pass (input, γ and β) against finite differences of ``sum(r · bn(x))``."""
    r = rng.standard_normal(x.shape)

    def loss() -> float:
        return float(np.sum(r * bn.forward(x, train=train)))

    loss()
    dx = bn.backward(r)
    grads = dict(bn.grads)
    check_grad(loss, x, dx, rng)
    check_grad(loss, bn.params["gamma"], grads["gamma"], rng)
    check_grad(loss, bn.params["beta"], grads["beta"], rng)


@pytest.mark.parametrize("shape", [(6, 4), (4, 3, 5, 5)])
def test_batchnorm_training_mode_gradients(shape):
    rng = np.random.default_rng(4)
    bn = BatchNorm(shape[1], dtype="float64")
    bn.params["gamma"][:] = rng.uniform(0.5, 2, shape[1])
    bn.params["beta"][:] = rng.standard_normal(shape[1])
    x = rng.standard_normal(shape) * 2 + 1
    _check_batchnorm_gradients(bn, x, True, rng)


def test_batchnorm_statistics_and_evaluation_mode():
    rng = np.random.default_rng(5)
    bn = BatchNorm(3, momentum=0.5, dtype="float64")
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    bn.params["gamma"][:], bn.params["beta"][:] = gamma, beta
    g, b = gamma[None, :, None, None], beta[None, :, None, None]
    x = rng.standard_normal((8, 3, 4, 4)) * 3 + 2
    y = bn.forward(x, train=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), beta, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), gamma**2, rtol=1e-4)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.5 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    m = x.size // 3
    np.testing.assert_allclose(bn.buffers["running_var"], 0.5 + 0.5 * x.var(axis=(0, 2, 3)) * m / (m - 1), rtol=1e-12)
    before = bn.buffers["running_mean"].copy()
    z = bn.forward(x, train=False)  # evaluation: running statistics, left unchanged
    np.testing.assert_array_equal(bn.buffers["running_mean"], before)
    ref = g * (x - before[None, :, None, None]) / np.sqrt(bn.buffers["running_var"][None, :, None, None] + bn.eps) + b
    np.testing.assert_allclose(z, ref, rtol=1e-12)
    # the backward pass after an evaluation-mode forward: the statistics are constants there
    _check_batchnorm_gradients(bn, x, False, rng)


@pytest.mark.parametrize(
    "layer",
    [
        MaxPool2D(2),
        MaxPool2D(3, stride=2, padding=1),
        AvgPool2D(2),
        AvgPool2D(3, stride=1, padding=1),
        GlobalAvgPool(),
        Flatten(),
    ],
    ids=repr,
)
def test_pooling_gradients_match_finite_differences(layer):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 6, 6))  # distinct values: no ties inside a max window
    r = rng.standard_normal(layer.forward(x).shape)

    def loss() -> float:
        return float(np.sum(r * layer.forward(x)))

    loss()
    check_grad(loss, x, layer.backward(r), rng)


def test_max_and_average_pool_values():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(MaxPool2D(2).forward(x)[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(AvgPool2D(2).forward(x)[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(GlobalAvgPool().forward(x), [[7.5]])


def test_max_pool_padding_never_wins_a_window():
    """Max pooling pads with −∞: on an all-negative image a border window's maximum is one of its
    pixels, never a padded zero, and its whole gradient reaches the image."""
    x = -1.0 - np.arange(16.0).reshape(1, 1, 4, 4)
    pool = MaxPool2D(3, stride=2, padding=1)
    y = pool.forward(x)
    np.testing.assert_array_equal(y[0, 0], [[-1.0, -2.0], [-5.0, -6.0]])
    np.testing.assert_allclose(pool.backward(np.ones_like(y)).sum(), y.size)


@pytest.mark.parametrize("k, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool_matches_a_loop_over_windows_with_ties(k, stride, padding):
    # values from a small set, so most windows hold ties: the value is the window's maximum
    # and the gradient goes to its first position in row-major order, as np.argmax picks
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, size=(2, 3, 7, 7)).astype(np.float64)
    pool = MaxPool2D(k, stride=stride, padding=padding)
    y = pool.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = pool.backward(dy)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=-np.inf)
    want_y = np.empty_like(y)
    want_dx = np.zeros_like(xp)
    for n, c, r, s in np.ndindex(*y.shape):
        window = xp[n, c, r * stride : r * stride + k, s * stride : s * stride + k]
        want_y[n, c, r, s] = window.max()
        i, j = divmod(int(window.argmax()), k)
        want_dx[n, c, r * stride + i, s * stride + j] += dy[n, c, r, s]
    np.testing.assert_array_equal(y, want_y)
    # overlapping windows add several dy into one dx in another order: equal up to rounding
    np.testing.assert_allclose(dx, want_dx[:, :, padding : padding + 7, padding : padding + 7], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(
    "layer",
    [MaxPool2D(2), MaxPool2D(3, stride=2, padding=1), AvgPool2D(3, stride=1, padding=1), GlobalAvgPool()],
    ids=repr,
)
def test_pooling_gives_the_same_values_from_either_memory_layout(layer):
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 3, 6, 6))
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    np.testing.assert_allclose(layer.forward(channel_major(x)), y, rtol=1e-12, atol=1e-15)
    cm_dy = channel_major(dy) if dy.ndim == 4 else dy
    np.testing.assert_allclose(layer.backward(cm_dy), dx, rtol=1e-12, atol=1e-15)

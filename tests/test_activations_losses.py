"""Activations and losses: each one's exact derivative against float64 finite differences (the
φ' of eqs 2-3 and the output error δ_L), and their values where they could overflow."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grad

from minibp.layers import ACTIVATIONS, get_activation
from minibp.losses import MeanSquaredError, SoftmaxCrossEntropy


@pytest.mark.parametrize("name", [a for a in ACTIVATIONS])
def test_activation_derivative_matches_finite_differences(name):
    rng = np.random.default_rng(1)
    act = get_activation(name)
    x = rng.standard_normal((6, 9)) * 2
    r = rng.standard_normal((6, 9))

    def loss() -> float:
        return float(np.sum(r * act.forward(x)))

    loss()
    check_grad(loss, x, act.backward(r), rng)


def test_rectified_tanh_is_bounded_and_rectified():
    act = get_activation("rectified_tanh")
    z = np.linspace(-50, 50, 1001)
    y = act.forward(z[None, :])
    assert y.min() == 0 and y.max() <= 1
    np.testing.assert_allclose(y[0, z > 0], np.tanh(z[z > 0]))


@pytest.mark.parametrize("loss_cls", [SoftmaxCrossEntropy, MeanSquaredError])
def test_loss_gradient_matches_finite_differences(loss_cls):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((8, 5)) * 3
    labels = rng.integers(0, 5, 8)
    fn = loss_cls()
    _, grad = fn(logits, labels)

    def loss() -> float:
        return float(fn(logits, labels)[0])

    check_grad(loss, logits, grad, rng)


def test_cross_entropy_value_and_stability():
    logits = np.array([[1000.0, 0.0], [0.0, 0.0]])
    loss, grad = SoftmaxCrossEntropy()(logits, np.array([0, 1]))
    assert np.isfinite(loss) and np.isclose(loss, 0.5 * np.log(2))
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-15)

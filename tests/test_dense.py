"""The dense layer and the MLP made of it, under backprop: eq (1) forward, float64 finite
differences of eqs (2) and (4) for one layer and for every W and b of a whole network, and the
errors bad shapes raise. (Each rule's feedback through a dense layer: test_rules.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grad, cmp

from minibp import mlp
from minibp.layers import Dense, get_activation
from minibp.losses import MeanSquaredError, SoftmaxCrossEntropy, get_loss
from minibp.rules import Backprop

SHAPES = [(1, 1, 1), (4, 3, 5), (7, 10, 2), (16, 33, 17)]


@pytest.mark.parametrize(("n", "n_in", "n_out"), SHAPES)
def test_dense_gradients_match_finite_differences(n, n_in, n_out):
    rng = np.random.default_rng(n * 100 + n_in)
    layer = Dense(n_in, n_out, rng=rng, dtype="float64")
    layer.params["b"][:] = rng.standard_normal(n_out)
    x = rng.standard_normal((n, n_in))
    r = rng.standard_normal((n, n_out))  # L = sum(r * z): dL/dz = r

    def loss() -> float:
        return float(np.sum(r * layer.forward(x)))

    loss()
    grads = layer.weight_grads(r)  # eq (4)
    dx = layer.backward_input(r, layer.transpose_weight())  # eq (2)
    check_grad(loss, layer.params["W"], grads["W"], rng)
    check_grad(loss, layer.params["b"], grads["b"], rng)
    check_grad(loss, x, dx, rng)


def test_dense_forward_is_eq1():
    rng = np.random.default_rng(0)
    layer = Dense(5, 3, rng=rng, dtype="float64")
    layer.params["b"][:] = [1.0, -2.0, 0.5]
    x = rng.standard_normal((4, 5))
    ref = np.stack([layer.W @ xi + layer.b for xi in x])  # W y + b, one column vector at a time
    np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-12, err_msg=cmp("z", layer.forward(x), ref))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "rectified_tanh"])
@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_whole_network_gradients_under_backprop(activation, loss_name):
    """Every W and b of a 3-layer MLP: eqs (1), (2), (4) chained, against finite differences."""
    rng = np.random.default_rng(3)
    net = mlp([6, 7, 5, 4], activation, seed=3, dtype="float64")
    for layer in net.weight_layers:
        layer.params["b"][:] = rng.standard_normal(layer.params["b"].shape) * 0.1
    x = rng.standard_normal((10, 6))
    y = rng.integers(0, 4, 10)
    fn = get_loss(loss_name)

    def loss() -> float:
        return float(fn(net.forward(x), y)[0])

    _, dout = fn(net.forward(x), y)
    net.backward(dout, Backprop())
    for layer in net.weight_layers:
        grads = dict(layer.grads)  # check_grad re-runs forward, which leaves grads alone
        for key in ("W", "b"):
            check_grad(loss, layer.params[key], grads[key], rng, n_dirs=3)


def test_layers_reject_wrong_shapes():
    layer = Dense(4, 3)
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 4\)"):
        layer.forward(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="positive"):
        Dense(0, 3)
    with pytest.raises(ValueError, match="unknown activation"):
        get_activation("swish")
    with pytest.raises(ValueError, match="batch sizes must match"):
        SoftmaxCrossEntropy()(np.zeros((3, 2)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="must have the output's shape"):
        MeanSquaredError()(np.zeros((3, 2)), np.zeros((3, 4)))

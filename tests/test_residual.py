"""Residual blocks and the ResNets made of them: every gradient through both paths of the sum
against float64 finite differences, and the models' output shapes and layer counts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grad

from minibp import get_rule
from minibp.layers import Dense, GlobalAvgPool, WeightLayer
from minibp.layers.container import FeedbackPass
from minibp.layers.residual import ZeroPadShortcut
from minibp.losses import SoftmaxCrossEntropy
from minibp.models import basic_block, bottleneck_block, lenet, resnet18, resnet20, resnet50
from minibp.network import Network


def _block_net(block, c_in, rng):
    c_out = (
        block.main.layers[-1].c_out if isinstance(block.main.layers[-1], WeightLayer) else block.main.layers[-2].c_out
    )
    return Network([block, GlobalAvgPool(), Dense(c_out, 3, rng=rng, dtype="float64")])


@pytest.mark.parametrize(
    "make",
    [
        lambda rng, bn: basic_block(4, 4, 1, bn=bn, rng=rng, dtype="float64"),  # identity shortcut
        lambda rng, bn: basic_block(4, 6, 2, bn=bn, rng=rng, dtype="float64"),  # projection shortcut
        lambda rng, bn: basic_block(4, 6, 2, bn=bn, shortcut="zeropad", rng=rng, dtype="float64"),
        lambda rng, bn: bottleneck_block(4, 2, 2, bn=bn, rng=rng, dtype="float64"),
        lambda rng, bn: bottleneck_block(8, 2, 1, bn=bn, rng=rng, dtype="float64"),
        lambda rng, bn: basic_block(4, 6, 2, bn=bn, conv="local", size=(6, 6), rng=rng, dtype="float64"),
    ],
    ids=["basic", "basic-projection", "basic-zeropad", "bottleneck-projection", "bottleneck", "basic-local"],
)
@pytest.mark.parametrize("bn", ["before", "after"])
def test_residual_block_gradients_under_backprop(make, bn):
    rng = np.random.default_rng(7)
    block = make(rng, bn)
    net = _block_net(block, 4, rng)
    x = rng.standard_normal((3, block.main.layers[0].c_in, 6, 6))
    y = np.array([0, 2, 1])
    fn = SoftmaxCrossEntropy()

    def loss() -> float:
        return float(fn(net.forward(x), y)[0])

    _, dout = fn(net.forward(x), y)
    net.backward(dout, get_rule("bp"))
    for layer in net.param_layers:
        grads = dict(layer.grads)
        for key, g in grads.items():
            check_grad(loss, layer.params[key], g, rng, n_dirs=2)
    # and the input gradient through both paths of the sum
    dx = net.backward_path(dout, FeedbackPass(get_rule("bp"), train=False, error=dout))
    check_grad(loss, x, dx, rng, n_dirs=2)


def test_model_output_shapes():
    x = np.zeros((2, 3, 32, 32), dtype=np.float32)
    assert resnet20((3, 32, 32), 10, width=4).forward(x).shape == (2, 10)
    assert len(resnet20(width=4).weight_layers) == 22  # 19 convs, 2 projections, 1 dense
    big = np.zeros((2, 3, 64, 64), dtype=np.float32)
    r18 = resnet18((3, 64, 64), 7, width=4)
    assert r18.forward(big).shape == (2, 7) and len(r18.weight_layers) == 21
    r50 = resnet50((3, 64, 64), 5, width=2)
    assert r50.forward(big).shape == (2, 5) and len(r50.weight_layers) == 54
    assert lenet((1, 28, 28), 10).forward(np.zeros((2, 1, 28, 28), dtype=np.float32)).shape == (2, 10)
    assert lenet((1, 8, 8), 10).forward(np.zeros((2, 1, 8, 8), dtype=np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match="images of shape"):
        resnet20((32, 32), 10)


def test_zero_padding_shortcut_is_he_et_als_option_a_and_its_backward_is_the_adjoint():
    """He et al.'s parameter-free CIFAR shortcut: x subsampled by the stride, zero channels after its
    own; ResNet-20 then has 269,722 parameters on CIFAR-10, against 272,474 with projections."""
    rng = np.random.default_rng(3)
    short = ZeroPadShortcut(3, 5, 2)
    x = rng.standard_normal((2, 3, 7, 7))
    y = short.forward(x)
    assert y.shape == (2, 5, 4, 4)
    np.testing.assert_array_equal(y[:, :3], x[:, :, ::2, ::2])
    assert not y[:, 3:].any()
    dy = rng.standard_normal(y.shape)
    assert np.vdot(dy, y) == pytest.approx(np.vdot(short.backward(dy), x), rel=1e-12)  # <dy, Sx> = <Sᵀdy, x>
    assert resnet20((3, 32, 32), 10, shortcut="zeropad").n_params() == 269_722
    assert resnet20((3, 32, 32), 10).n_params() == 272_474
    with pytest.raises(ValueError, match="shortcut must be one of projection, zeropad"):
        resnet20((3, 32, 32), 10, shortcut="identity")


def test_a_block_of_locally_connected_layers_asks_for_its_input_size():
    with pytest.raises(ValueError, match="needs its input's size"):
        basic_block(4, 4, conv="local", rng=np.random.default_rng(0))

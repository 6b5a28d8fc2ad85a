"""Convolutional networks: batch norm, pooling and residual blocks against finite differences and
naive loops; the five rules on convolutions; the ResNets' shapes. (The convolution itself, its
routes and its gradients: test_convolution.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grad
from test_convolution import channel_major

from minibp import SGD, TrainConfig, angle, get_rule, matrix_angles, train
from minibp.data import load_digits
from minibp.layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool,
    MaxPool2D,
    ReLU,
    Tanh,
    basic_block,
    bottleneck_block,
)
from minibp.layers.conv import conv2d_transpose, conv2d_weight_grad
from minibp.losses import SoftmaxCrossEntropy
from minibp.models import lenet, resnet18, resnet20, resnet50
from minibp.network import Network
from minibp.rules import WeightMirror
from minibp.train import build_model


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


def _block_net(block, c_in, rng):
    c_out = block.main.layers[-1].c_out if isinstance(block.main.layers[-1], Conv2D) else block.main.layers[-2].c_out
    return Network([block, GlobalAvgPool(), Dense(c_out, 3, rng=rng, dtype="float64")])


@pytest.mark.parametrize(
    "make",
    [
        lambda rng, bn: basic_block(4, 4, 1, bn=bn, rng=rng, dtype="float64"),  # identity shortcut
        lambda rng, bn: basic_block(4, 6, 2, bn=bn, rng=rng, dtype="float64"),  # projection shortcut
        lambda rng, bn: bottleneck_block(4, 2, 2, bn=bn, rng=rng, dtype="float64"),
        lambda rng, bn: bottleneck_block(8, 2, 1, bn=bn, rng=rng, dtype="float64"),
    ],
    ids=["basic", "basic-projection", "bottleneck-projection", "bottleneck"],
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
    deltas = {}
    dx = net.backward_path(dout, get_rule("bp"), False, deltas)
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


def _conv_net(rule_name, seed=0):
    rng = np.random.default_rng(seed)
    net = Network(
        [
            Conv2D(2, 3, 3, padding=1, rng=rng, dtype="float64"),
            Tanh(),
            Conv2D(3, 4, 3, stride=2, rng=rng, dtype="float64"),
            Tanh(),
            Flatten(),
            Dense(4 * 3 * 3, 3, rng=rng, dtype="float64"),
        ]
    )
    rule = get_rule(rule_name)
    net.init_feedback(rule, np.random.default_rng(seed + 1))
    x = rng.standard_normal((5, 2, 7, 7))
    y = rng.integers(0, 3, 5)
    return net, rule, x, y


def test_fa_conv_delta_is_the_transposed_convolution_with_B():
    """Eq (3), convolutional form: δ_l = φ'(y_l) ⊙ convᵀ(δ_{l+1}, B)."""
    net, rule, x, y = _conv_net("fa")
    _, dout = SoftmaxCrossEntropy()(net.forward(x), y)
    deltas = net.backward(dout, rule)
    conv2 = net.weight_layers[1]
    y1 = net.layers[1].y
    expected = (1 - y1**2) * conv2d_transpose(deltas[1], conv2.params["B"], y1.shape, 2, 0)
    np.testing.assert_allclose(deltas[0], expected, rtol=1e-12)
    assert conv2.params["B"].shape == conv2.W.shape
    assert not np.allclose(conv2.params["B"], conv2.W)


def test_ss_conv_feedback_is_sign_times_fixed_scale():
    net, rule, _, _ = _conv_net("ss")
    for layer in net.weight_layers[:2]:
        F = rule.feedback_matrix(layer)
        np.testing.assert_array_equal(F, np.sign(layer.W) * np.sqrt(2 / (layer.k**2 * layer.c_out)))


def test_bp_conv_feedback_is_W():
    net, rule, _, _ = _conv_net("bp")
    assert matrix_angles(net, rule) == [0.0, 0.0, 0.0]
    assert rule.feedback_matrix(net.weight_layers[0]) is net.weight_layers[0].W


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_kp_difference_decays_exactly_on_conv_layers(momentum):
    """Eqs (13)-(18) in convolutional form: B gets exactly W's kernel update."""
    net, rule, x, y = _conv_net("kp")
    lr, wd, steps = 0.05, 0.4, 20
    opt = SGD(lr, momentum=momentum, weight_decay=wd)
    d0 = [np.linalg.norm(layer.transpose_weight() - layer.params["B"]) for layer in net.weight_layers]
    fn = SoftmaxCrossEntropy()
    for _ in range(steps):
        _, dout = fn(net.forward(x), y)
        net.backward(dout, rule)
        opt.step(net.param_layers)
    v, d = 0.0, 1.0
    for t in range(steps):
        v = wd * d if t == 0 else momentum * v + wd * d
        d -= lr * v
    for layer, n0 in zip(net.weight_layers, d0):
        D = layer.transpose_weight() - layer.params["B"]
        assert abs(np.linalg.norm(D) - abs(d) * n0) < 1e-10, (np.linalg.norm(D), abs(d) * n0)
    if momentum == 0:
        assert abs(d - (1 - lr * wd) ** steps) < 1e-12


def test_weight_mirror_aligns_a_conv_layer():
    """Mirror mode on a convolution: noise images in, B from the input-output correlation."""
    rng = np.random.default_rng(8)
    conv = Conv2D(3, 4, 3, stride=2, padding=1, rng=rng, dtype="float64")
    conv.params["b"][:] = rng.standard_normal(4)  # unequal biases: blocked in mirror mode (eq 12)
    net = Network([conv, ReLU()])
    rule = WeightMirror(sigma=1.0, lr=0.01, decay=0.01, batch_size=64, seed=1)
    net.init_feedback(rule, rng)
    start = angle(conv.params["B"], conv.W)
    for _ in range(1500):
        rule.mirror(net)
    end = angle(conv.params["B"], conv.W)
    assert start > 60 and end < 2, (start, end)


@pytest.mark.parametrize(
    ("after", "normalize", "slope"), [("relu", False, 0.5), ("batchnorm", False, 1.0), ("relu", True, None)]
)
def test_conv_weight_mirror_B_settles_at_the_predicted_multiple(after, normalize, slope):
    """Eqs (11)-(12) with decay on a kernel: every patch of a noise image is independent noise of
    variance σ², so E[patch · y_{l+1}ᵀ] = σ² φ'_s W, and B settles at (η_B/λ_B) σ² φ'_s W: φ'_s = ½
    through a ReLU; 1 where batch norm follows (mirror mode's φ is then the identity); with
    ``normalize``, (η_B/λ_B) W. A wrong patch count, a missing σ² or a wrong φ would move the
    multiple, which an angle alone would not see."""
    rng = np.random.default_rng(10)
    conv = Conv2D(3, 4, 3, stride=2, padding=1, rng=rng, dtype="float64")
    net = Network([conv, ReLU() if after == "relu" else BatchNorm(4, dtype="float64")])
    sigma, ratio = 1.5, 2.0  # η_B / λ_B = 0.04 / 0.02
    rule = WeightMirror(sigma=sigma, lr=0.04, decay=0.02, batch_size=64, normalize=normalize, seed=1)
    net.init_feedback(rule, rng)
    for _ in range(1500):
        rule.mirror(net)
    B, W = conv.params["B"], conv.W
    scale = float(np.sum(B * W) / np.sum(W * W))
    expected = ratio if normalize else ratio * sigma**2 * slope
    assert abs(scale / expected - 1) < 0.05, (scale, expected)
    assert angle(B, W) < 2


def test_conv_mirror_correlation_is_eq7_whether_or_not_it_reuses_the_forward_columns():
    # mirror_forward keeps the noise's columns for eq (7); the correlation must equal the
    # weight-gradient product with y_{l+1} in the place of delta, divided by the patches, and
    # must not reuse columns of other noise
    rng = np.random.default_rng(9)
    conv = Conv2D(2, 3, 3, stride=2, rng=rng, dtype="float64")
    noise, other = rng.standard_normal((2, 5, 2, 9, 9))
    post = conv.mirror_forward(noise, bias=False)
    want = conv2d_weight_grad(noise, post, conv.W.shape, 2, 0) / (5 * 4 * 4)
    np.testing.assert_array_equal(conv.mirror_correlation(noise, post), want)  # reused columns
    np.testing.assert_array_equal(conv.mirror_correlation(noise, post), want)  # rebuilt: nothing kept
    conv.mirror_forward(noise, bias=False)
    want_other = conv2d_weight_grad(other, post, conv.W.shape, 2, 0) / (5 * 4 * 4)
    np.testing.assert_array_equal(conv.mirror_correlation(other, post), want_other)


def test_delta_angle_probe_leaves_batchnorm_statistics_alone():
    from minibp.metrics import delta_angles

    net = resnet20((1, 8, 8), 10, width=2)
    rule = get_rule("fa")
    net.init_feedback(rule, np.random.default_rng(1))
    before = {k: v.copy() for k, v in net.buffer_arrays().items()}
    x = np.random.default_rng(2).random((16, 1, 8, 8), dtype=np.float32)
    angles = delta_angles(net, rule, x, np.arange(16) % 10, SoftmaxCrossEntropy())
    assert len(angles) == len(net.weight_layers) - 1 and all(0 < a < 180 for a in angles)
    for k, v in net.buffer_arrays().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("model", ["cnn", "resnet20"])
def test_conv_models_train_on_digits_under_every_rule(model):
    data = load_digits()
    for rule in ("bp", "fa", "ss", "wm", "kp"):
        cfg = TrainConfig(rule=rule, model=model, epochs=1, width=4, lr=0.02, probe_size=64)
        start = build_model(cfg, data).weight_layers[0].W.copy()  # the same seed: train's initial weights
        net, hist = train(cfg, data=data, progress=False)
        n = len(net.weight_layers)
        assert len(hist[-1]["matrix_angle"]) == n and len(hist[-1]["delta_angle"]) == n - 1
        assert np.all(np.isfinite(hist[-1]["delta_angle"])), (rule, hist[-1]["delta_angle"])  # δ reached every layer
        if rule == "bp":
            assert max(hist[-1]["delta_angle"]) < 1e-3 and max(hist[-1]["matrix_angle"]) == 0
        assert hist[-1]["train_loss"] < hist[0]["train_loss"], (rule, hist[0]["train_loss"], hist[-1]["train_loss"])
        # the first convolution learned from the δ that reached it: decay alone would only scale its kernel
        assert angle(net.weight_layers[0].W, start) > 0.5, (rule, angle(net.weight_layers[0].W, start))

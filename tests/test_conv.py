"""Convolutional networks: conv, batch norm, pooling and residual blocks against finite
differences and naive loops; the five rules on convolutions; the ResNets' shapes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grad, cmp

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
    Residual,
    Sequential,
    Tanh,
    basic_block,
    bottleneck_block,
)
from minibp.layers import conv as conv_module
from minibp.layers.conv import conv2d, conv2d_transpose, conv2d_weight_grad, im2col
from minibp.losses import SoftmaxCrossEntropy
from minibp.models import lenet, resnet18, resnet20, resnet50
from minibp.network import Network
from minibp.rules import WeightMirror
from minibp.train import build_model

CONV_CASES = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)]  # (stride, padding)


def naive_conv(x, W, stride, padding):
    """Eq (1) on each output position, one at a time."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, w = xp.shape
    co, _, k, _ = W.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    y = np.zeros((n, co, ho, wo))
    for r in range(ho):
        for c in range(wo):
            patch = xp[:, :, r * stride : r * stride + k, c * stride : c * stride + k]
            y[:, :, r, c] = np.tensordot(patch, W, axes=([1, 2, 3], [1, 2, 3]))
    return y


@pytest.mark.parametrize(("stride", "padding"), CONV_CASES)
def test_fast_convolution_matches_a_naive_loop(stride, padding):
    rng = np.random.default_rng(stride * 10 + padding)
    x = rng.standard_normal((3, 2, 9, 8))
    W = rng.standard_normal((4, 2, 3, 3))
    y = conv2d(x, W, stride, padding)
    ref = naive_conv(x, W, stride, padding)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12, err_msg=cmp("conv", y, ref))
    # the transposed convolution is the adjoint: <conv(x), d> = <x, convᵀ(d)>
    d = rng.standard_normal(y.shape)
    lhs, rhs = np.sum(y * d), np.sum(x * conv2d_transpose(d, W, x.shape, stride, padding))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    # the weight gradient is the adjoint in W: <conv(x; W'), d> = <W', dW>
    W2 = rng.standard_normal(W.shape)
    assert (
        abs(
            np.sum(conv2d(x, W2, stride, padding) * d) - np.sum(W2 * conv2d_weight_grad(x, d, W.shape, stride, padding))
        )
        < 1e-9
    )


@pytest.mark.parametrize(("c_in", "c_out"), [(2, 3), (3, 2), (4, 1), (3, 3)])
@pytest.mark.parametrize(("stride", "padding"), CONV_CASES)
def test_transposed_convolution_is_the_adjoint_of_the_convolution(c_in, c_out, stride, padding):
    """⟨conv(x, F), δ⟩ = ⟨x, convᵀ(δ, F)⟩ on both of convᵀ's routes: stride 1 with no more
    channels out than in takes the flipped-kernel convolution, the rest col2im."""
    rng = np.random.default_rng(11)
    x, F = rng.standard_normal((2, c_in, 7, 6)), rng.standard_normal((c_out, c_in, 3, 3))
    y = conv2d(x, F, stride, padding)
    delta = rng.standard_normal(y.shape)
    dx = conv2d_transpose(delta, F, x.shape, stride, padding)
    assert dx.shape == x.shape
    assert abs(np.sum(y * delta) - np.sum(x * dx)) < 1e-10 * np.sum(np.abs(y * delta))


@pytest.mark.parametrize(("stride", "padding"), CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_gradients_match_finite_differences(stride, padding, bias):
    rng = np.random.default_rng(3)
    layer = Conv2D(2, 3, 3, stride=stride, padding=padding, bias=bias, rng=rng, dtype="float64")
    if bias:
        layer.params["b"][:] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 7, 7))
    r = rng.standard_normal(layer.forward(x).shape)

    def loss() -> float:
        return float(np.sum(r * layer.forward(x)))

    loss()
    grads = layer.weight_grads(r)  # eq (4)
    dx = layer.backward_input(r, layer.transpose_weight())  # eq (2)
    check_grad(loss, layer.params["W"], grads["W"], rng)
    check_grad(loss, x, dx, rng)
    if bias:
        check_grad(loss, layer.params["b"], grads["b"], rng)


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
    ("k", "padding", "c_in", "c_out"), [(3, 1, 2, 3), (3, 0, 3, 2), (5, 2, 1, 4), (1, 0, 4, 2), (2, 1, 2, 2)]
)
def test_column_free_weight_gradient_equals_the_im2col_product(k, padding, c_in, c_out):
    """Eq (4) with stride 1 by shifted views of the padded grid, against δ times im2col's columns."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, c_in, 7, 5))
    W = rng.standard_normal((c_out, c_in, k, k))
    d = rng.standard_normal(conv2d(x, W, 1, padding).shape)
    cols = im2col(x, k, k, 1, padding)
    with_columns = conv2d_weight_grad(x, d, W.shape, 1, padding, cols)
    np.testing.assert_allclose(conv2d_weight_grad(x, d, W.shape, 1, padding), with_columns, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("kh", "kw", "padding", "c_in", "c_out"),
    [(3, 3, 1, 2, 3), (3, 3, 0, 3, 2), (5, 5, 2, 1, 4), (2, 3, 1, 2, 2), (3, 2, 0, 4, 1)],
)
def test_convolution_on_the_padded_grid_equals_the_im2col_product(monkeypatch, kh, kw, padding, c_in, c_out):
    """Eq (1) with stride 1 from columns on the padded grid, against im2col's columns."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((3, c_in, 7, 5))
    W = rng.standard_normal((c_out, c_in, kh, kw))
    with_columns = conv2d(x, W, 1, padding, im2col(x, kh, kw, 1, padding))
    monkeypatch.setattr(conv_module, "GRID_MAX_OVERHEAD", np.inf)
    on_grid = conv2d(x, W, 1, padding)
    np.testing.assert_allclose(on_grid, with_columns, rtol=1e-12, atol=1e-12)
    # the columns live in a reused buffer: a second call must not change the first's output
    kept = on_grid.copy()
    conv2d(rng.standard_normal(x.shape), W, 1, padding)
    np.testing.assert_array_equal(on_grid, kept)


def test_the_padded_grid_is_taken_only_where_it_pays(monkeypatch):
    """Large stride-1 images take the grid (no im2col); small ones, strided and 1×1 convolutions do not."""

    def no_im2col(*args):
        raise AssertionError("im2col was called")

    rng = np.random.default_rng(15)
    W3, W1 = rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 2, 1, 1))
    big, small = rng.standard_normal((1, 2, 32, 32)), rng.standard_normal((1, 2, 8, 8))
    want = conv2d(big, W3, 1, 1)
    monkeypatch.setattr(conv_module, "im2col", no_im2col)
    np.testing.assert_allclose(conv2d(big, W3, 1, 1), want, rtol=1e-12, atol=1e-12)  # (34·34)/(32·32) = 1.13
    for x, W, stride in [(small, W3, 1), (big, W3, 2), (big, W1, 1)]:  # 8×8: (10·10)/(8·8) = 1.56
        with pytest.raises(AssertionError, match="im2col was called"):
            conv2d(x, W, stride, 1 if W.shape[2] == 3 else 0)


def channel_major(a):
    """The values of ``a`` in channel-major memory: an ``(N, C, H, W)`` view of a ``(C, N, H, W)`` array."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def is_channel_major(a) -> bool:
    """Whether ``a``'s memory is ordered (C, N, H, W): each axis's stride spans the next one's whole
    extent (a slice of a channel-major array, e.g. an unpadded view, counts)."""
    dims = [(a.strides[axis], a.shape[axis]) for axis in (1, 0, 2, 3) if a.shape[axis] > 1]  # extent-1 axes: any stride
    return a.ndim == 4 and all(outer >= inner * n > 0 for (outer, _), (inner, n) in zip(dims, dims[1:]))


@pytest.mark.parametrize("grid", [0.0, np.inf], ids=["im2col", "grid"])
@pytest.mark.parametrize(("stride", "padding"), CONV_CASES)
def test_convolutions_give_the_same_values_from_either_memory_layout(monkeypatch, grid, stride, padding):
    """The convolutions read their input through its strides: an image in (N, C, H, W) memory and
    the same values in channel-major memory give the same results, on every route."""
    monkeypatch.setattr(conv_module, "GRID_MAX_OVERHEAD", grid)
    rng = np.random.default_rng(16)
    x, W = rng.standard_normal((3, 2, 9, 8)), rng.standard_normal((4, 2, 3, 3))
    y = conv2d(x, W, stride, padding)
    d = rng.standard_normal(y.shape)
    cm_x, cm_d = channel_major(x), channel_major(d)
    assert x.flags.c_contiguous and is_channel_major(cm_x)
    np.testing.assert_allclose(conv2d(cm_x, W, stride, padding), y, rtol=1e-12, atol=1e-12)
    dx = conv2d_transpose(d, W, x.shape, stride, padding)
    np.testing.assert_allclose(conv2d_transpose(cm_d, W, x.shape, stride, padding), dx, rtol=1e-12)
    np.testing.assert_allclose(
        conv2d_weight_grad(cm_x, cm_d, W.shape, stride, padding),
        conv2d_weight_grad(x, d, W.shape, stride, padding),
        rtol=1e-12,
    )


def test_1x1_columns_of_a_channel_major_image_are_a_view():
    """With stride 1 and no padding, a 1×1 kernel's columns are the image's channel rows: for a
    channel-major image im2col's copy copies nothing, and the columns are those rows."""
    x = channel_major(np.random.default_rng(19).standard_normal((2, 3, 4, 5)))
    cols = im2col(x, 1, 1, 1, 0)
    assert np.shares_memory(cols, x)
    np.testing.assert_array_equal(cols, x.transpose(1, 0, 2, 3).reshape(3, -1))


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


def test_a_resnet_hands_on_channel_major_memory_forward_and_back():
    """Convolutions hand on their product's layout as a view, with no transposing copy, and batch
    norm, ReLU, the residual sums, pooling and the errors of the backward pass keep it (see the
    docstring of minibp.layers.conv): every image a ResNet passes along, after its first layer, is
    channel-major in memory. The layout is a matter of speed; this guards that it holds."""
    rng = np.random.default_rng(18)
    net = resnet18((3, 32, 32), 5, width=4, seed=0)  # a max-pool stem, then basic blocks
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    seen = []

    def record(layer, method):
        inner = getattr(layer, method)

        def wrapped(*args):
            out = inner(*args)
            seen.append((f"{layer!r}.{method}", out))
            return out

        setattr(layer, method, wrapped)

    for layer in net.walk():
        if isinstance(layer, Residual):
            record(layer, "forward")  # its sum; its backward path runs inside the layers below
        elif not isinstance(layer, Sequential):
            record(layer, "forward")
            record(layer, "backward_input" if layer.has_weights else "backward")
    _, dout = SoftmaxCrossEntropy()(net.forward(x), np.array([0, 1]))
    deltas = net.backward(dout, get_rule("bp"))
    images = [(name, a) for name, a in seen if a.ndim == 4]
    assert len(images) > 60 and any("backward" in name for name, _ in images)
    for name, a in images:
        assert is_channel_major(a), f"{name} handed on an image with strides {a.strides}, not channel-major memory"
    assert all(is_channel_major(d) for d in deltas if d.ndim == 4)


@pytest.mark.parametrize("stride", [1, 2])
def test_kept_columns_change_nothing(stride):
    # keep_columns only skips rebuilding eq (4)'s columns: outputs and feedback are bit-identical
    # to a layer that does not keep them, and so is the weight gradient with stride 2; with
    # stride 1 that layer takes the column-free route, the same sums in another order
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    plain, kept = (
        Conv2D(2, 4, 3, stride=stride, padding=1, rng=np.random.default_rng(0), keep_columns=keep)
        for keep in (False, True)
    )
    z = plain.forward(x)
    np.testing.assert_array_equal(kept.forward(x), z)
    assert kept.cols is not None and plain.cols is None
    d = rng.standard_normal(z.shape).astype(np.float32)
    g_kept, g_plain = kept.weight_grads(d)["W"], plain.weight_grads(d)["W"]
    if stride == 2:
        np.testing.assert_array_equal(g_kept, g_plain)
    else:
        exact = conv2d_weight_grad(x.astype(np.float64), d.astype(np.float64), plain.W.shape, 1, 1)
        for g in (g_kept, g_plain):  # float32 sums of 3·6·6 products
            np.testing.assert_allclose(g, exact, rtol=0, atol=1e-5 * np.abs(exact).max())
    np.testing.assert_array_equal(kept.backward_input(d, kept.W), plain.backward_input(d, plain.W))
    kept.forward(x, train=False)
    assert kept.cols is None  # an evaluation pass keeps nothing


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
    rule = WeightMirror(sigma=1.0, lr_b=0.01, decay=0.01, mirror_batch_size=64, seed=1)
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
    rule = WeightMirror(sigma=sigma, lr_b=0.04, decay=0.02, mirror_batch_size=64, normalize=normalize, seed=1)
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

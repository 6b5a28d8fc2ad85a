"""Convolution: every route of eq (1), of the transposed convolution (eqs 2/3) and of the kernel's
gradient (eq 4) against the reference im2col route, a naive loop and each other's adjoints, from
either memory layout; which route is taken where; Conv2D's gradients and its kept columns."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CONV_CASES, channel_major, check_grad, cmp, naive_conv

from minibp import get_rule
from minibp.layers import Conv2D, LocalConv2D, Residual, Sequential
from minibp.layers import conv as conv_module
from minibp.layers.conv import conv2d, conv2d_transpose, conv2d_weight_grad
from minibp.layers.conv_routes import ROUTES, col2im, im2col, pick_route, scratch, usable_routes
from minibp.losses import SoftmaxCrossEntropy
from minibp.models import resnet18

SHAPES = {  # (input shape, kernel shape)
    "3x3": ((3, 2, 9, 8), (4, 2, 3, 3)),
    "3x3-fewer-out": ((2, 3, 7, 6), (2, 3, 3, 3)),
    "5x5": ((3, 1, 7, 5), (4, 1, 5, 5)),
    "1x1": ((2, 4, 6, 5), (3, 4, 1, 1)),
    "2x3": ((3, 2, 7, 5), (2, 2, 2, 3)),
}
LAYOUTS = ["nchw", "channel-major"]


def route_cases(op: str, cases: list[tuple[int, int]], fast_only: bool = False) -> list:
    """(route, shape, stride, padding) for every route of ``op`` that applies there."""
    return [
        pytest.param(route, shape, stride, padding, id=f"{route}-{shape}-s{stride}p{padding}")
        for shape, (x_shape, k_shape) in SHAPES.items()
        for stride, padding in cases
        if min(x_shape[2] - k_shape[2], x_shape[3] - k_shape[3]) + 2 * padding >= 0
        for route in usable_routes(op, k_shape, stride, padding)[1 if fast_only else 0 :]
    ]


def is_channel_major(a) -> bool:
    """Whether ``a``'s memory is ordered (C, N, H, W): each axis's stride spans the next one's whole
    extent (a slice of a channel-major array, e.g. an unpadded view, counts)."""
    dims = [(a.strides[axis], a.shape[axis]) for axis in (1, 0, 2, 3) if a.shape[axis] > 1]  # extent-1 axes: any stride
    return a.ndim == 4 and all(outer >= inner * n > 0 for (outer, _), (inner, n) in zip(dims, dims[1:]))


def operands(shape: str, stride: int, padding: int, seed: int = 0):
    """An input ``x``, a kernel ``W`` and an output error ``d`` of ``conv2d(x, W)``'s shape, float64."""
    rng = np.random.default_rng(seed)
    x_shape, k_shape = SHAPES[shape]
    x, W = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    d = rng.standard_normal(naive_conv(x, W, stride, padding).shape)
    return x, W, d


def run(op: str, x, W, d, stride: int, padding: int, route: str | None):
    """One of the three operations on the operands of :func:`operands`, on ``route``."""
    if op == "conv2d":
        return conv2d(x, W, stride, padding, route=route)  # eq (1)
    if op == "conv2d_transpose":
        return conv2d_transpose(d, W, x.shape, stride, padding, route=route)  # eqs (2)/(3)
    return conv2d_weight_grad(x, d, W.shape, stride, padding, route=route)  # eq (4)


@pytest.mark.parametrize(("route", "shape", "stride", "padding"), route_cases("conv2d", CONV_CASES))
def test_every_convolution_route_matches_a_naive_loop(route, shape, stride, padding):
    x, W, _ = operands(shape, stride, padding)
    y, ref = conv2d(x, W, stride, padding, route=route), naive_conv(x, W, stride, padding)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12, err_msg=cmp("conv", y, ref))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("op", "route", "shape", "stride", "padding"),
    [
        pytest.param(op, *case.values, id=f"{op}-{case.id}")
        for op in ROUTES
        for case in route_cases(op, [(1, 0), (1, 1)], fast_only=True)
    ],
)
def test_every_fast_route_gives_the_reference_route_s_values(op, route, shape, stride, padding, layout):
    """Each fast route against the im2col route (col2im for the transposed convolution), the
    operands in either memory layout: the same values up to rounding."""
    x, W, d = operands(shape, stride, padding, seed=1)
    reference = run(op, x, W, d, stride, padding, ROUTES[op][0])
    if layout == "channel-major":
        x, d = channel_major(x), channel_major(d)
    fast = run(op, x, W, d, stride, padding, route)
    np.testing.assert_allclose(fast, reference, rtol=1e-12, atol=1e-12, err_msg=cmp(route, fast, reference))


@pytest.mark.parametrize(("route", "shape", "stride", "padding"), route_cases("conv2d_transpose", CONV_CASES))
def test_every_transposed_route_is_the_adjoint_of_the_convolution(route, shape, stride, padding):
    """⟨conv(x, F), δ⟩ = ⟨x, convᵀ(δ, F)⟩, the convolution on the reference route."""
    x, F, d = operands(shape, stride, padding, seed=2)
    y = conv2d(x, F, stride, padding, route="im2col")
    dx = conv2d_transpose(d, F, x.shape, stride, padding, route=route)
    assert dx.shape == x.shape
    assert abs(np.sum(y * d) - np.sum(x * dx)) < 1e-10 * np.sum(np.abs(y * d))


@pytest.mark.parametrize(("route", "shape", "stride", "padding"), route_cases("conv2d_weight_grad", CONV_CASES))
def test_every_weight_gradient_route_is_the_adjoint_in_the_kernel(route, shape, stride, padding):
    """Eq (4): ⟨conv(x; W'), δ⟩ = ⟨W', ΔW(x, δ)⟩ for any kernel W', the convolution on the reference route."""
    x, W, d = operands(shape, stride, padding, seed=3)
    grad = conv2d_weight_grad(x, d, W.shape, stride, padding, route=route)
    lhs, rhs = np.sum(conv2d(x, W, stride, padding, route="im2col") * d), np.sum(W * grad)
    assert grad.shape == W.shape and abs(lhs - rhs) < 1e-10 * np.sum(np.abs(W * grad))


@pytest.mark.parametrize(("stride", "padding"), CONV_CASES)
def test_col2im_is_the_adjoint_of_im2col(stride, padding):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 6))
    cols = im2col(x, 3, 2, stride, padding)
    c = rng.standard_normal(cols.shape)
    back = col2im(c, x.shape, 3, 2, stride, padding)
    assert back.shape == x.shape and is_channel_major(back)
    assert abs(np.sum(cols * c) - np.sum(x * back)) < 1e-10 * np.sum(np.abs(cols * c))


@pytest.mark.parametrize("op", list(ROUTES))
@pytest.mark.parametrize(("stride", "padding"), CONV_CASES)
def test_every_route_gives_the_same_values_from_either_memory_layout(op, stride, padding):
    """The routes read their operands through their strides: an image in (N, C, H, W) memory and the
    same values in channel-major memory give the same results."""
    x, W, d = operands("3x3", stride, padding, seed=5)
    for route in usable_routes(op, W.shape, stride, padding):
        want = run(op, x, W, d, stride, padding, route)
        got = run(op, channel_major(x), W, channel_major(d), stride, padding, route)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=cmp(route, got, want))


def test_a_fast_route_is_taken_only_where_it_applies_and_pays():
    """The decisions of pick_route on ResNet-20's and LeNet's shapes (batch 2)."""

    def picks(op, x_shape, k_shape, stride, padding):
        return pick_route(op, x_shape, k_shape, stride, padding)

    k3, k1 = (16, 16, 3, 3), (16, 16, 1, 1)
    # eq (1): the grid where its columns are at most 1.2 times im2col's
    assert picks("conv2d", (2, 16, 32, 32), k3, 1, 1) == "grid"  # (34·34)/(32·32) = 1.13
    assert picks("conv2d", (2, 16, 16, 16), k3, 1, 1) == "im2col"  # (18·18)/(16·16) = 1.27
    assert picks("conv2d", (2, 16, 8, 8), k3, 1, 1) == "im2col"  # 1.56
    assert picks("conv2d", (2, 16, 32, 32), k3, 2, 1) == "im2col"  # strided
    assert picks("conv2d", (2, 16, 32, 32), k1, 1, 0) == "im2col"  # 1×1: im2col's columns are the rows
    # eqs (2)/(3): the flipped kernel where its columns are no larger than the general route's
    assert picks("conv2d_transpose", (2, 16, 8, 8), k3, 1, 1) == "flipped"
    assert picks("conv2d_transpose", (2, 6, 14, 14), (16, 6, 5, 5), 1, 0) == "col2im"  # LeNet: 16·14² > 6·10²
    assert picks("conv2d_transpose", (2, 16, 14, 14), (6, 16, 5, 5), 1, 0) == "flipped"
    assert picks("conv2d_transpose", (2, 16, 32, 32), k3, 2, 1) == "col2im"
    assert picks("conv2d_transpose", (2, 16, 8, 8), (16, 16, 2, 3), 1, 0) == "col2im"  # not square
    assert picks("conv2d_transpose", (2, 16, 8, 8), k1, 1, 1) == "col2im"  # padding ≥ k
    # eq (4): no columns with stride 1
    assert picks("conv2d_weight_grad", (2, 16, 8, 8), k3, 1, 1) == "grid"
    assert picks("conv2d_weight_grad", (2, 16, 8, 8), k1, 1, 0) == "grid"
    assert picks("conv2d_weight_grad", (2, 16, 32, 32), k3, 2, 1) == "im2col"
    # a route named by the caller is checked
    assert pick_route("conv2d", (2, 16, 8, 8), k3, 1, 1, route="grid") == "grid"
    with pytest.raises(ValueError, match="cannot take the route 'grid'"):
        pick_route("conv2d", (2, 16, 32, 32), k3, 2, 1, route="grid")
    with pytest.raises(ValueError, match="cannot take the route 'flipped'"):
        conv2d_transpose(np.zeros((1, 2, 4, 4)), np.zeros((2, 2, 2, 3)), (1, 2, 5, 3), route="flipped")


def test_the_layer_takes_its_routes_through_pick_route(monkeypatch):
    """Conv2D's three operations ask pick_route on every call (the flipped kernel's convolution too),
    and kept columns skip it: they are im2col's."""
    seen = []

    def spy(op, *args):
        route = pick_route(op, *args)
        seen.append((op, route))
        return route

    monkeypatch.setattr(conv_module, "pick_route", spy)
    rng = np.random.default_rng(6)
    layer = Conv2D(2, 2, 3, padding=1, rng=rng, dtype="float64")
    z = layer.forward(rng.standard_normal((1, 2, 32, 32)))
    layer.backward_input(z, layer.W)
    layer.weight_grads(z)
    assert seen == [
        ("conv2d", "grid"),
        ("conv2d_transpose", "flipped"),
        ("conv2d", "grid"),  # convᵀ as the convolution of δ with the flipped kernel
        ("conv2d_weight_grad", "grid"),
    ]
    seen.clear()
    layer.keep_columns = True
    layer.weight_grads(layer.forward(rng.standard_normal((1, 2, 32, 32))))
    assert seen == []


def test_the_grid_s_columns_live_in_a_reused_buffer_but_its_outputs_do_not():
    rng = np.random.default_rng(7)
    a, b = scratch(np, (3, 40), np.float64), scratch(np, (2, 50), np.float64)
    assert np.shares_memory(a, b) and not np.shares_memory(a, scratch(np, (3, 40), np.float32))
    x, W, _ = operands("3x3", 1, 1)
    y = conv2d(x, W, 1, 1, route="grid")
    kept = y.copy()
    conv2d(rng.standard_normal(x.shape), W, 1, 1, route="grid")  # the next call overwrites the columns
    np.testing.assert_array_equal(y, kept)


def test_1x1_columns_of_a_channel_major_image_are_a_view():
    """With stride 1 and no padding, a 1×1 kernel's columns are the image's channel rows: for a
    channel-major image im2col's copy copies nothing, and the columns are those rows."""
    x = channel_major(np.random.default_rng(19).standard_normal((2, 3, 4, 5)))
    cols = im2col(x, 1, 1, 1, 0)
    assert np.shares_memory(cols, x)
    np.testing.assert_array_equal(cols, x.transpose(1, 0, 2, 3).reshape(3, -1))


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


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (Conv2D, "Conv2D"),
        (lambda **kw: LocalConv2D(in_size=(8, 8), **kw), "LocalConv2D"),
    ],
)
@pytest.mark.parametrize(
    "bad", [{"c_in": 0}, {"c_out": -1}, {"kernel": 0}, {"stride": 0}, {"padding": -1}], ids=lambda d: next(iter(d))
)
def test_a_convolution_refuses_a_geometry_it_cannot_have_and_names_itself(make, name, bad):
    kw = {"c_in": 2, "c_out": 3, "kernel": 3, "stride": 1, "padding": 1, **bad}
    with pytest.raises(ValueError, match=f"^{name} needs positive channels, kernel and stride and padding >= 0"):
        make(**kw)

"""Locally connected layers: eq (1), the feedback path (eqs 2/3) and eq (4) against a plain loop over
the positions and finite differences; a layer whose kernels are all equal is a convolution; the
weight mirror's fixed point at every position and the noise it needs; the alignment primitives on
a kernel per position; the cost against a convolution.

The properties every weight layer has under every rule (eqs 2-4, 7, 17, KP's contraction, DFA,
the sign rules) run on a locally connected network in ``test_rules.py`` (``kind == "local"``).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import channel_major, check_grad, cmp

from minibp import angle, get_rule
from minibp.layers import Conv2D, LocalConv2D, get_activation
from minibp.layers.local import local_cols, local_forward, local_transpose, local_weight_grad
from minibp.network import Network
from minibp.rules import WeightMirror
from minibp.rules import primitives as P

CASES = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)]  # (stride, padding)
LAYOUTS = ["nchw", "channel-major"]


def loop_forward(x, W, stride, padding):
    """Eq (1) one position at a time, each through its own kernel ``W[r, s]``."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo, co, _, k, _ = W.shape
    y = np.zeros((x.shape[0], co, ho, wo))
    for r in range(ho):
        for s in range(wo):
            patch = xp[:, :, r * stride : r * stride + k, s * stride : s * stride + k]
            y[:, :, r, s] = np.tensordot(patch, W[r, s], axes=([1, 2, 3], [1, 2, 3]))
    return y


def loop_transpose(delta, F, x_shape, stride, padding):
    """``F δ``: each position's error back through ``F[r, s]``, added over its patch, one position at a time."""
    n, c, h, w = x_shape
    ho, wo, _, _, k, _ = F.shape
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    for r in range(ho):
        for s in range(wo):
            back = np.tensordot(delta[:, :, r, s], F[r, s], axes=([1], [0]))  # (N, C_in, k, k)
            dx[:, :, r * stride : r * stride + k, s * stride : s * stride + k] += back
    return dx[:, :, padding : padding + h, padding : padding + w]


def loop_weight_grad(x, delta, k, stride, padding):
    """Eq (4) one position at a time: ``Σ_batch δ[:, :, r, s] ⊗ patch(x, r, s)``."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, co, ho, wo = delta.shape
    grad = np.zeros((ho, wo, co, x.shape[1], k, k))
    for r in range(ho):
        for s in range(wo):
            patch = xp[:, :, r * stride : r * stride + k, s * stride : s * stride + k]
            grad[r, s] = np.tensordot(delta[:, :, r, s], patch, axes=([0], [0]))
    return grad


def layer_and_batch(stride, padding, seed=0, c_in=2, c_out=3, k=3, size=(7, 6), n=4):
    rng = np.random.default_rng(seed)
    layer = LocalConv2D(c_in, c_out, k, size, stride=stride, padding=padding, rng=rng, dtype="float64")
    layer.params["b"][...] = rng.standard_normal(layer.b.shape)
    x = rng.standard_normal((n, c_in, *size))
    return layer, x, rng


# --------------------------------------------------------------------------- against a loop


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("stride", "padding"), CASES)
def test_forward_feedback_and_weight_gradient_match_a_loop_over_positions(stride, padding, layout):
    layer, x, rng = layer_and_batch(stride, padding)
    if layout == "channel-major":
        x = channel_major(x)
    z = layer.forward(x)
    ref = loop_forward(x, layer.W, stride, padding) + layer.b
    np.testing.assert_allclose(z, ref, rtol=1e-12, atol=1e-12, err_msg=cmp("eq (1)", z, ref))
    delta = rng.standard_normal(z.shape)
    if layout == "channel-major":
        delta = channel_major(delta)
    F = rng.standard_normal(layer.W.shape)  # a B of W's untied shape (eq 3)
    fb, ref = layer.backward_input(delta, F), loop_transpose(delta, F, x.shape, stride, padding)
    np.testing.assert_allclose(fb, ref, rtol=1e-12, atol=1e-12, err_msg=cmp("eq (3)", fb, ref))
    grads = layer.weight_grads(delta)
    ref = loop_weight_grad(x, delta, layer.k, stride, padding)
    np.testing.assert_allclose(grads["W"], ref, rtol=1e-12, atol=1e-12, err_msg=cmp("eq (4)", grads["W"], ref))
    np.testing.assert_allclose(grads["b"], delta.sum(axis=0), rtol=1e-12)


def test_kept_columns_give_the_same_gradient_bit_for_bit():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 6, 6))
    grads = []
    for keep in (False, True):
        layer = LocalConv2D(
            2, 3, 3, (6, 6), padding=1, rng=np.random.default_rng(0), dtype="float64", keep_columns=keep
        )
        z = layer.forward(x)
        assert (layer.cols is not None) == keep
        grads.append(layer.weight_grads(np.ones_like(z))["W"])
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.parametrize(("stride", "padding"), CASES)
def test_gradients_match_finite_differences(stride, padding):
    """``L = Σ g ⊙ z`` with ``z`` the layer's output: its gradients in the input (eq 2 with ``F = W``),
    in ``W`` (eq 4) and in ``b``, against central differences (float64)."""
    layer, x, rng = layer_and_batch(stride, padding, seed=1)
    g = rng.standard_normal(layer.forward(x).shape)

    def loss() -> float:
        return float(np.sum(g * layer.forward(x)))

    layer.forward(x)
    dx = layer.backward_input(g, layer.transpose_weight())
    grads = layer.weight_grads(g)
    check_grad(loss, x, dx, rng)
    check_grad(loss, layer.params["W"], grads["W"], rng)
    check_grad(loss, layer.params["b"], grads["b"], rng)


def test_a_network_of_local_layers_gets_backprops_gradient():
    """Backprop through two locally connected layers, tanh and a dense layer: every param's gradient
    against finite differences of the loss (float64)."""
    from conftest import local_net_with_rule

    from minibp.losses import SoftmaxCrossEntropy

    net, rule, x, y = local_net_with_rule("bp")
    loss_fn = SoftmaxCrossEntropy()

    def loss() -> float:
        return float(loss_fn(net.forward(x), y)[0])

    net.backward(loss_fn(net.forward(x), y)[1], rule)
    rng = np.random.default_rng(2)
    for layer in net.weight_layers:
        for name in ("W", "b"):
            check_grad(loss, layer.params[name], layer.grads[name], rng, n_dirs=3)


def test_a_local_layer_with_equal_kernels_is_a_convolution():
    """Tied back together (every position's kernel the same), eq (1) and the feedback path are the
    convolution's, and the convolution's kernel gradient is the sum of the positions' (eq 4)."""
    rng = np.random.default_rng(4)
    conv = Conv2D(2, 3, 3, stride=2, padding=1, bias=False, rng=rng, dtype="float64")
    local = LocalConv2D(2, 3, 3, (7, 6), stride=2, padding=1, bias=False, rng=rng, dtype="float64")
    local.params["W"][...] = conv.W  # broadcast over (Ho, Wo)
    x = rng.standard_normal((3, 2, 7, 6))
    z = conv.forward(x)
    np.testing.assert_allclose(local.forward(x), z, rtol=1e-12, atol=1e-12)
    d = rng.standard_normal(z.shape)
    np.testing.assert_allclose(local.backward_input(d, local.W), conv.backward_input(d, conv.W), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        local.weight_grads(d)["W"].sum(axis=(0, 1)), conv.weight_grads(d)["W"], rtol=1e-12, atol=1e-12
    )


def test_local_cols_are_every_positions_patch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 5))
    cols = local_cols(x, 3, 2, 1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ho, wo = 3, 3
    assert cols.shape == (ho * wo, 2, 3 * 9)
    for r in range(ho):
        for s in range(wo):
            np.testing.assert_array_equal(
                cols[r * wo + s], xp[:, :, 2 * r : 2 * r + 3, 2 * s : 2 * s + 3].reshape(2, -1)
            )


def test_bad_shapes_are_refused_with_what_was_expected():
    layer = LocalConv2D(2, 3, 3, (7, 6), rng=np.random.default_rng(0))
    with pytest.raises(
        ValueError, match=r"expects input of shape \(batch, 2, 7, 6\), got \(1, 2, 8, 6\): .*one input size"
    ):
        layer.forward(np.zeros((1, 2, 8, 6), np.float32))
    with pytest.raises(ValueError, match="positive channels"):
        LocalConv2D(0, 3, 3, (7, 6))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        LocalConv2D(2, 3, 5, (3, 3))


def test_the_cost_against_a_shared_convolution():
    """A kernel per position: ``Ho·Wo`` times the convolution's weights, and a bias per unit."""
    local = LocalConv2D(6, 16, 5, (14, 14), padding=2, rng=np.random.default_rng(0))
    conv = Conv2D(6, 16, 5, padding=2, rng=np.random.default_rng(0))
    assert local.positions == 14 * 14
    assert local.W.size == local.positions * conv.W.size == 470_400
    assert local.b.size == 16 * 14 * 14
    assert local.init_std == conv.init_std and local.sign_scale == conv.sign_scale


# --------------------------------------------------------------------------- the weight mirror


def mirrored(layer, sigma, batch_size, passes, decay=0.02, lr=0.04, act="identity"):
    net = Network([layer, get_activation(act)])
    rule = WeightMirror(sigma=sigma, lr=lr, decay=decay, batch_size=batch_size, seed=1)
    net.init_feedback(rule, np.random.default_rng(7))
    start = [
        angle(layer.params["B"][r, s], layer.W[r, s])
        for r in range(layer.out_size[0])
        for s in range(layer.out_size[1])
    ]
    for _ in range(passes):
        rule.mirror(net)
    return start


def test_mirror_noise_covers_every_positions_patch():
    """Mirror mode fires noise at the whole padded grid with no padding: the same positions as in
    training, each patch all noise (a padded input would leave zeros in the border patches)."""
    layer = LocalConv2D(2, 3, 3, (6, 5), stride=2, padding=1, rng=np.random.default_rng(0), dtype="float64")
    assert layer.mirror_input_shape == (2, 8, 7)
    noise = np.random.default_rng(1).standard_normal((4, *layer.mirror_input_shape))
    post = layer.mirror_forward(noise, bias=False)
    assert post.shape[2:] == layer.out_size
    np.testing.assert_allclose(post, loop_forward(noise, layer.W, 2, 0), rtol=1e-12)


def test_weight_mirror_B_settles_at_each_positions_own_W():
    """Eq (7) with decay at every position: ``B[r, s] → (η_B/λ_B) σ² W[r, s]`` (eqs 11–12 with the
    identity), each position's B from its own patches: aligned from a random start, at the predicted
    multiple, at every position, and so not at a shared kernel (the positions' W differ)."""
    layer = LocalConv2D(3, 4, 3, (5, 5), stride=2, padding=1, rng=np.random.default_rng(2), dtype="float64")
    sigma, ratio = 1.5, 2.0
    start = mirrored(layer, sigma, 512, 1500)
    B, W = layer.params["B"], layer.W
    for r in range(3):
        for s in range(3):
            scale = float(np.sum(B[r, s] * W[r, s]) / np.sum(W[r, s] ** 2))
            assert abs(scale / (ratio * sigma**2) - 1) < 0.05, (r, s, scale)
            assert angle(B[r, s], W[r, s]) < 3, (r, s, angle(B[r, s], W[r, s]))
    assert min(start) > 60
    assert angle(B[0, 0], W[1, 1]) > 60  # another position's kernel: no sharing


def test_a_local_layer_needs_more_noise_per_weight_than_a_convolution():
    """One mirror batch gives a convolution's kernel ``N·Ho·Wo`` patches to average over and each of a
    local layer's kernels ``N``: after one pass (no decay, no start: B is the pass's correlation) the
    conv kernel's error is smaller than every position's, and ``Ho·Wo`` times the noise puts a
    position's error at the convolution's."""
    rng = np.random.default_rng(3)
    conv = Conv2D(3, 4, 3, bias=False, rng=rng, dtype="float64")
    local = LocalConv2D(3, 4, 3, (6, 6), bias=False, rng=rng, dtype="float64")
    local.params["W"][...] = conv.W  # the same kernel everywhere: the same target for both
    positions = local.positions  # 16, as the convolution's mirror image has

    def error(layer, batch_size):
        noise = np.random.default_rng(11).standard_normal((batch_size, *layer.mirror_input_shape))
        corr = layer.mirror_correlation(noise, layer.mirror_forward(noise, bias=False))
        return corr, layer.W

    c_corr, c_w = error(conv, 32)
    conv_angle = angle(c_corr, c_w)
    l_corr, l_w = error(local, 32)
    local_angles = [angle(l_corr[r, s], l_w[r, s]) for r in range(4) for s in range(4)]
    assert conv_angle < min(local_angles), (conv_angle, local_angles)
    l_corr, l_w = error(local, 32 * positions)
    more = np.median([angle(l_corr[r, s], l_w[r, s]) for r in range(4) for s in range(4)])
    assert more < np.median(local_angles) / 2 and more < 2 * conv_angle, (more, conv_angle)


# --------------------------------------------------------------------------- the alignment primitives


def test_primitive_gradients_on_a_kernel_per_position_match_finite_differences():
    """Each primitive of Kunin et al. (2020) on a locally connected layer: ``∇_B`` against central
    differences of its loss, ``E`` the mean over the batch (each position's B is its own)."""
    layer, x, rng = layer_and_batch(2, 1, seed=6, n=3)
    B = rng.standard_normal(layer.W.shape)
    maps = P.layer_maps(layer, x.shape)
    assert isinstance(maps, P.LocalMaps)
    r = maps.forward(x, bias=True)
    np.testing.assert_allclose(r, layer.forward(x), rtol=1e-12)
    for name, primitive in P.PRIMITIVES.items():
        loss, grad = primitive(maps, B, x, r)
        assert grad.shape == B.shape, name
        check_grad(lambda primitive=primitive: float(primitive(maps, B, x, r)[0]), B, grad, rng, n_dirs=3)
    # amp's gradient is the weight mirror's Hebbian term: −E[x rᵀ] per position, over the batch
    expected = -local_weight_grad(x, r, layer.W.shape, 2, 1) / len(x)
    np.testing.assert_allclose(P.amp(maps, B, x, r)[1], expected, rtol=1e-12)
    np.testing.assert_allclose(
        maps.reconstruct(r, B), local_transpose(r, B, x.shape, 2, 1), rtol=1e-12
    )  # B r: eq (3)'s feedback map
    np.testing.assert_allclose(maps.backward(x, B), local_forward(x, B, 2, 1), rtol=1e-12)


@pytest.mark.parametrize("rule_name", ["sa", "aa", "ia"])
def test_the_alignment_family_aligns_each_positions_B(rule_name):
    """SA, AA and IA (noise mode for AA and IA) drive each position's B toward its own W (IA's
    ridge decoder sits below 90° of Wᵀ, not at it): the mean angle over positions falls."""
    from minibp.layers import Tanh

    rng = np.random.default_rng(8)
    layer = LocalConv2D(2, 3, 3, (5, 5), stride=2, padding=1, rng=rng, dtype="float64")
    net = Network([layer, Tanh()])
    rule = get_rule(rule_name, seed=1)
    net.init_feedback(rule, np.random.default_rng(9))

    def mean_angle() -> float:
        return float(np.mean([angle(layer.params["B"][r, s], layer.W[r, s]) for r in range(3) for s in range(3)]))

    before = mean_angle()
    x = rng.standard_normal((16, 2, 5, 5))
    for _ in range(300):
        if rule.source == "noise":
            rule.after_step(net)
        else:
            layer.forward(x)
            layer.grads = {}
            rule.feedback_grads(layer)
            layer.params["B"] -= 50.0 * layer.grads["B"]
    assert mean_angle() < before - 20, (before, mean_angle())

"""Each learning rule against its equation: BP (2), FA (3), SS, KP (13)-(18), WM (5)-(7), (11)-(12).

The properties every weight layer must have are written once and run on three kinds of network
(the ``kind`` fixture): a dense MLP, a small convolutional network (two convolutions and a dense
output layer), and its twin with locally connected layers (a kernel per output position). A dense
``B`` has the shape of ``Wᵀ``; a convolution's ``B`` is a kernel of ``W``'s shape that the
transposed convolution reads; a locally connected layer's ``B`` is a kernel per position, ``W``'s
untied shape. The helpers below compute each side of an
equation without the layer's own feedback methods.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from conftest import cmp, conv_net_with_rule, local_net_with_rule, mlp_batch, mlp_with_rule

from minibp import SGD, angle, get_rule, matrix_angles, mlp, train_step
from minibp.layers import BatchNorm, Conv2D, Dense, LocalConv2D, SynapticScaling, get_activation
from minibp.layers.conv import conv2d_transpose, conv2d_weight_grad
from minibp.layers.local import local_transpose, local_weight_grad
from minibp.layers.residual import Residual
from minibp.losses import SoftmaxCrossEntropy
from minibp.models import resnet20
from minibp.network import Network
from minibp.rules import PAPER_RULES, RULES, WeightMirror

# --------------------------------------------------------------------------- two kinds of network


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of network, for the properties that every weight layer must have."""

    name: str  # "dense": an MLP 6-9-8-4; "conv": two convolutions and a dense output layer; "local": its twin
    mirror_layer: tuple[int, int]  # a single mirrored layer's inputs and outputs (units, or channels)
    mirror_batch_size: int  # noise samples per mirror batch: vectors, or images of 16 patches each

    def net(self, rule_name):
        """A float64 network of tanh units under ``rule_name`` (feedback weights drawn) and a batch ``(x, y)``."""
        if self.name == "dense":
            return (*mlp_with_rule(rule_name, sizes=(6, 9, 8, 4)), *mlp_batch())
        if self.name == "local":
            return local_net_with_rule(rule_name)
        return conv_net_with_rule(rule_name)

    def layer(self, n_in, n_out, rng):
        """One float64 weight layer: ``Dense(n_in, n_out)``, or a 3×3 convolution ``n_in → n_out`` channels
        (locally connected: on 5×5 inputs, 3×3 positions)."""
        if self.name == "dense":
            return Dense(n_in, n_out, rng=rng, dtype="float64")
        if self.name == "local":
            return LocalConv2D(n_in, n_out, 3, (5, 5), stride=2, padding=1, rng=rng, dtype="float64")
        return Conv2D(n_in, n_out, 3, stride=2, padding=1, rng=rng, dtype="float64")


@pytest.fixture(
    params=[Kind("dense", (8, 5), 512), Kind("conv", (3, 4), 64), Kind("local", (3, 4), 512)],
    ids=lambda kind: kind.name,
)
def kind(request) -> Kind:
    return request.param


def transposed(layer, W):
    """``W`` in the layout of ``B``, without the layer's help: ``Wᵀ`` for a dense layer; for a
    convolution the kernel as it is (the transposed convolution reads it unflipped), and for a locally
    connected layer its kernels as they are."""
    return W.T if isinstance(layer, Dense) else W


def fed_back(layer, F, delta, in_shape):
    """``F δ_{l+1}`` at the layer's input (of shape ``in_shape``): the matrix product one example at a
    time for a dense layer, the transposed convolution with the kernel ``F`` for a convolution."""
    if isinstance(layer, Dense):
        return np.stack([F @ d for d in delta])  # the paper's column vectors
    if isinstance(layer, LocalConv2D):
        return local_transpose(delta, F, in_shape, layer.stride, layer.padding)
    return conv2d_transpose(delta, F, in_shape, layer.stride, layer.padding)


def weight_gradient(layer, y_l, delta):
    """Eq (4)'s ``δ_{l+1} y_lᵀ`` summed over the batch (for a kernel, over every patch too)."""
    if isinstance(layer, Dense):
        return delta.T @ y_l
    if isinstance(layer, LocalConv2D):
        return local_weight_grad(y_l, delta, layer.W.shape, layer.stride, layer.padding)
    return conv2d_weight_grad(y_l, delta, layer.W.shape, layer.stride, layer.padding)


def xiao_scale(layer):
    """Sign-symmetry's fixed scale (Xiao et al. 2018): ``1/√fan_in`` dense, ``√(2/(k²·C_out))`` for a kernel."""
    if isinstance(layer, Dense):
        return 1 / np.sqrt(layer.fan_in)
    return np.sqrt(2 / (layer.k**2 * layer.c_out))


def forward_and_back(net, rule, x):
    """The input ``y_l`` of every weight layer (the forward path run layer by layer), and ``δ`` at the
    output of every weight layer from ``rule``'s feedback path, started from a random output error.

    (Not a softmax's: its rows sum to 0, which would hide a feedback error along the all-ones
    direction and make exact zeros, all rounding, wherever a row of sign(W)ᵀ is constant.)"""
    inputs, h = [], x
    for layer in net.layers:
        if layer.has_weights:
            inputs.append(h)
        h = layer.forward(h)
    return inputs, net.backward(np.random.default_rng(7).standard_normal(h.shape), rule)


def assert_deltas_follow(net, inputs, deltas, F_of):
    """Eqs (2)-(3): ``δ_l = φ'(y_l) ⊙ F_{l+1} δ_{l+1}`` at every weight layer but the last, with
    ``F_{l+1} = F_of(layer l+1)`` and tanh' = 1 − y² (``y_l`` is the input of layer l+1: the tanh's
    output, flattened before a dense layer)."""
    layers = net.weight_layers
    for k in range(len(layers) - 1):
        above, y_k = layers[k + 1], inputs[k + 1]
        expected = ((1 - y_k**2) * fed_back(above, F_of(above), deltas[k + 1], y_k.shape)).reshape(deltas[k].shape)
        np.testing.assert_allclose(deltas[k], expected, rtol=1e-12, err_msg=cmp("δ", deltas[k], expected))


# --------------------------------------------------------------------------- the feedback path, eqs (2)-(3)


def test_rules_are_selectable_by_name():
    assert list(RULES)[:5] == list(PAPER_RULES) == ["bp", "fa", "ss", "wm", "kp"]
    assert {"dfa", "frsf", "brsf"} <= set(RULES)
    for name in RULES:
        assert get_rule(name).name == name
    with pytest.raises(ValueError, match="unknown learning rule 'xx'"):
        get_rule("xx")
    with pytest.raises(ValueError, match="takes no options"):
        get_rule("fa", sigma=1.0)


@pytest.mark.parametrize("name", ["fa", "wm", "kp"])
def test_feedback_delta_is_phi_prime_times_B_delta(kind, name):
    """Eq (3): δ_l = φ'(y_l) ⊙ B_{l+1} δ_{l+1}, with the layer's own B: fixed and random for FA,
    learned for WM and KP (here a B made unlike both Wᵀ and sign(Wᵀ), so no other feedback passes).
    For a convolution B is a kernel of W's shape and B δ the transposed convolution with it."""
    net, rule, x, _ = kind.net(name)
    for layer in net.weight_layers:  # B's signs disagree with Wᵀ's: sign-symmetric feedback would differ
        WT = transposed(layer, layer.W)
        assert layer.params["B"].shape == WT.shape and not np.allclose(layer.params["B"], WT)  # as drawn
        layer.params["B"][:] = -WT * np.random.default_rng(0).uniform(0.5, 2, WT.shape)
    inputs, deltas = forward_and_back(net, rule, x)
    assert_deltas_follow(net, inputs, deltas, lambda layer: layer.params["B"])


def test_bp_delta_uses_W_transpose(kind):
    """Eq (2): δ_l = φ'(y_l) ⊙ W_{l+1}ᵀ δ_{l+1}. The feedback matrix is W itself, read in place (for a
    kernel, the very array): every matrix angle is exactly 0."""
    net, rule, x, _ = kind.net("bp")
    inputs, deltas = forward_and_back(net, rule, x)
    assert_deltas_follow(net, inputs, deltas, lambda layer: transposed(layer, layer.W))
    assert matrix_angles(net, rule) == [0.0] * len(net.weight_layers)
    for layer in net.weight_layers:
        assert np.shares_memory(rule.feedback_matrix(layer), layer.W)  # weight transport
        if isinstance(layer, Conv2D):
            assert rule.feedback_matrix(layer) is layer.W


def test_ss_feeds_back_only_signs_at_a_fixed_scale(kind):
    """Sign-symmetry (Xiao et al. 2018): F = sign(W)ᵀ times a scale fixed by the layer's shape alone,
    1/√fan_in for a dense layer and √(2/(k²·C_out)) for a kernel; δ follows eq (3) with that F."""
    net, rule, x, _ = kind.net("ss")
    for layer in net.weight_layers:
        F = rule.feedback_matrix(layer)
        np.testing.assert_array_equal(F, np.sign(transposed(layer, layer.W)) * xiao_scale(layer))
        assert set(np.unique(np.abs(F))) == {xiao_scale(layer)}
    inputs, deltas = forward_and_back(net, rule, x)
    assert_deltas_follow(net, inputs, deltas, lambda layer: np.sign(transposed(layer, layer.W)) * xiao_scale(layer))


@pytest.mark.parametrize("name", ["fa", "wm", "kp", "ss", "dfa", "frsf", "brsf"])
def test_only_backprop_reads_W_magnitudes_in_the_feedback_path(kind, name):
    """Rescaling W's entries (keeping signs) changes backprop's feedback but no other rule's."""
    net, rule, _, _ = kind.net(name)
    before = [np.array(rule.feedback_matrix(layer)) for layer in net.weight_layers]
    for layer in net.weight_layers:
        layer.params["W"] *= np.random.default_rng(5).uniform(0.1, 3.0, layer.W.shape)  # same signs, new sizes
    after = [np.array(rule.feedback_matrix(layer)) for layer in net.weight_layers]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)
    bp, rule_bp, _, _ = kind.net("bp")
    f0 = np.array(rule_bp.feedback_matrix(bp.weight_layers[0]))
    bp.weight_layers[0].params["W"] *= 2
    assert not np.array_equal(rule_bp.feedback_matrix(bp.weight_layers[0]), f0)


def test_frsf_feeds_back_signs_at_fixed_random_magnitudes(kind):
    """frSF: F = sign(W)ᵀ ⊙ |R| with |R| (kept as B) drawn once, non-negative, never trained; δ by eq (3)."""
    net, rule, x, _ = kind.net("frsf")
    B0 = [layer.params["B"].copy() for layer in net.weight_layers]
    for layer, b0 in zip(net.weight_layers, B0):
        assert (b0 >= 0).all() and len(np.unique(b0)) > b0.size // 2  # random magnitudes, not one scale
        np.testing.assert_array_equal(rule.feedback_matrix(layer), np.sign(transposed(layer, layer.W)) * b0)
    inputs, deltas = forward_and_back(net, rule, x)
    assert_deltas_follow(net, inputs, deltas, lambda layer: np.sign(transposed(layer, layer.W)) * layer.params["B"])
    SGD(0.1, momentum=0.9, weight_decay=0.1).step(net.param_layers)
    for layer, b0 in zip(net.weight_layers, B0):
        np.testing.assert_array_equal(layer.params["B"], b0)


def test_brsf_draws_new_magnitudes_every_batch_from_seed_and_step(kind):
    """brSF: F = sign(W)ᵀ ⊙ |R_t|, |R_t| redrawn after every step from (seed, step, layer), so the same
    step gives the same F (and a checkpoint's step count restores it); δ by eq (3) with that F."""
    net, _, x, _ = kind.net("brsf")
    rule = get_rule("brsf", seed=3)  # it keeps no B: nothing to draw at the start
    layer = net.weight_layers[-1]
    F0 = np.array(rule.feedback_matrix(layer))
    np.testing.assert_array_equal(rule.feedback_matrix(layer), F0)
    np.testing.assert_array_equal(np.abs(F0) > 0, np.ones_like(F0, dtype=bool))
    np.testing.assert_array_equal(np.sign(F0), np.sign(transposed(layer, layer.W)))
    inputs, deltas = forward_and_back(net, rule, x)
    assert_deltas_follow(net, inputs, deltas, lambda above: np.array(rule.feedback_matrix(above)))
    rule.after_step(net)
    F1 = np.array(rule.feedback_matrix(layer))
    assert not np.allclose(np.abs(F1), np.abs(F0)) and np.array_equal(np.sign(F1), np.sign(F0))
    again = get_rule("brsf", seed=3)
    again.load_state(rule.state())
    np.testing.assert_array_equal(again.feedback_matrix(layer), F1)
    other_seed = get_rule("brsf", seed=4)
    other_seed.load_state(rule.state())
    assert not np.array_equal(other_seed.feedback_matrix(layer), F1)


def test_dfa_sends_the_output_error_to_every_layer_through_its_own_B(kind):
    """DFA (Nøkland 2016): δ_l = φ'(y_l) ⊙ B_{l+1} e with e the output error, whatever δ_{l+1} is;
    each B maps the K output errors to one input sample of its layer (C·H·W values for a kernel)."""
    net, rule, x, _ = kind.net("dfa")
    inputs, h = [], x
    for layer in net.layers:
        if layer.has_weights:
            inputs.append(h)
        h = layer.forward(h)
    e = np.random.default_rng(7).standard_normal(h.shape)
    deltas = net.backward(e, rule)
    layers = net.weight_layers
    for k in range(len(layers) - 1):
        above, y_k = layers[k + 1], inputs[k + 1]
        assert above.params["B"].shape == (y_k[0].size, e.shape[1])
        expected = ((1 - y_k**2) * (e @ above.params["B"].T).reshape(y_k.shape)).reshape(deltas[k].shape)
        np.testing.assert_allclose(deltas[k], expected, rtol=1e-12, err_msg=cmp("δ", deltas[k], expected))
    np.testing.assert_array_equal(deltas[-1], e)  # the output layer's own δ is the error


def test_dfa_matrix_angle_is_to_backprops_linear_path_and_nan_where_there_is_none(kind):
    net, rule, _, _ = kind.net("dfa")
    angles = matrix_angles(net, rule)
    top = net.weight_layers[-1]
    assert angles[-1] == pytest.approx(angle(top.params["B"], top.W.T))  # at the top, DFA is FA
    if kind.name == "dense":
        W1, W2, W3 = (layer.W for layer in net.weight_layers)
        assert angles[1] == pytest.approx(angle(net.weight_layers[1].params["B"], W2.T @ W3.T))
        assert angles[0] == pytest.approx(angle(net.weight_layers[0].params["B"], W1.T @ W2.T @ W3.T))
    else:
        assert np.isnan(angles[:-1]).all()  # a convolution above: no single matrix stands in B's place


def test_dfa_needs_to_see_a_convolutions_input_to_shape_its_B():
    from minibp.models import lenet

    net = lenet((1, 8, 8), 10, width=2)
    with pytest.raises(ValueError, match=r"give net.init_feedback\(rule, rng, example=x\[:1\]\)"):
        net.init_feedback(get_rule("dfa"), np.random.default_rng(0))
    net.init_feedback(get_rule("dfa"), np.random.default_rng(0), example=np.zeros((1, 1, 8, 8), np.float32))
    assert net.weight_layers[1].params["B"].shape == (2 * 4 * 4, 10)


# --------------------------------------------------------------------------- the forward update (4), KP (13)-(18)


def test_fa_B_never_changes_and_W_update_is_eq4(kind):
    net, rule, x, _ = kind.net("fa")
    B0 = [layer.params["B"].copy() for layer in net.weight_layers]
    W0 = [layer.W.copy() for layer in net.weight_layers]
    inputs, deltas = forward_and_back(net, rule, x)
    SGD(0.1).step(net.param_layers)
    for layer, b0, w0, d, y_l in zip(net.weight_layers, B0, W0, deltas, inputs):
        np.testing.assert_array_equal(layer.params["B"], b0)
        np.testing.assert_allclose(layer.W, w0 - 0.1 * weight_gradient(layer, y_l, d), rtol=1e-12)  # ΔW = −η δ yᵀ


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_kp_difference_decays_exactly(kind, momentum):
    """Eqs (13)-(18): B gets exactly W's update (in B's layout), so with decay λ = η·wd, W − Bᵀ shrinks
    by (1 − λ) per step without momentum; with it (minibp's addition) by the heavy-ball recursion of
    the decay alone."""
    net, rule, x, y = kind.net("kp")
    lr, wd, steps = 0.05, 0.3, 25
    opt = SGD(lr, momentum=momentum, weight_decay=wd)
    lam = lr * wd
    d0 = [np.linalg.norm(transposed(layer, layer.W) - layer.params["B"]) for layer in net.weight_layers]
    for _ in range(steps):
        train_step(net, rule, SoftmaxCrossEntropy(), opt, x, y)
    v, d = 0.0, 1.0  # heavy ball on ½·wd·‖D‖²: the same linear recursion for every entry of D
    for t in range(steps):
        v = wd * d if t == 0 else momentum * v + wd * d
        d -= lr * v
    if momentum == 0:
        assert abs(d - (1 - lam) ** steps) < 1e-12
    for layer, n0 in zip(net.weight_layers, d0):
        D = transposed(layer, layer.W) - layer.params["B"]
        if momentum == 0:
            assert abs(np.linalg.norm(D) - (1 - lam) ** steps * n0) < 1e-10  # eqs (13)-(14)
        assert abs(np.linalg.norm(D) - abs(d) * n0) < 1e-10, (np.linalg.norm(D), abs(d) * n0)
    assert max(matrix_angles(net, rule)) < 90


def test_kp_B_gradient_is_eq17(kind):
    """ΔB = −η y_l δ_{l+1}ᵀ (eq 17), computed from B's own input y_l and teaching signal δ_{l+1}: W's
    gradient (eq 4) in B's layout, transposed for a dense layer, the kernel's own for a convolution."""
    net, rule, x, _ = kind.net("kp")
    inputs, deltas = forward_and_back(net, rule, x)
    for layer, d, y_l in zip(net.weight_layers, deltas, inputs):
        np.testing.assert_allclose(layer.grads["B"], transposed(layer, weight_gradient(layer, y_l, d)), rtol=1e-12)
        np.testing.assert_array_equal(layer.grads["B"], transposed(layer, layer.grads["W"]))


# --------------------------------------------------------------------------- the weight mirror, eqs (5)-(12)


def test_transposing_rule_estimates_sigma2_WT():
    """Eq (5): for x with iid zero-mean entries of variance σ², E[x yᵀ] = σ² Wᵀ when y = W x."""
    rng = np.random.default_rng(6)
    layer = Dense(20, 12, rng=rng, dtype="float64")
    sigma, n = 0.7, 200_000
    x = rng.standard_normal((n, 20)) * sigma
    y = layer.mirror_forward(x, bias=False)
    est = layer.mirror_correlation(x, y)
    target = sigma**2 * layer.W.T
    rel = np.linalg.norm(est - target) / np.linalg.norm(target)
    # Monte Carlo error ~ sqrt(n_in / n): 0.01 here; a missing σ² or transpose is off by O(1)
    assert rel < 0.03, cmp("E[x yᵀ]", est, target)
    assert angle(est, layer.W.T) < 2
    # the weight mirror's update for a dense layer (folded into fewer passes) is eq (7) with this estimate
    B0 = rng.standard_normal(layer.W.T.shape)
    layer.params["B"] = layer.as_feedback(B0)
    layer.mirror_update(x, y, lr=0.3, decay=0.1)
    np.testing.assert_allclose(layer.params["B"], 0.9 * B0 + 0.3 * est, rtol=1e-10)


def test_dense_mirror_update_is_the_fast_path_of_the_generic_eq7_update():
    """Dense.mirror_update folds lr / N into y_{l+1}; it must give the generic eq (7) update's B."""
    from minibp.layers.base import WeightLayer

    rng = np.random.default_rng(11)
    fast, generic = (Dense(9, 5, rng=np.random.default_rng(3), dtype="float64") for _ in range(2))
    B0 = rng.standard_normal((9, 5))
    fast.params["B"], generic.params["B"] = fast.as_feedback(B0), generic.as_feedback(B0)
    pre = rng.standard_normal((32, 9))
    post = np.tanh(fast.mirror_forward(pre, bias=False))
    fast.mirror_update(pre, post, lr=0.7, decay=0.2)
    WeightLayer.mirror_update(generic, pre, post, lr=0.7, decay=0.2)
    assert not np.allclose(fast.params["B"], B0)
    np.testing.assert_allclose(fast.params["B"], generic.params["B"], rtol=1e-12, atol=1e-14)


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


def _mirror_one_layer(biases, bias_blocking, steps=6000, seed=7):
    """Mirror a single tanh layer from a random B; returns the angle ∠(B, Wᵀ) before and after,
    and the layer.

    The rows of W get equal norms, so with Gaussian noise every unit's mean slope
    E[φ'(w_i·y + b_i)] is the same whenever the b_i are: the assumption
    φ'(b) ≈ φ'_s I under which eq (11) holds.
    """
    rng = np.random.default_rng(seed)
    layer = Dense(10, 6, rng=rng, dtype="float64")
    layer.params["W"] /= np.linalg.norm(layer.W, axis=1, keepdims=True)
    layer.params["b"][:] = biases
    net = Network([layer, get_activation("tanh")])
    rule = WeightMirror(sigma=0.5, lr=0.002, decay=0.002, batch_size=512, bias_blocking=bias_blocking, seed=seed)
    net.init_feedback(rule, np.random.default_rng(seed + 1))
    start = angle(layer.params["B"], layer.W.T)
    for _ in range(steps):
        rule.mirror(net)
    return start, angle(layer.params["B"], layer.W.T), layer


def test_weight_mirror_with_bias_blocking_aligns_despite_unequal_biases():
    """Eq (12): with biases blocked, E[ΔB] ∝ φ'(0) Wᵀ whatever the biases are."""
    start, end, _ = _mirror_one_layer(biases=np.linspace(-1.5, 1.5, 6), bias_blocking=True)
    assert start > 60 and end < 1, (start, end)


def test_weight_mirror_without_bias_blocking_aligns_when_biases_are_equal():
    """Eq (11): without bias-blocking, E[ΔB] ∝ φ'(b) Wᵀ, a scalar multiple when all b are equal."""
    start, end, _ = _mirror_one_layer(biases=np.full(6, 0.8), bias_blocking=False)
    assert start > 60 and end < 1, (start, end)


def test_weight_mirror_without_bias_blocking_is_skewed_by_unequal_biases():
    """The failure eq (12) repairs: unequal biases scale Wᵀ's columns by different φ'(b_i)."""
    _, end, _ = _mirror_one_layer(biases=np.linspace(-1.5, 1.5, 6), bias_blocking=False)
    assert end > 5, end


def test_weight_mirror_without_bias_blocking_scales_each_column_by_eq11s_factor():
    """Eq (11) with decay, unit by unit: without bias-blocking column i of B settles at
    (η_B/λ_B) σ² E[φ'(w_i·y + b_i)] w_iᵀ, the mean slope at that unit's own bias (here η_B = λ_B and
    ‖w_i‖ = 1, so w_i·y ~ N(0, σ²)); the expectation by Gauss–Hermite quadrature."""
    biases = np.linspace(-1.5, 1.5, 6)
    _, _, layer = _mirror_one_layer(biases=biases, bias_blocking=False)
    sigma = 0.5
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)  # E[f(z)], z ~ N(0, 1)
    slope = [weights @ (1 - np.tanh(sigma * nodes + b) ** 2) / weights.sum() for b in biases]
    fitted = np.einsum("ji,ij->i", layer.params["B"], layer.W)  # B's column i along the unit row w_i
    np.testing.assert_allclose(fitted, sigma**2 * np.array(slope), rtol=0.03, err_msg=cmp("B/Wᵀ", fitted, slope))
    assert max(slope) / min(slope) > 3  # the factors differ: a wrong bias would show


def _per_unit(layer, B):
    """Each output unit's column of ``B`` along that unit's row (or kernel slice) ``w_i`` of ``W``."""
    if isinstance(layer, Dense):
        return np.einsum("ji,ij->i", B, layer.W)
    return np.einsum("oikl,oikl->o", B, layer.W)


@pytest.mark.parametrize("bias_blocking", [False, True], ids=["eq11", "eq12"])
def test_weight_mirror_without_bias_blocking_takes_its_bias_from_the_batch_norm_before_the_layer(kind, bias_blocking):
    """Eq (11) where batch norm after a ReLU feeds a layer without bias (the paper's ResNets,
    Section 6): the layer's units see the bias ``c = W β`` (``W ⋆ β`` over a patch), and with ReLU,
    unit-norm rows and Gaussian noise column i of B settles at (η_B/λ_B) σ² Φ(c_i/σ) w_iᵀ
    (Stein's lemma: the mean slope is P(w_i·y + c_i > 0)). With bias-blocking (eq 12) every column
    settles at (η_B/λ_B) σ² · ½ whatever β is."""
    if kind.name == "local":
        pytest.skip("one β cannot give the units of every position's own kernel the same biases c")
    rng = np.random.default_rng(5)
    layer = kind.layer(6, 4, rng)
    layer.params.pop("b")  # a ResNet's convolutions have no bias of their own
    W = layer.params["W"]
    W /= np.sqrt(np.sum(W * W, axis=tuple(range(1, W.ndim)), keepdims=True))  # ‖w_i‖ = 1
    sigma = 0.8
    c = np.array([-1.2, -0.4, 0.4, 1.2]) * sigma  # the effective biases the test asks for
    W_sum = W if W.ndim == 2 else W.sum(axis=(2, 3))  # a kernel sums β over the taps of a patch
    bn = BatchNorm(6, dtype="float64")
    bn.params["beta"][:] = np.linalg.lstsq(W_sum, c, rcond=None)[0]  # W_sum β = c
    np.testing.assert_allclose(W_sum @ bn.params["beta"], c, atol=1e-12)
    net = Network([bn, layer, get_activation("relu")])
    rule = WeightMirror(
        sigma=sigma, lr=0.01, decay=0.01, batch_size=kind.mirror_batch_size, bias_blocking=bias_blocking, seed=2
    )
    net.init_feedback(rule, rng)
    for _ in range(3000):
        rule.mirror(net)
    phi = np.array([0.5 * (1 + math.erf(ci / (sigma * math.sqrt(2)))) for ci in c])  # Φ(c_i / σ)
    slope = np.full(4, 0.5) if bias_blocking else phi
    fitted = _per_unit(layer, layer.params["B"]) / sigma**2  # η_B / λ_B = 1
    np.testing.assert_allclose(fitted, slope, rtol=0.05, err_msg=cmp("B/(σ² Wᵀ)", fitted, slope))
    if not bias_blocking:
        assert slope.max() / slope.min() > 5  # the factors differ: a missing W β would show


def test_mirror_input_means_are_the_shift_of_the_batch_norm_that_feeds_each_layer():
    """In a ResNet-20 with batch norm after the ReLU every convolution but the stem takes a batch
    norm's output: a block's first convolution and its projection shortcut take the block's input
    (the stem's, or the previous block's last, batch norm), its second the batch norm inside the
    branch. The stem (the image) and the dense head (after pooling) take none; with batch norm
    before the ReLU no weight layer does, so bias-blocking changes nothing there."""
    net = resnet20((1, 8, 8), 3, width=2, bn="after", seed=0)
    expected, out = {}, net.layers[2]  # conv, ReLU, BatchNorm: the stem
    assert isinstance(out, BatchNorm)
    for block in (layer for layer in net.layers if isinstance(layer, Residual)):
        conv1, _, inner, conv2 = block.main.layers
        expected[id(conv1)], expected[id(conv2)] = out, inner
        if block.shortcut is not None:
            expected[id(block.shortcut.layers[0])] = out
        out = block.post.layers[1]
    means = net.mirror_input_means()
    assert len(expected) == 20 and set(means) == set(expected)
    assert all(means[key] is bn.params["beta"] for key, bn in expected.items())
    assert resnet20((1, 8, 8), 3, width=2, bn="before", seed=0).mirror_input_means() == {}


def test_weight_mirror_without_bias_blocking_moves_a_resnets_B_only_where_a_batch_norm_has_a_shift():
    """With every β at zero (a fresh network) the setting leaves B bit-identical; with β ≠ 0 it moves
    the B of exactly the layers that batch norm feeds."""
    Bs = {}
    for beta, blocking in ((0.0, True), (0.0, False), (0.5, True), (0.5, False)):
        net = resnet20((1, 8, 8), 3, width=2, bn="after", seed=0)
        for layer in net.param_layers:
            if isinstance(layer, BatchNorm):
                layer.params["beta"][:] = beta
        rule = WeightMirror(batch_size=4, bias_blocking=blocking, seed=1)
        net.init_feedback(rule, np.random.default_rng(1))
        for _ in range(3):
            rule.mirror(net)
        fed = set(net.mirror_input_means())
        Bs[beta, blocking] = [(id(layer) in fed, layer.params["B"].copy()) for layer in net.weight_layers]
    for (_, b0), (_, b1) in zip(Bs[0.0, True], Bs[0.0, False], strict=True):
        assert np.array_equal(b0, b1)
    for (is_fed, b0), (_, b1) in zip(Bs[0.5, True], Bs[0.5, False], strict=True):
        assert np.array_equal(b0, b1) != is_fed


MIRROR_CASES = {  # (what follows the layer, σ, normalize, φ'_s: the mean slope of φ over the noise)
    "tanh-small-sigma": ("tanh", 0.05, False, 1.0),  # eqs (8)-(10): tanh is linear near 0, φ'(0) = 1
    "relu": ("relu", 1.5, False, 0.5),  # half the Gaussian inputs pass
    "batchnorm": ("batchnorm", 1.5, False, 1.0),  # batch norm follows: mirror mode's φ is the identity
    "scaling": ("scaling", 1.5, False, 1.0),  # synaptic scaling before a ReLU: the identity too, not ½
    "relu-normalize": ("relu", 1.5, True, None),  # σ² φ'_s divided out
}


@pytest.mark.parametrize(("after", "sigma", "normalize", "slope"), MIRROR_CASES.values(), ids=MIRROR_CASES.keys())
def test_weight_mirror_B_settles_at_the_predicted_multiple(kind, after, sigma, normalize, slope):
    """Eqs (11)-(12) with decay: the Hebbian term averages η_B σ² φ'_s Wᵀ, so a single layer's B
    settles at (η_B/λ_B) σ² φ'_s Wᵀ, aligned from a random start whatever the (blocked, eq 12)
    biases; with ``normalize`` at (η_B/λ_B) Wᵀ. For a kernel every patch of a noise image is
    independent noise of variance σ², so the multiple is the same. A wrong patch count, a missing σ²
    or a wrong φ would move the multiple, which an angle alone would not see."""
    rng = np.random.default_rng(10)
    n_in, n_out = kind.mirror_layer
    layer = kind.layer(n_in, n_out, rng)
    b = layer.params["b"]
    b[:] = rng.standard_normal(b.shape)  # unequal biases: blocked in mirror mode (eq 12)
    follows = {
        "batchnorm": lambda: [BatchNorm(n_out, dtype="float64")],
        "scaling": lambda: [SynapticScaling(n_out), get_activation("relu")],  # the unit after the scaling
    }
    net = Network([layer, *(follows[after]() if after in follows else [get_activation(after)])])
    ratio = 2.0  # η_B / λ_B = 0.04 / 0.02
    rule = WeightMirror(
        sigma=sigma, lr=0.04, decay=0.02, batch_size=kind.mirror_batch_size, normalize=normalize, seed=1
    )
    net.init_feedback(rule, rng)
    WT = transposed(layer, layer.W)
    start = angle(layer.params["B"], WT)
    for _ in range(1500):
        rule.mirror(net)
    B = layer.params["B"]
    scale = float(np.sum(B * WT) / np.sum(WT * WT))
    expected = ratio if normalize else ratio * sigma**2 * slope
    assert abs(scale / expected - 1) < 0.05, (scale, expected)
    assert start > 60 and angle(B, WT) < 2, (start, angle(B, WT))


@pytest.mark.parametrize("normalize", [False, True])
def test_weight_mirror_normalize_divides_out_sigma_and_the_activation_slope(kind, normalize):
    """Eq (11) through ReLU: E[y_l y_{l+1}ᵀ] = σ² · ½ · Wᵀ (Stein's lemma), so a hidden layer's
    B settles at (η_B/λ_B) σ²/2 Wᵀ and the linear output layer's at (η_B/λ_B) σ² Wᵀ; with
    ``normalize`` both settle at (η_B/λ_B) Wᵀ. Each layer is mirrored with the φ that follows it."""
    rng = np.random.default_rng(3)
    hidden, out = kind.layer(8, 6, rng), kind.layer(6, 4, rng)
    net = Network([hidden, get_activation("relu"), out])
    sigma, ratio = 1.5, 2.0  # η_B / λ_B = 0.04 / 0.02
    rule = WeightMirror(
        sigma=sigma, lr=0.04, decay=0.02, batch_size=kind.mirror_batch_size, normalize=normalize, seed=1
    )
    net.init_feedback(rule, rng)
    for _ in range(1500):
        rule.mirror(net)
    scales = [float(np.sum(L.params["B"] * transposed(L, L.W)) / np.sum(L.W * L.W)) for L in (hidden, out)]
    expected = [ratio, ratio] if normalize else [ratio * sigma**2 / 2, ratio * sigma**2]
    np.testing.assert_allclose(scales, expected, rtol=0.05)


def test_weight_mirror_runs_after_every_nth_step_and_validates():
    net, rule = mlp_with_rule("wm", every=3, seed=2)
    B0 = net.weight_layers[0].params["B"].copy()
    rule.after_step(net)
    rule.after_step(net)
    np.testing.assert_array_equal(net.weight_layers[0].params["B"], B0)
    rule.after_step(net)
    assert not np.array_equal(net.weight_layers[0].params["B"], B0)
    with pytest.raises(ValueError, match="setting .sigma. must be > 0"):
        WeightMirror(sigma=0)
    with pytest.raises(ValueError, match="setting .batch_size. must be >= 1"):
        WeightMirror(batch_size=0)


# --------------------------------------------------------------------------- adding a rule


def test_a_rule_is_one_class_whose_settings_reach_the_config_the_flags_and_the_run(tmp_path, monkeypatch):
    """The README's "Adding a learning rule": one class with a setting, and nothing else, gives a rule
    that get_rule builds, TrainConfig checks, the command line trains and a run folder records."""

    from minibp import cli, config, rules, runs
    from minibp.settings import setting

    try:

        @dataclasses.dataclass(kw_only=True)
        class ScaledFeedbackAlignment(rules.FeedbackAlignment):
            name, label, title = "sfa", "sFA", "feedback alignment with a rescaled random B (eq 3)"
            scale: float = setting(1.0, "factor on the random B's standard deviation", gt=0)

            def init_feedback(self, layer, rng):
                super().init_feedback(layer, rng)
                layer.params["B"] *= self.scale

        assert rules.RULES["sfa"] is ScaledFeedbackAlignment
        cfg_cls = config.make_train_config()  # TrainConfig as it is made at import, with sfa registered
        for module in (config, cli, runs):
            monkeypatch.setattr(module, "TrainConfig", cfg_cls)
        assert get_rule("sfa", scale=2.0).scale == 2.0
        with pytest.raises(ValueError, match="setting 'sfa_scale' must be > 0, got -1"):
            cfg_cls(rule="sfa", sfa_scale=-1)
        with pytest.raises(ValueError, match="setting 'scale' must be > 0"):
            ScaledFeedbackAlignment(scale=0)
        rule = cfg_cls(rule="sfa", sfa_scale=3.0).make_rule()
        net, fa = mlp_with_rule("fa", seed=4)
        net2 = mlp([6, 8, 7, 4], "tanh", seed=4, dtype="float64")
        net2.init_feedback(rule, np.random.default_rng(5))
        np.testing.assert_allclose(net2.weight_layers[0].B, 3.0 * net.weight_layers[0].B)  # same draw, × 3
        argv = ["train", "--rule", "sfa", "--sfa-scale", "2.5", "--epochs", "1", "--hidden", "8"]
        assert cli.main([*argv, "--probe-size", "16", "--out", str(tmp_path), "--quiet"]) == 0
        saved = json.loads((tmp_path / "sfa" / "config.json").read_text())
        assert saved["rule"] == "sfa" and saved["sfa_scale"] == 2.5
    finally:
        rules.RULES.pop("sfa", None)
    assert "sfa" not in rules.RULES

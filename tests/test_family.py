"""Kunin et al. (2020)'s alignment family: each primitive against finite differences and against its
definition (dense, and on the unrolled convolution); the weight mirror and Kolen–Pollack rebuilt
from primitives against ``wm`` and ``kp``; each named rule (``sa``, ``aa``, ``ia``) against the
fixed point its local loss has, its settings' checks, and a training run."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grad, cmp, conv_net_with_rule, naive_conv

from minibp import SGD, TrainConfig, angle, get_rule, mlp, train, train_step
from minibp.layers import Conv2D, Dense
from minibp.layers.conv_routes import im2col
from minibp.losses import SoftmaxCrossEntropy
from minibp.models import lenet
from minibp.rules import (
    RULES,
    ActivationAlignment,
    FamilyKolenPollack,
    FamilyMirror,
    InformationAlignment,
    SymmetricAlignment,
    WeightMirror,
)
from minibp.rules import primitives as P
from minibp.rules.base import mirror_noise_generator as noise_generator

NAMED = {"sa": SymmetricAlignment, "aa": ActivationAlignment, "ia": InformationAlignment}


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def as_feedback(layer, W):
    """``W`` in ``B``'s layout without the layer's help: ``Wᵀ`` dense, the kernel itself for a convolution."""
    return W.T if isinstance(layer, Dense) else W


# --------------------------------------------------------------------------- the five primitives

# a weight layer (float64) and the shape of its input; convolutions with and without stride and padding
CASES = {
    "dense": (lambda rng: Dense(6, 4, rng=rng, dtype="float64"), (5, 6)),
    "conv s1 p0": (lambda rng: Conv2D(2, 3, 3, rng=rng, dtype="float64"), (3, 2, 6, 6)),
    "conv s2 p1": (lambda rng: Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype="float64"), (3, 2, 7, 6)),
    "conv s3 p2": (lambda rng: Conv2D(2, 2, 3, stride=3, padding=2, rng=rng, dtype="float64"), (2, 2, 8, 7)),
}


def primitive_case(case: str, seed: int = 0):
    """A layer with a random bias, a random ``B`` in its layout, an input batch, its maps and ``r = W x + b``."""
    rng = np.random.default_rng(seed)
    make, shape = CASES[case]
    layer = make(rng)
    layer.params["b"][...] = rng.standard_normal(layer.b.shape)
    B = rng.standard_normal(as_feedback(layer, layer.W).shape)
    x = rng.standard_normal(shape)
    maps = P.layer_maps(layer, x.shape)
    return layer, B, x, maps, maps.forward(x, bias=True), rng


@pytest.mark.parametrize("name", list(P.PRIMITIVES))
@pytest.mark.parametrize("case", list(CASES))
def test_primitive_gradient_matches_finite_differences(case, name):
    """``∇_B`` of each primitive against central differences of its loss along random directions (float64)."""
    _, B, x, maps, r, rng = primitive_case(case)
    primitive = P.PRIMITIVES[name]
    loss, grad = primitive(maps, B, x, r)
    assert grad.shape == B.shape and np.ndim(loss) == 0
    no_loss, same = primitive(maps, B, x, r, with_loss=False)
    assert no_loss is None
    np.testing.assert_array_equal(same, grad)
    check_grad(lambda: float(primitive(maps, B, x, r)[0]), B, grad, rng, n_dirs=4)


def linear_map(layer, K, x_shape):
    """The matrix of ``x ↦ K x`` for one sample: ``K`` itself for a dense layer; for a convolution the
    matrix of the naive convolution with the kernel ``K`` (``(C_out·Ho·Wo, C_in·H·W)``), column by column."""
    if isinstance(layer, Dense):
        return K
    size = int(np.prod(x_shape[1:]))
    basis = np.eye(size).reshape(size, *x_shape[1:])
    return naive_conv(basis, K, layer.stride, layer.padding).reshape(size, -1).T


@pytest.mark.parametrize("case", list(CASES))
def test_primitive_losses_are_their_definitions_on_the_unrolled_layer(case):
    """Each loss against Kunin et al.'s definition computed with explicit matrices, one sample at a
    time: a convolution unrolled into the matrix ``M_K`` of ``x ↦ K ⋆ x`` (so ``W x → M_W x``,
    ``Bᵀ x → M_B x``, ``B r → M_Bᵀ r``), ``E`` the mean over every output position of every sample."""
    layer, B, x, maps, r, _ = primitive_case(case, seed=1)
    MW = linear_map(layer, layer.W, x.shape)
    MB = linear_map(layer, B.T if isinstance(layer, Dense) else B, x.shape)  # s = Bᵀ x: Bᵀ is the dense map
    n = r.size // r.shape[1]  # samples × output positions
    X = x.reshape(len(x), -1)  # one sample per row
    R = r.reshape(len(x), -1)  # (C_out, Ho, Wo) per sample, the order of linear_map's rows
    S = X @ MB.T
    expected = {
        "decay": np.sum(B**2),
        "sparse": (np.sum(R**2) + np.sum(S**2)) / n,
        "null": np.sum((R @ MB) ** 2) / n,  # B r = M_Bᵀ r
        "null_reversed": np.sum((S @ MW) ** 2) / n,  # Wᵀ s = M_Wᵀ s
        "self": -np.sum(B * as_feedback(layer, layer.W)),  # −tr(B W)
        "amp": -np.sum(S * R) / n,
    }
    np.testing.assert_allclose(maps.forward(x).reshape(len(x), -1), X @ MW.T, rtol=1e-12, atol=1e-12)
    for name, primitive in P.PRIMITIVES.items():
        loss = float(primitive(maps, B, x, r)[0])
        assert loss == pytest.approx(expected[name], rel=1e-12), cmp(name, loss, expected[name])


def test_layer_maps_refuse_a_layer_without_weights():
    from minibp.layers import ReLU

    with pytest.raises(TypeError, match="dense and convolutional"):
        P.layer_maps(ReLU(), (2, 3))


# --------------------------------------------------------------------------- the weight mirror from primitives


def test_family_noise_is_the_weight_mirror_noise():
    for seed, n in [(0, 0), (5, 3), (11, 42)]:
        a = get_rule("aa", seed=seed).noise_generator(n).standard_normal(7)
        b = WeightMirror(seed=seed).noise_generator(n).standard_normal(7)
        np.testing.assert_array_equal(a, b)


def _mirror_case(model: str):
    """A float64 network with unequal random biases (so that bias-blocking matters), and a batch."""
    rng = np.random.default_rng(4)
    if model == "mlp":
        net = mlp([6, 9, 8, 4], "relu", seed=0, dtype="float64")
        x = rng.standard_normal((12, 6))
    else:
        net = lenet((1, 8, 8), 10, width=2, dtype="float64")
        x = rng.standard_normal((12, 1, 8, 8))
    for layer in net.weight_layers:
        layer.params["b"][...] = rng.standard_normal(layer.b.shape)
    return net, x, rng.integers(0, 4, 12)


@pytest.mark.parametrize("model", ["mlp", "lenet"])
def test_family_mirror_with_the_papers_settings_is_the_weight_mirror(model):
    """decay + amp in noise mode, ``lr·α_amp = η_B`` and ``2·lr·α_decay = λ_B``: the same ``B`` as ``wm``
    after training steps with three mirror passes, on the same noise (relative difference 1e-12)."""
    wm, fam = WeightMirror(seed=5), FamilyMirror(seed=5)
    assert fam.lr * fam.alpha_amp == wm.lr and 2 * fam.lr * fam.alpha_decay == wm.decay
    assert (fam.sigma, fam.batch_size, fam.every, fam.bias_blocking) == (
        wm.sigma,
        wm.batch_size,
        wm.every,
        wm.bias_blocking,
    )
    nets = {}
    for rule in (wm, fam):
        net, x, y = _mirror_case(model)
        net.init_feedback(rule, np.random.default_rng(1))
        start = [layer.B.copy() for layer in net.weight_layers]
        opt = SGD(0.05, momentum=0.9, weight_decay=1e-3)
        for _ in range(12):
            train_step(net, rule, SoftmaxCrossEntropy(), opt, x, y)
        nets[type(rule).__name__] = net
    assert wm.state() == fam.state() == {"steps": 12, "passes": 3}
    for ref, mine, b0 in zip(nets["WeightMirror"].weight_layers, nets["FamilyMirror"].weight_layers, start):
        assert rel(mine.B, ref.B) < 1e-12, cmp(mine.name, mine.B, ref.B)
        assert rel(mine.W, ref.W) < 1e-12, cmp(mine.name, mine.W, ref.W)
        assert rel(ref.B, b0) > 1e-2  # the passes moved B


def test_a_noise_mode_pass_is_a_gradient_step_on_the_local_loss_of_the_passs_noise():
    """``ia`` (noise mode by default), after ``every`` steps: each layer's ``B`` has taken one step
    ``B ← B − lr ∇_B`` on noise drawn by hand from ``(seed, pass 0)``, layer by layer."""
    rule = get_rule("ia", seed=3, every=2, batch_size=16)
    net = mlp([6, 9, 8, 4], "tanh", seed=0, dtype="float64")
    net.init_feedback(rule, np.random.default_rng(1))
    expected = []
    rng = noise_generator(3, 0)
    for layer, _ in net.mirror_pairs():
        noise = rng.standard_normal((16, layer.n_in)) * rule.sigma
        r = noise @ layer.W.T  # bias blocked, no φ
        grad = (
            -rule.alpha_amp * noise.T @ r / 16
            + 2 * rule.alpha_null * (r @ layer.B.T).T @ r / 16
            + 2 * rule.alpha_decay * layer.B
        )
        expected.append(layer.B - rule.lr * grad)
    rule.after_step(net)
    assert rule.state() == {"steps": 1, "passes": 0}
    rule.after_step(net)
    assert rule.state() == {"steps": 2, "passes": 1}
    for layer, B in zip(net.weight_layers, expected):
        np.testing.assert_allclose(layer.B, B, rtol=1e-12)


# --------------------------------------------------------------------------- Kolen–Pollack from primitives


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_family_kp_without_decay_is_kp_exactly(kind):
    """decay with ``α = 0`` and ``W``'s gradient tied to ``B``: ``kp``'s arrays, bit for bit, over steps
    of SGD with momentum and weight decay."""
    runs = []
    for rule in (get_rule("kp"), FamilyKolenPollack(alpha_decay=0.0)):
        if kind == "dense":
            net = mlp([6, 9, 8, 4], "tanh", seed=0, dtype="float64")
            net.init_feedback(rule, np.random.default_rng(1))
            rng = np.random.default_rng(2)
            batches = [(rng.standard_normal((10, 6)), rng.integers(0, 4, 10)) for _ in range(5)]
        else:
            net, _, x, y = conv_net_with_rule("kp")
            batches = [(x * (1 + 0.1 * t), y) for t in range(5)]
        opt = SGD(0.1, momentum=0.9, weight_decay=0.01)
        for x, y in batches:
            train_step(net, rule, SoftmaxCrossEntropy(), opt, x, y)
        runs.append([a.copy() for layer in net.weight_layers for a in layer.params.values()])
    assert len(runs[0]) == len(runs[1])
    for ref, mine in zip(*runs):
        np.testing.assert_array_equal(mine, ref)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_family_kp_decay_adds_2_c_lr_to_kps_decay_of_B(kind):
    """With ``α_decay = c`` and plain SGD: ``B ← (1 − lr·wd − 2c·lr) B − lr · W's gradient (transposed)``
    at every step (a hand recurrence), and after the first step ``B`` is ``kp``'s minus ``2c·lr·B₀``."""
    c, lr, wd = 0.05, 0.1, 0.01
    B1 = {}
    for rule in (get_rule("kp"), FamilyKolenPollack(alpha_decay=c)):
        if kind == "dense":
            net = mlp([6, 9, 8, 4], "tanh", seed=0, dtype="float64")
            net.init_feedback(rule, np.random.default_rng(1))
            x, y = np.random.default_rng(2).standard_normal((10, 6)), np.arange(10) % 4
        else:
            net, _, x, y = conv_net_with_rule("kp")
        opt = SGD(lr, momentum=0.0, weight_decay=wd)
        B0 = [layer.B.copy() for layer in net.weight_layers]
        for t in range(4):
            before = [layer.B.copy() for layer in net.weight_layers]
            train_step(net, rule, SoftmaxCrossEntropy(), opt, x * (1 + 0.1 * t), y)
            if t == 0:
                B1[type(rule).__name__] = [layer.B.copy() for layer in net.weight_layers]
            if isinstance(rule, FamilyKolenPollack):
                for layer, B in zip(net.weight_layers, before):
                    tied = as_feedback(layer, layer.grads["W"])
                    expected = (1 - lr * wd - 2 * c * lr) * B - lr * tied
                    assert rel(layer.B, expected) < 1e-12, cmp(layer.name, layer.B, expected)
    for kp_B, fam_B, b0 in zip(B1["KolenPollack"], B1["FamilyKolenPollack"], B0):
        assert rel(fam_B, kp_B - 2 * c * lr * b0) < 1e-12


def test_family_kp_refuses_noise_mode():
    with pytest.raises(ValueError, match="source must be 'activity'"):
        FamilyKolenPollack(source="noise")


# --------------------------------------------------------------------------- the named rules' fixed points


def descend(rule, layer, x, steps, lr):
    """Plain gradient descent of ``layer``'s ``B`` on ``rule``'s local loss on the fixed batch ``x`` (``W`` fixed)."""
    for _ in range(steps):
        layer.params["B"] -= lr * rule.local_loss(layer, x, with_loss=False)[1]


def dense_case(seed=0, n_in=8, n_out=5, n=40):
    rng = np.random.default_rng(seed)
    layer = Dense(n_in, n_out, rng=rng, dtype="float64")
    layer.params["B"] = rng.standard_normal((n_in, n_out)) * layer.init_std
    mix = np.eye(n_in) + 0.3 * rng.standard_normal((n_in, n_in))  # inputs with a full-rank, non-white covariance
    return layer, rng.standard_normal((n, n_in)) @ mix, rng


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_sa_B_converges_to_a_multiple_of_W_transpose(kind):
    """SA's gradient ``2 α_decay B − α_self Wᵀ`` reads ``W`` alone: ``B → (α_self / 2α_decay) Wᵀ`` (``Wᵀ``
    with the default ratio). With ``lr = 1/(4 α_decay)`` the distance halves at every step, so after
    80 steps only rounding is left: angle < 1e-6°, relative error < 1e-12."""
    rule = SymmetricAlignment()
    rng = np.random.default_rng(0)
    if kind == "dense":
        layer, x, _ = dense_case()
    else:
        layer = Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype="float64")
        layer.params["B"] = rng.standard_normal(layer.W.shape)
        x = rng.standard_normal((4, 2, 7, 7))
    target = rule.alpha_self / (2 * rule.alpha_decay) * as_feedback(layer, layer.W)
    assert angle(layer.B, target) > 60
    descend(rule, layer, x, 80, 1 / (4 * rule.alpha_decay))
    assert angle(layer.B, target) < 1e-6
    assert rel(layer.B, target) < 1e-12


def _patch_covariance(layer, x):
    """``E[x xᵀ]`` over every patch (a dense layer: over the batch), in the layout of a flattened kernel."""
    if isinstance(layer, Dense):
        return x.T @ x / len(x)
    cols = im2col(x, layer.k, layer.k, layer.stride, layer.padding)
    return cols @ cols.T / cols.shape[1]


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_aa_B_converges_to_W_transpose_where_the_inputs_reach(kind):
    """AA's gradient is ``Σ (2 α_sparse B − α_amp Wᵀ)`` with ``Σ = E[x xᵀ]`` (over patches for a kernel):
    with a full-rank ``Σ``, ``B → (α_amp / 2α_sparse) Wᵀ``. With ``lr = 1/L``, ``L = 2 α_sparse λ_max(Σ)``,
    the error shrinks by at least ``1 − λ_min/λ_max`` per step; the steps taken make that < 1e-20."""
    rule = ActivationAlignment()
    rng = np.random.default_rng(1)
    if kind == "dense":
        layer, x, _ = dense_case(1)
    else:
        layer = Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype="float64")
        layer.params["B"] = rng.standard_normal(layer.W.shape)
        x = rng.standard_normal((6, 2, 7, 7))
    eig = np.linalg.eigvalsh(_patch_covariance(layer, x))
    steps = int(np.ceil(50 / -np.log1p(-eig[0] / eig[-1])))  # (1 − λmin/λmax)^steps < e^-50
    target = rule.alpha_amp / (2 * rule.alpha_sparse) * as_feedback(layer, layer.W)
    descend(rule, layer, x, steps, 1 / (2 * rule.alpha_sparse * eig[-1]))
    assert angle(layer.B, target) < 1e-6
    assert rel(layer.B, target) < 1e-10


def test_aa_B_keeps_its_start_in_directions_the_inputs_never_take():
    """Inputs in a 4-dimensional subspace of ℝ⁸: ``B`` converges to ``Wᵀ`` on that subspace (``P B → P Wᵀ``)
    and does not move off it (``(I − P) B = (I − P) B₀`` to rounding), so it stays at an angle to ``Wᵀ``."""
    rule = ActivationAlignment()
    layer, _, rng = dense_case(2)
    x = rng.standard_normal((40, 4)) @ rng.standard_normal((4, 8))
    P_in = np.linalg.pinv(x) @ x  # projector onto the inputs' span (rows of x)
    B0 = layer.B.copy()
    eig = np.linalg.eigvalsh(x.T @ x / len(x))[4:]  # the four nonzero eigenvalues
    steps = int(np.ceil(50 / -np.log1p(-eig[0] / eig[-1])))
    descend(rule, layer, x, steps, 1 / (2 * rule.alpha_sparse * eig[-1]))
    target = rule.alpha_amp / (2 * rule.alpha_sparse) * layer.W.T
    assert rel(P_in @ layer.B, P_in @ target) < 1e-9
    assert np.linalg.norm((np.eye(8) - P_in) @ (layer.B - B0)) < 1e-12 * np.linalg.norm(B0)
    assert angle(layer.B, target) > 20


def ridge_decoder(rule, W, sigma):
    """IA's fixed point: ``(α_amp / 2α_null) Σ Wᵀ (W Σ Wᵀ + (α_decay / α_null) I)⁻¹``."""
    m = W.shape[0]
    ratio = rule.alpha_amp / (2 * rule.alpha_null)
    return ratio * sigma @ W.T @ np.linalg.inv(W @ sigma @ W.T + rule.alpha_decay / rule.alpha_null * np.eye(m))


def _descend_ia(rule, layer, x):
    """IA's Hessian acts on ``B`` from the right as ``2 α_null W Σ Wᵀ + 2 α_decay I``: step ``1/L`` with
    ``L`` its largest eigenvalue, for enough steps to shrink the error by e^-50."""
    sigma = x.T @ x / len(x)
    eig = np.linalg.eigvalsh(2 * rule.alpha_null * layer.W @ sigma @ layer.W.T + 2 * rule.alpha_decay * np.eye(5))
    descend(rule, layer, x, int(np.ceil(50 / -np.log1p(-eig[0] / eig[-1]))), 1 / eig[-1])
    return sigma


def test_ia_B_converges_to_the_ridge_decoder_not_to_W_transpose():
    """With ``α_amp = 2 α_null`` IA's loss is ``α_null E‖x − B W x‖² + α_decay ‖B‖²`` plus a constant, so
    ``B`` becomes the ridge-regression decoder of ``x`` from ``W x``: not a multiple of ``Wᵀ`` for a
    generic ``W``, though less than 90° from it (``tr(B W) > 0``)."""
    rule = InformationAlignment()
    layer, x, _ = dense_case(3)
    sigma = _descend_ia(rule, layer, x)
    fixed = ridge_decoder(rule, layer.W, sigma)
    assert rel(layer.B, fixed) < 1e-10
    assert 5 < angle(layer.B, layer.W.T) < 90
    assert np.trace(layer.B @ layer.W) > 0


@pytest.mark.parametrize("reverse_null", [False, True])
def test_ia_on_white_inputs_is_a_multiple_of_W_transpose_when_W_has_equal_singular_values(reverse_null):
    """On exactly white inputs (``Σ = I``) both null primitives give the same fixed point ``Wᵀ`` with each
    singular value ``s`` of ``W`` mapped to ``s/(s² + α_decay/α_null)`` (times ``α_amp/2α_null``): a
    multiple of ``Wᵀ`` when ``W``'s rows are orthogonal and of equal length, not otherwise."""
    rule = InformationAlignment(reverse_null=reverse_null)
    layer, _, rng = dense_case(4, n=40)
    x = np.sqrt(40) * np.linalg.qr(rng.standard_normal((40, 8)))[0]  # x.T @ x / 40 = I exactly
    _descend_ia(rule, layer, x)
    np.testing.assert_allclose(layer.B, ridge_decoder(rule, layer.W, np.eye(8)), rtol=0, atol=1e-10)
    assert angle(layer.B, layer.W.T) > 1

    layer.params["W"] = 0.7 * np.linalg.qr(rng.standard_normal((8, 5)))[0].T  # orthogonal rows, s = 0.7
    _descend_ia(rule, layer, x)
    s, k = 0.7, rule.alpha_amp / (2 * rule.alpha_null)
    assert angle(layer.B, layer.W.T) < 1e-6
    assert rel(layer.B, k / (s**2 + rule.alpha_decay / rule.alpha_null) * layer.W.T) < 1e-10


# --------------------------------------------------------------------------- settings and training


COEFFICIENTS = [(name, f) for name, cls in NAMED.items() for f in cls.__dataclass_fields__ if f.startswith("alpha_")]


@pytest.mark.parametrize(("name", "coefficient"), COEFFICIENTS, ids=[f"{n}-{c}" for n, c in COEFFICIENTS])
def test_a_negative_coefficient_is_refused_naming_the_setting(name, coefficient):
    with pytest.raises(ValueError, match=rf"'{coefficient}' must be >= 0"):
        get_rule(name, **{coefficient: -0.1})
    with pytest.raises(ValueError, match=rf"'{name}_{coefficient}' must be >= 0"):
        TrainConfig(rule=name, **{f"{name}_{coefficient}": -0.1})
    get_rule(name, **{coefficient: 0.0})  # zero is allowed: the primitive drops out


def test_every_named_rule_is_registered_with_its_coefficients_as_settings():
    import dataclasses

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, coefficient in COEFFICIENTS:
        assert f"{name}_{coefficient}" in fields
    assert {"sa_source", "aa_source", "ia_source", "ia_reverse_null"} <= fields
    assert [RULES[name] for name in NAMED] == list(NAMED.values())
    assert FamilyMirror not in RULES.values() and FamilyKolenPollack not in RULES.values()  # not on the command line


def test_noise_mode_settings_are_refused_in_activity_mode():
    with pytest.raises(ValueError, match="sigma.*noise mode only"):
        get_rule("sa", sigma=2.0)
    with pytest.raises(ValueError, match="lr, every.*noise mode only"):
        get_rule("ia", source="activity", lr=1.0, every=2)
    get_rule("sa", source="noise", sigma=2.0)


def test_activity_mode_puts_the_local_gradient_where_the_optimizer_steps_it_with_weight_decay():
    """``sa`` (activity mode): after a step of plain SGD, ``B = B₀ − lr (∇_B + wd B₀)`` in every layer."""
    rule = get_rule("sa")
    net = mlp([6, 9, 8, 4], "tanh", seed=0, dtype="float64")
    net.init_feedback(rule, np.random.default_rng(1))
    before = [(layer.B.copy(), layer.W.copy()) for layer in net.weight_layers]
    lr, wd = 0.5, 0.1
    x = np.random.default_rng(2).standard_normal((10, 6))
    train_step(net, rule, SoftmaxCrossEntropy(), SGD(lr, weight_decay=wd), x, np.arange(10) % 4)
    for layer, (B0, W0) in zip(net.weight_layers, before):
        grad = 2 * rule.alpha_decay * B0 - rule.alpha_self * W0.T
        np.testing.assert_allclose(layer.B, B0 - lr * (grad + wd * B0), rtol=1e-12)


@pytest.mark.parametrize("name", list(NAMED))
def test_named_rule_trains_the_digits_mlp(digits, name):
    """Two epochs of a 64-16-10 MLP under the rule's defaults: the loss falls to about a quarter (bp: 0.15)
    and the test accuracy reaches about 0.83 (bp 0.93, chance 0.1)."""
    config = TrainConfig(rule=name, epochs=2, hidden=(16,), batch_size=16, probe_size=64)
    _, history = train(config, data=digits, progress=False)
    first, last = history[0], history[-1]
    assert last["train_loss"] < 0.4 * first["train_loss"]
    assert last["test_accuracy"] > 0.7

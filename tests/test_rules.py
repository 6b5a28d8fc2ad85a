"""Each learning rule against its equation: FA (3), SS, KP (13)-(18), WM (5)-(7), (11)-(12)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cmp

from minibp import SGD, angle, get_rule, matrix_angles, mlp
from minibp.layers import Dense, get_activation
from minibp.losses import SoftmaxCrossEntropy
from minibp.network import Network
from minibp.rules import RULES, WeightMirror


def _net_with(rule_name, seed=0, sizes=(6, 8, 7, 4), activation="tanh", **opts):
    net = mlp(list(sizes), activation, seed=seed, dtype="float64")
    rule = get_rule(rule_name, **opts)
    net.init_feedback(rule, np.random.default_rng(seed + 1))
    return net, rule


def _batch(seed=0, n=12, d=6, k=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def _deltas(net, rule, x, y):
    _, dout = SoftmaxCrossEntropy()(net.forward(x), y)
    return net.backward(dout, rule)


def test_rules_are_selectable_by_name():
    assert sorted(RULES) == ["bp", "fa", "kp", "ss", "wm"]
    for name in RULES:
        assert get_rule(name).name == name
    with pytest.raises(ValueError, match="unknown learning rule 'xx'"):
        get_rule("xx")
    with pytest.raises(ValueError, match="takes no options"):
        get_rule("fa", sigma=1.0)


@pytest.mark.parametrize("name", ["fa", "wm", "kp"])
def test_feedback_delta_is_phi_prime_times_B_delta(name):
    """Eq (3): δ_l = φ'(y_l) ⊙ B_{l+1} δ_{l+1}, with the layer's own B: fixed and random for FA,
    learned for WM and KP (here a B made unlike both Wᵀ and sign(Wᵀ), so no other feedback passes)."""
    net, rule = _net_with(name)
    for layer in net.weight_layers:  # B's signs disagree with Wᵀ's: sign-symmetric feedback would differ
        layer.params["B"][:] = -layer.W.T * np.random.default_rng(0).uniform(0.5, 2, layer.W.T.shape)
    x, y = _batch()
    deltas = _deltas(net, rule, x, y)
    dense = net.weight_layers
    acts = [layer for layer in net.layers if not layer.has_weights]
    for k in range(len(dense) - 1):
        B = dense[k + 1].params["B"]
        y_k = acts[k].y  # output of the activation after dense[k]
        expected = np.stack([(1 - y_k[n] ** 2) * (B @ deltas[k + 1][n]) for n in range(len(x))])  # tanh' = 1 - y²
        np.testing.assert_allclose(deltas[k], expected, rtol=1e-12, err_msg=cmp("δ", deltas[k], expected))


def test_bp_delta_uses_W_transpose():
    """Eq (2): δ_l = φ'(y_l) ⊙ W_{l+1}ᵀ δ_{l+1}."""
    net, rule = _net_with("bp")
    x, y = _batch()
    deltas = _deltas(net, rule, x, y)
    W = net.weight_layers[-1].W
    y_l = net.layers[-2].y
    np.testing.assert_allclose(deltas[-2], (1 - y_l**2) * (deltas[-1] @ W), rtol=1e-12)


def test_fa_B_never_changes_and_W_update_is_eq4():
    net, rule = _net_with("fa")
    B0 = [layer.params["B"].copy() for layer in net.weight_layers]
    W0 = [layer.W.copy() for layer in net.weight_layers]
    x, y = _batch()
    deltas = _deltas(net, rule, x, y)
    ys = [x] + [layer.y for layer in net.layers if not layer.has_weights]
    SGD(0.1).step(net.param_layers)
    for layer, b0, w0, d, y_l in zip(net.weight_layers, B0, W0, deltas, ys):
        np.testing.assert_array_equal(layer.params["B"], b0)
        np.testing.assert_allclose(layer.W, w0 - 0.1 * d.T @ y_l, rtol=1e-12)  # eq (4): ΔW = −η δ yᵀ


@pytest.mark.parametrize("name", ["fa", "wm", "kp", "ss"])
def test_only_backprop_reads_W_magnitudes_in_the_feedback_path(name):
    """Rescaling W's entries (keeping signs) changes backprop's feedback but no other rule's."""
    net, rule = _net_with(name)
    before = [np.array(rule.feedback_matrix(layer)) for layer in net.weight_layers]
    for layer in net.weight_layers:
        layer.params["W"] *= np.random.default_rng(5).uniform(0.1, 3.0, layer.W.shape)  # same signs, new sizes
    after = [np.array(rule.feedback_matrix(layer)) for layer in net.weight_layers]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)
    bp, rule_bp = _net_with("bp")
    f0 = np.array(rule_bp.feedback_matrix(bp.weight_layers[0]))
    bp.weight_layers[0].params["W"] *= 2
    assert not np.array_equal(rule_bp.feedback_matrix(bp.weight_layers[0]), f0)


def test_ss_feeds_back_only_signs_at_a_fixed_scale():
    net, rule = _net_with("ss")
    for layer in net.weight_layers:
        F = rule.feedback_matrix(layer)
        np.testing.assert_array_equal(F, np.sign(layer.W.T) / np.sqrt(layer.fan_in))
        assert set(np.unique(np.abs(F))) == {1 / np.sqrt(layer.fan_in)}
    x, y = _batch()
    deltas = _deltas(net, rule, x, y)
    top = net.weight_layers[-1]
    y_l = net.layers[-2].y
    expected = (1 - y_l**2) * (deltas[-1] @ (np.sign(top.W) / np.sqrt(top.fan_in)))
    np.testing.assert_allclose(deltas[-2], expected, rtol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_kp_difference_decays_exactly(momentum):
    """Eqs (13)-(18): with identical updates and decay λ = η·wd, W − Bᵀ shrinks by (1 − λ) per step
    without momentum; with it (minibp's addition) by the heavy-ball recursion of the decay alone."""
    net, rule = _net_with("kp", sizes=(6, 9, 8, 4))
    lr, wd, steps = 0.05, 0.3, 25
    opt = SGD(lr, momentum=momentum, weight_decay=wd)
    lam = lr * wd
    d0 = [np.linalg.norm(layer.W - layer.params["B"].T) for layer in net.weight_layers]
    rng = np.random.default_rng(4)
    for _ in range(steps):
        x = rng.standard_normal((16, 6))
        y = rng.integers(0, 4, 16)
        _deltas(net, rule, x, y)
        opt.step(net.param_layers)
    for layer, n0 in zip(net.weight_layers, d0):
        D = layer.W - layer.params["B"].T
        if momentum == 0:
            assert abs(np.linalg.norm(D) - (1 - lam) ** steps * n0) < 1e-10  # eqs (13)-(14)
        else:  # heavy ball on ½·wd·‖D‖²: the same linear recursion for every entry of D
            v, d = 0.0, 1.0
            for t in range(steps):
                v = wd * d if t == 0 else momentum * v + wd * d
                d -= lr * v
            assert abs(np.linalg.norm(D) - abs(d) * n0) < 1e-10
    assert max(matrix_angles(net, rule)) < 90


def test_kp_B_gradient_is_eq17():
    """ΔB = −η y_l δ_{l+1}ᵀ (eq 17), computed from B's own input y_l and teaching signal δ_{l+1}."""
    net, rule = _net_with("kp")
    x, y = _batch()
    deltas = _deltas(net, rule, x, y)
    ys = [x] + [layer.y for layer in net.layers if not layer.has_weights]
    for layer, d, y_l in zip(net.weight_layers, deltas, ys):
        np.testing.assert_allclose(layer.grads["B"], y_l.T @ d, rtol=1e-12)


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


def _mirror_one_layer(biases, bias_blocking, steps=6000, seed=7):
    """Mirror a single tanh layer from a random B; returns the angle ∠(B, Wᵀ) before and after.

    The rows of W get equal norms, so with Gaussian noise every unit's mean slope
    E[φ'(w_i·y + b_i)] is the same whenever the b_i are: the assumption
    φ'(b) ≈ φ'_s I under which eq (11) holds.
    """
    rng = np.random.default_rng(seed)
    layer = Dense(10, 6, rng=rng, dtype="float64")
    layer.params["W"] /= np.linalg.norm(layer.W, axis=1, keepdims=True)
    layer.params["b"][:] = biases
    net = Network([layer, get_activation("tanh")])
    rule = WeightMirror(
        sigma=0.5, lr=0.002, decay=0.002, batch_size=512, bias_blocking=bias_blocking, seed=seed
    )
    net.init_feedback(rule, np.random.default_rng(seed + 1))
    start = angle(layer.params["B"], layer.W.T)
    for _ in range(steps):
        rule.mirror(net)
    return start, angle(layer.params["B"], layer.W.T)


def test_weight_mirror_with_bias_blocking_aligns_despite_unequal_biases():
    """Eq (12): with biases blocked, E[ΔB] ∝ φ'(0) Wᵀ whatever the biases are."""
    start, end = _mirror_one_layer(biases=np.linspace(-1.5, 1.5, 6), bias_blocking=True)
    assert start > 60 and end < 1, (start, end)


def test_weight_mirror_without_bias_blocking_aligns_when_biases_are_equal():
    """Eq (11): without bias-blocking, E[ΔB] ∝ φ'(b) Wᵀ, a scalar multiple when all b are equal."""
    start, end = _mirror_one_layer(biases=np.full(6, 0.8), bias_blocking=False)
    assert start > 60 and end < 1, (start, end)


def test_weight_mirror_without_bias_blocking_is_skewed_by_unequal_biases():
    """The failure eq (12) repairs: unequal biases scale Wᵀ's columns by different φ'(b_i)."""
    _, end = _mirror_one_layer(biases=np.linspace(-1.5, 1.5, 6), bias_blocking=False)
    assert end > 5, end


def test_weight_mirror_B_settles_at_the_predicted_multiple():
    """Eq (11) with decay: B → (η_B/λ_B) σ² φ'(0) Wᵀ (φ = tanh, φ'(0) = 1, small σ)."""
    rng = np.random.default_rng(8)
    layer = Dense(8, 5, rng=rng, dtype="float64")
    net = Network([layer, get_activation("tanh")])
    rule = WeightMirror(sigma=0.05, lr=0.04, decay=0.02, batch_size=512, seed=1)
    net.init_feedback(rule, rng)
    for _ in range(1500):
        rule.mirror(net)
    B, WT = layer.params["B"], layer.W.T
    scale = float(np.sum(B * WT) / np.sum(WT * WT))
    assert abs(scale / (2 * 0.05**2) - 1) < 0.05, scale


@pytest.mark.parametrize("normalize", [False, True])
def test_weight_mirror_normalize_divides_out_sigma_and_the_activation_slope(normalize):
    """Eq (11) through ReLU: E[y_l y_{l+1}ᵀ] = σ² · ½ · Wᵀ (Stein's lemma), so a hidden layer's
    B settles at (η_B/λ_B) σ²/2 Wᵀ and the linear output layer's at (η_B/λ_B) σ² Wᵀ; with
    ``normalize`` both settle at (η_B/λ_B) Wᵀ."""
    rng = np.random.default_rng(3)
    hidden, out = Dense(8, 6, rng=rng, dtype="float64"), Dense(6, 4, rng=rng, dtype="float64")
    net = Network([hidden, get_activation("relu"), out])
    sigma, ratio = 1.5, 2.0  # η_B / λ_B = 0.04 / 0.02
    rule = WeightMirror(sigma=sigma, lr=0.04, decay=0.02, batch_size=512, normalize=normalize, seed=1)
    net.init_feedback(rule, rng)
    for _ in range(1500):
        rule.mirror(net)
    scales = [float(np.sum(L.params["B"] * L.W.T) / np.sum(L.W.T * L.W.T)) for L in (hidden, out)]
    expected = [ratio, ratio] if normalize else [ratio * sigma**2 / 2, ratio * sigma**2]
    np.testing.assert_allclose(scales, expected, rtol=0.05)


def test_weight_mirror_runs_after_every_nth_step_and_validates():
    net, rule = _net_with("wm", every=3, seed=2)
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


def test_a_rule_is_one_class_whose_settings_reach_the_config_the_flags_and_the_run(tmp_path, monkeypatch):
    """The README's "Adding a learning rule": one class with a setting, and nothing else, gives a rule
    that get_rule builds, TrainConfig checks, the command line trains and a run folder records."""
    import dataclasses

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
        net, fa = _net_with("fa", seed=4)
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

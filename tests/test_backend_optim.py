"""The array-module switch, the optimizer (eq 16) and the learning-rate schedules."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import minibp
from minibp import SGD, Dense
from minibp.optim import Cosine, Step, get_schedule

HAS_CUPY = importlib.util.find_spec("cupy") is not None


def test_numpy_is_the_default_backend():
    assert minibp.get_backend() is np
    assert minibp.get_array_module(np.zeros(2)) is np
    assert isinstance(minibp.to_numpy(np.zeros(2)), np.ndarray)


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here")
def test_asking_for_cupy_without_it_says_how_to_install(tmp_path):
    with pytest.raises(
        RuntimeError, match=r"CuPy is not installed: install the GPU extra with `pip install 'minibp\[gpu\]'`"
    ):
        minibp.set_backend("cupy")
    assert minibp.get_backend() is np
    code = "import minibp; print('imported'); minibp.get_backend()"
    env = {"MINIBP_BACKEND": "cupy", "PATH": ""}
    env_run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    # import minibp works; the first array asks for the backend and says what to install
    assert env_run.stdout == "imported\n"
    assert env_run.returncode != 0 and "CuPy is not installed" in env_run.stderr
    cli = [sys.executable, "-m", "minibp", "compare", "--epochs", "1", "--quiet", "--out", "unused"]
    cli_run = subprocess.run(cli, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert cli_run.returncode == 2 and "Traceback" not in cli_run.stderr
    assert cli_run.stderr.startswith("minibp: error: the CuPy backend was requested but CuPy is not installed")
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        minibp.set_backend("jax")


def test_import_works_without_cupy():
    out = subprocess.run(
        [sys.executable, "-c", "import minibp, sys; print('cupy' in sys.modules)"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == "False"


def _layer_with_grad(seed=0):
    rng = np.random.default_rng(seed)
    layer = Dense(3, 2, rng=rng, dtype="float64", name="d")
    layer.grads = {"W": rng.standard_normal((2, 3)), "b": rng.standard_normal(2)}
    return layer


def test_sgd_matches_a_hand_written_momentum_loop():
    """v ← μ v + g + wd·p, p ← p − η v for W; biases get no decay."""
    layer = _layer_with_grad()
    W, b = layer.W.copy(), layer.b.copy()
    vW, vb = np.zeros_like(W), np.zeros_like(b)
    opt = SGD(0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(4):
        opt.step([layer])
        vW = 0.9 * vW + layer.grads["W"] + 0.01 * W
        vb = 0.9 * vb + layer.grads["b"]
        W, b = W - 0.1 * vW, b - 0.1 * vb
    np.testing.assert_allclose(layer.W, W, rtol=1e-14)
    np.testing.assert_allclose(layer.b, b, rtol=1e-14)


def test_plain_sgd_is_eq16():
    """ΔW = −η g − λ W with λ = η·wd."""
    layer = _layer_with_grad(1)
    W0 = layer.W.copy()
    SGD(0.2, weight_decay=0.5).step([layer])
    np.testing.assert_allclose(layer.W, W0 - 0.2 * layer.grads["W"] - 0.2 * 0.5 * W0, rtol=1e-14)


def test_schedules():
    assert Step([32], 0.1)(1.0, 31.9) == 1.0 and Step([32], 0.1)(1.0, 32) == pytest.approx(0.1)
    assert Step([2, 4], 0.5)(1.0, 5) == 0.25
    cos = Cosine(10)
    assert cos(1.0, 0) == 1.0 and cos(1.0, 5) == pytest.approx(0.5) and cos(1.0, 10) == pytest.approx(0.0)
    assert get_schedule("constant", epochs=3)(0.3, 2) == 0.3
    with pytest.raises(ValueError, match="needs milestones"):
        get_schedule("step", epochs=3)
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        get_schedule("exp", epochs=3)
    with pytest.raises(ValueError, match="momentum must lie in"):
        SGD(0.1, momentum=1.0)


@pytest.mark.parametrize(("wd", "regime"), [(0.01, "real"), (0.5, "complex")])
def test_momentum_decay_contracts_as_its_recurrence_says(wd, regime):
    """With momentum μ and gradients that cancel (KP's W − Bᵀ), decay alone drives
    D_{t+1} = b D_t − μ D_{t−1}, b = 1 + μ − λ, λ = η·wd. While λ ≤ (1 − √μ)² the roots of
    z² − b z + μ are real and D shrinks by the larger one, 1 − r ≈ λ / (1 − μ) for small λ; beyond
    it they are complex, of modulus √μ, and D shrinks by √μ a step, however large λ is
    (Q_t = D_t² − b D_t D_{t−1} + μ D_{t−1}² falls by exactly μ a step, and is positive definite there)."""
    lr, mu = 0.1, 0.9
    lam, b = lr * wd, 1 + mu - lr * wd
    layer = Dense(4, 3, rng=np.random.default_rng(0), dtype="float64")
    layer.params.pop("b")
    w0 = layer.W[0, 0]
    opt = SGD(lr, momentum=mu, weight_decay=wd)
    d = [1.0]  # every entry of W follows the same scalar recursion: W_t = d_t · W_0
    for _ in range(400):
        layer.grads = {"W": np.zeros_like(layer.W)}  # gradients that cancel leave decay alone
        opt.step([layer])
        d.append(layer.W[0, 0] / w0)
    d = np.array(d)
    assert (lam <= (1 - np.sqrt(mu)) ** 2) == (regime == "real")
    q = d[2:] ** 2 - b * d[2:] * d[1:-1] + mu * d[1:-1] ** 2
    np.testing.assert_allclose(q[1:], mu * q[:-1], rtol=1e-6, atol=1e-12 * abs(q[0]))
    if regime == "real":
        r = (b + np.sqrt(b * b - 4 * mu)) / 2
        assert d[400] / d[399] == pytest.approx(r, rel=1e-9)
        assert 1 - r == pytest.approx(lam / (1 - mu), rel=0.15)  # the rule of thumb holds here
    else:
        assert b * b < 4 * mu  # Q is positive definite: |D_t| is within a constant of √μ^t
        envelope = np.abs(d) / np.sqrt(mu) ** np.arange(d.size)
        assert 0.5 < envelope[300:360].max() / envelope[:60].max() < 2  # √μ a step, no faster, no slower
        assert 1 - np.sqrt(mu) < 0.2 * lam / (1 - mu)  # the rule of thumb would claim ten times more

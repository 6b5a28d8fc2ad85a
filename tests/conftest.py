"""Shared test helpers: a float64 finite-difference check and a mine-vs-reference printer; a
naive convolution and the channel-major memory layout; the small float64 networks the rule tests
(and their GPU twins) train; every layer type in a table; the digits data.

Tests marked ``gpu`` run on CuPy and are skipped where CuPy or a CUDA GPU is missing
(``-m "not gpu"`` leaves them out altogether). ``MINIBP_GPU_TESTS_BACKEND=guard`` runs them
on the guard backend instead (:mod:`minibp.testing`: NumPy that raises on implicit host
transfers), so that their own code can be checked on a machine without a GPU.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import numpy as np
import pytest

import minibp
from minibp import get_rule, mlp, to_numpy
from minibp.layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool,
    LocalConv2D,
    MaxPool2D,
    SynapticScaling,
    Tanh,
    get_activation,
)
from minibp.network import Network


@functools.cache
def gpu_backend() -> tuple[str | None, str]:
    """The backend ``gpu`` tests run on (``"cupy"``, or ``"guard"`` when asked for), or ``None`` and why."""
    if os.environ.get("MINIBP_GPU_TESTS_BACKEND", "").strip().lower() == "guard":
        return "guard", ""
    try:
        import cupy
    except ImportError:
        return None, "CuPy is not installed"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # no driver, or a broken one
        return None, f"CuPy found no usable CUDA GPU ({type(err).__name__}: {err})"
    return ("cupy", "") if n > 0 else (None, "CuPy sees no CUDA GPU")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        backend, why = gpu_backend()
        if backend is None:
            pytest.skip(f"needs a CUDA GPU: {why}")


@pytest.fixture(autouse=True)
def _numpy_backend():
    """Every test starts and ends on the NumPy backend."""
    minibp.set_backend("numpy")
    yield
    minibp.set_backend("numpy")


def cmp(name: str, mine: np.ndarray, ref: np.ndarray) -> str:
    """One line saying how ``mine`` differs from ``ref`` (printed on failure)."""
    mine, ref = np.asarray(mine), np.asarray(ref)
    exact = np.array_equal(mine, ref)
    close = np.allclose(mine, ref)
    diff = float(np.max(np.abs(mine - ref))) if mine.size else 0.0
    return f"{name:>12} | exact: {exact!s:5} | allclose: {close!s:5} | max diff: {diff:.3e}"


def directional_fd(f: Callable[[], float], x: np.ndarray, v: np.ndarray, eps: float = 1e-6) -> float:
    """Central finite difference of ``f`` along ``v``, perturbing ``x`` in place (and restoring it)."""
    x += eps * v
    up = f()
    x -= 2 * eps * v
    down = f()
    x += eps * v
    return (up - down) / (2 * eps)


def check_grad(
    f: Callable[[], float], x: np.ndarray, grad: np.ndarray, rng: np.random.Generator, n_dirs: int = 5
) -> None:
    """Assert ``<grad, v>`` equals the finite-difference slope of ``f`` along random directions ``v``."""
    assert x.dtype == np.float64 and grad.shape == x.shape
    for _ in range(n_dirs):
        v = rng.standard_normal(x.shape)
        fd = directional_fd(f, x, v)
        an = float(np.sum(grad * v))
        assert abs(fd - an) <= 1e-6 * max(1.0, abs(fd)), cmp("slope", an, fd)


# --------------------------------------------------------------------------- convolution


CONV_CASES = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)]  # (stride, padding)


def naive_conv(x, W, stride, padding):
    """Eq (1) on each output position, one at a time."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, w = xp.shape
    co, _, kh, kw = W.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = np.zeros((n, co, ho, wo))
    for r in range(ho):
        for c in range(wo):
            patch = xp[:, :, r * stride : r * stride + kh, c * stride : c * stride + kw]
            y[:, :, r, c] = np.tensordot(patch, W, axes=([1, 2, 3], [1, 2, 3]))
    return y


def channel_major(a):
    """The values of ``a`` in channel-major memory: an ``(N, C, H, W)`` view of a ``(C, N, H, W)`` array."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


# --------------------------------------------------------------------------- small networks under a rule


def mlp_with_rule(rule_name, seed=0, sizes=(6, 8, 7, 4), activation="tanh", **opts):
    """A float64 MLP (tanh units by default) and the rule ``rule_name`` with ``opts``, feedback weights drawn."""
    net = mlp(list(sizes), activation, seed=seed, dtype="float64")
    rule = get_rule(rule_name, **opts)
    net.init_feedback(rule, np.random.default_rng(seed + 1))
    return net, rule


def mlp_batch(seed=0, n=12, d=6, k=4):
    """A batch for :func:`mlp_with_rule`'s network: ``n`` inputs of ``d`` numbers, labels below ``k``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def conv_net_with_rule(rule_name, seed=0, **opts):
    """Two tanh convolutions (the second strided) and a dense output layer in float64, the rule
    ``rule_name`` with ``opts`` (feedback weights drawn), and a batch of five 2×7×7 images."""
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
    x = rng.standard_normal((5, 2, 7, 7))
    y = rng.integers(0, 3, 5)
    rule = get_rule(rule_name, **opts)
    example = minibp.backend.asarray(x[:1])  # DFA shapes B by each layer's input
    net.init_feedback(rule, np.random.default_rng(seed + 1), example=example)
    return net, rule, x, y


def local_net_with_rule(rule_name, seed=0, **opts):
    """:func:`conv_net_with_rule`'s network with locally connected layers in place of its convolutions
    (a kernel per output position), the rule ``rule_name`` with ``opts`` and a batch of five 2×7×7 images."""
    rng = np.random.default_rng(seed)
    net = Network(
        [
            LocalConv2D(2, 3, 3, (7, 7), padding=1, rng=rng, dtype="float64"),
            Tanh(),
            LocalConv2D(3, 4, 3, (7, 7), stride=2, rng=rng, dtype="float64"),
            Tanh(),
            Flatten(),
            Dense(4 * 3 * 3, 3, rng=rng, dtype="float64"),
        ]
    )
    x = rng.standard_normal((5, 2, 7, 7))
    y = rng.integers(0, 3, 5)
    rule = get_rule(rule_name, **opts)
    net.init_feedback(rule, np.random.default_rng(seed + 1), example=minibp.backend.asarray(x[:1]))
    return net, rule, x, y


def state_arrays(net) -> list[np.ndarray]:
    """Every param and buffer of every layer of ``net``, copied to the host."""
    return [to_numpy(a) for layer in net.walk() for d in (layer.params, layer.buffers) for a in d.values()]


# every layer type, made in a given dtype, with the shape of its input (test_guard.py and test_gpu.py)
LAYERS = {
    "dense": (lambda dtype: Dense(5, 3, rng=np.random.default_rng(0), dtype=dtype), (4, 5)),
    "conv s2 p1": (
        lambda dtype: Conv2D(2, 3, 3, stride=2, padding=1, rng=np.random.default_rng(0), dtype=dtype),
        (2, 2, 7, 6),
    ),
    "conv s1 p0": (lambda dtype: Conv2D(3, 2, 3, rng=np.random.default_rng(1), dtype=dtype), (2, 3, 5, 5)),
    "local s2 p1": (
        lambda dtype: LocalConv2D(2, 3, 3, (7, 6), stride=2, padding=1, rng=np.random.default_rng(0), dtype=dtype),
        (2, 2, 7, 6),
    ),
    "local s1 p0": (
        lambda dtype: LocalConv2D(3, 2, 3, (5, 5), rng=np.random.default_rng(1), dtype=dtype),
        (2, 3, 5, 5),
    ),
    "scaling per channel": (
        lambda dtype: SynapticScaling(3, measure=get_activation("relu"), dtype=dtype),
        (4, 3, 4, 4),
    ),
    "scaling per unit": (lambda dtype: SynapticScaling((3, 4, 4), dtype=dtype), (4, 3, 4, 4)),
    "batchnorm 2d": (lambda dtype: BatchNorm(5, dtype=dtype), (4, 5)),
    "batchnorm 4d": (lambda dtype: BatchNorm(2, dtype=dtype), (3, 2, 4, 4)),
    "maxpool 3/2/1": (lambda dtype: MaxPool2D(3, stride=2, padding=1), (2, 3, 7, 7)),
    "avgpool 3/1/1": (lambda dtype: AvgPool2D(3, stride=1, padding=1), (2, 3, 5, 5)),
    "global avgpool": (lambda dtype: GlobalAvgPool(), (2, 3, 4, 4)),
    "flatten": (lambda dtype: Flatten(), (2, 3, 4, 4)),
    **{name: (lambda dtype, name=name: get_activation(name), (4, 6)) for name in minibp.layers.ACTIVATIONS},
}


def layer_outputs(xp, name: str, train: bool, dtype: str) -> list:
    """Forward, backward (and for weight layers: weight gradients and mirror mode) of ``LAYERS[name]``
    on random inputs drawn on the host and copied to ``xp``."""
    make, shape = LAYERS[name]
    layer = make(dtype)
    rng = np.random.default_rng(5)
    x = xp.asarray(rng.standard_normal(shape), dtype=dtype)
    y = layer.forward(x, train)
    g = xp.asarray(rng.standard_normal(y.shape), dtype=dtype)
    if not layer.has_weights:
        return [y, layer.backward(g)]
    noise = xp.asarray(rng.standard_normal((3, *layer.mirror_input_shape)), dtype=dtype)
    post = layer.mirror_forward(noise, True)
    return [
        y,
        layer.backward_input(g, layer.transpose_weight()),
        *layer.weight_grads(g).values(),
        post,
        layer.mirror_correlation(noise, post),
    ]


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8×8 digits, flattened, loaded once per test module."""
    from minibp.data import load_digits

    return load_digits()

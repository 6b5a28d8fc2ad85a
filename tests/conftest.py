"""Shared test helpers: a float64 finite-difference check and a mine-vs-reference printer.

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

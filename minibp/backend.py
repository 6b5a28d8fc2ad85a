"""The array-module switch.

All array math in minibp goes through ``xp``, the module returned by
:func:`get_backend`: NumPy by default, CuPy when ``MINIBP_BACKEND=cupy`` is set
(read when the first array is made, so that ``import minibp`` never fails on it) or after
``minibp.set_backend("cupy")``. Layers never convert
between host and device on their own; :func:`to_numpy` is the one explicit way
back to the host (for logging, checkpoints and plots).

A third backend, ``"guard"`` (:mod:`minibp.testing`), computes with NumPy but raises
wherever CuPy would copy to the host implicitly: tests use it to check the CuPy path on
machines without a GPU.

Chainer's idiom is followed: ``xp = get_array_module(x)`` picks the module an
array belongs to, and CuPy is imported lazily inside ``try`` so that
``import minibp`` works on machines without it.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy

__all__ = ["get_backend", "set_backend", "get_array_module", "to_numpy", "asarray", "backend_name"]

_INSTALL_HINT = (
    "install the GPU extra with `pip install 'minibp[gpu]'` (CuPy for CUDA 12) or the CuPy wheel "
    "matching your CUDA version (see https://docs.cupy.dev/en/stable/install.html), "
    "or use the NumPy backend: MINIBP_BACKEND=numpy / --backend numpy"
)

_xp: ModuleType | None = None  # None until the first get_backend() reads MINIBP_BACKEND


def _load_cupy() -> ModuleType:
    try:
        import cupy  # noqa: PLC0415  (optional dependency, imported on demand)
    except ImportError as err:
        raise RuntimeError(f"the CuPy backend was requested but CuPy is not installed: {_INSTALL_HINT}") from err
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken
        raise RuntimeError(f"CuPy is installed but no usable CUDA GPU was found ({err}); {_INSTALL_HINT}") from err
    if n < 1:
        raise RuntimeError(f"CuPy is installed but no CUDA GPU is visible; {_INSTALL_HINT}")
    return cupy


def _guard_module() -> ModuleType:
    from .testing import guard  # noqa: PLC0415  (test-only backend, loaded on demand)

    return guard


def set_backend(name: str) -> ModuleType:
    """Select the array module for new arrays: ``"numpy"``, ``"cupy"`` or ``"guard"`` (NumPy that
    refuses implicit host transfers, for tests: see :mod:`minibp.testing`). Returns it."""
    global _xp
    key = str(name).strip().lower()
    if key == "numpy":
        _xp = numpy
    elif key == "cupy":
        _xp = _load_cupy()
    elif key == "guard":
        _xp = _guard_module()
    else:
        raise ValueError(f"unknown backend {name!r}: choose 'numpy' or 'cupy' (or 'guard' for tests)")
    return _xp


def get_backend() -> ModuleType:
    """The array module new arrays are created with: the one :func:`set_backend` chose, else the one
    ``MINIBP_BACKEND`` names, else NumPy."""
    if _xp is None:
        return set_backend(requested_backend())
    return _xp


def requested_backend() -> str:
    """The backend ``MINIBP_BACKEND`` asks for, ``"numpy"`` when it is unset."""
    return os.environ.get("MINIBP_BACKEND", "").strip() or "numpy"


def backend_name() -> str:
    """``"numpy"``, ``"cupy"`` or ``"guard"``: the backend new arrays are created with."""
    xp = get_backend()
    if xp is numpy:
        return "numpy"
    return "guard" if xp.__name__ == "minibp.testing.guard" else "cupy"


def _is_device_array(x: Any) -> bool:
    """Whether ``x`` is a CuPy array or a guard array (which pretends to be one)."""
    mod = type(x).__module__
    return mod.startswith("cupy") or mod == "minibp.testing"


def get_array_module(*arrays: Any) -> ModuleType:
    """The module (NumPy, CuPy or the guard) that ``arrays`` belong to, as in Chainer and CuPy."""
    for a in arrays:
        mod = type(a).__module__
        if mod.startswith("cupy"):
            import cupy  # noqa: PLC0415

            return cupy
        if mod == "minibp.testing":
            return _guard_module()
    return numpy


def to_numpy(x: Any) -> numpy.ndarray:
    """Explicit copy of an array to the host (a no-op view for NumPy arrays)."""
    if _is_device_array(x):
        return x.get()
    return numpy.asarray(x)


def asarray(x: Any, dtype: Any = None) -> Any:
    """``x`` as an array of the current backend (an explicit host-to-device copy for CuPy)."""
    return get_backend().asarray(x, dtype=dtype)

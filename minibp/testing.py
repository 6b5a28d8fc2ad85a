"""A CPU stand-in for CuPy that refuses every implicit trip to the host: the ``"guard"`` backend.

On a GPU, ``float(loss)``, ``bool(x > 0)``, ``x.item()`` or ``numpy.asarray(x)`` inside a training
step each stop the host until the device has caught up, then copy to the host; CuPy refuses only
some of them (``numpy.asarray`` raises, ``float`` silently synchronises). On a machine without a
GPU none of this shows. This module makes it show: :data:`guard` is an array module that computes
with NumPy but hands out :class:`GuardArray` objects that behave like CuPy arrays towards the host,
and stricter:

* every conversion to the host raises :class:`HostTransferError` (a ``TypeError``, as CuPy raises):
  ``numpy.asarray(x)`` / ``numpy.array(x)``, ``float(x)``, ``int(x)``, ``bool(x)``, ``x.item()``,
  ``x.tolist()``, formatting with a number format;
* a host ``numpy.ndarray`` mixed into an operation on guard arrays raises, as in CuPy (Python and
  NumPy scalars are fine; so are host arrays used as indices, which CuPy copies to the device);
* reductions and integer indexing return 0-d guard arrays, never NumPy scalars, as CuPy does;
* ``guard.asarray(host_array)`` is the explicit host-to-device copy (it copies, so no memory is
  shared with the host array); :func:`minibp.backend.to_numpy` (which calls ``x.get()``, as for
  CuPy) is the one way back, and every call is counted by :func:`count_transfers`.

Views write through (slices, ``.T``, ``reshape``, ``guard.lib.stride_tricks.as_strided``),
in-place operators work, and ``guard.random.default_rng(seed)`` draws as NumPy's generator
(CuPy's draws other numbers from the same seed). Iterating over an array yields 0-d guard arrays,
as CuPy's iteration yields device arrays; converting those raises.

Use it to check that a model's training step never leaves the device::

    from minibp import set_backend, to_numpy
    from minibp.testing import count_transfers

    set_backend("guard")
    net = ...                       # built after the switch: its arrays are guard arrays
    with count_transfers() as transfers:
        train_step(net)             # raises at the first implicit host conversion
    assert transfers.count == 0

It is slow (Python wraps every operation) and meant for small test networks only.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["GuardArray", "HostTransferError", "TransferCounter", "count_transfers", "guard", "transfers"]


class HostTransferError(TypeError):
    """An implicit conversion of a (pretend) device array to the host, or a host array mixed in."""


_EXPLICIT = "use minibp.backend.to_numpy(x) to copy to the host explicitly"
# attributes of numpy.ndarray that would hand host memory or Python values out
_HOST_ATTRS = frozenset({"item", "tolist", "tobytes", "tofile", "dump", "dumps", "data", "ctypes", "flat", "itemset"})

#: number of explicit device-to-host copies (``x.get()``, i.e. ``to_numpy``) since import
transfers = 0


def _refuse(what: str) -> HostTransferError:
    return HostTransferError(f"{what} would copy a device array to the host implicitly; {_EXPLICIT}")


def _unwrap(obj: Any) -> Any:
    """Guard arrays to their NumPy arrays, through lists, tuples and dicts; host arrays refused."""
    if isinstance(obj, GuardArray):
        return obj._a
    if isinstance(obj, numpy.ndarray):
        raise HostTransferError(
            f"a host numpy.ndarray of shape {obj.shape} was mixed into an operation on device arrays "
            "(CuPy raises here too): move it to the device with xp.asarray first"
        )
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _unwrap_index(key: Any) -> Any:
    """An index: guard arrays unwrapped; host arrays and lists allowed (CuPy copies them over)."""
    if isinstance(key, GuardArray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_unwrap_index(k) for k in key)
    return key


def _wrap(obj: Any) -> Any:
    """NumPy arrays and scalars to guard arrays (scalars as 0-d arrays, as CuPy returns them)."""
    if isinstance(obj, numpy.ndarray):
        return GuardArray(obj)
    if isinstance(obj, numpy.generic):
        return GuardArray(numpy.asarray(obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_wrap(o) for o in obj)
    return obj


def _guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with guard arrays in, guard arrays out, and host arrays refused."""

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    return call


class GuardArray(NDArrayOperatorsMixin):
    """A NumPy array posing as a device array: every operation works, every implicit host
    conversion raises :class:`HostTransferError`. Create them with :data:`guard`'s functions."""

    __slots__ = ("_a",)
    __hash__ = None  # type: ignore[assignment]  # unhashable, like every ndarray

    def __init__(self, a: numpy.ndarray) -> None:
        self._a = a

    # ---- the ways back to the host
    def get(self) -> numpy.ndarray:
        """Explicit copy to the host (CuPy's ``ndarray.get``); counted in :data:`transfers`."""
        global transfers
        transfers += 1
        return self._a.copy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        raise _refuse("numpy.asarray(x) / numpy.array(x)")

    def __float__(self) -> float:
        raise _refuse("float(x)")

    def __int__(self) -> int:
        raise _refuse("int(x)")

    def __index__(self) -> int:
        raise _refuse("operator.index(x) (x used as a Python integer)")

    def __complex__(self) -> complex:
        raise _refuse("complex(x)")

    def __bool__(self) -> bool:
        raise _refuse("bool(x) (an `if`, `and`, `or`, `not` or `assert` on an array)")

    def __format__(self, spec: str) -> str:
        if spec:
            raise _refuse(f"formatting with {spec!r}")
        return repr(self)

    def __repr__(self) -> str:
        return f"GuardArray({self._a!r})"

    # ---- NumPy's protocols: CuPy implements both, so numpy.exp(x) or numpy.sum(x) stay on the device
    def __array_ufunc__(self, ufunc: numpy.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        result = getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs))
        if out is not None:
            return out[0] if len(out) == 1 else out  # the guard arrays written to
        return _wrap(result)

    def __array_function__(self, func: Any, arg_types: Any, args: Any, kwargs: Any) -> Any:
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # ---- containers
    def __len__(self) -> int:
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self) -> Iterator[GuardArray]:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __getitem__(self, key: Any) -> GuardArray:
        return _wrap(self._a[_unwrap_index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        if not (isinstance(value, numpy.ndarray) and value.ndim == 0):  # CuPy fills from 0-d host arrays only
            value = _unwrap(value)
        self._a[_unwrap_index(key)] = value

    def __copy__(self) -> GuardArray:
        return GuardArray(self._a.copy())

    def __deepcopy__(self, memo: dict[int, Any]) -> GuardArray:
        return GuardArray(self._a.copy())

    # ---- everything else: ndarray's attributes and methods, wrapped
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # __array_interface__ and friends would leak host memory
            raise AttributeError(name)
        if name in _HOST_ATTRS:
            raise _refuse(f"x.{name}")
        attr = getattr(self._a, name)
        return _guarded(attr) if callable(attr) else _wrap(attr)


def _as_strided(x: GuardArray, shape: Any = None, strides: Any = None) -> GuardArray:
    """``numpy.lib.stride_tricks.as_strided`` on a guard array: a writable view (strides in bytes, as in CuPy)."""
    return GuardArray(numpy.lib.stride_tricks.as_strided(_unwrap(x), shape=shape, strides=strides))


def _asarray(a: Any, dtype: Any = None, order: Any = None) -> GuardArray:
    """To the device: a guard array as it is (cast if ``dtype`` differs), anything else copied."""
    if isinstance(a, GuardArray):
        return GuardArray(a._a.astype(dtype, order=order or "K", copy=False)) if dtype is not None else a
    return GuardArray(numpy.array(_unwrap_host_ok(a), dtype=dtype, order=order or "K", copy=True))


def _array(a: Any, dtype: Any = None, copy: bool = True, order: str = "K", ndmin: int = 0) -> GuardArray:
    """``cupy.array``: a copy (unless ``copy=False`` and nothing changes) on the device."""
    if isinstance(a, GuardArray):  # copy=False: copy only where dtype, order or ndmin ask for it
        return GuardArray(numpy.array(a._a, dtype=dtype, copy=True if copy else None, order=order, ndmin=ndmin))
    return GuardArray(numpy.array(_unwrap_host_ok(a), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def _unwrap_host_ok(obj: Any) -> Any:
    """For explicit host-to-device copies: host arrays allowed, guard arrays unwrapped."""
    if isinstance(obj, GuardArray):
        return obj._a
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap_host_ok(o) for o in obj)
    return obj


class _Generator:
    """``guard.random.default_rng(seed)``: NumPy's generator, drawing guard arrays."""

    def __init__(self, seed: Any = None) -> None:
        self._rng = numpy.random.default_rng(seed)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._rng, name)
        return _guarded(attr) if callable(attr) else attr


class _Namespace(types.ModuleType):
    """A module whose functions are ``source``'s, wrapped by :func:`_guarded`; types and constants
    (``float32``, ``dtype``, ``pi``) pass through unchanged, as CuPy re-exports NumPy's."""

    def __init__(self, name: str, source: types.ModuleType, **overrides: Any) -> None:
        super().__init__(name, f"{source.__name__} posing as a device array module (see minibp.testing)")
        self._source = source
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._source, name)
        value = _guarded(attr) if callable(attr) and not isinstance(attr, type) else attr
        setattr(self, name, value)  # look each name up once
        return value


#: The array module of the ``"guard"`` backend (``minibp.set_backend("guard")``).
guard = _Namespace(
    "minibp.testing.guard",
    numpy,
    ndarray=GuardArray,
    asarray=_asarray,
    asanyarray=_asarray,
    array=_array,
    lib=types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided)),
    random=_Namespace("minibp.testing.guard.random", numpy.random, default_rng=_Generator),
    linalg=_Namespace("minibp.testing.guard.linalg", numpy.linalg),
)


class TransferCounter:
    """How many explicit device-to-host copies (``to_numpy``) happened inside a ``with`` block."""

    def __init__(self) -> None:
        self._start = transfers
        self._end: int | None = None

    @property
    def count(self) -> int:
        return (transfers if self._end is None else self._end) - self._start


@contextmanager
def count_transfers() -> Iterator[TransferCounter]:
    """Count the ``to_numpy`` calls on guard arrays made inside the block (``counter.count``)."""
    counter = TransferCounter()
    try:
        yield counter
    finally:
        counter._end = transfers

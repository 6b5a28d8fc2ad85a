"""The routes a convolution's products take: the reference im2col route, and the fast routes.

The reference route (read it in :mod:`minibp.layers.conv`) builds *columns*: :func:`im2col`
lays each ``kh × kw`` patch of the image out as a column, by stride tricks with no loop, so
that eq (1) is ``W`` times the columns, eqs (2)/(3) the transposed product followed by
:func:`col2im` (one strided add per kernel tap, never a loop over pixels or samples), and
eq (4) ``δ`` times the columns.

Each operation has one fast route, which gives the same values, up to rounding, from other
products:

* ``conv2d``, route ``"grid"`` (stride 1): the columns are taken from the *padded grid*
  (:func:`padded_grid`), the input zero-padded and laid out channel-major, flattened to
  ``(C, N·Hp·Wp)``. There kernel tap ``(i, j)`` is a shift of ``i·Wp + j`` cells, so each tap's
  rows of the columns are one long contiguous copy instead of a 4-D strided one. The product
  gives an output at every grid cell, so the columns and the product are ``Hp·Wp / (Ho·Wo)``
  times im2col's: the route pays on large images only (:data:`GRID_MAX_OVERHEAD`), and not for
  a 1×1 kernel, whose im2col columns of a channel-major image are already a copy of its rows.
* ``conv2d_transpose``, route ``"flipped"`` (stride 1, square kernel): ``convᵀ(δ, F)`` is the
  convolution of ``δ``, padded by ``k − 1 − padding``, with ``F`` flipped in both spatial axes
  and its two channel axes swapped. Its columns hold ``k²·C_out`` rows per input pixel, the
  general route's product writes ``k²·C_in`` values per output pixel, and col2im adds them tap
  by tap; the flipped form is taken where its columns are no larger
  (``C_out·H·W ≤ C_in·H_out·W_out``).
* ``conv2d_weight_grad``, route ``"grid"`` (stride 1): no columns at all. With ``x`` and ``δ``
  on the same padded grid, tap ``(i, j)`` of the gradient is one product of ``δ`` with ``x``
  shifted by ``i·Wp + j`` cells, a view, so nothing is copied but the two layouts.

:func:`pick_route` is the one place that chooses. The measurements behind each route and its
threshold are in ``benchmarks/README.md`` ("Convolution routes: why each fast route exists").

Every function here accepts images in any memory layout and hands images on as ``(N, C, H, W)``
views of channel-major ``(C, N, H, W)`` memory, the layout of a product ``W @ cols``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..backend import get_array_module
from .base import Array

#: each operation's routes: the reference first, then the fast route
ROUTES: dict[str, tuple[str, str]] = {
    "conv2d": ("im2col", "grid"),
    "conv2d_transpose": ("col2im", "flipped"),
    "conv2d_weight_grad": ("im2col", "grid"),
}

#: the padded grid's route for a stride-1 convolution is taken while ``Hp·Wp`` is at most this
#: many times ``Ho·Wo``, the share of the grid's columns that are wasted on cells with no output
GRID_MAX_OVERHEAD = 1.2


def out_size(size: int, k: int, stride: int, padding: int) -> int:
    """The output size along one axis of a convolution (or pooling) with kernel ``k``."""
    return (size + 2 * padding - k) // stride + 1


def geometry(layer: str, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> tuple[int, ...]:
    """A convolution's ``(c_in, c_out, kernel, stride, padding)`` as ints, checked: positive
    channels, kernel and stride, and padding ``>= 0``; ``layer`` names the layer in the error."""
    values = tuple(int(v) for v in (c_in, c_out, kernel, stride, padding))
    if min(values[:4]) < 1 or values[4] < 0:
        raise ValueError(
            f"{layer} needs positive channels, kernel and stride and padding >= 0, got "
            f"c_in={c_in}, c_out={c_out}, kernel={kernel}, stride={stride}, padding={padding}"
        )
    return values


def usable_routes(op: str, k_shape: tuple[int, ...], stride: int, padding: int) -> tuple[str, ...]:
    """The routes that compute ``op`` (a key of :data:`ROUTES`) for this kernel, stride and padding:
    the reference always; the fast route with stride 1 (and, for ``"flipped"``, a square kernel
    larger than the padding)."""
    reference, fast = ROUTES[op]
    kh, kw = k_shape[2], k_shape[3]
    applies = stride == 1 and (op != "conv2d_transpose" or (kh == kw and padding < kh))
    return (reference, fast) if applies else (reference,)


def pick_route(
    op: str, x_shape: tuple[int, ...], k_shape: tuple[int, ...], stride: int, padding: int, route: str | None = None
) -> str:
    """The route ``op`` takes for a convolution of an image of ``x_shape`` (for ``conv2d_transpose``,
    the shape it returns) by a kernel of ``k_shape``: the fast route where it applies and pays, else
    the reference.

    A ``route`` named by the caller is checked, not picked: it must be one of :func:`usable_routes`.
    """
    usable = usable_routes(op, k_shape, stride, padding)
    if route is not None:
        if route not in usable:
            raise ValueError(f"{op} cannot take the route {route!r} here (stride {stride}, kernel {k_shape}): {usable}")
        return route
    if len(usable) == 1:
        return usable[0]
    reference, fast = usable
    c_out, c_in, kh, kw = k_shape
    h, w = x_shape[2], x_shape[3]
    ho, wo = out_size(h, kh, stride, padding), out_size(w, kw, stride, padding)
    if op == "conv2d":  # the grid's columns are Hp·Wp / (Ho·Wo) times im2col's
        pays = kh * kw > 1 and (h + 2 * padding) * (w + 2 * padding) <= GRID_MAX_OVERHEAD * ho * wo
    elif op == "conv2d_transpose":  # the flipped form's columns against the general route's product
        pays = c_out * h * w <= c_in * ho * wo
    else:  # the column-free weight gradient copies less than im2col on every shape
        pays = True
    return fast if pays else reference


_scratch = threading.local()


def scratch(xp: Any, shape: tuple[int, ...], dtype: Any) -> Array:
    """An uninitialised array for columns that live only inside one call, cut from a buffer that
    is kept, per thread, array module and dtype, and grown when too small.

    Never return it or keep it: the next call overwrites it. The reason it exists: NumPy takes
    arrays above glibc's largest recycled block (32 MiB) fresh from the kernel, which zeroes
    every page on first touch, so a fresh array for large columns costs a second pass over them.
    """
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    key, size = (xp.__name__, np.dtype(dtype).str), int(np.prod(shape))
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def channel_major_full(xp: Any, shape: tuple[int, ...], fill: float, dtype: Any) -> Array:
    """An ``(N, C, H, W)`` array of ``fill``, in channel-major memory: a view of a contiguous
    ``(C, N, H, W)`` array, the layout the convolutions hand on, so element-wise work meets one layout."""
    n, c, h, w = shape
    return xp.full((c, n, h, w), fill, dtype=dtype).transpose(1, 0, 2, 3)


def channel_major_pad(x: Array, padding: int, fill: float = 0.0) -> Array:
    """``x`` padded with ``fill`` in height and width, as an ``(N, C, Hp, Wp)`` view of a contiguous
    ``(C, N, Hp, Wp)`` array: the layout the convolutions' products write, so a channel-major ``x``
    is padded by a straight copy. ``x`` itself when ``padding`` is 0."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    out = channel_major_full(get_array_module(x), (n, c, h + 2 * padding, w + 2 * padding), fill, x.dtype)
    out[:, :, padding : padding + h, padding : padding + w] = x
    return out


def channels_first(a: Array) -> Array:
    """``(N, C, H, W)`` → ``(C, N·H·W)``: one row per channel. A view when ``a`` is channel-major in
    memory (as the convolutions hand images on), else one transposing copy."""
    n, c, h, w = a.shape
    return get_array_module(a).ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(c, n * h * w)


def im2col(x: Array, kh: int, kw: int, stride: int, padding: int) -> Array:
    """Patches of ``x`` as columns: ``(C·kh·kw, N·Ho·Wo)``.

    Entry ``[(c, i, j), (n, r, s)]`` is ``x_pad[n, c, r·stride + i, s·stride + j]``: a strided
    view of the padded image, whatever its memory layout, copied once into a matrix.
    """
    xp = get_array_module(x)
    x = channel_major_pad(x, padding)
    n, c, h, w = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    sn, sc, sh, sw = x.strides
    view = xp.lib.stride_tricks.as_strided(
        x, shape=(c, kh, kw, n, ho, wo), strides=(sc, sh, sw, sn, sh * stride, sw * stride)
    )
    return xp.ascontiguousarray(view).reshape(c * kh * kw, n * ho * wo)


def col2im(cols: Array, x_shape: tuple[int, ...], kh: int, kw: int, stride: int, padding: int) -> Array:
    """The adjoint of :func:`im2col`: add every column back where its patch came from.

    One strided add per kernel tap. Returns ``(N, C, H, W)`` in channel-major memory.
    """
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    hp, wp = h + 2 * padding, w + 2 * padding
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    cols = cols.reshape(c, kh, kw, n, ho, wo)
    img = xp.zeros((c, n, hp, wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            img[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += cols[:, i, j]
    return xp.ascontiguousarray(img[:, :, padding : padding + h, padding : padding + w]).transpose(1, 0, 2, 3)


def padded_grid(x: Array, padding: int, tail: int = 0) -> Array:
    """``x`` zero-padded by ``padding`` and laid out channel-major, flattened: ``(C, N·Hp·Wp + tail)``,
    the last ``tail`` cells zeros too. Cell ``n·Hp·Wp + r·Wp + s`` of row ``c`` is ``x_pad[n, c, r, s]``."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    size = n * hp * wp
    grid = xp.zeros((c, size + tail), dtype=x.dtype)
    grid[:, :size].reshape(c, n, hp, wp)[:, :, padding : padding + h, padding : padding + w] = x.transpose(1, 0, 2, 3)
    return grid


def conv2d_on_grid(x: Array, W: Array, padding: int) -> Array:
    """Eq (1) with stride 1, the columns taken from the padded grid: tap ``(i, j)``'s rows are the
    grid shifted by ``i·Wp + j`` cells, one contiguous copy per tap into a reused buffer
    (:func:`scratch`). The product gives an output at every grid cell, of which those with a full
    patch (``r < Ho, s < Wo``) are kept. Returns ``(N, C_out, Ho, Wo)`` in channel-major memory."""
    co, ci, kh, kw = W.shape
    n, _, h, w = x.shape
    xp = get_array_module(x)
    hp, wp = h + 2 * padding, w + 2 * padding
    ho, wo = hp - kh + 1, wp - kw + 1
    size = n * hp * wp
    grid = padded_grid(x, padding, tail=(kh - 1) * wp + kw - 1)  # every tap's shift stays inside
    grid_cols = scratch(xp, (ci, kh, kw, size), x.dtype)
    for i in range(kh):
        for j in range(kw):
            shift = i * wp + j  # cell (n, r, s) of this tap's rows holds x_pad[n, :, r + i, s + j]
            grid_cols[:, i, j] = grid[:, shift : shift + size]
    y = W.reshape(co, -1) @ grid_cols.reshape(ci * kh * kw, size)  # eq (1) at every grid cell
    y = xp.ascontiguousarray(y.reshape(co, n, hp, wp)[:, :, :ho, :wo])  # the cells with a full patch
    return y.transpose(1, 0, 2, 3)


def weight_grad_on_grid(x: Array, delta: Array, k_shape: tuple[int, ...], padding: int) -> Array:
    """Eq (4) with stride 1 and no columns: ``x`` and ``δ`` laid out on the same padded grid
    (``δ`` zero where no output is), and tap ``(i, j)`` of the kernel's gradient one product of
    ``δ`` with ``x`` shifted by ``i·Wp + j`` grid cells, a view."""
    co, _, kh, kw = k_shape
    xp = get_array_module(x)
    n, _, h, w = x.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    ho, wo = delta.shape[2], delta.shape[3]
    flat_x = padded_grid(x, padding)
    grid_d = xp.zeros((co, n, hp, wp), dtype=delta.dtype)
    grid_d[:, :, :ho, :wo] = delta.transpose(1, 0, 2, 3)  # output (r, s) sits at grid cell (r, s)
    size = n * hp * wp
    flat_d = grid_d.reshape(co, size)
    grad = xp.empty(k_shape, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # cell (r, s) of δ meets cell (r + i, s + j) of x_pad, i·Wp + j cells further on
            shift = i * wp + j
            grad[:, :, i, j] = flat_d[:, : size - shift] @ flat_x[:, shift:].T  # eq (4), one tap
    return grad

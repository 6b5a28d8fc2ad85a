"""2-D convolution: eq (1) forward, eqs (2)/(3) feedback as a transposed convolution, eq (4) update.

Images are ``(N, C, H, W)``; a kernel ``W`` is ``(C_out, C_in, kh, kw)``. A convolution is
the dense layer of eq (1) applied to every ``kh × kw`` patch, so everything reduces to
matrix products on *columns*: ``im2col`` lays each patch out as a column (by stride
tricks, with no loop), and ``col2im`` adds columns back into an image with one loop
over the ``kh × kw`` kernel taps — never over pixels or samples.

The feedback weights ``B`` of a convolution are a kernel of ``W``'s shape, used in the
transposed convolution that carries ``δ`` back (eq 3 in convolutional form):
``δ_l = φ'(y_l) ⊙ convᵀ(δ_{l+1}, B)``; backprop uses ``B = W`` (eq 2). So the matrix
angle of a conv layer compares ``vec(B)`` with ``vec(W)``. With stride 1 the transposed
convolution is computed as an ordinary convolution with the flipped kernel; with a larger
stride, as a product followed by ``col2im``.

Images in channel-major memory. A product ``W @ cols`` gives its output as ``(C_out, N·Ho·Wo)``:
channel-major memory. :func:`conv2d` returns it as an ``(N, C_out, Ho, Wo)`` *view*, with no
transposing copy, so the arrays a network passes along keep the usual shape while their memory
is ``(C, N, H, W)``. NumPy's element-wise operations give results in their operands' layout,
so batch norm, ReLU and residual sums keep it too, and so do the errors of the backward pass.
Where the products need an image as one row per channel (the next convolution's columns, the
error ``δ`` in eqs (3)–(4)), that is then a plain copy or no copy at all. Every function here
accepts any memory layout: the layout changes the speed, and the order in which a reduction
(batch norm's means) adds its terms, so float32 results round differently, nothing else.

On large stride-1 images the columns are taken from the *padded grid* instead: the input
zero-padded and laid out channel-major, flattened to ``(C, N·Hp·Wp)``. There, kernel tap
``(i, j)`` is a shift of ``i·Wp + j`` cells, so each tap's rows of the columns are one long
contiguous copy, and the weight gradient needs no columns at all (see :func:`conv2d` and
:func:`conv2d_weight_grad`).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..backend import get_array_module
from .base import Array, WeightLayer


def out_size(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


#: the padded grid's route for a stride-1 convolution is taken while ``Hp·Wp`` is at most this
#: many times ``Ho·Wo``, the share of the grid's columns that are wasted on cells with no output
GRID_MAX_OVERHEAD = 1.2

_scratch = threading.local()


def scratch(xp: Any, shape: tuple[int, ...], dtype: Any) -> Array:
    """An uninitialised array for columns that live only inside one call, cut from a buffer that
    is kept, per thread, array module and dtype, and grown when too small.

    Never return it or keep it: the next call overwrites it. The reason it exists: NumPy takes
    arrays above glibc's largest recycled block (32 MiB) fresh from the kernel, which zeroes
    every page on first touch. For ResNet-20's 16-channel layers at batch 64 (42 MB of
    columns) that doubled the copy's time: 10.9 ms into a fresh array, 4.7 ms into a reused one.
    """
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    key, size = (xp.__name__, np.dtype(dtype).str), int(np.prod(shape))
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


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


def channel_major_full(xp: Any, shape: tuple[int, ...], fill: float, dtype: Any) -> Array:
    """An ``(N, C, H, W)`` array of ``fill``, in channel-major memory: a view of a contiguous
    ``(C, N, H, W)`` array, the layout the convolutions hand on, so element-wise work meets one layout."""
    n, c, h, w = shape
    return xp.full((c, n, h, w), fill, dtype=dtype).transpose(1, 0, 2, 3)


def channel_major_pad(x: Array, padding: int, fill: float = 0.0) -> Array:
    """``x`` padded with ``fill`` in height and width, as an ``(N, C, Hp, Wp)`` view of a contiguous
    ``(C, N, Hp, Wp)`` array: the layout this module's products write (see :func:`conv2d`),
    so a channel-major ``x`` is padded by a straight copy. ``x`` itself when ``padding`` is 0."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    out = channel_major_full(get_array_module(x), (n, c, h + 2 * padding, w + 2 * padding), fill, x.dtype)
    out[:, :, padding : padding + h, padding : padding + w] = x
    return out


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


def channels_first(a: Array) -> Array:
    """``(N, C, H, W)`` → ``(C, N·H·W)``: one row per channel. A view when ``a`` is channel-major in
    memory (as the convolutions hand images on), else one transposing copy."""
    n, c, h, w = a.shape
    return get_array_module(a).ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(c, n * h * w)


def conv2d(x: Array, W: Array, stride: int = 1, padding: int = 0, cols: Array | None = None) -> Array:
    """Eq (1) on every patch: ``y = W ⋆ x`` as one matrix product on the columns of ``x``
    (``cols``, when the caller has already built them with :func:`im2col`).

    Without given columns, a stride-1 convolution with a kernel larger than 1×1 on an image
    whose padded grid is at most :data:`GRID_MAX_OVERHEAD` times its output takes its columns
    on that grid (:func:`padded_grid`): tap ``(i, j)``'s rows are the grid shifted by
    ``i·Wp + j`` cells, one contiguous copy per tap into a reused buffer (:func:`scratch`),
    and the product gives an output at every grid cell, of which those with a full patch
    (``r < Ho, s < Wo``) are kept. The columns are ``Hp·Wp / (Ho·Wo)`` times im2col's, and so is
    the product. On one thread, at batch 64, ResNet-20's 3×3 convolutions took 15.6 ms against
    im2col's 21.0 ms at 32×32 (1.13 times the columns), 12.2 against 11.4 ms at 16×16 (1.27)
    and 10.7 against 9.2 ms at 8×8 (1.56): best of 42 each.
    """
    co, ci, kh, kw = W.shape
    n, _, h, w = x.shape
    ho, wo = out_size(h, kh, stride, padding), out_size(w, kw, stride, padding)
    xp = get_array_module(x)
    hp, wp = h + 2 * padding, w + 2 * padding
    if cols is None and stride == 1 and kh * kw > 1 and hp * wp <= GRID_MAX_OVERHEAD * ho * wo:
        size = n * hp * wp
        grid = padded_grid(x, padding, tail=(kh - 1) * wp + kw - 1)  # every tap's shift stays inside
        grid_cols = scratch(xp, (ci, kh, kw, size), x.dtype)
        for i in range(kh):
            for j in range(kw):
                shift = i * wp + j  # cell (n, r, s) of this tap's rows holds x_pad[n, :, r + i, s + j]
                grid_cols[:, i, j] = grid[:, shift : shift + size]
        y = W.reshape(co, -1) @ grid_cols.reshape(ci * kh * kw, size)  # eq (1) at every grid cell
        y = xp.ascontiguousarray(y.reshape(co, n, hp, wp)[:, :, :ho, :wo])  # the cells with a full patch
    else:
        if cols is None:
            cols = im2col(x, kh, kw, stride, padding)
        y = (W.reshape(co, -1) @ cols).reshape(co, n, ho, wo)  # eq (1)
    # (N, C_out, Ho, Wo) as a view: the memory stays channel-major, the product's own layout
    # (see the module's docstring)
    return y.transpose(1, 0, 2, 3)


def conv2d_transpose(delta: Array, F: Array, x_shape: tuple[int, ...], stride: int = 1, padding: int = 0) -> Array:
    """The transposed convolution ``convᵀ(δ, F)``: each output error spread back over its patch
    through the kernel ``F`` (``W`` for backprop, eq 2; ``B`` otherwise, eq 3).

    With stride 1 this is itself a convolution: of ``δ``, padded by ``k − 1 − padding``, with
    ``F`` flipped in both spatial axes and its two channel axes swapped. That form costs one
    im2col of ``δ`` and a product whose inner dimension is ``k²·C_out``. The general route
    below takes a product with inner dimension ``C_out`` that writes ``k²`` values per input
    pixel, then col2im's add per tap; on ResNet-20's layers it was 30–40 % slower. The
    convolution form is taken only where its columns are no larger than the general route's
    (``C_out·H·W ≤ C_in·H_out·W_out``): LeNet's second layer, 6 → 16 channels, would build
    2.7 times as many and its step ran 17 % slower. The two forms differ only in rounding.
    """
    co, ci, kh, kw = F.shape
    h, w = x_shape[2], x_shape[3]
    if stride == 1 and kh == kw and padding < kh and co * h * w <= ci * delta.shape[2] * delta.shape[3]:
        flipped = F[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C_in, C_out, kh, kw)
        return conv2d(delta, flipped, 1, kh - 1 - padding)
    cols = F.reshape(co, -1).T @ channels_first(delta)  # (C_in·kh·kw, N·Ho·Wo)
    return col2im(cols, x_shape, kh, kw, stride, padding)


def conv2d_weight_grad(
    x: Array, delta: Array, k_shape: tuple[int, ...], stride: int = 1, padding: int = 0, cols: Array | None = None
) -> Array:
    """Eq (4) for a kernel: ``Σ_patches δ_{l+1} y_lᵀ``, i.e. ``δ`` (rows per channel) times the columns of ``x``
    (``cols``, when the caller kept them from the forward pass).

    With stride 1 and no kept columns it needs no columns at all. Lay ``x`` out channel-major
    and zero-padded, flattened to ``(C_in, N·Hp·Wp)``, and ``δ`` on the same grid, zero where
    no output is. Then a tap ``(i, j)`` of the kernel is one product of ``δ`` with ``x``
    shifted by ``i·Wp + j`` grid cells: a view, so nothing is copied but the two layouts. On
    one thread, on ResNet-20's layers, it took 65–90 % of the im2col route's time; with two
    threads the gain varies with the machine's load (see ``benchmarks/README.md``).
    """
    co, ci, kh, kw = k_shape
    if cols is None and stride == 1:
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
    if cols is None:
        cols = im2col(x, kh, kw, stride, padding)
    return (channels_first(delta) @ cols.T).reshape(k_shape)


class Conv2D(WeightLayer):
    """A 2-D convolution with kernel ``W`` ``(C_out, C_in, k, k)``, optional bias, stride and zero padding.

    Weights start as ``N(0, gain² / (C_in·k²))`` (He et al. 2015), drawn on the host from ``rng``.

    ``keep_columns`` trades memory for time: the forward pass's columns (``k²/stride²`` times
    the input's size) stay in memory until the backward pass, which then needs no second
    :func:`im2col` for eq (4). Worth it for small networks (LeNet); a ResNet at batch 64 would
    hold hundreds of MB of columns at once, so by default they are rebuilt. Results are the
    same either way, bit for bit.
    """

    #: output positions per side of a mirror-mode noise image (its size is k + stride·(m − 1))
    mirror_positions = 4

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        *,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        gain: float = 1.0,
        rng: np.random.Generator | None = None,
        dtype: str = "float32",
        name: str = "",
        keep_columns: bool = False,
    ) -> None:
        super().__init__()
        self.keep_columns = bool(keep_columns)
        self.cols: Array | None = None
        self._mirror_cols: tuple[Array, Array] | None = None  # (noise, its columns) in mirror mode
        if min(int(c_in), int(c_out), int(kernel), int(stride)) < 1 or int(padding) < 0:
            raise ValueError(
                f"Conv2D needs positive channels, kernel and stride and padding >= 0, got "
                f"c_in={c_in}, c_out={c_out}, kernel={kernel}, stride={stride}, padding={padding}"
            )
        self.c_in, self.c_out, self.k = int(c_in), int(c_out), int(kernel)
        self.stride, self.padding = int(stride), int(padding)
        self.init_weights((self.c_out, self.c_in, self.k, self.k), gain, bias, rng, dtype, name)

    def __repr__(self) -> str:
        return f"Conv2D({self.c_in}, {self.c_out}, k={self.k}, stride={self.stride}, padding={self.padding})"

    @property
    def fan_in(self) -> int:
        return self.c_in * self.k * self.k

    @property
    def sign_scale(self) -> float:
        # Xiao et al. (2018) scale sign-symmetric conv kernels by √(2 / (k²·C_out))
        return float(np.sqrt(2.0 / (self.k * self.k * self.c_out)))

    @property
    def mirror_input_shape(self) -> tuple[int, ...]:
        side = self.k + self.stride * (self.mirror_positions - 1)
        return (self.c_in, side, side)

    def forward(self, x: Array, train: bool = True) -> Array:
        """Eq (1), linear part, on every patch: ``z = W ⋆ y_l + b``."""
        if x.ndim != 4 or x.shape[1] != self.c_in:
            raise ValueError(
                f"{self!r} expects input of shape (batch, {self.c_in}, height, width), got {tuple(x.shape)}"
            )
        if x.shape[2] + 2 * self.padding < self.k or x.shape[3] + 2 * self.padding < self.k:
            raise ValueError(f"{self!r}: input {tuple(x.shape[2:])} is smaller than the kernel")
        self.x = x  # y_l, kept for eq (4) and eq (17)
        keep = self.keep_columns and train
        self.cols = im2col(x, self.k, self.k, self.stride, self.padding) if keep else None
        z = conv2d(x, self.W, self.stride, self.padding, self.cols)  # eq (1)
        if self.b is not None:
            z += self.b[:, None, None]
        return z

    def backward_input(self, delta: Array, F: Array) -> Array:
        """Feedback path: ``convᵀ(δ_{l+1}, F)`` with ``F = W`` (eq 2) or ``F = B`` (eq 3)."""
        return conv2d_transpose(delta, F, self.x.shape, self.stride, self.padding)  # eq (2)/(3)

    def weight_grads(self, delta: Array) -> dict[str, Array]:
        """Eq (4) for a kernel: ``ΔW = −η Σ_patches δ_{l+1} y_lᵀ``."""
        grads = {"W": conv2d_weight_grad(self.x, delta, self.W.shape, self.stride, self.padding, self.cols)}  # eq (4)
        if self.b is not None:
            grads["b"] = delta.sum(axis=(0, 2, 3))
        return grads

    def transpose_weight(self) -> Array:
        return self.W  # the transposed convolution reads the kernel as it is

    def feedback_grad(self, grads: dict[str, Array]) -> Array:
        # eq (17) for a kernel: y_l ⋆ δ_{l+1} over all patches, which is exactly W's gradient
        return grads["W"]

    def mirror_forward(self, noise: Array, bias: bool) -> Array:
        # mirror mode (Fig 1b): noise images through the kernel, no padding, so every
        # output position sees a full patch of independent noise
        cols = im2col(noise, self.k, self.k, self.stride, 0)
        self._mirror_cols = (noise, cols)  # eq (7) needs the same columns next
        z = conv2d(noise, self.W, self.stride, 0, cols)
        if bias and self.b is not None:
            z += self.b[:, None, None]
        return z

    def mirror_correlation(self, pre: Array, post: Array) -> Array:
        # eq (7) for a kernel: the weight-gradient product with the output y_{l+1} in the
        # place of δ, averaged over every patch of every noise image
        kept, self._mirror_cols = self._mirror_cols, None
        cols = kept[1] if kept is not None and kept[0] is pre else None
        n_patches = post.shape[0] * post.shape[2] * post.shape[3]
        return conv2d_weight_grad(pre, post, self.W.shape, self.stride, 0, cols) / n_patches

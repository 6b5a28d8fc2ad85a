"""2-D convolution: eq (1) forward, eqs (2)/(3) feedback as a transposed convolution, eq (4) update.

Images are ``(N, C, H, W)``; a kernel ``W`` is ``(C_out, C_in, kh, kw)``. A convolution is
the dense layer of eq (1) applied to every ``kh × kw`` patch, so everything reduces to
matrix products on *columns*: ``im2col`` lays each patch out as a column, and ``col2im``
adds columns back into an image. Read on that route, the reference route, the three
operations are

* eq (1): ``y = W ⋆ x`` is ``W`` times the columns of ``x``;
* eqs (2)/(3): ``convᵀ(δ, F)`` is ``Fᵀ`` times ``δ``, one column per patch, added back by col2im;
* eq (4): the kernel's gradient is ``δ`` times the columns of ``x``, transposed.

The feedback weights ``B`` of a convolution are a kernel of ``W``'s shape, used in the
transposed convolution that carries ``δ`` back (eq 3 in convolutional form):
``δ_l = φ'(y_l) ⊙ convᵀ(δ_{l+1}, B)``; backprop uses ``B = W`` (eq 2). So the matrix
angle of a conv layer compares ``vec(B)`` with ``vec(W)``.

Each operation asks :func:`~minibp.layers.conv_routes.pick_route` first whether a fast route
gives the same values, up to rounding, for less work on these shapes (the padded grid with
stride 1, a convolution with the flipped kernel for the transposed one), and takes it if so.
The routes, im2col and col2im live in :mod:`minibp.layers.conv_routes`; a ``route`` argument
names one instead.

Images in channel-major memory. A product ``W @ cols`` gives its output as ``(C_out, N·Ho·Wo)``:
channel-major memory. :func:`conv2d` returns it as an ``(N, C_out, Ho, Wo)`` *view*, with no
transposing copy, so the arrays a network passes along keep the usual shape while their memory
is ``(C, N, H, W)``. NumPy's element-wise operations give results in their operands' layout,
so batch norm, ReLU and residual sums keep it too, and so do the errors of the backward pass.
Where the products need an image as one row per channel (the next convolution's columns, the
error ``δ`` in eqs (3)–(4)), that is then a plain copy or no copy at all. Every function here
accepts any memory layout: the layout changes the speed, and the order in which a reduction
(batch norm's means) adds its terms, so float32 results round differently, nothing else.
"""

from __future__ import annotations

import numpy as np

from .base import Array, WeightLayer
from .conv_routes import (
    channels_first,
    col2im,
    conv2d_on_grid,
    geometry,
    im2col,
    out_size,
    pick_route,
    weight_grad_on_grid,
)

__all__ = ["Conv2D", "conv2d", "conv2d_transpose", "conv2d_weight_grad", "out_size"]


def conv2d(
    x: Array, W: Array, stride: int = 1, padding: int = 0, cols: Array | None = None, route: str | None = None
) -> Array:
    """Eq (1) on every patch: ``y = W ⋆ x`` as one matrix product on the columns of ``x``
    (``cols``, when the caller has already built them with :func:`im2col`; then no other route
    is taken). ``route``: ``"im2col"`` or ``"grid"`` (stride 1), else :func:`pick_route` picks.
    """
    if cols is None and pick_route("conv2d", x.shape, W.shape, stride, padding, route) == "grid":
        return conv2d_on_grid(x, W, padding)
    co, _, kh, kw = W.shape
    n, _, h, w = x.shape
    ho, wo = out_size(h, kh, stride, padding), out_size(w, kw, stride, padding)
    if cols is None:
        cols = im2col(x, kh, kw, stride, padding)
    y = (W.reshape(co, -1) @ cols).reshape(co, n, ho, wo)  # eq (1)
    # (N, C_out, Ho, Wo) as a view: the memory stays channel-major, the product's own layout
    # (see the module's docstring)
    return y.transpose(1, 0, 2, 3)


def conv2d_transpose(
    delta: Array, F: Array, x_shape: tuple[int, ...], stride: int = 1, padding: int = 0, route: str | None = None
) -> Array:
    """The transposed convolution ``convᵀ(δ, F)``: each output error spread back over its patch
    through the kernel ``F`` (``W`` for backprop, eq 2; ``B`` otherwise, eq 3).
    ``route``: ``"col2im"`` or ``"flipped"`` (stride 1, square kernel), else :func:`pick_route` picks.
    """
    co, ci, kh, kw = F.shape
    if pick_route("conv2d_transpose", x_shape, F.shape, stride, padding, route) == "flipped":
        # with stride 1, convᵀ is a convolution of δ, padded by k − 1 − padding, with F flipped in
        # both spatial axes and its two channel axes swapped
        flipped = F[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C_in, C_out, kh, kw)
        return conv2d(delta, flipped, 1, kh - 1 - padding)
    cols = F.reshape(co, -1).T @ channels_first(delta)  # eq (2)/(3): Fᵀ δ, (C_in·kh·kw, N·Ho·Wo)
    return col2im(cols, x_shape, kh, kw, stride, padding)


def conv2d_weight_grad(
    x: Array,
    delta: Array,
    k_shape: tuple[int, ...],
    stride: int = 1,
    padding: int = 0,
    cols: Array | None = None,
    route: str | None = None,
) -> Array:
    """Eq (4) for a kernel: ``Σ_patches δ_{l+1} y_lᵀ``, i.e. ``δ`` (rows per channel) times the columns of ``x``
    (``cols``, when the caller kept them from the forward pass; then no other route is taken).
    ``route``: ``"im2col"`` or ``"grid"`` (stride 1), else :func:`pick_route` picks.
    """
    if cols is None and pick_route("conv2d_weight_grad", x.shape, k_shape, stride, padding, route) == "grid":
        return weight_grad_on_grid(x, delta, k_shape, padding)
    if cols is None:
        cols = im2col(x, k_shape[2], k_shape[3], stride, padding)
    return (channels_first(delta) @ cols.T).reshape(k_shape)  # eq (4)


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
        self.c_in, self.c_out, self.k, self.stride, self.padding = geometry(
            "Conv2D", c_in, c_out, kernel, stride, padding
        )
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

    def mirror_forward(self, noise: Array, bias: bool, input_mean: Array | None = None) -> Array:
        # mirror mode (Fig 1b): noise images through the kernel, no padding, so every
        # output position sees a full patch of independent noise
        cols = im2col(noise, self.k, self.k, self.stride, 0)
        self._mirror_cols = (noise, cols)  # eq (7) needs the same columns next
        z = conv2d(noise, self.W, self.stride, 0, cols)
        if bias and self.b is not None:
            z += self.b[:, None, None]
        if bias and input_mean is not None:
            # eq (11)'s bias W ⋆ m: an input of mean m per channel, over a whole patch (no padding)
            z += (self.W.sum(axis=(2, 3)) @ input_mean)[:, None, None]
        return z

    def mirror_correlation(self, pre: Array, post: Array) -> Array:
        # eq (7) for a kernel: the weight-gradient product with the output y_{l+1} in the
        # place of δ, averaged over every patch of every noise image
        kept, self._mirror_cols = self._mirror_cols, None
        cols = kept[1] if kept is not None and kept[0] is pre else None
        n_patches = post.shape[0] * post.shape[2] * post.shape[3]
        return conv2d_weight_grad(pre, post, self.W.shape, self.stride, 0, cols) / n_patches

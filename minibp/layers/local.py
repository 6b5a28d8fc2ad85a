"""Locally connected layers: a convolution without weight sharing (eq 1 forward, eqs 2/3 feedback,
eq 4 update, eq 17 for KP, eq 7 for the weight mirror).

A convolution applies one kernel at every output position. A locally connected layer gives each
output position ``(r, s)`` a kernel of its own, ``W[r, s]`` of shape ``(C_out, C_in, k, k)``, so
``W`` has shape ``(Ho, Wo, C_out, C_in, k, k)``: ``Ho·Wo`` independent dense layers, each seeing
only its own ``k × k`` patch of the input. Section 6 of the paper names this the brain-like
replacement of convolution: a neuron's synapses are its own, nothing in cortex copies them to
the neighbouring neurons.

Everything reduces to *columns* as for a convolution, with one matrix per position instead of
one for all: :func:`local_cols` lays out the patches as ``(P, N, C_in·k·k)`` (``P = Ho·Wo``
positions; ``cols[p]`` holds position ``p``'s patch of every example), and the three operations
are batched products over the positions:

* eq (1): ``z[p] = cols[p] W[p]ᵀ (+ b[p])``;
* eqs (2)/(3): ``cols[p] = δ[p] F[p]``, added back into the image by :func:`local_col2im`; ``F = W`` for
  backprop (eq 2), ``F = B`` otherwise (eq 3): the feedback weights ``B`` have ``W``'s untied
  shape, one feedback kernel per position;
* eq (4): ``∂W[p] = δ[p]ᵀ cols[p]``, the sum over the batch only (a convolution also sums over
  the positions, because they share the kernel).

Mirror mode (eqs 6–7) fires noise at the whole padded input grid with no padding, so that every
position's patch is noise, and each position's ``B[p]`` averages ``y_l y_{l+1}ᵀ`` over the batch
of its own patches: ``N`` samples per pass, where a convolution's kernel averages over ``N`` times
its positions. The fixed point is a dense layer's, position by position:
``B[p] → (η_B / λ_B) σ² φ'_s W[p]`` (eqs 11–12).

The bias is untied too: ``b`` has shape ``(C_out, Ho, Wo)``, one per unit.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module, get_backend
from .base import Array, WeightLayer
from .conv_routes import channel_major_pad, geometry, out_size

__all__ = ["LocalConv2D", "local_col2im", "local_cols", "local_forward", "local_transpose", "local_weight_grad"]


def local_cols(x: Array, k: int, stride: int, padding: int) -> Array:
    """Every position's patches: ``(P, N, C·k·k)``, row ``[p, n]`` the patch of example ``n`` that
    position ``p = r·Wo + s`` sees, ``x_pad[n, :, r·stride : r·stride + k, s·stride : s·stride + k]``.

    A strided view of the padded image copied once. (im2col's ``(C·k·k, N·P)`` layout would leave
    each position's matrix strided across memory, which the batched products below then copy.)
    """
    xp = get_array_module(x)
    x = channel_major_pad(x, padding)
    n, c, h, w = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    sn, sc, sh, sw = x.strides
    view = xp.lib.stride_tricks.as_strided(
        x, shape=(ho, wo, n, c, k, k), strides=(sh * stride, sw * stride, sn, sc, sh, sw)
    )
    return xp.ascontiguousarray(view).reshape(ho * wo, n, c * k * k)


def local_col2im(cols: Array, x_shape: tuple[int, ...], k: int, stride: int, padding: int) -> Array:
    """The adjoint of :func:`local_cols`: every patch added back where it came from, one strided add
    per kernel tap. Returns ``(N, C, H, W)`` in channel-major memory."""
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    hp, wp = h + 2 * padding, w + 2 * padding
    ho, wo = (hp - k) // stride + 1, (wp - k) // stride + 1
    cols = cols.reshape(ho, wo, n, c, k, k).transpose(3, 2, 0, 1, 4, 5)  # (C, N, Ho, Wo, k, k)
    img = xp.zeros((c, n, hp, wp), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            img[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += cols[..., i, j]
    return xp.ascontiguousarray(img[:, :, padding : padding + h, padding : padding + w]).transpose(1, 0, 2, 3)


def _position_rows(delta: Array) -> Array:
    """An ``(N, C, Ho, Wo)`` image as ``(P, N, C)``: position ``p``'s values for every example."""
    n, c, ho, wo = delta.shape
    return get_array_module(delta).ascontiguousarray(delta.reshape(n, c, ho * wo).transpose(2, 0, 1))


def local_forward(x: Array, W: Array, stride: int = 1, padding: int = 0, cols: Array | None = None) -> Array:
    """Eq (1) at every position with its own kernel: ``z[n, :, r, s] = W[r, s] ⋅ patch(x[n], r, s)``.

    ``W`` is ``(Ho, Wo, C_out, C_in, k, k)``; ``cols`` are :func:`local_cols` of ``x`` when the caller
    has them. Returns ``(N, C_out, Ho, Wo)``.
    """
    xp = get_array_module(x)
    ho, wo, co, ci, kh, _ = W.shape
    n = x.shape[0]
    if cols is None:
        cols = local_cols(x, kh, stride, padding)
    if cols.shape[0] != ho * wo:
        raise ValueError(f"the input {tuple(x.shape)} gives {cols.shape[0]} positions, the kernels {ho}×{wo}")
    Wt = W.reshape(ho * wo, co, ci * kh * kh).transpose(0, 2, 1)
    z = xp.matmul(cols, Wt)  # eq (1): patch[p, n] · W[p]ᵀ, (P, N, C_out)
    return z.transpose(1, 2, 0).reshape(n, co, ho, wo)


def local_transpose(delta: Array, F: Array, x_shape: tuple[int, ...], stride: int = 1, padding: int = 0) -> Array:
    """The feedback path ``F δ``: each position's error carried back through its own kernel ``F[r, s]``
    (``W`` for backprop, eq 2; ``B`` otherwise, eq 3) and added into the input image over its patch."""
    xp = get_array_module(delta)
    ho, wo, co, ci, kh, _ = F.shape
    cols = xp.matmul(_position_rows(delta), F.reshape(ho * wo, co, ci * kh * kh))  # eq (2)/(3): F[p]ᵀ δ[p]
    return local_col2im(cols, x_shape, kh, stride, padding)


def local_weight_grad(
    x: Array, delta: Array, k_shape: tuple[int, ...], stride: int = 1, padding: int = 0, cols: Array | None = None
) -> Array:
    """Eq (4) at every position: ``∂W[r, s] = Σ_batch δ[:, :, r, s] patch(x, r, s)ᵀ``, in ``W``'s shape."""
    xp = get_array_module(x)
    if cols is None:
        cols = local_cols(x, k_shape[4], stride, padding)
    grad = xp.matmul(_position_rows(delta).transpose(0, 2, 1), cols)  # eq (4): (P, C_out, C_in·k·k)
    return grad.reshape(k_shape)


class LocalConv2D(WeightLayer):
    """A locally connected layer: a convolution whose ``Ho·Wo`` output positions each have their own
    kernel, ``W`` of shape ``(Ho, Wo, C_out, C_in, k, k)``, and their own bias ``(C_out, Ho, Wo)``.

    ``in_size`` is the input's ``(height, width)``: the positions, and so the weights, depend on it.
    Weights start as ``N(0, gain² / (C_in·k²))`` (He et al. 2015, the convolution's fan-in), drawn on
    the host from ``rng``. ``keep_columns`` keeps the forward pass's columns for eq (4), as
    :class:`~minibp.layers.conv.Conv2D` does.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        in_size: tuple[int, int],
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
        self.c_in, self.c_out, self.k, self.stride, self.padding = geometry(
            "LocalConv2D", c_in, c_out, kernel, stride, padding
        )
        if len(in_size) != 2 or min(in_size) < 1:
            raise ValueError(f"LocalConv2D needs the input's (height, width), got in_size={in_size}")
        self.in_size = (int(in_size[0]), int(in_size[1]))
        self.out_size = tuple(out_size(s, self.k, self.stride, self.padding) for s in self.in_size)
        if min(self.out_size) < 1:
            raise ValueError(f"LocalConv2D: input {self.in_size} with padding {padding} is smaller than the kernel")
        self.keep_columns = bool(keep_columns)
        self.cols: Array | None = None
        self._mirror_cols: tuple[Array, Array] | None = None
        ho, wo = self.out_size
        self.init_weights((ho, wo, self.c_out, self.c_in, self.k, self.k), gain, False, rng, dtype, name)
        if bias:  # untied: one bias per unit (channel and position)
            self.params["b"] = get_backend().zeros((self.c_out, ho, wo), dtype=self.dtype)

    def __repr__(self) -> str:
        return (
            f"LocalConv2D({self.c_in}, {self.c_out}, k={self.k}, in={self.in_size[0]}x{self.in_size[1]}, "
            f"stride={self.stride}, padding={self.padding})"
        )

    @property
    def fan_in(self) -> int:
        return self.c_in * self.k * self.k

    @property
    def positions(self) -> int:
        """``Ho·Wo``: how many kernels the layer has, one per output position."""
        return self.out_size[0] * self.out_size[1]

    @property
    def sign_scale(self) -> float:
        # each position's kernel is a convolution kernel: Xiao et al.'s √(2 / (k²·C_out))
        return float(np.sqrt(2.0 / (self.k * self.k * self.c_out)))

    @property
    def mirror_input_shape(self) -> tuple[int, ...]:
        # the whole padded input grid: with no padding in mirror mode every position's patch is noise
        return (self.c_in, self.in_size[0] + 2 * self.padding, self.in_size[1] + 2 * self.padding)

    def _check(self, x: Array) -> None:
        if x.ndim != 4 or x.shape[1] != self.c_in or tuple(x.shape[2:]) != self.in_size:
            raise ValueError(
                f"{self!r} expects input of shape (batch, {self.c_in}, {self.in_size[0]}, {self.in_size[1]}), "
                f"got {tuple(x.shape)}: a locally connected layer has weights for one input size only"
            )

    def forward(self, x: Array, train: bool = True) -> Array:
        """Eq (1), linear part, each position through its own kernel: ``z = W[r, s] ⋅ patch + b``."""
        self._check(x)
        self.x = x  # y_l, kept for eq (4) and eq (17)
        self.cols = local_cols(x, self.k, self.stride, self.padding)
        z = local_forward(x, self.W, self.stride, self.padding, self.cols)  # eq (1)
        if not (self.keep_columns and train):
            self.cols = None
        if self.b is not None:
            z += self.b
        return z

    def backward_input(self, delta: Array, F: Array) -> Array:
        """Feedback path: each position's ``F[r, s]ᵀ δ`` added over its patch, ``F = W`` (eq 2) or ``B`` (eq 3)."""
        return local_transpose(delta, F, self.x.shape, self.stride, self.padding)  # eq (2)/(3)

    def weight_grads(self, delta: Array) -> dict[str, Array]:
        """Eq (4) at every position: ``ΔW[r, s] = −η Σ_batch δ_{l+1}[r, s] patch(y_l, r, s)ᵀ``."""
        grads = {"W": local_weight_grad(self.x, delta, self.W.shape, self.stride, self.padding, self.cols)}  # eq (4)
        if self.b is not None:
            grads["b"] = delta.sum(axis=0)
        return grads

    def transpose_weight(self) -> Array:
        return self.W  # the feedback path reads each position's kernel as it is, as a convolution's

    def feedback_grad(self, grads: dict[str, Array]) -> Array:
        # eq (17) at every position: y_l δ_{l+1}ᵀ over the batch, which is exactly W's gradient
        return grads["W"]

    def mirror_forward(self, noise: Array, bias: bool, input_mean: Array | None = None) -> Array:
        # mirror mode (Fig 1b): noise over the whole padded grid, no padding, so every position's
        # patch is independent noise
        cols = local_cols(noise, self.k, self.stride, 0)
        self._mirror_cols = (noise, cols)  # eq (7) needs the same columns next
        z = local_forward(noise, self.W, self.stride, 0, cols)
        if bias and self.b is not None:
            z += self.b
        if bias and input_mean is not None:
            # eq (11)'s bias W m at each position: an input of mean m per channel over the whole patch
            z += (self.W.sum(axis=(4, 5)) @ input_mean).transpose(2, 0, 1)
        return z

    def mirror_correlation(self, pre: Array, post: Array) -> Array:
        # eq (7) at every position: the weight-gradient product with y_{l+1} in the place of δ,
        # averaged over the batch (each position's B sees its own patches only)
        kept, self._mirror_cols = self._mirror_cols, None
        cols = kept[1] if kept is not None and kept[0] is pre else None
        return local_weight_grad(pre, post, self.W.shape, self.stride, 0, cols) / post.shape[0]

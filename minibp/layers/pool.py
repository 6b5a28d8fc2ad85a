"""Pooling and flattening, with their exact derivatives under every rule.

Max and average pooling view the (padded) image as windows by stride tricks; their
backward passes loop over the ``k × k`` window taps, never over pixels.
"""

from __future__ import annotations

from ..backend import get_array_module
from .base import Array, Layer
from .conv_routes import channel_major_full, channel_major_pad


def _windows(x: Array, k: int, stride: int, padding: int, fill: float) -> Array:
    """``(N, C, Ho, Wo, k, k)`` view of the windows of ``x`` padded with ``fill``."""
    xp = get_array_module(x)
    x = channel_major_pad(x, padding, fill)
    n, c, h, w = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    sn, sc, sh, sw = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, shape=(n, c, ho, wo, k, k), strides=(sn, sc, sh * stride, sw * stride, sh, sw)
    )


class _Pool2D(Layer):
    def __init__(self, kernel: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__()
        self.k = int(kernel)
        self.stride = int(stride) if stride is not None else self.k
        self.padding = int(padding)
        if self.k < 1 or self.stride < 1 or not 0 <= self.padding <= self.k // 2:
            raise ValueError(f"pooling needs kernel, stride >= 1 and 0 <= padding <= kernel/2, got {self!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.k}, stride={self.stride}, padding={self.padding})"

    def _check(self, x: Array) -> None:
        if x.ndim != 4 or min(x.shape[2:]) + 2 * self.padding < self.k:
            raise ValueError(f"{self!r} expects images (batch, C, H, W) at least as large as the window, got {x.shape}")

    def _scatter(self, dy: Array, weights_of_tap) -> Array:  # noqa: ANN001
        """``dx`` from ``dy``: one strided add per window tap ``(i, j)``, weighted by ``weights_of_tap(i, j)``."""
        xp = get_array_module(dy)
        n, c, h, w = self.x_shape
        p, s, k = self.padding, self.stride, self.k
        ho, wo = dy.shape[2:]
        dx = channel_major_full(xp, (n, c, h + 2 * p, w + 2 * p), 0, dy.dtype)
        for i in range(k):
            for j in range(k):
                dx[:, :, i : i + s * ho : s, j : j + s * wo : s] += dy * weights_of_tap(i, j)
        return dx[:, :, p : p + h, p : p + w]


class MaxPool2D(_Pool2D):
    """The largest value in each ``k × k`` window; the gradient goes to that value's position
    (the first one, in row-major window order, when several are equal)."""

    def forward(self, x: Array, train: bool = True) -> Array:
        self._check(x)
        self.x_shape = x.shape
        xp = get_array_module(x)
        k = self.k
        win = _windows(x, k, self.stride, self.padding, fill=-float("inf"))
        # one pass per window tap, as element-wise maxima: far faster than an argmax over a
        # (…, k·k) strided view, whose innermost axis is tiny
        best = win[..., 0, 0].copy(order="K")  # "K": in the input's memory layout
        self.argmax = xp.zeros_like(best, dtype=xp.uint8 if k * k < 256 else xp.int32)
        for tap in range(1, k * k):
            v = win[..., tap // k, tap % k]
            better = v > best  # strictly: a tie keeps the earlier tap
            # argmax ← tap where better, without a temporary per tap; modular arithmetic in
            # uint8 makes argmax + (tap − argmax) exactly tap
            self.argmax += better * (self.argmax.dtype.type(tap) - self.argmax)
            xp.maximum(best, v, out=best)
        return best

    def backward(self, dy: Array) -> Array:
        return self._scatter(dy, lambda i, j: self.argmax == i * self.k + j)


class AvgPool2D(_Pool2D):
    """The mean of each ``k × k`` window (padding counts as zeros)."""

    def forward(self, x: Array, train: bool = True) -> Array:
        self._check(x)
        self.x_shape = x.shape
        return _windows(x, self.k, self.stride, self.padding, fill=0.0).mean(axis=(-2, -1))

    def backward(self, dy: Array) -> Array:
        scale = dy.dtype.type(1.0 / (self.k * self.k))
        return self._scatter(dy, lambda i, j: scale)


class GlobalAvgPool(Layer):
    """``(N, C, H, W)`` → ``(N, C)``: the mean over each channel's image."""

    def forward(self, x: Array, train: bool = True) -> Array:
        if x.ndim != 4:
            raise ValueError(f"GlobalAvgPool expects images (batch, C, H, W), got {x.shape}")
        self.x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dy: Array) -> Array:
        n, c, h, w = self.x_shape
        xp = get_array_module(dy)
        # the mean's derivative spread over each image, in channel-major memory like the rest
        return xp.broadcast_to((dy / (h * w)).T[:, :, None, None], (c, n, h, w)).copy().transpose(1, 0, 2, 3)


class Flatten(Layer):
    """``(N, …)`` → ``(N, features)``."""

    def forward(self, x: Array, train: bool = True) -> Array:
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: Array) -> Array:
        return dy.reshape(self.x_shape)

"""Residual blocks (He et al. 2016): ``out = post(main(x) + shortcut(x))``.

The sum has the exact derivative under every rule: the error ``g`` arriving at the sum
goes unchanged down both paths, and the errors that come back are added. Weight layers
inside either path get their feedback matrix from the rule, as everywhere.

Batch-norm placement is a setting:

* ``"before"``: the standard block, ``conv → BN → ReLU → conv → BN``, sum, ``ReLU``;
* ``"after"``: the paper's variant (its Appendix D.3), BatchNorm after each ReLU:
  ``conv → ReLU → BN → conv``, sum, ``ReLU → BN``.

Projection shortcuts (a strided 1×1 convolution and a BN) are used wherever the shape changes.
"""

from __future__ import annotations

import numpy as np

from .activations import ReLU
from .base import Array, Layer
from .container import Container, FeedbackPass, Sequential
from .conv import Conv2D
from .norm import BatchNorm

BN_PLACEMENTS = ("before", "after")


class Residual(Container):
    """``post(main(x) + shortcut(x))``; the shortcut is the identity when ``shortcut`` is ``None``."""

    def __init__(self, main: Sequential, shortcut: Sequential | None = None, post: Sequential | None = None) -> None:
        super().__init__()
        self.main = main
        self.shortcut = shortcut
        self.post = post if post is not None else Sequential([])

    def children(self) -> list[Layer]:
        return [self.main] + ([self.shortcut] if self.shortcut is not None else []) + [self.post]

    def __repr__(self) -> str:
        short = "identity" if self.shortcut is None else repr(self.shortcut)
        return f"Residual(main={self.main!r}, shortcut={short}, post={self.post!r})"

    def forward(self, x: Array, train: bool = True) -> Array:
        s = x if self.shortcut is None else self.shortcut.forward(x, train)
        m = self.main.forward(x, train)
        if m.shape != s.shape:
            raise ValueError(f"residual paths disagree: main gives {m.shape}, shortcut {s.shape}")
        return self.post.forward(m + s, train)

    def backward_path(self, g: Array, fb: FeedbackPass, need_input: bool = True) -> Array:
        g = self.post.backward_path(g, fb)
        g_main = self.main.backward_path(g, fb)  # the sum passes g to both paths
        g_short = g if self.shortcut is None else self.shortcut.backward_path(g, fb)
        return g_main + g_short


def _conv(c_in: int, c_out: int, k: int, stride: int, rng: np.random.Generator, dtype: str) -> Conv2D:
    return Conv2D(c_in, c_out, k, stride=stride, padding=k // 2, bias=False, gain=ReLU.gain, rng=rng, dtype=dtype)


def _norm_relu(c: int, bn: str, dtype: str) -> list[Layer]:
    return [BatchNorm(c, dtype=dtype), ReLU()] if bn == "before" else [ReLU(), BatchNorm(c, dtype=dtype)]


def _shortcut(c_in: int, c_out: int, stride: int, rng: np.random.Generator, dtype: str) -> Sequential | None:
    if stride == 1 and c_in == c_out:
        return None
    return Sequential([_conv(c_in, c_out, 1, stride, rng, dtype), BatchNorm(c_out, dtype=dtype)])


def _post(c: int, bn: str, dtype: str) -> Sequential:
    return Sequential([ReLU()] if bn == "before" else [ReLU(), BatchNorm(c, dtype=dtype)])


def _check_bn(bn: str) -> None:
    if bn not in BN_PLACEMENTS:
        raise ValueError(f"batch-norm placement must be 'before' or 'after' the ReLU, got {bn!r}")


def basic_block(
    c_in: int, c_out: int, stride: int = 1, *, bn: str = "after", rng: np.random.Generator, dtype: str = "float32"
) -> Residual:
    """Two 3×3 convolutions (ResNet-18/20/34)."""
    _check_bn(bn)
    main = [
        _conv(c_in, c_out, 3, stride, rng, dtype),
        *_norm_relu(c_out, bn, dtype),
        _conv(c_out, c_out, 3, 1, rng, dtype),
    ]
    if bn == "before":
        main.append(BatchNorm(c_out, dtype=dtype))
    return Residual(Sequential(main), _shortcut(c_in, c_out, stride, rng, dtype), _post(c_out, bn, dtype))


def bottleneck_block(
    c_in: int,
    width: int,
    stride: int = 1,
    *,
    expansion: int = 4,
    bn: str = "after",
    rng: np.random.Generator,
    dtype: str = "float32",
) -> Residual:
    """1×1 down to ``width``, 3×3 (strided), 1×1 up to ``expansion · width`` (ResNet-50)."""
    _check_bn(bn)
    c_out = width * expansion
    main = [
        _conv(c_in, width, 1, 1, rng, dtype),
        *_norm_relu(width, bn, dtype),
        _conv(width, width, 3, stride, rng, dtype),
        *_norm_relu(width, bn, dtype),
        _conv(width, c_out, 1, 1, rng, dtype),
    ]
    if bn == "before":
        main.append(BatchNorm(c_out, dtype=dtype))
    return Residual(Sequential(main), _shortcut(c_in, c_out, stride, rng, dtype), _post(c_out, bn, dtype))

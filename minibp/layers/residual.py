"""Residual blocks (He et al. 2016): ``out = post(main(x) + shortcut(x))``.

The sum has the exact derivative under every rule: the error ``g`` arriving at the sum
goes unchanged down both paths, and the errors that come back are added. Weight layers
inside either path get their feedback matrix from the rule, as everywhere.

Batch-norm placement is a setting:

* ``"before"``: the standard block, ``conv → BN → ReLU → conv → BN``, sum, ``ReLU``;
* ``"after"``: the paper's variant (its Appendix D.3), BatchNorm after each ReLU:
  ``conv → ReLU → BN → conv``, sum, ``ReLU → BN``.

Where the shape changes, the shortcut is a setting too (``SHORTCUTS``):

* ``"projection"``: a strided 1×1 convolution and a BN (He et al. 2016's option B), a weight layer
  with feedback weights of its own under every rule;
* ``"zeropad"``: the parameter-free shortcut of He et al.'s CIFAR networks (option A): the input
  subsampled by the stride, its extra channels zeros (:class:`ZeroPadShortcut`).

:func:`minibp.models.basic_block` and :func:`minibp.models.bottleneck_block` build the blocks.
"""

from __future__ import annotations

from ..backend import get_array_module
from .base import Array, Layer
from .container import Container, FeedbackPass, Sequential

BN_PLACEMENTS = ("before", "after")
SHORTCUTS = ("projection", "zeropad")


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

    def feeders(self, before: Layer | None = None) -> tuple[dict[int, Layer | None], Layer | None]:
        found, _ = self.main.feeders(before)  # both paths take the block's input
        if self.shortcut is not None:
            found.update(self.shortcut.feeders(before)[0])
        inner, last = self.post.feeders(None)  # post takes the sum
        return {**found, **inner}, last

    def backward_path(self, g: Array, fb: FeedbackPass, need_input: bool = True) -> Array:
        g = self.post.backward_path(g, fb)
        g_main = self.main.backward_path(g, fb)  # the sum passes g to both paths
        g_short = g if self.shortcut is None else self.shortcut.backward_path(g, fb)
        return g_main + g_short


class ZeroPadShortcut(Layer):
    """He et al.'s parameter-free shortcut (option A): ``x`` subsampled by ``stride`` in height and
    width, then ``c_out − c_in`` channels of zeros after its own. Its backward pass is the exact
    adjoint: the error of the first ``c_in`` channels, put back at the subsampled positions."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if c_out < c_in or stride < 1:
            raise ValueError(f"a zero-padding shortcut widens and subsamples: got {c_in} → {c_out}, stride {stride}")
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    def __repr__(self) -> str:
        return f"ZeroPadShortcut({self.c_in}, {self.c_out}, stride={self.stride})"

    def forward(self, x: Array, train: bool = True) -> Array:
        self.x_shape = x.shape
        sub = x[:, :, :: self.stride, :: self.stride]
        out = get_array_module(x).zeros((x.shape[0], self.c_out, *sub.shape[2:]), dtype=x.dtype)
        out[:, : self.c_in] = sub
        return out

    def backward(self, dy: Array) -> Array:
        dx = get_array_module(dy).zeros(self.x_shape, dtype=dy.dtype)
        dx[:, :, :: self.stride, :: self.stride] = dy[:, : self.c_in]
        return dx

"""Batch normalization (Ioffe & Szegedy 2015), with its exact derivative under every rule.

The paper's networks normalise with BatchNorm, and the paper's question — weight
transport — concerns only the weight matrices: batch norm carries its true local
derivative whichever rule trains the network.
"""

from __future__ import annotations

from ..backend import get_array_module, get_backend
from .base import Array, Layer


class BatchNorm(Layer):
    """``y = γ (x − μ) / √(σ² + ε) + β`` per channel.

    In training mode ``μ, σ²`` are the batch's (over the batch, and over height and width
    for images) and the running statistics move toward them by ``momentum``; in
    evaluation mode the running statistics are used. Works on ``(N, C)`` and ``(N, C, H, W)``.

    ``group`` (None by default) is a :class:`~minibp.parallel.Group` of ranks that each hold a share
    of the batch: with one, the statistics and the derivative's means are those of the whole batch
    across the ranks (synchronized batch norm), so the layer computes what one process would on
    the whole batch.
    """

    def __init__(self, channels: int, *, eps: float = 1e-5, momentum: float = 0.1, dtype: str = "float32") -> None:
        super().__init__()
        if int(channels) < 1:
            raise ValueError(f"BatchNorm needs a positive number of channels, got {channels}")
        xp = get_backend()
        self.channels, self.eps, self.momentum = int(channels), float(eps), float(momentum)
        self.params["gamma"] = xp.ones(self.channels, dtype=dtype)
        self.params["beta"] = xp.zeros(self.channels, dtype=dtype)
        self.buffers["running_mean"] = xp.zeros(self.channels, dtype=dtype)
        self.buffers["running_var"] = xp.ones(self.channels, dtype=dtype)
        self.group = None
        self.count = 0  # values per channel in the last training batch, over every rank

    def __repr__(self) -> str:
        return f"BatchNorm({self.channels})"

    def _shape(self, x: Array) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if x.ndim not in (2, 4) or x.shape[1] != self.channels:
            raise ValueError(
                f"{self!r} expects (batch, {self.channels}) or (batch, {self.channels}, H, W), got {x.shape}"
            )
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        return axes, (1, self.channels) + (1,) * (x.ndim - 2)

    def forward(self, x: Array, train: bool = True) -> Array:
        axes, shape = self._shape(x)
        self.train = train
        xp = get_array_module(x)
        if train:
            m = x.size // self.channels
            if self.group is None:
                mean = x.mean(axis=axes)
                xc = x - mean.reshape(shape)
                var = (xc * xc).mean(axis=axes)
            else:  # the moments of the batch over every rank
                m = int(self.group.sum_host([m])[0])
                mean = self.group.sum_arrays([x.sum(axis=axes)])[0] / m
                xc = x - mean.reshape(shape)
                var = self.group.sum_arrays([(xc * xc).sum(axis=axes)])[0] / m
            self.count = m
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm += self.momentum * (mean - rm)
            rv += self.momentum * (var * (m / max(m - 1, 1)) - rv)  # the unbiased variance, as PyTorch keeps
        else:
            xc = x - self.buffers["running_mean"].reshape(shape)
            var = self.buffers["running_var"]
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        self.inv_std = inv_std.reshape(shape)
        self.xhat = xc * self.inv_std
        # y = γ x̂ + β, with γ folded into the per-channel scale: one pass less over the batch
        return xc * (self.params["gamma"] * inv_std).reshape(shape) + self.params["beta"].reshape(shape)

    def backward(self, dy: Array) -> Array:
        axes, shape = self._shape(dy)
        dgamma, dbeta = (dy * self.xhat).sum(axis=axes), dy.sum(axis=axes)
        self.grads = {"gamma": dgamma, "beta": dbeta}
        scale = self.params["gamma"].reshape(shape) * self.inv_std  # ∂y/∂x with the statistics held fixed
        if not self.train:  # in evaluation mode they are constants
            return dy * scale
        # in training mode they depend on every x of the batch; with dx̂ = γ dy:
        # dx = (1/σ) (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)) = (γ/σ) (dy − mean(dy) − x̂ · mean(dy · x̂))
        m = dy.size // self.channels
        if self.group is None:
            mean_dy, mean_dy_xhat = dbeta / m, dgamma / m
        else:
            # over the ranks, each rank's dy is the gradient of its own share's mean loss, so its sums
            # are weighted by its share m / count before they add up (see minibp.parallel)
            t1, t2 = self.group.sum_arrays([dbeta * m, dgamma * m])
            mean_dy, mean_dy_xhat = t1 / (m * self.count), t2 / (m * self.count)
        return (dy - mean_dy.reshape(shape) - self.xhat * mean_dy_xhat.reshape(shape)) * scale

"""A minibp network rebuilt layer for layer in PyTorch, and its training step, for the benchmarks' ratios.

PyTorch is optional and not a dependency of minibp: :func:`import_torch` says why it is
missing. The twin starts from the minibp network's current weights; its optimizer is set up
as minibp's SGD (momentum, weight decay on the dense and convolution weights only).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from common import STEP_PHASES, Stamps

from minibp import Network
from minibp.layers import BatchNorm, Conv2D, Dense, Flatten, GlobalAvgPool, Layer, MaxPool2D, ReLU, Residual, Sequential


def import_torch(enabled: bool) -> tuple[Any, str]:
    """PyTorch, or None, and a line saying which (or why not)."""
    if not enabled:
        return None, "skipped (--no-torch)"
    try:
        import torch
    except ImportError:
        return None, "skipped (PyTorch is not importable)"
    return torch, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def torch_report(torch: Any) -> dict[str, Any]:
    """PyTorch's version and thread count, for a benchmark's report."""
    return {
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
    }


def torch_twin(torch: Any, net: Network) -> Any:
    """``net`` rebuilt layer for layer as a ``torch.nn`` module, with ``net``'s current weights.

    ReLUs are in place, as in torchvision's ResNets; a residual block is ``post(main(x) + shortcut(x))``.
    """
    nn = torch.nn

    class TorchResidual(nn.Module):
        def __init__(self, main: Any, shortcut: Any, post: Any) -> None:
            super().__init__()
            self.main, self.shortcut, self.post = main, shortcut, post

        def forward(self, x: Any) -> Any:
            s = x if self.shortcut is None else self.shortcut(x)
            return self.post(self.main(x) + s)

    def copy(param: Any, value: np.ndarray) -> None:
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.array(value)))

    # layers without trained weights: their PyTorch module from their settings alone
    stateless: dict[type, Any] = {
        BatchNorm: lambda layer: nn.BatchNorm2d(layer.channels, eps=layer.eps, momentum=layer.momentum),
        ReLU: lambda layer: nn.ReLU(inplace=True),
        GlobalAvgPool: lambda layer: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        MaxPool2D: lambda layer: nn.MaxPool2d(layer.k, layer.stride, layer.padding),
        Flatten: lambda layer: nn.Flatten(),
    }

    def convert(layer: Layer) -> Any:
        if isinstance(layer, Residual):
            shortcut = None if layer.shortcut is None else convert(layer.shortcut)
            return TorchResidual(convert(layer.main), shortcut, convert(layer.post))
        if isinstance(layer, Sequential):
            return nn.Sequential(*(convert(child) for child in layer.layers))
        if isinstance(layer, Conv2D | Dense):
            bias = layer.b is not None
            if isinstance(layer, Conv2D):
                mod = nn.Conv2d(layer.c_in, layer.c_out, layer.k, layer.stride, layer.padding, bias=bias)
            else:
                mod = nn.Linear(layer.n_in, layer.n_out, bias=bias)
            copy(mod.weight, layer.W)
            if bias:
                copy(mod.bias, layer.b)
            return mod
        for kind, make in stateless.items():
            if isinstance(layer, kind):
                return make(layer)
        raise TypeError(f"no PyTorch twin for {layer!r}")

    return convert(net).float()


def torch_sgd(torch: Any, model: Any, lr: float, momentum: float, weight_decay: float) -> Any:
    """PyTorch's SGD set up as minibp's: momentum, weight decay on conv and dense weights only."""
    nn = torch.nn
    decayed = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    ids = {id(p) for p in decayed}
    others = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


class TorchStep:
    """``net``'s BP training step in PyTorch eager (weights copied from ``net`` now), on ``device``.

    Returns the same :data:`~common.Stamps` as :class:`~common.MinibpStep` (``after_step`` takes
    no time); on a GPU they are launch times, so time whole blocks with a device sync there.
    """

    phases = STEP_PHASES

    def __init__(
        self,
        torch: Any,
        net: Network,
        x: np.ndarray,
        y: np.ndarray,
        *,
        lr: float,
        momentum: float,
        weight_decay: float,
        device: str = "cpu",
    ) -> None:
        self.model = torch_twin(torch, net).to(device)
        self.opt = torch_sgd(torch, self.model, lr, momentum, weight_decay)
        self.cross_entropy = torch.nn.functional.cross_entropy
        self.x, self.y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        self.last: Any = None

    def __call__(self) -> Stamps:
        clock = time.perf_counter
        t0 = clock()
        out = self.model(self.x)
        t1 = clock()
        loss = self.cross_entropy(out, self.y)
        t2 = clock()
        loss.backward()
        t3 = clock()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        t4 = clock()
        self.last = loss.detach()
        return [t0, t1, t2, t3, t4, t4]

    @property
    def loss(self) -> float:
        return float("nan") if self.last is None else float(self.last.item())

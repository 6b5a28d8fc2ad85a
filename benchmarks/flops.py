"""The floor a training step is measured against: its matrix products' FLOPs and the machine's matmul rate.

A step's FLOPs are those of its dense and convolution products only, a convolution counted as
its im2col product ``W (C_out × C_in·k²) @ cols (C_in·k² × N·Ho·Wo)``: forward (eq 1), the
weight gradients (eq 4) and the input gradients (eqs 2/3, none for the first layer). The
machine's "peak" is the float32 rate of one large square ``a @ b``; every distinct product of a
step, timed alone in minibp's operand layouts, gives the step's matmul floor: the fastest it
could be if it did nothing but its products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from common import best_seconds, table

from minibp import Network
from minibp.layers import Conv2D, Dense, WeightLayer
from minibp.layers.conv import out_size


@dataclass(frozen=True)
class Geometry:
    """The shape of one weight layer's products: a convolution as im2col ``W (C_out x C_in·k²) @ cols``."""

    kind: str  # "conv" or "dense"
    c_in: int
    c_out: int
    k: int = 1
    stride: int = 1
    h_out: int = 1
    w_out: int = 1

    @classmethod
    def of(cls, layer: WeightLayer) -> Geometry:
        """The geometry of ``layer`` after a forward pass (its cached input ``layer.x`` gives the image size)."""
        if isinstance(layer, Conv2D):
            h, w = layer.x.shape[2:]
            ho, wo = (out_size(s, layer.k, layer.stride, layer.padding) for s in (h, w))
            return cls("conv", layer.c_in, layer.c_out, layer.k, layer.stride, ho, wo)
        if isinstance(layer, Dense):
            return cls("dense", layer.n_in, layer.n_out)
        raise TypeError(f"no FLOP model for {layer!r}")

    @property
    def label(self) -> str:
        if self.kind == "dense":
            return f"dense {self.c_in}->{self.c_out}"
        return f"conv{self.k}x{self.k}/{self.stride} {self.c_in}->{self.c_out} @{self.h_out}x{self.w_out}"

    @property
    def patch(self) -> int:
        return self.c_in * self.k * self.k

    def positions(self, batch: int) -> int:
        return batch * self.h_out * self.w_out

    def macs(self, batch: int) -> int:
        return self.c_out * self.patch * self.positions(batch)

    def mirror_macs(self, mirror_batch: int) -> int:
        """Multiply-adds of one mirror-mode ``W`` product on noise (``Conv2D.mirror_positions``² outputs per image)."""
        per_image = Conv2D.mirror_positions**2 if self.kind == "conv" else 1
        return self.c_out * self.patch * mirror_batch * per_image


@dataclass(frozen=True)
class FlopModel:
    """Matmul FLOPs of one step: forward, weight gradients and input gradients (none for the first layer)."""

    layers: tuple[Geometry, ...]
    batch: int

    @classmethod
    def of(cls, net: Network, x: np.ndarray) -> FlopModel:
        net.forward(x, train=False)  # fills every layer's cached input
        return cls(tuple(Geometry.of(layer) for layer in net.weight_layers), x.shape[0])

    def _sum(self, first: int = 0) -> int:
        return sum(g.macs(self.batch) for g in self.layers[first:])

    @property
    def forward(self) -> int:
        return 2 * self._sum()

    @property
    def weight_grads(self) -> int:
        return 2 * self._sum()

    @property
    def input_grads(self) -> int:
        return 2 * self._sum(first=1)

    @property
    def step(self) -> int:
        return self.forward + self.weight_grads + self.input_grads

    def mirror(self, mirror_batch: int) -> int:
        """One mirror-mode pass: the noise through ``W`` and the correlation, for every layer."""
        return 4 * sum(g.mirror_macs(mirror_batch) for g in self.layers)

    def report(self, mirror_batch: int) -> dict[str, int]:
        return {
            "forward": self.forward,
            "weight_grads": self.weight_grads,
            "input_grads": self.input_grads,
            "step": self.step,
            "mirror": self.mirror(mirror_batch),
        }

    def describe(self, mirror_batch: int) -> str:
        g = 1e-9
        n_conv = sum(layer.kind == "conv" for layer in self.layers)
        mirror = f"M = {mirror_batch} noise samples"
        if n_conv:
            mirror += f" ({Conv2D.mirror_positions}x{Conv2D.mirror_positions} outputs per noise image)"
        return "\n".join(
            [
                f"FLOPs per step = dense/conv matmul FLOPs only (a convolution counts as its im2col matmul), "
                f"N = {self.batch}, {n_conv} convolutions + {len(self.layers) - n_conv} dense:",
                f"  forward       2*sum(C_out*C_in*k^2*N*Ho*Wo)         = {self.forward * g:.4f} GFLOP",
                f"  weight grads  the same                              = {self.weight_grads * g:.4f} GFLOP",
                f"  input grads   the same without the first layer      = {self.input_grads * g:.4f} GFLOP",
                f"  step total                                          = {self.step * g:.4f} GFLOP",
                f"  wm mirror pass, {mirror} = {self.mirror(mirror_batch) * g:.4f} GFLOP "
                "(the wm row counts it once per `every` steps)",
            ]
        )


@dataclass
class MatmulRate:
    label: str
    m: int
    k: int
    n: int
    seconds: float

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n

    @property
    def gflops(self) -> float:
        return self.flops / self.seconds * 1e-9


def time_matmul(label: str, a: np.ndarray, b: np.ndarray, *, repeats: int, number: int) -> MatmulRate:
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    np.matmul(a, b, out=out)  # warm up (threads, caches)
    seconds = best_seconds(lambda: np.matmul(a, b, out=out), repeats=repeats, number=number)
    return MatmulRate(label, a.shape[0], a.shape[1], b.shape[1], seconds)


def measure_peak(size: int, repeats: int) -> MatmulRate:
    """The float32 rate of one large square ``a @ b``: the reference "peak"."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    return time_matmul(f"square {size}", a, b, repeats=repeats, number=1)


StepMatmuls = list[tuple[Geometry, int, list[MatmulRate]]]


def measure_step_matmuls(flops: FlopModel, repeats: int) -> StepMatmuls:
    """Every distinct product of a step, in the operand layouts of minibp's layers (BP's feedback).

    Returns ``(geometry, how many layers have it, [forward, weight grads, input grads])``.
    """
    rng = np.random.default_rng(0)
    counts: dict[Geometry, int] = {}
    for geo in flops.layers:
        counts[geo] = counts.get(geo, 0) + 1
    out = []
    for geo, count in counts.items():
        number = max(3, int(2e8 // (2 * geo.macs(flops.batch))))  # about 0.2 GFLOP a block

        def rand(*shape: int) -> np.ndarray:
            return rng.standard_normal(shape, dtype=np.float32)

        if geo.kind == "conv":  # W (C_out, K) @ cols (K, P); δ (C_out, P) @ colsᵀ; Wᵀ @ δ
            p = geo.positions(flops.batch)
            w, cols, delta = rand(geo.c_out, geo.patch), rand(geo.patch, p), rand(geo.c_out, p)
            pairs = [(w, cols), (delta, cols.T), (w.T, delta)]
        else:  # x (N, n_in) @ Wᵀ; δᵀ @ x; δ @ W
            x, w, delta = rand(flops.batch, geo.c_in), rand(geo.c_out, geo.c_in), rand(flops.batch, geo.c_out)
            pairs = [(x, w.T), (delta.T, x), (delta, w)]
        rates = [
            time_matmul(f"{geo.label} {phase}", a, b, repeats=repeats, number=number)
            for phase, (a, b) in zip(("forward", "weight", "input"), pairs)
        ]
        out.append((geo, count, rates))
    return out


def print_matmul_rates(peak: MatmulRate, shapes: StepMatmuls, flops: FlopModel) -> float:
    """Print the matmul table; returns the step's matmul floor in seconds."""
    first = flops.layers[0]
    floor = 0.0
    rows = []
    for geo, count, (fwd, wgt, inp) in shapes:
        n_input = count - (geo == first)  # the network's first layer computes no input gradient
        seconds = count * (fwd.seconds + wgt.seconds) + n_input * inp.seconds
        floor += seconds
        done = (2 * count + n_input) * fwd.flops
        rows.append(
            [
                geo.label,
                str(count),
                f"{fwd.m}x{fwd.k}x{fwd.n}",
                f"{fwd.seconds * 1e3:.3f}",
                f"{wgt.seconds * 1e3:.3f}",
                f"{inp.seconds * 1e3:.3f}" if n_input else "-",
                f"{done / seconds * 1e-9:.1f}",
                f"{done / seconds * 1e-9 / peak.gflops:.1%}",
            ]
        )
    rate = flops.step / floor * 1e-9
    rows.append(["all step matmuls", "", "", "", "", "", f"{rate:.1f}", f"{rate / peak.gflops:.1%}"])
    print(f"float32 matmul rate (best of repeats; peak = {peak.label}: {peak.gflops:.1f} GFLOP/s)")
    print("per layer shape: forward, weight-gradient and input-gradient products (ms each), m x k x n of the forward")
    header = ["layer shape", "count", "forward mkn", "fwd ms", "weight ms", "input ms", "GFLOP/s", "% peak"]
    print(table(header, rows, "<>>>>>>>"))
    print(f"all step matmuls: {floor * 1e3:.1f} ms = the fastest a step could be if it did nothing but its matmuls")
    print()
    return floor


def matmul_report(peak: MatmulRate, shapes: StepMatmuls) -> list[dict[str, object]]:
    """The products timed, for a JSON report (the peak first)."""
    rows: list[dict[str, object]] = [
        {"label": peak.label, "count": 1, "m": peak.m, "k": peak.k, "n": peak.n, "ms": peak.seconds * 1e3}
    ]
    for _, count, rates in shapes:
        rows += [{"label": r.label, "count": count, "m": r.m, "k": r.k, "n": r.n, "ms": r.seconds * 1e3} for r in rates]
    return rows

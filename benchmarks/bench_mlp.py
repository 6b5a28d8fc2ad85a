"""Benchmark one training step of a ReLU MLP under each minibp learning rule.

A step is exactly what ``minibp.train`` does per batch: forward (eq 1), loss,
backward (eqs 2-4, KP's eq 17), ``SGD.step`` (eq 16) and ``rule.after_step``
(the weight mirror's mirror mode, eqs 6-7). The script reports milliseconds per
step and the achieved matmul GFLOP/s next to the machine's measured float32
matrix-multiply rate, the weight mirror's mirror-mode overhead and, where
PyTorch is importable, the same network's step in PyTorch on the CPU.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_mlp.py [--repeats 10] [--steps 20] [--json out.json]

Headline numbers are best-of-repeats: each case is timed in ``--repeats`` blocks
of ``--steps`` steps, the blocks of all cases interleaved round-robin so that
background load hits every case alike; "best" is the fastest block's mean step
time, "median" the median over blocks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minibp import RULES, SGD, Network, get_rule, mlp
from minibp.losses import SoftmaxCrossEntropy
from minibp.rules import WeightMirror

LR = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
STEP_PHASES = ("forward", "loss", "backward", "optimizer", "after_step")
PEAK_TARGET_RULES = ("bp", "fa", "ss", "kp")
TARGET_PEAK_FRACTION = 0.5  # bp, fa, ss, kp: a step at >= 50 % of the peak matmul rate
TARGET_MIRROR_OVERHEAD = 0.25  # wm: mirror mode adds <= 25 % to a training step
TARGET_TORCH_RATIO = 1.0  # every rule: minibp step time <= PyTorch's

Stamps = list[float]  # time.perf_counter() at the start of a step and after each of its phases


# --------------------------------------------------------------------------- FLOP model


@dataclass(frozen=True)
class FlopModel:
    """Matmul FLOPs of one step of an MLP with layer widths ``sizes`` on a batch of ``batch``."""

    sizes: tuple[int, ...]
    batch: int

    @property
    def layers(self) -> list[tuple[int, int]]:
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    def _sum(self, first: int = 0) -> int:
        return sum(n_in * n_out for n_in, n_out in self.layers[first:])

    @property
    def forward(self) -> int:
        return 2 * self.batch * self._sum()

    @property
    def weight_grads(self) -> int:
        return 2 * self.batch * self._sum()

    @property
    def input_grads(self) -> int:
        return 2 * self.batch * self._sum(first=1)  # the first layer computes no input gradient

    @property
    def step(self) -> int:
        return self.forward + self.weight_grads + self.input_grads

    def mirror(self, mirror_batch_size: int) -> int:
        """One mirror-mode pass: ``noise @ Wᵀ`` and ``noiseᵀ @ y_next`` for every layer."""
        return 4 * mirror_batch_size * self._sum()

    def describe(self, mirror_batch_size: int) -> str:
        g = 1e-9
        dims = ", ".join(f"{i}x{o}" for i, o in self.layers)
        return "\n".join(
            [
                f"FLOPs per step = matmul FLOPs only, N = {self.batch}, layers (in x out) = {dims}:",
                f"  forward       2*N*sum(in*out)                 = {self.forward * g:.4f} GFLOP",
                f"  weight grads  2*N*sum(in*out)                 = {self.weight_grads * g:.4f} GFLOP",
                f"  input grads   2*N*sum(in*out, layers 2..L)    = {self.input_grads * g:.4f} GFLOP"
                "  (layer 1 computes no input gradient)",
                f"  step total                                    = {self.step * g:.4f} GFLOP",
                f"  wm mirror pass 4*M*sum(in*out), M = {mirror_batch_size:<4} = "
                f"{self.mirror(mirror_batch_size) * g:.4f} GFLOP (the wm row counts it once per mirror_every steps)",
            ]
        )


# --------------------------------------------------------------------------- matmul rate


def _best_seconds(fn: Callable[[], object], *, repeats: int, number: int) -> float:
    """Fastest mean time of ``number`` calls, over ``repeats`` blocks."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


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


def _time_matmul(label: str, a: np.ndarray, b: np.ndarray, *, repeats: int, number: int) -> MatmulRate:
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    np.matmul(a, b, out=out)  # warm up (threads, caches)
    seconds = _best_seconds(lambda: np.matmul(a, b, out=out), repeats=repeats, number=number)
    return MatmulRate(label, a.shape[0], a.shape[1], b.shape[1], seconds)


def measure_peak(size: int, repeats: int) -> MatmulRate:
    """The float32 rate of one large square ``a @ b``: the reference "peak"."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    return _time_matmul(f"square {size}", a, b, repeats=repeats, number=1)


def measure_step_shapes(flops: FlopModel, repeats: int) -> list[MatmulRate]:
    """Every matmul of a step, in the operand layouts that ``minibp.layers.Dense`` uses (BP's feedback)."""
    rng = np.random.default_rng(0)
    n = flops.batch
    rates: list[MatmulRate] = []
    for i, (n_in, n_out) in enumerate(flops.layers, start=1):
        x = rng.standard_normal((n, n_in), dtype=np.float32)
        w = rng.standard_normal((n_out, n_in), dtype=np.float32)
        delta = rng.standard_normal((n, n_out), dtype=np.float32)
        number = max(3, int(2e8 // (2 * n * n_in * n_out)))  # about 0.2 GFLOP a block
        rates.append(_time_matmul(f"L{i} forward   x @ W.T", x, w.T, repeats=repeats, number=number))
        rates.append(_time_matmul(f"L{i} weight    delta.T @ x", delta.T, x, repeats=repeats, number=number))
        if i > 1:
            rates.append(_time_matmul(f"L{i} input     delta @ W", delta, w, repeats=repeats, number=number))
    return rates


# --------------------------------------------------------------------------- steps


class MinibpStep:
    """One training step of a minibp MLP under ``rule``, exactly as ``minibp.train`` runs it."""

    phases = STEP_PHASES

    def __init__(self, sizes: Sequence[int], rule: str, x: np.ndarray, y: np.ndarray, *, mirror: bool = True) -> None:
        self.net: Network = mlp(sizes, "relu", seed=0, dtype="float32")
        self.rule = get_rule(rule)
        self.net.init_feedback(self.rule, np.random.default_rng(1))
        self.opt = SGD(LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        self.loss_fn = SoftmaxCrossEntropy()
        self.x, self.y = x, y
        self.mirror = mirror
        self.loss = float("nan")

    def __call__(self) -> Stamps:
        clock = time.perf_counter
        t0 = clock()
        out = self.net.forward(self.x)  # eq (1)
        t1 = clock()
        loss, dout = self.loss_fn(out, self.y)
        self.loss = float(loss)
        t2 = clock()
        self.net.backward(dout, self.rule)  # eqs (2)-(4), (17)
        t3 = clock()
        self.opt.step(self.net.param_layers)  # eqs (16)-(17)
        t4 = clock()
        if self.mirror:
            self.rule.after_step(self.net)  # eqs (6)-(7) for the weight mirror
        t5 = clock()
        return [t0, t1, t2, t3, t4, t5]


class MirrorOnly:
    """One mirror-mode pass of the weight mirror (``rule.mirror(net)``), nothing else."""

    phases = ("mirror",)

    def __init__(self, step: MinibpStep) -> None:
        if not isinstance(step.rule, WeightMirror):
            raise TypeError("mirror mode needs the weight mirror rule")
        self.rule: WeightMirror = step.rule
        self.net = step.net
        self.loss = float("nan")

    def __call__(self) -> Stamps:
        t0 = time.perf_counter()
        self.rule.mirror(self.net)
        return [t0, time.perf_counter()]


class TorchStep:
    """The same network's BP step in PyTorch on the CPU (weights copied from minibp's initialisation)."""

    phases = STEP_PHASES

    def __init__(self, torch: Any, net: Network, x: np.ndarray, y: np.ndarray) -> None:
        nn = torch.nn
        modules: list[Any] = []
        for layer in net.weight_layers:
            n_out, n_in = layer.W.shape
            lin = nn.Linear(n_in, n_out)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.array(layer.W)))
                lin.bias.copy_(torch.from_numpy(np.array(layer.b)))
            modules += [lin, nn.ReLU()]
        self.model = nn.Sequential(*modules[:-1]).float()
        weights = [m.weight for m in self.model if isinstance(m, nn.Linear)]
        biases = [m.bias for m in self.model if isinstance(m, nn.Linear)]
        # weight decay on W only, as minibp's SGD does (biases are not decayed)
        self.opt = torch.optim.SGD(
            [{"params": weights, "weight_decay": WEIGHT_DECAY}, {"params": biases, "weight_decay": 0.0}],
            lr=LR,
            momentum=MOMENTUM,
        )
        self.cross_entropy = nn.functional.cross_entropy
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.loss = float("nan")

    def __call__(self) -> Stamps:
        clock = time.perf_counter
        t0 = clock()
        out = self.model(self.x)
        t1 = clock()
        loss = self.cross_entropy(out, self.y)
        self.loss = loss.item()
        t2 = clock()
        loss.backward()
        t3 = clock()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        t4 = clock()
        return [t0, t1, t2, t3, t4, t4]


StepFn = MinibpStep | MirrorOnly | TorchStep


@dataclass
class Case:
    """One thing timed: a callable that runs one step and returns its phase stamps."""

    key: str
    run: StepFn
    flops: int
    library: str = "numpy"
    blocks: list[float] = field(default_factory=list)  # mean seconds per step, one per block
    block_phases: list[list[float]] = field(default_factory=list)  # mean seconds per phase, one list per block

    def time_block(self, steps: int) -> None:
        self.run()  # refill caches after the other cases ran
        per_step = np.array([np.diff(self.run()) for _ in range(steps)])
        self.block_phases.append(per_step.mean(axis=0).tolist())
        self.blocks.append(float(per_step.sum(axis=1).mean()))

    @property
    def best(self) -> float:
        return min(self.blocks)

    @property
    def median(self) -> float:
        return statistics.median(self.blocks)

    @property
    def best_phases(self) -> dict[str, float]:
        return dict(zip(self.run.phases, self.block_phases[self.blocks.index(self.best)]))


# --------------------------------------------------------------------------- environment


def blas_info() -> list[dict[str, Any]]:
    """NumPy's BLAS as threadpoolctl sees it (call before importing torch, which brings its own)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return [{k: pool.get(k) for k in keys} for pool in threadpool_info() if pool.get("user_api") == "blas"]


def import_torch(enabled: bool) -> tuple[Any, str]:
    if not enabled:
        return None, "skipped (--no-torch)"
    try:
        import torch
    except ImportError:
        return None, "skipped (PyTorch is not importable)"
    return torch, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


# --------------------------------------------------------------------------- report


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """A plain text table; ``align`` holds one ``<`` or ``>`` per column."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:{a}{w}}}" for a, w in zip(align, widths))
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[784, 1000, 1000, 10], help="layer widths, input to output")
    p.add_argument("--batch", type=int, default=128, help="batch size N")
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES), help="learning rules to time")
    p.add_argument("--repeats", type=int, default=10, help="timed blocks per case; the best block is the headline")
    p.add_argument("--steps", type=int, default=20, help="training steps per timed block")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per case before timing")
    p.add_argument("--peak-size", type=int, default=2048, help="side of the square matmul that sets the peak rate")
    p.add_argument(
        "--settle",
        type=float,
        default=0.2,
        help="seconds to pause when switching between numpy and torch cases, so that the other\n"
        "library's idle threads (OpenBLAS workers spin ~0.1 s) stop competing for the cores",
    )
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch even if it is importable")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if len(args.sizes) < 2 or min(args.sizes) < 1:
        p.error("--sizes needs at least two positive widths")
    if min(args.batch, args.repeats, args.steps, args.peak_size) < 1 or args.warmup < 0 or args.settle < 0:
        p.error("--batch, --repeats, --steps and --peak-size must be positive, --warmup and --settle >= 0")
    args.rules = list(dict.fromkeys(args.rules))
    return args


def print_environment(blas: list[dict[str, Any]], torch: Any, torch_status: str) -> None:
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs")
    for pool in blas:
        print(
            f"numpy BLAS: {pool['internal_api']} {pool['version']} ({pool['architecture']}), "
            f"{pool['num_threads']} threads, {pool['threading_layer']}"
        )
    if not blas:
        print("numpy BLAS: unknown (install threadpoolctl to see it)")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print(f"PyTorch: {torch_status}")
    if torch is not None and blas and blas[0]["num_threads"] != torch.get_num_threads():
        print(f"  note: numpy uses {blas[0]['num_threads']} BLAS threads, torch {torch.get_num_threads()}")
    print()


def print_matmul_rates(peak: MatmulRate, shapes: list[MatmulRate], flops: FlopModel) -> None:
    floor = sum(r.seconds for r in shapes)
    print(f"float32 matmul rate (best of repeats; peak = {peak.label}: {peak.gflops:.1f} GFLOP/s)")
    rows = [
        [r.label, f"{r.m}x{r.k}x{r.n}", f"{r.seconds * 1e3:.3f}", f"{r.gflops:.1f}", f"{r.gflops / peak.gflops:.1%}"]
        for r in [peak, *shapes]
    ]
    rate = flops.step / floor * 1e-9
    rows.append(["all step matmuls", "", f"{floor * 1e3:.3f}", f"{rate:.1f}", f"{rate / peak.gflops:.1%}"])
    print(_table(["matmul", "m x k x n", "ms", "GFLOP/s", "% peak"], rows, "<>>>>"))
    print("(all step matmuls = the fastest a step could be if it did nothing but its matmuls)")
    print()


def build_cases(args: argparse.Namespace, flops: FlopModel, torch: Any) -> list[Case]:
    sizes = tuple(args.sizes)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=args.batch, dtype=np.int64)
    wm = WeightMirror()
    mirror_flops = flops.mirror(wm.batch_size)  # one mirror pass
    per_step = mirror_flops * wm.batches // wm.every  # averaged over training steps
    cases = [
        Case(rule, MinibpStep(sizes, rule, x, y), flops.step + (per_step if rule == "wm" else 0)) for rule in args.rules
    ]
    if "wm" in args.rules:
        cases.append(Case("wm without mirror", MinibpStep(sizes, "wm", x, y, mirror=False), flops.step))
        cases.append(Case("wm mirror alone", MirrorOnly(MinibpStep(sizes, "wm", x, y)), mirror_flops))
    if torch is not None:
        net = mlp(sizes, "relu", seed=0, dtype="float32")
        cases.append(Case("torch bp", TorchStep(torch, net, x, y), flops.step, library="torch"))
    return cases


def time_cases(cases: list[Case], *, warmup: int, repeats: int, steps: int, settle: float) -> None:
    """Warm every case up, then time ``repeats`` rounds of one block per case (round-robin)."""
    print(f"timing {len(cases)} cases: {warmup} warm-up steps, then {repeats} blocks of {steps} steps each")
    t_start = time.perf_counter()
    for case in cases:
        for _ in range(warmup):
            case.run()
    previous = cases[0].library
    for _ in range(repeats):
        for case in cases:
            if case.library != previous:
                time.sleep(settle)  # let the other library's idle threads stop spinning
            previous = case.library
            case.time_block(steps)
    print(f"done in {time.perf_counter() - t_start:.1f} s")
    print()


def summarise(cases: list[Case], peak: MatmulRate) -> dict[str, dict[str, Any]]:
    """Per case: best and median ms, GFLOP/s, fraction of peak, phases, targets, ratio to torch."""
    torch_case = next((c for c in cases if c.library == "torch"), None)
    peak_rate = peak.gflops * 1e9
    results: dict[str, dict[str, Any]] = {}
    for case in cases:
        rate = case.flops / case.best
        res: dict[str, Any] = {
            "best_ms": case.best * 1e3,
            "median_ms": case.median * 1e3,
            "gflops": rate * 1e-9,
            "fraction_of_peak": rate / peak_rate,
            "phases_ms": {k: v * 1e3 for k, v in case.best_phases.items()},
            "flops": case.flops,
            "final_loss": case.run.loss,
        }
        if case.key in PEAK_TARGET_RULES:
            res["peak_target_met"] = res["fraction_of_peak"] >= TARGET_PEAK_FRACTION
        if torch_case is not None and case.key in RULES:
            res["torch_ratio"] = case.best / torch_case.best
            res["torch_target_met"] = res["torch_ratio"] <= TARGET_TORCH_RATIO
        results[case.key] = res
    by_key = {c.key: c for c in cases}
    if "wm" in by_key:
        full, bare = by_key["wm"].best, by_key["wm without mirror"].best
        overhead = full / bare - 1
        wm = WeightMirror()
        # a steadier estimate: the cost of one mirror pass, spread over the steps between passes
        amortised = by_key["wm mirror alone"].best * wm.batches / wm.every / bare
        results["wm mirror overhead"] = {
            "mirror_alone_amortised_share": amortised,
            "step_without_mirror_ms": bare * 1e3,
            "mirror_alone_ms": by_key["wm mirror alone"].best * 1e3,
            "step_with_mirror_ms": full * 1e3,
            "overhead": overhead,
            "mirror_alone_share": by_key["wm mirror alone"].best / bare,
            "target_met": overhead <= TARGET_MIRROR_OVERHEAD,
        }
    return results


def environment_report(blas: Any, torch: Any) -> dict[str, Any]:
    """The machine and library versions, for a benchmark's JSON report."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "cpu_count": os.cpu_count(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
    }


def print_phases(cases: list[Case], results: dict[str, dict[str, Any]], title: str, decimals: int) -> None:
    """The per-phase table: forward, loss, backward, optimizer, after_step and total, per case."""
    rows = [
        [
            c.key,
            *(f"{results[c.key]['phases_ms'][k]:.{decimals}f}" for k in STEP_PHASES),
            f"{c.best * 1e3:.{decimals}f}",
        ]
        for c in cases
        if c.run.phases == STEP_PHASES
    ]
    print(title)
    print(_table(["case", *STEP_PHASES, "total"], rows, "<" + ">" * (len(STEP_PHASES) + 1)))
    print()


def print_results(cases: list[Case], results: dict[str, dict[str, Any]], args: argparse.Namespace, peak: float) -> None:
    rows = []
    for case in cases:
        res = results[case.key]
        target = ratio = ratio_target = ""
        if "peak_target_met" in res:
            target = f">={TARGET_PEAK_FRACTION:.0%} {_mark(res['peak_target_met'])}"
        if "torch_ratio" in res:
            ratio = f"{res['torch_ratio']:.2f}x"
            ratio_target = f"<={TARGET_TORCH_RATIO:.1f}x {_mark(res['torch_target_met'])}"
        rows.append(
            [
                case.key,
                f"{res['best_ms']:.3f}",
                f"{res['median_ms']:.3f}",
                f"{res['gflops']:.1f}",
                f"{res['fraction_of_peak']:.1%}",
                target,
                ratio,
                ratio_target,
            ]
        )
    title = f"one training step, sizes {'-'.join(map(str, args.sizes))}, batch {args.batch}, float32"
    print(f"{title}, peak {peak:.1f} GFLOP/s")
    if any(c.library == "torch" for c in cases):
        print("vs torch = minibp step time (this rule) / PyTorch BP step time (same network, CPU)")
    header = ["case", "best ms", "median ms", "GFLOP/s", "% peak", "peak target", "vs torch", "torch target"]
    if not any(c.library == "torch" for c in cases):
        header, rows = header[:-2], [row[:-2] for row in rows]
    print(_table(header, rows, "<" + ">" * (len(header) - 1)))
    print()

    print_phases(cases, results, "where the time goes (ms per step, best block)", decimals=3)

    wm = results.get("wm mirror overhead")
    if wm is not None:
        print(f"weight mirror, default settings: {WeightMirror()}")
        print(f"  step without after_step  {wm['step_without_mirror_ms']:8.3f} ms")
        print(
            f"  rule.mirror(net) alone   {wm['mirror_alone_ms']:8.3f} ms = {wm['mirror_alone_share']:+.1%} of that step"
        )
        print(
            f"  one pass per mirror_every steps       = {wm['mirror_alone_amortised_share']:+.1%} of a step (amortised)"
        )
        print(
            f"  step with after_step     {wm['step_with_mirror_ms']:8.3f} ms = {wm['overhead']:+.1%} overhead "
            f"(target <= {TARGET_MIRROR_OVERHEAD:.0%}: {_mark(wm['target_met'])})"
        )
        print()

    diverged = [c.key for c in cases if c.run.phases == STEP_PHASES and not np.isfinite(c.run.loss)]
    if diverged:
        print(f"warning: the loss is not finite after timing for {', '.join(diverged)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    blas = blas_info()  # before torch is imported, which brings BLAS libraries of its own
    torch, torch_status = import_torch(not args.no_torch)
    print_environment(blas, torch, torch_status)

    flops = FlopModel(tuple(args.sizes), args.batch)
    peak = measure_peak(args.peak_size, repeats=max(3, min(args.repeats, 7)))
    shapes = measure_step_shapes(flops, repeats=max(3, min(args.repeats, 7)))
    print_matmul_rates(peak, shapes, flops)
    mirror_m = WeightMirror().batch_size
    print(flops.describe(mirror_m))
    print()

    cases = build_cases(args, flops, torch)
    time_cases(cases, warmup=args.warmup, repeats=args.repeats, steps=args.steps, settle=args.settle)
    results = summarise(cases, peak)
    print_results(cases, results, args, peak.gflops)

    if args.json is not None:
        report = {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "environment": environment_report(blas, torch),
            "flops": {
                "forward": flops.forward,
                "weight_grads": flops.weight_grads,
                "input_grads": flops.input_grads,
                "step": flops.step,
                "mirror": flops.mirror(mirror_m),
            },
            "matmul": [
                {"label": r.label, "m": r.m, "k": r.k, "n": r.n, "ms": r.seconds * 1e3, "gflops": r.gflops}
                for r in [peak, *shapes]
            ],
            "peak_gflops": peak.gflops,
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

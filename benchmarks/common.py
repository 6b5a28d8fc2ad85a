"""What the benchmarks share: the training step they time, best-of-blocks timing, the machine, tables, JSON.

Every benchmark times :func:`minibp.train_step`, the step :func:`minibp.train` runs (forward,
loss, feedback path, optimizer, ``rule.after_step``), so that a benchmark's "training step" is
that step by construction. Run a benchmark as a script from the repository root
(``.venv/bin/python benchmarks/bench_mlp.py``): its folder is then on ``sys.path``, so
``import common`` finds this file, and this file puts the checkout on ``sys.path`` so that
``minibp`` is the checkout's even where it is not installed (the GPU machine's ``python3``).

Headline numbers are best-of-blocks: a case runs ``repeats`` blocks of ``steps`` steps, the
blocks of all cases interleaved round-robin so that background load hits every case alike;
"best" is the fastest block's mean step time, "median" the median over blocks.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: minibp is the checkout's
    sys.path.insert(1, str(ROOT))

import minibp  # noqa: E402
from minibp import SGD, Network, Rule, to_numpy  # noqa: E402
from minibp.losses import SoftmaxCrossEntropy  # noqa: E402
from minibp.rules import WeightMirror  # noqa: E402

#: the parts of a step, in the order :func:`minibp.train_step` runs them
STEP_PHASES = ("forward", "loss", "backward", "optimizer", "after_step")
Stamps = list[float]  # time.perf_counter() at the start of a step and after each of its phases
Array = Any


# --------------------------------------------------------------------------- the training step


class _StampedLoss:
    """``loss_fn`` noting the clock as it is called (the forward pass has ended) and as it returns."""

    def __init__(self, loss_fn: Callable[[Array, Array], tuple[Array, Array]], stamps: Stamps) -> None:
        self.loss_fn, self.stamps = loss_fn, stamps

    def __call__(self, out: Array, y: Array) -> tuple[Array, Array]:
        self.stamps.append(time.perf_counter())
        result = self.loss_fn(out, y)
        self.stamps.append(time.perf_counter())
        return result


class _StampedOptimizer:
    """``optimizer`` noting the clock as its step starts (the feedback path has ended) and ends."""

    def __init__(self, optimizer: SGD, stamps: Stamps) -> None:
        self.optimizer, self.stamps = optimizer, stamps

    def step(self, layers: Sequence[Any]) -> None:
        self.stamps.append(time.perf_counter())
        self.optimizer.step(layers)
        self.stamps.append(time.perf_counter())


class MinibpStep:
    """One training step of ``net`` under ``rule`` on the fixed batch ``(x, y)``: :func:`minibp.train_step`.

    With ``phases=True`` the loss and the optimizer are handed to ``train_step`` inside thin
    wrappers that read the clock as they are entered and left, which splits the step into
    :data:`STEP_PHASES` (four clock reads a step, about a microsecond); the step itself is
    unchanged. With ``phases=False`` only its start and end are read. Nothing is copied to the
    host: :attr:`loss` reads the last step's loss when asked.
    """

    def __init__(
        self,
        net: Network,
        rule: Rule,
        x: Array,
        y: Array,
        optimizer: SGD,
        loss_fn: Callable[[Array, Array], tuple[Array, Array]] | None = None,
        *,
        phases: bool = True,
    ) -> None:
        self.net, self.rule, self.x, self.y, self.optimizer = net, rule, x, y, optimizer
        self.loss_fn = loss_fn or SoftmaxCrossEntropy()
        self.phases: tuple[str, ...] = STEP_PHASES if phases else ("step",)
        self._stamps: Stamps = []
        self._stamped = (_StampedLoss(self.loss_fn, self._stamps), _StampedOptimizer(optimizer, self._stamps))
        self.last: minibp.Step | None = None

    def __call__(self) -> Stamps:
        if len(self.phases) == 1:
            t0 = time.perf_counter()
            self.last = minibp.train_step(self.net, self.rule, self.loss_fn, self.optimizer, self.x, self.y)
            return [t0, time.perf_counter()]
        self._stamps.clear()
        self._stamps.append(time.perf_counter())
        loss_fn, optimizer = self._stamped
        self.last = minibp.train_step(self.net, self.rule, loss_fn, optimizer, self.x, self.y)  # type: ignore[arg-type]
        self._stamps.append(time.perf_counter())
        return list(self._stamps)

    @property
    def loss(self) -> float:
        """The last step's loss, read on the host (NaN before the first step)."""
        return float("nan") if self.last is None else float(to_numpy(self.last.loss))


def make_step(
    net: Network,
    rule: str | Rule,
    x: Array,
    y: Array,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    phases: bool = True,
    **rule_options: Any,
) -> MinibpStep:
    """A :class:`MinibpStep` of ``net`` under ``rule`` (a name, with ``rule_options``, or a rule):
    feedback weights drawn from seed 1, SGD with momentum and weight decay."""
    rule = minibp.get_rule(rule, **rule_options)
    net.init_feedback(rule, np.random.default_rng(1))
    return MinibpStep(net, rule, x, y, SGD(lr, momentum=momentum, weight_decay=weight_decay), phases=phases)


class MirrorOnly:
    """One mirror-mode pass of the weight mirror (``rule.mirror(net)``, eqs 6-7), nothing else."""

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


def amortised_mirror(mirror_seconds: float, rule: WeightMirror | None = None) -> float:
    """Seconds per training step of one mirror pass spread over the steps between passes."""
    rule = rule or WeightMirror()
    return mirror_seconds * rule.batches / rule.every


# --------------------------------------------------------------------------- timing


def best_seconds(fn: Callable[[], object], *, repeats: int, number: int) -> float:
    """Fastest mean time of ``number`` calls, over ``repeats`` blocks."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def time_blocks(
    run: Callable[[], object], *, warmup: int, repeats: int, steps: int, sync: Callable[[], None] | None = None
) -> dict[str, float]:
    """``warmup`` untimed calls, then ``repeats`` blocks of ``steps``: the best and the median seconds per
    call, and the warm-up's seconds. ``sync`` waits for the device before and after each block."""
    wait = sync or (lambda: None)
    t0 = time.perf_counter()
    for _ in range(warmup):
        run()
    wait()
    warm = time.perf_counter() - t0
    blocks = []
    for _ in range(repeats):
        wait()
        t0 = time.perf_counter()
        for _ in range(steps):
            run()
        wait()
        blocks.append((time.perf_counter() - t0) / steps)
    return {"best_s": min(blocks), "median_s": statistics.median(blocks), "warmup_s": warm}


class Timed(Protocol):
    """What :class:`Case` times: a call that runs one step and returns its :data:`Stamps`."""

    phases: tuple[str, ...]

    @property
    def loss(self) -> float: ...

    def __call__(self) -> Stamps: ...


@dataclass
class Case:
    """One thing timed: a step (:class:`MinibpStep`, :class:`MirrorOnly`, a PyTorch step) and its FLOPs."""

    key: str
    run: Timed
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


def time_cases(cases: list[Case], *, warmup: int, repeats: int, steps: int, settle: float) -> None:
    """Warm every case up, then time ``repeats`` rounds of one block per case (round-robin).

    ``settle`` seconds pass whenever the library changes (NumPy to PyTorch or back), so that the
    other library's idle threads (OpenBLAS's workers spin about 0.1 s) stop competing for the cores.
    """
    print(f"timing {len(cases)} cases: {warmup} warm-up steps, then {repeats} blocks of {steps} steps each")
    t_start = time.perf_counter()
    for case in cases:
        for _ in range(warmup):
            case.run()
    previous = cases[0].library
    for _ in range(repeats):
        for case in cases:
            if case.library != previous:
                time.sleep(settle)
            previous = case.library
            case.time_block(steps)
    print(f"done in {time.perf_counter() - t_start:.1f} s")
    print()


def case_results(cases: list[Case], peak_gflops: float) -> dict[str, dict[str, Any]]:
    """Per case: best and median ms, matmul GFLOP/s and its fraction of ``peak_gflops``, phases, final loss."""
    results: dict[str, dict[str, Any]] = {}
    for case in cases:
        rate = case.flops / case.best * 1e-9
        results[case.key] = {
            "best_ms": case.best * 1e3,
            "median_ms": case.median * 1e3,
            "gflops": rate,
            "fraction_of_peak": rate / peak_gflops,
            "phases_ms": {k: v * 1e3 for k, v in case.best_phases.items()},
            "flops": case.flops,
            "final_loss": case.run.loss,
        }
    return results


def print_phases(cases: list[Case], results: dict[str, dict[str, Any]], title: str, decimals: int) -> None:
    """The per-phase table: forward, loss, backward, optimizer, after_step and total, per case."""
    rows = [
        [
            c.key,
            *(f"{results[c.key]['phases_ms'][k]:.{decimals}f}" for k in STEP_PHASES),
            f"{c.best * 1e3:.{decimals}f}",
        ]
        for c in cases
        if tuple(c.run.phases) == STEP_PHASES
    ]
    print(title)
    print(table(["case", *STEP_PHASES, "total"], rows, "<" + ">" * (len(STEP_PHASES) + 1)))
    print()


def warn_if_diverged(cases: list[Case]) -> None:
    diverged = [c.key for c in cases if tuple(c.run.phases) == STEP_PHASES and not np.isfinite(c.run.loss)]
    if diverged:
        print(f"warning: the loss is not finite after timing for {', '.join(diverged)}")
        print()


# --------------------------------------------------------------------------- the machine


def blas_info() -> list[dict[str, Any]]:
    """NumPy's BLAS as threadpoolctl sees it (call it before importing torch, which brings its own)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return [{k: pool.get(k) for k in keys} for pool in threadpool_info() if pool.get("user_api") == "blas"]


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(blas: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The machine and library versions, for a benchmark's report."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "blas": blas_info() if blas is None else blas,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


def describe_blas(blas: list[dict[str, Any]]) -> str:
    if not blas:
        return "numpy BLAS: unknown (install threadpoolctl to see it)"
    return "\n".join(
        f"numpy BLAS: {p['internal_api']} {p['version']} ({p['architecture']}), {p['num_threads']} threads, "
        f"{p['threading_layer']}"
        for p in blas
    )


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"python {info['python']}, numpy {info['numpy']}, {info['machine']} ({info['cpu']}), {info['cpu_count']} CPUs"
    )
    print(describe_blas(info["blas"]))
    print(f"OPENBLAS_CORETYPE={info['openblas_coretype'] or '(unset)'}")


def _cpu_ticks() -> tuple[int, int]:
    """All CPUs' clock ticks since boot, in total and idle (Linux's ``/proc/stat``)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks), ticks[3] + ticks[4]


def background_load(seconds: float = 0.5) -> float | None:
    """The fraction of all CPUs' time that other processes used over ``seconds`` while this one slept (Linux)."""
    with others_load() as seen:
        time.sleep(seconds)
    return seen["load"]


@contextmanager
def others_load() -> Iterator[dict[str, float | None]]:
    """Measures, over the ``with`` block, the fraction of all CPUs' time that other processes used
    (the CPUs' busy time less this process's own CPU time; Linux). Yields a dict whose ``"load"``
    is set when the block ends (None where ``/proc/stat`` cannot be read)."""
    out: dict[str, float | None] = {"load": None}
    try:
        total0, idle0 = _cpu_ticks()
    except (OSError, ValueError, IndexError):
        yield out
        return
    cpu0 = time.process_time()
    yield out
    total1, idle1 = _cpu_ticks()
    ours = (time.process_time() - cpu0) * os.sysconf("SC_CLK_TCK")
    busy = (total1 - total0) - (idle1 - idle0)
    out["load"] = min(1.0, max(0.0, (busy - ours) / max(total1 - total0, 1)))


def print_background_load(load: float | None) -> None:
    if load is None:
        return
    print(f"background CPU load: {load:.0%} of {os.cpu_count()} CPUs used by other processes (0.5 s sample)")
    if load > 0.1:
        print(
            "WARNING: other processes are busy. Multi-threaded BLAS calls wait on descheduled threads (on a 2-CPU\n"
            "machine beside one busy process, a 16x65536 @ 65536x144 matmul took 1.6 s instead of 6 ms): timings\n"
            "(and the peak RSS) are unreliable; rerun on a quiet machine (benchmarks/bench_threads.py measures it)."
        )


# --------------------------------------------------------------------------- output


def mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A plain text table; ``align`` holds one ``<`` or ``>`` per column (default: all ``>``)."""
    align = align or ">" * len(header)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:{a}{w}}}" for a, w in zip(align, widths))
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)


def settings_of(args: Any) -> dict[str, Any]:
    """The command line's settings (an ``argparse.Namespace``), as JSON-able values."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def write_json(path: Path | None, report: dict[str, Any], *, quiet: bool = False) -> None:
    """Write ``report`` to ``path`` as indented JSON (nothing when ``path`` is None), creating its folder."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    if not quiet:
        print(f"wrote {path}")

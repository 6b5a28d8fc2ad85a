"""Benchmark one training step of a ReLU MLP under each minibp learning rule.

A step is :func:`minibp.train_step`, the step :func:`minibp.train` runs per batch: forward
(eq 1), loss, feedback path (eqs 2-4, KP's eq 17), ``SGD.step`` (eq 16) and ``rule.after_step``
(the weight mirror's mirror mode, eqs 6-7). The script reports milliseconds per step and the
achieved matmul GFLOP/s next to the machine's measured float32 matrix-multiply rate, the weight
mirror's mirror-mode overhead and, where PyTorch is importable, the same network's step in
PyTorch on the CPU.

Run from the repository root::

    .venv/bin/python benchmarks/bench_mlp.py [--repeats 10] [--steps 20] [--json out.json]

Headline numbers are best-of-repeats: each case is timed in ``--repeats`` blocks of ``--steps``
steps, the blocks of all cases interleaved round-robin so that background load hits every case
alike; "best" is the fastest block's mean step time, "median" the median over blocks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    Case,
    MinibpStep,
    MirrorOnly,
    amortised_mirror,
    case_results,
    machine,
    make_step,
    mark,
    print_machine,
    print_phases,
    settings_of,
    table,
    time_cases,
    warn_if_diverged,
    write_json,
)
from flops import FlopModel, matmul_report, measure_peak, measure_step_matmuls, print_matmul_rates
from torch_twin import TorchStep, import_torch, torch_report

from minibp import RULES, mlp
from minibp.rules import WeightMirror

LR = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
PEAK_TARGET_RULES = ("bp", "fa", "ss", "kp")
TARGET_PEAK_FRACTION = 0.5  # bp, fa, ss, kp: a step at >= 50 % of the peak matmul rate
TARGET_MIRROR_OVERHEAD = 0.25  # wm: mirror mode adds <= 25 % to a training step
TARGET_TORCH_RATIO = 1.0  # every rule: minibp step time <= PyTorch's
#: the weight mirror with its mirror pass switched off: ``after_step`` counts steps and never mirrors
NEVER = 10**9


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


def build_cases(args: argparse.Namespace, flops: FlopModel, torch: Any) -> list[Case]:
    sizes = tuple(args.sizes)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=args.batch, dtype=np.int64)

    def step(rule: str, **options: Any) -> MinibpStep:
        net = mlp(sizes, "relu", seed=0, dtype="float32")
        return make_step(net, rule, x, y, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, **options)

    wm = WeightMirror()
    mirror_flops = flops.mirror(wm.batch_size)  # one mirror pass
    per_step = mirror_flops * wm.batches // wm.every  # averaged over training steps
    cases = [Case(rule, step(rule), flops.step + (per_step if rule == "wm" else 0)) for rule in args.rules]
    if "wm" in args.rules:
        cases.append(Case("wm without mirror", step("wm", every=NEVER), flops.step))
        cases.append(Case("wm mirror alone", MirrorOnly(step("wm")), mirror_flops))
    if torch is not None:
        net = mlp(sizes, "relu", seed=0, dtype="float32")
        twin = TorchStep(torch, net, x, y, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        cases.append(Case("torch bp", twin, flops.step, library="torch"))
    return cases


def summarise(cases: list[Case], peak_gflops: float) -> dict[str, dict[str, Any]]:
    """Per case: best and median ms, GFLOP/s, fraction of peak, phases, targets, ratio to torch."""
    results = case_results(cases, peak_gflops)
    torch_case = next((c for c in cases if c.library == "torch"), None)
    for case in cases:
        res = results[case.key]
        if case.key in PEAK_TARGET_RULES:
            res["peak_target_met"] = res["fraction_of_peak"] >= TARGET_PEAK_FRACTION
        if torch_case is not None and case.key in RULES:
            res["torch_ratio"] = case.best / torch_case.best
            res["torch_target_met"] = res["torch_ratio"] <= TARGET_TORCH_RATIO
    by_key = {c.key: c for c in cases}
    if "wm" in by_key:
        full, bare = by_key["wm"].best, by_key["wm without mirror"].best
        overhead = full / bare - 1
        alone = by_key["wm mirror alone"].best
        results["wm mirror overhead"] = {
            # a steadier estimate: the cost of one mirror pass, spread over the steps between passes
            "mirror_alone_amortised_share": amortised_mirror(alone) / bare,
            "step_without_mirror_ms": bare * 1e3,
            "mirror_alone_ms": alone * 1e3,
            "step_with_mirror_ms": full * 1e3,
            "overhead": overhead,
            "mirror_alone_share": alone / bare,
            "target_met": overhead <= TARGET_MIRROR_OVERHEAD,
        }
    return results


def print_results(cases: list[Case], results: dict[str, dict[str, Any]], args: argparse.Namespace, peak: float) -> None:
    has_torch = any(c.library == "torch" for c in cases)
    rows = []
    for case in cases:
        res = results[case.key]
        target = ratio = ratio_target = ""
        if "peak_target_met" in res:
            target = f">={TARGET_PEAK_FRACTION:.0%} {mark(res['peak_target_met'])}"
        if "torch_ratio" in res:
            ratio = f"{res['torch_ratio']:.2f}x"
            ratio_target = f"<={TARGET_TORCH_RATIO:.1f}x {mark(res['torch_target_met'])}"
        row = [case.key, f"{res['best_ms']:.3f}", f"{res['median_ms']:.3f}", f"{res['gflops']:.1f}"]
        rows.append([*row, f"{res['fraction_of_peak']:.1%}", target, ratio, ratio_target])
    title = f"one training step, sizes {'-'.join(map(str, args.sizes))}, batch {args.batch}, float32"
    print(f"{title}, peak {peak:.1f} GFLOP/s")
    if has_torch:
        print("vs torch = minibp step time (this rule) / PyTorch BP step time (same network, CPU)")
    header = ["case", "best ms", "median ms", "GFLOP/s", "% peak", "peak target", "vs torch", "torch target"]
    if not has_torch:
        header, rows = header[:-2], [row[:-2] for row in rows]
    print(table(header, rows, "<" + ">" * (len(header) - 1)))
    print()
    print_phases(cases, results, "where the time goes (ms per step, best block)", decimals=3)

    wm = results.get("wm mirror overhead")
    if wm is not None:
        print(f"weight mirror, default settings: {WeightMirror()}")
        print(f"  step without mirroring   {wm['step_without_mirror_ms']:8.3f} ms  (WeightMirror(every={NEVER}))")
        print(
            f"  rule.mirror(net) alone   {wm['mirror_alone_ms']:8.3f} ms = {wm['mirror_alone_share']:+.1%} of that step"
        )
        print(
            f"  one pass per `every` steps           = {wm['mirror_alone_amortised_share']:+.1%} of a step (amortised)"
        )
        print(
            f"  step with mirroring      {wm['step_with_mirror_ms']:8.3f} ms = {wm['overhead']:+.1%} overhead "
            f"(target <= {TARGET_MIRROR_OVERHEAD:.0%}: {mark(wm['target_met'])})"
        )
        print()
    warn_if_diverged(cases)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()  # before torch is imported, which brings BLAS libraries of its own
    torch, torch_status = import_torch(not args.no_torch)
    print_machine(info)
    print(f"PyTorch: {torch_status}")
    print()

    net = mlp(args.sizes, "relu", seed=0, dtype="float32")
    flops = FlopModel.of(net, np.zeros((args.batch, args.sizes[0]), dtype=np.float32))
    repeats = max(3, min(args.repeats, 7))
    peak = measure_peak(args.peak_size, repeats=repeats)
    shapes = measure_step_matmuls(flops, repeats=repeats)
    print_matmul_rates(peak, shapes, flops)
    mirror_m = WeightMirror().batch_size
    print(flops.describe(mirror_m))
    print()

    cases = build_cases(args, flops, torch)
    time_cases(cases, warmup=args.warmup, repeats=args.repeats, steps=args.steps, settle=args.settle)
    results = summarise(cases, peak.gflops)
    print_results(cases, results, args, peak.gflops)

    report = {
        "config": settings_of(args),
        "environment": {**info, **torch_report(torch)},
        "flops": flops.report(mirror_m),
        "matmul": matmul_report(peak, shapes),
        "peak_gflops": peak.gflops,
        "results": results,
    }
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark one training step of ResNet-20 under each minibp learning rule, against PyTorch.

A step is :func:`minibp.train_step`, the step :func:`minibp.train` runs per batch: forward,
loss, backward (with KP's ``B`` gradient), ``SGD.step`` and ``rule.after_step`` (the weight
mirror's mirror mode every ``every``-th step). The script reports, for ResNet-20 on 32×32×3 images (batch 64,
float32, 10 classes by default):

* milliseconds per step and the achieved matmul GFLOP/s against the machine's measured float32
  matrix-multiply rate, with a per-phase breakdown, and the matmuls of a step alone in minibp's
  operand layouts (the fastest a step could be if it did nothing but its matmuls);
* where PyTorch is importable, the same architecture (minibp's initial weights copied in) timed
  on the CPU in the same run, and the ratio minibp / PyTorch;
* the peak memory of a step, each case measured in a fresh subprocess;
* a cProfile summary of where minibp's step spends its time, by layer type and by function,
  next to the PyTorch profiler's top operators.

Run from the repository root (the helpers in ``common.py``, ``flops.py`` and ``torch_twin.py``
sit next to it, and running the file as a script puts its folder on ``sys.path``)::

    .venv/bin/python benchmarks/bench_resnet.py [--rules bp kp] [--repeats 5] [--steps 4] [--json out.json]

Headline numbers are best-of-repeats: each case is timed in ``--repeats`` blocks of ``--steps``
steps, the blocks of all cases interleaved round-robin; "best" is the fastest block's mean step
time, "median" the median over blocks.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    Case,
    MinibpStep,
    MirrorOnly,
    amortised_mirror,
    background_load,
    case_results,
    machine,
    make_step,
    mark,
    print_background_load,
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

from minibp import RULES, Network
from minibp.models import lenet, resnet20
from minibp.rules import WeightMirror

LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
TORCH_TARGET_RULES = ("bp", "kp")
TARGET_TORCH_RATIO = 1.5  # bp, kp: minibp step time <= 1.5 x PyTorch's
TARGET_MEMORY_RATIO = 2.0  # every rule: minibp's peak step memory <= 2 x PyTorch's
MEMORY_WARMUP = 2  # untimed steps before the memory baseline between steps
MEMORY_STEPS = 4  # steps whose peak is measured (one weight-mirror pass among them)
MB = 1e6


#: the models this script can time: ``--model`` → (image shape, default width)
MODELS = {"resnet20": ((3, 32, 32), 16), "lenet": ((1, 28, 28), 6)}


@dataclass(frozen=True)
class ResnetConfig:
    batch: int = 64
    width: int = 16
    bn: str = "before"
    input_shape: tuple[int, int, int] = (3, 32, 32)
    n_classes: int = 10
    model: str = "resnet20"

    @classmethod
    def for_model(cls, model: str, batch: int, width: int, bn: str) -> ResnetConfig:
        return cls(batch, width, bn, MODELS[model][0], model=model)

    def build(self) -> Network:
        if self.model == "lenet":  # no batch norm: --bn does not apply
            return lenet(self.input_shape, self.n_classes, width=self.width, seed=0, dtype="float32")
        return resnet20(self.input_shape, self.n_classes, width=self.width, bn=self.bn, seed=0, dtype="float32")

    def batch_data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((self.batch, *self.input_shape), dtype=np.float32)
        y = rng.integers(0, self.n_classes, size=self.batch, dtype=np.int64)
        return x, y

    def describe(self) -> str:
        c, h, w = self.input_shape
        resnet = f"ResNet-20 (width {self.width}, bn {self.bn})"
        net = f"LeNet (width {self.width})" if self.model == "lenet" else resnet
        return f"{net}, {h}x{w}x{c} images, batch {self.batch}, float32"


# --------------------------------------------------------------------------- steps


def new_step(cfg: ResnetConfig, case: str, torch: Any = None) -> MinibpStep | TorchStep:
    """A fresh step of a fresh network for ``case``: a rule name (:func:`minibp.train_step` under that
    rule), or ``"torch"`` (BP in PyTorch; then ``torch`` must be the module)."""
    x, y = cfg.batch_data()
    settings = {"lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    if case == "torch":
        return TorchStep(torch, cfg.build(), x, y, **settings)
    return make_step(cfg.build(), case, x, y, **settings)


def sanity_check(cfg: ResnetConfig, torch: Any, steps: int = 3) -> list[tuple[float, float]]:
    """Losses of the first ``steps`` steps of minibp BP and of its PyTorch twin, from the same weights."""
    x, y = cfg.batch_data()
    settings = {"lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    ours = make_step(cfg.build(), "bp", x, y, **settings)
    theirs = TorchStep(torch, ours.net, x, y, **settings)  # before ``ours`` takes a step
    losses = []
    for _ in range(steps):
        ours()
        theirs()
        losses.append((ours.loss, theirs.loss))
    return losses


# --------------------------------------------------------------------------- memory


def _proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """The resident set size now (Linux); elsewhere the peak so far, the best that ``getrusage`` offers."""
    kb = _proc_status_kb("VmRSS")
    return kb * 1024 / MB if kb is not None else _peak_rss_mb()


def _peak_rss_mb() -> float:
    """The peak RSS of this process image: ``VmHWM`` on Linux, where ``getrusage``'s ``ru_maxrss`` is no use,
    as ``exec`` carries the parent's peak into it (``subprocess`` starts children by vfork + exec)."""
    kb = _proc_status_kb("VmHWM")
    if kb is not None:
        return kb * 1024 / MB
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / MB if sys.platform == "darwin" else maxrss * 1024 / MB  # bytes on macOS, KiB on Linux


def _reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0: ``5`` to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def memory_child(cfg: ResnetConfig, case: str) -> dict[str, Any]:
    """Run in a fresh process: the memory a training step adds to the process, in MB.

    ``baseline`` is the RSS with the libraries imported and the model and batch built, before any
    step; ``MEMORY_WARMUP`` steps then create the optimizer state and the libraries' lazy
    buffers; ``held`` is the RSS between steps after them, and ``peak`` the highest RSS during
    the next ``MEMORY_STEPS`` steps (the peak is reset first where the OS allows), both minus the
    baseline. For minibp, tracemalloc also counts the bytes NumPy allocated, the same way.
    """
    torch = None
    if case == "torch":
        import torch
    else:
        tracemalloc.start()
    step = new_step(cfg, case, torch)
    gc.collect()
    baseline = _rss_mb()
    traced_base = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    for _ in range(MEMORY_WARMUP):
        step()
    gc.collect()
    held = _rss_mb() - baseline
    reset = _reset_peak_rss()
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    for _ in range(MEMORY_STEPS):
        step()
    res: dict[str, Any] = {
        "case": case,
        "baseline_mb": baseline,
        "held_mb": held,
        "peak_mb": _peak_rss_mb() - baseline,
        "peak_reset": reset,
        "loss": step.loss,
    }
    if tracemalloc.is_tracing():
        res["numpy_peak_mb"] = (tracemalloc.get_traced_memory()[1] - traced_base) / MB
    return res


def measure_memory(cfg: ResnetConfig, cases: Sequence[str], runs: int) -> dict[str, dict[str, Any]]:
    """``memory_child`` for every case, ``runs`` times each in a fresh Python process running this script.

    Keeps the run with the lowest peak (the RSS of the same step moves by about 10 % between
    processes: allocator and huge-page placement) and every run's peak under ``peak_mb_runs``.
    """
    results = {}
    for case in cases:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", case]
        cmd += ["--model", cfg.model, "--batch", str(cfg.batch), "--width", str(cfg.width), "--bn", cfg.bn]
        done = []
        for _ in range(runs):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"memory measurement for {case} failed:\n{proc.stderr.strip()}")
                break
            done.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if done:
            results[case] = min(done, key=lambda m: m["peak_mb"])
            results[case]["peak_mb_runs"] = [m["peak_mb"] for m in done]
    return results


def print_memory(memory: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Print the memory table; returns per case the measurements and the ratio to PyTorch's with the target."""
    if not memory:
        return {}
    reset = all(m["peak_reset"] for m in memory.values())
    runs = max(len(m["peak_mb_runs"]) for m in memory.values())
    reset_note = "the peak RSS reset via /proc/self/clear_refs first" if reset else "the peak since the process began"
    print(
        "\n".join(
            [
                f"peak memory of a step: each case in fresh processes ({runs} run(s) each, the lowest peak kept).",
                "  baseline = RSS with the libraries imported and the model and the batch built, before the first step",
                f"  held     = RSS between steps after {MEMORY_WARMUP} warm-up steps (optimizer state, lazy buffers)"
                " - baseline",
                f"  peak     = highest RSS during the next {MEMORY_STEPS} steps ({reset_note}) - baseline",
                "  numpy peak = the same for the bytes NumPy allocated (tracemalloc): live arrays, no allocator slack",
            ]
        )
    )
    torch_peak = memory["torch"]["peak_mb"] if "torch" in memory else None
    rows, out = [], {}
    for case, m in memory.items():
        res = dict(m)
        ratio = target = ""
        if torch_peak and case != "torch":
            res["torch_ratio"] = m["peak_mb"] / torch_peak
            res["target_met"] = res["torch_ratio"] <= TARGET_MEMORY_RATIO
            ratio = f"{res['torch_ratio']:.2f}x"
            target = f"<={TARGET_MEMORY_RATIO:.0f}x {mark(res['target_met'])}"
        rows.append(
            [
                case,
                f"{m['baseline_mb']:.1f}",
                f"{m['held_mb']:.1f}",
                f"{m['peak_mb']:.1f}",
                f"{m['numpy_peak_mb']:.1f}" if "numpy_peak_mb" in m else "-",
                " ".join(f"{v:.0f}" for v in m["peak_mb_runs"]),
                ratio,
                target,
            ]
        )
        out[case] = res
    header = ["case", "baseline MB", "held MB", "peak MB", "numpy peak MB", "all runs", "vs torch", "target"]
    if torch_peak is None:
        header, rows = header[:-2], [row[:-2] for row in rows]
    print(table(header, rows, "<" + ">" * (len(header) - 1)))
    print()
    return out


# --------------------------------------------------------------------------- profiles

# (group, file in minibp, functions, "cum" for cumulative time or "tot" for own time): the
# entry points of a step's work, so that no two groups count the same time
PROFILE_GROUPS: tuple[tuple[str, str | tuple[str, ...], tuple[str, ...], str], ...] = (
    ("conv forward", "layers/conv.py", ("forward",), "cum"),
    ("conv backward_input", "layers/conv.py", ("backward_input",), "cum"),
    ("conv weight_grads", "layers/conv.py", ("weight_grads",), "cum"),
    ("dense (all)", "layers/dense.py", ("forward", "backward_input", "weight_grads"), "cum"),
    ("batchnorm forward", "layers/norm.py", ("forward",), "cum"),
    ("batchnorm backward", "layers/norm.py", ("backward",), "cum"),
    ("relu forward", "layers/activations.py", ("forward",), "cum"),
    ("relu backward", "layers/activations.py", ("backward",), "cum"),
    ("pooling", "layers/pool.py", ("forward", "backward"), "cum"),
    ("residual sums", "layers/residual.py", ("forward", "backward_path"), "tot"),
    ("loss", "minibp/losses.py", ("__call__",), "cum"),
    ("optimizer (SGD.step)", "minibp/optim.py", ("step",), "cum"),
    (
        "rule (feedback, after_step)",
        ("minibp/rules/base.py", "minibp/rules/paper.py"),
        ("feedback_matrix", "feedback_grads", "after_step"),
        "cum",
    ),
)
# inside the convolutions (file, function, kind): the own time of conv2d* and of the grid routes
# is their matmuls (plus reshapes; for conv2d_on_grid, the tap-by-tap copies of its columns too)
CONV_PARTS: tuple[tuple[str, str, str, str], ...] = (
    ("im2col (pad + patch copy)", "layers/conv_routes.py", "im2col", "cum"),
    ("padded_grid (channel-major padded copy)", "layers/conv_routes.py", "padded_grid", "cum"),
    ("col2im (tap scatter-add)", "layers/conv_routes.py", "col2im", "cum"),
    ("channels_first (delta copy)", "layers/conv_routes.py", "channels_first", "cum"),
    ("conv2d own time (forward matmul, im2col route)", "layers/conv.py", "conv2d", "tot"),
    ("conv2d_on_grid own time (forward matmul, tap copies)", "layers/conv_routes.py", "conv2d_on_grid", "tot"),
    ("conv2d_transpose own time (input-grad matmul)", "layers/conv.py", "conv2d_transpose", "tot"),
    ("conv2d_weight_grad own time (weight-grad matmul)", "layers/conv.py", "conv2d_weight_grad", "tot"),
    ("weight_grad_on_grid own time (weight-grad matmuls)", "layers/conv_routes.py", "weight_grad_on_grid", "tot"),
)


@dataclass
class MinibpProfile:
    steps: int
    total_s: float  # per step
    groups: list[tuple[str, float]]  # seconds per step
    conv_parts: list[tuple[str, float]]
    top: list[tuple[str, float, float]]  # function, own seconds per step, calls per step


def _func_label(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":
        return func
    path = Path(file)
    return f"{path.parent.name}/{path.name}:{line}({func})"


def profile_minibp(step: MinibpStep, steps: int, top: int = 12) -> MinibpProfile:
    """cProfile over ``steps`` steps, grouped by layer type (``PROFILE_GROUPS``) and by function."""
    step()  # warm
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    stats = pstats.Stats(prof)
    rows: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]

    def seconds(file: str | tuple[str, ...], funcs: tuple[str, ...], kind: str) -> float:
        t = 0.0
        for (path, _, func), (_, _, tt, ct, _) in rows.items():
            if func in funcs and path.replace(os.sep, "/").endswith(file):
                t += ct if kind == "cum" else tt
        return t / steps

    groups = [(name, seconds(file, funcs, kind)) for name, file, funcs, kind in PROFILE_GROUPS]
    groups.append(("other (dispatch, containers, Python)", total / steps - sum(t for _, t in groups)))
    parts = [(name, seconds(file, (func,), kind)) for name, file, func, kind in CONV_PARTS]
    ranked = sorted(rows.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    top_rows = [(_func_label(key), tt / steps, nc / steps) for key, (_, nc, tt, _, _) in ranked]
    return MinibpProfile(steps, total / steps, groups, parts, top_rows)


def profile_torch(torch: Any, step: TorchStep, steps: int, top: int = 12) -> list[tuple[str, float, float]]:
    """PyTorch's profiler over ``steps`` steps: the top operators by own CPU time (ms and calls per step)."""
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [(e.key, e.self_cpu_time_total * 1e-6 / steps, e.count / steps) for e in events]


def print_profiles(mp: MinibpProfile | None, tp: list[tuple[str, float, float]] | None, rule: str) -> None:
    if mp is not None:
        total = mp.total_s
        print(f"where minibp's {rule} step spends its time (cProfile over {mp.steps} steps: {total * 1e3:.1f} ms/step")
        print("with the profiler on; each group is the cumulative time of the layers' own methods)")
        rows = [[name, f"{t * 1e3:.1f}", f"{t / total:.1%}"] for name, t in mp.groups]
        print(table(["group", "ms/step", "% step"], rows, "<>>"))
        print()
        print("inside the convolutions (own time of conv2d* and *_on_grid = their matmuls, reshapes and tap copies)")
        rows = [[name, f"{t * 1e3:.1f}", f"{t / total:.1%}"] for name, t in mp.conv_parts]
        print(table(["part", "ms/step", "% step"], rows, "<>>"))
        print()
        print("top functions by own time (the own time of a minibp function = the NumPy operators it runs inline)")
        rows = [[name, f"{t * 1e3:.1f}", f"{t / total:.1%}", f"{n:g}"] for name, t, n in mp.top]
        print(table(["function", "ms/step", "% step", "calls/step"], rows, "<>>>"))
        print()
    if tp:
        total = sum(t for _, t, _ in tp)
        print(f"PyTorch's top operators by own CPU time (torch.profiler; top {len(tp)}: {total * 1e3:.1f} ms/step)")
        rows = [[name, f"{t * 1e3:.1f}", f"{n:g}"] for name, t, n in tp]
        print(table(["operator", "ms/step", "calls/step"], rows, "<>>"))
        print()


# --------------------------------------------------------------------------- timing report


def build_cases(cfg: ResnetConfig, rules: Sequence[str], flops: FlopModel, torch: Any) -> list[Case]:
    wm = WeightMirror()
    mirror_flops = flops.mirror(wm.batch_size)
    per_step = mirror_flops * wm.batches // wm.every  # one pass every `every` steps
    cases = [Case(rule, new_step(cfg, rule), flops.step + (per_step if rule == "wm" else 0)) for rule in rules]
    if "wm" in rules:
        cases.append(Case("wm mirror alone", MirrorOnly(new_step(cfg, "wm")), mirror_flops))
    if torch is not None:
        cases.append(Case("torch bp", new_step(cfg, "torch", torch), flops.step, library="torch"))
    return cases


def summarise(cases: list[Case], peak_gflops: float) -> dict[str, dict[str, Any]]:
    """Per case: best and median ms, GFLOP/s, fraction of peak, phases, ratio to torch and its target."""
    results = case_results(cases, peak_gflops)
    torch_case = next((c for c in cases if c.library == "torch"), None)
    for case in cases:
        res = results[case.key]
        if torch_case is not None and case.key in RULES:
            res["torch_ratio"] = case.best / torch_case.best
            if case.key in TORCH_TARGET_RULES:
                res["torch_target_met"] = res["torch_ratio"] <= TARGET_TORCH_RATIO
    by_key = {c.key: c for c in cases}
    if "wm" in by_key:
        amortised = amortised_mirror(by_key["wm mirror alone"].best)
        results["wm mirror overhead"] = {
            "mirror_alone_ms": by_key["wm mirror alone"].best * 1e3,
            "amortised_ms": amortised * 1e3,
            "amortised_share": amortised / (by_key["wm"].best - amortised),
        }
    return results


def print_results(cases: list[Case], results: dict[str, dict[str, Any]], cfg: ResnetConfig, peak: float) -> None:
    has_torch = any(c.library == "torch" for c in cases)
    rows = []
    for case in cases:
        res = results[case.key]
        ratio = f"{res['torch_ratio']:.2f}x" if "torch_ratio" in res else ""
        target = f"<={TARGET_TORCH_RATIO}x {mark(res['torch_target_met'])}" if "torch_target_met" in res else ""
        rows.append(
            [
                case.key,
                f"{res['best_ms']:.1f}",
                f"{res['median_ms']:.1f}",
                f"{res['gflops']:.1f}",
                f"{res['fraction_of_peak']:.1%}",
                ratio,
                target,
            ]
        )
    print(f"one training step, {cfg.describe()}, peak {peak:.1f} GFLOP/s")
    if has_torch:
        print("vs torch = minibp step time (this rule) / PyTorch BP step time (same network, CPU)")
    header = ["case", "best ms", "median ms", "GFLOP/s", "% peak", "vs torch", "torch target"]
    if not has_torch:
        header, rows = header[:-2], [row[:-2] for row in rows]
    print(table(header, rows, "<" + ">" * (len(header) - 1)))
    print()

    print_phases(
        cases,
        results,
        "where the time goes (ms per step, best block; wm's after_step averages its mirror pass over the block)",
        decimals=1,
    )

    wm = results.get("wm mirror overhead")
    if wm is not None:
        print(
            f"weight mirror, default settings: one mirror pass {wm['mirror_alone_ms']:.1f} ms, once per "
            f"{WeightMirror().every} steps = {wm['amortised_ms']:.1f} ms/step amortised "
            f"({wm['amortised_share']:+.1%} on the rest of a wm step)"
        )
        print()
    warn_if_diverged(cases)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=64, help="batch size N")
    p.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="resnet20",
        help="resnet20 (32x32x3 images) or lenet (28x28x1, the fashion-lenet preset's network)",
    )
    p.add_argument(
        "--width", type=int, default=None, help="channels of the first stage or conv (default 16: ResNet-20; 6: LeNet)"
    )
    p.add_argument(
        "--bn",
        choices=("before", "after"),
        default="before",
        help="batch-norm placement: 'before' the ReLU (standard ResNet) or 'after' it (the paper's variant)",
    )
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES), help="learning rules to time")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per case; the best block is the headline")
    p.add_argument(
        "--steps",
        type=int,
        default=4,
        help="training steps per timed block (a multiple of the weight mirror's every = 4\n"
        "puts the same number of mirror passes in every block)",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per case before timing")
    p.add_argument("--peak-size", type=int, default=2048, help="side of the square matmul that sets the peak rate")
    p.add_argument(
        "--settle",
        type=float,
        default=0.2,
        help="seconds to pause when switching between numpy and torch cases, so that the other\n"
        "library's idle threads (OpenBLAS workers spin ~0.1 s) stop competing for the cores",
    )
    p.add_argument("--profile-steps", type=int, default=3, help="steps to profile (0: no profiles)")
    p.add_argument("--profile-rule", choices=list(RULES), default="bp", help="the rule whose step is profiled")
    p.add_argument("--memory-runs", type=int, default=2, help="fresh processes per case for the peak memory (0: skip)")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch even if it is importable")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)  # internal: one memory measurement
    args = p.parse_args(argv)
    if args.width is None:
        args.width = MODELS[args.model][1]
    if min(args.batch, args.width, args.repeats, args.steps, args.peak_size) < 1:
        p.error("--batch, --width, --repeats, --steps and --peak-size must be positive")
    if min(args.warmup, args.settle, args.profile_steps, args.memory_runs) < 0:
        p.error("--warmup, --settle, --profile-steps and --memory-runs must be >= 0")
    args.rules = list(dict.fromkeys(args.rules))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = ResnetConfig.for_model(args.model, args.batch, args.width, args.bn)
    if args.memory_child is not None:
        print(json.dumps(memory_child(cfg, args.memory_child)))
        return 0

    info = machine()  # before torch is imported, which brings BLAS libraries of its own
    torch, torch_status = import_torch(not args.no_torch)
    print_machine(info)
    print(f"PyTorch: {torch_status}")
    print()
    load = background_load()
    print_background_load(load)
    print(cfg.describe())
    every = WeightMirror().every
    if "wm" in args.rules and args.steps % every:
        print(f"note: --steps {args.steps} is not a multiple of {every}: wm blocks hold unequal mirror passes")
    print()

    x, _ = cfg.batch_data()
    flops = FlopModel.of(cfg.build(), x)
    # at least 10 tries at the peak (about 0.1 s each on 2 cores): one slow try must not set it
    peak = measure_peak(args.peak_size, repeats=max(10, args.repeats))
    shapes = measure_step_matmuls(flops, repeats=max(5, min(args.repeats, 7)))
    floor = print_matmul_rates(peak, shapes, flops)
    mirror_m = WeightMirror().batch_size
    print(flops.describe(mirror_m))
    print()

    sanity: list[tuple[float, float]] = []
    if torch is not None:
        sanity = sanity_check(cfg, torch)
        print("sanity: the first steps' losses from the same initial weights and batch, minibp bp vs PyTorch")
        for i, (ours, theirs) in enumerate(sanity, start=1):
            print(f"  step {i}: minibp {ours:.6f}  torch {theirs:.6f}  |diff| {abs(ours - theirs):.2e}")
        print()

    cases = build_cases(cfg, args.rules, flops, torch)
    time_cases(cases, warmup=args.warmup, repeats=args.repeats, steps=args.steps, settle=args.settle)
    results = summarise(cases, peak.gflops)
    print_results(cases, results, cfg, peak.gflops)
    print(f"(the matmuls alone, in minibp's layouts, take {floor * 1e3:.1f} ms of a step)")
    print()

    mp: MinibpProfile | None = None
    tp: list[tuple[str, float, float]] | None = None
    if args.profile_steps:
        mp = profile_minibp(new_step(cfg, args.profile_rule), args.profile_steps)
        if torch is not None:
            time.sleep(args.settle)
            tp = profile_torch(torch, new_step(cfg, "torch", torch), args.profile_steps)
        print_profiles(mp, tp, args.profile_rule)

    memory: dict[str, dict[str, Any]] = {}
    if args.memory_runs:
        cases_run = [*args.rules, *(["torch"] if torch is not None else [])]
        memory = print_memory(measure_memory(cfg, cases_run, args.memory_runs))

    report = {
        "config": settings_of(args),
        "environment": {**info, **torch_report(torch), "background_load": load},
        "flops": {"layers": [asdict(g) for g in flops.layers], **flops.report(mirror_m)},
        "matmul": matmul_report(peak, shapes),
        "matmul_floor_ms": floor * 1e3,
        "peak_gflops": peak.gflops,
        "sanity_losses": sanity,
        "results": results,
        "memory": memory,
        "profile_minibp": None if mp is None else asdict(mp),
        "profile_torch": tp,
    }
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

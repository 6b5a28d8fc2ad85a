"""How many BLAS threads a training step should get: one thread against the library's count, quiet and busy.

A small network's matrix products take microseconds, less than it takes OpenBLAS's threads to
wake up and meet; on a machine whose other cores are busy those threads also wait for a core.
:mod:`minibp.threads` therefore gives a run one BLAS thread when its step's forward products
average below ``ONE_THREAD_BELOW`` multiply-adds per weight layer, and the library's own count
otherwise. This script
measures where that boundary lies:

1. for a range of models it times :func:`minibp.train_step` (BP) with BLAS limited to one thread
   and at the library's count (``threadpoolctl``), first with the machine as it is ("quiet") and
   then beside a busy process: a child Python that spins on one core (``while True: pass``), ended
   when the measurement ends and in any case after ``--busy-limit`` seconds. It prints each
   model's forward multiply-adds per step (``minibp.threads.forward_macs`` × batch), ms per step
   in the four settings, and the count ``minibp.threads.blas_threads_for`` picks;
2. ``minibp.train(TrainConfig(epochs=20))`` (the default MLP on digits) whole, beside the busy
   process and quiet, with the threads chosen automatically and with the library's count forced
   (``minibp.threads.ONE_THREAD_BELOW = 0``): the before and after of the change.

Run from the repository root::

    .venv/bin/python benchmarks/bench_threads.py                      # every model, about a minute on 2 cores
    .venv/bin/python benchmarks/bench_threads.py --models mlp-digits resnet20-digits --repeats 2
    .venv/bin/python benchmarks/bench_threads.py --no-train --json threads.json

Each setting is timed in ``--repeats`` blocks of about ``--block-seconds`` each, the settings
interleaved block by block; the best block's mean step time is reported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    MinibpStep,
    background_load,
    machine,
    make_step,
    others_load,
    print_machine,
    settings_of,
    table,
    write_json,
)
from threadpoolctl import threadpool_info, threadpool_limits

import minibp
import minibp.threads
from minibp.data import load_digits
from minibp.models import lenet, resnet20

LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-3  # the rule is BP: the step's cost does not depend on them


@dataclass(frozen=True)
class Model:
    """A network, its input and the batch size of one step."""

    key: str
    label: str
    build: Callable[[], minibp.Network]
    batch: int
    data: str  # "digits" (flat or images, by the network) or "random"
    input_shape: tuple[int, ...]


def _mlp(sizes: list[int]) -> Callable[[], minibp.Network]:
    return lambda: minibp.mlp(sizes, "relu", seed=0)


MODELS: tuple[Model, ...] = (
    Model("mlp-digits", "MLP 64-256-256-10, digits (the default job)", _mlp([64, 256, 256, 10]), 32, "digits", (64,)),
    Model("mlp-digits-256", "the same MLP, batch 256", _mlp([64, 256, 256, 10]), 256, "digits", (64,)),
    Model("mlp-digits-512", "the same MLP, batch 512", _mlp([64, 256, 256, 10]), 512, "digits", (64,)),
    Model("mlp-digits-1024", "the same MLP, batch 1024", _mlp([64, 256, 256, 10]), 1024, "digits", (64,)),
    Model("lenet-digits", "LeNet (cnn), 8x8 digits", lambda: lenet((1, 8, 8), 10, seed=0), 32, "digits", (1, 8, 8)),
    Model(
        "resnet20-digits-16",
        "ResNet-20 width 16, 8x8 digits, batch 16",
        lambda: resnet20((1, 8, 8), 10, width=16, seed=0),
        16,
        "digits",
        (1, 8, 8),
    ),
    Model(
        "resnet20-digits",
        "ResNet-20 width 16, 8x8 digits",
        lambda: resnet20((1, 8, 8), 10, width=16, seed=0),
        64,
        "digits",
        (1, 8, 8),
    ),
    Model(
        "resnet20-digits-256",
        "ResNet-20 width 16, 8x8 digits, batch 256",
        lambda: resnet20((1, 8, 8), 10, width=16, seed=0),
        256,
        "digits",
        (1, 8, 8),
    ),
    Model("mlp-wide", "MLP 784-1000-1000-10, random data", _mlp([784, 1000, 1000, 10]), 128, "random", (784,)),
    Model(
        "resnet20-32",
        "ResNet-20 width 16, 3x32x32 random data",
        lambda: resnet20((3, 32, 32), 10, width=16, seed=0),
        64,
        "random",
        (3, 32, 32),
    ),
)
BY_KEY = {m.key: m for m in MODELS}
#: how a whole run's thread count is chosen: by minibp.threads, or the BLAS library's count kept
THREAD_CHOICES = ("minibp", "library")


def library_threads() -> int:
    """The BLAS library's own thread count (NumPy's BLAS, as threadpoolctl sees it)."""
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else 1


def batch_for(model: Model) -> tuple[np.ndarray, np.ndarray]:
    if model.data == "digits":
        digits = load_digits(flatten=len(model.input_shape) == 1)
        x, y = digits.x_train, digits.y_train
        take = np.resize(np.arange(len(x)), model.batch)  # batches beyond the 1,437 examples repeat them
        return np.ascontiguousarray(x[take], dtype=np.float32), y[take]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((model.batch, *model.input_shape), dtype=np.float32)
    return x, rng.integers(0, 10, model.batch)


def picked_threads(step: MinibpStep, batch: int) -> int:
    """The BLAS threads ``minibp.threads.blas_threads_for`` gives a run of this model and batch size."""
    with minibp.threads.blas_threads_for(step.net, step.x[:1], batch):
        return library_threads()


# --------------------------------------------------------------------------- the busy process


@contextmanager
def busy_core(limit_s: float) -> Iterator[subprocess.Popen[bytes]]:
    """A child Python spinning on one core for the duration of the ``with`` (and never more than ``limit_s``)."""
    code = f"import time\nend = time.monotonic() + {limit_s}\nwhile time.monotonic() < end:\n    pass\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)  # let it start spinning
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- step timings


@dataclass
class Setting:
    """One model at one thread count under one load: its steps and the blocks timed."""

    model: Model
    step: MinibpStep
    threads: int
    steps_per_block: int
    blocks: list[float]

    def time_block(self) -> None:
        with threadpool_limits(limits=self.threads, user_api="blas"):
            self.step()  # the first step after a change of thread count wakes the threads
            t0 = time.perf_counter()
            for _ in range(self.steps_per_block):
                self.step()
            self.blocks.append((time.perf_counter() - t0) / self.steps_per_block)


def steps_per_block(step: MinibpStep, threads: int, block_s: float) -> int:
    """Steps that take about ``block_s`` seconds, from a warm-up and one timed step at ``threads``."""
    with threadpool_limits(limits=threads, user_api="blas"):
        step()
        t0 = time.perf_counter()
        step()
        seconds = time.perf_counter() - t0
    return int(np.clip(round(block_s / max(seconds, 1e-6)), 1, 2000))


def time_settings(settings: list[Setting], repeats: int, label: str) -> float | None:
    """``repeats`` rounds of one block per setting, interleaved; returns the share of the CPUs other processes
    used meanwhile (the busy process included)."""
    t0 = time.perf_counter()
    with others_load() as seen:
        for _ in range(repeats):
            for s in settings:
                s.time_block()
    load = "" if seen["load"] is None else f"; other processes used {seen['load']:.0%} of the CPUs"
    print(
        f"  {label}: {len(settings)} settings x {repeats} blocks in {time.perf_counter() - t0:.1f} s{load}", flush=True
    )
    return seen["load"]


def wait_for_quiet(below: float, max_wait: float) -> float | None:
    """Wait until other processes use less than ``below`` of the CPUs (1-second samples), at most ``max_wait``
    seconds; returns the last sample."""
    deadline = time.monotonic() + max_wait
    load = background_load(1.0)
    while load is not None and load >= below and time.monotonic() < deadline:
        load = background_load(1.0)
    return load


@contextmanager
def load_for(kind: str, args: argparse.Namespace) -> Iterator[None]:
    """The machine as it is, after waiting a while for other processes to go quiet ("quiet"), or beside a
    process that spins on one core ("busy")."""
    if kind == "busy":
        with busy_core(args.busy_limit):
            yield
        return
    load = wait_for_quiet(args.quiet_below, args.quiet_wait)
    if load is not None and load >= args.quiet_below:
        print(f"  note: other processes still use {load:.0%} of the CPUs after {args.quiet_wait:g} s: not quiet")
    yield


def measure_steps(models: Sequence[Model], args: argparse.Namespace, counts: tuple[int, ...]) -> dict[str, Any]:
    """ms per step of every model at every thread count in ``counts``, quiet and (unless ``--no-busy``) busy."""
    steps = {}
    for model in models:
        x, y = batch_for(model)
        step = make_step(model.build(), "bp", x, y, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, phases=False)
        steps[model.key] = step
    loads = ["quiet", *([] if args.no_busy else ["busy"])]
    found: dict[tuple[str, str, int], float] = {}
    others: dict[str, float | None] = {}
    for load in loads:
        with load_for(load, args):
            settings = [
                Setting(m, steps[m.key], n, steps_per_block(steps[m.key], n, args.block_seconds), [])
                for m in models
                for n in counts
            ]
            others[load] = time_settings(settings, args.repeats, load)
        for s in settings:
            found[(s.model.key, load, s.threads)] = min(s.blocks)
    rows = []
    for model in models:
        step = steps[model.key]
        row: dict[str, Any] = {
            "model": model.key,
            "label": model.label,
            "batch": model.batch,
            "forward_macs": minibp.threads.forward_macs(step.net, step.x[:1]) * model.batch,
            "weight_layers": len(step.net.weight_layers),
            "picked_threads": picked_threads(step, model.batch),
            "ms": {f"{load}_{n}": found[(model.key, load, n)] * 1e3 for load in loads for n in counts},
            "loss_finite": bool(np.isfinite(step.loss)),
        }
        rows.append(row)
    return {"rows": rows, "others_load": others}


def print_steps(steps: dict[str, Any], counts: tuple[int, ...]) -> None:
    rows = sorted(steps["rows"], key=lambda r: r["forward_macs"])
    loads = sorted({k.split("_")[0] for k in rows[0]["ms"]}, key=["quiet", "busy"].index)
    header = ["model", "batch", "fwd MACs/step", "per layer"]
    header += [f"{load} {n} thr ms" for load in loads for n in counts]
    header += [f"{load} {counts[-1]}/{counts[0]}" for load in loads] + ["minibp picks"]
    out = []
    for r in rows:
        ms = r["ms"]
        per_layer = r["forward_macs"] / r["weight_layers"]
        row = [r["model"], str(r["batch"]), f"{r['forward_macs'] / 1e6:.1f} M", f"{per_layer / 1e6:.1f} M"]
        row += [f"{ms[f'{load}_{n}']:.2f}" for load in loads for n in counts]
        row += [f"{ms[f'{load}_{counts[-1]}'] / ms[f'{load}_{counts[0]}']:.2f}" for load in loads]
        out.append([*row, str(r["picked_threads"])])
    print()
    n, one = counts[-1], counts[0]
    print(f"ms per training step (BP, best block) at {one} BLAS thread and at the library's {n};")
    print(f"'{n}/{one}' = the time at {n} threads / the time at {one} (above 1: one thread is faster);")
    print("'per layer' = the forward multiply-adds per step / the weight layers (dense and convolutions)")
    print(table(header, out, "<" + ">" * (len(header) - 1)))
    for load, share in steps["others_load"].items():
        if share is not None:
            print(f"while timing '{load}', other processes used {share:.0%} of the CPUs")
    below = minibp.threads.ONE_THREAD_BELOW
    print(f"minibp.threads.ONE_THREAD_BELOW = {below / 1e6:g} M forward multiply-adds per weight layer")
    print()


# --------------------------------------------------------------------------- a whole run


@contextmanager
def forced_library_threads(force: bool) -> Iterator[None]:
    """With ``force``, ``minibp.threads`` keeps the library's thread count for every run (the old behaviour)."""
    saved = minibp.threads.ONE_THREAD_BELOW
    if force:
        minibp.threads.ONE_THREAD_BELOW = 0
    try:
        yield
    finally:
        minibp.threads.ONE_THREAD_BELOW = saved


def time_training(epochs: int, force: bool) -> float:
    """Wall seconds of ``minibp.train(TrainConfig(epochs=epochs))`` (default MLP on digits), no output folder."""
    with forced_library_threads(force):
        t0 = time.perf_counter()
        minibp.train(minibp.TrainConfig(epochs=epochs), progress=False)
        return time.perf_counter() - t0


def measure_training(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The whole run, threads chosen by minibp against the library's count kept, busy and quiet, interleaved."""
    runs = []
    for load in [*([] if args.no_busy else ["busy"]), "quiet"]:
        with load_for(load, args):
            for _ in range(args.train_repeats):
                for choice in THREAD_CHOICES:
                    with others_load() as seen:
                        seconds = time_training(args.train_epochs, force=choice == "library")
                    runs.append({"load": load, "threads": choice, "seconds": seconds, "others_load": seen["load"]})
                    others = "" if seen["load"] is None else f" (other processes: {seen['load']:.0%} of the CPUs)"
                    print(f"  {load}, threads chosen by {choice}: {seconds:.2f} s{others}", flush=True)
    return runs


def print_training(runs: list[dict[str, Any]], epochs: int) -> None:
    print()
    print(f"minibp.train(TrainConfig(epochs={epochs})), the default MLP on digits: seconds for the whole run")
    print("(best of the runs; 'library' = ONE_THREAD_BELOW set to 0, so the run keeps the BLAS library's count)")
    rows = []
    for load in dict.fromkeys(r["load"] for r in runs):
        seconds = {t: [r["seconds"] for r in runs if r["load"] == load and r["threads"] == t] for t in THREAD_CHOICES}
        auto, library = min(seconds["minibp"]), min(seconds["library"])
        every = [" ".join(f"{v:.2f}" for v in seconds[t]) for t in THREAD_CHOICES]
        rows.append([load, f"{auto:.2f}", f"{library:.2f}", f"{library / auto:.2f}x", *every])
    header = ["load", "minibp's choice s", "library's count s", "library / minibp", "runs (minibp)", "runs (library)"]
    print(table(header, rows, "<>>>>>"))
    print()


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", choices=list(BY_KEY), default=list(BY_KEY), help="models to time")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks per setting; the best is reported")
    p.add_argument("--block-seconds", type=float, default=0.3, help="about this long per timed block")
    p.add_argument("--no-busy", action="store_true", help="time on the machine as it is only, no busy process")
    p.add_argument(
        "--quiet-below",
        type=float,
        default=0.15,
        help="before the quiet timings, wait for other processes to use less than this share of the CPUs",
    )
    p.add_argument("--quiet-wait", type=float, default=120, help="wait at most this many seconds for that")
    p.add_argument("--busy-limit", type=float, default=600, help="the busy process ends after this many seconds")
    p.add_argument("--no-train", action="store_true", help="skip the whole minibp.train runs")
    p.add_argument("--train-epochs", type=int, default=20, help="epochs of the whole run")
    p.add_argument("--train-repeats", type=int, default=2, help="whole runs per setting; the best is reported")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if min(args.repeats, args.train_epochs, args.train_repeats) < 1 or min(args.block_seconds, args.busy_limit) <= 0:
        p.error("--repeats, --train-epochs and --train-repeats must be >= 1, --block-seconds and --busy-limit > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print_machine(info)
    print()
    counts = tuple(sorted({1, library_threads()}))
    if counts == (1,):
        print("note: the BLAS library runs one thread here, so there is nothing to compare")
    models = [BY_KEY[k] for k in args.models]
    print(f"timing {len(models)} models at {' and '.join(map(str, counts))} BLAS thread(s)")
    steps = measure_steps(models, args, counts)
    print_steps(steps, counts)
    runs: list[dict[str, Any]] = []
    if not args.no_train:
        print(f"whole runs: minibp.train(TrainConfig(epochs={args.train_epochs}), progress=False)")
        runs = measure_training(args)
        print_training(runs, args.train_epochs)
    report = {
        "config": settings_of(args),
        "environment": info,
        "one_thread_below": minibp.threads.ONE_THREAD_BELOW,
        "steps": steps["rows"],
        "others_load_during_steps": steps["others_load"],
        "train_runs": runs,
    }
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark minibp on a CUDA GPU (CuPy) in one short run, within its own time budget.

1. runs ``pytest -m gpu -q tests/test_gpu.py`` and reports pass/fail;
2. times one training step of ResNet-18 (224×224, 1000 classes, batch 128, float32) under each rule
   (:func:`minibp.train_step`: forward, loss, backward, ``SGD.step``, ``rule.after_step`` with the
   weight mirror's mirror pass every ``every`` steps), in images per second, with TF32 off and on: CuPy reads
   ``CUPY_TF32`` once per process, so each setting runs in a child process of this script;
3. the weight mirror's mirror work as a share of BP's step: one pass timed alone and amortised over
   ``every`` steps, and measured directly as WM's step against BP's;
4. where PyTorch is importable, the same ResNet-18 (minibp's initial weights) in PyTorch eager on the
   GPU with the same TF32 setting, and the throughput ratio minibp / PyTorch;
5. whether ResNet-50 trains at batch 128 (a fresh process; the bytes CuPy's memory pool holds after
   two steps, which is at least the peak in use, against 80 GB);
6. prints a table and writes the results as JSON (``--json``; ``$OUT/bench_gpu.json`` where ``$OUT`` is set).

Run from the repository root on the GPU machine::

    PYTHONUNBUFFERED=1 python3 benchmarks/bench_gpu.py

Without CuPy or a GPU it says so and exits 0. ``--cpu-smoke`` runs every code path on the NumPy
backend at tiny sizes (and PyTorch on the CPU), to check the script on any machine. It shares
``common.py`` (the step, timing, the machine, tables) and ``torch_twin.py`` (the PyTorch twin of a
network) with the other benchmarks.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, MinibpStep, machine, make_step, mark, table, time_blocks
from torch_twin import TorchStep

from minibp import RULES, set_backend
from minibp.models import resnet18, resnet50
from minibp.rules import WeightMirror

LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
TORCH_TARGET_RULES = ("bp", "kp")
TARGET_TORCH_RATIO = 0.5  # bp, kp: minibp's throughput >= 0.5 x PyTorch's
TARGET_MIRROR_SHARE = 0.25  # wm: the mirror adds <= 25 % to BP's step
TARGET_MEMORY_BYTES = 80e9  # ResNet-50 at batch 128 fits in 80 GB


@dataclass(frozen=True)
class Sizes:
    """The shapes of a run: the full benchmark, or tiny ones for ``--cpu-smoke``."""

    batch: int = 128
    image: int = 224
    classes: int = 1000
    width: int = 64
    r50_batch: int = 128
    r50_width: int = 64


FULL = Sizes()
SMOKE = Sizes(batch=2, image=32, classes=10, width=4, r50_batch=2, r50_width=2)


# --------------------------------------------------------------------------- the device


class Device:
    """The array module, how to wait for it, and what it is (CuPy on a GPU, or NumPy for the smoke run)."""

    def __init__(self, cpu_smoke: bool) -> None:
        self.xp = set_backend("numpy" if cpu_smoke else "cupy")
        self.gpu = not cpu_smoke

    def sync(self) -> None:
        if self.gpu:
            self.xp.cuda.Device().synchronize()

    def describe(self) -> dict[str, Any]:
        if not self.gpu:
            return {"backend": "numpy", "device": "cpu"}
        rt = self.xp.cuda.runtime
        props = rt.getDeviceProperties(self.xp.cuda.Device().id)
        name = props["name"]
        return {
            "backend": "cupy",
            "cupy": self.xp.__version__,
            "device": name.decode() if isinstance(name, bytes) else str(name),
            "memory_bytes": int(props["totalGlobalMem"]),
            "cuda_runtime": rt.runtimeGetVersion(),
            "cuda_driver": rt.driverGetVersion(),
            "CUPY_TF32": os.environ.get("CUPY_TF32", ""),
        }

    def pool_bytes(self) -> dict[str, int]:
        """Bytes in use and held by CuPy's memory pool (NumPy: tracemalloc's current and peak)."""
        if self.gpu:
            pool = self.xp.get_default_memory_pool()
            free, total = self.xp.cuda.runtime.memGetInfo()
            return {
                "used_bytes": int(pool.used_bytes()),
                "held_bytes": int(pool.total_bytes()),
                "device_free_bytes": int(free),
                "device_total_bytes": int(total),
            }
        current, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
        return {"used_bytes": int(current), "held_bytes": int(peak)}

    def release(self) -> None:
        gc.collect()
        if self.gpu:
            self.xp.get_default_memory_pool().free_all_blocks()


def batch(dev: Device, sizes: Sizes, n: int) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """A random batch on the host and its copy on the device."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3, sizes.image, sizes.image), dtype=np.float32)
    y = rng.integers(0, sizes.classes, n)
    return dev.xp.asarray(x), dev.xp.asarray(y), x, y


def minibp_step(net: Any, rule: str, x: Any, y: Any) -> MinibpStep:
    """:func:`minibp.train_step` of ``net`` under ``rule`` on ``(x, y)``, nothing read back to the host."""
    return make_step(net, rule, x, y, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, phases=False)


def time_case(run: Callable[[], object], sync: Callable[[], None], args: argparse.Namespace) -> dict[str, float]:
    """``args.warmup`` untimed calls, then ``args.repeats`` blocks of ``args.steps``: the best and the median."""
    return time_blocks(run, warmup=args.warmup, repeats=args.repeats, steps=args.steps, sync=sync)


# --------------------------------------------------------------------------- children


class Progress:
    """The child's results, rewritten to its JSON file after each case so that a timeout keeps them."""

    def __init__(self, path: Path, deadline: float) -> None:
        self.path, self.deadline, self.data = path, deadline, {}

    def save(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=1))

    def time_left(self) -> float:
        return self.deadline - time.time()


def set_torch_precision(torch: Any, tf32: bool) -> dict[str, Any]:
    """PyTorch's TF32 switches for matmuls and cuDNN convolutions, as the brief asks; returns them read back."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer PyTorch prefers fp32_precision but honours these
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
        return {
            "matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "cudnn.benchmark": True,
        }


def child_steps(args: argparse.Namespace, sizes: Sizes, progress: Progress) -> None:
    """ResNet-18 steps under each rule, one mirror pass alone, and PyTorch's step, at one TF32 setting."""
    dev = Device(args.cpu_smoke)
    progress.save("device", dev.describe())
    shape = (3, sizes.image, sizes.image)
    x, y, x_host, y_host = batch(dev, sizes, sizes.batch)
    for rule in args.rules:
        if progress.time_left() < 20:
            progress.save(rule, {"skipped": "out of time"})
            continue
        step = minibp_step(resnet18(shape, sizes.classes, width=sizes.width), rule, x, y)
        step()
        first_loss = step.loss
        res = time_case(step, dev.sync, args)
        res.update(first_loss=first_loss, last_loss=step.loss, **dev.pool_bytes())
        if rule == "wm" and progress.time_left() > 10:
            mirror = step.rule
            assert isinstance(mirror, WeightMirror)
            res["mirror_alone"] = time_case(lambda m=mirror, n=step.net: m.mirror(n), dev.sync, args)
            res["every"], res["mirror_batches"] = mirror.every, mirror.batches
        progress.save(rule, res)
        print(f"  {rule}: {res['best_s'] * 1e3:.1f} ms/step (warm-up {res['warmup_s']:.1f} s)", flush=True)
        del step
        dev.release()
    if args.no_torch or progress.time_left() < 20:
        progress.save("torch", {"skipped": "--no-torch" if args.no_torch else "out of time"})
        return
    try:
        import torch
    except ImportError:
        progress.save("torch", {"skipped": "PyTorch is not importable"})
        return
    device = "cuda" if dev.gpu else "cpu"
    precision = set_torch_precision(torch, args.tf32) if dev.gpu else {}
    set_backend("numpy")  # the twin copies minibp's initial weights from host arrays
    net = resnet18(shape, sizes.classes, width=sizes.width)
    twin = TorchStep(torch, net, x_host, y_host, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, device=device)
    set_backend("numpy" if args.cpu_smoke else "cupy")
    sync = torch.cuda.synchronize if dev.gpu else (lambda: None)
    twin()
    first_loss = twin.loss
    res = time_case(twin, sync, args)
    res.update(first_loss=first_loss, torch=torch.__version__, device=device, precision=precision)
    progress.save("torch", res)
    print(f"  torch bp: {res['best_s'] * 1e3:.1f} ms/step", flush=True)


def child_memory(args: argparse.Namespace, sizes: Sizes, progress: Progress) -> None:
    """ResNet-50 at batch ``r50_batch``: two steps under BP and KP (KP keeps B, its gradient and momentum too)."""
    dev = Device(args.cpu_smoke)
    progress.save("device", dev.describe())
    shape = (3, sizes.image, sizes.image)
    for rule in ("bp", "kp"):
        if progress.time_left() < 15:
            progress.save(rule, {"skipped": "out of time"})
            continue
        dev.release()
        if not dev.gpu:
            tracemalloc.start()
        x, y, _, _ = batch(dev, sizes, sizes.r50_batch)
        try:
            step = minibp_step(resnet50(shape, sizes.classes, width=sizes.r50_width), rule, x, y)
            params = sum(
                int(p.size) * p.dtype.itemsize for layer in step.net.param_layers for p in layer.params.values()
            )
            t0 = time.perf_counter()
            for _ in range(2):
                step()
            dev.sync()
            res = {"fits": True, "two_steps_s": time.perf_counter() - t0, "param_bytes": params, **dev.pool_bytes()}
            res["loss"] = step.loss
        except Exception as err:  # CuPy's OutOfMemoryError above all
            res = {"fits": False, "error": f"{type(err).__name__}: {err}"}
        finally:
            if not dev.gpu:
                tracemalloc.stop()
        progress.save(rule, res)
        step = x = y = None
        dev.release()
        held = res.get("held_bytes", 0) / 1e9
        print(f"  resnet50 {rule}: fits {res['fits']}, pool holds {held:.2f} GB", flush=True)


# --------------------------------------------------------------------------- the parent


def run_child(kind: str, args: argparse.Namespace, tf32: bool, seconds: float, out_dir: Path) -> dict[str, Any]:
    """This script as a child process (``--child kind``) with ``CUPY_TF32`` set; its JSON, however it ended."""
    path = out_dir / f"child_{kind}_tf32_{int(tf32)}.json"
    path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--child-json", str(path)]
    cmd += ["--deadline", str(time.time() + seconds - 5), "--rules", *args.rules, "--tf32", str(int(tf32))]
    cmd += ["--warmup", str(args.warmup), "--steps", str(args.steps), "--repeats", str(args.repeats)]
    cmd += ["--cpu-smoke"] * args.cpu_smoke + ["--no-torch"] * args.no_torch
    env = {**os.environ, "CUPY_TF32": "1" if tf32 else "0", "PYTHONUNBUFFERED": "1"}
    print(f"[{kind}, TF32 {'on' if tf32 else 'off'}] up to {seconds:.0f} s", flush=True)
    status: dict[str, Any] = {}
    try:
        proc = subprocess.run(cmd, env=env, timeout=seconds, check=False)
        status["returncode"] = proc.returncode
    except subprocess.TimeoutExpired:
        status["error"] = f"timed out after {seconds:.0f} s"
    result = json.loads(path.read_text()) if path.exists() else {}
    return {**result, **({"status": status} if status.get("returncode") or "error" in status else {})}


def run_tests(seconds: float) -> dict[str, Any]:
    """``pytest -m gpu -q tests/test_gpu.py`` (TF32 off); its summary line and exit code."""
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"]
    env = {k: v for k, v in os.environ.items() if k != "CUPY_TF32"}
    print(f"[tests] {' '.join(cmd[1:])} (up to {seconds:.0f} s)", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=seconds, capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired as err:
        out = err.stdout or ""
        tail = (out.decode(errors="replace") if isinstance(out, bytes) else out)[-3000:]
        print(tail, flush=True)
        return {"passed": False, "summary": f"timed out after {seconds:.0f} s", "tail": tail}
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    print(proc.stdout[-3000:], flush=True)
    # exit 0: all passed or skipped; 1: a failure; 5: nothing collected
    seconds = time.perf_counter() - t0
    return {"passed": proc.returncode == 0, "returncode": proc.returncode, "summary": summary, "seconds": seconds}


def summarise(steps: dict[str, Any], sizes: Sizes, rules: Sequence[str]) -> dict[str, Any]:
    """Images per second, the ratio to PyTorch and the mirror's share, from a child's timings."""
    out: dict[str, Any] = {}
    torch_s = steps.get("torch", {}).get("best_s")
    for rule in rules:
        res = steps.get(rule, {})
        if "best_s" not in res:
            continue
        row = {"ms_per_step": res["best_s"] * 1e3, "images_per_s": sizes.batch / res["best_s"]}
        if torch_s:
            row["vs_torch"] = torch_s / res["best_s"]  # throughput ratio minibp / PyTorch
            if rule in TORCH_TARGET_RULES:
                row["torch_target_met"] = row["vs_torch"] >= TARGET_TORCH_RATIO
        out[rule] = row
    if torch_s:
        out["torch"] = {"ms_per_step": torch_s * 1e3, "images_per_s": sizes.batch / torch_s}
    wm, bp = steps.get("wm", {}), steps.get("bp", {})
    if "mirror_alone" in wm and "best_s" in bp:
        amortised = wm["mirror_alone"]["best_s"] * wm["mirror_batches"] / wm["every"]
        out["wm_mirror"] = {
            "mirror_pass_ms": wm["mirror_alone"]["best_s"] * 1e3,
            "amortised_share_of_bp": amortised / bp["best_s"],
            "direct_share_of_bp": wm["best_s"] / bp["best_s"] - 1,
        }
        out["wm_mirror"]["target_met"] = out["wm_mirror"]["amortised_share_of_bp"] <= TARGET_MIRROR_SHARE
    return out


def print_report(report: dict[str, Any], rules: Sequence[str]) -> None:
    tests = report["tests"]
    verdict = "skipped" if "skipped" in tests else "PASS" if tests.get("passed") else "FAIL"
    print(f"\nGPU tests: {verdict}  ({tests.get('summary', tests.get('skipped', ''))})")
    for setting in ("tf32_off", "tf32_on"):
        summary = report.get(setting, {}).get("summary", {})
        rows = []
        for key in [*rules, "torch"]:
            row = summary.get(key)
            if row is None:
                continue
            vs = f"{row['vs_torch']:.2f}x" if "vs_torch" in row else ""
            target = f">={TARGET_TORCH_RATIO}x {mark(row['torch_target_met'])}" if "torch_target_met" in row else ""
            rows.append([key, f"{row['ms_per_step']:.1f}", f"{row['images_per_s']:.0f}", vs, target])
        if setting not in report:
            continue
        print(f"\nResNet-18 training step, batch {report['sizes']['batch']}, float32, TF32 {setting[5:]}:")
        print(table(["case", "ms/step", "images/s", "vs torch", "target"], rows, "<>>>>") if rows else "  (no result)")
        losses = {k: report[setting].get(k, {}).get("first_loss") for k in ("bp", "torch")}
        if None not in losses.values():
            print(f"first step's loss from the same weights: minibp bp {losses['bp']:.5f}, torch {losses['torch']:.5f}")
        wm = summary.get("wm_mirror")
        if wm:
            print(
                f"weight mirror: one pass {wm['mirror_pass_ms']:.1f} ms = "
                f"{wm['amortised_share_of_bp']:+.1%} of BP's step amortised over `every` steps "
                f"(target <= {TARGET_MIRROR_SHARE:.0%}: {mark(wm['target_met'])}); "
                f"WM's step vs BP's: {wm['direct_share_of_bp']:+.1%}"
            )
    mem = report.get("resnet50_memory", {})
    for rule in ("bp", "kp"):
        res = mem.get(rule)
        if res and "fits" in res:
            held = res.get("held_bytes", 0)
            ok = res["fits"] and held <= TARGET_MEMORY_BYTES
            print(
                f"ResNet-50, batch {report['sizes']['r50_batch']}, {rule}: "
                f"{'trains' if res['fits'] else 'does not fit: ' + res.get('error', '')}; pool holds "
                f"{held / 1e9:.2f} GB, in use {res.get('used_bytes', 0) / 1e9:.2f} GB "
                f"(target <= {TARGET_MEMORY_BYTES / 1e9:.0f} GB: {mark(ok)})"
            )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES), help="learning rules to time")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per case (CuPy compiles its kernels here)")
    p.add_argument("--steps", type=int, default=4, help="steps per timed block (a multiple of WM's every = 4)")
    p.add_argument("--repeats", type=int, default=2, help="timed blocks per case; the best is reported")
    p.add_argument("--budget", type=float, default=420, help="seconds for the whole run, children included")
    p.add_argument("--test-seconds", type=float, default=150, help="at most this long for the GPU tests")
    p.add_argument("--no-tests", action="store_true", help="skip the GPU tests")
    p.add_argument("--no-tf32", action="store_true", help="time with TF32 off only")
    p.add_argument("--no-memory", action="store_true", help="skip the ResNet-50 memory check")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch even if it is importable")
    p.add_argument("--cpu-smoke", action="store_true", help="NumPy backend, tiny shapes: check the script anywhere")
    default_json = Path(os.environ["OUT"]) / "bench_gpu.json" if os.environ.get("OUT") else None
    p.add_argument("--json", type=Path, default=default_json, metavar="PATH", help="write the results here")
    p.add_argument("--child", choices=("steps", "memory"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-json", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--tf32", type=int, choices=(0, 1), default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.steps, args.repeats) < 1 or args.warmup < 0:
        p.error("--steps and --repeats must be >= 1, --warmup >= 0")
    args.rules = list(dict.fromkeys(args.rules))
    args.tf32 = bool(args.tf32)
    return args


def cupy_missing() -> str | None:
    """Why the GPU benchmark cannot run here, or ``None``."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no CUDA GPU"
    except Exception as err:
        return f"CuPy found no usable CUDA GPU ({type(err).__name__}: {err})"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.cpu_smoke else FULL
    if args.child is not None:
        progress = Progress(args.child_json, args.deadline or time.time() + 600)
        (child_steps if args.child == "steps" else child_memory)(args, sizes, progress)
        return 0

    start = time.time()
    report: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items()}, "sizes": asdict(sizes)}
    report["environment"] = machine()
    why = None if args.cpu_smoke else cupy_missing()
    if why is not None:
        print(f"bench_gpu: {why}: nothing to measure here (use --cpu-smoke to check the script on NumPy)")
        report["skipped"] = why
    else:

        def left() -> float:
            return args.budget - (time.time() - start)

        tests_s = max(30.0, min(args.test_seconds, left() / 3))
        report["tests"] = {"skipped": "--no-tests"} if args.no_tests else run_tests(tests_s)
        out_dir = args.json.parent if args.json is not None else Path(os.environ.get("TMPDIR", "/tmp"))
        out_dir.mkdir(parents=True, exist_ok=True)
        phases = [("steps", False), *([] if args.no_tf32 else [("steps", True)])]
        phases += [] if args.no_memory else [("memory", False)]
        for i, (kind, tf32) in enumerate(phases):
            # an equal share of what is left; a phase that ends early leaves its time to the next
            result = run_child(kind, args, tf32, max(30.0, left() / (len(phases) - i)), out_dir)
            if kind == "memory":
                report["resnet50_memory"] = result
            else:
                report[f"tf32_{'on' if tf32 else 'off'}"] = {**result, "summary": summarise(result, sizes, args.rules)}
        report["seconds"] = time.time() - start
        print_report(report, args.rules)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Data-parallel training (:mod:`minibp.parallel`): what N ranks cost and gain, measured and modelled.

Three parts, each printed as a table:

1. ``speed``: ResNet-20 training steps (:func:`minibp.train_step`, random 3×32×32 images) on 1 and
   2 ranks under ``mpiexec``, one BLAS thread per rank. Strong scaling keeps the global batch
   (``--batch``) and splits it; weak scaling gives every rank ``--batch`` examples. Reported: steps
   per second, images per second, the scaling efficiency (images/s on N ranks over N times one
   rank's), the seconds per step spent in the gradient all-reduce (packing, the MPI call and
   unpacking, timed inside :class:`~minibp.parallel.MPIGroup`), and the bytes each rank hands to
   it per step (every gradient once, in float32; a ring all-reduce sends ``2 (N−1)/N`` times that).
2. ``equality``: for every rule, one epoch of digits on 2 ranks against one process with the same
   global batch, the largest difference of any trained array relative to its largest entry (the
   MLP and LeNet in float32; ResNet-20 with ``--sync-bn`` in float64).
3. ``cost``: a model of one ResNet-50 step on 8, 64 and 256 GPUs: the ring all-reduce of every
   gradient (``2 (N−1)/N · S / bandwidth + 2 (N−1) · latency``, Patarasuk & Yuan 2009) over NVLink
   within a node and InfiniBand between nodes, against the step's compute at a given images/s per
   GPU. The multiply-adds come from minibp's own ResNet-50; bandwidths are the vendors' figures
   (see ``BANDWIDTHS``); the per-GPU rates are inputs (``--gpu-rates``), since minibp's own rate on
   a GPU has not been measured.

Run from the repository root (with the ``mpi`` extra installed)::

    .venv/bin/python benchmarks/bench_parallel.py                 # all three parts, about 3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_parallel.py speed --steps 10
    .venv/bin/python benchmarks/bench_parallel.py cost --gpu-rates 1000 3000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, machine, table

from minibp.losses import get_loss
from minibp.models import resnet20, resnet50
from minibp.optim import SGD
from minibp.rules import RULES, get_rule
from minibp.step import train_step

MPIEXEC = Path(sys.executable).parent / "mpiexec"

#: link bandwidths per GPU and direction, in bytes per second, and the latency assumed per ring step
BANDWIDTHS = {
    # NVIDIA H100 SXM5 datasheet: fourth-generation NVLink, 900 GB/s per GPU (both directions together)
    "NVLink 4 (H100 SXM, within a node)": (450e9, 2e-6),
    # NVIDIA DGX H100: one ConnectX-7 NDR InfiniBand port of 400 Gb/s per GPU
    "InfiniBand NDR 400 Gb/s (one port per GPU)": (50e9, 5e-6),
}
GPUS_PER_NODE = 8


# --------------------------------------------------------------------------- speed


def worker(args: argparse.Namespace) -> None:
    """One rank of the speed measurement (run under mpiexec); rank 0 prints a JSON line."""
    from minibp.parallel import world  # noqa: PLC0415

    group = world(transport="mpi" if args.ranks_hint > 1 else "auto")
    per_rank = args.batch // group.size if args.scaling == "strong" else args.batch
    rng = np.random.default_rng(group.rank)
    x = rng.standard_normal((per_rank, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, per_rank)
    net = resnet20((3, 32, 32), 10, seed=0)
    rule = get_rule(args.rule, seed=0)
    net.init_feedback(rule, np.random.default_rng(1), example=x[:1])
    opt, loss_fn = SGD(0.01, 0.9, 5e-4), get_loss("cross_entropy")
    share = per_rank / (per_rank * group.size)
    for _ in range(args.warmup):
        train_step(net, rule, loss_fn, opt, x, y, group=group, share=share)
    group.reset_counters()
    group.sum_host([0.0])  # start together
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step(net, rule, loss_fn, opt, x, y, group=group, share=share)
    group.sum_host([0.0])
    seconds = time.perf_counter() - t0
    if group.rank == 0:
        result = {
            "ranks": group.size,
            "scaling": args.scaling,
            "global_batch": per_rank * group.size,
            "step_s": seconds / args.steps,
            "allreduce_s": group.comm_seconds / args.steps,
            "bytes": group.comm_bytes / args.steps,
        }
        print(json.dumps(result), flush=True)


def measure(ranks: int, scaling: str, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "worker", "--scaling", scaling, "--ranks-hint", str(ranks)]
    cmd += ["--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--rule", args.rule]
    if ranks > 1:
        cmd = [str(MPIEXEC), "-n", str(ranks), *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"bench_parallel: {' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace) -> list[dict[str, float]]:
    results = []
    for scaling in ("strong", "weak"):
        base = None
        for ranks in (1, 2):
            r = measure(ranks, scaling, args)
            r["images_s"] = r["global_batch"] / r["step_s"]
            base = base or r["images_s"]
            r["efficiency"] = r["images_s"] / (ranks * base)
            results.append(r)
    rows = [
        [
            r["scaling"],
            str(r["ranks"]),
            str(r["global_batch"]),
            f"{1 / r['step_s']:.2f}",
            f"{r['images_s']:.0f}",
            f"{100 * r['efficiency']:.0f} %",
            f"{1e3 * r['allreduce_s']:.1f}",
            f"{r['bytes'] / 1e6:.2f}",
        ]
        for r in results
    ]
    head = ["scaling", "ranks", "global batch", "steps/s", "images/s", "efficiency", "all-reduce ms/step", "MB/step"]
    print(f"ResNet-20 ({args.rule}), 3x32x32, one BLAS thread per rank, {args.steps} steps after {args.warmup}")
    print(table(head, rows))
    return results


# --------------------------------------------------------------------------- equality

EQUALITY_JOBS = {
    "mlp": ["--dtype", "float32"],
    "cnn": ["--model", "cnn", "--dtype", "float32"],
    "resnet20 --sync-bn": ["--model", "resnet20", "--width", "4", "--sync-bn", "--dtype", "float64"],
}


def equality(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    base = ["-m", "minibp", "compare", "--rules", "all", "--epochs", "1", "--batch-size", "32", "--quiet"]
    with tempfile.TemporaryDirectory() as tmp:
        for job, extra in EQUALITY_JOBS.items():
            outs = {n: Path(tmp) / job.replace(" ", "_") / str(n) for n in (1, 2)}
            for n, out in outs.items():
                cmd = [sys.executable, *base, *extra, "--out", str(out)]
                cmd = [str(MPIEXEC), "-n", "2", *cmd] if n == 2 else cmd
                subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            found[job] = {}
            for rule in RULES:
                with np.load(outs[1] / rule / "checkpoint.npz") as a, np.load(outs[2] / rule / "checkpoint.npz") as b:
                    found[job][rule] = max(
                        float(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-30))
                        for k in a.files
                        if k != "meta"
                    )
    rows = [[job, *(f"{found[job][r]:.1e}" for r in RULES)] for job in found]
    print("largest relative difference, 2 ranks against one process, after one epoch of digits (global batch 32)")
    print(table(["model", *RULES], rows, "<" + ">" * len(RULES)))
    found["float32 resnet20, one process against itself"] = drift = rounding_drift()
    print("float32 ResNet-20 (4 channels), BP, one process against itself with each batch's rows permuted:")
    print(table(["after step", *drift], [["relative difference", *(f"{v:.1e}" for v in drift.values())]]))
    return found


def rounding_drift(steps: int = 12) -> dict[str, float]:
    """How far float32 rounding alone carries a ResNet-20 with batch norm after the ReLU: one process
    trained twice on the same batches, once with each batch's rows in another order (the same sums,
    added in another order), and the largest relative difference of any trained array after each step."""
    from minibp.data import load_dataset  # noqa: PLC0415

    data = load_dataset("digits", flatten=False)
    nets = []
    for _ in range(2):
        net = resnet20(data.image_shape, 10, width=4, seed=0)
        rule = get_rule("bp")
        net.init_feedback(rule, np.random.default_rng(1))
        nets.append((net, rule, SGD(0.01, 0.9, 5e-3)))
    loss_fn, drift = get_loss("cross_entropy"), {}
    for step, (x, y) in enumerate(data.train_batches(32, epoch=1, seed=0), start=1):
        if step > steps:
            break
        x = x.reshape(len(x), *data.image_shape).astype(np.float32)
        order = np.random.default_rng(step).permutation(len(y))
        for (net, rule, opt), (xs, ys) in zip(nets, [(x, y), (x[order], y[order])]):
            train_step(net, rule, loss_fn, opt, xs, ys)
        pairs = zip(nets[0][0].param_layers, nets[1][0].param_layers)
        drift[str(step)] = max(
            float(np.abs(a.params[k] - b.params[k]).max() / np.abs(a.params[k]).max())
            for a, b in pairs
            for k in a.params
        )
    return drift


# --------------------------------------------------------------------------- cost model


def cost(args: argparse.Namespace) -> list[dict[str, object]]:
    net = resnet50((3, 224, 224), 1000)
    params = net.n_params()
    x = np.zeros((1, 3, 224, 224), dtype=np.float32)
    net.forward(x, train=False)
    from minibp.threads import forward_macs  # noqa: PLC0415

    macs = forward_macs(net, x)
    step_flop_per_image = 3 * 2 * macs  # forward, weight and input gradients: three products of the forward's size
    rows, found = [], []
    for feedback, payload in (("W only (BP, FA, SS, WM)", params), ("W and B (KP)", 2 * params)):
        size = 4 * payload  # float32 gradients
        for gpus in (8, 64, 256):
            link = next(iter(BANDWIDTHS)) if gpus <= GPUS_PER_NODE else list(BANDWIDTHS)[1]
            bandwidth, latency = BANDWIDTHS[link]
            comm = 2 * (gpus - 1) / gpus * size / bandwidth + 2 * (gpus - 1) * latency
            for rate in args.gpu_rates:
                compute = args.gpu_batch / rate
                eff = compute / (compute + comm)  # minibp all-reduces after the whole feedback path: no overlap
                found.append({"feedback": feedback, "gpus": gpus, "rate": rate, "comm_s": comm, "compute_s": compute})
                rows.append(
                    [
                        feedback,
                        str(gpus),
                        link.split(" (")[0],
                        f"{size / 1e6:.0f}",
                        f"{1e3 * comm:.2f}",
                        str(rate),
                        f"{1e3 * compute:.0f}",
                        f"{100 * eff:.1f} %",
                    ]
                )
    print(
        f"ResNet-50 at 224x224: {params:,} parameters, {macs / 1e9:.2f} G multiply-adds forward, "
        f"{step_flop_per_image / 1e9:.1f} GFLOP per training image; batch {args.gpu_batch} per GPU"
    )
    head = ["all-reduced", "GPUs", "link", "MB", "all-reduce ms", "images/s/GPU", "compute ms", "efficiency"]
    print(table(head, rows, "<>>>>>>>"))
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", nargs="?", default="all", choices=["all", "speed", "equality", "cost", "worker"])
    p.add_argument("--batch", type=int, default=64, help="global batch (strong scaling) or batch per rank (weak)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rule", default="bp", choices=list(RULES))
    p.add_argument("--scaling", default="strong", choices=["strong", "weak"], help=argparse.SUPPRESS)
    p.add_argument("--ranks-hint", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--gpu-rates", type=int, nargs="+", default=[500, 1000, 3000], help="images/s per GPU to model")
    p.add_argument("--gpu-batch", type=int, default=128, help="batch per GPU in the cost model")
    p.add_argument("--json", type=Path, help="also write every number to this file")
    args = p.parse_args(argv)
    if args.part == "worker":
        worker(args)
        return 0
    if args.part in ("all", "speed", "equality") and not MPIEXEC.exists():
        raise SystemExit(f'bench_parallel: no {MPIEXEC}: install the MPI extra, pip install -e ".[mpi]"')
    report: dict[str, object] = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    for part in ("speed", "equality", "cost"):
        if args.part in ("all", part):
            report[part] = globals()[part](args)
            print()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

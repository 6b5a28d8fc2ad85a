"""Throughput of the ImageNet folder loader's training pipeline: decode, augment, batch (and copy to the GPU).

Writes ``--images`` JPEGs of ImageNet-like sizes (about 500x375 on average, quality 90) into a
temporary folder, or reads an existing ImageNet tree with ``--data-dir``, then times training
epochs of :class:`minibp.data.imagenet.ImageFolder` (random resized crop to 224, flip, normalise,
float32 NCHW batches of 128) for each worker count in ``--workers`` (default: the loader's default
count), and with ``--backend cupy`` the ``cupy.asarray`` copy of each batch to the device.

A second part (``--ipc``, on by default) compares ways of getting one 128x3x224x224 float32 batch
(77 MB) from a worker process into the main process: pickled through ``multiprocessing.Queue``,
raw bytes through a pipe, shared memory copied out, and shared memory handed over without a copy.
``--start-methods`` and ``--transports`` repeat the loader timing for other settings.

Run from the repository root::

    .venv/bin/python benchmarks/bench_loader.py                       # defaults (512+ images)
    .venv/bin/python benchmarks/bench_loader.py --workers 1 2 4 --images 2048 --json loader.json
    .venv/bin/python benchmarks/bench_loader.py --backend cupy         # with the host-to-device copy

The images sit in the page cache once written, so disk reads are not part of the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
from common import machine, table, write_json

from minibp.data.imagenet import ImageFolder, default_start_method, default_workers, find_imagenet

N_CLASSES = 8  # synthetic tree: images are spread over this many class folders
IPC_SHAPE = (128, 3, 224, 224)


# --------------------------------------------------------------------------- synthetic images


def _imagenet_like_size(rng: np.random.Generator) -> tuple[int, int]:
    """Width and height: mostly 4:3 landscape, some portrait and square, about 500x375 on average."""
    long = int(np.clip(rng.normal(500, 60), 300, 800))
    shape = rng.choice(3, p=[0.7, 0.2, 0.1])  # landscape, portrait, square
    short = round(long * 0.75) if shape < 2 else long
    return (long, short) if shape == 0 else (short, long)


def _write_images(job: tuple[str, int, int]) -> int:
    """Write images ``start..stop`` of the synthetic tree; returns their total bytes."""
    from PIL import Image

    root, start, stop = job
    total = 0
    for i in range(start, stop):
        rng = np.random.default_rng([1234, i])
        w, h = _imagenet_like_size(rng)
        # smooth colour fields plus texture: compresses like a photograph (~100 kB at quality 90)
        coarse = Image.fromarray(rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        texture = rng.normal(0, 16, size=(h, w, 1))
        pixels = np.clip(np.asarray(coarse, dtype=np.float32) + texture, 0, 255).astype(np.uint8)
        path = Path(root) / "train" / f"n{i % N_CLASSES:08d}" / f"img_{i:06d}.JPEG"
        Image.fromarray(pixels).save(path, quality=90)
        total += path.stat().st_size
    return total


def make_tree(root: Path, n: int, processes: int) -> float:
    """A train/ and val/ tree with ``n`` training images; returns the mean file size in kB."""
    for split in ("train", "val"):
        for c in range(N_CLASSES):
            (root / split / f"n{c:08d}").mkdir(parents=True, exist_ok=True)
    chunk = max(1, math.ceil(n / (4 * processes)))
    jobs = [(str(root), s, min(n, s + chunk)) for s in range(0, n, chunk)]
    with ProcessPoolExecutor(processes) as ex:
        total = sum(ex.map(_write_images, jobs))
    for c in range(N_CLASSES):  # one validation image per class, so the tree is a valid ImageFolder
        src = next((root / "train" / f"n{c:08d}").iterdir(), None)
        if src is not None:
            (root / "val" / f"n{c:08d}" / src.name).write_bytes(src.read_bytes())
    return total / max(1, n) / 1e3


# --------------------------------------------------------------------------- loader timing


@dataclass
class LoaderResult:
    workers: int
    start_method: str
    transport: str
    img_per_s: float  # median over the timed epochs
    img_per_s_best: float
    first_batch_s: float  # from an idle loader (workers not started) to the first batch
    copy_ms_per_batch: float | None  # cupy.asarray + synchronize, per batch


def _device_copier(backend: str) -> tuple[Callable[[np.ndarray], Any] | None, str]:
    if backend != "cupy":
        return None, "none (NumPy backend: batches stay on the host)"
    try:
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    except Exception as err:  # not installed, or no usable GPU
        return None, f"skipped: CuPy is not usable here ({type(err).__name__}: {err})"
    name = name.decode() if isinstance(name, bytes) else str(name)

    def copy(x: np.ndarray) -> Any:
        xd = cupy.asarray(x)
        cupy.cuda.Stream.null.synchronize()
        return xd

    return copy, f"cupy.asarray to {name}, synchronised"


def time_loader(
    root: Path,
    *,
    workers: int,
    start_method: str | None,
    transport: str,
    batch: int,
    image_size: int,
    epochs: int,
    copy: Callable[[np.ndarray], Any] | None,
) -> LoaderResult:
    """One warm-up epoch (starting the workers), then ``epochs`` timed epochs."""
    t0 = time.perf_counter()
    with ImageFolder(
        root, image_size=image_size, workers=workers, start_method=start_method, transport=transport
    ) as data:
        first = None
        for x, _ in data.train_batches(batch, epoch=0, seed=0):
            if first is None:
                first = time.perf_counter() - t0
            if copy is not None:
                copy(x)
        rates, copy_s, copies = [], 0.0, 0
        for epoch in range(1, epochs + 1):
            t = time.perf_counter()
            for x, _ in data.train_batches(batch, epoch=epoch, seed=0):
                if copy is not None:
                    c = time.perf_counter()
                    copy(x)
                    copy_s += time.perf_counter() - c
                    copies += 1
            rates.append(data.n_train / (time.perf_counter() - t))
        method = data.start_method if workers else "-"
    return LoaderResult(
        workers=workers,
        start_method=method,
        transport=transport if workers else "-",
        img_per_s=statistics.median(rates),
        img_per_s_best=max(rates),
        first_batch_s=float(first or 0.0),
        copy_ms_per_batch=1e3 * copy_s / copies if copies else None,
    )


# --------------------------------------------------------------------------- IPC comparison


def _produce_queue(q: Any, n: int) -> None:
    x = np.full(IPC_SHAPE, 0.5, np.float32)
    for _ in range(n):
        x += 1.0  # touch the batch as a worker that builds it would
        q.put(x)


def _produce_pipe(conn: Any, n: int) -> None:
    x = np.full(IPC_SHAPE, 0.5, np.float32)
    for _ in range(n):
        x += 1.0
        conn.send_bytes(x.reshape(-1).view(np.uint8))


def _produce_shm(conn: Any, n: int) -> None:
    for _ in range(n):
        name = conn.recv()
        block = shared_memory.SharedMemory(name=name)
        x = np.ndarray(IPC_SHAPE, np.float32, buffer=block.buf)
        x += 1.0
        del x
        block.close()
        conn.send(name)


def _time_ipc(kind: str, n: int, ctx: Any) -> tuple[float, float]:
    """(wall ms, main-process CPU ms) per batch for ``n`` batches through ``kind``."""
    nbytes = math.prod(IPC_SHAPE) * 4
    if kind == "pickle (mp.Queue)":
        q = ctx.Queue(maxsize=2)
        proc = ctx.Process(target=_produce_queue, args=(q, n))
        proc.start()
        q.get()  # first batch: warms the producer
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n - 1):
            x = q.get()
        w, c = time.perf_counter() - w, time.process_time() - c
        proc.join()
    elif kind == "raw bytes (pipe)":
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_produce_pipe, args=(theirs, n))
        proc.start()
        x = np.empty(IPC_SHAPE, np.float32)
        ours.recv_bytes_into(x.reshape(-1).view(np.uint8))
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n - 1):
            x = np.empty(IPC_SHAPE, np.float32)
            ours.recv_bytes_into(x.reshape(-1).view(np.uint8))
        w, c = time.perf_counter() - w, time.process_time() - c
        proc.join()
    else:  # shared memory: two blocks in turn, the worker fills one while the main process reads the other
        blocks = [shared_memory.SharedMemory(create=True, size=nbytes) for _ in range(2)]
        by_name = {b.name: b for b in blocks}
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_produce_shm, args=(theirs, n))
        proc.start()
        for b in blocks:
            ours.send(b.name)
        w = c = 0.0
        for i in range(n):
            if i == 1:
                w, c = time.perf_counter(), time.process_time()
            block = by_name[ours.recv()]
            view = np.frombuffer(block.buf, np.float32).reshape(IPC_SHAPE)
            x = view.copy() if kind == "shared memory, copied out" else view
            del view
            if i + 2 < n:
                x = None  # the consumer is done with it: the block may be refilled
                ours.send(block.name)
        w, c = time.perf_counter() - w, time.process_time() - c
        proc.join()
        del x
        for b in blocks:
            b.close()
            b.unlink()
    return 1e3 * w / (n - 1), 1e3 * c / (n - 1)


IPC_KINDS = ("pickle (mp.Queue)", "raw bytes (pipe)", "shared memory, copied out", "shared memory, no copy")


def time_ipc(n: int, start_method: str) -> dict[str, dict[str, float]]:
    ctx = mp.get_context(start_method)
    out = {}
    for kind in IPC_KINDS:
        wall, cpu = _time_ipc(kind, n, ctx)
        out[kind] = {"wall_ms_per_batch": wall, "main_cpu_ms_per_batch": cpu}
    return out


# --------------------------------------------------------------------------- report


def environment() -> dict[str, Any]:
    from PIL import __version__ as pil_version
    from PIL import features

    try:
        shm = os.statvfs("/dev/shm")
        shm_gb = round(shm.f_blocks * shm.f_frsize / 1e9, 1)
    except (OSError, AttributeError):
        shm_gb = None
    return {
        **machine(),
        "pillow": pil_version,
        "libjpeg_turbo": features.check_feature("libjpeg_turbo"),
        "usable_cpus": default_workers() + 1,
        "dev_shm_gb": shm_gb,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", help=f"worker counts to time (default: {default_workers()})")
    p.add_argument("--images", type=int, help="synthetic training images (default: 512, or 2 batches per worker)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per setting, after one warm-up epoch")
    p.add_argument(
        "--backend", choices=["numpy", "cupy"], default="numpy", help="cupy: also copy each batch to the GPU"
    )
    p.add_argument("--start-methods", nargs="+", default=[None], help="fork / forkserver / spawn (default: loader's)")
    p.add_argument("--transports", nargs="+", default=["auto"], choices=["auto", "shm", "pipe"])
    p.add_argument("--data-dir", help="time an existing ImageNet tree (its train/ split) instead of synthetic images")
    p.add_argument("--ipc-batches", type=int, default=8, help="batches per IPC method (0 skips the comparison)")
    p.add_argument("--no-ipc", action="store_true", help="skip the IPC comparison")
    p.add_argument("--json", type=Path, help="also write the summary to this file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workers = args.workers or [default_workers()]
    copy, copy_note = _device_copier(args.backend)
    env = environment()
    print(
        f"python {env['python']}, numpy {env['numpy']}, Pillow {env['pillow']} (libjpeg-turbo: "
        f"{env['libjpeg_turbo']}), {env['usable_cpus']} usable CPUs, /dev/shm {env['dev_shm_gb']} GB"
    )
    print(f"device copy: {copy_note}")

    with tempfile.TemporaryDirectory(prefix="minibp-bench-loader-") as tmp:
        if args.data_dir:
            root = find_imagenet(args.data_dir)
            print(f"data: {root}")
            mean_kb = None
        else:
            n = args.images or max(512, 2 * args.batch * max(workers))
            root = Path(tmp)
            t = time.perf_counter()
            mean_kb = make_tree(root, n, processes=default_workers() + 1)
            print(
                f"data: {n} synthetic JPEGs, ~500x375, quality 90, {mean_kb:.0f} kB on average "
                f"(written in {time.perf_counter() - t:.1f} s)"
            )
        results = []
        for method in args.start_methods:
            for transport in args.transports:
                for w in workers:
                    if w == 0 and (method, transport) != (args.start_methods[0], args.transports[0]):
                        continue
                    r = time_loader(
                        root,
                        workers=w,
                        start_method=method,
                        transport=transport,
                        batch=args.batch,
                        image_size=args.image_size,
                        epochs=args.epochs,
                        copy=copy,
                    )
                    results.append(r)
                    print(f"  workers {w:>2} ({r.start_method}, {r.transport}): {r.img_per_s:7.1f} img/s", flush=True)
        n_train = ImageFolder(root, workers=0).n_train

    print(
        f"\ntraining pipeline, batch {args.batch}, {args.image_size}x{args.image_size}, {n_train} images, "
        f"median of {args.epochs} epochs after a warm-up epoch:"
    )
    rows = [
        [
            str(r.workers),
            r.start_method,
            r.transport,
            f"{r.img_per_s:.1f}",
            f"{r.img_per_s_best:.1f}",
            f"{r.img_per_s / max(1, r.workers):.1f}",
            f"{r.first_batch_s:.2f}",
            "-" if r.copy_ms_per_batch is None else f"{r.copy_ms_per_batch:.1f}",
        ]
        for r in results
    ]
    header = ["workers", "start", "transport", "img/s", "best", "img/s/worker", "first batch s", "copy ms/batch"]
    print(table(header, rows))

    ipc = None
    if not args.no_ipc and args.ipc_batches > 1:
        method = args.start_methods[0] or default_start_method()
        ipc = time_ipc(args.ipc_batches, method)
        mb = math.prod(IPC_SHAPE) * 4 / 1e6
        print(
            f"\none {'x'.join(map(str, IPC_SHAPE))} float32 batch ({mb:.0f} MB) from a worker to the main process, "
            f"{args.ipc_batches - 1} timed batches ({method}):"
        )
        rows = [[k, f"{v['wall_ms_per_batch']:.1f}", f"{v['main_cpu_ms_per_batch']:.1f}"] for k, v in ipc.items()]
        print(table(["method", "wall ms/batch", "main-process CPU ms/batch"], rows))

    summary = {
        "bench": "loader",
        "batch": args.batch,
        "image_size": args.image_size,
        "images": n_train,
        "mean_file_kb": mean_kb,
        "device_copy": copy_note,
        "results": [asdict(r) for r in results],
        "ipc": ipc,
        "environment": env,
    }
    line = json.dumps(summary, separators=(",", ":"))
    print("\n" + line)
    write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

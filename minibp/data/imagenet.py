"""ImageNet (ILSVRC-2012) read from a folder of images, decoded and augmented by worker processes.

There is no public download. The loader expects the usual class-folder layout::

    <root>/train/<wnid>/*.JPEG     e.g. train/n01440764/n01440764_10026.JPEG
    <root>/val/<wnid>/*.JPEG       the 50,000 validation images sorted into the same wnid folders

The classes are the sorted folder names of ``train/``; ``val/`` must use some or all of them.

Images are decoded with Pillow. Training batches get the Inception-style random resized crop
(scale 0.08-1, aspect ratio 3/4-4/3) and a horizontal flip with probability 1/2; test batches and
the probe get the shorter side resized to ``round(image_size / 0.875)`` and a center crop. Pixels
are normalised with the ImageNet channel mean and standard deviation; batches are ``(N, 3, S, S)``
float arrays and int64 labels, on the host.

Determinism: epoch ``e`` visits the training set in :func:`~minibp.data.base.epoch_order` order and
sample ``i`` is augmented from ``np.random.default_rng([seed, 3, e, i])``, so a batch's contents do
not depend on the number of workers or their scheduling, and ``start=k`` resumes an epoch exactly.

Worker model: each worker process builds whole batches. Batches travel back through shared memory
(``multiprocessing.shared_memory``) that the consumer receives without a copy: a block is reused
only once the array handed out over it has been garbage collected, so a batch stays valid for as
long as it is referenced. Where ``/dev/shm`` lacks room (a container's 64 MB default), batches
come back through the worker's pipe instead. Workers are started from a clean ``forkserver``
process (``spawn`` where there is none) rather than forked from the training process, which may
hold CUDA state and helper threads.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import signal
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import connection, shared_memory
from pathlib import Path
from typing import Any

import numpy as np

from .base import Batch, epoch_order

__all__ = [
    "ImageDecodeError",
    "ImageFolder",
    "default_start_method",
    "default_workers",
    "find_imagenet",
    "load_imagenet",
]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EXTENSIONS = frozenset({".jpeg", ".jpg", ".png"})
EVAL_CROP_FRACTION = 0.875  # test images: shorter side to image_size / 0.875, then a center crop
CROP_SCALE = (0.08, 1.0)  # random resized crop: fraction of the image's area
CROP_RATIO = (3 / 4, 4 / 3)  # ... and aspect ratio (width / height), drawn log-uniformly
CROP_TRIES = 10
AUGMENT_STREAM = 3  # default_rng([seed, AUGMENT_STREAM, epoch, i]); stream 2 is epoch_order's
SHM_HEADROOM = 64 << 20  # bytes /dev/shm must keep free beyond a new block, else use the pipe
JOIN_SECONDS = 0.5  # how long close() waits for workers to stop (they check between images)
WORKER_QUEUE = 2  # batches sent to one worker at a time: one being built, one waiting

LAYOUT_HELP = """\
ImageNet has no public download: get ILSVRC-2012 from https://image-net.org and lay it out as

    <root>/train/<wnid>/*.JPEG    1000 class folders such as train/n01440764/
    <root>/val/<wnid>/*.JPEG      the 50,000 validation images sorted into the same wnid folders

The validation images must be in class folders, as torchvision's ImageFolder expects and as the
widely used valprep.sh script arranges them, not in one flat folder. <root> is the folder given
with --data-dir (data_dir=...), or a folder holding imagenet/ with train/ and val/ inside;
without one, $MINIBP_DATA/imagenet, else ~/.cache/minibp/imagenet."""


class ImageDecodeError(RuntimeError):
    """An image could not be read or decoded; the message names the file."""


# --------------------------------------------------------------------------- finding the data


def find_imagenet(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds ``train/`` and ``val/``; a ``FileNotFoundError`` explains the layout if none."""
    if data_dir is not None:
        given = Path(data_dir).expanduser()
        candidates = [given, given / "imagenet"]
        origin = f"data_dir / --data-dir {str(given)!r}"
    elif os.environ.get("MINIBP_DATA"):
        candidates = [Path(os.environ["MINIBP_DATA"]).expanduser() / "imagenet"]
        origin = "$MINIBP_DATA"
    else:
        candidates = [Path("~/.cache/minibp/imagenet").expanduser()]
        origin = "the default location (no --data-dir, MINIBP_DATA unset)"
    for root in candidates:
        if (root / "train").is_dir():
            if not (root / "val").is_dir():
                raise FileNotFoundError(
                    f"ImageNet: {root / 'train'} exists but {root / 'val'} does not.\n{LAYOUT_HELP}"
                )
            return root
    looked = " and ".join(str(c / "train") for c in candidates)
    raise FileNotFoundError(f"ImageNet not found: no {looked} (from {origin}).\n{LAYOUT_HELP}")


def _image_names(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if os.path.splitext(e.name)[1].lower() in EXTENSIONS and e.is_file())


def _scan(split: Path, classes: list[str] | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(classes, file names, labels)`` of one split; ``classes`` given for val/ (train/'s)."""
    with os.scandir(split) as it:
        entries = list(it)
    folders = sorted(e.name for e in entries if e.is_dir())
    loose = [e.name for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in EXTENSIONS]
    if loose and not folders:
        raise ValueError(
            f"ImageNet: {split} holds {len(loose)} images directly instead of one folder per class "
            f"(e.g. {loose[0]}).\n{LAYOUT_HELP}"
        )
    if not folders:
        raise ValueError(f"ImageNet: {split} has no class folders.\n{LAYOUT_HELP}")
    if classes is None:
        classes = folders
    else:
        unknown = [f for f in folders if f not in set(classes)]
        if unknown:
            raise ValueError(
                f"ImageNet: {split} has {len(unknown)} class folder(s) that train/ lacks "
                f"({', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}); val/ must use train/'s classes"
            )
    index = {c: i for i, c in enumerate(classes)}
    names: list[bytes] = []
    labels: list[int] = []
    empty: list[str] = []
    for folder in folders:
        files = _image_names(split / folder)
        if not files:
            empty.append(folder)
        names += [os.fsencode(f"{folder}/{f}") for f in files]
        labels += [index[folder]] * len(files)
    if empty:
        raise ValueError(
            f"ImageNet: {len(empty)} class folder(s) in {split} hold no .JPEG/.jpg/.jpeg/.png images: "
            f"{', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''}"
        )
    return classes, np.array(names, dtype=bytes), np.array(labels, dtype=np.int64)


def default_workers() -> int:
    """Worker processes by default: the CPUs this process may use, minus one for the training loop."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, n - 1)


# --------------------------------------------------------------------------- decoding (workers and main)


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("the ImageNet loader decodes images with Pillow: pip install pillow") from err
    return Image


def random_resized_crop(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random ``(left, top, right, bottom)`` box: 8-100 % of the area, aspect ratio 3/4-4/3.

    Up to :data:`CROP_TRIES` draws; if none fits inside the image, the largest centered box whose
    aspect ratio is within the range.
    """
    area = width * height
    log_lo, log_hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(CROP_TRIES):
        target = area * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    w, h = width, height
    if width / height < CROP_RATIO[0]:
        h = min(height, round(width / CROP_RATIO[0]))
    elif width / height > CROP_RATIO[1]:
        w = min(width, round(height * CROP_RATIO[1]))
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def center_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """The box that, resized to ``size``², equals resizing the shorter side to ``size / 0.875`` and center-cropping."""
    side = size * min(width, height) / round(size / EVAL_CROP_FRACTION)
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


_SCALE = (1.0 / (255.0 * np.array(STD))).astype(np.float32)[:, None, None]
_SHIFT = (255.0 * np.array(MEAN)).astype(np.float32)[:, None, None]


def load_image(path: str, size: int, rng: np.random.Generator | None, out: np.ndarray) -> None:
    """Decode ``path`` into ``out`` (3, size, size): augmented from ``rng``, or the test transform if None."""
    image_mod = _pil()
    with image_mod.open(path) as im:
        width, height = im.size
        box: tuple[float, ...] = (
            random_resized_crop(width, height, rng) if rng is not None else center_box(width, height, size)
        )
        if im.format == "JPEG":  # let libjpeg decode at 1/2, 1/4 or 1/8 size when the crop allows it
            need = (
                math.ceil(width * size / (box[2] - box[0])),
                math.ceil(height * size / (box[3] - box[1])),
            )
            drafted = im.draft("RGB", need)
            if drafted is not None:
                shrink = drafted[1][2] / width
                box = tuple(c * shrink for c in box)
        rgb = im if im.mode == "RGB" else im.convert("RGB")
        pixels = np.asarray(rgb.resize((size, size), image_mod.Resampling.BILINEAR, box=box))
    if rng is not None and rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    np.subtract(pixels.transpose(2, 0, 1), _SHIFT, out=out, casting="unsafe")
    np.multiply(out, _SCALE, out=out, casting="unsafe")


@dataclass(frozen=True)
class _Augment:
    """Training augmentation of a batch: the samples' dataset indices and the run's seed and epoch."""

    seed: int
    epoch: int
    indices: tuple[int, ...]


@dataclass(frozen=True)
class _Spec:
    """One batch to build: image ``names`` (``wnid/file``) under ``folder``, their labels, the augmentation."""

    folder: str
    names: list[str]
    labels: np.ndarray
    augment: _Augment | None


class _Cancelled(Exception):
    pass


def fill_batch(out: np.ndarray, paths: list[str], augment: _Augment | None, stop: Any = None) -> None:
    """Decode ``paths`` into ``out[:len(paths)]``; ``stop()`` (if given) is asked between images."""
    size = out.shape[-1]
    for k, path in enumerate(paths):
        if stop is not None and stop():
            raise _Cancelled
        rng = None
        if augment is not None:
            rng = np.random.default_rng([augment.seed, AUGMENT_STREAM, augment.epoch, augment.indices[k]])
        try:
            load_image(path, size, rng, out[k])
        except Exception as err:
            raise ImageDecodeError(f"cannot decode image {path}: {type(err).__name__}: {err}") from err


def _attach(name: str) -> shared_memory.SharedMemory:
    """Open an existing block without registering it with the resource tracker where Python allows."""
    try:
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]  # 3.13+
    except TypeError:
        return shared_memory.SharedMemory(name=name)


def _build(out: np.ndarray, paths: list[str], augment: _Augment | None, stop: Any, job: int) -> tuple[Any, ...]:
    """Fill ``out`` in a worker; the reply that says how it went."""
    try:
        fill_batch(out, paths, augment, stop)
    except _Cancelled:
        return ("cancelled", job)
    except ImageDecodeError as err:
        return ("error", job, str(err))
    return ("done", job)


def _worker_main(conn: connection.Connection) -> None:
    """A worker process: build the batches its pipe asks for, until told to stop or the parent dies.

    Messages in: ``("batch", job, generation, shm name or None, shape, dtype, folder, names, augment)``,
    ``("cancel", generation)``, ``None`` (stop). Out: ``("done", job, via_pipe)`` (followed by the
    raw bytes when ``via_pipe``), ``("cancelled", job)``, ``("error", job, message)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training loop's to handle
    parent = mp.parent_process()
    watch: list[Any] = [conn] + ([parent.sentinel] if parent is not None else [])
    queue: deque[tuple[Any, ...]] = deque()
    cancelled: set[int] = set()
    stopping = False
    scratch: dict[tuple[tuple[int, ...], str], np.ndarray] = {}  # the pipe transport's batch buffer

    def read_available() -> None:
        nonlocal stopping
        while not stopping and conn.poll():
            msg = conn.recv()
            if msg is None:
                stopping = True
            elif msg[0] == "cancel":
                cancelled.add(msg[1])
            else:
                queue.append(msg)

    try:
        while not stopping:
            if not queue:
                if conn not in connection.wait(watch):
                    return  # the parent died
                read_available()
                continue
            _, job, gen, shm_name, shape, dtype, folder, names, augment = queue.popleft()
            paths = [os.path.join(folder, n) for n in names]
            if gen in cancelled:
                conn.send(("cancelled", job))
                continue
            block = _attach(shm_name) if shm_name is not None else None
            try:
                if block is not None:
                    out = np.ndarray(shape, dtype=dtype, buffer=block.buf)
                else:
                    if (shape, dtype) not in scratch:
                        scratch.clear()  # one reusable buffer, for the latest batch shape
                        scratch[(shape, dtype)] = np.empty(shape, dtype=dtype)
                    out = scratch[(shape, dtype)]

                def stop(gen: int = gen) -> bool:
                    read_available()
                    return stopping or gen in cancelled

                reply = _build(out, paths, augment, stop, job)
                if reply[0] == "done":
                    reply = (*reply, block is None)
                conn.send(reply)
                if reply[0] == "done" and block is None:
                    conn.send_bytes(out.reshape(-1).view(np.uint8))
                out = None
            finally:
                if block is not None:
                    block.close()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent went away


# --------------------------------------------------------------------------- the worker pool (main process)


class _Slot:
    """A shared-memory block a worker writes one batch into, reused once its batch is dropped."""

    def __init__(self, nbytes: int) -> None:
        self.shm = shared_memory.SharedMemory(create=True, size=nbytes)
        self.nbytes = nbytes
        self.busy = False  # a worker is writing into it
        self.held: weakref.ref[np.ndarray] | None = None  # the array handed out over it

    def free(self) -> bool:
        return not self.busy and (self.held is None or self.held() is None)

    def wrap(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A new array over the block; the block stays reserved while the array (or a view of it) lives."""
        flat = np.frombuffer(self.shm.buf, dtype=dtype, count=math.prod(shape))
        self.held = weakref.ref(flat)  # views of the result keep ``flat`` (their base) alive
        return flat.reshape(shape)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.shm.unlink()
        try:
            self.shm.close()
        except BufferError:
            # An array handed out still maps the block: leave the mapping to it (unmapped when it
            # is collected). The name is already unlinked, so nothing outlives the process.
            self.shm._mmap = None  # type: ignore[attr-defined]


@dataclass(eq=False)
class _Job:
    id: int
    gen: int
    worker: int
    shape: tuple[int, ...]
    labels: np.ndarray
    first_path: str
    slot: _Slot | None
    result: np.ndarray | BaseException | None = None
    abandoned: bool = False


def _shm_room() -> int | None:
    """Bytes free in /dev/shm, or None where shared memory does not live there."""
    try:
        st = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


@contextlib.contextmanager
def _environ_without(name: str) -> Iterator[None]:
    """Hide an environment variable from processes started inside the block."""
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


class _Pool:
    """Worker processes with one pipe each, the shared-memory blocks, and the jobs in flight."""

    def __init__(self, workers: int, start_method: str, transport: str) -> None:
        self.transport = transport
        self.slots: list[_Slot] = []
        self.jobs: dict[int, _Job] = {}
        self.next_job = 0
        self.next_gen = 0
        self.broken: str | None = None
        ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            ctx.set_forkserver_preload(["__main__", __name__])
        if transport != "pipe":
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()  # one tracker, shared by the workers
        self.procs: list[Any] = []
        self.conns: list[connection.Connection] = []
        self.load: list[int] = []  # jobs outstanding per worker
        try:
            # the workers never touch the GPU: keep `import minibp` in them from selecting CuPy
            with _environ_without("MINIBP_BACKEND"):
                for i in range(workers):
                    ours, theirs = ctx.Pipe(duplex=True)
                    proc = ctx.Process(target=_worker_main, args=(theirs,), name=f"minibp-imagenet-{i}", daemon=True)
                    proc.start()
                    theirs.close()
                    self.procs.append(proc)
                    self.conns.append(ours)
                    self.load.append(0)
        except BaseException:
            self.shutdown()
            raise

    # ---- jobs

    def new_generation(self) -> int:
        self.next_gen += 1
        return self.next_gen

    def _slot_for(self, nbytes: int) -> _Slot | None:
        if self.transport == "pipe":
            return None
        for slot in self.slots:
            if slot.nbytes >= nbytes and slot.free():
                return slot
        for slot in [s for s in self.slots if s.nbytes < nbytes and s.free()]:  # another batch size's
            self.slots.remove(slot)
            slot.release()
        room = _shm_room()
        if self.transport == "auto" and room is not None and room < nbytes + SHM_HEADROOM:
            return None
        slot = _Slot(nbytes)
        self.slots.append(slot)
        return slot

    def can_submit(self) -> bool:
        """Whether a worker has room for another batch.

        Capping each worker's queue keeps the task messages far below a socket's buffer, so the
        main process never blocks sending a task to a worker that is blocked sending it a batch.
        """
        self._check()
        return min(self.load) < WORKER_QUEUE

    def submit(self, gen: int, spec: _Spec, shape: tuple[int, ...], dtype: np.dtype) -> _Job:
        self._check()
        worker = min(range(len(self.procs)), key=self.load.__getitem__)
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        slot = self._slot_for(nbytes)
        first = os.path.join(spec.folder, spec.names[0])
        job = _Job(self.next_job, gen, worker, shape, spec.labels, first, slot)
        self.next_job += 1
        if slot is not None:
            slot.busy = True
        name = slot.shm.name if slot else None
        msg = ("batch", job.id, gen, name, shape, np.dtype(dtype).str, spec.folder, spec.names, spec.augment)
        try:
            self.conns[worker].send(msg)
        except OSError:
            self._died(worker)
        self.jobs[job.id] = job
        self.load[worker] += 1
        return job

    @staticmethod
    def take(job: _Job) -> np.ndarray:
        """Hand over a finished job's batch (the job keeps no reference to it), or raise its error."""
        result, job.result = job.result, None
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        return result

    def abandon(self, gen: int, jobs: Iterable[_Job]) -> None:
        """Drop ``jobs`` (of generation ``gen``): ready batches are freed, workers skip the rest."""
        workers = set()
        for job in jobs:
            job.abandoned = True
            job.result = None
            if job.id in self.jobs:
                workers.add(job.worker)
        for w in workers:
            with contextlib.suppress(OSError):
                self.conns[w].send(("cancel", gen))

    # ---- messages

    def pump(self, dtype: np.dtype, timeout: float) -> None:
        """Handle whatever the workers have sent within ``timeout`` seconds; raise if one died."""
        self._check()
        sentinels = [p.sentinel for p in self.procs]
        for ready in connection.wait(self.conns + sentinels, timeout):
            if ready in sentinels:
                self._died(sentinels.index(ready))
            w = self.conns.index(ready)
            try:
                while self.conns[w].poll():
                    self._receive(w, dtype)
            except (EOFError, OSError):
                self._died(w)

    def _receive(self, w: int, dtype: np.dtype) -> None:
        conn = self.conns[w]
        kind, job_id, *rest = conn.recv()
        job = self.jobs.pop(job_id)
        self.load[w] -= 1
        if job.slot is not None:
            job.slot.busy = False
        if kind == "done":
            if rest[0]:  # the batch follows through the pipe
                if job.abandoned:
                    conn.recv_bytes()
                else:
                    x = np.empty(job.shape, dtype=dtype)
                    conn.recv_bytes_into(x.reshape(-1).view(np.uint8))
                    job.result = x
            elif not job.abandoned:
                job.result = job.slot.wrap(job.shape, dtype)
        elif kind == "error" and not job.abandoned:
            job.result = ImageDecodeError(rest[0])
        elif kind == "cancelled" and not job.abandoned:
            job.result = RuntimeError(f"ImageNet loader: batch {job_id} was cancelled unexpectedly")

    def _died(self, w: int) -> None:
        proc = self.procs[w]
        proc.join(0.5)
        code = proc.exitcode
        held = [j for j in self.jobs.values() if j.worker == w]
        what = f"while decoding a batch that starts with {held[0].first_path}" if held else "while idle"
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        msg = f"ImageNet loader worker {proc.name} (pid {proc.pid}) died with {how} {what}"
        if code == -signal.SIGBUS:
            msg += " (SIGBUS: /dev/shm is probably full; give the container more, e.g. docker --shm-size=8g, "
            msg += "or pass transport='pipe')"
        elif code == -signal.SIGKILL:
            msg += " (SIGKILL: out of memory? try fewer workers or a smaller prefetch)"
        self.broken = msg
        for job in self.jobs.values():
            if not job.abandoned:
                job.result = RuntimeError(msg)
        raise RuntimeError(msg)

    def _check(self) -> None:
        if self.broken is not None:
            raise RuntimeError(self.broken)

    # ---- shutdown

    def shutdown(self) -> None:
        """Stop the workers (terminating any that do not stop) and free the shared memory. Idempotent."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + JOIN_SECONDS
        running = [p.sentinel for p in self.procs]
        while running and time.monotonic() < deadline:
            for done in connection.wait(running, deadline - time.monotonic()):
                running.remove(done)
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.procs, self.conns, self.load = [], [], []
        for slot in self.slots:
            slot.release()
        if self.broken is None:
            self.broken = "the ImageNet loader was closed while one of its batch iterators was still in use"
        self.slots = []
        self.jobs = {}


def default_start_method() -> str:
    """The start method for workers: forkserver where the platform has it (Linux, macOS), else spawn."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


# --------------------------------------------------------------------------- the dataset


class ImageFolder:
    """A class-folder image dataset (ImageNet) implementing :class:`~minibp.data.base.BatchSource`.

    ``workers`` processes decode ahead of the consumer (0: decode in this process), keeping up to
    ``prefetch`` batches in flight. Workers start on first use and stay until :meth:`close` (or
    the ``with`` block's end, or garbage collection). Batches from the workers live in shared
    memory that is reused only after the batch array is garbage collected.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        image_size: int = 224,
        workers: int | None = None,
        prefetch: int | None = None,
        dtype: str = "float32",
        start_method: str | None = None,
        transport: str = "auto",
        name: str = "imagenet",
    ) -> None:
        self.root = Path(root)
        self.name = name
        self.image_size = int(image_size)
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 decodes in this process), got {workers}")
        self.prefetch = max(2, 2 * self.workers) if prefetch is None else int(prefetch)
        if self.prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a float type, got {dtype!r}")
        self.start_method = start_method or default_start_method()
        if transport not in ("auto", "shm", "pipe"):
            raise ValueError(f"transport must be 'auto', 'shm' or 'pipe', got {transport!r}")
        self.transport = transport
        _pil()  # fail now, not in a worker, if Pillow is missing
        self.classes, self._train_names, self._train_labels = _scan(self.root / "train", None)
        _, self._test_names, self._test_labels = _scan(self.root / "val", self.classes)
        self.n_classes = len(self.classes)
        self.image_shape: tuple[int, ...] = (3, self.image_size, self.image_size)
        self._pool: _Pool | None = None
        self._finalizer: weakref.finalize | None = None

    def __repr__(self) -> str:
        return (
            f"ImageFolder({str(self.root)!r}, classes={self.n_classes}, train={self.n_train}, "
            f"test={self.n_test}, image_size={self.image_size}, workers={self.workers})"
        )

    # ---- sizes

    @property
    def n_train(self) -> int:
        return len(self._train_names)

    @property
    def n_test(self) -> int:
        return len(self._test_names)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training batches per epoch, the last one partial if ``batch_size`` does not divide ``n_train``."""
        return math.ceil(self.n_train / _positive(batch_size, "batch_size"))

    def train_path(self, i: int) -> str:
        return os.path.join(self.root, "train", os.fsdecode(self._train_names[i]))

    def test_path(self, i: int) -> str:
        return os.path.join(self.root, "val", os.fsdecode(self._test_names[i]))

    def _train_spec(self, idx: np.ndarray, augment: _Augment | None) -> _Spec:
        names = [os.fsdecode(n) for n in self._train_names[idx]]
        return _Spec(os.path.join(self.root, "train"), names, self._train_labels[idx], augment)

    # ---- BatchSource

    def train_batches(self, batch_size: int, *, epoch: int, seed: int, start: int = 0) -> Iterator[Batch]:
        """Epoch ``epoch``'s augmented batches in :func:`epoch_order` order, from step ``start`` on."""
        batch_size = _positive(batch_size, "batch_size")
        steps = math.ceil(self.n_train / batch_size)
        if not 0 <= int(start) <= steps:
            raise ValueError(f"start must be in 0..{steps} (steps per epoch), got {start}")
        order = epoch_order(self.n_train, seed, epoch)
        specs = (
            self._train_spec(idx, _Augment(int(seed), int(epoch), tuple(idx.tolist())))
            for idx in (order[step * batch_size : (step + 1) * batch_size] for step in range(int(start), steps))
        )
        return self._stream(specs)

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        """The validation images in file order (class, then name), center-cropped."""
        batch_size = _positive(batch_size, "batch_size")
        folder = os.path.join(self.root, "val")
        specs = (
            _Spec(
                folder,
                [os.fsdecode(n) for n in self._test_names[i : i + batch_size]],
                self._test_labels[i : i + batch_size],
                None,
            )
            for i in range(0, self.n_test, batch_size)
        )
        return self._stream(specs)

    def probe(self, n: int) -> Batch:
        """``n`` training images spread evenly over the (class-sorted) training set, center-cropped."""
        n = min(_positive(n, "n"), self.n_train)
        idx = np.linspace(0, self.n_train - 1, n).round().astype(np.int64)
        chunk = max(1, min(128, math.ceil(n / max(1, self.workers))))
        xs, ys = zip(*self._stream(self._train_spec(idx[i : i + chunk], None) for i in range(0, n, chunk)))
        return np.concatenate(xs), np.concatenate(ys)

    # ---- streaming

    def _stream(self, specs: Iterator[_Spec]) -> Iterator[Batch]:
        if self.workers == 0:
            for spec in specs:
                x = np.empty((len(spec.names), *self.image_shape), dtype=self.dtype)
                fill_batch(x, [os.path.join(spec.folder, name) for name in spec.names], spec.augment)
                yield x, spec.labels.astype(np.int64)
            return
        pool = self._start()
        gen = pool.new_generation()
        pending: deque[_Job] = deque()
        more = True

        def refill() -> None:
            nonlocal more
            while more and len(pending) < self.prefetch and pool.can_submit():
                spec = next(specs, None)
                if spec is None:
                    more = False
                    return
                shape = (len(spec.names), *self.image_shape)
                pending.append(pool.submit(gen, spec, shape, self.dtype))

        try:
            while True:
                refill()
                if not pending:
                    if not more:
                        return
                    pool.pump(self.dtype, timeout=1.0)  # every worker is still busy with abandoned batches
                    continue
                while pending[0].result is None:
                    pool.pump(self.dtype, timeout=1.0)
                    refill()
                job = pending.popleft()
                x = pool.take(job)
                refill()  # keep batches decoding while the consumer works on this one
                yield x, job.labels.astype(np.int64)
                del x
        finally:
            if pool is self._pool and pool.broken is None:
                pool.abandon(gen, pending)

    def _start(self) -> _Pool:
        if self._pool is not None and self._pool.broken is not None:
            self.close()
        if self._pool is None:
            self._pool = _Pool(self.workers, self.start_method, self.transport)
            self._finalizer = weakref.finalize(self, self._pool.shutdown)
        return self._pool

    # ---- lifetime

    def close(self) -> None:
        """Stop the workers and free the shared memory (batches already handed out stay valid)."""
        if self._finalizer is not None:
            self._finalizer()  # runs _Pool.shutdown once
        self._pool = None
        self._finalizer = None

    def __enter__(self) -> ImageFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _positive(value: int, what: str) -> int:
    if int(value) < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return int(value)


def load_imagenet(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    image_size: int = 224,
    workers: int | None = None,
    dtype: str = "float32",
    prefetch: int | None = None,
    start_method: str | None = None,
    transport: str = "auto",
    **ignored: Any,
) -> ImageFolder:
    """ImageNet from ``data_dir`` (see :func:`find_imagenet`) as a streaming :class:`ImageFolder`.

    ``workers`` decoding processes (default: :func:`default_workers`; 0 decodes in this process)
    keep ``prefetch`` batches in flight (default ``2 * workers``: each worker one batch in progress
    and one queued; a 128-image 224² float32 batch is 77 MB). Other keyword arguments
    (``flatten``, ``download``) are accepted for a uniform loader signature and ignored.
    """
    del ignored
    return ImageFolder(
        find_imagenet(data_dir),
        image_size=image_size,
        workers=workers,
        prefetch=prefetch,
        dtype=dtype,
        start_method=start_method,
        transport=transport,
    )

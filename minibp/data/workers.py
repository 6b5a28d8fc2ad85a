"""The worker pool of the ImageNet folder loader: processes that build whole batches in shared memory.

This module is the parent's side: starting the workers, the shared-memory blocks, the jobs in
flight, a worker's death, and shutdown. What runs inside a worker is in
:mod:`minibp.data.worker_process`, which imports nothing from here.

:class:`~minibp.data.imagenet.ImageFolder` hands the pool one batch at a time (image names under a
folder, labels, augmentation); the pool picks the least loaded worker process and the worker
builds the whole batch with the ``fill`` function the pool was given
(:func:`minibp.data.imagenet_transforms.fill_batch`: decode, augment, normalise). The worker entry,
:func:`~minibp.data.worker_process._worker_main`, and ``fill`` are module-level functions of
importable modules, so that a worker started by ``forkserver`` or ``spawn`` can import them by
qualified name.

Transport: batches travel back through shared memory (``multiprocessing.shared_memory``) that the
consumer receives without a copy: a block is reused only once the array handed out over it has
been garbage collected, so a batch stays valid for as long as it is referenced. Where ``/dev/shm``
lacks room (a container's 64 MB default), batches come back through the worker's pipe instead
(``transport="pipe"`` always, ``"shm"`` never).

Start method: workers are started from a clean ``forkserver`` process (``spawn`` where there is
none) rather than forked from the training process, which may hold CUDA state and helper threads.
The workers never touch the GPU: ``MINIBP_BACKEND`` is hidden from them so that ``import minibp``
does not select CuPy there. Workers ignore Ctrl-C (the training loop's to handle) and stop by
themselves when their parent dies.

In-order delivery: every batch is a job with an id. A worker is sent at most
:data:`WORKER_QUEUE` jobs at a time (one being built, one waiting), which keeps the task messages
far below a socket's buffer, so the main process never blocks sending a task to a worker that is
blocked sending it a batch. Jobs finish in any order; the consumer keeps its jobs in the order it
submitted them and takes the oldest once it is done, so batches come out in the order asked for
whatever the workers' scheduling.

Cancellation: a consumer that stops early (a ``break``, an exception in the loop body) abandons its
jobs: ready batches are freed, and workers skip the rest. Each stream of batches is a generation;
a ``("cancel", generation)`` message reaches the worker, which checks for it between images.
Shutdown stops the workers (terminating any that do not stop within :data:`JOIN_SECONDS`) and
frees the shared memory; batches already handed out stay valid.

A dead worker: the pool waits on the workers' process sentinels as well as their pipes, so a
worker that dies raises a ``RuntimeError`` instead of hanging. The message names the worker, the
signal or exit code, and the first image of the batch it was building, with a hint for SIGBUS
(``/dev/shm`` is probably full) and SIGKILL (out of memory?). The pool is then broken: submitting
to it or waiting on it raises the same error. An image that cannot be decoded is not a death: the
worker reports the ``error`` exception's message and the consumer gets that exception back.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import signal
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import connection, shared_memory
from typing import Any

import numpy as np

from .worker_process import _worker_main

__all__ = ["default_start_method", "default_workers"]

SHM_HEADROOM = 64 << 20  # bytes /dev/shm must keep free beyond a new block, else use the pipe
JOIN_SECONDS = 0.5  # how long close() waits for workers to stop (they check between images)
WORKER_QUEUE = 2  # batches sent to one worker at a time: one being built, one waiting


def default_workers() -> int:
    """Worker processes by default: the CPUs this process may use, minus one for the training loop."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, n - 1)


def default_start_method() -> str:
    """The start method for workers: forkserver where the platform has it (Linux, macOS), else spawn."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


# --------------------------------------------------------------------------- what the pool is asked for


@dataclass(frozen=True)
class _Spec:
    """One batch to build: image ``names`` (``wnid/file``) under ``folder``, their labels, the augmentation.

    ``augment`` (picklable, or None) goes to the pool's ``fill`` function as it is.
    """

    folder: str
    names: list[str]
    labels: np.ndarray
    augment: Any


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
    """Worker processes with one pipe each, the shared-memory blocks, and the jobs in flight.

    The workers build batches with ``fill`` and report its ``error`` exceptions, raised again here
    as ``error(message)``; both are module-level, so that ``forkserver`` and ``spawn`` children
    can import them by qualified name.
    """

    def __init__(
        self, workers: int, start_method: str, transport: str, fill: Callable[..., None], error: type[Exception]
    ) -> None:
        self.transport = transport
        self.error = error
        self.slots: list[_Slot] = []
        self.jobs: dict[int, _Job] = {}
        self.next_job = 0
        self.next_gen = 0
        self.broken: str | None = None
        ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            ctx.set_forkserver_preload(["__main__", _worker_main.__module__, fill.__module__])
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
                    proc = ctx.Process(
                        target=_worker_main, args=(theirs, fill, error), name=f"minibp-imagenet-{i}", daemon=True
                    )
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
            job.result = self.error(rest[0])
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

"""What runs inside an ImageNet loader worker process: its loop, and the exception that cancels a batch.

The pool in :mod:`minibp.data.workers` (the parent's side) starts each worker at
:func:`_worker_main` with one end of a pipe and the ``fill`` function that builds a batch
(:func:`minibp.data.imagenet_transforms.fill_batch`: decode, augment, normalise). This module is
kept apart from the pool so that a worker holds only what it runs: it imports nothing of the pool
and nothing of the decoding, which arrives as ``fill``. A worker started by ``forkserver`` or
``spawn`` imports this module and ``fill``'s module by qualified name.

A worker builds the batches its pipe asks for, one at a time, into the shared-memory block the
parent names (opened without registering it with the resource tracker where Python allows, since
the parent owns it) or, where the parent names none, into a scratch buffer whose bytes then follow
its reply through the pipe. Between images it reads its pipe, so that a ``("cancel", generation)``
message makes it skip the rest of that generation's batches and ``None`` makes it stop. It ignores
Ctrl-C (the training loop's to handle) and stops by itself when its parent dies. An ``error`` that
``fill`` raises (an image that cannot be decoded) is reported to the parent; any other exception
ends the worker, which the pool then reports as a dead worker.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Callable
from multiprocessing import connection, shared_memory
from typing import Any

import numpy as np


class _Cancelled(Exception):
    """Raised by a ``fill`` function when its ``stop()`` says the batch is no longer wanted."""


def _attach(name: str) -> shared_memory.SharedMemory:
    """Open an existing block without registering it with the resource tracker where Python allows."""
    try:
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]  # 3.13+
    except TypeError:
        return shared_memory.SharedMemory(name=name)


def _build(
    out: np.ndarray,
    paths: list[str],
    augment: Any,
    stop: Any,
    job: int,
    fill: Callable[..., None],
    error: type[Exception],
) -> tuple[Any, ...]:
    """Fill ``out`` in a worker with ``fill(out, paths, augment, stop)``; the reply that says how it went."""
    try:
        fill(out, paths, augment, stop)
    except _Cancelled:
        return ("cancelled", job)
    except error as err:
        return ("error", job, str(err))
    return ("done", job)


def _worker_main(conn: connection.Connection, fill: Callable[..., None], error: type[Exception]) -> None:
    """A worker process: build the batches its pipe asks for, until told to stop or the parent dies.

    ``fill(out, paths, augment, stop)`` decodes a batch (raising :class:`_Cancelled` once ``stop()``
    is true); an ``error`` it raises is reported, any other exception ends the worker.

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

                reply = _build(out, paths, augment, stop, job, fill, error)
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

"""Data-parallel training: several processes train one network, each on its share of every batch.

The design is ChainerMN's (Akiba et al. 2017) for NumPy/CuPy arrays: a *communicator* that the
training step uses in one place, gradients all-reduced between the feedback path and the
optimizer step, and a dataset scattered across the ranks.

* ``mpiexec -n N minibp train ...`` starts N processes (*ranks*) of one run. Every rank builds the
  same network from the same seed and reads the same global batch indices (``epoch_order``); each
  takes its own share of every batch (:func:`minibp.data.base.share`).
* After the feedback path each rank's gradients (``W``, ``b``, batch norm's ``γ``/``β``, KP's and
  the alignment family's ``B``) are replaced by their average over the global batch,
  ``g = Σ_r (n_r / G) g_r`` with ``n_r`` the rank's examples and ``G`` the batch's
  (:meth:`Group.average_grads`). The loss of a rank is the mean over its share, so this is the
  gradient of the mean loss over the global batch; the optimizer then makes the same step on every
  rank, and every rank holds the same weights (``train`` checks it after every epoch).
* Rules that work between steps draw their random numbers from ``(seed, pass)``
  (:func:`~minibp.rules.base.mirror_noise_generator`), so every rank mirrors the same noise into
  the same ``W`` and its ``B`` stays equal to every other rank's, with no communication. The cost
  is that the mirror's work is repeated on every rank rather than divided (the README gives why).
* Batch norm: by default each rank normalises with its own share's statistics and, after every
  step, takes rank 0's running statistics, as PyTorch's ``DistributedDataParallel`` does
  (``broadcast_buffers``). With ``sync_bn`` the statistics are those of the global batch
  (:class:`~minibp.layers.norm.BatchNorm`'s ``group``), equal to one process's.

Transports: :class:`MPIGroup` (mpi4py; NumPy arrays, and CuPy arrays staged through the host)
and :class:`NCCLGroup` (NCCL through ``cupy.cuda.nccl`` for device arrays, with MPI for the
launch and for small host values). Every collective waits at most ``timeout`` seconds: a rank
that died or hangs makes the others stop with a message instead of waiting forever.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .backend import get_array_module, to_numpy

Array = Any

#: environment variables through which launchers tell a process how many ranks there are
#: (MPICH's Hydra and Intel MPI, Open MPI, MVAPICH, SLURM's srun for the job step it starts)
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")

#: how the gradients travel: ``auto`` is NCCL for CuPy arrays where NCCL is available, else MPI
TRANSPORTS = ("auto", "mpi", "nccl")

INSTALL_HINT = (
    'install the MPI extra in this environment: pip install -e ".[mpi]" (mpi4py and MPICH from PyPI), '
    "and launch with the mpiexec it brings"
)


class LaunchError(RuntimeError):
    """The launcher started several ranks that cannot become one run (mpi4py missing, or another MPI's)."""


#: seconds a rank waits after printing why it stops every rank, before MPI_Abort, so that the
#: launcher forwards the message
ABORT_PAUSE_SECONDS = 1.0

#: seconds a rank polls a collective without pause (yielding its core to other processes between
#: polls) before it polls once a millisecond: most collectives finish in microseconds
SPIN_SECONDS = 0.05


def launched_rank() -> int:
    """This process's rank as the launcher numbered it (0 when no launcher did), known before MPI starts."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    if os.environ.get("SLURM_STEP_NUM_TASKS") and os.environ.get("SLURM_PROCID", "").isdigit():
        return int(os.environ["SLURM_PROCID"])
    return 0


def launched_size() -> int:
    """How many ranks the launcher says this run has (1 when no launcher set any of :data:`_SIZE_VARS`)."""
    for var in _SIZE_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


class Group:
    """The ranks of one run; this class is the group of one process, where every collective is the identity.

    ``rank`` is this process's number (0 … size − 1); ``local_rank`` and ``local_size`` count the
    ranks on this machine (to pick a GPU, and to share the CPU cores).
    """

    rank, size, local_rank, local_size = 0, 1, 0, 1
    transport = "none"

    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = float(timeout)
        #: seconds spent in the gradient all-reduce, and the bytes handed to it, since the last :meth:`reset_counters`
        self.comm_seconds, self.comm_bytes = 0.0, 0

    @property
    def is_root(self) -> bool:
        """Whether this rank writes the run folder and prints (rank 0)."""
        return self.rank == 0

    def reset_counters(self) -> None:
        self.comm_seconds, self.comm_bytes = 0.0, 0

    def check_batch(self, batch_size: int, n_train: int) -> None:
        """Refuse a global batch that the ranks cannot share: one N does not divide, or an epoch whose
        last, partial batch leaves a rank without examples."""
        if batch_size % self.size:
            raise ValueError(
                f"--batch-size {batch_size} is the global batch, shared by {self.size} ranks, and {self.size} "
                f"does not divide it: give a multiple of {self.size}"
            )
        last = n_train % batch_size
        if 0 < last < self.size:
            raise ValueError(
                f"each epoch ends with a batch of {last} example(s), fewer than the {self.size} ranks, so a rank "
                f"would have none: choose a --batch-size that leaves none or at least {self.size} over "
                f"({n_train} training examples)"
            )

    # ---- collectives (the identity for one process)

    def average_grads(self, layers: Iterable[Any], share: float) -> None:
        """Replace every gradient in ``layer.grads`` by ``Σ_r share_r · grad_r`` over the ranks, where
        ``share`` is this rank's fraction of the global batch (its examples over the batch's)."""

    def sum_arrays(self, arrays: Sequence[Array]) -> list[Array]:
        """Elementwise sums over the ranks of small device arrays (synchronized batch norm's moments)."""
        return list(arrays)

    def sum_host(self, values: Sequence[float]) -> np.ndarray:
        """Elementwise sums over the ranks of a few host numbers (metrics, losses, counts)."""
        return np.asarray(values, dtype=np.float64)

    def any(self, flag: bool) -> bool:
        """Whether any rank passed True (a stop request, so that every rank stops at the same step)."""
        return bool(flag)

    def broadcast_arrays(self, arrays: Sequence[Array]) -> None:
        """Overwrite ``arrays`` in place with rank 0's (batch norm's running statistics)."""

    def same_on_every_rank(self, values: Sequence[float]) -> bool:
        """Whether every rank passed the same ``values`` (checksums of the weights)."""
        return True

    def abort(self, message: str, code: int = 3) -> None:
        """Print ``message`` and stop every rank."""
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(code)


def _pack(arrays: Sequence[Array]) -> Array:
    """The arrays flattened into one float64 buffer, on their own device (one message for them all)."""
    xp = get_array_module(arrays[0])
    return xp.concatenate([a.astype(xp.float64).reshape(-1) for a in arrays])


def _pieces(flat: Array, arrays: Sequence[Array]) -> Iterator[Array]:
    """Views of the 1-D ``flat`` in the sizes and shapes of ``arrays``, in order."""
    offset = 0
    for a in arrays:
        yield flat[offset : offset + a.size].reshape(a.shape)
        offset += a.size


def weight_checksums(net: Any) -> list[float]:
    """Two numbers per trained array of ``net`` (its sum and its sum of squares, in float64), for
    checking that every rank holds the same weights; one device→host copy each."""
    sums = []
    for layer in net.param_layers:
        for value in layer.params.values():
            xp = get_array_module(value)
            v = value.astype(xp.float64)
            sums.append(v.sum())
            sums.append((v * v).sum())
    for value in net.buffer_arrays().values():
        sums.append(value.astype(get_array_module(value).float64).sum())
    return [float(to_numpy(s)) for s in sums]


class MPIGroup(Group):
    """The ranks of ``MPI.COMM_WORLD`` (mpi4py). Device arrays travel through the host."""

    transport = "mpi"

    def __init__(self, comm: Any = None, timeout: float = 600.0) -> None:
        super().__init__(timeout)
        from mpi4py import MPI  # noqa: PLC0415

        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self._flat: dict[Any, Any] = {}

    def _wait(self, request: Any, what: str) -> None:
        """Wait for a non-blocking collective, at most ``timeout`` seconds, then stop every rank."""
        start = time.monotonic()
        while not request.Test():
            waited = time.monotonic() - start
            if waited > SPIN_SECONDS:  # a collective that takes longer need not keep a core busy
                time.sleep(0.001)
            else:  # where ranks outnumber free cores, the rank this one waits for gets the core
                os.sched_yield()
            if waited > self.timeout:
                self.abort(
                    f"minibp: rank {self.rank} of {self.size}: no answer from the other ranks within "
                    f"{self.timeout:g} s ({what}): a rank has died or hangs, so every rank stops. The run's last "
                    "checkpoint is kept; continue it with --resume (raise --collective-timeout if a rank is only slow)"
                )

    def _flat_buffer(self, dtype: Any, n: int, xp: Any) -> Any:
        key = (xp.__name__, np.dtype(dtype).str)
        buf = self._flat.get(key)
        if buf is None or buf.size < n:
            buf = self._flat[key] = xp.empty(n, dtype=dtype)
        return buf[:n]

    def average_grads(self, layers: Iterable[Any], share: float) -> None:
        slots = [(layer, key, g) for layer in layers for key, g in layer.grads.items()]
        if not slots:
            return
        t0 = time.perf_counter()
        by_dtype: dict[Any, list[tuple[Any, str, Any]]] = {}
        for slot in slots:
            by_dtype.setdefault(np.dtype(slot[2].dtype), []).append(slot)
        for dtype, group in by_dtype.items():
            grads = [g for _, _, g in group]
            flat = self._flat_buffer(dtype, sum(int(g.size) for g in grads), get_array_module(grads[0]))
            for piece, g in zip(_pieces(flat, grads), grads):  # pack: one message instead of one per array
                piece[...] = g
            flat *= dtype.type(share)
            self._exchange(flat, "the gradient all-reduce")
            for (layer, key, _), piece in zip(group, _pieces(flat, grads)):  # views of the flat buffer
                layer.grads[key] = piece
            self.comm_bytes += int(flat.nbytes)
        self.comm_seconds += time.perf_counter() - t0

    def _exchange(self, flat: Any, what: str, root: int | None = None) -> None:
        """Sum the 1-D array ``flat`` over the ranks in place or, with a ``root``, overwrite it with that
        rank's; a device array is staged through the host."""
        xp = get_array_module(flat)
        host = flat if xp is np else to_numpy(flat)  # explicit copy: MPI from PyPI does not read GPU memory
        if root is None:
            self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM), what)
        else:
            self._wait(self.comm.Ibcast(host, root=root), what)
        if xp is not np:
            flat[...] = xp.asarray(host)

    def sum_arrays(self, arrays: Sequence[Array]) -> list[Array]:
        if not arrays:
            return []
        flat = _pack(arrays)
        self._exchange(flat, "synchronized batch norm")
        return [piece.astype(a.dtype) for piece, a in zip(_pieces(flat, arrays), arrays)]

    def sum_host(self, values: Sequence[float]) -> np.ndarray:
        buf = np.array(values, dtype=np.float64)
        self._exchange(buf, "summing metrics")
        return buf

    def any(self, flag: bool) -> bool:
        return bool(self.sum_host([1.0 if flag else 0.0])[0] > 0)

    def broadcast_arrays(self, arrays: Sequence[Array]) -> None:
        if not arrays:
            return
        flat = _pack(arrays)
        self._exchange(flat, "broadcasting batch norm's running statistics", root=0)
        for piece, a in zip(_pieces(flat, arrays), arrays):
            a[...] = piece

    def same_on_every_rank(self, values: Sequence[float]) -> bool:
        mine = np.asarray(values, dtype=np.float64)
        low, high = mine.copy(), mine.copy()
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, low, op=self.MPI.MIN), "comparing weights")
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, high, op=self.MPI.MAX), "comparing weights")
        return bool(np.array_equal(low, high, equal_nan=True))

    def abort(self, message: str, code: int = 3) -> None:
        print(message, file=sys.stderr, flush=True)
        # MPI_Abort tears down the launcher's forwarding of output at once; without a pause the message
        # can be lost on its way to mpiexec's terminal
        time.sleep(ABORT_PAUSE_SECONDS)
        self.comm.Abort(code)


class NCCLGroup(MPIGroup):
    """Gradients, synchronized batch norm's sums and the running statistics exchanged by NCCL on the
    GPUs (``cupy.cuda.nccl``), never copied to the host; MPI starts the NCCL communicator and
    carries the few host numbers (losses, metrics, the stop agreement). One GPU per rank: rank ``r``
    uses device ``local_rank mod (GPUs on its machine)``."""

    transport = "nccl"

    def __init__(self, comm: Any = None, timeout: float = 600.0) -> None:
        super().__init__(comm, timeout)
        import cupy  # noqa: PLC0415
        from cupy.cuda import nccl  # noqa: PLC0415

        self.cupy, self.nccl = cupy, nccl
        cupy.cuda.Device(self.local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.comm.bcast(uid, root=0)
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
        self._pending: tuple[Any, str] | None = None  # the last NCCL call's event, and what it was

    def _exchange(self, flat: Any, what: str, root: int | None = None) -> None:
        if get_array_module(flat) is np:
            super()._exchange(flat, what, root)
        else:
            self._nccl(flat, what, root)

    def _nccl(self, flat: Any, what: str, root: int | None = None) -> None:
        """Sum (or, with a ``root``, broadcast from it) the device array ``flat`` over the ranks in place,
        on the current stream. The host waits for the previous NCCL call first, at most ``timeout``
        seconds, so it runs at most one collective ahead of the device and a hang is noticed."""
        self._wait_device(what)
        stream = self.cupy.cuda.get_current_stream()
        kind = self._types[np.dtype(flat.dtype)]
        if root is None:
            self.nccl_comm.allReduce(flat.data.ptr, flat.data.ptr, flat.size, kind, self.nccl.NCCL_SUM, stream.ptr)
        else:
            self.nccl_comm.bcast(flat.data.ptr, flat.size, kind, root, stream.ptr)
        self._pending = (stream.record(), what)

    def _wait_device(self, what: str) -> None:
        if self._pending is None:
            return
        done, previous = self._pending
        deadline = time.monotonic() + self.timeout
        while not done.done:
            time.sleep(0.0005)
            if time.monotonic() > deadline:
                self.nccl_comm.abort()
                self.abort(
                    f"minibp: rank {self.rank} of {self.size}: NCCL did not finish {previous} within "
                    f"{self.timeout:g} s: a rank has died or hangs, so every rank stops"
                )
        self._pending = None


_WORLD: Group | None = None


def world(backend: str = "numpy", transport: str = "auto", timeout: float = 600.0) -> Group:
    """The group of this run's ranks, as the launcher started them: :class:`Group` for one process,
    else :class:`MPIGroup` or :class:`NCCLGroup` (``transport``: ``auto`` takes NCCL for the CuPy
    backend where CuPy has it). Made once per process; raises :class:`LaunchError` with what to install
    when a launcher started several ranks and mpi4py is missing, or when mpi4py's MPI is not the
    launcher's."""
    global _WORLD
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}: choose one of {', '.join(TRANSPORTS)}")
    if _WORLD is not None:
        _WORLD.timeout = float(timeout)
        return _WORLD
    if transport == "nccl" and backend != "cupy":
        raise ValueError("--transport nccl carries GPU arrays: use it with --backend cupy")
    size = launched_size()
    if size == 1 and transport == "auto":
        _WORLD = Group(timeout)
        return _WORLD
    try:
        import mpi4py  # noqa: F401, PLC0415
    except ImportError:
        started = f"this process was started as one of {size} ranks" if size > 1 else f"--transport {transport}"
        raise LaunchError(f"{started}, but mpi4py is missing: {INSTALL_HINT}") from None
    use_nccl = transport == "nccl" or (transport == "auto" and backend == "cupy" and _has_nccl())
    group = NCCLGroup(timeout=timeout) if use_nccl else MPIGroup(timeout=timeout)
    if group.size != size:
        raise LaunchError(
            f"the launcher started {size} ranks, but mpi4py's MPI sees {group.size}: the mpiexec used is not "
            "the one of mpi4py's MPI library, so each process would train alone. Launch with the mpiexec of "
            "that library (with the MPI extra: the one in this environment's bin/), or rebuild mpi4py "
            "against the launcher's MPI"
        )
    _WORLD = group
    return _WORLD


def several_ranks() -> bool:
    """Whether this process is one of several ranks that :func:`world` has joined."""
    return _WORLD is not None and _WORLD.size > 1


def abort_world(message: str) -> None:
    """Stop every rank of this run with ``message`` (a rank that fails alone must not leave the others
    waiting for it); does nothing where this process is the only rank."""
    if _WORLD is not None and several_ranks():
        _WORLD.abort(message)


def _has_nccl() -> bool:
    try:
        from cupy.cuda import nccl  # noqa: F401, PLC0415
    except ImportError:
        return False
    return bool(getattr(nccl, "available", True))

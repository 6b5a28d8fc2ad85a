"""How many BLAS threads a training step gets: one for small products, the library's count for large ones.

A matrix product of a few million multiply-adds takes less time than BLAS threads take to wake
up and meet, and on a machine whose other cores are busy the threads also wait for a core, so a
step can take several times as long as on one thread. What counts is the size of each product,
so the measure is the forward pass's multiply-adds per weight layer at the run's batch size: a
run below :data:`ONE_THREAD_BELOW` is limited to one BLAS thread for its duration (through
threadpoolctl); a larger one keeps the count the library chose (``OPENBLAS_NUM_THREADS`` and the
like still set it). ``benchmarks/bench_threads.py`` measures where the boundary lies (its table
is in ``benchmarks/README.md``).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .backend import get_array_module
from .layers.conv import Conv2D
from .network import Network

#: multiply-adds per weight layer in one training step's forward pass, below which one BLAS thread is used
ONE_THREAD_BELOW = 10e6


def forward_macs(net: Network, x: Any) -> int:
    """Multiply-adds of the weight layers in a forward pass of ``x`` (matrix products only)."""
    net.forward(x, train=False)
    total = 0
    for layer in net.weight_layers:
        if isinstance(layer, Conv2D):
            n, _, h, w = layer.x.shape
            ho = (h + 2 * layer.padding - layer.k) // layer.stride + 1
            wo = (w + 2 * layer.padding - layer.k) // layer.stride + 1
            total += n * ho * wo * layer.W.size
        else:
            total += layer.x.shape[0] * layer.W.size
    return total


def blas_threads_for(net: Network, example: Any, batch_size: int, ranks_here: int = 1) -> AbstractContextManager[Any]:
    """A context in which ``net``'s training steps on batches of ``batch_size`` run: one BLAS thread
    when a step's forward products (measured on ``example``, a batch of one) average below
    :data:`ONE_THREAD_BELOW` multiply-adds per weight layer, else the BLAS library's own thread
    count, or, where ``ranks_here`` ranks of a data-parallel run share the machine, its cores
    divided among them. On a GPU backend, nothing changes."""
    if get_array_module(example).__name__ != "numpy":
        return nullcontext()
    large = forward_macs(net, example) * batch_size / len(net.weight_layers) >= ONE_THREAD_BELOW
    if large and ranks_here <= 1:
        return nullcontext()
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    limit = max(1, (os.cpu_count() or 1) // ranks_here) if large else 1
    return threadpool_limits(limits=limit, user_api="blas")

"""How many BLAS threads a run's steps get (minibp.threads): one for small work, the library's count otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from minibp import mlp
from minibp.models import lenet
from minibp.threads import ONE_THREAD_BELOW, blas_threads_for, forward_macs

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def test_forward_macs_counts_every_weight_layers_products():
    net = mlp([64, 256, 10], "relu", seed=0)
    assert forward_macs(net, np.zeros((3, 64), np.float32)) == 3 * (64 * 256 + 256 * 10)
    cnn = lenet((1, 8, 8), 10, width=6)
    # conv 1→6, 5×5, padding 2 on 8×8: 64 positions; pool to 4×4; conv 6→16 on 4×4: 16 positions;
    # pool to 2×2; dense 64→120→84→10
    expected = 64 * 6 * 1 * 25 + 16 * 16 * 6 * 25 + 64 * 120 + 120 * 84 + 84 * 10
    assert forward_macs(cnn, np.zeros((1, 1, 8, 8), np.float32)) == expected


def test_small_steps_run_on_one_blas_thread_and_large_ones_keep_the_librarys_count():
    before = _blas_threads()
    if not before:
        pytest.skip("NumPy's BLAS is not visible to threadpoolctl here")
    small = mlp([64, 256, 256, 10], "relu", seed=0)
    example = np.zeros((1, 64), np.float32)
    assert forward_macs(small, example) * 32 / 3 < ONE_THREAD_BELOW
    with blas_threads_for(small, example, batch_size=32):
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before  # restored afterwards
    big = mlp([784, 1000, 1000, 10], "relu", seed=0)
    example = np.zeros((1, 784), np.float32)
    assert forward_macs(big, example) * 128 / 3 >= ONE_THREAD_BELOW
    with blas_threads_for(big, example, batch_size=128):
        assert _blas_threads() == before

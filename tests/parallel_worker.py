"""Run by tests/test_parallel.py under ``mpiexec -n 2``: the checks that need to look inside every rank.

    python tests/parallel_worker.py same-weights   # every rule: each rank's arrays equal after every step
    python tests/parallel_worker.py hang           # rank 1 never joins; rank 0 must time out and stop both
    python tests/parallel_worker.py crash OUT      # rank 1 fails in its 3rd step; it must stop rank 0 at once

Exits 0 when the check holds; prints what differs and exits 1 otherwise.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from minibp import RULES, Network, get_rule, mlp
from minibp.data import load_dataset
from minibp.layers import BatchNorm, Conv2D, Dense, Flatten, ReLU
from minibp.losses import get_loss
from minibp.optim import SGD
from minibp.parallel import MPIGroup, weight_checksums
from minibp.step import train_step


def small_net(rule: str) -> Network:
    """A conv layer, batch norm after the ReLU and two dense layers: every kind of array a rule trains."""
    rng = np.random.default_rng(0)
    layers = [
        Conv2D(1, 3, 3, padding=1, rng=rng),
        ReLU(),
        BatchNorm(3),
        Flatten(),
        Dense(3 * 8 * 8, 16, rng=rng),
        ReLU(),
        Dense(16, 10, rng=rng),
    ]
    return Network(layers) if rule != "dfa" else mlp([64, 16, 10], seed=0)


def same_weights(group: MPIGroup) -> int:
    data = load_dataset("digits", flatten=False)
    loss_fn = get_loss("cross_entropy")
    failures = []
    for name in RULES:
        net = small_net(name)
        rule = get_rule(name, seed=0)
        shape = (-1,) if name == "dfa" else data.image_shape
        x_all = data.x_train.reshape(len(data.x_train), *shape).astype(np.float32)
        net.init_feedback(rule, np.random.default_rng(1), example=x_all[:1])
        opt = SGD(0.01, 0.9, 5e-3)
        for step, (x, y) in enumerate(data.train_batches(32, epoch=1, seed=0, part=(group.rank, group.size))):
            if step == 12:
                break
            x = x.reshape(len(x), *shape).astype(np.float32)
            train_step(net, rule, loss_fn, opt, x, y, group=group, share=len(y) / 32)
            sums = np.asarray(weight_checksums(net))
            everyone = group.comm.allgather(sums)
            if not all(np.array_equal(everyone[0], other) for other in everyone[1:]):
                failures.append(f"{name}: ranks differ after step {step + 1}")
                break
    if group.rank == 0:
        print("\n".join(failures) or f"every rank held the same arrays after every step, rules {', '.join(RULES)}")
    return 1 if failures else 0


def hang(group: MPIGroup) -> int:
    if group.rank == 1:
        time.sleep(60)  # a rank that hangs (or died without its launcher noticing)
        return 0
    group.timeout = 1.0
    group.sum_host([1.0])  # stops every rank (MPI_Abort) after the timeout
    return 0


def crash(out: str) -> int:
    """``minibp train`` in which rank 1's third training step raises an error of its own."""
    from minibp.cli import main  # noqa: PLC0415
    from minibp.parallel import launched_rank  # noqa: PLC0415

    if launched_rank() == 1:
        loop = sys.modules["minibp.train"]  # the module, which minibp's train function hides
        steps = []
        real_step = loop.train_step

        def failing_step(*args: object, **kw: object) -> object:
            steps.append(1)
            if len(steps) == 3:
                raise ZeroDivisionError("a fault of rank 1 alone")
            return real_step(*args, **kw)

        loop.train_step = failing_step
    return main(["train", "--epochs", "2", "--quiet", "--out", out])


if __name__ == "__main__":
    if sys.argv[1] == "crash":
        sys.exit(crash(sys.argv[2]))
    world = MPIGroup(timeout=120)
    sys.exit({"same-weights": same_weights, "hang": hang}[sys.argv[1]](world))

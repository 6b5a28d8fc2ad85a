"""The one training step: the paper's engaged mode, then the rule's work between steps (Fig 1).

:func:`train_step` is the step that :func:`minibp.train` runs, and so do the benchmarks, the
notebooks and the tests, so that a timing or a check of "a step" is of this step:

1. forward path, eq (1);
2. loss and the output error ``δ_L = ∂L/∂(output)``;
3. feedback path, eqs (2)/(3), with the forward gradients of eq (4) and, for KP, ``B``'s
   gradient of eq (17);
   with several ranks (:mod:`minibp.parallel`), each rank's gradients are then replaced by their
   average over the global batch: the one place where ranks exchange gradients;
4. optimizer step, eqs (16)–(17) (heavy-ball momentum is minibp's addition, off at 0);
5. ``rule.after_step``: the weight mirror's mirror mode, eqs (6)–(7); nothing for the others.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .network import Network
from .optim import SGD
from .parallel import Group
from .rules import Rule

Array = Any


class Step(NamedTuple):
    """What a training step leaves: the batch's mean loss and the network's output, both
    arrays on the device (a 0-d loss), so that reading them is the caller's choice."""

    loss: Array
    output: Array


def train_step(
    net: Network,
    rule: Rule,
    loss_fn: Any,
    optimizer: SGD,
    x: Array,
    y: Array,
    *,
    group: Group | None = None,
    share: float = 1.0,
) -> Step:
    """One training step of ``net`` under ``rule`` on the batch ``(x, y)``; returns its loss and output.

    ``loss_fn(output, y)`` returns the mean loss and its gradient with respect to the output.
    With a ``group`` of several ranks, ``(x, y)`` is this rank's share of the global batch, a
    fraction ``share`` of it; the gradients are averaged over the ranks before the optimizer step
    and, unless batch norm is synchronized, rank 0's running statistics are taken after it.
    Nothing is copied to the host on one process (NCCL keeps it so on several GPUs).
    """
    exchanges = group is not None and group.transport != "none"  # not for the group of one process
    out = net.forward(x)  # eq (1)
    loss, dout = loss_fn(out, y)  # δ_L
    net.backward(dout, rule)  # eqs (2)/(3) and (4); eq (17) for KP
    if exchanges:
        group.average_grads(net.param_layers, share)  # Σ_r share_r · grad_r over the ranks
    optimizer.step(net.param_layers)  # eqs (16)-(17)
    rule.after_step(net)  # eqs (6)-(7) for the weight mirror
    if exchanges:
        group.broadcast_arrays(local_statistics(net))
    return Step(loss, out)


def local_statistics(net: Network) -> list[Array]:
    """The running statistics of ``net``'s batch-norm layers that normalise with their own rank's
    batch (not synchronized), which every rank takes from rank 0 after each step."""
    return [value for layer in net.walk() if getattr(layer, "group", None) is None for value in layer.buffers.values()]

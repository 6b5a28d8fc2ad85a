"""The one training step: the paper's engaged mode, then the rule's work between steps (Fig 1).

:func:`train_step` is the step that :func:`minibp.train` runs, and so do the benchmarks, the
notebooks and the tests, so that a timing or a check of "a step" is of this step:

1. forward path, eq (1);
2. loss and the output error ``δ_L = ∂L/∂(output)``;
3. feedback path, eqs (2)/(3), with the forward gradients of eq (4) and, for KP, ``B``'s
   gradient of eq (17);
4. optimizer step, eqs (16)–(17) (heavy-ball momentum is minibp's addition, off at 0);
5. ``rule.after_step``: the weight mirror's mirror mode, eqs (6)–(7); nothing for the others.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .network import Network
from .optim import SGD
from .rules import Rule

Array = Any


class Step(NamedTuple):
    """What a training step leaves: the batch's mean loss and the network's output, both
    arrays on the device (a 0-d loss), so that reading them is the caller's choice."""

    loss: Array
    output: Array


def train_step(net: Network, rule: Rule, loss_fn: Any, optimizer: SGD, x: Array, y: Array) -> Step:
    """One training step of ``net`` under ``rule`` on the batch ``(x, y)``; returns its loss and output.

    ``loss_fn(output, y)`` returns the mean loss and its gradient with respect to the output.
    Nothing is copied to the host.
    """
    out = net.forward(x)  # eq (1)
    loss, dout = loss_fn(out, y)  # δ_L
    net.backward(dout, rule)  # eqs (2)/(3) and (4); eq (17) for KP
    optimizer.step(net.param_layers)  # eqs (16)-(17)
    rule.after_step(net)  # eqs (6)-(7) for the weight mirror
    return Step(loss, out)

"""Synaptic scaling: a homeostatic gain per unit, in place of batch norm (the paper's Section 6).

Batch norm divides each unit's input by statistics of the whole batch, and its exact derivative
carries errors through those statistics: each example's output depends on every other example
of the batch. A neuron has no access to other "examples"; what it has is its own firing rate
over time. Cortical neurons regulate that rate by *synaptic scaling* (Turrigiano 2008, "The
self-tuning neuron: synaptic scaling of excitatory synapses", Cell 135:422–435): when a neuron's
activity stays above or below its set point for hours, the strengths of all its excitatory
synapses are scaled up or down by one common factor, which preserves their relative strengths.
van Rossum, Bi & Turrigiano (2000, "Stable Hebbian learning from spike timing-dependent
plasticity", J. Neurosci. 20:8812–8821) model it as a multiplicative rule driven by a slow trace
``a`` of the neuron's own activity: ``dw/dt = β w (a_goal − a)`` (plus an integral term), with
``τ_a da/dt = −a + activity``.

:class:`SynapticScaling` is that rule as a layer. Unit ``i`` holds a gain ``g_i`` (its common
synaptic factor) and a trace ``a_i`` of its rate:

* forward: ``out_i = g_i · x_i`` for each example on its own; no statistic of the batch enters;
* after each training batch: ``a_i ← (1 − ρ) a_i + ρ · r̄_i`` with ``r̄_i`` the unit's mean rate
  over the batch's examples, then ``g_i ← g_i · exp(η (a* − a_i) / a*)``;
* backward: ``dx_i = g_i · dy_i`` with the gain the forward pass used: nothing is backpropagated
  through the trace or the gain, which no gradient trains.

The fixed point is ``a_i = a*``: a unit whose mean rate settles at its target stops scaling.

What is the sources' and what is minibp's choice:

* from Turrigiano (2008) and van Rossum et al. (2000): one multiplicative factor on all of a
  unit's input synapses; a slow trace of the unit's own activity; a change of the factor in
  proportion to ``a* − a``;
* minibp's: the factor is applied to the unit's summed drive ``x_i`` (``W x + b`` of the layer
  before), which scales every incoming weight and the bias alike; the step is written
  ``exp(η (a* − a) / a*)`` (van Rossum et al.'s ``β (a_goal − a)`` to first order, with the error
  relative to the target, and a gain that stays positive); the integral term is left out; the
  trace advances once per batch by the batch's mean rate (the examples of a batch stand for
  moments in the unit's life); the rate is ``φ(g_i x_i)`` with ``φ`` the unit's activation
  (``measure``), or the output itself where the layer follows the activation; in a convolution the
  units of one channel share their weights and so share one gain (``units=(C,)``), in a locally
  connected layer each unit has its own (``units=(C, H, W)``); the target, ``ρ`` and ``η``; an
  optional upper bound on the gain (``max_gain``), since a silent unit's gain has no fixed point.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..backend import get_array_module, get_backend
from .activations import Activation, Identity
from .base import Array, Layer

__all__ = ["SynapticScaling"]


class SynapticScaling(Layer):
    """A homeostatic gain per unit: ``out = g ⊙ x``; after each training batch the trace ``a`` of
    each unit's rate moves toward the batch's mean rate by ``rate`` and ``g`` by
    ``exp(lr · (target − a) / target)``.

    ``units`` is the shape of the gain: ``(C,)`` (one per channel: a convolution's units share
    their weights, so they share their scale) or the whole sample's shape, ``(C,)`` for a dense
    layer or ``(C, H, W)`` (one per unit). ``measure`` is the activation whose output is the unit's
    rate: the one right after this layer, or None (identity) where this layer follows the
    activation and its own output is the rate. ``max_gain`` (0: none) bounds the gain: a unit that
    never fires (its patch always blank, or its drive always below threshold) has a rate that no gain
    raises, and its gain otherwise grows by ``e^lr`` every batch. ``buffers`` holds ``gain`` and
    ``activity``, so a checkpoint restores them.
    """

    def __init__(
        self,
        units: int | Sequence[int],
        *,
        measure: Activation | None = None,
        target: float = 0.25,
        rate: float = 0.1,
        lr: float = 0.01,
        max_gain: float = 0.0,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        shape = (int(units),) if isinstance(units, int) else tuple(int(u) for u in units)
        if len(shape) not in (1, 3) or min(shape) < 1:
            raise ValueError(f"SynapticScaling's units are (channels,) or (channels, height, width), got {units}")
        if not target > 0 or not 0 < rate <= 1 or not lr > 0 or not max_gain >= 0:
            raise ValueError(
                f"SynapticScaling needs target > 0, 0 < rate <= 1, lr > 0 and max_gain >= 0, got target={target}, "
                f"rate={rate}, lr={lr}, max_gain={max_gain}"
            )
        self.units, self.target, self.rate, self.lr = shape, float(target), float(rate), float(lr)
        self.max_gain = float(max_gain)
        self.measure = measure if measure is not None else Identity()
        xp = get_backend()
        self.buffers["gain"] = xp.ones(shape, dtype=dtype)
        self.buffers["activity"] = xp.full(shape, self.target, dtype=dtype)  # a unit starts at its set point
        self._gain: Array | None = None  # the gain of the last forward pass, for the backward pass

    def __repr__(self) -> str:
        return f"SynapticScaling({self.units}, target={self.target:g})"

    def _view(self, x: Array) -> tuple[Array, tuple[int, ...]]:
        """The gain broadcast to ``x``'s shape, and the axes a unit's mean rate is taken over."""
        c = self.units[0]
        if x.ndim < 2 or x.shape[1] != c or (len(self.units) == 3 and tuple(x.shape[1:]) != self.units):
            raise ValueError(f"{self!r} expects (batch, {', '.join(map(str, self.units))}, ...), got {tuple(x.shape)}")
        gain = self.buffers["gain"]
        if len(self.units) == 3 or x.ndim == 2:
            return gain[None], (0,)
        return gain.reshape((1, c) + (1,) * (x.ndim - 2)), (0, *range(2, x.ndim))

    def forward(self, x: Array, train: bool = True) -> Array:
        """``out = g ⊙ x``, each example on its own; in training, then the trace and gain steps."""
        gain, axes = self._view(x)
        self._gain = gain
        out = x * gain
        if train:
            xp = get_array_module(x)
            a = self.buffers["activity"]
            a += self.rate * (self.measure.phi(out).mean(axis=axes) - a)  # the slow trace of the unit's rate
            # multiplicative scaling toward the set point (van Rossum et al. 2000; Turrigiano 2008);
            # a new array, so that the backward pass keeps the gain this forward pass used
            gain = self.buffers["gain"] * xp.exp(self.lr * (self.target - a) / self.target)
            if self.max_gain:  # a silent unit's rate never rises: unbounded, its gain grows by e^η a batch
                gain = xp.minimum(gain, self.max_gain)
            self.buffers["gain"] = gain
        return out

    def backward(self, dy: Array) -> Array:
        """``dx = g ⊙ dy``: the gain is a constant of the forward pass; nothing flows into it."""
        return dy * self._gain

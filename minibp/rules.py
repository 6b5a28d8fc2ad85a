"""The five learning rules. A rule decides only two things (see the README):

1. the **feedback matrix** ``F`` that carries ``δ_{l+1}`` back to ``δ_l`` (eq 2 or 3), and
2. **how the feedback weights ``B`` learn**, if they learn at all.

Everything else (forward path eq 1, the forward update eq 4/16, exact derivatives of
activations and losses) is the same for every rule and lives in the layers and
the optimizer. No layer ever asks which rule it is under.

======  ==========================  ================================================
rule    feedback matrix ``F``        how ``B`` learns
======  ==========================  ================================================
``bp``  ``Wᵀ`` (eq 2)               – (weight transport)
``fa``  fixed random ``B`` (eq 3)   never
``ss``  ``sign(W)ᵀ · scale``         – (reads only the signs of ``W``)
``wm``  learned ``B`` (eq 3)        mirror mode, eqs (6)–(7), (11)–(12), with decay
``kp``  learned ``B`` (eq 3)        eq (17): the update of ``W`` transposed, same η, λ, momentum
======  ==========================  ================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import get_array_module, get_backend

if TYPE_CHECKING:
    from .layers.base import WeightLayer
    from .network import Network

Array = Any


def _random_feedback(layer: WeightLayer, rng: np.random.Generator) -> None:
    """A random ``B`` in the layout of ``Wᵀ`` at the scale of ``W``'s initialisation."""
    shape = layer.transpose_weight().shape
    layer.params["B"] = layer.as_feedback(rng.standard_normal(shape) * layer.init_std)


class Rule:
    """Base class. Subclasses override what differs; defaults mean "no feedback weights"."""

    name = ""

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        """Create the layer's feedback weights, if the rule keeps any."""

    def feedback_matrix(self, layer: WeightLayer) -> Array:
        """``F`` in ``δ_l = φ'(y_l) ⊙ F δ_{l+1}``, in the layout of ``Wᵀ``."""
        return layer.params["B"]  # eq (3)

    def feedback_grads(self, layer: WeightLayer) -> None:
        """Add a gradient for ``B`` to ``layer.grads`` if the optimizer should update it."""

    def after_step(self, net: Network) -> None:
        """Work done between training steps (the weight mirror's mirror mode)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint must keep of the rule beyond the layers' arrays (JSON-able)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Backprop(Rule):
    """BP: ``δ_l = φ'(y_l) ⊙ W_{l+1}ᵀ δ_{l+1}`` (eq 2). The only rule that transports weights."""

    name = "bp"

    def feedback_matrix(self, layer: WeightLayer) -> Array:
        return layer.transpose_weight()  # eq (2): weight transport


class FeedbackAlignment(Rule):
    """FA (Lillicrap et al. 2016): a fixed random ``B`` (eq 3) that never learns.

    ``B`` is drawn from the same distribution as ``W``'s initialisation, so it has
    the scale of ``Wᵀ`` without ever reading ``W``.
    """

    name = "fa"

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        _random_feedback(layer, rng)


class SignSymmetry(Rule):
    """SS (Xiao et al. 2018): ``F = sign(W)ᵀ · scale`` with a fixed scale per layer.

    This rule reads only the **signs** of the forward weights, never their
    magnitudes; the scale (``layer.sign_scale``: ``1/√fan_in`` for a dense layer)
    depends on the layer's shape alone.
    """

    name = "ss"

    def feedback_matrix(self, layer: WeightLayer) -> Array:
        xp = get_array_module(layer.W)
        scale = layer.W.dtype.type(layer.sign_scale)
        return xp.sign(layer.transpose_weight()) * scale  # only sign(W) crosses to the feedback path


class KolenPollack(Rule):
    """KP (Section 5): ``ΔB = −η y_l δ_{l+1}ᵀ − λB`` (eq 17).

    ``B`` receives the transpose of ``W``'s gradient and is stepped by the same
    optimizer with the same η, λ and momentum, so the gradients cancel in ``W − Bᵀ`` and
    only decay acts on it: it shrinks by ``(1 − λ)`` each step without momentum and with a
    constant η (eqs 13–14, 16, 18), and by about ``λ / (1 − μ)`` a step with momentum μ.
    """

    name = "kp"

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        _random_feedback(layer, rng)

    def feedback_grads(self, layer: WeightLayer) -> None:
        layer.grads["B"] = layer.feedback_grad(layer.grads)  # eq (17): y_l δ_{l+1}ᵀ


@dataclass
class WeightMirror(Rule):
    """WM (Section 4): ``B`` learns in mirror mode from noise, never from ``W`` directly.

    After every ``mirror_every``-th training step each weight layer in turn fires
    ``mirror_batches`` batches of ``mirror_batch_size`` zero-mean Gaussian noise
    vectors ``y_l`` of standard deviation ``sigma`` into its forward weights:
    ``y_{l+1} = φ(W y_l + b)``, or ``φ(W y_l)`` with bias-blocking (eq 12). With
    ``δ_l = y_l`` and ``δ_{l+1} = y_{l+1}`` (eq 6), ``B`` takes the Hebbian step
    ``ΔB = η_B mean(y_l y_{l+1}ᵀ) − λ_B B`` (eq 7 plus decay). On average the
    Hebbian term is ``η_B σ² φ'_s Wᵀ`` (eqs 11–12), so ``B`` settles at the positive
    multiple ``(η_B / λ_B) σ² φ'_s`` of ``Wᵀ``.

    ``φ`` is the activation directly after the layer in the network, identity where none
    follows: the output layer, and in a ResNet a convolution followed by batch norm, the
    last convolution of a residual branch (its ReLU comes after the sum) and a projection
    shortcut. Those layers' ``B`` settle at ``(η_B / λ_B) σ² Wᵀ``.

    The multiple compounds with depth. For ReLU, ``φ'_s = ½``, so with ``η_B = λ_B`` and
    ``σ = 1`` the ``B`` of every layer followed by a ReLU settles at ``½ Wᵀ`` and ``δ_l`` reaches layer
    ``l`` scaled by ``½`` for each ReLU layer downstream: the early layers learn as if
    at a fraction of the learning rate. ``normalize=True`` divides the Hebbian term by
    ``σ² φ'_s``, with ``φ'_s`` the mean slope ``mean φ'(W y_l)`` measured on the pass's
    own noise (a per-layer plasticity gain). ``B`` then settles at ``(η_B / λ_B) Wᵀ`` in
    every layer, whatever the activation. It is off by default. It needs ``B`` to keep up
    with ``W``: on ``fashion-lenet`` with a lag of about 10 steps (``λ_B = 0.1``) it made
    WM diverge in its first epoch, and with about 2 steps (``λ_B = 0.5``, the preset) it
    brought WM within 0.18 points of BP on the 10-epoch schedule (the README's section on
    the mirror's scale has the numbers).

    How often to mirror: ``B`` is an average of mirror passes over about ``1/λ_B`` of
    them (125 with the defaults, so 500 training steps), and it points where ``W`` was
    over that window. When ``W`` moves fast (a large learning rate with momentum), that
    lag matters more than the noise. It makes ``δ`` err in the very directions the
    last updates took, and training can stall or diverge while the matrix angles still
    look small. The defaults suit the MLPs of the notebooks. The ``fashion-lenet`` preset
    mirrors 1024 samples after every step with ``η_B = λ_B = 0.5``; this is the remedy
    Section 6 names: "That problem could also have been solved with more mirroring".
    """

    sigma: float = 1.0
    lr_b: float = 0.008
    decay: float = 0.008
    mirror_batch_size: int = 128
    mirror_batches: int = 1
    mirror_every: int = 4
    bias_blocking: bool = True
    normalize: bool = False
    seed: int = 0

    name = "wm"

    def __post_init__(self) -> None:
        for field in ("sigma", "lr_b"):
            if not getattr(self, field) > 0:
                raise ValueError(f"weight mirror {field} must be > 0, got {getattr(self, field)}")
        if not 0 <= self.decay < 1:
            raise ValueError(f"weight mirror decay must lie in [0, 1), got {self.decay}")
        for field in ("mirror_batch_size", "mirror_batches", "mirror_every"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"weight mirror {field} must be a positive integer, got {getattr(self, field)}")
        self._steps = 0  # training steps seen
        self._passes = 0  # mirror passes made; numbers each pass's noise

    def state(self) -> dict[str, Any]:
        return {"steps": self._steps, "passes": self._passes}

    def load_state(self, state: dict[str, Any]) -> None:
        self._steps, self._passes = int(state["steps"]), int(state["passes"])

    def noise_generator(self, pass_number: int) -> Any:
        """The generator of mirror pass ``pass_number``'s noise (0, 1, …), seeded by ``(seed, pass_number)``.

        A fresh generator per pass, rather than one long stream, keeps the rule's whole
        random state in one integer, so a checkpoint restores it exactly on NumPy and CuPy.
        """
        seed = np.random.SeedSequence([int(self.seed), 3, int(pass_number)]).generate_state(1)[0]
        return get_backend().random.default_rng(int(seed))

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        _random_feedback(layer, rng)

    def after_step(self, net: Network) -> None:
        self._steps += 1
        if self._steps % self.mirror_every == 0:
            for _ in range(self.mirror_batches):
                self.mirror(net)

    def mirror(self, net: Network) -> None:
        """One mirror-mode pass: every weight layer in turn, input to output (Fig 1b)."""
        rng = self.noise_generator(self._passes)
        self._passes += 1
        for layer, act in net.mirror_pairs():
            shape = (self.mirror_batch_size, *layer.mirror_input_shape)
            y_l = rng.standard_normal(shape, dtype=layer.W.dtype)
            y_l *= self.sigma  # the layer fires zero-mean noise of variance σ²
            y_next = act.phi(layer.mirror_forward(y_l, bias=not self.bias_blocking))  # eq (1) / eq (12)
            lr_b = self.lr_b
            if self.normalize:  # divide eq (11)'s σ² φ'_s out, so that B → (η_B / λ_B) Wᵀ
                slope = float(act.dphi(y_next).mean())
                lr_b /= self.sigma**2 * max(slope, 1e-3)  # guard: a pass where nearly every unit is flat
            # eq (7) with eq (6), δ_l = y_l: B ← (1 − λ_B) B + η_B · mean(y_l y_{l+1}ᵀ)
            layer.mirror_update(y_l, y_next, lr_b, self.decay)


RULES: dict[str, type[Rule]] = {
    "bp": Backprop,
    "fa": FeedbackAlignment,
    "ss": SignSymmetry,
    "wm": WeightMirror,
    "kp": KolenPollack,
}


def get_rule(name: str | Rule, **options: Any) -> Rule:
    """A rule by name (``bp, fa, ss, wm, kp``); ``options`` go to the weight mirror."""
    if isinstance(name, Rule):
        return name
    key = str(name).strip().lower()
    if key not in RULES:
        raise ValueError(f"unknown learning rule {name!r}: choose one of {', '.join(RULES)}")
    cls = RULES[key]
    if options and cls is not WeightMirror:
        raise ValueError(f"rule {key!r} takes no options, got {sorted(options)}")
    return cls(**options)

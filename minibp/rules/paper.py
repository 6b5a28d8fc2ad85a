"""The paper's five rules: backprop (eq 2), feedback alignment (eq 3), sign-symmetry, the weight
mirror (Section 4) and Kolen–Pollack (Section 5).

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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import get_array_module
from ..settings import setting
from .base import Array, Rule, mirror_noise_generator, random_feedback

if TYPE_CHECKING:
    from ..layers.base import WeightLayer
    from ..network import Network


class Backprop(Rule):
    """BP: ``δ_l = φ'(y_l) ⊙ W_{l+1}ᵀ δ_{l+1}`` (eq 2).

    Needs to know: ``W`` itself, at every feedback synapse. The only rule that transports weights.
    """

    name, label, title = "bp", "BP", "backprop, eq (2): the feedback path reads Wᵀ"

    def feedback_matrix(self, layer: WeightLayer) -> Array:
        return layer.transpose_weight()  # eq (2): weight transport


class FeedbackAlignment(Rule):
    """FA (Lillicrap et al. 2016): a fixed random ``B`` (eq 3) that never learns; ``W`` learns by eq (4).

    Needs to know: nothing of ``W``. ``B`` is drawn from the same distribution as ``W``'s
    initialisation, so it has the scale of ``Wᵀ`` without ever reading ``W``.
    """

    name, label, title = "fa", "FA", "feedback alignment (Lillicrap et al. 2016), eq (3): a fixed random B"

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        random_feedback(layer, rng)


class SignSymmetry(Rule):
    """SS (Xiao et al. 2018): ``F = sign(W)ᵀ · scale`` with a fixed scale per layer.

    Needs to know: the **signs** of the forward weights, never their magnitudes; the scale
    (``layer.sign_scale``: ``1/√fan_in`` for a dense layer, ``√(2/(k²·C_out))`` for a
    convolution) depends on the layer's shape alone.
    """

    name, label, title = "ss", "SS", "sign-symmetry (Xiao et al. 2018): F = sign(W)ᵀ at a fixed scale"

    def feedback_matrix(self, layer: WeightLayer) -> Array:
        xp = get_array_module(layer.W)
        scale = layer.W.dtype.type(layer.sign_scale)
        return xp.sign(layer.transpose_weight()) * scale  # only sign(W) crosses to the feedback path


@dataclass(kw_only=True)
class WeightMirror(Rule):
    """WM (Section 4): ``B`` learns in mirror mode from noise, never from ``W`` directly.

    Needs to know: its own layer's input and output activity while the layer fires noise.

    After every ``every``-th training step each weight layer in turn fires ``batches`` batches
    of ``batch_size`` zero-mean Gaussian noise vectors ``y_l`` of standard deviation ``sigma``
    into its forward weights: ``y_{l+1} = φ(W y_l + b)``, or ``φ(W y_l)`` with bias-blocking
    (eq 12). With ``δ_l = y_l`` and ``δ_{l+1} = y_{l+1}`` (eq 6), ``B`` takes the Hebbian step
    ``ΔB = η_B mean(y_l y_{l+1}ᵀ) − λ_B B`` (eq 7, plus the decay minibp adds to bound ``B``).
    On average the Hebbian term is ``η_B σ² φ'_s Wᵀ`` (eqs 11–12), so ``B`` settles at
    ``(η_B / λ_B) σ² φ'_s Wᵀ`` and follows ``Wᵀ`` with a lag of about ``1/λ_B`` mirror passes.

    ``φ`` is the activation directly after the layer in the network, identity where none
    follows (the output layer; in a ResNet a convolution followed by batch norm, the last
    convolution of a residual branch, a projection shortcut).

    Without bias-blocking the bias in eqs (8)–(11) is what the layer's units add to ``W y_l`` in
    training: their own ``b`` and, where the layer's input is a batch norm's output, ``W β``, that
    batch norm's shift seen through ``W`` (:meth:`~minibp.layers.container.Container.mirror_input_means`).
    The noise replaces the input's variation about its mean, not the mean. In the paper's ResNets
    (Section 6: convolutions without bias, batch norm after the ReLU) ``W β`` is the only bias a
    ReLU sees, so eq (11) scales column ``i`` of ``B`` by the mean slope ``E[φ'(w_i·y_l + (W β)_i)]``,
    where bias-blocking (eq 12) gives every column ``φ'(0)``. ``normalize=True`` divides the
    Hebbian term by ``σ² φ'_s``, with ``φ'_s`` the mean slope measured on the pass's own noise,
    so that ``B`` settles at ``(η_B / λ_B) Wᵀ`` in every layer (minibp's addition). The README
    (sections on the weight mirror) and notebook 04 tell how the lag and the scale were tuned.
    """

    name, label, title = "wm", "WM", "weight mirror (Section 4), eqs (6)-(7): B learns from noise in mirror mode"
    divergence_hint = "mirror more often (--wm-lr/--wm-decay, --wm-batch-size)"

    sigma: float = setting(1.0, "standard deviation σ of the mirror noise (eqs 6-7)", gt=0)
    lr: float = setting(0.008, "learning rate η_B of eq (7)", gt=0)
    decay: float = setting(0.008, "decay λ_B of B per mirror batch (added to eq 7)", ge=0, lt=1)
    batch_size: int = setting(128, "noise samples per mirror batch", ge=1)
    batches: int = setting(1, "mirror batches after each mirroring step", ge=1)
    every: int = setting(4, "mirror after every N-th training step", ge=1)
    bias_blocking: bool = setting(
        True, "block biases in mirror mode (eq 12); off, a layer fed by batch norm also gets W·β (eq 11)"
    )
    normalize: bool = setting(
        False,
        "divide eq (7)'s Hebbian term by σ² times the measured mean slope of the activation, "
        "so B settles at (lr / decay) Wᵀ in every layer",
    )
    _steps: int = field(default=0, init=False, repr=False)  # training steps seen
    _passes: int = field(default=0, init=False, repr=False)  # mirror passes made; numbers each pass's noise

    def state(self) -> dict[str, Any]:
        return {"steps": self._steps, "passes": self._passes}

    def load_state(self, state: dict[str, Any]) -> None:
        self._steps, self._passes = int(state["steps"]), int(state["passes"])

    def noise_generator(self, pass_number: int) -> Any:
        """The generator of mirror pass ``pass_number``'s noise (:func:`mirror_noise_generator`)."""
        return mirror_noise_generator(self.seed, pass_number)

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        random_feedback(layer, rng)

    def after_step(self, net: Network) -> None:
        self._steps += 1
        if self._steps % self.every == 0:
            for _ in range(self.batches):
                self.mirror(net)

    def mirror(self, net: Network) -> None:
        """One mirror-mode pass: every weight layer in turn, input to output (Fig 1b)."""
        rng = self.noise_generator(self._passes)
        self._passes += 1
        means = {} if self.bias_blocking else net.mirror_input_means()  # β of a batch norm before a layer
        for layer, act in net.mirror_pairs():
            shape = (self.batch_size, *layer.mirror_input_shape)
            y_l = rng.standard_normal(shape, dtype=layer.W.dtype)
            y_l *= self.sigma  # the layer fires zero-mean noise of variance σ²
            bias = not self.bias_blocking  # eq (8) with b + W β as the bias, or eq (12)
            y_next = act.phi(layer.mirror_forward(y_l, bias=bias, input_mean=means.get(id(layer))))
            lr_b = self.lr
            if self.normalize:  # divide eq (11)'s σ² φ'_s out, so that B → (η_B / λ_B) Wᵀ
                slope = float(act.dphi(y_next).mean())
                lr_b /= self.sigma**2 * max(slope, 1e-3)  # guard: a pass where nearly every unit is flat
            # eq (7) with eq (6), δ_l = y_l: B ← (1 − λ_B) B + η_B · mean(y_l y_{l+1}ᵀ)
            layer.mirror_update(y_l, y_next, lr_b, self.decay)


class KolenPollack(Rule):
    """KP (Section 5): ``ΔB = −η y_l δ_{l+1}ᵀ − λB`` (eq 17).

    Needs to know: ``y_l`` and ``δ_{l+1}``, the same local signals as ``W``'s own update (eq 16).
    ``B`` receives the transpose of ``W``'s gradient and is stepped by the same optimizer
    with the same η, λ and momentum, so the gradients cancel in ``W − Bᵀ`` and only decay acts
    on it: without momentum and with a constant η it shrinks by ``(1 − λ)`` each step
    (eqs 13–14, 16, 18).
    """

    name, label, title = "kp", "KP", "Kolen-Pollack (Section 5), eq (17): B gets W's update, transposed"

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        random_feedback(layer, rng)

    def feedback_grads(self, layer: WeightLayer) -> None:
        layer.grads["B"] = layer.feedback_grad(layer.grads)  # eq (17): y_l δ_{l+1}ᵀ

"""The alignment family of Kunin et al. (2020): ``B`` learns by a gradient step on a weighted sum
of the five primitives of :mod:`.primitives`.

Kunin, Nayebi, Sagastuy-Brena, Ganguli, Bloom & Yamins, *Two Routes to Scalable Credit
Assignment without Weight Symmetry* (ICML 2020), Table 1, sort the rules that learn ``B`` by the
primitives they add up and by whether those are *local* (read only activity at ``B``'s own
synapses) or not:

=======================  ==========================  =========  ==========================
rule                     local loss on ``B``          local?     here
=======================  ==========================  =========  ==========================
Kolen–Pollack            decay (+ ``W``'s gradient)  no         :class:`FamilyKolenPollack`
weight mirror            decay + amp                 yes        :class:`FamilyMirror`
information alignment    amp + null + decay          yes        ``ia``
symmetric alignment      decay + self                no         ``sa``
activation alignment     sparse + amp                no         ``aa``
=======================  ==========================  =========  ==========================

Where ``x`` comes from (the ``source`` setting):

* ``"activity"``: the layer's input in the training batch (``layer.x``), as in Kunin et al.'s
  code (``input_distribution=None``). :meth:`AlignmentRule.feedback_grads` puts the local loss's
  gradient in ``layer.grads["B"]`` and the training optimizer steps ``B`` as it steps ``W``, as
  for KP: with the run's learning rate, schedule and momentum, **and its weight decay**, which
  adds ``wd · B`` to the decay primitive's ``2 α_decay B``.
* ``"noise"``: mirror mode, as the weight mirror (Akrout et al. Section 4): after every
  ``every``-th training step each weight layer in turn fires ``batch_size`` Gaussian noise
  inputs of standard deviation ``sigma`` (from ``(seed, pass number)``, the stream of
  :meth:`WeightMirror.noise_generator`), with biases blocked (eq 12), optionally through the
  activation ``φ`` after the layer (``r = φ(W x)``), and ``B`` takes a plain gradient step
  ``B ← B − lr ∇_B`` on the local loss: no momentum, no weight decay but the decay primitive.

The feedback path of every family rule is eq (3) with the learned ``B`` (:class:`Rule`'s).

Coefficients are settings ``alpha_<primitive>`` (``--sa-alpha-self``), each ``>= 0``; their
defaults are those of Kunin et al.'s code (``params.py``). ``sa`` takes ``B``'s gradient from the
optimizer, as their code does (it reads no activity, so ``source`` only decides who steps ``B``);
``aa`` and ``ia`` learn in noise mode by default, minibp's choice (their docstrings say why).
Noise-mode defaults (minibp's choice): ``σ = 1``, 128 samples, a pass every 4 steps, as ``wm``;
``lr = 4``, with which Kunin et al.'s coefficients (1e-3, 2e-3) give per-pass rates of 0.008,
``wm``'s ``η_B`` and ``λ_B``. The forward projection leaves the bias out in both modes (eq 12;
their code's flag default keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import get_array_module
from ..settings import setting, settings_of
from .base import Array, Rule, mirror_noise_generator, random_feedback
from .primitives import WEIGHT_ONLY, Primitive, amp, decay, layer_maps, null, null_reversed, self_, sparse

if TYPE_CHECKING:
    from ..layers.activations import Activation
    from ..layers.base import WeightLayer
    from ..network import Network

#: the settings that act only when ``source`` is ``"noise"``
NOISE_SETTINGS = ("lr", "sigma", "batch_size", "every", "activation")


def source_setting(default: str) -> str:
    """The ``source`` setting, with a rule's own default."""
    return setting(
        default,
        "x of the local loss: the layer's input in the training batch (B stepped by the optimizer), "
        "or noise in mirror mode",
        choices=("activity", "noise"),
    )


@dataclass(kw_only=True)
class AlignmentRule(Rule):
    """A member of the family: ``B`` descends ``Σ α_i · primitive_i`` (:meth:`terms`).

    Subclasses declare their coefficients as settings and list ``(coefficient, primitive)`` in
    :meth:`terms`; everything else (where ``x`` comes from, the step) is here.
    """

    source: str = source_setting("activity")
    bias_blocking: bool = setting(True, "leave the bias out of the forward projection r = W x (eq 12)")
    lr: float = setting(4.0, "noise mode: learning rate of B's gradient step", gt=0)
    sigma: float = setting(1.0, "noise mode: standard deviation of the noise", gt=0)
    batch_size: int = setting(128, "noise mode: noise samples per layer and pass", ge=1)
    every: int = setting(4, "noise mode: a mirror pass after every N-th training step", ge=1)
    activation: bool = setting(False, "noise mode: r = φ(W x), φ the activation after the layer")
    _steps: int = field(default=0, init=False, repr=False)  # training steps seen
    _passes: int = field(default=0, init=False, repr=False)  # mirror passes made; numbers each pass's noise

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source == "activity":
            defaults = {f.name: f.default for f in settings_of(type(self))}
            given = [k for k in NOISE_SETTINGS if getattr(self, k) != defaults[k]]
            if given:
                raise ValueError(
                    f"setting(s) {', '.join(given)} of rule {self.name or type(self).__name__!r} act in noise "
                    "mode only, and its source is 'activity': give source='noise' too, or leave them out"
                )

    def terms(self) -> list[tuple[float, Primitive]]:
        """The local loss: ``(coefficient, primitive)`` pairs."""
        raise NotImplementedError

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        random_feedback(layer, rng)

    def local_loss(
        self,
        layer: WeightLayer,
        x: Array | None,
        *,
        act: Activation | None = None,
        padding: int | None = None,
        with_loss: bool = True,
    ) -> tuple[Array | None, Array]:
        """The local loss ``Σ α_i · primitive_i`` of ``layer``'s ``B`` on inputs ``x`` and its gradient.

        ``r = W x`` (``+ b`` without bias-blocking), through ``act.phi`` if ``act`` is given;
        ``padding`` overrides a convolution's own (mirror mode: 0). Zero coefficients are skipped.
        """
        B = layer.params["B"]
        terms = [(c, p) for c, p in self.terms() if c]
        reads_activity = any(p not in WEIGHT_ONLY for _, p in terms)
        maps = layer_maps(layer, x.shape if reads_activity else (), padding)
        r = None
        if reads_activity:
            r = maps.forward(x, bias=not self.bias_blocking)  # the forward projection W x
            if act is not None:
                r = act.phi(r)
        loss, grad = None, get_array_module(B).zeros_like(B)
        for coef, primitive in terms:
            term_loss, term_grad = primitive(maps, B, x, r, with_loss=with_loss)
            grad += coef * term_grad
            if with_loss:
                loss = coef * term_loss if loss is None else loss + coef * term_loss
        return loss, grad

    def feedback_grads(self, layer: WeightLayer) -> None:
        if self.source == "activity":  # the optimizer steps B on the training batch's activity
            layer.grads["B"] = self.local_loss(layer, layer.x, with_loss=False)[1]

    def after_step(self, net: Network) -> None:
        self._steps += 1
        if self.source == "noise" and self._steps % self.every == 0:
            self.mirror(net)

    def noise_generator(self, pass_number: int) -> Any:
        """The generator of mirror pass ``pass_number``'s noise (:func:`mirror_noise_generator`):
        the weight mirror's stream, so the two can be compared on the same noise."""
        return mirror_noise_generator(self.seed, pass_number)

    def mirror(self, net: Network) -> None:
        """One mirror-mode pass: every weight layer in turn, input to output, on fresh noise."""
        rng = self.noise_generator(self._passes)
        self._passes += 1
        for layer, act in net.mirror_pairs():
            x = rng.standard_normal((self.batch_size, *layer.mirror_input_shape), dtype=layer.W.dtype)
            x *= self.sigma
            _, grad = self.local_loss(layer, x, act=act if self.activation else None, padding=0, with_loss=False)
            layer.params["B"] -= self.lr * grad  # a plain gradient step on the local loss

    def state(self) -> dict[str, Any]:
        return {"steps": self._steps, "passes": self._passes}

    def load_state(self, state: dict[str, Any]) -> None:
        self._steps, self._passes = int(state["steps"]), int(state["passes"])


@dataclass(kw_only=True)
class SymmetricAlignment(AlignmentRule):
    """SA (Kunin et al. 2020, Table 1): decay + self, ``α_decay ‖B‖² − α_self tr(B W)``.

    Needs to know: ``W`` itself. The self primitive's gradient is ``−Wᵀ``, read from the forward
    weights as backprop reads them (a non-local rule: it moves weight transport from the
    feedback path into ``B``'s learning). The loss is minimal at ``B = (α_self / 2α_decay) Wᵀ``
    (``Wᵀ`` with Kunin et al.'s ratio ``α_self = 2 α_decay``), and the optimizer's weight decay
    adds ``wd`` to ``2 α_decay``.

    Defaults: the coefficients of Kunin et al.'s code (``params.py``: α 1e-3, β 2e-3), activity mode.
    """

    name, label, title = "sa", "SA", "symmetric alignment (Kunin et al. 2020): B descends decay + self"

    alpha_decay: float = setting(1e-3, "coefficient of the decay primitive ‖B‖²", ge=0)
    alpha_self: float = setting(2e-3, "coefficient of the self primitive −tr(BW)", ge=0)

    def terms(self) -> list[tuple[float, Primitive]]:
        return [(self.alpha_decay, decay), (self.alpha_self, self_)]


@dataclass(kw_only=True)
class ActivationAlignment(AlignmentRule):
    """AA (Kunin et al. 2020, Table 1): sparse + amp, ``α_sparse (E‖r‖² + E‖s‖²) − α_amp E[sᵀ r]``.

    Needs to know: the forward projection ``r = W x`` at ``B``'s output units (non-local: the
    activity of the forward neurons, not the feedback neurons'). With ``Σ = E[x xᵀ]`` the gradient
    is ``2 α_sparse Σ B − α_amp Σ Wᵀ``: ``B → (α_amp / 2α_sparse) Wᵀ`` on the span of the inputs
    (exactly ``Wᵀ`` with Kunin et al.'s ratio), at a rate proportional to the input's variance
    along each direction; directions the inputs never take keep their start (and shrink by the
    optimizer's weight decay). On white noise (``Σ = σ² I``) the expected gradient is ``σ²`` times
    SA's: AA in noise mode is SA in expectation, learnt from activity alone.

    Defaults: the coefficients of Kunin et al.'s code (α 1e-3, β 2e-3). Noise mode is minibp's
    choice: in activity mode ``B`` aligns only along the few directions where a layer's input (a
    ReLU network's, without batch norm, dominated by its mean) varies strongly (the README's
    section on the alignment family gives what that did to training).
    """

    name, label, title = "aa", "AA", "activation alignment (Kunin et al. 2020): B descends sparse + amp"

    source: str = source_setting("noise")

    alpha_sparse: float = setting(1e-3, "coefficient of the sparse primitive E‖r‖² + E‖s‖²", ge=0)
    alpha_amp: float = setting(2e-3, "coefficient of the amp primitive −E[sᵀr]", ge=0)

    def terms(self) -> list[tuple[float, Primitive]]:
        return [(self.alpha_sparse, sparse), (self.alpha_amp, amp)]


@dataclass(kw_only=True)
class InformationAlignment(AlignmentRule):
    """IA (Kunin et al. 2020, Table 1): amp + null + decay, ``−α_amp E[sᵀ r] + α_null E‖B r‖² + α_decay ‖B‖²``.

    Needs to know: only ``x``, ``r`` and ``B``'s own output ``B r`` (a local rule, as the mirror).
    With ``α_amp = 2 α_null`` (Kunin et al.'s ratio) the loss is ``α_null E‖x − B W x‖² +
    α_decay ‖B‖²`` up to a constant: ``B`` is the ridge-regression decoder of ``x`` from ``W x``,
    ``B = (α_amp / 2α_null) Σ Wᵀ (W Σ Wᵀ + (α_decay / α_null) I)⁻¹`` with ``Σ = E[x xᵀ]``. For
    white inputs that is ``Wᵀ`` with each singular value ``s`` of ``W`` replaced by
    ``s / (s² + α_decay / (α_null σ²))``: a regularised pseudo-inverse, a multiple of ``Wᵀ`` only
    when ``W``'s singular values are equal, and always at an angle below 90° from it.
    ``reverse_null`` uses the reversed null ``E‖Wᵀ Bᵀ x‖²`` (gradient ``2 Σ B W Wᵀ``: the same
    fixed point for white inputs).

    Defaults: the coefficients of Kunin et al.'s code (α 2e-3, β 1e-3, γ 1e-3). Noise mode is
    minibp's choice: in activity mode the null term's curvature grows with the activity's power
    ``E‖W x‖²``, which nothing bounds in an MLP without batch norm (Kunin et al.'s ResNets have
    it; the README's section on the alignment family gives what that did to training).
    """

    name, label, title = "ia", "IA", "information alignment (Kunin et al. 2020): B descends amp + null + decay"

    source: str = source_setting("noise")
    alpha_amp: float = setting(2e-3, "coefficient of the amp primitive −E[sᵀr]", ge=0)
    alpha_null: float = setting(1e-3, "coefficient of the null primitive E‖BWx‖²", ge=0)
    alpha_decay: float = setting(1e-3, "coefficient of the decay primitive ‖B‖²", ge=0)
    reverse_null: bool = setting(False, "use the reversed null primitive E‖WᵀBᵀx‖²")

    def terms(self) -> list[tuple[float, Primitive]]:
        return [
            (self.alpha_amp, amp),
            (self.alpha_null, null_reversed if self.reverse_null else null),
            (self.alpha_decay, decay),
        ]


@dataclass(kw_only=True)
class FamilyMirror(AlignmentRule):
    """The weight mirror rebuilt from primitives (Kunin et al. 2020, Table 1): decay + amp in noise mode.

    A step ``B ← B − lr (2 α_decay B − α_amp E[x rᵀ])`` is Akrout et al.'s eq (7) with decay,
    ``B ← (1 − λ_B) B + η_B E[y_l y_{l+1}ᵀ]``, for ``η_B = lr · α_amp`` and ``λ_B = 2 lr · α_decay``.
    The defaults are :class:`WeightMirror`'s mapped so: same ``σ``, batch, cadence, bias-blocking,
    ``φ`` and noise. Not on the command line (``wm`` is).
    """

    label, title = "WM (family)", "the weight mirror as decay + amp"

    source: str = source_setting("noise")
    lr: float = setting(0.008, "noise mode: learning rate of B's gradient step", gt=0)
    activation: bool = setting(True, "noise mode: r = φ(W x), φ the activation after the layer")
    alpha_decay: float = setting(0.5, "coefficient of the decay primitive ‖B‖²", ge=0)
    alpha_amp: float = setting(1.0, "coefficient of the amp primitive −E[sᵀr]", ge=0)

    def terms(self) -> list[tuple[float, Primitive]]:
        return [(self.alpha_decay, decay), (self.alpha_amp, amp)]


@dataclass(kw_only=True)
class FamilyKolenPollack(AlignmentRule):
    """Kolen–Pollack rebuilt from primitives (Kunin et al. 2020, Table 1): decay, with ``W``'s gradient
    tied to ``B``.

    ``grads["B"] = y_l δ_{l+1}ᵀ + 2 α_decay B``: KP's eq (17) gradient (``W``'s, transposed) plus the
    decay primitive's. The optimizer adds its own ``wd · B``, so without momentum ``B`` decays by
    ``lr (wd + 2 α_decay)`` per step and ``W`` by ``lr · wd``: with ``α_decay = 0`` this is ``kp``.
    Activity mode only. Default ``α_decay``: Kunin et al.'s code (1e-3). Not on the command line.
    """

    label, title = "KP (family)", "Kolen-Pollack as decay plus W's gradient"

    alpha_decay: float = setting(1e-3, "coefficient of the decay primitive ‖B‖²", ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source != "activity":
            raise ValueError("Kolen-Pollack ties B's gradient to W's training gradient: its source must be 'activity'")

    def terms(self) -> list[tuple[float, Primitive]]:
        return [(self.alpha_decay, decay)]

    def feedback_grads(self, layer: WeightLayer) -> None:
        tied = layer.feedback_grad(layer.grads)  # eq (17): W's gradient, transposed into B's layout
        layer.grads["B"] = tied + self.local_loss(layer, None, with_loss=False)[1] if self.alpha_decay else tied

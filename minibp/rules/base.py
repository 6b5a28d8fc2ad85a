"""What every learning rule is: :class:`Rule`, the registry :data:`RULES`, and :func:`get_rule`.

A rule decides only two things (see the README):

1. the **feedback** that carries ``δ_{l+1}`` back to ``δ_l``: the feedback matrix ``F`` of eq (2)
   or (3) (:meth:`Rule.feedback_matrix`), used by :meth:`Rule.feedback`; a rule that sends the
   output error straight to each layer (direct feedback alignment) overrides :meth:`Rule.feedback`;
2. **how the feedback weights ``B`` learn**, if they learn at all: a gradient for the optimizer
   (:meth:`Rule.feedback_grads`), or work between steps (:meth:`Rule.after_step`).

Everything else (forward path eq 1, the forward update eq 4/16, exact derivatives of
activations and losses) is the same for every rule and lives in the layers and the optimizer.
No layer ever asks which rule it is under.

A rule is a dataclass. Its fields declared with :func:`~minibp.settings.setting` are its
settings: the run's settings, the command line's flags and a checkpoint's config take them
from here, named ``<rule name>_<field>`` (``wm_sigma``, ``--wm-sigma``). Defining a subclass
with a ``name`` registers it in :data:`RULES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..backend import get_backend
from ..settings import check_settings, settings_of

if TYPE_CHECKING:
    from ..layers.base import WeightLayer
    from ..network import Network

Array = Any

#: every rule by its name, in the order they are defined (and compared)
RULES: dict[str, type[Rule]] = {}

#: the five rules the paper compares, the ones ``minibp compare`` trains unless told otherwise
PAPER_RULES = ("bp", "fa", "ss", "wm", "kp")


def mirror_noise_generator(seed: int, pass_number: int) -> Any:
    """The generator of mirror pass ``pass_number``'s noise (0, 1, …), seeded by ``(seed, pass_number)``
    on the current backend: the stream of every rule that mirrors noise, so that they can be
    compared on the same noise.

    A fresh generator per pass, rather than one long stream, keeps a rule's whole random state in
    one integer, so a checkpoint restores it exactly on NumPy and CuPy.
    """
    state = np.random.SeedSequence([int(seed), 3, int(pass_number)]).generate_state(1)[0]
    return get_backend().random.default_rng(int(state))


def random_feedback(layer: WeightLayer, rng: np.random.Generator) -> None:
    """A random ``B`` in the layout of ``Wᵀ`` at the scale of ``W``'s initialisation."""
    shape = layer.transpose_weight().shape
    layer.params["B"] = layer.as_feedback(rng.standard_normal(shape) * layer.init_std)


@dataclass(kw_only=True)
class Rule:
    """Base class. Subclasses override what differs; defaults mean "no feedback weights".

    ``seed`` is the run's seed, for rules that draw random numbers while training.
    """

    name: ClassVar[str] = ""
    #: the rule's name in figures and tables
    label: ClassVar[str] = ""
    #: one line for ``--help``: the rule and where it comes from
    title: ClassVar[str] = ""
    #: what to try, besides a lower learning rate, when the loss diverges under this rule
    divergence_hint: ClassVar[str] = ""

    seed: int = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            RULES[cls.name] = cls

    def __post_init__(self) -> None:
        check_settings(self)

    def init_network(self, net: Network, rng: np.random.Generator) -> None:
        """Create the feedback weights of every weight layer of ``net``, input to output."""
        for layer in net.weight_layers:
            self.init_feedback(layer, rng)

    def init_feedback(self, layer: WeightLayer, rng: np.random.Generator) -> None:
        """Create the layer's feedback weights, if the rule keeps any."""

    def feedback_matrix(self, layer: WeightLayer) -> Array:
        """``F`` in ``δ_l = φ'(y_l) ⊙ F δ_{l+1}``, in the layout of ``Wᵀ``."""
        return layer.params["B"]  # eq (3)

    def feedback(self, layer: WeightLayer, delta: Array, error: Array) -> Array:
        """What the feedback path carries below ``layer``, from ``delta`` (``δ_{l+1}``, at the layer's
        output) and ``error`` (the network's output error ``δ_L``): ``F δ_{l+1}``, eq (2) or (3).
        The ``φ'(y_l) ⊙`` of eqs (2)–(3) is applied by the activation layer below."""
        return layer.backward_input(delta, self.feedback_matrix(layer))  # eq (2) or (3)

    def alignment_target(self, net: Network, layer: WeightLayer) -> Array | None:
        """What the matrix angle (Fig 4a, c, e) compares :meth:`feedback_matrix` with: ``Wᵀ``
        (None where the rule's feedback has no counterpart in backprop, the angle is then NaN)."""
        return layer.transpose_weight()

    def feedback_grads(self, layer: WeightLayer) -> None:
        """Add a gradient for ``B`` to ``layer.grads`` if the optimizer should update it."""

    def after_step(self, net: Network) -> None:
        """Work done between training steps (the weight mirror's mirror mode)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint must keep of the rule beyond the layers' arrays (JSON-able)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`."""


def get_rule(name: str | Rule, **options: Any) -> Rule:
    """A rule by name (``bp, fa, ss, wm, kp``); ``options`` are the rule's own settings and ``seed``."""
    if isinstance(name, Rule):
        return name
    key = str(name).strip().lower()
    if key not in RULES:
        raise ValueError(f"unknown learning rule {name!r}: choose one of {', '.join(RULES)}")
    cls = RULES[key]
    known = {f.name for f in settings_of(cls)} | {"seed"}
    unknown = sorted(set(options) - known)
    if unknown and len(known) == 1:
        raise ValueError(f"rule {key!r} takes no options, got {unknown}: it has no settings")
    if unknown:
        raise ValueError(f"rule {key!r} has no setting(s) {unknown}: its settings are {', '.join(sorted(known))}")
    return cls(**options)

"""The learning rules: the paper's five (:mod:`.paper`) and the rules others compare them with.

Importing this package registers every rule in :data:`RULES`, in the order they are compared.
"""

# the order of these imports is the order of RULES, and so of `minibp compare` and its table
# ruff: noqa: I001
from .base import PAPER_RULES, RULES, Rule, get_rule, random_feedback
from .paper import Backprop, FeedbackAlignment, KolenPollack, SignSymmetry, WeightMirror
from .dfa import DirectFeedbackAlignment
from .sign import BatchRandomSignFeedback, FixedRandomSignFeedback
from .family import ActivationAlignment, FamilyKolenPollack, FamilyMirror, InformationAlignment, SymmetricAlignment

__all__ = [
    "PAPER_RULES",
    "RULES",
    "ActivationAlignment",
    "Backprop",
    "BatchRandomSignFeedback",
    "DirectFeedbackAlignment",
    "FamilyKolenPollack",
    "FamilyMirror",
    "FeedbackAlignment",
    "FixedRandomSignFeedback",
    "InformationAlignment",
    "KolenPollack",
    "Rule",
    "SignSymmetry",
    "SymmetricAlignment",
    "WeightMirror",
    "get_rule",
    "random_feedback",
]

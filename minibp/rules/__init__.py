"""The learning rules: the paper's five (:mod:`.paper`) and the rules others compare them with.

Importing this package registers every rule in :data:`RULES`, in the order they are compared.
"""

# the order of these imports is the order of RULES, and so of `minibp compare` and its table
# ruff: noqa: I001
from .base import PAPER_RULES, RULES, Rule, get_rule, random_feedback
from .paper import Backprop, FeedbackAlignment, KolenPollack, SignSymmetry, WeightMirror
from .dfa import DirectFeedbackAlignment
from .sign import BatchRandomSignFeedback, FixedRandomSignFeedback

__all__ = [
    "PAPER_RULES",
    "RULES",
    "Backprop",
    "BatchRandomSignFeedback",
    "DirectFeedbackAlignment",
    "FeedbackAlignment",
    "FixedRandomSignFeedback",
    "KolenPollack",
    "Rule",
    "SignSymmetry",
    "WeightMirror",
    "get_rule",
    "random_feedback",
]

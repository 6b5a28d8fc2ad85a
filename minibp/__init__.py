"""minibp: deep learning without weight transport, equation by equation.

A hand-written NumPy (or CuPy) engine for the five learning rules compared in
Akrout, Wilson, Humphreys, Lillicrap & Tweed, *Deep Learning without Weight
Transport* (NeurIPS 2019): backprop (BP), feedback alignment (FA), sign-symmetry
(SS), the weight mirror (WM) and Kolen–Pollack (KP).
"""

from .backend import get_array_module, get_backend, set_backend, to_numpy
from .compare import Comparison, compare
from .config import TrainConfig
from .layers import Dense, RectifiedTanh, ReLU, Sigmoid, Tanh
from .layers.container import Sequential
from .losses import MeanSquaredError, SoftmaxCrossEntropy
from .metrics import angle, delta_angles, matrix_angles
from .models import mlp
from .network import Network
from .optim import SGD
from .rules import RULES, Backprop, FeedbackAlignment, KolenPollack, Rule, SignSymmetry, WeightMirror, get_rule
from .step import Step, train_step
from .train import TrainingDiverged, train

__version__ = "0.1.0"

__all__ = [
    "RULES",
    "SGD",
    "Comparison",
    "Step",
    "Backprop",
    "Dense",
    "FeedbackAlignment",
    "KolenPollack",
    "MeanSquaredError",
    "RectifiedTanh",
    "ReLU",
    "Rule",
    "Network",
    "Sequential",
    "Sigmoid",
    "SignSymmetry",
    "SoftmaxCrossEntropy",
    "Tanh",
    "TrainConfig",
    "TrainingDiverged",
    "WeightMirror",
    "angle",
    "compare",
    "delta_angles",
    "get_array_module",
    "get_backend",
    "get_rule",
    "matrix_angles",
    "mlp",
    "set_backend",
    "to_numpy",
    "train",
    "train_step",
]

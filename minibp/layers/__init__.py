"""Layers: forward path, feedback path and gradients, one concept per module."""

from .activations import ACTIVATIONS, Activation, Identity, RectifiedTanh, ReLU, Sigmoid, Tanh, get_activation
from .base import Layer, WeightLayer
from .dense import Dense

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Dense",
    "Identity",
    "Layer",
    "RectifiedTanh",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "WeightLayer",
    "get_activation",
]

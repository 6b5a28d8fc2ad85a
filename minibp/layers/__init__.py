"""Layers: forward path, feedback path and gradients, one concept per module."""

from .activations import ACTIVATIONS, Activation, Identity, RectifiedTanh, ReLU, Sigmoid, Tanh, get_activation
from .base import Layer, WeightLayer
from .container import Container, Sequential
from .conv import Conv2D
from .dense import Dense
from .local import LocalConv2D
from .norm import BatchNorm
from .pool import AvgPool2D, Flatten, GlobalAvgPool, MaxPool2D
from .residual import Residual
from .scaling import SynapticScaling

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "AvgPool2D",
    "BatchNorm",
    "Container",
    "Conv2D",
    "Dense",
    "Flatten",
    "GlobalAvgPool",
    "Identity",
    "Layer",
    "LocalConv2D",
    "MaxPool2D",
    "RectifiedTanh",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "SynapticScaling",
    "Tanh",
    "WeightLayer",
    "get_activation",
]

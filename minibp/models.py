"""Model builders. Every builder draws its weights from ``seed`` on the host, so every learning
rule and backend starts from the same numbers; widths, input size and class count are
parameters, so tests and notebooks can build tiny versions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool,
    MaxPool2D,
    ReLU,
    basic_block,
    bottleneck_block,
    get_activation,
)
from .layers.base import Layer
from .layers.conv import out_size
from .network import Network


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng([int(seed), 0])


def mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    *,
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
    bias: bool = True,
) -> Network:
    """A fully connected network ``sizes[0] → … → sizes[-1]`` (e.g. ``[64, 256, 256, 10]``).

    Every hidden layer is ``Dense`` then ``activation`` (eq 1); the output layer is
    linear (its softmax lives in the loss).
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"an MLP needs at least two positive layer sizes (input, output), got {sizes}")
    rng = _rng(seed)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        act = get_activation("identity" if last else activation)
        layers.append(Dense(n_in, n_out, gain=act.gain, rng=rng, dtype=dtype, bias=bias))
        if not last:
            layers.append(act)
    return Network(layers)


def _check_image(input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"convolutional models take images of shape (channels, height, width), got {input_shape}")
    c, h, w = (int(v) for v in input_shape)
    return c, h, w


def lenet(
    input_shape: Sequence[int] = (1, 28, 28),
    n_classes: int = 10,
    *,
    width: int = 6,
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
) -> Network:
    """A LeNet-style CNN: two 5×5 convolutions (``width`` and ``width·8/3`` channels, padding 2)
    each followed by ReLU and 2×2 max pooling, then dense 120 → 84 → classes with ReLU."""
    c, h, w = _check_image(input_shape)
    rng = _rng(seed)
    c1, c2 = int(width), int(round(width * 8 / 3))
    relu_gain = ReLU.gain
    layers: list[Layer] = [
        # a LeNet's columns are small (12 MB at batch 64 on 28×28): keep them for eq (4)
        Conv2D(c, c1, 5, padding=2, gain=relu_gain, rng=rng, dtype=dtype, keep_columns=True),
        ReLU(),
        MaxPool2D(2),
        Conv2D(c1, c2, 5, padding=2, gain=relu_gain, rng=rng, dtype=dtype, keep_columns=True),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
    ]
    h, w = h // 2 // 2, w // 2 // 2
    if h < 1 or w < 1:
        raise ValueError(f"lenet needs images of at least 4×4 pixels, got {input_shape}")
    layers += [
        Dense(c2 * h * w, 120, gain=relu_gain, rng=rng, dtype=dtype),
        ReLU(),
        Dense(120, 84, gain=relu_gain, rng=rng, dtype=dtype),
        ReLU(),
        Dense(84, int(n_classes), rng=rng, dtype=dtype),
    ]
    return Network(layers)


def _head(channels: int, n_classes: int, rng: np.random.Generator, dtype: str) -> list[Layer]:
    return [GlobalAvgPool(), Dense(channels, int(n_classes), rng=rng, dtype=dtype)]


def _stages(
    c_in: int, plan: Sequence[tuple[int, int]], block: Callable[..., Layer], expansion: int, **kwargs: Any
) -> tuple[list[Layer], int]:
    """Residual stages: ``plan`` lists ``(width, blocks)`` per stage; every stage after the first
    starts with stride 2. Returns the blocks and the channels that come out."""
    layers: list[Layer] = []
    for stage, (width, n_blocks) in enumerate(plan):
        for i in range(n_blocks):
            layers.append(block(c_in, width, 2 if stage > 0 and i == 0 else 1, **kwargs))
            c_in = width * expansion
    return layers, c_in


def _stem_norm(c: int, bn: str, dtype: str) -> list[Layer]:
    return [BatchNorm(c, dtype=dtype), ReLU()] if bn == "before" else [ReLU(), BatchNorm(c, dtype=dtype)]


def resnet20(
    input_shape: Sequence[int] = (3, 32, 32),
    n_classes: int = 10,
    *,
    width: int = 16,
    bn: str = "after",
    shortcut: str = "projection",
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
) -> Network:
    """ResNet-20 (He et al. 2016, the CIFAR network): a 3×3 stem of ``width`` channels, three
    stages of three basic blocks (``width``, ``2·width``, ``4·width`` channels, the last two
    starting with stride 2), global average pooling and a dense classifier. ``shortcut`` where a
    stage starts: ``"projection"`` (a 1×1 convolution and BN; 272,474 parameters at width 16 on
    CIFAR-10) or ``"zeropad"`` (He et al.'s parameter-free CIFAR shortcut; 269,722)."""
    c, _, _ = _check_image(input_shape)
    rng = _rng(seed)
    layers: list[Layer] = [
        Conv2D(c, width, 3, padding=1, bias=False, gain=ReLU.gain, rng=rng, dtype=dtype),
        *_stem_norm(width, bn, dtype),
    ]
    plan = [(width * 2**stage, 3) for stage in range(3)]
    blocks, c_out = _stages(width, plan, basic_block, 1, bn=bn, shortcut=shortcut, rng=rng, dtype=dtype)
    return Network(layers + blocks + _head(c_out, n_classes, rng, dtype))


def _imagenet_stem(c: int, width: int, bn: str, rng: np.random.Generator, dtype: str) -> list[Layer]:
    return [
        Conv2D(c, width, 7, stride=2, padding=3, bias=False, gain=ReLU.gain, rng=rng, dtype=dtype),
        *_stem_norm(width, bn, dtype),
        MaxPool2D(3, stride=2, padding=1),
    ]


def _check_imagenet_size(input_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    c, h, w = _check_image(input_shape)
    if out_size(out_size(min(h, w), 7, 2, 3), 3, 2, 1) < 1:
        raise ValueError(f"{name} needs images of at least 2×2 pixels, got {input_shape}")
    return c, h, w


def resnet18(
    input_shape: Sequence[int] = (3, 224, 224),
    n_classes: int = 1000,
    *,
    width: int = 64,
    bn: str = "after",
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
) -> Network:
    """ResNet-18 (He et al. 2016) with the ImageNet stem (7×7 stride-2 conv, 3×3 stride-2 max
    pool) and four stages of two basic blocks (``width · 1, 2, 4, 8`` channels)."""
    c, _, _ = _check_imagenet_size(input_shape, "resnet18")
    rng = _rng(seed)
    stem = _imagenet_stem(c, width, bn, rng, dtype)  # drawn first: weights come from rng in layer order
    plan = [(width * 2**stage, 2) for stage in range(4)]
    blocks, c_out = _stages(width, plan, basic_block, 1, bn=bn, rng=rng, dtype=dtype)
    return Network(stem + blocks + _head(c_out, n_classes, rng, dtype))


def resnet50(
    input_shape: Sequence[int] = (3, 224, 224),
    n_classes: int = 1000,
    *,
    width: int = 64,
    bn: str = "after",
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
) -> Network:
    """ResNet-50 (He et al. 2016): the ImageNet stem, then 3, 4, 6 and 3 bottleneck blocks of
    ``width · 1, 2, 4, 8`` inner channels (×4 out)."""
    c, _, _ = _check_imagenet_size(input_shape, "resnet50")
    rng = _rng(seed)
    stem = _imagenet_stem(c, width, bn, rng, dtype)
    plan = [(width * 2**stage, n) for stage, n in enumerate((3, 4, 6, 3))]
    blocks, c_out = _stages(width, plan, bottleneck_block, 4, bn=bn, rng=rng, dtype=dtype)
    return Network(stem + blocks + _head(c_out, n_classes, rng, dtype))


CONV_MODELS = {"cnn": lenet, "resnet20": resnet20, "resnet18": resnet18, "resnet50": resnet50}
MODELS = ("mlp", *CONV_MODELS)

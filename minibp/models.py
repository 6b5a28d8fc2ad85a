"""Model builders. Every builder draws its weights from ``seed`` on the host, so every learning
rule and backend starts from the same numbers; widths, input size and class count are
parameters, so tests and notebooks can build tiny versions.

The convolutional models are built from three substitutable parts (:class:`Units`), the three that
the paper's Section 6 asks a more brain-like network to replace:

* ``conv``: ``"shared"`` convolutions (:class:`~minibp.layers.Conv2D`) or ``"local"``ly connected
  layers without weight sharing (:class:`~minibp.layers.LocalConv2D`);
* ``norm``: ``"batch"`` norm, homeostatic synaptic ``"scaling"``
  (:class:`~minibp.layers.SynapticScaling`) or ``"none"``; ``bn`` places it after the activation
  (the paper's ResNets) or before it;
* ``activation``: any of :data:`~minibp.layers.ACTIVATIONS`, e.g. the bounded ``"rectified_tanh"``.

Without batch norm, a weight layer it would have followed gets a bias of its own (batch norm's
shift ``β`` stood in for it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool,
    LocalConv2D,
    MaxPool2D,
    SynapticScaling,
    get_activation,
)
from .layers.base import Layer, WeightLayer
from .layers.conv import out_size
from .layers.residual import BN_PLACEMENTS, SHORTCUTS, Residual, Sequential, ZeroPadShortcut
from .network import Network

CONVS = ("shared", "local")
NORMS = ("batch", "scaling", "none")


@dataclass(frozen=True)
class Units:
    """How a convolutional model's parts are made: its weight layers (``conv``), its normalisation
    (``norm``, placed by ``bn``: ``"after"`` or ``"before"`` the activation) and its ``activation``.

    ``scaling`` holds :class:`~minibp.layers.SynapticScaling`'s ``target``, ``rate`` and ``lr``
    (its defaults where not given). The defaults, shared convolutions, batch norm and ReLU, are
    the models as they have always been.
    """

    conv: str = "shared"
    norm: str = "batch"
    activation: str = "relu"
    bn: str = "after"
    dtype: str = "float32"
    scaling: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("conv", self.conv, CONVS),
            ("norm", self.norm, NORMS),
            ("bn", self.bn, BN_PLACEMENTS),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        get_activation(self.activation)  # an unknown name fails here, with the choices

    @property
    def standard(self) -> bool:
        """Whether these are the standard parts (shared convolutions, batch norm, ReLU)."""
        return (self.conv, self.norm, self.activation) == ("shared", "batch", "relu")

    @property
    def gain(self) -> float:
        """He et al.'s gain for weights that feed the activation."""
        return get_activation(self.activation).gain

    def act(self) -> Layer:
        return get_activation(self.activation)

    def weight(
        self,
        c_in: int,
        c_out: int,
        k: int,
        size: tuple[int, int],
        rng: np.random.Generator,
        *,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        gain: float | None = None,
        keep_columns: bool = False,
    ) -> tuple[WeightLayer, tuple[int, int]]:
        """A ``k × k`` weight layer ``c_in → c_out`` for inputs of ``size`` (height, width), and its
        output's size. Without batch norm to supply a shift, it has a bias whatever ``bias`` says."""
        bias = bias or self.norm != "batch"
        gain = self.gain if gain is None else gain
        kw = dict(stride=stride, padding=padding, bias=bias, gain=gain, rng=rng, dtype=self.dtype)
        if self.conv == "local":
            layer: WeightLayer = LocalConv2D(c_in, c_out, k, size, keep_columns=keep_columns, **kw)
        else:
            layer = Conv2D(c_in, c_out, k, keep_columns=keep_columns, **kw)
        return layer, (out_size(size[0], k, stride, padding), out_size(size[1], k, stride, padding))

    def norm_layer(self, c: int, size: tuple[int, int], measure: Layer | None) -> list[Layer]:
        """The normalisation of ``c`` channels of ``size``: batch norm, synaptic scaling (one gain
        per channel after shared convolutions, per unit after local ones; ``measure`` the
        activation whose output is the units' rate, None where the scaling follows it), or nothing."""
        if self.norm == "batch":
            return [BatchNorm(c, dtype=self.dtype)]
        if self.norm == "scaling":
            units = (c, *size) if self.conv == "local" else (c,)
            return [SynapticScaling(units, measure=measure, dtype=self.dtype, **dict(self.scaling))]
        return []

    def norm_act(self, c: int, size: tuple[int, int]) -> list[Layer]:
        """Normalisation and activation in the order ``bn`` gives."""
        act = self.act()
        if self.bn == "before":
            return [*self.norm_layer(c, size, act), act]
        return [act, *self.norm_layer(c, size, None)]

    def post(self, c: int, size: tuple[int, int]) -> Sequential:
        """What follows a residual sum: the activation, and the normalisation after it."""
        return Sequential([self.act()] if self.bn == "before" else self.norm_act(c, size))


def make_units(
    conv: str, norm: str, activation: str, bn: str, dtype: str, scaling: dict[str, float] | None = None
) -> Units:
    """:class:`Units` from a builder's arguments (``scaling``: :class:`~minibp.layers.SynapticScaling`'s
    ``target``, ``rate``, ``lr``)."""
    return Units(conv, norm, activation, bn, dtype, tuple(sorted((scaling or {}).items())))


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
    conv: str = "shared",
    norm: str = "none",
    activation: str = "relu",
    bn: str = "after",
    scaling: dict[str, float] | None = None,
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
) -> Network:
    """A LeNet-style CNN: two 5×5 convolutions (``width`` and ``width·8/3`` channels, padding 2)
    each followed by the activation and 2×2 max pooling, then dense 120 → 84 → classes with the
    activation. ``conv``, ``norm`` (after each convolution; none by default), ``bn`` and
    ``activation`` choose the parts (:class:`Units`)."""
    c, h, w = _check_image(input_shape)
    if h // 2 // 2 < 1 or w // 2 // 2 < 1:
        raise ValueError(f"lenet needs images of at least 4×4 pixels, got {input_shape}")
    units = make_units(conv, norm, activation, bn, dtype, scaling)
    rng = _rng(seed)
    c1, c2 = int(width), int(round(width * 8 / 3))
    layers: list[Layer] = []
    size = (h, w)
    for c_in, c_out in ((c, c1), (c1, c2)):
        # a LeNet's columns are small (12 MB at batch 64 on 28×28): keep them for eq (4)
        layer, size = units.weight(c_in, c_out, 5, size, rng, padding=2, keep_columns=True)
        layers += [layer, *units.norm_act(c_out, size), MaxPool2D(2)]
        size = (size[0] // 2, size[1] // 2)
    gain = units.gain
    layers += [
        Flatten(),
        Dense(c2 * size[0] * size[1], 120, gain=gain, rng=rng, dtype=dtype),
        units.act(),
        Dense(120, 84, gain=gain, rng=rng, dtype=dtype),
        units.act(),
        Dense(84, int(n_classes), rng=rng, dtype=dtype),
    ]
    return Network(layers)


def _head(channels: int, n_classes: int, rng: np.random.Generator, dtype: str) -> list[Layer]:
    return [GlobalAvgPool(), Dense(channels, int(n_classes), rng=rng, dtype=dtype)]


def _shortcut(
    units: Units, c_in: int, c_out: int, stride: int, size: tuple[int, int], rng: np.random.Generator, kind: str
) -> Sequential | None:
    """Where the shape changes: a 1×1 projection and the normalisation, or He et al.'s zero padding."""
    if stride == 1 and c_in == c_out:
        return None
    if kind not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {', '.join(SHORTCUTS)}, got {kind!r}")
    if kind == "zeropad":
        return Sequential([ZeroPadShortcut(c_in, c_out, stride)])
    proj, out = units.weight(c_in, c_out, 1, size, rng, stride=stride, bias=False)
    return Sequential([proj, *units.norm_layer(c_out, out, units.act())])


def _basic(
    units: Units, c_in: int, c_out: int, stride: int, size: tuple[int, int], rng: np.random.Generator, shortcut: str
) -> tuple[Residual, tuple[int, int]]:
    """Two 3×3 weight layers and the sum (:func:`basic_block`) from ``units``; returns the block and
    its output's size."""
    conv1, mid = units.weight(c_in, c_out, 3, size, rng, stride=stride, padding=1, bias=False)
    conv2, out = units.weight(c_out, c_out, 3, mid, rng, padding=1, bias=False)
    main: list[Layer] = [conv1, *units.norm_act(c_out, mid), conv2]
    if units.bn == "before":
        main += units.norm_layer(c_out, out, units.act())
    short = _shortcut(units, c_in, c_out, stride, size, rng, shortcut)
    return Residual(Sequential(main), short, units.post(c_out, out)), out


def _bottleneck(
    units: Units, c_in: int, width: int, stride: int, size: tuple[int, int], rng: np.random.Generator, shortcut: str
) -> tuple[Residual, tuple[int, int]]:
    """1×1 down to ``width``, 3×3 (strided), 1×1 up to ``4·width`` (:func:`bottleneck_block`) from
    ``units``; returns the block and its output's size."""
    c_out = 4 * width
    conv1, s1 = units.weight(c_in, width, 1, size, rng, bias=False)
    conv2, s2 = units.weight(width, width, 3, s1, rng, stride=stride, padding=1, bias=False)
    conv3, out = units.weight(width, c_out, 1, s2, rng, bias=False)
    main: list[Layer] = [conv1, *units.norm_act(width, s1), conv2, *units.norm_act(width, s2), conv3]
    if units.bn == "before":
        main += units.norm_layer(c_out, out, units.act())
    short = _shortcut(units, c_in, c_out, stride, size, rng, shortcut)
    return Residual(Sequential(main), short, units.post(c_out, out)), out


def _block_units(
    size: tuple[int, int] | None, conv: str, norm: str, activation: str, bn: str, dtype: str
) -> tuple[Units, tuple[int, int]]:
    units = make_units(conv, norm, activation, bn, dtype)
    if size is None:
        if units.conv == "local":
            raise ValueError("a block of locally connected layers needs its input's size: pass size=(height, width)")
        size = (1, 1)  # shared convolutions do not depend on it
    return units, size


def basic_block(
    c_in: int,
    c_out: int,
    stride: int = 1,
    *,
    bn: str = "after",
    shortcut: str = "projection",
    conv: str = "shared",
    norm: str = "batch",
    activation: str = "relu",
    size: tuple[int, int] | None = None,
    rng: np.random.Generator,
    dtype: str = "float32",
) -> Residual:
    """ResNet-18/20/34's block, two 3×3 weight layers and the sum. ``bn="before"`` puts batch norm
    before the activation, ``conv → BN → ReLU → conv → BN``, sum, ``ReLU`` (He et al.'s block);
    ``"after"`` puts it after, ``conv → ReLU → BN → conv``, sum, ``ReLU → BN`` (the paper's
    ResNets). ``shortcut`` where the shape changes (``SHORTCUTS``); ``conv``, ``norm``,
    ``activation`` choose the parts (:class:`Units`); ``size``, the input's height and width, is
    needed by locally connected layers only."""
    units, size = _block_units(size, conv, norm, activation, bn, dtype)
    return _basic(units, c_in, c_out, stride, size, rng, shortcut)[0]


def bottleneck_block(
    c_in: int,
    width: int,
    stride: int = 1,
    *,
    bn: str = "after",
    shortcut: str = "projection",
    conv: str = "shared",
    norm: str = "batch",
    activation: str = "relu",
    size: tuple[int, int] | None = None,
    rng: np.random.Generator,
    dtype: str = "float32",
) -> Residual:
    """ResNet-50's block: 1×1 down to ``width``, 3×3 (strided), 1×1 up to ``4·width``, and the sum;
    the other arguments as :func:`basic_block`'s."""
    units, size = _block_units(size, conv, norm, activation, bn, dtype)
    return _bottleneck(units, c_in, width, stride, size, rng, shortcut)[0]


def _stages(
    units: Units,
    c_in: int,
    size: tuple[int, int],
    plan: Sequence[tuple[int, int]],
    block: Callable[..., tuple[Residual, tuple[int, int]]],
    expansion: int,
    rng: np.random.Generator,
    shortcut: str = "projection",
) -> tuple[list[Layer], int]:
    """Residual stages: ``plan`` lists ``(width, blocks)`` per stage; every stage after the first
    starts with stride 2. Returns the blocks and the channels that come out."""
    layers: list[Layer] = []
    for stage, (width, n_blocks) in enumerate(plan):
        for i in range(n_blocks):
            layer, size = block(units, c_in, width, 2 if stage > 0 and i == 0 else 1, size, rng, shortcut)
            layers.append(layer)
            c_in = width * expansion
    return layers, c_in


def resnet20(
    input_shape: Sequence[int] = (3, 32, 32),
    n_classes: int = 10,
    *,
    width: int = 16,
    blocks: int = 3,
    bn: str = "after",
    shortcut: str = "projection",
    conv: str = "shared",
    norm: str = "batch",
    activation: str = "relu",
    scaling: dict[str, float] | None = None,
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
) -> Network:
    """ResNet-20 (He et al. 2016, the CIFAR network): a 3×3 stem of ``width`` channels, three
    stages of three basic blocks (``width``, ``2·width``, ``4·width`` channels, the last two
    starting with stride 2), global average pooling and a dense classifier. ``shortcut`` where a
    stage starts: ``"projection"`` (a 1×1 convolution and BN; 272,474 parameters at width 16 on
    CIFAR-10) or ``"zeropad"`` (He et al.'s parameter-free CIFAR shortcut; 269,722).
    ``blocks`` per stage: 3 for ResNet-20, He et al.'s ``6n + 2`` layers in general (1: ResNet-8).
    ``conv``, ``norm``, ``bn`` and ``activation`` choose the parts (:class:`Units`)."""
    c, h, w = _check_image(input_shape)
    if int(blocks) < 1:
        raise ValueError(f"resnet20 needs at least one block per stage, got blocks={blocks}")
    units = make_units(conv, norm, activation, bn, dtype, scaling)
    rng = _rng(seed)
    stem, size = units.weight(c, width, 3, (h, w), rng, padding=1, bias=False)
    layers: list[Layer] = [stem, *units.norm_act(width, size)]
    plan = [(width * 2**stage, int(blocks)) for stage in range(3)]
    residual, c_out = _stages(units, width, size, plan, _basic, 1, rng, shortcut)
    return Network(layers + residual + _head(c_out, n_classes, rng, dtype))


def _imagenet_stem(units: Units, c: int, width: int, size: tuple[int, int], rng: np.random.Generator) -> list[Layer]:
    stem, size = units.weight(c, width, 7, size, rng, stride=2, padding=3, bias=False)
    return [stem, *units.norm_act(width, size), MaxPool2D(3, stride=2, padding=1)]


def _imagenet_size(size: tuple[int, int]) -> tuple[int, int]:
    return tuple(out_size(out_size(s, 7, 2, 3), 3, 2, 1) for s in size)  # after the stem's conv and pool


def _check_imagenet_size(input_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    c, h, w = _check_image(input_shape)
    if min(_imagenet_size((h, w))) < 1:
        raise ValueError(f"{name} needs images of at least 2×2 pixels, got {input_shape}")
    return c, h, w


def _imagenet_units(
    conv: str, norm: str, activation: str, bn: str, dtype: str, scaling: dict[str, float] | None, name: str
) -> Units:
    if conv == "local":
        raise ValueError(
            f"{name} with locally connected layers would hold a kernel per position of 56×56 and larger "
            "feature maps (billions of weights): use --conv local with --model cnn or resnet20"
        )
    return make_units(conv, norm, activation, bn, dtype, scaling)


def resnet18(
    input_shape: Sequence[int] = (3, 224, 224),
    n_classes: int = 1000,
    *,
    width: int = 64,
    bn: str = "after",
    conv: str = "shared",
    norm: str = "batch",
    activation: str = "relu",
    scaling: dict[str, float] | None = None,
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
) -> Network:
    """ResNet-18 (He et al. 2016) with the ImageNet stem (7×7 stride-2 conv, 3×3 stride-2 max
    pool) and four stages of two basic blocks (``width · 1, 2, 4, 8`` channels). ``norm``, ``bn``
    and ``activation`` choose the parts (:class:`Units`; ``conv`` is ``"shared"`` only)."""
    c, h, w = _check_imagenet_size(input_shape, "resnet18")
    units = _imagenet_units(conv, norm, activation, bn, dtype, scaling, "resnet18")
    rng = _rng(seed)
    stem = _imagenet_stem(units, c, width, (h, w), rng)  # drawn first: weights come from rng in layer order
    plan = [(width * 2**stage, 2) for stage in range(4)]
    blocks, c_out = _stages(units, width, _imagenet_size((h, w)), plan, _basic, 1, rng)
    return Network(stem + blocks + _head(c_out, n_classes, rng, dtype))


def resnet50(
    input_shape: Sequence[int] = (3, 224, 224),
    n_classes: int = 1000,
    *,
    width: int = 64,
    bn: str = "after",
    conv: str = "shared",
    norm: str = "batch",
    activation: str = "relu",
    scaling: dict[str, float] | None = None,
    seed: int | np.random.Generator = 0,
    dtype: str = "float32",
) -> Network:
    """ResNet-50 (He et al. 2016): the ImageNet stem, then 3, 4, 6 and 3 bottleneck blocks of
    ``width · 1, 2, 4, 8`` inner channels (×4 out). ``norm``, ``bn`` and ``activation`` choose the
    parts (:class:`Units`; ``conv`` is ``"shared"`` only)."""
    c, h, w = _check_imagenet_size(input_shape, "resnet50")
    units = _imagenet_units(conv, norm, activation, bn, dtype, scaling, "resnet50")
    rng = _rng(seed)
    stem = _imagenet_stem(units, c, width, (h, w), rng)
    plan = [(width * 2**stage, n) for stage, n in enumerate((3, 4, 6, 3))]
    blocks, c_out = _stages(units, width, _imagenet_size((h, w)), plan, _bottleneck, 4, rng)
    return Network(stem + blocks + _head(c_out, n_classes, rng, dtype))


CONV_MODELS = {"cnn": lenet, "resnet20": resnet20, "resnet18": resnet18, "resnet50": resnet50}
MODELS = ("mlp", *CONV_MODELS)


def conv_model_kwargs(config: Any) -> dict[str, Any]:
    """The keyword arguments of ``CONV_MODELS[config.model]`` from a run's settings (a
    :class:`~minibp.config.TrainConfig`): seed, dtype, and the width and parts the model takes."""
    model = config.model
    kwargs: dict[str, Any] = {"seed": config.seed, "dtype": config.dtype}
    if config.width:
        kwargs["width"] = config.width
    norm = getattr(config, "norm", None) or ("none" if model == "cnn" else "batch")
    kwargs["norm"] = norm
    kwargs["activation"] = getattr(config, "activation", "relu")
    kwargs["conv"] = getattr(config, "conv", "shared")
    if model != "cnn" or norm != "none":
        kwargs["bn"] = config.bn
    if model == "resnet20":
        kwargs["shortcut"] = config.shortcut
        kwargs["blocks"] = getattr(config, "blocks", 3)
    if norm == "scaling":
        parts = ("target", "rate", "lr", "max_gain")
        kwargs["scaling"] = {k: getattr(config, f"scaling_{k}") for k in parts if hasattr(config, f"scaling_{k}")}
    return kwargs

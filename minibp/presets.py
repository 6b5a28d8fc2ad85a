"""Named setups: the paper's experiments and the reference runs, at a scale you choose.

A preset is a set of :class:`~minibp.config.TrainConfig` settings, plus settings for
single rules where the source tuned them per rule. On the command line it is the
first layer: ``--config`` overrides it and flags override both, so
``minibp train --preset imagenet-resnet18 --dataset imagenet32`` runs the ImageNet recipe on
downsampled images. Flags replace settings, they do not rescale them: a shorter ``--epochs``
with a step schedule needs its ``--milestones`` too.

Sources of the numbers (the README's table of presets gives each one's source and choices, and
its sections on the weight mirror tell how the mirror's settings were chosen):

* ``mnist-sigmoid``: the official implementation's MNIST runs; KP's weight decay is minibp's,
  so that ``W − Bᵀ`` shrinks (eqs 13–14), and WM trains at BP's learning rate because the
  decay minibp adds to eq (7) bounds its ``B``.
* ``fashion-lenet``: the LeNet setup of a published benchmark of feedback-alignment methods;
  the initial learning rate, FA's, DFA's and SA's lower ones and WM's and AA's fast mirroring are
  minibp's.
* ``cifar10-resnet20``: the same benchmark's CIFAR-10 ResNet-20 runs; the milestones are minibp's.
* ``fashion-resnet20``: the paper's ResNet setting (Section 6: batch norm after the ReLU, ReLUs
  without bias-blocking) on Fashion-MNIST, sized to train every rule on a 2-core machine; width,
  batch, epochs and decay are minibp's (``benchmarks/README.md`` tells why).
* ``fashion-lenet-brain``/``fashion-resnet8-brain`` and their ``-twin`` presets: the more brain-like
  networks that Section 6 asks for (locally connected layers, synaptic scaling in place of batch
  norm, rectified tanh) and the standard networks with the same schedule and rule settings, sized
  so that the paper's five rules train on one core in about an hour; schedules, the ResNet's
  depth and width, and the mirror's noise are minibp's (the README's section "A more brain-like
  network" tells why).
* ``imagenet-resnet18``/``imagenet-resnet50``: the paper's ImageNet runs (Section 6: batch norm
  after the ReLU, ReLUs without bias-blocking, learning rate ×0.1 at epoch 32), with the ResNet
  paper's ImageNet recipe (He et al. 2016) for what the paper's text leaves open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    """Settings for every rule, ``settings``, and per rule on top, ``rule_settings``."""

    description: str
    settings: Mapping[str, Any]
    rule_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


_IMAGENET = {
    "dataset": "imagenet",
    "bn": "after",
    "epochs": 90,
    "batch_size": 256,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "schedule": "step",
    "milestones": [32],
    "gamma": 0.1,
    "probe_size": 256,
    "checkpoint_every": 1000,
    "wm_bias_blocking": False,  # Section 6: "ReLUs without bias-blocking"
}

#: Section 6's substitutions: locally connected layers, synaptic scaling (before the unit, on its
#: drive: Turrigiano's postsynaptic scaling) in place of batch norm, rectified tanh in place of ReLU
_BRAIN_LIKE = {"conv": "local", "norm": "scaling", "bn": "before", "activation": "rectified_tanh"}

_LENET_TWIN = {
    "dataset": "fashion-mnist",
    "model": "cnn",
    "epochs": 3,
    "batch_size": 64,
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-3,
    "schedule": "cosine",
}
#: fashion-lenet's rule settings, with 128 noise samples per mirror pass (not 1024), so that a pass
#: costs the locally connected LeNet about what a training step does
_LENET_RULES = {
    "fa": {"lr": 0.0025},
    "dfa": {"lr": 0.001},
    "sa": {"lr": 0.0025},
    "aa": {"aa_lr": 125.0, "aa_every": 1, "aa_batch_size": 128},
    "wm": {"wm_lr": 0.5, "wm_decay": 0.5, "wm_every": 1, "wm_batch_size": 128, "wm_normalize": True},
}

_RESNET8_TWIN = {
    "dataset": "fashion-mnist",
    "model": "resnet20",
    "blocks": 1,
    "width": 4,
    "bn": "after",
    "epochs": 2,
    "batch_size": 128,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-3,
    "schedule": "cosine",
    "wm_bias_blocking": False,  # Section 6: "ReLUs without bias-blocking"
}

PRESETS: dict[str, Preset] = {
    "digits-mlp": Preset(
        "the default job: scikit-learn's 8x8 digits, MLP 64-256-256-10 with ReLU, about 25 s for the paper's rules",
        {"dataset": "digits", "model": "mlp", "hidden": [256, 256], "activation": "relu", "epochs": 100},
    ),
    "mnist-sigmoid": Preset(
        "the official implementation's MNIST runs: MLP 784-500-10, sigmoid units, plain SGD",
        {
            "dataset": "mnist",
            "model": "mlp",
            "hidden": [500],
            "activation": "sigmoid",
            "epochs": 400,
            "batch_size": 128,
            "lr": 0.2,
            "momentum": 0.0,
            "weight_decay": 0.0,
            "schedule": "constant",
        },
        {"kp": {"lr": 0.3, "weight_decay": 1e-4}},
    ),
    "fashion-lenet": Preset(
        "LeNet on Fashion-MNIST, the feedback-alignment benchmark's setup",
        {
            "dataset": "fashion-mnist",
            "model": "cnn",
            "epochs": 100,
            "batch_size": 64,
            "lr": 0.01,
            "momentum": 0.9,
            "weight_decay": 1e-3,
            "schedule": "step",
            "milestones": [50, 75],
            "gamma": 0.1,
        },
        # a random B diverges at 0.01 (FA's, DFA's, SA's; DFA's at 0.0025 too); WM and AA mirror fast (README)
        {
            "fa": {"lr": 0.0025},
            "dfa": {"lr": 0.001},
            "sa": {"lr": 0.0025},
            "aa": {"aa_lr": 125.0, "aa_every": 1, "aa_batch_size": 1024},
            "wm": {"wm_lr": 0.5, "wm_decay": 0.5, "wm_every": 1, "wm_batch_size": 1024, "wm_normalize": True},
        },
    ),
    "cifar10-resnet20": Preset(
        "ResNet-20 on CIFAR-10, the feedback-alignment benchmark's setup",
        {
            "dataset": "cifar10",
            "model": "resnet20",
            "epochs": 250,
            "batch_size": 128,
            "lr": 0.1,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "schedule": "step",
            "milestones": [100, 150],
            "gamma": 0.1,
            "augment": True,  # the published recipes train on crops and flips
        },
    ),
    "fashion-resnet20": Preset(
        "ResNet-20 (width 8, batch norm after the ReLU, WM without bias-blocking) on Fashion-MNIST",
        {
            "dataset": "fashion-mnist",
            "model": "resnet20",
            "width": 8,
            "bn": "after",
            "epochs": 15,
            "batch_size": 128,
            "lr": 0.05,
            "momentum": 0.9,
            "weight_decay": 5e-3,  # KP's W − Bᵀ shrinks by Σ_t η_t·wd/(1 − μ) ≈ 8.8 e-folds over the schedule
            "schedule": "cosine",
            "wm_bias_blocking": False,  # Section 6: "ReLUs without bias-blocking"
        },
    ),
    "fashion-lenet-twin": Preset(
        "LeNet on Fashion-MNIST, 3 epochs: the standard twin of fashion-lenet-brain",
        _LENET_TWIN,
        _LENET_RULES,
    ),
    "fashion-lenet-brain": Preset(
        "brain-like LeNet on Fashion-MNIST (Section 6): local connections, synaptic scaling, rectified tanh",
        {**_LENET_TWIN, **_BRAIN_LIKE},
        _LENET_RULES,
    ),
    "fashion-resnet8-twin": Preset(
        "ResNet-8 (width 4, batch norm after the ReLU) on Fashion-MNIST, 2 epochs: the twin of fashion-resnet8-brain",
        _RESNET8_TWIN,
    ),
    "fashion-resnet8-brain": Preset(
        "brain-like ResNet-8 on Fashion-MNIST (Section 6): local connections, synaptic scaling, rectified tanh",
        {**_RESNET8_TWIN, **_BRAIN_LIKE},
    ),
    "imagenet-resnet18": Preset("the paper's ImageNet ResNet-18 runs (Section 6)", {**_IMAGENET, "model": "resnet18"}),
    "imagenet-resnet50": Preset("the paper's ImageNet ResNet-50 runs (Section 6)", {**_IMAGENET, "model": "resnet50"}),
}


def describe_presets() -> str:
    """A readable list of every preset and its settings (``minibp presets``)."""
    lines = []
    for name, preset in PRESETS.items():
        lines.append(f"{name}: {preset.description}")
        lines.append("    " + ", ".join(f"{k}={v}" for k, v in preset.settings.items()))
        for rule, extra in preset.rule_settings.items():
            lines.append(f"    {rule}: " + ", ".join(f"{k}={v}" for k, v in extra.items()))
    return "\n".join(lines)

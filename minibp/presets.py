"""Named setups: the paper's experiments and the reference runs, at a scale you choose.

A preset is a set of :class:`~minibp.train.TrainConfig` settings, plus settings for
single rules where the source tuned them per rule. On the command line it is the
first layer: ``--config`` overrides it and flags override both, so
``minibp train --preset imagenet-resnet18 --dataset imagenet32`` runs the ImageNet recipe on
downsampled images. Flags replace settings, they do not rescale them: a shorter ``--epochs``
with a step schedule needs its ``--milestones`` too.

Sources of the numbers:

* ``mnist-sigmoid`` — the official implementation's MNIST runs (784-500-10, sigmoid, batch
  128, 400 epochs, plain SGD, learning rate 0.2 for BP and FA, 0.05 for WM, 0.3 for KP).
  That code applies no decay to KP's ``B``, so ``W − Bᵀ`` never shrinks there; minibp gives
  KP a weight decay of 1e-4 (``λ = 3·10⁻⁵`` per step) so that ``W − Bᵀ`` shrinks (eqs 13–14). It applies no
  decay to WM's ``B`` either: its mirror adds ``0.01 · Σ x yᵀ`` over 128 noise samples after
  every step, so ``B`` keeps growing along ``Wᵀ`` and the hidden layer's feedback grows with
  it, which stands in for a larger learning rate. minibp's WM decays ``B`` (the weight decay
  Sections 4.1 and 4.3 suggest, added to eq 7), which
  holds the output layer's ``B`` at ``Wᵀ`` (a linear layer, ``η_B = λ_B``, ``σ = 1``), so its
  feedback has backprop's scale; at the official 0.05 it was still improving at epoch 400
  (97.85 %). WM therefore trains at BP's learning rate, 0.2.
* ``fashion-lenet`` — the LeNet setup of a published benchmark of feedback-alignment methods
  (SGD, momentum 0.9, weight decay 1e-3, batch 64, 100 epochs, learning rate ×0.1 at epochs
  50 and 75). The initial learning rate, 0.01, is minibp's choice. FA, whose random ``B``
  made it diverge in its first epoch at 0.01 and at 0.005, trains at 0.0025. WM trains at
  0.01 with fast, normalised mirroring: a pass of 1024 noise samples after every step,
  ``η_B = λ_B = 0.5`` (a lag of about 2 steps), and ``normalize`` so that every layer's
  ``B`` settles at ``Wᵀ`` rather than ``½Wᵀ`` per ReLU layer. With the default mirroring
  (128 samples every 4th step, 0.008), ``B`` lags the fast-changing ``W`` by about 500
  steps, and WM diverged at 0.01 and 0.005 in the first two epochs, and at 0.0025 in epoch 6
  (the paper, Section 6: "That problem could also have been solved with more mirroring").
  With ``η_B = λ_B = 0.1`` and no normalising it trained, but ended the full schedule at
  9.04 %, 0.86 points behind BP; normalised with that 10-step lag it diverged in its first
  epoch. On the 10-epoch schedule the preset's settings ended at 10.08 %, against 12.13 %
  for ``η_B = λ_B = 0.1`` unnormalised and 9.90 % for BP; on the full schedule at 8.07 %,
  against 8.18 % for BP.
* ``cifar10-resnet20`` — the same benchmark's CIFAR-10 ResNet-20 runs (SGD, learning rate
  0.1, momentum 0.9, weight decay 1e-4, batch 128, 250 epochs); the milestones (×0.1 at 100
  and 150) are minibp's choice.
* ``imagenet-resnet18``/``imagenet-resnet50`` — the paper's ImageNet runs (Section 6): batch
  norm after the ReLU, ReLUs without bias-blocking (so the weight mirror's is off), learning
  rate ×0.1 at epoch 32. The paper's text gives no more; learning rate 0.1, momentum 0.9,
  weight decay 1e-4 and batch 256 are the ResNet paper's ImageNet recipe (He et al. 2016,
  the paper's ref. [30]), and the number of epochs, 90, is minibp's choice.
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

PRESETS: dict[str, Preset] = {
    "digits-mlp": Preset(
        "the default job: scikit-learn's 8x8 digits, MLP 64-256-256-10 with ReLU, about 45 s for all rules",
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
        # WM keeps BP's 0.2: with the decay minibp adds to eq (7) its B does not grow as the official one does
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
        # FA, with its random B, diverges in its first epoch at 0.01 and at 0.005; WM keeps up
        # with W only if it mirrors fast, and learns like BP only if normalised (module docstring)
        {
            "fa": {"lr": 0.0025},
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
        },
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

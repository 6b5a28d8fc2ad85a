"""A run's settings: :class:`TrainConfig`, the one schema of the command line, ``--config`` files,
presets and the ``config.json`` saved with every run.

Its fields are the run's own settings (below) and every learning rule's settings, taken from
the rule's dataclass fields as ``<rule>_<field>`` (``wm_sigma`` is :class:`WeightMirror`'s
``sigma``): a rule declares its settings once, in its class in ``minibp/rules/``. Every setting is checked
against its type and range when a config is made, whatever its source.

Some settings default to the model's own value (:data:`MODEL_DEFAULTS`), so that every
model trains under every rule with its defaults; a value given explicitly wins.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .backend import requested_backend
from .data import ALIASES, DATASETS
from .layers.activations import ACTIVATIONS
from .layers.residual import BN_PLACEMENTS, SHORTCUTS
from .layers.scaling import SynapticScaling
from .losses import LOSSES
from .models import CONVS, MODELS, NORMS
from .optim import SCHEDULES
from .parallel import TRANSPORTS
from .rules import RULES, Rule
from .settings import check_settings, setting, settings_of

#: settings that may differ when a run is resumed: they change where and how fast it runs,
#: never its numbers
RUNTIME_SETTINGS = (
    "backend",
    "data_dir",
    "workers",
    "log_every",
    "checkpoint_every",
    "transport",
    "collective_timeout",
)

#: each model's defaults for the settings whose default is None ("the model's"), chosen so that
#: every rule learns on the default data, digits, with them (the README gives what each reaches).
#: The ResNets' suit ResNet-20; the presets set up real datasets.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"lr": 0.05, "epochs": 100, "batch_size": 32, "weight_decay": 5e-3},
    "cnn": {"lr": 0.01, "epochs": 20, "batch_size": 32, "weight_decay": 5e-3, "norm": "none"},
    "resnet20": {"lr": 0.05, "epochs": 20, "batch_size": 32, "weight_decay": 5e-3, "norm": "batch"},
    "resnet18": {"lr": 0.05, "epochs": 20, "batch_size": 32, "weight_decay": 5e-3, "norm": "batch"},
    "resnet50": {"lr": 0.05, "epochs": 20, "batch_size": 32, "weight_decay": 5e-3, "norm": "batch"},
}


#: the datasets ``augment`` applies to: natural images held in memory
AUGMENTED_DATASETS = ("cifar10", "imagenet32", "imagenet64")

#: synaptic scaling's settings, which act with ``--norm scaling`` only
SCALING_SETTINGS = ("scaling_target", "scaling_rate", "scaling_lr", "scaling_max_gain")
_SCALING_DEFAULTS = SynapticScaling.__init__.__kwdefaults__

#: settings that shape only some models; given for another model they would be ignored, so they are refused
_MODEL_SETTINGS = {
    "hidden": ("mlp",),
    "width": ("cnn", "resnet20", "resnet18", "resnet50"),
    "conv": ("cnn", "resnet20"),
    "norm": ("cnn", "resnet20", "resnet18", "resnet50"),
    "bn": ("cnn", "resnet20", "resnet18", "resnet50"),
    "shortcut": ("resnet20",),
    "blocks": ("resnet20",),
    "sync_bn": ("cnn", "resnet20", "resnet18", "resnet50"),
    **{name: ("cnn", "resnet20", "resnet18", "resnet50") for name in SCALING_SETTINGS},
}


def default_text(what: str) -> str:
    """In words, where a setting whose default is None takes its value from (for ``--help``)."""
    if what == "backend":
        return "$MINIBP_BACKEND, else numpy"
    values = {m: d[what] for m, d in MODEL_DEFAULTS.items() if what in d}
    return "the model's: " + ", ".join(f"{m} {v}" if isinstance(v, str) else f"{m} {v:g}" for m, v in values.items())


@dataclasses.dataclass
class RunSettings:
    """The run's own settings (the rules' come after them in :class:`TrainConfig`)."""

    rule: str = setting("bp", "learning rule", choices=lambda: RULES)
    dataset: str = setting("digits", "dataset", choices=lambda: [*DATASETS, *ALIASES])
    model: str = setting("mlp", "model (cnn is LeNet-style; the ResNets are He et al. 2016's)", choices=MODELS)
    hidden: tuple[int, ...] = setting((256, 256), "hidden layer sizes of the MLP", ge=1, item=int)
    activation: str = setting(
        "relu",
        "activation of the hidden units (rectified_tanh: the bounded unit of the paper's Section 6)",
        choices=lambda: sorted(set(ACTIVATIONS)),
    )
    width: int = setting(
        0, "base width of a convolutional model (0: its default: cnn 6, resnet20 16, resnet18/50 64)", ge=0
    )
    conv: str = setting(
        "shared",
        "cnn, resnet20: convolutions (shared) or locally connected layers, a kernel per output position (local)",
        choices=CONVS,
    )
    norm: str | None = setting(
        None,
        "normalisation after each convolution: batch norm, homeostatic synaptic scaling, or none",
        choices=NORMS,
        kind=str,
    )
    bn: str = setting(
        "after",
        "placement of the normalisation (--norm): after the activation (the paper's ResNets) or before it",
        choices=BN_PLACEMENTS,
    )
    scaling_target: float = setting(
        _SCALING_DEFAULTS["target"], "--norm scaling: each unit's target mean rate a*", gt=0
    )
    scaling_rate: float = setting(
        _SCALING_DEFAULTS["rate"], "--norm scaling: rate of each unit's activity trace per batch", gt=0, le=1
    )
    scaling_lr: float = setting(
        _SCALING_DEFAULTS["lr"], "--norm scaling: rate eta of the multiplicative gain step per batch", gt=0
    )
    scaling_max_gain: float = setting(
        _SCALING_DEFAULTS["max_gain"],
        "--norm scaling: upper bound of each unit's gain (0: none; a silent unit's gain otherwise grows without bound)",
        ge=0,
    )
    blocks: int = setting(
        3, "resnet20: residual blocks per stage (3: ResNet-20; He et al.'s 6n+2 layers, so 1 is ResNet-8)", ge=1
    )
    shortcut: str = setting(
        "projection",
        "ResNet-20's shortcut where a stage starts: a 1x1 convolution and batch norm (projection), or He et al.'s "
        "parameter-free CIFAR shortcut, subsampled with zero channels added (zeropad)",
        choices=SHORTCUTS,
    )
    sync_bn: bool = setting(
        False,
        "with several ranks (mpiexec): batch norm's statistics over the global batch, as one process would "
        "compute them, instead of over each rank's share (the presets' choice, as PyTorch's DDP)",
    )
    loss: str = setting("cross_entropy", "loss", choices=lambda: LOSSES)
    epochs: int | None = setting(None, "training epochs", ge=1, kind=int)
    batch_size: int | None = setting(None, "examples per training step", ge=1, kind=int)
    lr: float | None = setting(None, "learning rate eta of eqs (4), (16), (17)", gt=0, kind=float)
    momentum: float = setting(0.9, "SGD momentum (minibp's addition to eqs 16-17)", ge=0, lt=1)
    weight_decay: float | None = setting(
        None, "weight decay wd; the per-step decay of eq (16) is lambda = lr * wd", ge=0, kind=float
    )
    schedule: str = setting("cosine", "learning-rate schedule", choices=SCHEDULES)
    milestones: tuple[float, ...] = setting(
        (), "epochs at which the step schedule multiplies the rate by --gamma", ge=0, item=float
    )
    gamma: float = setting(0.1, "factor of the step schedule", gt=0)
    seed: int = setting(0, "random seed (weights, feedback weights, data order, mirror noise)", ge=0)
    dtype: str = setting("float32", "floating-point type of every array", choices=("float32", "float64"))
    backend: str | None = setting(None, "array module", choices=("numpy", "cupy", "guard"), kind=str)
    data_dir: str = setting("", "folder holding the dataset files (default: $MINIBP_DATA, else ~/.cache/minibp)")
    augment: bool = setting(
        False,
        "cifar10, imagenet32, imagenet64: train on a random crop of each image zero-padded by 4 pixels, "
        "flipped left to right half the time (from seed, epoch and index; never for evaluation)",
    )
    image_size: int = setting(224, "imagenet: side of the training crops and of the validation center crop", ge=1)
    workers: int = setting(-1, "imagenet: decoding processes (-1: one per CPU core but one)", ge=-1)
    probe_size: int = setting(512, "training examples the delta angle (Fig 4b, d, f) is measured on", ge=1)
    diverge_factor: float = setting(
        1e3, "stop when a batch loss exceeds this multiple of the untrained network's loss", gt=1
    )
    log_every: int = setting(50, "steps between reads of the loss on the host (divergence check, progress bar)", ge=1)
    checkpoint_every: int = setting(0, "steps between checkpoints inside an epoch (0: after each epoch only)", ge=0)
    transport: str = setting(
        "auto",
        "with several ranks: how gradients travel; auto is NCCL for --backend cupy where CuPy has it, else MPI",
        choices=TRANSPORTS,
    )
    collective_timeout: float = setting(
        600.0, "with several ranks: seconds to wait for the other ranks before every rank stops", gt=0
    )

    def __post_init__(self) -> None:
        check_settings(self)
        for name, value in MODEL_DEFAULTS[self.model].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.backend is None:
            self.backend = requested_backend()

    def check_new_run(self) -> None:
        """Checks for a run about to start, not for one saved before they existed (it may resume):
        settings that would be ignored, or contradict each other, are refused."""
        late = [m for m in self.milestones if m >= self.epochs]
        if self.schedule == "step" and late:
            raise ValueError(
                f"milestone(s) {late} fall at or after the last epoch ({self.epochs}), so the rate would never drop "
                "there: with a shorter --epochs, give --milestones too"
            )
        if self.schedule != "step" and self.milestones:
            raise ValueError(
                f"milestones {list(self.milestones)} apply to the step schedule only, and the schedule is "
                f"{self.schedule!r}: give --schedule step, or leave out --milestones"
            )
        if self.augment and self.dataset not in AUGMENTED_DATASETS:
            raise ValueError(
                f"--augment (crop and flip) is for {', '.join(AUGMENTED_DATASETS)}, not {self.dataset!r}: "
                "leave it out (imagenet, from folders, augments its own way)"
            )
        defaults = RunSettings(model=self.model)
        self._check_parts(defaults)
        for name, models in _MODEL_SETTINGS.items():
            if self.model not in models and getattr(self, name) != getattr(defaults, name):
                flag = "--" + name.replace("_", "-")
                use = f"--model {models[0]}" if len(models) == 1 else "one of those models"
                raise ValueError(
                    f"{flag} applies to --model {'|'.join(models)} only, and the model is {self.model!r}: "
                    f"leave out {flag}, or use {use}"
                )

    def _check_parts(self, defaults: RunSettings) -> None:
        """The model's parts (--conv, --norm, --bn, --activation, --scaling-*) contradict nothing."""
        if self.model == "mlp":
            return
        if self.norm == "none" and self.bn != defaults.bn:
            raise ValueError(
                f"--bn {self.bn} places the normalisation, and --norm is none: leave out --bn, or give "
                "--norm batch or --norm scaling"
            )
        if self.norm != "batch" and self.sync_bn:
            raise ValueError(
                f"--sync-bn synchronizes batch norm's statistics, and --norm is {self.norm}: leave out --sync-bn"
            )
        given = [k for k in SCALING_SETTINGS if getattr(self, k) != getattr(defaults, k)]
        if given and self.norm != "scaling":
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ValueError(f"{flags} set synaptic scaling, and --norm is {self.norm}: give --norm scaling too")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"], d["milestones"] = list(self.hidden), list(self.milestones)
        return d

    def make_rule(self) -> Rule:
        """The rule ``self.rule`` with its settings from this config, and the run's seed."""
        cls = RULES[self.rule]
        own = {f.name: getattr(self, f"{cls.name}_{f.name}") for f in settings_of(cls)}
        return cls(seed=self.seed, **own)


def _rule_fields() -> list[tuple[str, Any, dataclasses.Field]]:
    """Every rule's settings as fields of the run's config, named ``<rule>_<field>``."""
    fields = []
    for cls in RULES.values():
        for f in settings_of(cls):
            meta = dict(f.metadata, help=f"{cls.label}: {f.metadata['help']}")
            fields.append((f"{cls.name}_{f.name}", f.type, dataclasses.field(default=f.default, metadata=meta)))
    return fields


def make_train_config() -> type[RunSettings]:
    """The class of a run's settings: :class:`RunSettings` and the settings of every rule in
    :data:`~minibp.rules.RULES` when it is called (``TrainConfig`` is made once, at import)."""
    cls = dataclasses.make_dataclass("TrainConfig", _rule_fields(), bases=(RunSettings,))
    cls.__module__ = __name__
    cls.__doc__ = """Everything that defines a run: :class:`RunSettings` and every rule's settings
    (``wm_sigma``, …). The defaults are the digits job of ``minibp compare``."""
    return cls


TrainConfig = make_train_config()

"""Training: one network under one rule (:func:`train`), or all five from the same start (:func:`compare`).

A training step is the paper's engaged mode followed, for the weight mirror, by
its mirror mode (Fig 1):

1. forward path, eq (1);
2. loss and output error ``δ_L``;
3. feedback path, eqs (2)/(3), with forward gradients, eq (4), and KP's ``B`` gradient, eq (17);
4. optimizer step, eqs (16)–(17);
5. ``rule.after_step``: mirror mode for WM, eqs (6)–(7).

Each epoch appends one JSON object to ``<out>/<rule>/metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backend import get_backend, set_backend, to_numpy
from .data import Dataset, load_dataset
from .layers.residual import BN_PLACEMENTS
from .losses import get_loss
from .metrics import accuracy, delta_angles, matrix_angles
from .models import CONV_MODELS, MODELS, mlp
from .network import Network
from .optim import SGD, get_schedule
from .rules import RULES, Rule, WeightMirror, get_rule

Record = dict[str, Any]


class TrainingDiverged(RuntimeError):
    """The loss became NaN, infinite, or ``diverge_factor`` times the untrained network's.

    ``history`` holds the records of the epochs finished before it happened.
    """

    def __init__(self, message: str, history: list[Record]) -> None:
        super().__init__(message)
        self.history = history


@dataclass
class TrainConfig:
    """Everything that defines a run. The defaults are the digits job of ``minibp compare``."""

    rule: str = "bp"
    dataset: str = "digits"
    model: str = "mlp"
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"
    # convolutional models: base width (0: the model's own default) and batch-norm placement
    width: int = 0
    bn: str = "after"
    loss: str = "cross_entropy"
    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-3
    schedule: str = "cosine"
    milestones: Sequence[float] = ()
    gamma: float = 0.1
    seed: int = 0
    dtype: str = "float32"
    backend: str = "numpy"
    # weight mirror (rule "wm") settings, eqs (6)-(7), (11)-(12)
    wm_sigma: float = 1.0
    wm_lr: float = 0.008
    wm_decay: float = 0.008
    wm_batch_size: int = 128
    wm_batches: int = 1
    wm_every: int = 4
    wm_bias_blocking: bool = True
    # how many training examples the delta angle (Fig 4b) is measured on
    probe_size: int = 512
    # stop when a batch loss exceeds this multiple of the untrained network's loss (or is NaN/inf)
    diverge_factor: float = 1e3

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown learning rule {self.rule!r}: choose one of {', '.join(RULES)}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.bn not in BN_PLACEMENTS:
            raise ValueError(f"bn must be 'after' (the paper's: BatchNorm after ReLU) or 'before', got {self.bn!r}")
        if int(self.width) < 0:
            raise ValueError(f"width must be >= 0 (0 picks the model's default), got {self.width}")
        for name in ("epochs", "batch_size", "probe_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        self.hidden = tuple(int(h) for h in self.hidden)
        self.milestones = tuple(float(m) for m in self.milestones)
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden layer sizes must be positive, got {self.hidden}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"], d["milestones"] = list(self.hidden), list(self.milestones)
        return d

    def make_rule(self) -> Rule:
        if self.rule != "wm":
            return get_rule(self.rule)
        return WeightMirror(
            sigma=self.wm_sigma,
            lr_b=self.wm_lr,
            decay=self.wm_decay,
            mirror_batch_size=self.wm_batch_size,
            mirror_batches=self.wm_batches,
            mirror_every=self.wm_every,
            bias_blocking=self.wm_bias_blocking,
            seed=self.seed,
        )


def build_model(config: TrainConfig, data: Dataset) -> Network:
    """The network ``config.model`` for ``data``'s input and class count, weights from ``config.seed``."""
    if config.model == "mlp":
        sizes = [data.n_features, *config.hidden, data.n_classes]
        return mlp(sizes, config.activation, seed=config.seed, dtype=config.dtype)
    if data.image_shape is None:
        raise ValueError(f"model {config.model!r} needs images, but {data.name} has flat samples: use --model mlp")
    kwargs: dict[str, Any] = {"seed": config.seed, "dtype": config.dtype}
    if config.width:
        kwargs["width"] = config.width
    if config.model != "cnn":
        kwargs["bn"] = config.bn
    return CONV_MODELS[config.model](data.image_shape, data.n_classes, **kwargs)


def _batches(x: Any, y: Any, size: int) -> Any:
    for i in range(0, x.shape[0], size):
        yield x[i : i + size], y[i : i + size]


def evaluate(net: Network, loss_fn: Any, x: Any, y: Any, batch_size: int = 1000) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` on ``(x, y)``, without touching training state."""
    total_loss, correct = 0.0, 0.0
    for xb, yb in _batches(x, y, batch_size):
        out = net.forward(xb, train=False)
        loss, _ = loss_fn(out, yb)
        total_loss += float(loss) * xb.shape[0]
        correct += accuracy(out, yb) * xb.shape[0]
    return total_loss / x.shape[0], correct / x.shape[0]


class _JsonLines:
    """Appends one JSON object per line and flushes, so a killed run keeps every finished epoch."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def write(self, record: Record) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: to a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def train(
    config: TrainConfig,
    *,
    data: Dataset | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    callback: Callable[[Record], None] | None = None,
) -> tuple[Network, list[Record]]:
    """Train one network under ``config.rule``; returns the network and one record per epoch.

    Records (and ``<out>/<rule>/metrics.jsonl`` when ``out`` is given) hold
    ``epoch, lr, train_loss, train_accuracy, test_loss, test_accuracy,
    matrix_angle`` (one per weight layer, input to output), ``delta_angle`` (one per
    hidden weight layer) and ``seconds`` (wall time of the epoch). Epoch 0 is the
    untrained network, so curves start where training starts.
    """
    set_backend(config.backend)
    xp = get_backend()
    data = data if data is not None else load_dataset(config.dataset)
    net = build_model(config, data)
    rule = config.make_rule()
    net.init_feedback(rule, np.random.default_rng([config.seed, 1]))
    opt = SGD(
        config.lr,
        config.momentum,
        config.weight_decay,
        get_schedule(config.schedule, epochs=config.epochs, milestones=config.milestones, gamma=config.gamma),
    )
    loss_fn = get_loss(config.loss)
    order_rng = np.random.default_rng([config.seed, 2])

    sample = (-1,) if config.model == "mlp" else data.image_shape  # MLPs see flat vectors, CNNs images
    x_train = xp.asarray(data.x_train.reshape(len(data.x_train), *sample), dtype=config.dtype)
    y_train = xp.asarray(data.y_train)
    x_test = xp.asarray(data.x_test.reshape(len(data.x_test), *sample), dtype=config.dtype)
    y_test = xp.asarray(data.y_test)
    probe = slice(0, min(config.probe_size, x_train.shape[0]))

    run_dir = Path(out) / config.rule if out is not None else None
    if run_dir is not None:
        write_json(run_dir / "config.json", config.to_dict())
    log = _JsonLines(run_dir / "metrics.jsonl" if run_dir is not None else None)

    def record(epoch: int, train_loss: float, train_acc: float, seconds: float) -> Record:
        test_loss, test_acc = evaluate(net, loss_fn, x_test, y_test)
        rec = {
            "epoch": epoch,
            "lr": opt.lr,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "matrix_angle": matrix_angles(net, rule),
            "delta_angle": delta_angles(net, rule, x_train[probe], y_train[probe], loss_fn),
            "seconds": seconds,
        }
        log.write(rec)
        if callback is not None:
            callback(rec)
        return rec

    n = x_train.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    history = [record(0, *evaluate(net, loss_fn, x_train, y_train), 0.0)]
    limit = config.diverge_factor * max(history[0]["train_loss"], 1e-12)
    bar = _progress(config.epochs, f"{config.rule}", progress)
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        perm = xp.asarray(order_rng.permutation(n))
        loss_sum, correct = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.float64)
        for step in range(steps_per_epoch):
            opt.set_epoch(epoch - 1 + step / steps_per_epoch)
            idx = perm[step * config.batch_size : (step + 1) * config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            out = net.forward(xb)  # eq (1)
            loss, dout = loss_fn(out, yb)
            value = float(loss)
            if not value <= limit:  # also true for NaN
                raise TrainingDiverged(
                    f"the loss became {value:.4g} at epoch {epoch}, step {step + 1} of {steps_per_epoch} "
                    f"(rule {config.rule}, lr {opt.lr:g}; "
                    f"the untrained network's loss was {history[0]['train_loss']:.4g}): "
                    "lower the learning rate (--lr)"
                    + (", or mirror more often (--wm-lr/--wm-decay, --wm-batch-size)" if config.rule == "wm" else ""),
                    history,
                )
            net.backward(dout, rule)  # eqs (2)-(4), (17)
            opt.step(net.param_layers)  # eqs (16)-(17)
            rule.after_step(net)  # eqs (6)-(7) for the weight mirror
            loss_sum += loss * xb.shape[0]
            correct += (out.argmax(axis=1) == yb).sum()
        rec = record(epoch, float(to_numpy(loss_sum)) / n, float(to_numpy(correct)) / n, time.perf_counter() - t0)
        history.append(rec)
        bar.set_postfix(loss=f"{rec['train_loss']:.3f}", test_acc=f"{rec['test_accuracy']:.3f}")
        bar.update(1)
    bar.close()
    return net, history


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, leave=True)


@dataclass
class Comparison:
    """The result of :func:`compare`: one history per rule."""

    config: TrainConfig
    histories: dict[str, list[Record]] = field(default_factory=dict)

    def summary(self) -> dict[str, Record]:
        return {rule: hist[-1] for rule, hist in self.histories.items()}

    def table(self) -> str:
        head = f"{'rule':<5} {'test acc':>8} {'train loss':>10} {'time s':>7}  matrix angle ° (in→out)   delta angle °"
        lines = [head, "-" * len(head)]
        for rule, hist in self.histories.items():
            last = hist[-1]
            if "diverged" in last:
                lines.append(f"{rule:<5} diverged after epoch {last['epoch']}: {last['diverged']}")
                continue
            secs = sum(r["seconds"] for r in hist)
            ma = " ".join(f"{a:5.1f}" for a in last["matrix_angle"])
            da = " ".join(f"{a:5.1f}" for a in last["delta_angle"])
            lines.append(
                f"{rule:<5} {last['test_accuracy']:8.4f} {last['train_loss']:10.4f} {secs:7.2f}  {ma:<24}  {da}"
            )
        return "\n".join(lines)


def compare(
    config: TrainConfig,
    rules: Sequence[str] = tuple(RULES),
    *,
    data: Dataset | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    plot: bool = True,
) -> Comparison:
    """Train every rule in ``rules`` from the same seed: the same initial ``W``, the same
    initial random ``B`` (FA, WM, KP) and the same order of examples.

    With ``out``: each run's ``<out>/<rule>/metrics.jsonl``, ``<out>/summary.json``
    (rule → last epoch's record) and ``<out>/compare.png`` (Figs 3–4 style). A rule whose
    loss diverges keeps the epochs it finished; its last record gets a ``diverged`` message
    and the comparison goes on with the other rules.
    """
    data = data if data is not None else load_dataset(config.dataset)
    result = Comparison(config)
    for rule in rules:
        cfg = dataclasses.replace(config, rule=rule)
        try:
            _, result.histories[rule] = train(cfg, data=data, out=out, progress=progress)
        except TrainingDiverged as err:  # a result, not a crash: record it and go on with the next rule
            last = dict(err.history[-1], diverged=str(err))
            result.histories[rule] = [*err.history[:-1], last]
    if out is not None:
        write_json(Path(out) / "summary.json", result.summary())
        if plot:
            from .plots import plot_comparison  # noqa: PLC0415 (matplotlib only when plotting)

            plot_comparison(result.histories, Path(out) / "compare.png", title=f"{config.dataset}, {config.model}")
    return result

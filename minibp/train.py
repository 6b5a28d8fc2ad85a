"""Training: one network under one rule (:func:`train`), or all five from the same start (:func:`compare`).

A training step is the paper's engaged mode followed, for the weight mirror, by
its mirror mode (Fig 1):

1. forward path, eq (1);
2. loss and output error ``δ_L``;
3. feedback path, eqs (2)/(3), with forward gradients, eq (4), and KP's ``B`` gradient, eq (17);
4. optimizer step, eqs (16)–(17) (with momentum, minibp's addition, unless it is 0);
5. ``rule.after_step``: mirror mode for WM, eqs (6)–(7).

Each epoch appends one JSON object to ``<out>/<rule>/metrics.jsonl`` and rewrites
``<out>/<rule>/checkpoint.npz`` (:mod:`minibp.checkpoint`), so an interrupted run resumes.

The loss stays on the device during training: the host reads it once every
``log_every`` steps (to check for divergence and move the progress bar) and at the end
of each epoch (for the record), never inside a step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backend import get_backend, set_backend, to_numpy
from .checkpoint import load_checkpoint, read_meta, save_checkpoint
from .data import BatchSource, load_dataset
from .layers.residual import BN_PLACEMENTS
from .losses import get_loss
from .metrics import delta_angles, matrix_angles
from .models import CONV_MODELS, MODELS, mlp
from .network import Network
from .optim import SGD, get_schedule
from .rules import RULES, Rule, WeightMirror, get_rule

Record = dict[str, Any]


class TrainingStopped(RuntimeError):
    """Base of the two ways a run ends early. ``history`` holds the records of the finished epochs."""

    def __init__(self, message: str, history: list[Record]) -> None:
        super().__init__(message)
        self.history = history


class TrainingDiverged(TrainingStopped):
    """The loss became NaN, infinite, or ``diverge_factor`` times the untrained network's.

    The run's last checkpoint (written before the bad step) stays as it was.
    """


class TrainingInterrupted(TrainingStopped):
    """Ctrl-C (SIGINT) or SIGTERM stopped the run after a checkpoint of the current step was saved."""


#: settings that may differ when a run is resumed: they change where and how fast it runs,
#: never its numbers
RUNTIME_SETTINGS = ("backend", "data_dir", "workers", "log_every", "checkpoint_every")


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
    # where dataset files are looked for ("": $MINIBP_DATA, else ~/.cache/minibp)
    data_dir: str = ""
    # ImageNet folder loader: image side and decoding processes (-1: the loader's default)
    image_size: int = 224
    workers: int = -1
    # weight mirror (rule "wm") settings, eqs (6)-(7), (11)-(12)
    wm_sigma: float = 1.0
    wm_lr: float = 0.008
    wm_decay: float = 0.008
    wm_batch_size: int = 128
    wm_batches: int = 1
    wm_every: int = 4
    wm_bias_blocking: bool = True
    wm_normalize: bool = False
    # how many training examples the delta angle (Fig 4b, d, f) is measured on
    probe_size: int = 512
    # stop when a batch loss exceeds this multiple of the untrained network's loss (or is NaN/inf)
    diverge_factor: float = 1e3
    # steps between reads of the loss on the host (divergence check, progress bar)
    log_every: int = 50
    # steps between checkpoints inside an epoch (0: only at the end of each epoch)
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        self._check_types()
        if self.rule not in RULES:
            raise ValueError(f"unknown learning rule {self.rule!r}: choose one of {', '.join(RULES)}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.bn not in BN_PLACEMENTS:
            raise ValueError(f"bn must be 'after' (the paper's: BatchNorm after ReLU) or 'before', got {self.bn!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.width < 0:
            raise ValueError(f"width must be >= 0 (0 picks the model's default), got {self.width}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0: at epoch ends only), got {self.checkpoint_every}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        for name in ("epochs", "batch_size", "probe_size", "log_every", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden layer sizes must be positive, got {self.hidden}")
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"gamma, the step schedule's factor, must be a finite number > 0, got {self.gamma}")
        if not (self.diverge_factor > 1):  # also refuses NaN
            raise ValueError(
                f"diverge_factor must be > 1 (a multiple of the untrained loss), got {self.diverge_factor}"
            )
        if not all(math.isfinite(m) and m >= 0 for m in self.milestones):
            raise ValueError(f"milestones must be epochs >= 0, got {list(self.milestones)}")
        self.wm_rule()  # the weight mirror's settings are checked here, before any rule trains

    def check_new_run(self) -> None:
        """Checks for a run about to start, not for one saved before they existed (it may resume)."""
        late = [m for m in self.milestones if m >= self.epochs]
        if self.schedule == "step" and late:
            raise ValueError(
                f"milestone(s) {late} fall at or after the last epoch ({self.epochs}), so the rate would never drop "
                "there: with a shorter --epochs, give --milestones too"
            )

    def _check_types(self) -> None:
        """Every setting has its default's type (a config file can hold anything): integers, numbers,
        booleans, text, lists of integers (``hidden``) or numbers (``milestones``)."""

        def number(x: Any) -> bool:
            return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))

        def integral(x: Any) -> bool:
            return number(x) and float(x).is_integer()

        for f in dataclasses.fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool):
                ok, want = isinstance(value, (bool, np.bool_)), "true or false"
            elif isinstance(default, int):
                ok, want = integral(value), "an integer"
            elif isinstance(default, float):
                ok, want = number(value), "a number"
            elif isinstance(default, str):
                ok, want = isinstance(value, str), "text"
            else:  # hidden, milestones
                item = integral if f.name == "hidden" else number
                ok = isinstance(value, (list, tuple)) and all(item(v) for v in value)
                want = "a list of " + ("integers" if f.name == "hidden" else "numbers")
            if not ok:
                raise ValueError(f"setting {f.name!r} must be {want}, got {value!r} ({type(value).__name__})")
            if isinstance(default, bool):
                setattr(self, f.name, bool(value))
            elif isinstance(default, (int, float)):
                setattr(self, f.name, type(default)(value))
            elif isinstance(default, tuple):
                setattr(self, f.name, tuple((int if f.name == "hidden" else float)(v) for v in value))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"], d["milestones"] = list(self.hidden), list(self.milestones)
        return d

    def make_rule(self) -> Rule:
        return self.wm_rule() if self.rule == "wm" else get_rule(self.rule)

    def wm_rule(self) -> WeightMirror:
        """The weight mirror with this config's ``wm_*`` settings (whatever ``rule`` is)."""
        return WeightMirror(
            sigma=self.wm_sigma,
            lr_b=self.wm_lr,
            decay=self.wm_decay,
            mirror_batch_size=self.wm_batch_size,
            mirror_batches=self.wm_batches,
            mirror_every=self.wm_every,
            bias_blocking=self.wm_bias_blocking,
            normalize=self.wm_normalize,
            seed=self.seed,
        )


def load_data(config: TrainConfig) -> BatchSource:
    """The dataset ``config.dataset``, its files looked for in ``config.data_dir``."""
    if config.data_dir and Path(config.data_dir).expanduser().is_file():
        raise NotADirectoryError(
            f"--data-dir {config.data_dir} is a file: give the folder that holds the dataset files"
        )
    kwargs: dict[str, Any] = {"data_dir": config.data_dir or None, "flatten": False}
    if config.dataset == "imagenet":
        kwargs.update(image_size=config.image_size, workers=None if config.workers < 0 else config.workers)
    return load_dataset(config.dataset, **kwargs)


@contextmanager
def _data_for(config: TrainConfig, data: BatchSource | None) -> Iterator[BatchSource]:
    """``data`` as given, or ``config``'s dataset loaded here and closed afterwards (ImageNet's workers)."""
    if data is not None:
        yield data
        return
    loaded = load_data(config)
    try:
        yield loaded
    finally:
        if hasattr(loaded, "close"):
            loaded.close()


def build_model(config: TrainConfig, data: BatchSource) -> Network:
    """The network ``config.model`` for ``data``'s input and class count, weights from ``config.seed``."""
    if config.model == "mlp":
        n_features = int(np.prod(data.probe(1)[0].shape[1:]))
        sizes = [n_features, *config.hidden, data.n_classes]
        return mlp(sizes, config.activation, seed=config.seed, dtype=config.dtype)
    if data.image_shape is None:
        raise ValueError(f"model {config.model!r} needs images, but {data.name} has flat samples: use --model mlp")
    kwargs: dict[str, Any] = {"seed": config.seed, "dtype": config.dtype}
    if config.width:
        kwargs["width"] = config.width
    if config.model != "cnn":
        kwargs["bn"] = config.bn
    return CONV_MODELS[config.model](data.image_shape, data.n_classes, **kwargs)


def evaluate(net: Network, loss_fn: Any, batches: Iterable[tuple[Any, Any]]) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` over ``batches`` (device arrays), without touching training state.

    Sums stay on the device; one explicit transfer at the end.
    """
    xp = get_backend()
    total_loss, correct, n = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.float64), 0
    for xb, yb in batches:
        out = net.forward(xb, train=False)
        loss, _ = loss_fn(out, yb)
        total_loss += loss * xb.shape[0]
        correct += (out.argmax(axis=1) == yb).sum()
        n += xb.shape[0]
    return float(to_numpy(total_loss)) / n, float(to_numpy(correct)) / n


class _JsonLines:
    """Appends one JSON object per line and flushes, so a killed run keeps every finished epoch."""

    def __init__(self, path: Path | None, records: Sequence[Record] = ()) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
            os.replace(tmp, path)

    def write(self, record: Record) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: to a temporary file in the same folder, then rename. The temporary
    file is this process's and thread's own, so writers that share a folder never meet in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def settings_diff(saved: Mapping[str, Any], config: TrainConfig) -> str:
    """The settings in which ``config`` differs from a saved run's ``saved`` ones, as text ("" if none);
    :data:`RUNTIME_SETTINGS` don't count."""
    now = config.to_dict()
    # a setting added to minibp after the run was saved counts as its default
    saved = {**TrainConfig().to_dict(), **saved}
    diff = sorted(k for k in set(saved) | set(now) if k not in RUNTIME_SETTINGS and saved.get(k) != now.get(k))
    return ", ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in diff)


def check_resumable(saved: dict[str, Any], config: TrainConfig, where: Path) -> None:
    """Raise if ``config`` would not continue the run saved with ``saved`` (its config.json)."""
    shown = settings_diff(saved, config)
    if shown:
        raise ValueError(
            f"cannot resume {where}: its settings differ ({shown}); resume with the saved config "
            f"(only {', '.join(RUNTIME_SETTINGS)} may change) or start a new run in another --out"
        )


def check_run_folder(run_dir: Path, config: TrainConfig) -> None:
    """Raise if starting ``config`` afresh in ``run_dir`` would lose a run there: an unfinished
    one (it should be resumed), or a finished one with other settings. A finished run with the
    same settings may be overwritten: training again gives the same numbers (on NumPy exactly)."""
    ckpt_path = run_dir / "checkpoint.npz"
    if not ckpt_path.exists():
        return
    at = read_meta(ckpt_path)
    if not at.get("finished"):
        raise FileExistsError(
            f"{run_dir} holds an unfinished run (stopped at epoch {at['epoch']}, step {at['step']}): continue "
            "it with --resume, or start afresh in another --out (or delete that folder)"
        )
    saved = at.get("config")
    if saved is None and (run_dir / "config.json").is_file():  # a checkpoint that does not carry its config
        saved = json.loads((run_dir / "config.json").read_text())
    shown = settings_diff(saved or {}, config)
    if shown:
        raise FileExistsError(
            f"{run_dir} holds a finished run with other settings ({shown}): start this one in another --out "
            "(or delete that folder); --resume with that --out prints the finished run's result"
        )


class _StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM (a cluster's pre-emption, ``kill``) asks the run to stop after the
    current step, with a checkpoint; a second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nminibp: stopping after this step to save a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def train(
    config: TrainConfig,
    *,
    data: BatchSource | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    callback: Callable[[Record], None] | None = None,
    resume: bool = False,
) -> tuple[Network, list[Record]]:
    """Train one network under ``config.rule``; returns the network and one record per epoch.

    Records (and ``<out>/<rule>/metrics.jsonl`` when ``out`` is given) hold
    ``epoch, lr, train_loss, train_accuracy, test_loss, test_accuracy,
    matrix_angle`` (one per weight layer, input to output), ``delta_angle`` (one per
    hidden weight layer) and ``seconds`` (wall time of the epoch). Epoch 0 is the
    untrained network, so curves start where training starts.

    With ``out``, ``<out>/<rule>/checkpoint.npz`` is rewritten atomically after every
    epoch (and every ``checkpoint_every`` steps), and Ctrl-C saves one after the current
    step and raises :class:`TrainingInterrupted`. ``resume=True`` continues from that
    checkpoint; on NumPy the numbers equal an uninterrupted run's exactly.
    """
    set_backend(config.backend)
    xp = get_backend()
    run_dir = Path(out) / config.rule if out is not None else None
    ckpt_path = run_dir / "checkpoint.npz" if run_dir is not None else None
    if resume:
        if ckpt_path is None:
            raise ValueError("resume needs the run's output folder (--out)")
        if not ckpt_path.exists():
            raise FileNotFoundError(
                f"nothing to resume in {run_dir}: it has no checkpoint.npz; start the run without --resume"
            )
        saved = json.loads((run_dir / "config.json").read_text())
        check_resumable(saved, config, run_dir)
    else:
        config.check_new_run()
        if run_dir is not None:
            check_run_folder(run_dir, config)
    with _data_for(config, data) as source:
        return _train(config, source, xp, run_dir, ckpt_path, progress, callback, resume)


def _train(
    config: TrainConfig,
    data: BatchSource,
    xp: Any,
    run_dir: Path | None,
    ckpt_path: Path | None,
    progress: bool,
    callback: Callable[[Record], None] | None,
    resume: bool,
) -> tuple[Network, list[Record]]:
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
    sample = (-1,) if config.model == "mlp" else data.image_shape  # MLPs see flat vectors, CNNs images

    def to_device(x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:  # the one host→device copy of a batch
        return xp.asarray(x.reshape(len(x), *sample), dtype=config.dtype), xp.asarray(y)

    x_probe, y_probe = to_device(*data.probe(min(config.probe_size, data.n_train)))
    steps_per_epoch = math.ceil(data.n_train / config.batch_size)

    def record(epoch: int, train_loss: float, train_acc: float, seconds: float) -> Record:
        test = (to_device(x, y) for x, y in data.test_batches(1000))
        test_loss, test_acc = evaluate(net, loss_fn, test)
        return {
            "epoch": epoch,
            "lr": opt.lr,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "matrix_angle": matrix_angles(net, rule),
            "delta_angle": delta_angles(net, rule, x_probe, y_probe, loss_fn),
            "seconds": seconds,
        }

    # where the run stands: the next (epoch, step) to do and the sums of that epoch so far
    if resume:
        assert ckpt_path is not None
        meta = load_checkpoint(ckpt_path, net, opt, rule)
        history: list[Record] = meta["history"]
        epoch, first_step, sums = meta["epoch"], meta["step"], meta["sums"]
    else:
        # epoch 0 is the untrained network; its training loss is measured on the probe examples
        history = [record(0, *evaluate(net, loss_fn, [(x_probe, y_probe)]), 0.0)]
        epoch, first_step, sums = 1, 0, [0.0, 0.0, 0.0]
    if run_dir is not None:
        write_json(run_dir / "config.json", config.to_dict())
    log = _JsonLines(run_dir / "metrics.jsonl" if run_dir is not None else None, history)
    if not resume and callback is not None:
        callback(history[0])
    limit = config.diverge_factor * max(history[0]["train_loss"], 1e-12)

    def checkpoint(at_epoch: int, at_step: int, epoch_sums: list[float], finished: bool = False) -> None:
        if ckpt_path is not None:
            meta = {"epoch": at_epoch, "step": at_step, "sums": epoch_sums, "history": history, "finished": finished}
            save_checkpoint(ckpt_path, net, opt, rule, {**meta, "config": config.to_dict()})

    if not resume:
        checkpoint(1, 0, sums)
    bar = _progress(config.epochs * steps_per_epoch, config.rule, progress)
    bar.update((epoch - 1) * steps_per_epoch + first_step)
    with _StopFlag() as stop:
        while epoch <= config.epochs:
            t0 = time.perf_counter()
            loss_sum = xp.asarray(sums[0], dtype=xp.float64)
            correct = xp.asarray(sums[1], dtype=xp.float64)
            window = xp.zeros(config.log_every, dtype=xp.float64)  # batch losses not yet read on the host
            pending, step = 0, first_step
            batches = data.train_batches(config.batch_size, epoch=epoch, seed=config.seed, start=first_step)
            try:
                for xb_host, yb_host in batches:
                    opt.set_epoch(epoch - 1 + step / steps_per_epoch)
                    xb, yb = to_device(xb_host, yb_host)
                    out = net.forward(xb)  # eq (1)
                    loss, dout = loss_fn(out, yb)
                    net.backward(dout, rule)  # eqs (2)-(4), (17)
                    opt.step(net.param_layers)  # eqs (16)-(17)
                    rule.after_step(net)  # eqs (6)-(7) for the weight mirror
                    window[pending] = loss
                    loss_sum += loss * xb.shape[0]
                    correct += (out.argmax(axis=1) == yb).sum()
                    pending, step = pending + 1, step + 1
                    due = step % config.checkpoint_every == 0 if config.checkpoint_every else False
                    if pending == config.log_every or step == steps_per_epoch or due or stop.requested:
                        losses = to_numpy(window[:pending])  # the one device→host read of the window
                        _check_losses(losses, step - pending, limit, epoch, steps_per_epoch, config, opt.lr, history)
                        bar.update(pending)
                        pending = 0
                        if (due or stop.requested) and step < steps_per_epoch:
                            elapsed = sums[2] + time.perf_counter() - t0
                            checkpoint(epoch, step, [float(to_numpy(loss_sum)), float(to_numpy(correct)), elapsed])
                        if stop.requested and step < steps_per_epoch:  # at the epoch's end: save it first
                            raise TrainingInterrupted(
                                f"interrupted at epoch {epoch}, step {step} of {steps_per_epoch}; "
                                + (f"checkpoint saved in {ckpt_path}" if ckpt_path else "nothing saved (no --out)"),
                                history,
                            )
            finally:
                if hasattr(batches, "close"):
                    batches.close()
            seconds = sums[2] + time.perf_counter() - t0
            n = data.n_train
            rec = record(epoch, float(to_numpy(loss_sum)) / n, float(to_numpy(correct)) / n, seconds)
            history.append(rec)
            log.write(rec)
            epoch, first_step, sums = epoch + 1, 0, [0.0, 0.0, 0.0]
            checkpoint(epoch, 0, sums, finished=epoch > config.epochs)
            if callback is not None:
                callback(rec)
            bar.set_postfix(epoch=rec["epoch"], loss=f"{rec['train_loss']:.3f}", test_acc=f"{rec['test_accuracy']:.3f}")
            if stop.requested:
                raise TrainingInterrupted(
                    f"interrupted after epoch {rec['epoch']}; checkpoint saved in {ckpt_path}", history
                )
    bar.close()
    return net, history


def _check_losses(
    losses: np.ndarray,
    first: int,
    limit: float,
    epoch: int,
    steps_per_epoch: int,
    config: TrainConfig,
    lr: float,
    history: list[Record],
) -> None:
    """Raise :class:`TrainingDiverged` naming the first of ``losses`` (steps ``first + 1, …``)
    that is NaN, infinite or above ``limit``."""
    bad = np.flatnonzero(~(losses <= limit))  # also catches NaN
    if bad.size:
        i = int(bad[0])
        raise TrainingDiverged(
            f"the loss became {losses[i]:.4g} at epoch {epoch}, step {first + i + 1} of {steps_per_epoch} "
            f"(rule {config.rule}, lr {lr:g}; the untrained network's loss was {history[0]['train_loss']:.4g}): "
            "lower the learning rate (--lr)"
            + (", or mirror more often (--wm-lr/--wm-decay, --wm-batch-size)" if config.rule == "wm" else "")
            + ", in a new run (another --out, or delete this run's folder); "
            "the last checkpoint, from before this step, is kept",
            history,
        )


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, leave=True)


@dataclass
class Comparison:
    """The result of :func:`compare`: one history per rule."""

    config: TrainConfig
    histories: dict[str, list[Record]] = field(default_factory=dict)

    def summary(self) -> dict[str, Record]:
        return {rule: hist[-1] for rule, hist in self.histories.items()}

    def save(self, out: str | Path, *, plot: bool = True) -> None:
        """``<out>/summary.json`` (rule → last record) and, with ``plot``, ``<out>/compare.png``."""
        write_json(Path(out) / "summary.json", self.summary())
        if plot:
            from .plots import plot_comparison  # noqa: PLC0415 (matplotlib only when plotting)

            title = f"{self.config.dataset}, {self.config.model}"
            plot_comparison(self.histories, Path(out) / "compare.png", title=title)

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


#: the file in a ``compare``'s ``--out`` that records its rules and each rule's settings
PLAN_FILE = "compare.json"


def read_plan(out: str | Path) -> dict[str, Any] | None:
    """``<out>/compare.json``: ``{"rules": [...], "configs": {rule: settings}}``, or None if there is none."""
    path = Path(out) / PLAN_FILE
    if not path.is_file():
        return None
    try:
        plan = json.loads(path.read_text())
        return {"rules": list(plan["rules"]), "configs": dict(plan["configs"])}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is damaged ({err}): delete it, and resume each rule with --rule") from None


def write_plan(out: str | Path, configs: Mapping[str, TrainConfig], keep: Mapping[str, Any] | None = None) -> None:
    """Write ``<out>/compare.json``: the rules of ``configs`` and each one's settings, after those of
    the plan ``keep`` (a :func:`read_plan`), whose other rules stay listed."""
    kept = keep or {"rules": [], "configs": {}}
    order = list(kept["rules"]) + [r for r in configs if r not in kept["rules"]]
    settings = {**kept["configs"], **{r: cfg.to_dict() for r, cfg in configs.items()}}
    write_json(Path(out) / PLAN_FILE, {"rules": order, "configs": {r: settings[r] for r in order}})


def compare(
    config: TrainConfig,
    rules: Sequence[str] = tuple(RULES),
    *,
    data: BatchSource | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    plot: bool = True,
    resume: bool = False,
    per_rule: Mapping[str, Mapping[str, Any]] | None = None,
    plan: bool = True,
) -> Comparison:
    """Train every rule in ``rules`` from the same seed: the same initial ``W``, the same
    initial random ``B`` (FA, WM, KP) and the same order of examples.

    With ``out``: each run's ``<out>/<rule>/metrics.jsonl``, ``<out>/summary.json``
    (rule → last epoch's record), ``<out>/compare.png`` (Figs 3–4 style) and
    ``<out>/compare.json`` (the rules and each one's settings, written before any trains). A
    rule whose loss diverges keeps the epochs it finished; its last record gets a ``diverged``
    message and the comparison goes on with the other rules. ``per_rule`` adds settings for
    single rules (a preset's per-rule learning rates). Every rule's folder is checked before
    any rule trains: an unfinished run there, or a finished one with other settings, stops the
    comparison before it starts (see :func:`check_run_folder`).

    Ctrl-C stops the whole comparison (after saving the current rule's checkpoint). With
    ``resume=True`` every rule continues with the settings ``compare.json`` saved for it
    (``config`` may change only :data:`RUNTIME_SETTINGS`): rules with a checkpoint from it,
    finished rules are read back, and the rest start.

    ``plan=False`` leaves ``compare.json`` to the caller (:func:`write_plan`): for processes that
    share ``out``, each training some of the rules.
    """
    per_rule = per_rule or {}
    plans = {rule: dataclasses.replace(config, rule=rule, **per_rule.get(rule, {})) for rule in rules}
    saved_plan = read_plan(out) if resume and out is not None else None
    runtime = {k: getattr(config, k) for k in RUNTIME_SETTINGS}  # what a resumed rule may take from config
    if saved_plan is not None:
        for rule in rules:
            if rule in saved_plan["configs"]:
                plans[rule] = TrainConfig(**{**saved_plan["configs"][rule], **runtime})
    resumed: dict[str, bool] = {}
    for rule in rules:  # look at every folder before any rule trains
        ckpt = Path(out) / rule / "checkpoint.npz" if out is not None else None
        resumed[rule] = resume and ckpt is not None and ckpt.exists()
        if resumed[rule] and saved_plan is None:  # a folder from before compare.json: its own config.json
            saved = json.loads((ckpt.parent / "config.json").read_text())
            plans[rule] = TrainConfig(**{**saved, **runtime})
        elif not resumed[rule]:
            plans[rule].check_new_run()
            if out is not None:
                check_run_folder(Path(out) / rule, plans[rule])
    if out is not None and plan:
        write_plan(out, plans, keep=saved_plan)  # resuming some rules keeps the others' entries
    result = Comparison(config)
    with _data_for(config, data) as source:
        for rule in rules:
            cfg = plans[rule]
            if resumed[rule]:
                meta = read_meta(Path(out) / rule / "checkpoint.npz")  # type: ignore[arg-type]
                if meta.get("finished"):
                    result.histories[rule] = meta["history"]
                    continue
            try:
                _, result.histories[rule] = train(cfg, data=source, out=out, progress=progress, resume=resumed[rule])
            except TrainingDiverged as err:  # a result, not a crash: record it and go on with the next rule
                last = dict(err.history[-1], diverged=str(err))
                result.histories[rule] = [*err.history[:-1], last]
    if out is not None:
        result.save(out, plot=plot)
    return result

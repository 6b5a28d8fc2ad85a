"""Training one network under one rule: :func:`train`, the loop over epochs around :func:`~minibp.step.train_step`.

Each epoch appends one JSON object to ``<out>/<rule>/metrics.jsonl`` and rewrites
``<out>/<rule>/checkpoint.npz`` (:mod:`minibp.runs`, :mod:`minibp.checkpoint`), so an
interrupted run resumes. The loss stays on the device during training: the host reads it
once every ``log_every`` steps (to check for divergence and move the progress bar) and at
the end of each epoch (for the record), never inside a step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .backend import get_backend, set_backend, to_numpy
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import BatchSource, Dataset, load_dataset
from .data.augment import CropFlip
from .layers.norm import BatchNorm
from .losses import get_loss
from .metrics import delta_angles, matrix_angles
from .models import CONV_MODELS, conv_model_kwargs, mlp
from .network import Network
from .optim import SGD, get_schedule
from .parallel import Group, weight_checksums, world
from .rules import RULES, Rule
from .runs import JsonLines, Record, StopFlag, check_resumable, check_run_folder, write_json
from .step import Step, train_step
from .threads import blas_threads_for


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


def load_data(config: TrainConfig, ranks_here: int = 1) -> BatchSource:
    """The dataset ``config.dataset``, its files looked for in ``config.data_dir``. ImageNet's default
    decoding processes (``workers`` -1) share the machine's cores with ``ranks_here - 1`` other ranks."""
    if config.data_dir and Path(config.data_dir).expanduser().is_file():
        raise NotADirectoryError(
            f"--data-dir {config.data_dir} is a file: give the folder that holds the dataset files"
        )
    kwargs: dict[str, Any] = {"data_dir": config.data_dir or None, "flatten": False}
    if config.dataset == "imagenet":
        workers = None if config.workers < 0 else config.workers
        if workers is None and ranks_here > 1:  # each rank decodes its own share, on its share of the cores
            workers = max(1, ((os.cpu_count() or 2) - ranks_here) // ranks_here)
        kwargs.update(image_size=config.image_size, workers=workers)
    return load_dataset(config.dataset, **kwargs)


@contextmanager
def data_for(config: TrainConfig, data: BatchSource | None, ranks_here: int = 1) -> Iterator[BatchSource]:
    """``data`` as given, or ``config``'s dataset loaded here and closed afterwards (ImageNet's workers);
    with ``config.augment``, its training batches cropped and flipped (:class:`~minibp.data.augment.CropFlip`)."""
    if data is not None:
        yield _augmented(config, data)
        return
    loaded = load_data(config, ranks_here)
    try:
        yield _augmented(config, loaded)
    finally:
        if hasattr(loaded, "close"):
            loaded.close()


def _augmented(config: TrainConfig, data: BatchSource) -> BatchSource:
    if not config.augment or getattr(data, "augment", None) is not None:  # compare hands on an augmented set
        return data
    if not isinstance(data, Dataset) or data.image_shape is None:
        raise ValueError(f"--augment crops and flips images held in memory; {data.name} is not such a set")
    return dataclasses.replace(data, augment=CropFlip())


def build_model(config: TrainConfig, data: BatchSource) -> Network:
    """The network ``config.model`` for ``data``'s input and class count, weights from ``config.seed``."""
    if config.model == "mlp":
        n_features = int(np.prod(data.probe(1)[0].shape[1:]))
        sizes = [n_features, *config.hidden, data.n_classes]
        return mlp(sizes, config.activation, seed=config.seed, dtype=config.dtype)
    if data.image_shape is None:
        raise ValueError(f"model {config.model!r} needs images, but {data.name} has flat samples: use --model mlp")
    return CONV_MODELS[config.model](data.image_shape, data.n_classes, **conv_model_kwargs(config))


def initial_network(config: TrainConfig, data: BatchSource, rule: Rule, example: Any = None) -> Network:
    """The network a run of ``config`` starts from: :func:`build_model`'s weights and ``rule``'s
    feedback weights, drawn from the generator ``[config.seed, 1]`` after ``example`` (an input
    batch, shaped as the network takes it) has shown each layer its input's shape. Training passes
    one probe example; only rules that shape ``B`` by a layer's input (DFA) need it.

    Training and every tool that rebuilds a run's start (to measure how far a run moved from it)
    call this, so the two cannot drift apart."""
    net = build_model(config, data)
    net.init_feedback(rule, np.random.default_rng([config.seed, 1]), example=example)
    return net


def evaluate(
    net: Network, loss_fn: Any, batches: Iterable[tuple[Any, Any]], group: Group | None = None
) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` over ``batches`` (device arrays), without touching training state.

    Sums stay on the device; one explicit transfer at the end. With a ``group``, each rank passes
    its own part of the batches and the sums are added over the ranks, so every rank returns the
    same numbers.
    """
    xp = get_backend()
    total_loss, correct, n = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.float64), 0
    for xb, yb in batches:
        out = net.forward(xb, train=False)
        loss, _ = loss_fn(out, yb)
        total_loss += loss * xb.shape[0]
        correct += (out.argmax(axis=1) == yb).sum()
        n += xb.shape[0]
    sums = [float(to_numpy(total_loss)), float(to_numpy(correct)), float(n)]
    if group is not None:
        sums = list(group.sum_host(sums))
    return sums[0] / sums[2], sums[1] / sums[2]


def train(
    config: TrainConfig,
    *,
    data: BatchSource | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    callback: Callable[[Record], None] | None = None,
    resume: bool = False,
    group: Group | None = None,
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

    Started by ``mpiexec -n N`` (or given a ``group`` of ranks), N processes train the run
    together, each on its share of every batch (:mod:`minibp.parallel`); rank 0 alone writes
    ``out`` and shows progress, and every rank returns the same network and records.
    """
    set_backend(config.backend)
    if group is None:
        group = world(config.backend, config.transport, config.collective_timeout)
    run_dir = Path(out) / config.rule if out is not None else None
    if resume:
        if run_dir is None:
            raise ValueError("resume needs the run's output folder (--out)")
        if not (run_dir / "checkpoint.npz").exists():
            raise FileNotFoundError(
                f"nothing to resume in {run_dir}: it has no checkpoint.npz; start the run without --resume"
            )
        saved = json.loads((run_dir / "config.json").read_text())
        check_resumable(saved, config, run_dir)
    else:
        config.check_new_run()
        if run_dir is not None:
            check_run_folder(run_dir, config)
    with data_for(config, data, group.local_size) as source:
        return _train(config, source, run_dir, progress and group.is_root, callback, resume, group)


class EpochTotals:
    """The running totals of one epoch: the summed loss (batch mean × batch size) and the correct
    answers, kept on the device, and the seconds spent. A checkpoint saves them as the list
    ``[loss_sum, correct, seconds]`` so that a resumed epoch ends with the same totals. With
    several ranks each rank holds the totals of its own shares; :meth:`saved` adds them up."""

    def __init__(self, xp: Any, saved: list[float] | None = None, group: Group | None = None) -> None:
        self.group = group
        loss_sum, correct, seconds = saved or (0.0, 0.0, 0.0)
        self.loss_sum = xp.asarray(loss_sum, dtype=xp.float64)
        self.correct = xp.asarray(correct, dtype=xp.float64)
        self._seconds_before, self._t0 = float(seconds), time.perf_counter()

    def add(self, step: Step, labels: Any) -> None:
        self.loss_sum += step.loss * labels.shape[0]
        self.correct += (step.output.argmax(axis=1) == labels).sum()

    @property
    def seconds(self) -> float:
        return self._seconds_before + time.perf_counter() - self._t0

    def saved(self) -> list[float]:
        """The totals over every rank as plain numbers, for a checkpoint (one device→host copy each)."""
        sums = [float(to_numpy(self.loss_sum)), float(to_numpy(self.correct))]
        if self.group is not None and self.group.size > 1:
            sums = [float(v) for v in self.group.sum_host(sums)]
        return [*sums, self.seconds]


class LossWindow:
    """The batch losses since the host last read them, kept on the device in one array. With
    several ranks each rank adds its share's loss times its share, and :meth:`read` adds them up
    into the global batch's mean loss."""

    def __init__(self, xp: Any, size: int, group: Group | None = None) -> None:
        self.values, self.pending, self.group = xp.zeros(size, dtype=xp.float64), 0, group

    @property
    def full(self) -> bool:
        return self.pending == self.values.shape[0]

    def add(self, loss: Any) -> None:
        self.values[self.pending] = loss
        self.pending += 1

    def read(self) -> np.ndarray:
        """The pending losses on the host (the one device→host read of the window); empties it."""
        losses, self.pending = to_numpy(self.values[: self.pending]), 0
        if self.group is not None and self.group.size > 1:
            losses = self.group.sum_host(losses)
        return losses


def make_optimizer(config: TrainConfig) -> SGD:
    """SGD with ``config``'s learning rate, momentum, weight decay and schedule (eqs 16–17)."""
    schedule = get_schedule(config.schedule, epochs=config.epochs, milestones=config.milestones, gamma=config.gamma)
    return SGD(config.lr, config.momentum, config.weight_decay, schedule)


def _train(
    config: TrainConfig,
    data: BatchSource,
    run_dir: Path | None,
    progress: bool,
    callback: Callable[[Record], None] | None,
    resume: bool,
    group: Group,
) -> tuple[Network, list[Record]]:
    xp = get_backend()
    ckpt_path = run_dir / "checkpoint.npz" if run_dir is not None else None
    writes = run_dir is not None and group.is_root  # rank 0 alone writes the run folder
    part: dict[str, Any] = {}  # a source written before data-parallel training need not know "part"
    if group.size > 1:
        group.check_batch(config.batch_size, data.n_train)
        part["part"] = (group.rank, group.size)
    rule = config.make_rule()
    opt = make_optimizer(config)
    loss_fn = get_loss(config.loss)
    sample = (-1,) if config.model == "mlp" else data.image_shape  # MLPs see flat vectors, CNNs images

    def to_device(x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:  # the one host→device copy of a batch
        return xp.asarray(x.reshape(len(x), *sample), dtype=config.dtype), xp.asarray(y)

    x_probe, y_probe = to_device(*data.probe(min(config.probe_size, data.n_train)))
    net = initial_network(config, data, rule, x_probe[:1])
    if config.sync_bn and group.size > 1:
        for layer in net.walk():
            if isinstance(layer, BatchNorm):
                layer.group = group  # statistics over the global batch
    steps_per_epoch = math.ceil(data.n_train / config.batch_size)

    def record(epoch: int, train_loss: float, train_acc: float, seconds: float) -> Record:
        test = (to_device(x, y) for x, y in data.test_batches(1000, **part))
        test_loss, test_acc = evaluate(net, loss_fn, test, group)
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

    # where the run stands: the next (epoch, step) to do and the totals of that epoch so far
    if resume:
        assert ckpt_path is not None
        meta = load_checkpoint(ckpt_path, net, opt, rule)
        _check_ranks(meta, net, config, group, ckpt_path)
        history: list[Record] = meta["history"]
        epoch, first_step, sums = meta["epoch"], meta["step"], meta["sums"]
        if not group.is_root:  # the saved totals are every rank's so far: rank 0 carries them on
            sums = [0.0, 0.0, sums[2]]
    else:
        # epoch 0 is the untrained network; its training loss is measured on the probe examples
        history = [record(0, *evaluate(net, loss_fn, [(x_probe, y_probe)]), 0.0)]
        epoch, first_step, sums = 1, 0, None
    if writes:
        write_json(run_dir / "config.json", config.to_dict())
    log = JsonLines(run_dir / "metrics.jsonl" if writes else None, history)
    if not resume and callback is not None:
        callback(history[0])
    limit = config.diverge_factor * max(history[0]["train_loss"], 1e-12)

    def checkpoint(at_epoch: int, at_step: int, epoch_sums: list[float], finished: bool = False) -> None:
        if writes:
            meta = {"epoch": at_epoch, "step": at_step, "sums": epoch_sums, "history": history, "finished": finished}
            meta["ranks"] = group.size
            save_checkpoint(ckpt_path, net, opt, rule, {**meta, "config": config.to_dict()})

    if not resume:
        checkpoint(1, 0, [0.0, 0.0, 0.0])
    bar = _progress(config.epochs * steps_per_epoch, config.rule, progress)
    bar.update((epoch - 1) * steps_per_epoch + first_step)
    stopping, per_rank_batch = False, config.batch_size // group.size
    threads = blas_threads_for(net, x_probe[:1], per_rank_batch, ranks_here=group.local_size)
    with StopFlag(announce=group.is_root) as stop, threads:
        while epoch <= config.epochs:
            totals, losses, step = EpochTotals(xp, sums, group), LossWindow(xp, config.log_every, group), first_step
            batches = data.train_batches(config.batch_size, epoch=epoch, seed=config.seed, start=first_step, **part)
            try:
                for xb_host, yb_host in batches:
                    opt.set_epoch(epoch - 1 + step / steps_per_epoch)
                    xb, yb = to_device(xb_host, yb_host)
                    share = len(yb_host) / min(config.batch_size, data.n_train - step * config.batch_size)
                    # eqs (1)-(4), (16)-(17), (6)-(7); with several ranks, the gradients averaged over them
                    result = train_step(net, rule, loss_fn, opt, xb, yb, group=group, share=share)
                    losses.add(result.loss * share)
                    totals.add(result, yb)
                    step += 1
                    due = config.checkpoint_every > 0 and step % config.checkpoint_every == 0
                    stopping = group.any(stop.requested)  # every rank stops at the same step
                    if not (losses.full or step == steps_per_epoch or due or stopping):
                        continue
                    read = losses.read()
                    _check_losses(read, step - len(read), limit, epoch, steps_per_epoch, config, opt.lr, history)
                    bar.update(len(read))
                    if (due or stopping) and step < steps_per_epoch:
                        checkpoint(epoch, step, totals.saved())
                    if stopping and step < steps_per_epoch:  # at the epoch's end: save it first
                        where = f"checkpoint saved in {ckpt_path}" if ckpt_path else "nothing saved (no --out)"
                        raise TrainingInterrupted(
                            f"interrupted at epoch {epoch}, step {step} of {steps_per_epoch}; {where}", history
                        )
            finally:
                if hasattr(batches, "close"):
                    batches.close()
            loss_sum, correct, seconds = totals.saved()
            rec = record(epoch, loss_sum / data.n_train, correct / data.n_train, seconds)
            if group.size > 1 and not group.same_on_every_rank(weight_checksums(net)):
                raise RuntimeError(
                    f"after epoch {epoch} the {group.size} ranks hold different weights, so they no longer train one "
                    "network; please report this with the command. The last checkpoint is from before this epoch"
                )
            history.append(rec)
            log.write(rec)
            epoch, first_step, sums = epoch + 1, 0, None
            checkpoint(epoch, 0, [0.0, 0.0, 0.0], finished=epoch > config.epochs)
            if callback is not None:
                callback(rec)
            bar.set_postfix(epoch=rec["epoch"], loss=f"{rec['train_loss']:.3f}", test_acc=f"{rec['test_accuracy']:.3f}")
            if stopping:
                raise TrainingInterrupted(
                    f"interrupted after epoch {rec['epoch']}; checkpoint saved in {ckpt_path}", history
                )
    bar.close()
    return net, history


def _check_ranks(meta: dict[str, Any], net: Network, config: TrainConfig, group: Group, where: Path) -> None:
    """Refuse to resume on another number of ranks where that would change the run's numbers: where a
    layer keeps statistics of each rank's share of a batch (batch norm, unless synchronized; synaptic
    scaling's activity), they depend on how many shares there are."""
    saved = int(meta.get("ranks", 1))
    per_rank = [
        layer for layer in net.walk() if layer.buffers and not (config.sync_bn and isinstance(layer, BatchNorm))
    ]
    if saved != group.size and per_rank:
        launch = f"mpiexec -n {saved} " if saved > 1 else "one process (no mpiexec) "
        raise ValueError(
            f"cannot resume {where} on {group.size} rank(s): it was trained on {saved}, and its {per_rank[0]!r} "
            f"keeps statistics of each rank's share of a batch, so another count would change the run; resume "
            f"with {launch}or start a new run in another --out"
        )


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
            + (f", or {hint}" if (hint := RULES[config.rule].divergence_hint) else "")
            + ", in a new run (another --out, or delete this run's folder); "
            "the last checkpoint, from before this step, is kept",
            history,
        )


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, leave=True)

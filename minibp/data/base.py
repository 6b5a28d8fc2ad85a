"""The dataset container, the batch interface the trainer reads, and the checks every dataset passes.

The trainer sees data only through :class:`BatchSource`: ``train_batches`` for one epoch
in a fixed shuffled order, ``test_batches`` in file order, and ``probe`` for the delta
angle. :class:`Dataset` (arrays in memory) implements it for every dataset but ImageNet,
whose folder loader (:mod:`minibp.data.imagenet`) streams decoded images instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

Batch = tuple[np.ndarray, np.ndarray]


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` (1, 2, ...) visits ``n`` training examples.

    It depends only on ``(seed, epoch)``, so a resumed run visits the same examples
    as an uninterrupted one without replaying earlier epochs.
    """
    return np.random.default_rng([int(seed), 2, int(epoch)]).permutation(int(n))


def share(n: int, part: tuple[int, int]) -> slice:
    """Rank ``part[0]``'s share of a batch of ``n`` examples shared by ``part[1]`` ranks: a contiguous
    slice, the shares' sizes differing by at most one."""
    rank, ranks = part
    base, extra = divmod(int(n), int(ranks))
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


class BatchSource(Protocol):
    """What the trainer reads: host (NumPy) batches of float inputs and integer labels."""

    name: str
    n_classes: int
    #: (channels, height, width) of one sample as an image; None for flat data
    image_shape: tuple[int, ...] | None

    @property
    def n_train(self) -> int: ...

    @property
    def n_test(self) -> int: ...

    def train_batches(
        self, batch_size: int, *, epoch: int, seed: int, start: int = 0, part: tuple[int, int] = (0, 1)
    ) -> Iterator[Batch]:
        """Epoch ``epoch``'s batches in the order :func:`epoch_order` gives, from step ``start`` on;
        ``part=(rank, ranks)``: only that rank's share of each batch (:func:`share`)."""
        ...

    def test_batches(self, batch_size: int, *, part: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
        """The test set in a fixed order, without augmentation; ``part=(rank, ranks)``: only the
        batches ``rank, rank + ranks, …``."""
        ...

    def probe(self, n: int) -> Batch:
        """A fixed set of ``n`` training examples, without augmentation (the delta angle's batch)."""
        ...


#: bytes of inputs :func:`check_arrays` checks for NaN/inf at a time
CHECK_BYTES = 64 * 2**20


def check_arrays(x: np.ndarray, y: np.ndarray, what: str) -> None:
    """Raise a ``ValueError`` that names the problem if ``x``/``y`` cannot be trained on."""
    if x.ndim < 2:
        raise ValueError(f"{what} inputs must have shape (samples, features...), got {x.shape}")
    if y.ndim != 1:
        raise ValueError(f"{what} labels must be a 1-D array of class indices, got shape {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{what} has {x.shape[0]} inputs but {y.shape[0]} labels: they must match one to one")
    if x.shape[0] == 0:
        raise ValueError(f"{what} is empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} labels must be integers (class indices), got dtype {y.dtype}")
    if y.min() < 0:
        raise ValueError(f"{what} labels must be >= 0, got {int(y.min())}")
    if not np.issubdtype(x.dtype, np.inexact):
        return  # integer pixels cannot be NaN or inf
    # in slices of samples: a mask of the whole array would add a quarter of the size of a
    # float32 dataset (ImageNet 64×64 in memory is 60 GB) just to check it
    rows = max(1, CHECK_BYTES // max(1, x[:1].nbytes))
    count, first = 0, None
    for start in range(0, x.shape[0], rows):
        bad = ~np.isfinite(x[start : start + rows])
        if bad.any():
            count += int(bad.sum())
            if first is None:
                idx = np.argwhere(bad)[0]
                first = (start + int(idx[0]), *(int(i) for i in idx[1:]))
    if count:
        raise ValueError(
            f"{what} inputs contain {count} NaN/inf value(s), the first at index {first}: "
            "clean or impute the data before training"
        )


@dataclass
class Dataset:
    """Train and test arrays on the host (NumPy); the trainer moves batches to the backend."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    #: (channels, height, width) of one sample seen as an image, for convolutional models
    image_shape: tuple[int, ...] | None = None
    #: applied to every training batch (not to test batches or the probe): ``augment(x, idx, n_train,
    #: seed, epoch)`` with ``idx`` the batch's indices (:class:`~minibp.data.augment.CropFlip`)
    augment: Callable[..., np.ndarray] | None = None

    def __post_init__(self) -> None:
        check_arrays(self.x_train, self.y_train, f"{self.name} training set")
        check_arrays(self.x_test, self.y_test, f"{self.name} test set")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"{self.name}: training inputs have shape {self.x_train.shape[1:]} per sample "
                f"but test inputs {self.x_test.shape[1:]}"
            )
        top = int(max(self.y_train.max(), self.y_test.max()))
        if top >= self.n_classes:
            raise ValueError(f"{self.name}: label {top} found but n_classes is {self.n_classes}")
        if self.image_shape is None and len(self.input_shape) == 3:
            self.image_shape = self.input_shape
        if self.image_shape is not None and int(np.prod(self.image_shape)) != self.n_features:
            raise ValueError(f"{self.name}: image shape {self.image_shape} does not hold {self.n_features} features")

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def train_batches(
        self, batch_size: int, *, epoch: int, seed: int, start: int = 0, part: tuple[int, int] = (0, 1)
    ) -> Iterator[Batch]:
        order = epoch_order(self.n_train, seed, epoch)
        for step in range(int(start), math.ceil(self.n_train / batch_size)):
            idx = order[step * batch_size : (step + 1) * batch_size]
            idx = idx[share(len(idx), part)]  # only this rank's examples are read and augmented
            x = self.x_train[idx]
            if self.augment is not None:
                x = self.augment(x.reshape(len(idx), *self.image_shape), idx, self.n_train, seed, epoch)
            yield x.reshape(len(idx), *self.input_shape), self.y_train[idx]

    def test_batches(self, batch_size: int, *, part: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
        rank, ranks = part
        for i in range(rank * batch_size, self.n_test, ranks * batch_size):
            yield self.x_test[i : i + batch_size], self.y_test[i : i + batch_size]

    def probe(self, n: int) -> Batch:
        return self.x_train[:n], self.y_train[:n]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

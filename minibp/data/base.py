"""The dataset container and the checks every dataset passes before training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    bad = ~np.isfinite(x)
    if bad.any():
        idx = np.argwhere(bad)[0]
        raise ValueError(
            f"{what} inputs contain {int(bad.sum())} NaN/inf value(s), "
            f"the first at index {tuple(int(i) for i in idx)}: "
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
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

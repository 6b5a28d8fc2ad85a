"""A synthetic teacher–student task: Gaussian inputs labelled by a fixed random network (no files).

What it is for: checking the learning rules' equations and the trainer on a problem whose
answer is known. The labels come from a network of a known shape, so a student of that
shape (or larger) can reach 100 % accuracy when ``noise=0``; everything is generated from
``seed`` in milliseconds, identically on every machine.

The teacher is ``argmax(W2 · tanh(W1 · x + b1) + b2)`` with ``x`` drawn from N(0, I):
``W1`` has entries from N(0, 1/n_features) and ``b1`` from N(0, 0.1²), so the hidden units
work in tanh's curved range, and ``W2`` has entries from N(0, 1/hidden). ``b2`` is set so
that every output has mean zero over the input distribution, which keeps the classes
roughly balanced. With ``noise > 0``, Gaussian noise of that standard deviation is added
to the teacher's outputs before the argmax, flipping the labels near class boundaries.

Teacher, training inputs, test inputs and noise each come from their own random stream
(``np.random.default_rng([seed, k])``), so asking for more training examples leaves the
teacher and the test set unchanged.
"""

from __future__ import annotations

import numpy as np

from .base import Dataset
from .files import PathLike, float_dtype

_TEACHER, _TRAIN, _TEST, _NOISE = 1, 2, 3, 4
#: inputs used to centre the teacher's outputs (sets b2)
_CENTERING_SAMPLES = 8192


def teacher_network(seed: int, n_features: int, n_classes: int, hidden: int) -> tuple[np.ndarray, ...]:
    """The teacher's weights ``(W1, b1, W2, b2)`` for ``seed``, in float64."""
    rng = np.random.default_rng([int(seed), _TEACHER])
    w1 = rng.standard_normal((hidden, n_features)) / np.sqrt(n_features)
    b1 = 0.1 * rng.standard_normal(hidden)
    w2 = rng.standard_normal((n_classes, hidden)) / np.sqrt(hidden)
    reference = rng.standard_normal((_CENTERING_SAMPLES, n_features))
    b2 = -(np.tanh(reference @ w1.T + b1) @ w2.T).mean(axis=0)
    return w1, b1, w2, b2


def _sample(weights: tuple[np.ndarray, ...], n: int, seed: int, stream: int, noise: float) -> tuple[np.ndarray, ...]:
    w1, b1, w2, b2 = weights
    x = np.random.default_rng([int(seed), stream]).standard_normal((n, w1.shape[1]))
    out = np.tanh(x @ w1.T + b1) @ w2.T + b2
    if noise > 0:
        out += noise * np.random.default_rng([int(seed), _NOISE, stream]).standard_normal(out.shape)
    return x, out.argmax(axis=1).astype(np.int64)


def load_teacher(
    n_train: int = 2000,
    n_test: int = 500,
    n_features: int = 20,
    n_classes: int = 5,
    hidden: int = 32,
    seed: int = 0,
    noise: float = 0.0,
    *,
    dtype: str = "float32",
    flatten: bool = True,
    data_dir: PathLike | None = None,
    download: bool = True,
) -> Dataset:
    """The teacher–student task as a :class:`Dataset` of ``(N, n_features)`` inputs and ``n_classes`` classes.

    Deterministic per ``seed``. ``flatten``, ``data_dir`` and ``download`` are accepted so
    that every loader can be called alike, and ignored: the inputs are always flat and
    nothing is read from disk.
    """
    for name, value in (("n_train", n_train), ("n_test", n_test), ("n_features", n_features), ("hidden", hidden)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    dt = float_dtype(dtype)
    weights = teacher_network(seed, int(n_features), int(n_classes), int(hidden))
    x_tr, y_tr = _sample(weights, int(n_train), seed, _TRAIN, float(noise))
    x_te, y_te = _sample(weights, int(n_test), seed, _TEST, float(noise))
    return Dataset("teacher", x_tr.astype(dt), y_tr, x_te.astype(dt), y_te, n_classes=int(n_classes))

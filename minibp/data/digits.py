"""scikit-learn's handwritten digits: 1,797 8×8 images, shipped inside scikit-learn (no download).

The default data of minibp. Pixels (0–16) are scaled to [0, 1]; a fixed, stratified,
seeded split keeps 20 % (360 images) for testing, the same for every run.
"""

from __future__ import annotations

import numpy as np

from .base import Dataset

SPLIT_SEED = 0
TEST_FRACTION = 0.2


def load_digits(flatten: bool = True, dtype: str = "float32") -> Dataset:
    """The digits as a :class:`Dataset`: ``(N, 64)`` inputs, or ``(N, 1, 8, 8)`` with ``flatten=False``."""
    from sklearn.datasets import load_digits as _sk_digits  # noqa: PLC0415 (keeps import minibp light)
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    bunch = _sk_digits()
    x = (bunch.data / 16.0).astype(dtype)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    if not flatten:
        x_tr, x_te = x_tr.reshape(-1, 1, 8, 8), x_te.reshape(-1, 1, 8, 8)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, n_classes=10, image_shape=(1, 8, 8))

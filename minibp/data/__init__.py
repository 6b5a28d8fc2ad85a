"""Datasets: float inputs and integer labels, split into train and test.

Each loader returns a :class:`~minibp.data.base.BatchSource`: a :class:`Dataset` of arrays in
memory, or, for ``imagenet``, an :class:`ImageFolder` that decodes JPEGs in worker processes.

Every loader in :data:`DATASETS` takes the keyword arguments ``data_dir``, ``flatten``,
``dtype`` and ``download`` (those without files ignore ``data_dir`` and ``download``), so
``load_dataset(name, data_dir=..., flatten=False)`` works for each name. Where the files
are looked for and how they are downloaded: :mod:`minibp.data.files`.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Batch, BatchSource, Dataset, check_arrays, epoch_order
from .cifar import load_cifar10
from .digits import load_digits
from .files import CorruptDataFile, DataNotFound, PathLike, data_root, search_dirs
from .imagenet import ImageDecodeError, ImageFolder, load_imagenet
from .imagenet_small import load_imagenet32, load_imagenet64
from .mnist import load_fashion_mnist, load_mnist
from .teacher import load_teacher


def _digits(
    data_dir: PathLike | None = None, *, flatten: bool = True, dtype: str = "float32", download: bool = True
) -> Dataset:
    """:func:`load_digits` with the common loader signature (the digits ship with scikit-learn: no files)."""
    return load_digits(flatten=flatten, dtype=dtype)


DATASETS: dict[str, Callable[..., BatchSource]] = {
    "digits": _digits,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "imagenet32": load_imagenet32,
    "imagenet64": load_imagenet64,
    "imagenet": load_imagenet,
    "teacher": load_teacher,
}
#: other spellings accepted by :func:`load_dataset`
ALIASES: dict[str, str] = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}


def load_dataset(name: str, **kwargs: object) -> BatchSource:
    """The dataset registered as ``name`` (or an alias of it), loaded with ``kwargs``.

    Raises ``ValueError`` for an unknown name, :class:`DataNotFound` when its files are
    missing and cannot be downloaded, and :class:`CorruptDataFile` when a file is damaged.
    """
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[key](**kwargs)


__all__ = [
    "ALIASES",
    "DATASETS",
    "Batch",
    "BatchSource",
    "CorruptDataFile",
    "DataNotFound",
    "Dataset",
    "ImageDecodeError",
    "ImageFolder",
    "check_arrays",
    "data_root",
    "epoch_order",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_imagenet",
    "load_imagenet32",
    "load_imagenet64",
    "load_mnist",
    "load_teacher",
    "search_dirs",
]

"""Datasets. Each returns a :class:`Dataset`: float inputs and integer labels, split into train and test."""

from __future__ import annotations

from collections.abc import Callable

from .base import Batch, BatchSource, Dataset, check_arrays, epoch_order
from .digits import load_digits

DATASETS: dict[str, Callable[..., Dataset]] = {"digits": load_digits}


def load_dataset(name: str, **kwargs: object) -> Dataset:
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[key](**kwargs)


__all__ = ["DATASETS", "Batch", "BatchSource", "Dataset", "check_arrays", "epoch_order", "load_dataset", "load_digits"]

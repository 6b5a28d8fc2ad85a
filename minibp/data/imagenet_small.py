"""Downsampled ImageNet (Chrabaszcz, Loshchilov and Hutter 2017): the 1,000 ILSVRC-2012 classes at 32×32 or 64×64.

1,281,167 training images and the 50,000 validation images (used here as the test set),
shrunk to a small square. The npz files published with the paper hold them: the training
set split over ``train_data_batch_1.npz`` … ``train_data_batch_10.npz`` (about 128,000
images each) and the validation set in ``val_data.npz``. Each has the keys ``data``
(uint8, one row of 3·s·s values per image, channel-major: all red, then green, then
blue), ``labels`` (the classes numbered 1 to 1000; minibp makes them 0 to 999) and
``mean`` (the mean training image, not used here).

There is no download without an ImageNet account: log in at https://image-net.org,
download "Downsampled ImageNet 32x32 (npz format)" (or 64x64), unzip the train and val
archives and put the ``.npz`` files in ``<data root>/imagenet32`` (or ``imagenet64``), see
:mod:`minibp.data.files`.

Memory: every image becomes ``dtype`` values in one array. The full training set is
3.9 GB as uint8 at 32×32, so 15.7 GB as float32 (7.9 GB as float16); at 64×64 it is four
times that, 63 GB as float32 (31 GB as float16). Use ``n_train_files`` to read only the
first k training files (each about a tenth) and ``dtype="float16"`` to halve the rest.
Loading keeps one file's uint8 data besides the output array.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from .base import Dataset
from .files import PathLike, Source, corrupt, float_dtype, require

N_TRAIN_FILES = 10
TRAIN_FILES = tuple(f"train_data_batch_{i}.npz" for i in range(1, N_TRAIN_FILES + 1))
VAL_FILE = "val_data.npz"
N_CLASSES = 1000


def source(size: int) -> Source:
    """Where the ``size``×``size`` files live and how to get them (there is no public download)."""
    return Source(
        title=f"Downsampled ImageNet {size}x{size}",
        subdir=f"imagenet{size}",
        files=(*TRAIN_FILES, VAL_FILE),
        base_url=None,
        instructions=(
            "They need an ImageNet account: log in at https://image-net.org, open Download, and get "
            f'"Downsampled ImageNet {size}x{size} (npz format)", the train and the val archives; '
            "unzip them and put the .npz files themselves (not a folder around them) in the folder above."
        ),
    )


def _open(path: Path, size: int, *, labels_only: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
    """A file's images ``(N, 3, size, size)`` uint8 (None with ``labels_only``) and 1-based labels, checked."""
    width = 3 * size * size
    try:
        # open the file here: np.load leaks its own handle when the zip is unreadable
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            keys = list(npz.files)
            has_all = "data" in keys and "labels" in keys
            labels = np.asarray(npz["labels"]) if has_all else None
            data = npz["data"] if has_all and not labels_only else None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, TypeError, OSError) as err:
        raise corrupt(path, f"is not a readable .npz file ({type(err).__name__}: {err})") from err
    if labels is None:
        missing = [key for key in ("data", "labels") if key not in keys]
        raise corrupt(path, f"lacks the key(s) {', '.join(missing)} (it has: {', '.join(keys) or 'nothing'})")
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.reshape(-1)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise corrupt(path, f"'labels' is {labels.dtype} of shape {labels.shape}, expected integers 1-{N_CLASSES}")
    if labels.size and (labels.min() < 1 or labels.max() > N_CLASSES):
        raise corrupt(path, f"holds labels from {labels.min()} to {labels.max()}, expected 1-{N_CLASSES}")
    if data is None:
        return None, labels
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != width:
        raise corrupt(path, f"'data' is {data.dtype} of shape {data.shape}, expected uint8 (N, {width})")
    if labels.shape[0] != data.shape[0]:
        raise corrupt(path, f"has {data.shape[0]} images but {labels.shape[0]} labels")
    return data.reshape(-1, 3, size, size), labels


def _read(paths: list[Path], size: int, dtype: np.dtype, flatten: bool) -> tuple[np.ndarray, np.ndarray]:
    """Stack several files into one array of ``dtype`` in [0, 1], holding one file's pixels at a time."""
    # first pass: only the (small) label arrays, to size the output before any pixels are read
    n = sum(_open(path, size, labels_only=True)[1].shape[0] for path in paths)
    x = np.empty((n, 3, size, size), dtype=dtype)
    ys = []
    i = 0
    for path in paths:
        data, labels = _open(path, size)
        assert data is not None
        if i + data.shape[0] > n:
            raise corrupt(path, "changed while it was being read")
        x[i : i + data.shape[0]] = data
        x[i : i + data.shape[0]] /= 255
        ys.append(labels.astype(np.int64) - 1)
        i += data.shape[0]
    if i != n:
        raise corrupt(paths[-1], "changed while it was being read")
    return (x.reshape(n, -1) if flatten else x), np.concatenate(ys)


def _load(
    size: int,
    data_dir: PathLike | None,
    flatten: bool,
    dtype: str | np.dtype,
    download: bool,
    n_train_files: int,
) -> Dataset:
    dt = float_dtype(dtype)
    if not 1 <= int(n_train_files) <= N_TRAIN_FILES:
        raise ValueError(f"n_train_files must be between 1 and {N_TRAIN_FILES}, got {n_train_files}")
    names = [*TRAIN_FILES[: int(n_train_files)], VAL_FILE]
    paths = require(source(size), data_dir, download=download, names=names)
    x_tr, y_tr = _read([paths[name] for name in names[:-1]], size, dt, flatten)
    x_te, y_te = _read([paths[VAL_FILE]], size, dt, flatten)
    return Dataset(f"imagenet{size}", x_tr, y_tr, x_te, y_te, n_classes=N_CLASSES, image_shape=(3, size, size))


def load_imagenet32(
    data_dir: PathLike | None = None,
    *,
    flatten: bool = True,
    dtype: str = "float32",
    download: bool = True,
    n_train_files: int = N_TRAIN_FILES,
) -> Dataset:
    """Downsampled ImageNet 32×32 as a :class:`Dataset`: ``(N, 3072)``, or ``(N, 3, 32, 32)`` with ``flatten=False``.

    Reads ``train_data_batch_1..n_train_files.npz`` and ``val_data.npz`` (the test set) from
    ``imagenet32/`` under ``data_dir`` (else ``$MINIBP_DATA``, else ``~/.cache/minibp``).
    Labels are 0-based. All 10 training files take 15.7 GB as float32. ``download`` is
    accepted for a uniform interface; there is no public download, so missing files raise
    :class:`~minibp.data.files.DataNotFound` saying where to get them.
    """
    return _load(32, data_dir, flatten, dtype, download, n_train_files)


def load_imagenet64(
    data_dir: PathLike | None = None,
    *,
    flatten: bool = True,
    dtype: str = "float32",
    download: bool = True,
    n_train_files: int = N_TRAIN_FILES,
) -> Dataset:
    """Downsampled ImageNet 64×64 as a :class:`Dataset`: ``(N, 12288)``, or ``(N, 3, 64, 64)`` with ``flatten=False``.

    Like :func:`load_imagenet32`, from ``imagenet64/``. All 10 training files take 63 GB as
    float32 (31 GB as float16): pass ``n_train_files`` and/or ``dtype="float16"`` to fit memory.
    """
    return _load(64, data_dir, flatten, dtype, download, n_train_files)

"""ImageNet (ILSVRC-2012) read from a folder of images, decoded and augmented by worker processes.

This module holds the folder dataset: finding the data, scanning the class folders,
:class:`ImageFolder` (which streams batches, from worker processes or this one) and
:func:`load_imagenet`. The per-image work (decoding, crops, normalisation) is in
:mod:`minibp.data.imagenet_transforms`, the worker pool in :mod:`minibp.data.workers`.

There is no public download. The loader expects the usual class-folder layout::

    <root>/train/<wnid>/*.JPEG     e.g. train/n01440764/n01440764_10026.JPEG
    <root>/val/<wnid>/*.JPEG       the 50,000 validation images sorted into the same wnid folders

The classes are the sorted folder names of ``train/``; ``val/`` must use some or all of them.

Images are decoded with Pillow. Training batches get the Inception-style random resized crop
(scale 0.08-1, aspect ratio 3/4-4/3) and a horizontal flip with probability 1/2; test batches and
the probe get the shorter side resized to ``round(image_size / 0.875)`` and a center crop. Pixels
are normalised with the ImageNet channel mean and standard deviation; batches are ``(N, 3, S, S)``
float arrays and int64 labels, on the host.

Determinism: epoch ``e`` visits the training set in :func:`~minibp.data.base.epoch_order` order and
sample ``i`` is augmented from ``np.random.default_rng([seed, 3, e, i])``, so a batch's contents do
not depend on the number of workers or their scheduling, and ``start=k`` resumes an epoch exactly.

Worker model: each worker process builds whole batches with
:func:`~minibp.data.imagenet_transforms.fill_batch` and hands them back through shared memory
without a copy (through its pipe where ``/dev/shm`` lacks room); the pool, its start method and its
shutdown are in :mod:`minibp.data.workers`, what runs inside a worker in
:mod:`minibp.data.worker_process`.
"""

from __future__ import annotations

import math
import os
import weakref
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .base import Batch, epoch_order, share
from .imagenet_transforms import ImageDecodeError, _Augment, _pil, fill_batch
from .workers import _Job, _Pool, _Spec, default_start_method, default_workers

__all__ = [
    "ImageDecodeError",
    "ImageFolder",
    "default_start_method",
    "default_workers",
    "find_imagenet",
    "load_imagenet",
]

EXTENSIONS = frozenset({".jpeg", ".jpg", ".png"})

LAYOUT_HELP = """\
ImageNet has no public download: get ILSVRC-2012 from https://image-net.org and lay it out as

    <root>/train/<wnid>/*.JPEG    1000 class folders such as train/n01440764/
    <root>/val/<wnid>/*.JPEG      the 50,000 validation images sorted into the same wnid folders

The validation images must be in class folders, as torchvision's ImageFolder expects and as the
widely used valprep.sh script arranges them, not in one flat folder. <root> is the folder given
with --data-dir (data_dir=...), or a folder holding imagenet/ with train/ and val/ inside;
without one, $MINIBP_DATA/imagenet, else ~/.cache/minibp/imagenet."""


# --------------------------------------------------------------------------- finding the data


def find_imagenet(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds ``train/`` and ``val/``; a ``FileNotFoundError`` explains the layout if none."""
    if data_dir is not None:
        given = Path(data_dir).expanduser()
        candidates = [given, given / "imagenet"]
        origin = f"data_dir / --data-dir {str(given)!r}"
    elif os.environ.get("MINIBP_DATA"):
        candidates = [Path(os.environ["MINIBP_DATA"]).expanduser() / "imagenet"]
        origin = "$MINIBP_DATA"
    else:
        candidates = [Path("~/.cache/minibp/imagenet").expanduser()]
        origin = "the default location (no --data-dir, MINIBP_DATA unset)"
    for root in candidates:
        if (root / "train").is_dir():
            if not (root / "val").is_dir():
                raise FileNotFoundError(
                    f"ImageNet: {root / 'train'} exists but {root / 'val'} does not.\n{LAYOUT_HELP}"
                )
            return root
    looked = " and ".join(str(c / "train") for c in candidates)
    raise FileNotFoundError(f"ImageNet not found: no {looked} (from {origin}).\n{LAYOUT_HELP}")


def _image_names(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if os.path.splitext(e.name)[1].lower() in EXTENSIONS and e.is_file())


def _scan(split: Path, classes: list[str] | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(classes, file names, labels)`` of one split; ``classes`` given for val/ (train/'s)."""
    with os.scandir(split) as it:
        entries = list(it)
    folders = sorted(e.name for e in entries if e.is_dir())
    loose = [e.name for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in EXTENSIONS]
    if loose and not folders:
        raise ValueError(
            f"ImageNet: {split} holds {len(loose)} images directly instead of one folder per class "
            f"(e.g. {loose[0]}).\n{LAYOUT_HELP}"
        )
    if not folders:
        raise ValueError(f"ImageNet: {split} has no class folders.\n{LAYOUT_HELP}")
    if classes is None:
        classes = folders
    else:
        unknown = [f for f in folders if f not in set(classes)]
        if unknown:
            raise ValueError(
                f"ImageNet: {split} has {len(unknown)} class folder(s) that train/ lacks "
                f"({', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}); val/ must use train/'s classes"
            )
    index = {c: i for i, c in enumerate(classes)}
    names: list[bytes] = []
    labels: list[int] = []
    empty: list[str] = []
    for folder in folders:
        files = _image_names(split / folder)
        if not files:
            empty.append(folder)
        names += [os.fsencode(f"{folder}/{f}") for f in files]
        labels += [index[folder]] * len(files)
    if empty:
        raise ValueError(
            f"ImageNet: {len(empty)} class folder(s) in {split} hold no .JPEG/.jpg/.jpeg/.png images: "
            f"{', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''}"
        )
    return classes, np.array(names, dtype=bytes), np.array(labels, dtype=np.int64)


# --------------------------------------------------------------------------- the dataset


class ImageFolder:
    """A class-folder image dataset (ImageNet) implementing :class:`~minibp.data.base.BatchSource`.

    ``workers`` processes decode ahead of the consumer (0: decode in this process), keeping up to
    ``prefetch`` batches in flight. Workers start on first use and stay until :meth:`close` (or
    the ``with`` block's end, or garbage collection). Batches from the workers live in shared
    memory that is reused only after the batch array is garbage collected.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        image_size: int = 224,
        workers: int | None = None,
        prefetch: int | None = None,
        dtype: str = "float32",
        start_method: str | None = None,
        transport: str = "auto",
        name: str = "imagenet",
    ) -> None:
        self.root = Path(root)
        self.name = name
        self.image_size = int(image_size)
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 decodes in this process), got {workers}")
        self.prefetch = max(2, 2 * self.workers) if prefetch is None else int(prefetch)
        if self.prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a float type, got {dtype!r}")
        self.start_method = start_method or default_start_method()
        if transport not in ("auto", "shm", "pipe"):
            raise ValueError(f"transport must be 'auto', 'shm' or 'pipe', got {transport!r}")
        self.transport = transport
        _pil()  # fail now, not in a worker, if Pillow is missing
        self.classes, self._train_names, self._train_labels = _scan(self.root / "train", None)
        _, self._test_names, self._test_labels = _scan(self.root / "val", self.classes)
        self.n_classes = len(self.classes)
        self.image_shape: tuple[int, ...] = (3, self.image_size, self.image_size)
        self._pool: _Pool | None = None
        self._finalizer: weakref.finalize | None = None

    def __repr__(self) -> str:
        return (
            f"ImageFolder({str(self.root)!r}, classes={self.n_classes}, train={self.n_train}, "
            f"test={self.n_test}, image_size={self.image_size}, workers={self.workers})"
        )

    # ---- sizes

    @property
    def n_train(self) -> int:
        return len(self._train_names)

    @property
    def n_test(self) -> int:
        return len(self._test_names)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training batches per epoch, the last one partial if ``batch_size`` does not divide ``n_train``."""
        return math.ceil(self.n_train / _positive(batch_size, "batch_size"))

    def train_path(self, i: int) -> str:
        return os.path.join(self.root, "train", os.fsdecode(self._train_names[i]))

    def test_path(self, i: int) -> str:
        return os.path.join(self.root, "val", os.fsdecode(self._test_names[i]))

    def _train_spec(self, idx: np.ndarray, augment: _Augment | None) -> _Spec:
        names = [os.fsdecode(n) for n in self._train_names[idx]]
        return _Spec(os.path.join(self.root, "train"), names, self._train_labels[idx], augment)

    # ---- BatchSource

    def train_batches(
        self, batch_size: int, *, epoch: int, seed: int, start: int = 0, part: tuple[int, int] = (0, 1)
    ) -> Iterator[Batch]:
        """Epoch ``epoch``'s augmented batches in :func:`epoch_order` order, from step ``start`` on;
        with ``part=(rank, ranks)``, only that rank's share of each (its workers decode no other image)."""
        batch_size = _positive(batch_size, "batch_size")
        steps = math.ceil(self.n_train / batch_size)
        if not 0 <= int(start) <= steps:
            raise ValueError(f"start must be in 0..{steps} (steps per epoch), got {start}")
        order = epoch_order(self.n_train, seed, epoch)
        batches = (order[step * batch_size : (step + 1) * batch_size] for step in range(int(start), steps))
        shares = (batch[share(len(batch), part)] for batch in batches)  # this rank's images only
        specs = (self._train_spec(idx, _Augment(int(seed), int(epoch), tuple(idx.tolist()))) for idx in shares)
        return self._stream(specs)

    def test_batches(self, batch_size: int, *, part: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
        """The validation images in file order (class, then name), center-cropped; with
        ``part=(rank, ranks)``, only the batches ``rank, rank + ranks, …``."""
        batch_size = _positive(batch_size, "batch_size")
        folder = os.path.join(self.root, "val")
        specs = (
            _Spec(
                folder,
                [os.fsdecode(n) for n in self._test_names[i : i + batch_size]],
                self._test_labels[i : i + batch_size],
                None,
            )
            for i in range(part[0] * batch_size, self.n_test, part[1] * batch_size)
        )
        return self._stream(specs)

    def probe(self, n: int) -> Batch:
        """``n`` training images spread evenly over the (class-sorted) training set, center-cropped."""
        n = min(_positive(n, "n"), self.n_train)
        idx = np.linspace(0, self.n_train - 1, n).round().astype(np.int64)
        chunk = max(1, min(128, math.ceil(n / max(1, self.workers))))
        xs, ys = zip(*self._stream(self._train_spec(idx[i : i + chunk], None) for i in range(0, n, chunk)))
        return np.concatenate(xs), np.concatenate(ys)

    # ---- streaming

    def _stream(self, specs: Iterator[_Spec]) -> Iterator[Batch]:
        if self.workers == 0:
            for spec in specs:
                x = np.empty((len(spec.names), *self.image_shape), dtype=self.dtype)
                fill_batch(x, [os.path.join(spec.folder, name) for name in spec.names], spec.augment)
                yield x, spec.labels.astype(np.int64)
            return
        pool = self._start()
        gen = pool.new_generation()
        pending: deque[_Job] = deque()
        more = True

        def refill() -> None:
            nonlocal more
            while more and len(pending) < self.prefetch and pool.can_submit():
                spec = next(specs, None)
                if spec is None:
                    more = False
                    return
                shape = (len(spec.names), *self.image_shape)
                pending.append(pool.submit(gen, spec, shape, self.dtype))

        try:
            while True:
                refill()
                if not pending:
                    if not more:
                        return
                    pool.pump(self.dtype, timeout=1.0)  # every worker is still busy with abandoned batches
                    continue
                while pending[0].result is None:
                    pool.pump(self.dtype, timeout=1.0)
                    refill()
                job = pending.popleft()
                x = pool.take(job)
                refill()  # keep batches decoding while the consumer works on this one
                yield x, job.labels.astype(np.int64)
                del x
        finally:
            if pool is self._pool and pool.broken is None:
                pool.abandon(gen, pending)

    def _start(self) -> _Pool:
        if self._pool is not None and self._pool.broken is not None:
            self.close()
        if self._pool is None:
            self._pool = _Pool(self.workers, self.start_method, self.transport, fill_batch, ImageDecodeError)
            self._finalizer = weakref.finalize(self, self._pool.shutdown)
        return self._pool

    # ---- lifetime

    def close(self) -> None:
        """Stop the workers and free the shared memory (batches already handed out stay valid)."""
        if self._finalizer is not None:
            self._finalizer()  # runs _Pool.shutdown once
        self._pool = None
        self._finalizer = None

    def __enter__(self) -> ImageFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _positive(value: int, what: str) -> int:
    if int(value) < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return int(value)


def load_imagenet(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    image_size: int = 224,
    workers: int | None = None,
    dtype: str = "float32",
    prefetch: int | None = None,
    start_method: str | None = None,
    transport: str = "auto",
    **ignored: Any,
) -> ImageFolder:
    """ImageNet from ``data_dir`` (see :func:`find_imagenet`) as a streaming :class:`ImageFolder`.

    ``workers`` decoding processes (default: :func:`default_workers`; 0 decodes in this process)
    keep ``prefetch`` batches in flight (default ``2 * workers``: each worker one batch in progress
    and one queued; a 128-image 224² float32 batch is 77 MB). Other keyword arguments
    (``flatten``, ``download``) are accepted for a uniform loader signature and ignored.
    """
    del ignored
    return ImageFolder(
        find_imagenet(data_dir),
        image_size=image_size,
        workers=workers,
        prefetch=prefetch,
        dtype=dtype,
        start_method=start_method,
        transport=transport,
    )

"""CIFAR-10: 60,000 32×32 colour photos in 10 classes, 50,000 for training and 10,000 for testing.

Read from the "python version" Krizhevsky published: six pickled batches
(``data_batch_1`` … ``data_batch_5`` and ``test_batch``), each a dict whose ``b"data"``
is a uint8 array of shape (N, 3072), one row per image with all red pixels first, then
green, then blue, and whose ``b"labels"`` is a list of N class indices 0–9. They are read
either from an extracted ``cifar-10-batches-py/`` folder or straight out of
``cifar-10-python.tar.gz`` (no extraction needed), under ``<data root>/cifar-10`` (see
:mod:`minibp.data.files`); the archive (about 163 MB) is downloaded when neither is there.

The batches are pickles, which can run code when loaded; only the expected member names
are unpickled, and by an unpickler that builds nothing but NumPy arrays, bytes, lists and
dicts, so a tampered file fails to load instead of running anything.
"""

from __future__ import annotations

import gzip
import importlib
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .base import Dataset
from .files import PathLike, Source, corrupt, float_dtype, locate, require

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

CIFAR10 = Source(
    title="CIFAR-10",
    subdir="cifar-10",
    files=(ARCHIVE,),
    base_url="https://www.cs.toronto.edu/~kriz/",
    sha256={ARCHIVE: "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
    instructions=f"Either the archive itself or its extracted folder {FOLDER}/ (with data_batch_1..5 and "
    "test_batch) will do; see https://www.cs.toronto.edu/~kriz/cifar.html.",
)

# the only globals a CIFAR batch pickle may name: what NumPy arrays and Python 3 bytes are rebuilt from
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR batch")
        if module.startswith("numpy.core."):  # pickles from NumPy 1; NumPy 2 moved it to numpy._core
            try:
                importlib.import_module("numpy._core")
                module = "numpy._core." + module.removeprefix("numpy.core.")
            except ImportError:
                pass
        return super().find_class(module, name)


def _read_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch's images ``(N, 3072)`` uint8 and labels ``(N,)`` from its pickled bytes."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # a damaged pickle can fail in almost any way
        raise corrupt(where, f"is not a readable pickle ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict):
        raise corrupt(where, f"holds a {type(batch).__name__}, expected a dict with b'data' and b'labels'")
    missing = [key for key in (b"data", b"labels") if key not in batch]
    if missing:
        raise corrupt(where, f"lacks the key(s) {', '.join(map(repr, missing))}")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise corrupt(where, f"b'data' is {type(data).__name__} of shape {shape}, expected uint8 (N, 3072)")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise corrupt(where, f"b'labels' is not a list of integers ({err})") from err
    if y.ndim != 1 or y.shape[0] != data.shape[0]:
        raise corrupt(where, f"has {data.shape[0]} images but labels of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise corrupt(where, f"holds labels from {int(y.min())} to {int(y.max())}, expected 0-9")
    return data, y


def _batches_from_folder(paths: dict[str, Path]) -> dict[str, bytes]:
    raw = {}
    for name, path in paths.items():
        try:
            raw[name] = path.read_bytes()
        except OSError as err:
            raise corrupt(path, f"cannot be read ({err})") from err
    return raw


def _batches_from_archive(archive: Path) -> dict[str, bytes]:
    """The six batch files' bytes, read in one pass through the compressed archive."""
    wanted = {f"{FOLDER}/{name}": name for name in BATCHES}
    raw: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None or not member.isfile():
                    continue
                f = tar.extractfile(member)
                if f is None:
                    continue
                raw[name] = f.read()
                if len(raw) == len(BATCHES):
                    break
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
        raise corrupt(archive, f"is not a readable .tar.gz ({type(err).__name__}: {err}); it may be truncated") from err
    missing = [f"{FOLDER}/{name}" for name in BATCHES if name not in raw]
    if missing:
        raise corrupt(archive, f"lacks the member(s) {', '.join(missing)}")
    return raw


def _stack(parts: list[tuple[np.ndarray, np.ndarray]], dtype: np.dtype, flatten: bool) -> tuple[np.ndarray, ...]:
    n = sum(d.shape[0] for d, _ in parts)
    x = np.empty((n, 3072), dtype=dtype)
    i = 0
    for d, _ in parts:
        x[i : i + d.shape[0]] = d
        i += d.shape[0]
    x /= 255
    y = np.concatenate([labels for _, labels in parts])
    return (x if flatten else x.reshape(n, 3, 32, 32)), y


def load_cifar10(
    data_dir: PathLike | None = None, *, flatten: bool = True, dtype: str = "float32", download: bool = True
) -> Dataset:
    """CIFAR-10 as a :class:`Dataset`: ``(N, 3072)`` inputs in [0, 1], or ``(N, 3, 32, 32)`` with ``flatten=False``.

    Looks under ``data_dir`` (else ``$MINIBP_DATA``, else ``~/.cache/minibp``) in ``cifar-10/``
    for ``cifar-10-batches-py/`` and then for ``cifar-10-python.tar.gz``, downloading the
    archive when neither is there unless ``download=False``. Float32 takes about 740 MB.
    Raises :class:`~minibp.data.files.DataNotFound` or :class:`~minibp.data.files.CorruptDataFile`.
    """
    dt = float_dtype(dtype)
    folder = locate(CIFAR10.subdir, [f"{FOLDER}/{name}" for name in BATCHES], data_dir)
    extracted = {name: folder[f"{FOLDER}/{name}"] for name in BATCHES}
    if all(path is not None for path in extracted.values()):
        paths = {name: Path(str(path)) for name, path in extracted.items()}
        raw = _batches_from_folder(paths)
        where = {name: str(path) for name, path in paths.items()}
    else:
        archive = require(CIFAR10, data_dir, download=download)[ARCHIVE]
        raw = _batches_from_archive(archive)
        where = {name: f"{archive} (member {FOLDER}/{name})" for name in BATCHES}
    parts = {name: _read_batch(raw[name], where[name]) for name in BATCHES}
    x_tr, y_tr = _stack([parts[name] for name in TRAIN_BATCHES], dt, flatten)
    x_te, y_te = _stack([parts[TEST_BATCH]], dt, flatten)
    return Dataset("cifar10", x_tr, y_tr, x_te, y_te, n_classes=10, image_shape=(3, 32, 32))

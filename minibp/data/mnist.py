"""MNIST and Fashion-MNIST: 70,000 28×28 grey images in 10 classes, 60,000 for training and 10,000 for testing.

Both come as the same four gzipped IDX files (``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz``), looked for in ``<data root>/mnist`` and
``<data root>/fashion-mnist`` (see :mod:`minibp.data.files`) and downloaded, with
their SHA-256 sums checked, when missing. A file already decompressed (the same name
without ``.gz``, as ``gunzip`` leaves it) is read as well. Pixels (0–255) are scaled to [0, 1]; the
published train/test split is kept as it is. MNIST is the handwritten digits of LeCun
et al.; Fashion-MNIST (Xiao et al. 2017) is photos of clothes, a drop-in replacement
that is harder to classify.

An IDX file is a big-endian header (two zero bytes, a type code, the number of
dimensions, then each dimension as a 4-byte unsigned integer) followed by the values;
only unsigned bytes (type code 0x08) occur in these datasets.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .base import Dataset
from .files import PathLike, Source, corrupt, float_dtype, require

_IMAGES = ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")
_LABELS = ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FILES = (_IMAGES[0], _LABELS[0], _IMAGES[1], _LABELS[1])

MNIST = Source(
    title="MNIST",
    subdir="mnist",
    files=FILES,
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    sha256={
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    gunzipped_ok=True,
)

FASHION_MNIST = Source(
    title="Fashion-MNIST",
    subdir="fashion-mnist",
    files=FILES,
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    sha256={
        "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    },
    instructions="On Debian/Ubuntu, `apt install dataset-fashion-mnist` installs them where minibp finds them.",
    gunzipped_ok=True,
)

_UBYTE = 0x08


def read_idx(path: PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzipped if its name ends in ``.gz``), as unsigned bytes.

    Raises :class:`~minibp.data.files.CorruptDataFile` naming the file if it is truncated,
    not gzip, has a wrong magic number or a payload that does not match its header.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise corrupt(path, f"cannot be decompressed ({type(err).__name__}: {err}); it is probably truncated") from err
    except OSError as err:
        raise corrupt(path, f"cannot be read ({err})") from err
    if len(raw) < 4:
        raise corrupt(path, f"is {len(raw)} bytes long, too short for an IDX header")
    zero, code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or ndim == 0:
        raise corrupt(path, f"does not start with an IDX magic number (got 0x{raw[:4].hex()})")
    if code != _UBYTE:
        raise corrupt(path, f"holds IDX type code 0x{code:02x}; only unsigned bytes (0x08) are expected here")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise corrupt(path, f"ends inside its IDX header ({len(raw)} bytes, {ndim} dimensions announced)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise corrupt(
            path, f"header announces shape {dims} ({expected} bytes) but {len(raw) - header} bytes of data follow"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _split(images: Path, labels: Path, dtype: np.dtype, flatten: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise corrupt(images, f"holds an array of shape {x.shape}, expected (N, 28, 28) images")
    if y.ndim != 1:
        raise corrupt(labels, f"holds an array of shape {y.shape}, expected (N,) labels")
    if x.shape[0] != y.shape[0]:
        raise corrupt(labels, f"has {y.shape[0]} labels but {images.name} has {x.shape[0]} images")
    if y.size and int(y.max()) > 9:
        raise corrupt(labels, f"holds label {int(y.max())}, expected classes 0-9")
    out = x.astype(dtype)
    out /= 255
    shape = (-1, 28 * 28) if flatten else (-1, 1, 28, 28)
    return out.reshape(shape), y.astype(np.int64)


def _load(source: Source, data_dir: PathLike | None, flatten: bool, dtype: str | np.dtype, download: bool) -> Dataset:
    dt = float_dtype(dtype)
    paths = require(source, data_dir, download=download)
    x_tr, y_tr = _split(paths[_IMAGES[0]], paths[_LABELS[0]], dt, flatten)
    x_te, y_te = _split(paths[_IMAGES[1]], paths[_LABELS[1]], dt, flatten)
    return Dataset(source.subdir, x_tr, y_tr, x_te, y_te, n_classes=10, image_shape=(1, 28, 28))


def load_mnist(
    data_dir: PathLike | None = None, *, flatten: bool = True, dtype: str = "float32", download: bool = True
) -> Dataset:
    """MNIST as a :class:`Dataset`: ``(N, 784)`` inputs, or ``(N, 1, 28, 28)`` with ``flatten=False``.

    Files are looked for under ``data_dir`` (else ``$MINIBP_DATA``, else ``~/.cache/minibp``)
    in ``mnist/``, and downloaded there (about 11 MB) when missing unless ``download=False``.
    Raises :class:`~minibp.data.files.DataNotFound` or :class:`~minibp.data.files.CorruptDataFile`.
    """
    return _load(MNIST, data_dir, flatten, dtype, download)


def load_fashion_mnist(
    data_dir: PathLike | None = None, *, flatten: bool = True, dtype: str = "float32", download: bool = True
) -> Dataset:
    """Fashion-MNIST as a :class:`Dataset`, shaped like :func:`load_mnist`'s.

    Files are looked for in ``fashion-mnist/`` under the data roots and in
    ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``), and downloaded
    (about 30 MB) when missing unless ``download=False``.
    """
    return _load(FASHION_MNIST, data_dir, flatten, dtype, download)

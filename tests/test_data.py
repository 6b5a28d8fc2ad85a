"""The dataset readers, file search, downloads and error messages, on tiny files written in each format
(and the fixed split of the digits bundled with scikit-learn).

No test touches the network: ``minibp.data.files.urlopen`` is replaced for every test,
by default with one that fails as an offline machine does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from minibp.data import (
    DATASETS,
    CorruptDataFile,
    DataNotFound,
    base,
    cifar,
    files,
    imagenet_small,
    load_cifar10,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_imagenet32,
    load_imagenet64,
    load_mnist,
    load_teacher,
    mnist,
)
from minibp.data.base import Dataset, epoch_order
from minibp.data.teacher import teacher_network

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh HOME, no $MINIBP_DATA, no system folders, and a network that is down."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(files.ENV_VAR, raising=False)
    monkeypatch.setattr(files, "SYSTEM_DIRS", {})

    def offline(request: object, timeout: float | None = None) -> object:
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(files, "urlopen", offline)
    return home


class FakeResponse:
    """What ``urlopen`` returns, serving ``payload`` a few bytes per read, optionally dying midway."""

    def __init__(self, payload: bytes, fail_after: int | None = None) -> None:
        self.stream = io.BytesIO(payload)
        self.headers = {"Content-Length": str(len(payload))}
        self.fail_after = fail_after

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.stream.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset (test)")
        return self.stream.read(min(n, 1000) if n > 0 else 1000)

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def serve(monkeypatch: pytest.MonkeyPatch, payloads: dict[str, bytes], fail_after: int | None = None) -> list[str]:
    """Make ``files.urlopen`` serve ``payloads`` by URL; returns the list of URLs requested."""
    requested: list[str] = []

    def fake(request: object, timeout: float | None = None) -> FakeResponse:
        url = request.full_url  # type: ignore[attr-defined]
        requested.append(url)
        if url not in payloads:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)  # type: ignore[arg-type]
        return FakeResponse(payloads[url], fail_after)

    monkeypatch.setattr(files, "urlopen", fake)
    return requested


def idx(arr: np.ndarray, code: int = 0x08, magic_zero: bytes = b"\0\0") -> bytes:
    """``arr`` (uint8) in IDX format."""
    header = magic_zero + bytes([code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def mnist_arrays(n_train: int = 6, n_test: int = 4, label: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n_train)
    out = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    out["train-images-idx3-ubyte.gz"][0, 0, :3] = [0, 51, 255]
    if label is not None:
        out["train-labels-idx1-ubyte.gz"][:] = label
    return out


def write_mnist(folder: Path, arrays: dict[str, np.ndarray] | None = None, **kw: int) -> dict[str, np.ndarray]:
    arrays = arrays if arrays is not None else mnist_arrays(**kw)
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx(arr)))
    return arrays


def cifar_batches(n: int = 3) -> dict[str, dict[bytes, object]]:
    rng = np.random.default_rng(1)
    batches = {}
    for k, name in enumerate(cifar.BATCHES):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        data[0, 0], data[0, 1024], data[0, 2048] = 255, 51, 0  # first pixel: red, green, blue planes
        batches[name] = {b"batch_label": name.encode(), b"data": data, b"labels": [(k + i) % 10 for i in range(n)]}
    return batches


def write_cifar_folder(root: Path, batches: dict[str, dict[bytes, object]]) -> Path:
    folder = root / "cifar-10" / cifar.FOLDER
    folder.mkdir(parents=True)
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def cifar_tar_bytes(batches: dict[str, object], raw: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, batch in batches.items():
            data = (raw or {}).get(name) or pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"{cifar.FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_imagenet(folder: Path, size: int = 32, n_files: int = 3, n: int = 4) -> dict[str, dict[str, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size)
    written = {}
    for name in [*imagenet_small.TRAIN_FILES[:n_files], imagenet_small.VAL_FILE]:
        data = rng.integers(0, 256, (n, 3 * size * size), dtype=np.uint8)
        data[0, 0], data[0, size * size], data[0, 2 * size * size] = 255, 51, 0
        labels = rng.integers(1, 1001, n)
        labels[0] = 1000
        arrays = {"data": data, "labels": labels, "mean": data.mean(axis=0)}
        np.savez(folder / name, **arrays)
        written[name] = arrays
    return written


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------------- MNIST


def test_mnist_reads_idx_scales_pixels_and_keeps_labels(tmp_path: Path) -> None:
    arrays = write_mnist(tmp_path / "mnist")
    data = load_mnist(tmp_path, download=False)
    assert data.name == "mnist" and data.n_classes == 10 and data.image_shape == (1, 28, 28)
    assert data.x_train.shape == (6, 784) and data.x_test.shape == (4, 784) and data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_train[0, :3], [0.0, 0.2, 1.0], rtol=1e-6)
    np.testing.assert_allclose(data.x_test, arrays["t10k-images-idx3-ubyte.gz"].reshape(4, -1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.y_train, arrays["train-labels-idx1-ubyte.gz"])
    assert data.y_train.dtype == np.int64

    images = load_mnist(tmp_path, flatten=False, dtype="float64", download=False)
    assert images.x_train.shape == (6, 1, 28, 28) and images.x_train.dtype == np.float64
    assert images.image_shape == (1, 28, 28)
    np.testing.assert_allclose(images.x_train.reshape(6, -1), data.x_train, rtol=1e-6)


def test_fashion_mnist_uses_its_own_folder(tmp_path: Path) -> None:
    write_mnist(tmp_path / "fashion-mnist", label=7)
    with pytest.raises(DataNotFound):
        load_mnist(tmp_path, download=False)
    data = load_fashion_mnist(tmp_path, download=False)
    assert data.name == "fashion-mnist" and set(data.y_train.tolist()) == {7}


def test_integer_dtype_is_refused(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist")
    with pytest.raises(ValueError, match="floating"):
        load_mnist(tmp_path, dtype="int32", download=False)


# ----------------------------------------------------------------------------- where files are found


def test_search_order_data_dir_then_env_then_home_then_system(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given, env, system = tmp_path / "given", tmp_path / "env", tmp_path / "system"
    write_mnist(given / "fashion-mnist", label=1)
    write_mnist(env / "fashion-mnist", label=2)
    write_mnist(isolated / ".cache" / "minibp" / "fashion-mnist", label=3)
    write_mnist(system, label=4)
    monkeypatch.setenv("MINIBP_DATA", str(env))
    monkeypatch.setattr(files, "SYSTEM_DIRS", {"fashion-mnist": (system,)})

    assert files.search_dirs("fashion-mnist", given) == [
        given / "fashion-mnist",
        env / "fashion-mnist",
        isolated / ".cache" / "minibp" / "fashion-mnist",
        system,
    ]

    def label_used(data_dir: Path | None) -> int:
        return int(load_fashion_mnist(data_dir, download=False).y_train[0])

    assert label_used(given) == 1
    assert label_used(None) == 2
    monkeypatch.delenv("MINIBP_DATA")
    assert files.data_root() == isolated / ".cache" / "minibp"
    assert label_used(None) == 3
    for f in (isolated / ".cache" / "minibp" / "fashion-mnist").iterdir():
        f.unlink()
    assert label_used(None) == 4


def test_each_file_comes_from_the_first_folder_that_has_it(tmp_path: Path, isolated: Path) -> None:
    arrays = write_mnist(tmp_path / "given" / "mnist")
    (tmp_path / "given" / "mnist" / "t10k-labels-idx1-ubyte.gz").rename(tmp_path / "moved.gz")
    home_mnist = isolated / ".cache" / "minibp" / "mnist"
    home_mnist.mkdir(parents=True)
    (tmp_path / "moved.gz").rename(home_mnist / "t10k-labels-idx1-ubyte.gz")

    found = files.locate("mnist", mnist.FILES, tmp_path / "given")
    assert found["train-images-idx3-ubyte.gz"] == tmp_path / "given" / "mnist" / "train-images-idx3-ubyte.gz"
    assert found["t10k-labels-idx1-ubyte.gz"] == home_mnist / "t10k-labels-idx1-ubyte.gz"
    data = load_mnist(tmp_path / "given", download=False)
    np.testing.assert_array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte.gz"])


def test_decompressed_idx_files_are_read_too(tmp_path: Path, isolated: Path) -> None:
    # gunzip leaves train-images-idx3-ubyte behind: the loader reads it, with no download
    arrays = write_mnist(tmp_path / "mnist")
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        gz = tmp_path / "mnist" / name
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    found = files.locate("mnist", mnist.FILES, tmp_path, gunzipped_ok=True)
    assert found["train-images-idx3-ubyte.gz"] == tmp_path / "mnist" / "train-images-idx3-ubyte"
    assert found["train-labels-idx1-ubyte.gz"] == tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    assert files.locate("mnist", mnist.FILES, tmp_path)["train-images-idx3-ubyte.gz"] is None
    data = load_mnist(tmp_path, download=False)
    np.testing.assert_allclose(data.x_train, arrays["train-images-idx3-ubyte.gz"].reshape(6, -1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte.gz"])


# ----------------------------------------------------------------------------- downloads


def test_missing_files_without_download_say_what_to_put_where(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataNotFound) as err:
        load_mnist(tmp_path, download=False)
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert "t10k-images-idx3-ubyte.gz" in message and "train-images-idx3-ubyte.gz" not in message.splitlines()[0]
    assert f"{tmp_path / 'mnist'}/" in message
    assert "--data-dir" in message and "MINIBP_DATA" in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz" in message
    assert "download=False" in message


def test_offline_download_fails_with_the_manual_instructions(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as err:
        load_fashion_mnist(tmp_path)
    message = str(err.value)
    for name in mnist.FILES:
        assert name in message
        assert f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}" in message
    assert str(tmp_path / "fashion-mnist") in message and "unreachable" in message
    assert leftovers(tmp_path / "fashion-mnist") == []


def gz_payloads(source: files.Source, arrays: dict[str, np.ndarray]) -> tuple[dict[str, bytes], dict[str, str]]:
    blobs = {name: gzip.compress(idx(arr)) for name, arr in arrays.items()}
    return {source.url(n): b for n, b in blobs.items()}, {n: hashlib.sha256(b).hexdigest() for n, b in blobs.items()}


def test_download_verifies_and_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = mnist_arrays(n_train=5, n_test=3)
    payloads, sums = gz_payloads(mnist.MNIST, arrays)
    monkeypatch.setattr(mnist, "MNIST", replace(mnist.MNIST, sha256=sums))
    requested = serve(monkeypatch, payloads)
    data = load_mnist(tmp_path)
    assert sorted(requested) == sorted(payloads)
    assert leftovers(tmp_path / "mnist") == sorted(mnist.FILES)
    np.testing.assert_array_equal(data.y_train, arrays["train-labels-idx1-ubyte.gz"])
    assert data.n_train == 5 and data.n_test == 3
    load_mnist(tmp_path)  # everything is on disk now: no second download
    assert len(requested) == len(payloads)


def test_wrong_checksum_download_is_deleted_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payloads, sums = gz_payloads(mnist.MNIST, mnist_arrays())
    sums["train-images-idx3-ubyte.gz"] = "0" * 64
    monkeypatch.setattr(mnist, "MNIST", replace(mnist.MNIST, sha256=sums))
    serve(monkeypatch, payloads)
    with pytest.raises(CorruptDataFile) as err:
        load_mnist(tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and "0" * 64 in message and "deleted" in message
    assert "train-images-idx3-ubyte.gz" not in leftovers(tmp_path / "mnist")
    assert not [n for n in leftovers(tmp_path / "mnist") if n.endswith(".part")]


def test_interrupted_download_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payloads, sums = gz_payloads(mnist.MNIST, mnist_arrays())
    monkeypatch.setattr(mnist, "MNIST", replace(mnist.MNIST, sha256=sums))
    serve(monkeypatch, payloads, fail_after=2000)
    with pytest.raises(DataNotFound, match="connection reset") as err:
        load_mnist(tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(err.value)
    assert [n for n in leftovers(tmp_path / "mnist") if "images" in n or n.endswith(".part")] == []


def test_fetch_refuses_a_mismatch_and_accepts_a_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = os.urandom(3000)
    serve(monkeypatch, {"https://example.invalid/f": blob})
    dest = tmp_path / "sub" / "f"
    with pytest.raises(CorruptDataFile):
        files.fetch("https://example.invalid/f", dest, hashlib.sha256(b"other").hexdigest())
    assert leftovers(dest.parent) == []
    assert files.fetch("https://example.invalid/f", dest, hashlib.sha256(blob).hexdigest()) == dest
    assert dest.read_bytes() == blob and leftovers(dest.parent) == ["f"]


def test_recorded_checksums_cover_every_downloadable_file() -> None:
    for source in (mnist.MNIST, mnist.FASHION_MNIST, cifar.CIFAR10):
        assert set(source.sha256) == set(source.files)
        assert all(len(s) == 64 and int(s, 16) >= 0 for s in source.sha256.values())


# ----------------------------------------------------------------------------- corrupt IDX files


def corrupt_case(folder: Path, case: str) -> str:
    """Damage one file of a tiny MNIST in ``folder``; returns the damaged file's name."""
    arrays = write_mnist(folder)
    name = "train-images-idx3-ubyte.gz"
    path = folder / name
    good = idx(arrays[name])
    if case == "truncated gzip":
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
    elif case == "not gzip":
        path.write_bytes(b"<html>404 not found</html>")
    elif case == "wrong magic":
        path.write_bytes(gzip.compress(b"\x01\x02" + good[2:]))
    elif case == "wrong type code":
        path.write_bytes(gzip.compress(idx(arrays[name], code=0x0D)))
    elif case == "short payload":
        path.write_bytes(gzip.compress(good[:-100]))
    elif case == "trailing bytes":
        path.write_bytes(gzip.compress(good + b"\0" * 10))
    elif case == "label count":
        name = "train-labels-idx1-ubyte.gz"
        (folder / name).write_bytes(gzip.compress(idx(arrays[name][:-1])))
    return name


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("truncated gzip", "decompress"),
        ("not gzip", "decompress"),
        ("wrong magic", "magic"),
        ("wrong type code", "0x0d"),
        ("short payload", "bytes of data"),
        ("trailing bytes", "4714 bytes of data"),
        ("label count", "5 labels but train-images-idx3-ubyte.gz has 6 images"),
    ],
)
def test_corrupt_idx_files_are_named(tmp_path: Path, case: str, says: str) -> None:
    name = corrupt_case(tmp_path / "mnist", case)
    with pytest.raises(CorruptDataFile) as err:
        load_mnist(tmp_path, download=False)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert str(tmp_path / "mnist" / name) in message and says in message and "delete" in message


# ----------------------------------------------------------------------------- CIFAR-10


def check_cifar(data: object, batches: dict[str, dict[bytes, object]], flatten: bool) -> None:
    assert data.name == "cifar10" and data.n_classes == 10 and data.image_shape == (3, 32, 32)
    assert data.n_train == 15 and data.n_test == 3
    if flatten:
        assert data.x_train.shape == (15, 3072)
        x = data.x_train.reshape(15, 3, 32, 32)
    else:
        assert data.x_train.shape == (15, 3, 32, 32)
        x = data.x_train
    np.testing.assert_allclose(x[0, :, 0, 0], [1.0, 0.2, 0.0], rtol=1e-6)  # R, G, B planes
    np.testing.assert_allclose(x[3].reshape(-1), batches["data_batch_2"][b"data"][0] / 255, rtol=1e-6)
    expected = np.concatenate([batches[n][b"labels"] for n in cifar.TRAIN_BATCHES])
    np.testing.assert_array_equal(data.y_train, expected)
    np.testing.assert_array_equal(data.y_test, batches["test_batch"][b"labels"])


def test_cifar_from_an_extracted_folder(tmp_path: Path) -> None:
    batches = cifar_batches()
    write_cifar_folder(tmp_path, batches)
    check_cifar(load_cifar10(tmp_path, flatten=False, download=False), batches, flatten=False)
    check_cifar(load_cifar10(tmp_path, flatten=True, download=False), batches, flatten=True)


def test_cifar_from_the_archive_and_its_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batches = cifar_batches()
    blob = cifar_tar_bytes(batches)
    sums = {cifar.ARCHIVE: hashlib.sha256(blob).hexdigest()}
    monkeypatch.setattr(cifar, "CIFAR10", replace(cifar.CIFAR10, sha256=sums))
    requested = serve(monkeypatch, {"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz": blob})
    check_cifar(load_cifar10(tmp_path, flatten=False), batches, flatten=False)
    assert len(requested) == 1 and leftovers(tmp_path / "cifar-10") == [cifar.ARCHIVE]


def test_cifar_missing_message(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as err:
        load_cifar10(tmp_path, download=False)
    message = str(err.value)
    assert cifar.ARCHIVE in message and str(tmp_path / "cifar-10") in message and cifar.FOLDER in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (os.getpid, ())


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("missing labels", "b'labels'"),
        ("label count", "3 images but labels of shape (2,)"),
        ("not a pickle", "not a readable pickle"),
        ("foreign object", "refusing to load posix.getpid"),
    ],
)
def test_corrupt_cifar_batches_are_named(tmp_path: Path, case: str, says: str) -> None:
    batches = cifar_batches()
    bad = batches["data_batch_3"]
    if case == "missing labels":
        del bad[b"labels"]
    elif case == "label count":
        bad[b"labels"] = [1, 2]
    elif case == "foreign object":
        bad[b"data"] = _Evil()
    folder = write_cifar_folder(tmp_path, batches)
    if case == "not a pickle":
        (folder / "data_batch_3").write_bytes(b"\x80\x02}q\x00(U")
    with pytest.raises(CorruptDataFile) as err:
        load_cifar10(tmp_path, download=False)
    assert str(folder / "data_batch_3") in str(err.value) and says in str(err.value)


@pytest.mark.parametrize("case", ["member missing", "truncated", "bad member"])
def test_corrupt_cifar_archives_are_named(tmp_path: Path, case: str) -> None:
    batches = cifar_batches()
    if case == "member missing":
        del batches["test_batch"]
    raw = {"data_batch_5": b"garbage"} if case == "bad member" else None
    blob = cifar_tar_bytes(batches, raw)
    if case == "truncated":
        blob = blob[: len(blob) * 2 // 3]
    (tmp_path / "cifar-10").mkdir()
    (tmp_path / "cifar-10" / cifar.ARCHIVE).write_bytes(blob)
    with pytest.raises(CorruptDataFile) as err:
        load_cifar10(tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "cifar-10" / cifar.ARCHIVE) in message
    says = {"member missing": "test_batch", "truncated": "tar.gz", "bad member": "data_batch_5"}[case]
    assert says in message


# ----------------------------------------------------------------------------- downsampled ImageNet


def test_imagenet32_reads_npz_with_zero_based_labels(tmp_path: Path) -> None:
    written = write_imagenet(tmp_path / "imagenet32", n_files=3)
    data = load_imagenet32(tmp_path, flatten=False, n_train_files=3, download=False)
    assert data.name == "imagenet32" and data.n_classes == 1000 and data.image_shape == (3, 32, 32)
    assert data.x_train.shape == (12, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    np.testing.assert_allclose(data.x_train[0, :, 0, 0], [1.0, 0.2, 0.0], rtol=1e-6)
    second = written["train_data_batch_2.npz"]
    np.testing.assert_allclose(data.x_train[4:8].reshape(4, -1), second["data"] / 255, rtol=1e-6)
    train_labels = np.concatenate([written[n]["labels"] for n in imagenet_small.TRAIN_FILES[:3]])
    np.testing.assert_array_equal(data.y_train, train_labels - 1)
    np.testing.assert_array_equal(data.y_test, written["val_data.npz"]["labels"] - 1)
    assert data.y_train[0] == 999 and data.y_train.min() >= 0


def test_imagenet_reads_only_the_requested_training_files(tmp_path: Path) -> None:
    write_imagenet(tmp_path / "imagenet32", n_files=2)
    data = load_imagenet32(tmp_path, n_train_files=1, dtype="float16", download=False)
    assert data.x_train.shape == (4, 3072) and data.x_train.dtype == np.float16
    with pytest.raises(DataNotFound, match="train_data_batch_3.npz"):
        load_imagenet32(tmp_path, n_train_files=3, download=False)
    with pytest.raises(ValueError, match="n_train_files"):
        load_imagenet32(tmp_path, n_train_files=11)


def test_imagenet64_shape(tmp_path: Path) -> None:
    write_imagenet(tmp_path / "imagenet64", size=64, n_files=1, n=2)
    data = load_imagenet64(tmp_path, flatten=False, n_train_files=1)
    assert data.x_train.shape == (2, 3, 64, 64) and data.image_shape == (3, 64, 64)
    np.testing.assert_allclose(data.x_test[0, :, 0, 0], [1.0, 0.2, 0.0], rtol=1e-3)


def test_imagenet_missing_message_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as err:
        load_imagenet64(tmp_path)  # download=True, but there is nothing public to download
    message = str(err.value)
    assert "image-net.org" in message and "Downsampled ImageNet 64x64 (npz format)" in message
    assert "train_data_batch_10.npz" in message and "val_data.npz" in message
    assert str(tmp_path / "imagenet64") in message and "--data-dir" in message


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("missing labels", "lacks the key(s) labels"),
        ("not a zip", "not a readable .npz"),
        ("label count", "4 images but 3 labels"),
        ("zero-based labels", "expected 1-1000"),
        ("wrong size", "expected uint8 (N, 3072)"),
    ],
)
def test_corrupt_imagenet_files_are_named(tmp_path: Path, case: str, says: str) -> None:
    folder = tmp_path / "imagenet32"
    written = write_imagenet(folder, n_files=1)
    path = folder / "val_data.npz"
    arrays = dict(written["val_data.npz"])
    if case == "missing labels":
        del arrays["labels"]
    elif case == "label count":
        arrays["labels"] = arrays["labels"][:3]
    elif case == "zero-based labels":
        arrays["labels"] = arrays["labels"] - 1
        arrays["labels"][1] = 0
    elif case == "wrong size":
        arrays["data"] = arrays["data"][:, :100]
    np.savez(path, **arrays)
    if case == "not a zip":
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptDataFile) as err:
        load_imagenet32(tmp_path, n_train_files=1, download=False)
    assert str(path) in str(err.value) and says in str(err.value)


# ----------------------------------------------------------------------------- digits (scikit-learn's, bundled)


def test_digits_split_is_fixed_and_clean(digits):
    again = load_digits()
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    np.testing.assert_array_equal(digits.y_test, again.y_test)
    assert 0 <= digits.x_train.min() and digits.x_train.max() <= 1
    assert set(np.unique(digits.y_train)) == set(range(10))


# ----------------------------------------------------------------------------- teacher


def test_teacher_is_deterministic_and_labelled_by_its_network() -> None:
    data = load_teacher(n_train=300, n_test=100, n_features=6, n_classes=4, hidden=8, seed=3)
    again = load_teacher(n_train=300, n_test=100, n_features=6, n_classes=4, hidden=8, seed=3)
    other = load_teacher(n_train=300, n_test=100, n_features=6, n_classes=4, hidden=8, seed=4)
    assert data.x_train.shape == (300, 6) and data.x_test.shape == (100, 6) and data.image_shape is None
    np.testing.assert_array_equal(data.x_train, again.x_train)
    np.testing.assert_array_equal(data.y_train, again.y_train)
    assert not np.array_equal(data.x_train, other.x_train)
    w1, b1, w2, b2 = teacher_network(3, 6, 4, 8)
    x = data.x_train.astype(np.float64)
    logits = np.tanh(x @ w1.T + b1) @ w2.T + b2
    margin = np.sort(logits, axis=1)[:, -1] - np.sort(logits, axis=1)[:, -2]
    sure = margin > 1e-4  # float32 rounding of x may flip only near-ties
    np.testing.assert_array_equal(logits.argmax(axis=1)[sure], data.y_train[sure])
    assert np.bincount(data.y_train, minlength=4).min() >= 30  # centred outputs: no class starves


def test_teacher_streams_are_independent_and_noise_flips_some_labels() -> None:
    small = load_teacher(n_train=50, n_test=80, seed=1)
    large = load_teacher(n_train=500, n_test=80, seed=1)
    np.testing.assert_array_equal(small.x_test, large.x_test)
    np.testing.assert_array_equal(small.x_train, large.x_train[:50])
    noisy = load_teacher(n_train=500, n_test=80, seed=1, noise=0.5)
    np.testing.assert_array_equal(noisy.x_train, large.x_train)
    flipped = float(np.mean(noisy.y_train != large.y_train))
    assert 0.02 < flipped < 0.8
    with pytest.raises(ValueError, match="n_classes"):
        load_teacher(n_classes=1)


# ----------------------------------------------------------------------------- registry


def test_registry_calls_every_loader_alike(tmp_path: Path) -> None:
    assert set(DATASETS) >= {"digits", "mnist", "fashion-mnist", "cifar10", "imagenet32", "imagenet64", "teacher"}
    write_mnist(tmp_path / "fashion-mnist", label=5)
    data = load_dataset("fashion_mnist", data_dir=tmp_path, flatten=False, download=False)
    assert data.x_train.shape == (6, 1, 28, 28) and set(data.y_train.tolist()) == {5}
    digits = load_dataset("digits", data_dir=tmp_path, flatten=False, dtype="float64", download=False)
    assert digits.x_train.shape[1:] == (1, 8, 8) and digits.x_train.dtype == np.float64
    teacher = load_dataset("Teacher", data_dir=tmp_path, flatten=False, download=False)
    assert teacher.n_classes == 5
    for name in ("mnist", "cifar10", "imagenet32", "imagenet64"):
        with pytest.raises(DataNotFound):
            load_dataset(name, data_dir=tmp_path / "empty", flatten=False, download=False)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("svhn")


# ----------------------------------------------------------------------------- the real Fashion-MNIST


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_system_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "SYSTEM_DIRS", {"fashion-mnist": (REAL_FASHION,)})
    for name in mnist.FILES:
        assert files.sha256_of(REAL_FASHION / name) == mnist.FASHION_MNIST.sha256[name]
    data = load_fashion_mnist(download=False)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    np.testing.assert_array_equal(np.bincount(data.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(data.y_test), [1000] * 10)
    np.testing.assert_array_equal(data.y_train[:5], [9, 0, 0, 3, 0])  # ankle boot, T-shirt, T-shirt, dress, T-shirt


def test_non_finite_inputs_are_counted_across_the_checked_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    # the check reads the inputs a slice of samples at a time; a bad value in a later slice
    # and several in one slice are all counted, and the first is named by its full index
    monkeypatch.setattr(base, "CHECK_BYTES", 3 * 4 * 4)  # 3 samples of 4 float32 per slice
    x = np.zeros((10, 4), dtype=np.float32)
    y = np.zeros(10, dtype=np.int64)
    x[4, 1] = np.inf
    x[5, 0] = x[9, 3] = np.nan
    with pytest.raises(ValueError, match=r"contain 3 NaN/inf value\(s\), the first at index \(4, 1\)"):
        base.check_arrays(x, y, "toy")
    base.check_arrays(np.zeros((10, 4), np.uint8), y, "pixels")  # integer inputs pass without a mask


def _images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, 6, 6)).astype(np.float32) + 0.5  # nonzero everywhere: padding shows as 0
    return Dataset("toy-images", x, np.arange(n) % 3, x[:8], np.arange(8) % 3, n_classes=3)


def test_crop_flip_is_a_window_of_the_zero_padded_image_flipped_half_the_time():
    from minibp.data.augment import CropFlip

    data = _images()
    aug = CropFlip(pad=2)
    idx = np.arange(data.n_train)
    out = aug(data.x_train, idx, data.n_train, seed=3, epoch=1)
    offsets, flips = aug.draws(data.n_train, seed=3, epoch=1)
    padded = np.pad(data.x_train, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in idx:
        r, c = offsets[i]
        window = padded[i, :, r : r + 6, c : c + 6]
        np.testing.assert_array_equal(out[i], window[:, :, ::-1] if flips[i] else window)
    assert 0 < flips.mean() < 1 and len({tuple(o) for o in offsets}) > 5  # random, both ways
    assert (out == 0).any()  # some crops reach into the zero padding


def test_augmentation_depends_on_seed_epoch_and_index_only_and_never_on_evaluation():
    """The same image gets the same crop whatever the batch size or the step a resumed epoch starts
    at; another epoch or seed gets another; test batches and the probe are never augmented."""
    import dataclasses

    from minibp.data.augment import CropFlip

    data = dataclasses.replace(_images(), augment=CropFlip())
    order = epoch_order(data.n_train, 5, 2)

    def by_index(batch_size, start=0, epoch=2, seed=5):
        got = {}
        o = epoch_order(data.n_train, seed, epoch)
        for step, (x, _) in enumerate(data.train_batches(batch_size, epoch=epoch, seed=seed, start=start), start):
            for k, i in enumerate(o[step * batch_size : (step + 1) * batch_size]):
                got[int(i)] = x[k]
        return got

    a, b, c = by_index(8), by_index(16), by_index(8, start=3)
    for i in order[24:]:
        np.testing.assert_array_equal(a[int(i)], b[int(i)])
        np.testing.assert_array_equal(a[int(i)], c[int(i)])
    other_epoch, other_seed = by_index(8, epoch=3), by_index(8, seed=6)
    assert any(not np.array_equal(a[i], other_epoch[i]) for i in a)
    assert any(not np.array_equal(a[i], other_seed[i]) for i in a)
    x_test, _ = next(data.test_batches(8))
    np.testing.assert_array_equal(x_test, data.x_test[:8])
    np.testing.assert_array_equal(data.probe(4)[0], data.x_train[:4])


def test_augment_is_a_setting_for_natural_images_the_cifar_preset_turns_on():
    from minibp import TrainConfig
    from minibp.presets import PRESETS

    assert PRESETS["cifar10-resnet20"].settings["augment"] is True
    TrainConfig(dataset="cifar10", model="resnet20", augment=True).check_new_run()
    with pytest.raises(ValueError, match=r"--augment \(crop and flip\) is for cifar10, imagenet32, imagenet64"):
        TrainConfig(dataset="digits", augment=True).check_new_run()

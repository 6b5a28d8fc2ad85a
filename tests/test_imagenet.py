"""The ImageNet folder loader on a tiny tree of JPEGs written by the tests themselves."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minibp.data.base import epoch_order
from minibp.data.imagenet import ImageDecodeError, ImageFolder, find_imagenet, load_imagenet
from minibp.data.imagenet_transforms import MEAN, STD, load_image, random_resized_crop

Image = pytest.importorskip("PIL.Image")

CLASSES = ["n01", "n02", "n03"]
SIZE = 32
REPO = Path(__file__).resolve().parents[1]


def _write_tree(root: Path, train: int = 5, val: int = 2, seed: int = 0) -> Path:
    """3 classes; random noise JPEGs of random sizes 40-90 px (and one .png, one lower-case .jpg)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                w, h = (int(v) for v in rng.integers(40, 91, size=2))
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                ext = {0: ".JPEG", 1: ".jpg", 2: ".png"}.get(i, ".JPEG") if split == "train" else ".JPEG"
                Image.fromarray(pixels).save(root / split / c / f"{c}_{i}{ext}", quality=90)
    (root / "train" / CLASSES[0] / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_tree(tmp_path_factory.mktemp("imagenet"))


def _folder(root: Path, workers: int, **kw: object) -> ImageFolder:
    return load_imagenet(root, image_size=SIZE, workers=workers, **kw)


# --------------------------------------------------------------------------- layout


def test_shapes_dtypes_labels_and_class_mapping(tree: Path) -> None:
    with _folder(tree, 0) as d:
        assert (d.name, d.n_classes, d.classes, d.image_shape) == ("imagenet", 3, CLASSES, (3, SIZE, SIZE))
        assert (d.n_train, d.n_test) == (15, 6)
        assert d.steps_per_epoch(4) == 4  # 15 = 4 + 4 + 4 + 3: the partial batch is kept
        batches = list(d.train_batches(4, epoch=1, seed=0))
        assert [x.shape[0] for x, _ in batches] == [4, 4, 4, 3]
        for x, y in batches:
            assert x.dtype == np.float32 and x.shape[1:] == (3, SIZE, SIZE) and y.dtype == np.int64
        # each label is the class folder its file sits in, in the epoch's order
        order = epoch_order(d.n_train, 0, 1)
        labels = np.concatenate([y for _, y in batches])
        folders = [Path(d.train_path(i)).parent.name for i in order]
        assert [CLASSES[k] for k in labels] == folders
        test = list(d.test_batches(4))
        assert [x.shape[0] for x, _ in test] == [4, 2]
        assert np.concatenate([y for _, y in test]).tolist() == [0, 0, 1, 1, 2, 2]
        xp, yp = d.probe(5)
        assert xp.shape == (5, 3, SIZE, SIZE) and xp.dtype == np.float32
        assert yp.tolist() == [0, 0, 1, 2, 2]  # spread over the class-sorted training set
        # normalised pixels of noise images: roughly zero mean, unit-ish spread
        x = np.concatenate([x for x, _ in batches])
        assert abs(float(x.mean())) < 0.5 and 0.5 < float(x.std()) < 2.0


def test_ignores_uniform_loader_arguments(tree: Path) -> None:
    d = load_imagenet(tree, image_size=SIZE, workers=0, flatten=True, download=False)
    assert d.image_shape == (3, SIZE, SIZE)


def test_data_dir_may_hold_an_imagenet_folder(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "imagenet").symlink_to(tree)
    assert find_imagenet(tmp_path) == tmp_path / "imagenet"
    monkeypatch.setenv("MINIBP_DATA", str(tmp_path))
    assert find_imagenet() == tmp_path / "imagenet"


def test_missing_data_says_where_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_imagenet(tmp_path / "nowhere")
    msg = str(err.value)
    for part in (str(tmp_path / "nowhere" / "train"), "--data-dir", "MINIBP_DATA", "valprep.sh", "<root>/val/<wnid>"):
        assert part in msg
    monkeypatch.setenv("MINIBP_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "imagenet" / "train")):
        find_imagenet()
    (tmp_path / "imagenet" / "train" / "n01").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="val"):
        find_imagenet()


def test_bad_layouts_are_value_errors(tmp_path: Path) -> None:
    root = _write_tree(tmp_path / "a", train=1, val=1)
    (root / "train" / "n04").mkdir()
    with pytest.raises(ValueError, match="n04"):
        ImageFolder(root)
    root = _write_tree(tmp_path / "b", train=1, val=1)
    (root / "val" / "n09").mkdir()
    Image.new("RGB", (8, 8)).save(root / "val" / "n09" / "x.JPEG")
    with pytest.raises(ValueError, match="n09.*train/'s classes"):
        ImageFolder(root)
    root = tmp_path / "c"
    _write_tree(root, train=1, val=0)
    for c in CLASSES:
        (root / "val" / c).rmdir()
    Image.new("RGB", (8, 8)).save(root / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(ValueError, match="valprep.sh"):
        ImageFolder(root)


# --------------------------------------------------------------------------- transforms


def test_random_resized_crop_stays_inside_and_in_range() -> None:
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(300):
        w, h = (int(v) for v in rng.integers(20, 400, size=2))
        left, top, right, bottom = random_resized_crop(w, h, rng)
        assert 0 <= left < right <= w and 0 <= top < bottom <= h
        cw, ch = right - left, bottom - top
        if (cw, ch) != (w, h) and 0.75 <= w / h <= 4 / 3:  # not the fallback
            assert 0.08 * w * h * 0.8 <= cw * ch <= w * h
            assert 0.75 * 0.9 <= cw / ch <= 4 / 3 * 1.1
        areas.append(cw * ch / (w * h))
    # it does crop: most boxes are smaller than the image, and their areas span the scale range
    assert np.mean(np.array(areas) < 1) > 0.9 and min(areas) < 0.2 and max(areas) > 0.8, sorted(areas)[::30]
    # a 1000x10 strip: no draw fits, so the fallback is the widest 4/3 box, centered
    assert random_resized_crop(1000, 10, np.random.default_rng(0)) == (493, 0, 506, 10)


def test_horizontal_flip_half_the_time(tmp_path: Path) -> None:
    ramp = np.repeat(np.linspace(0, 255, 64)[None, :, None], 48, axis=0).repeat(3, axis=2).astype(np.uint8)
    path = tmp_path / "ramp.png"
    Image.fromarray(ramp).save(path)
    out = np.empty((3, SIZE, SIZE), np.float32)
    flipped = 0
    for i in range(200):
        load_image(str(path), SIZE, np.random.default_rng([0, i]), out)
        flipped += bool(out[0, :, 0].mean() > out[0, :, -1].mean())  # bright on the left: flipped
    assert 70 <= flipped <= 130


def test_test_transform_is_a_deterministic_center_crop(tmp_path: Path) -> None:
    red, blue = (200, 30, 30), (20, 40, 220)
    img = np.empty((40, 80, 3), dtype=np.uint8)
    img[:] = blue
    img[:, 20:60] = red  # the central 40x40: what resize-to-37 + center-crop-32 keeps
    path = tmp_path / "c.png"
    Image.fromarray(img).save(path)
    out = np.empty((3, SIZE, SIZE), np.float32)
    load_image(str(path), SIZE, None, out)
    want = (np.array(red) / 255 - MEAN) / STD
    np.testing.assert_allclose(out.mean(axis=(1, 2)), want, atol=1e-5)
    again = np.empty_like(out)
    load_image(str(path), SIZE, None, again)
    assert np.array_equal(out, again)


def test_reduced_size_jpeg_decoding_keeps_the_crop(tmp_path: Path) -> None:
    """A 480x360 JPEG decoded at 1/8 size (Image.draft) gives the crop a full decode gives."""
    yy, xx = np.mgrid[0:360, 0:480]
    img = np.stack([xx * 255 // 479, yy * 255 // 359, (xx + yy) * 255 // 838], axis=-1).astype(np.uint8)
    path = tmp_path / "big.JPEG"
    Image.fromarray(img).save(path, quality=95)
    for rng_seed in (None, 1, 2, 3):
        rng = None if rng_seed is None else np.random.default_rng(rng_seed)
        out = np.empty((3, SIZE, SIZE), np.float32)
        load_image(str(path), SIZE, rng, out)
        # the same crop from the PNG twin (never drafted)
        twin = tmp_path / "big.png"
        Image.fromarray(img).save(twin)
        rng = None if rng_seed is None else np.random.default_rng(rng_seed)
        ref = np.empty_like(out)
        load_image(str(twin), SIZE, rng, ref)
        assert float(np.abs(out - ref).mean()) < 0.05, rng_seed


# --------------------------------------------------------------------------- workers and determinism


@pytest.mark.parametrize("transport", ["shm", "pipe"])
def test_batches_do_not_depend_on_workers(tree: Path, transport: str) -> None:
    with _folder(tree, 0) as d0, _folder(tree, 2, transport=transport, prefetch=3) as d2:
        # list() keeps every batch: blocks still referenced must not be reused
        for epoch in (1, 2):
            a = list(d0.train_batches(4, epoch=epoch, seed=7))
            b = list(d2.train_batches(4, epoch=epoch, seed=7))
            assert len(a) == len(b) == 4
            for (xa, ya), (xb, yb) in zip(a, b):
                assert np.array_equal(ya, yb) and np.array_equal(xa, xb)
        for (xa, ya), (xb, yb) in zip(d0.test_batches(4), d2.test_batches(4)):
            assert np.array_equal(ya, yb) and np.array_equal(xa, xb)
        pa, pb = d0.probe(7), d2.probe(7)
        assert np.array_equal(pa[0], pb[0]) and np.array_equal(pa[1], pb[1])
        # the augmentation changes with the epoch and the seed, the test set does not
        e1 = np.concatenate([x for x, _ in d2.train_batches(15, epoch=1, seed=7)])
        e2 = np.concatenate([x for x, _ in d2.train_batches(15, epoch=1, seed=8)])
        order1, order2 = epoch_order(15, 7, 1), epoch_order(15, 8, 1)
        assert not np.array_equal(e1[np.argsort(order1)], e2[np.argsort(order2)])
        t1 = [x.copy() for x, _ in d2.test_batches(5)]
        t2 = [x for x, _ in d2.test_batches(5)]
        assert all(np.array_equal(u, v) for u, v in zip(t1, t2))


def test_augmentation_of_a_sample_depends_only_on_seed_epoch_and_index(tree: Path) -> None:
    with _folder(tree, 2) as d:
        by4 = np.concatenate([x for x, _ in d.train_batches(4, epoch=5, seed=3)])
        by15 = np.concatenate([x for x, _ in d.train_batches(15, epoch=5, seed=3)])
        assert np.array_equal(by4, by15)
        order = epoch_order(d.n_train, 3, 5)
        for pos in (0, 9, 14):
            i = int(order[pos])
            want = np.empty((3, SIZE, SIZE), np.float32)
            load_image(d.train_path(i), SIZE, np.random.default_rng([3, 3, 5, i]), want)
            assert np.array_equal(by4[pos], want)


@pytest.mark.parametrize("workers", [0, 2])
def test_start_resumes_the_epoch_exactly(tree: Path, workers: int) -> None:
    with _folder(tree, workers) as d:
        full = [(x.copy(), y) for x, y in d.train_batches(4, epoch=3, seed=1)]
        for start in (1, 3, 4):
            rest = list(d.train_batches(4, epoch=3, seed=1, start=start))
            assert len(rest) == len(full) - start
            for (xa, ya), (xb, yb) in zip(full[start:], rest):
                assert np.array_equal(ya, yb) and np.array_equal(xa, xb)
        with pytest.raises(ValueError, match="start"):
            list(d.train_batches(4, epoch=3, seed=1, start=5))


def test_ranks_shares_make_up_each_batch_and_the_test_set(tree: Path) -> None:
    """Data-parallel training: rank r of N decodes only its share of each batch (``part``), and the
    shares, in rank order, are the batch one process reads; the test batches are dealt out in turn."""
    with _folder(tree, 0) as d:
        full = [(x.copy(), y) for x, y in d.train_batches(5, epoch=2, seed=1)]
        parts = [[(x.copy(), y) for x, y in d.train_batches(5, epoch=2, seed=1, part=(r, 2))] for r in range(2)]
        for i, (x, y) in enumerate(full):
            assert [len(p[i][1]) for p in parts] == [(len(y) + 1) // 2, len(y) // 2]
            assert np.array_equal(np.concatenate([p[i][0] for p in parts]), x)
            assert np.array_equal(np.concatenate([p[i][1] for p in parts]), y)
        tests = [list(d.test_batches(2, part=(r, 2))) for r in range(2)]
        whole = list(d.test_batches(2))
        assert [y.tolist() for _, y in whole] == [
            y.tolist() for i in range(len(whole)) for _, y in [tests[i % 2][i // 2]]
        ]


def test_break_then_new_epoch(tree: Path) -> None:
    """Abandoned batches are cancelled; the next iterator gets its own batches, intact."""
    with _folder(tree, 0) as d0, _folder(tree, 2, prefetch=4) as d2:
        want = [x for x, _ in d0.train_batches(2, epoch=2, seed=0)]
        for _ in range(3):
            for _batch in d2.train_batches(2, epoch=1, seed=0):
                break
        it = d2.train_batches(2, epoch=1, seed=0)
        next(it)
        it.close()
        n = 0
        for (x, _), w in zip(d2.train_batches(2, epoch=2, seed=0), want):
            assert np.array_equal(x, w)
            n += 1
        assert n == len(want)
        # blocks are reused: at most the in-flight ones, the two the consumer holds, and abandoned ones
        assert len(d2._pool.slots) <= 2 * 4 + 2


def _corrupt_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = _write_tree(tmp_path / "bad", train=3, val=1)
    bad = root / "train" / CLASSES[1] / f"{CLASSES[1]}_1.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 10)
    return root, bad


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_names_the_file(tmp_path: Path, workers: int) -> None:
    root, bad = _corrupt_tree(tmp_path)
    with _folder(root, workers) as d:
        with pytest.raises(ImageDecodeError, match=str(bad)):
            for _ in d.train_batches(2, epoch=1, seed=0):
                pass
        assert [y.tolist() for _, y in d.test_batches(3)] == [[0, 1, 2]]  # the loader still works


def test_dead_worker_raises_instead_of_hanging(tree: Path) -> None:
    with _folder(tree, 2, prefetch=2) as d:
        it = d.train_batches(1, epoch=1, seed=0)
        next(it)
        for proc in d._pool.procs:
            proc.kill()
        with pytest.raises(RuntimeError, match="died with signal SIGKILL"):
            for _ in it:
                pass
        assert len(list(d.test_batches(4))) == 2  # a fresh pool replaces the broken one
        it = d.test_batches(1)
        next(it)
        d.close()
        with pytest.raises(RuntimeError, match="closed"):
            next(it)


def test_early_exit_and_ctrl_c_clean_up_without_hanging(tree: Path) -> None:
    """In a fresh process: break, an exception in the loop body, then close; no worker or block survives."""
    script = textwrap.dedent(f"""
        import multiprocessing as mp, os, sys
        from minibp.data.imagenet import load_imagenet

        if __name__ == "__main__":
            d = load_imagenet({str(tree)!r}, image_size={SIZE}, workers=2, prefetch=4)
            for x, y in d.train_batches(2, epoch=1, seed=0):
                break
            try:
                for x, y in d.train_batches(2, epoch=2, seed=0):
                    raise KeyboardInterrupt
            except KeyboardInterrupt:
                pass
            names = [s.shm.name for s in d._pool.slots]
            kept = x  # a batch the consumer still holds: valid after close
            total = float(kept.sum())
            d.close()
            assert float(kept.sum()) == total
            assert not mp.active_children(), mp.active_children()
            assert names and not any(os.path.exists("/dev/shm/" + n) for n in names), names
            print("clean")
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr
    assert "leaked" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_prefetch_and_worker_defaults(tree: Path) -> None:
    d = ImageFolder(tree)
    assert d.workers >= 1 and d.prefetch == max(2, 2 * d.workers)
    assert math.ceil(d.n_train / 128) == d.steps_per_epoch(128) == 1
    with pytest.raises(ValueError):
        ImageFolder(tree, workers=-1)


# --------------------------------------------------------------------------- with the trainer


def test_trainer_runs_on_the_folder_and_resumes_exactly(tree: Path, tmp_path: Path) -> None:
    """`minibp train --dataset imagenet`: the loader's workers feed the trainer, and a run
    interrupted by Ctrl-C mid-epoch resumes to the same numbers as an uninterrupted one."""
    import signal

    from minibp.train import TrainConfig, TrainingInterrupted, train

    cfg = TrainConfig(
        rule="kp",
        dataset="imagenet",
        data_dir=str(tree),
        model="resnet18",
        width=2,
        image_size=SIZE,
        workers=2,
        epochs=2,
        batch_size=4,
        probe_size=6,
        lr=0.01,
    )
    _, ref = train(cfg, progress=False)
    assert [r["epoch"] for r in ref] == [0, 1, 2] and len(ref[-1]["matrix_angle"]) == 21

    class InterruptAfter:
        def __init__(self, data: ImageFolder) -> None:
            self.data = data

        def __getattr__(self, name: str) -> object:
            return getattr(self.data, name)

        def train_batches(self, batch_size: int, *, epoch: int, seed: int, start: int = 0):  # type: ignore[no-untyped-def]
            for i, batch in enumerate(self.data.train_batches(batch_size, epoch=epoch, seed=seed, start=start), start):
                if (epoch, i) == (2, 1):
                    signal.raise_signal(signal.SIGINT)
                yield batch

    with load_imagenet(tree, image_size=SIZE, workers=2) as data, pytest.raises(TrainingInterrupted):
        train(cfg, data=InterruptAfter(data), out=tmp_path, progress=False)  # type: ignore[arg-type]
    _, resumed = train(cfg, out=tmp_path, progress=False, resume=True)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in ref]

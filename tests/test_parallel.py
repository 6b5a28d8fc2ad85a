"""Data-parallel training (minibp.parallel): N ranks under mpiexec train what one process trains.

The tests that launch ranks need mpi4py and an ``mpiexec`` beside this Python (the ``mpi``
extra: ``pip install -e ".[mpi]"``); they are skipped without them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import gpu_backend

from minibp.checkpoint import read_meta
from minibp.data import load_dataset
from minibp.data.base import share
from minibp.models import resnet20
from minibp.parallel import Group, launched_size
from minibp.train import _check_ranks

REPO = Path(__file__).resolve().parents[1]
MPIEXEC = Path(sys.executable).parent / "mpiexec"

try:
    import mpi4py  # noqa: F401

    HAVE_MPI = MPIEXEC.exists()
except ImportError:
    HAVE_MPI = False

needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason='needs the MPI extra: pip install -e ".[mpi]"')

#: largest relative difference allowed between the weights of 2 ranks and of one process (float32);
#: what was measured is in the README, "Several processes and GPUs"
RTOL_FLOAT32 = 1e-5
#: the same in float64, where batch norm's ill-conditioned channels cannot amplify rounding as far
RTOL_FLOAT64 = 1e-8


def minibp(*args: str, ranks: int = 0, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    """``minibp args`` in a child process; under ``mpiexec -n ranks`` when ``ranks``."""
    cmd = [sys.executable, "-m", "minibp", *args]
    if ranks:
        cmd = [str(MPIEXEC), "-n", str(ranks), *cmd]
    full_env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE")}
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=REPO, timeout=600, **kw)


def arrays(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "checkpoint.npz") as data:
        return {k: data[k] for k in data.files if k != "meta"}


def worst_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, str]:
    """The largest difference between same-named arrays, relative to the array's largest entry, and where."""
    assert a.keys() == b.keys()
    return max((float(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-30)), k) for k in a)


# ---------------------------------------------------------------- without MPI


class TwoRanks(Group):
    rank, size = 0, 2


def test_shares_make_up_each_batch_in_rank_order() -> None:
    data = load_dataset("digits", flatten=False)
    whole = list(data.train_batches(32, epoch=2, seed=3))
    parts = [list(data.train_batches(32, epoch=2, seed=3, part=(r, 3))) for r in range(3)]
    for i, (x, y) in enumerate(whole):
        assert np.array_equal(np.concatenate([p[i][0] for p in parts]), x)
        assert np.array_equal(np.concatenate([p[i][1] for p in parts]), y)
        assert max(len(p[i][1]) for p in parts) - min(len(p[i][1]) for p in parts) <= 1
    dealt = [list(data.test_batches(100, part=(r, 3))) for r in range(3)]
    assert sum(len(y) for d in dealt for _, y in d) == data.n_test
    assert [share(10, (r, 4)) for r in range(4)] == [slice(0, 3), slice(3, 6), slice(6, 8), slice(8, 10)]


def test_a_batch_the_ranks_cannot_share_is_refused() -> None:
    with pytest.raises(ValueError, match="does not divide"):
        TwoRanks().check_batch(31, 1000)
    with pytest.raises(ValueError, match="fewer than the 2 ranks"):
        TwoRanks().check_batch(32, 32 * 10 + 1)
    TwoRanks().check_batch(32, 32 * 10 + 2)


def test_resuming_per_rank_batch_norm_on_another_rank_count_is_refused(tmp_path: Path) -> None:
    from minibp.config import TrainConfig

    net = resnet20((1, 8, 8), 10, width=2)
    with pytest.raises(ValueError, match="mpiexec -n 2"):
        _check_ranks({"ranks": 2}, net, TrainConfig(model="resnet20"), Group(), tmp_path)
    _check_ranks({"ranks": 2}, net, TrainConfig(model="resnet20", sync_bn=True), Group(), tmp_path)  # same math


def test_launcher_environment_is_read() -> None:
    assert launched_size() == 1 or "PMI_SIZE" in os.environ


def test_several_ranks_without_mpi4py_say_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "mpi4py"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('mpi4py is not installed')\n")
    env = {"PYTHONPATH": str(tmp_path), "PMI_SIZE": "2", "PMI_RANK": "0"}
    done = minibp("train", "--epochs", "1", "--out", str(tmp_path / "runs"), env=env)
    assert done.returncode == 2
    assert 'pip install -e ".[mpi]"' in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- with mpiexec -n 2


@needs_mpi
def test_a_launcher_other_than_mpi4pys_is_refused(tmp_path: Path) -> None:
    """Open MPI's variable with MPICH's mpi4py: each process would train alone, so none starts."""
    done = minibp("train", "--epochs", "1", "--out", str(tmp_path), env={"OMPI_COMM_WORLD_SIZE": "2"})
    assert done.returncode == 2 and "the launcher started 2 ranks" in done.stderr, done.stderr


@needs_mpi
@pytest.mark.parametrize(
    ("model", "rules", "extra", "rtol"),
    [
        ("mlp", ["all"], ["--hidden", "64", "64", "--dtype", "float32"], RTOL_FLOAT32),
        ("cnn", ["bp", "fa", "wm", "kp"], ["--dtype", "float32"], RTOL_FLOAT32),
        ("resnet20", ["kp", "wm"], ["--width", "4", "--sync-bn", "--dtype", "float64"], RTOL_FLOAT64),
    ],
)
def test_two_ranks_train_what_one_process_trains(
    tmp_path: Path, model: str, rules: list[str], extra: list[str], rtol: float
) -> None:
    """Global batch 32 on 2 ranks against batch 32 in one process, one epoch of digits (whose last
    batch of 29 splits 15/14): the same weights, feedback weights, statistics and momentum, up to
    rounding. Rank 0 alone prints and writes."""
    args = ["compare", "--model", model, "--rules", *rules, "--epochs", "1", "--batch-size", "32", *extra, "--quiet"]
    one = minibp(*args, "--out", str(tmp_path / "one"))
    two = minibp(*args, "--out", str(tmp_path / "two"), ranks=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("summary:") == 1  # one table, from rank 0
    plan = json.loads((tmp_path / "two" / "compare.json").read_text())
    for rule in plan["rules"]:
        worst, where = worst_difference(arrays(tmp_path / "one" / rule), arrays(tmp_path / "two" / rule))
        assert worst < rtol, f"{rule}: {where} differs by {worst:.3g} (relative)"
        assert read_meta(tmp_path / "two" / rule / "checkpoint.npz")["ranks"] == 2


@needs_mpi
def test_per_rank_batch_norm_is_not_one_process(tmp_path: Path) -> None:
    """Without --sync-bn each rank normalises its own half of the batch: the test above would fail."""
    args = ["train", "--model", "resnet20", "--width", "4", "--epochs", "1", "--dtype", "float64", "--quiet"]
    assert minibp(*args, "--out", str(tmp_path / "one")).returncode == 0
    assert minibp(*args, "--out", str(tmp_path / "two"), ranks=2).returncode == 0
    worst, _ = worst_difference(arrays(tmp_path / "one" / "bp"), arrays(tmp_path / "two" / "bp"))
    assert worst > 1e-3


@needs_mpi
def test_every_rank_holds_the_same_arrays_after_every_step() -> None:
    done = subprocess.run(
        [str(MPIEXEC), "-n", "2", sys.executable, str(REPO / "tests" / "parallel_worker.py"), "same-weights"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_mpi
def test_a_rank_that_hangs_stops_every_rank_with_a_message() -> None:
    start = time.monotonic()
    done = subprocess.run(
        [str(MPIEXEC), "-n", "2", sys.executable, str(REPO / "tests" / "parallel_worker.py"), "hang"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode != 0
    assert "no answer from the other ranks within 1 s" in done.stderr, done.stderr
    assert time.monotonic() - start < 40  # the hanging rank sleeps 60 s: the abort ended it too


@needs_mpi
def test_an_error_of_one_rank_stops_every_rank_at_once(tmp_path: Path) -> None:
    start = time.monotonic()
    done = subprocess.run(
        [str(MPIEXEC), "-n", "2", sys.executable, str(REPO / "tests" / "parallel_worker.py"), "crash", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "ZeroDivisionError: a fault of rank 1 alone" in done.stderr, done.stderr
    assert "rank 1 stopped every rank" in done.stderr, done.stderr
    assert time.monotonic() - start < 60  # well before the 600 s collective timeout


@needs_mpi
def test_a_batch_size_two_ranks_cannot_share_is_refused_once(tmp_path: Path) -> None:
    done = minibp("train", "--batch-size", "31", "--out", str(tmp_path), ranks=2)
    assert done.returncode == 2
    assert done.stderr.count("does not divide") == 1, done.stderr


SIGNALLED_RUN = ["train", "--rule", "kp", "--epochs", "30", "--quiet"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2-rank run that the interrupted ones must equal once resumed."""
    out = tmp_path_factory.mktemp("whole")
    done = minibp(*SIGNALLED_RUN, "--out", str(out), ranks=2)
    assert done.returncode == 0, done.stderr
    return out / "kp"


@needs_mpi
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_both_ranks_at_one_step_and_resume_is_exact(
    tmp_path: Path, sig: signal.Signals, uninterrupted: Path
) -> None:
    args = SIGNALLED_RUN
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "minibp", *args, "--out", str(tmp_path / "cut")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    metrics = tmp_path / "cut" / "kp" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)  # mpiexec hands it to every rank
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    meta = read_meta(tmp_path / "cut" / "kp" / "checkpoint.npz")
    assert not meta["finished"] and meta["ranks"] == 2, meta
    assert err.count("continue with: mpiexec -n 2 minibp train") == 1, err
    again = minibp("train", "--out", str(tmp_path / "cut"), "--resume", "--rule", "kp", "--quiet", ranks=2)
    assert again.returncode == 0, again.stderr
    a, b = arrays(uninterrupted), arrays(tmp_path / "cut" / "kp")
    assert all(np.array_equal(a[k], b[k]) for k in a), worst_difference(a, b)
    drop = lambda path: [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in path.open()]  # noqa: E731
    assert drop(uninterrupted / "metrics.jsonl") == drop(metrics)


@needs_mpi
def test_two_ranks_copy_nothing_to_the_host_implicitly(tmp_path: Path) -> None:
    """On the guard backend (NumPy that raises on an implicit device→host copy) every exchange of a
    2-rank run, synchronized batch norm included, is an explicit copy, as on a GPU with MPI."""
    args = ["train", "--model", "resnet20", "--width", "2", "--epochs", "1", "--sync-bn", "--quiet"]
    done = minibp(*args, "--backend", "guard", "--out", str(tmp_path), ranks=2)
    assert done.returncode == 0, done.stderr


@pytest.mark.gpu
@needs_mpi
def test_nccl_and_staged_mpi_ranks_train_what_one_gpu_trains(tmp_path: Path) -> None:
    """One GPU: one NCCL rank equals the plain GPU run exactly; two ranks through MPI, staged on the
    host, equal it up to rounding."""
    if gpu_backend()[0] != "cupy":
        pytest.skip("NCCL needs CuPy on a CUDA GPU")
    args = ["train", "--rule", "kp", "--model", "cnn", "--epochs", "1", "--backend", "cupy", "--quiet"]
    assert minibp(*args, "--out", str(tmp_path / "one")).returncode == 0
    nccl = minibp(*args, "--transport", "nccl", "--out", str(tmp_path / "nccl"), ranks=1)
    staged = minibp(*args, "--transport", "mpi", "--out", str(tmp_path / "mpi"), ranks=2)
    assert nccl.returncode == 0, nccl.stderr
    assert staged.returncode == 0, staged.stderr
    one = arrays(tmp_path / "one" / "kp")
    assert worst_difference(one, arrays(tmp_path / "nccl" / "kp"))[0] == 0
    assert worst_difference(one, arrays(tmp_path / "mpi" / "kp"))[0] < RTOL_FLOAT32

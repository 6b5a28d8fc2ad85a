"""The CuPy path without a GPU: the guard backend (``minibp.testing``) raises where CuPy would copy
to the host implicitly, and minibp's layers, rules, losses, optimizer, metrics and trainer run
under it with no host round trip inside a training step, giving the NumPy backend's numbers."""

from __future__ import annotations

import dataclasses
import math
import operator

import numpy as np
import pytest
from conftest import LAYERS, layer_outputs, state_arrays

import minibp
from minibp import SGD, get_backend, get_rule, set_backend, to_numpy, train_step
from minibp.layers.conv import im2col
from minibp.losses import MeanSquaredError, SoftmaxCrossEntropy
from minibp.metrics import accuracy, angle, delta_angles, matrix_angles
from minibp.models import lenet, mlp, resnet20, resnet50
from minibp.rules import RULES, WeightMirror
from minibp.testing import GuardArray, HostTransferError, count_transfers, guard

# --------------------------------------------------------------------------- the guard itself


@pytest.fixture
def x() -> GuardArray:
    return guard.asarray(np.arange(12.0).reshape(3, 4))


IMPLICIT = {
    "numpy.asarray": np.asarray,
    "numpy.array": np.array,
    "float": lambda a: float(a.sum()),
    "int": lambda a: int(a[0, 0]),
    "bool": lambda a: bool(a[0, 0] > 0),
    "if": lambda a: 1 if (a > 0).any() else 0,
    "index": lambda a: operator.index(a[0, 0].astype(int)),
    "item": lambda a: a.item(),
    "tolist": lambda a: a.tolist(),
    "format": lambda a: f"{a.sum():.3f}",
    "iterate to floats": lambda a: [float(v) for v in a[0]],
    "numpy.testing": lambda a: np.testing.assert_allclose(a, 0),
    "math": lambda a: math.sqrt(a.sum()),
}


@pytest.mark.parametrize("convert", IMPLICIT.values(), ids=IMPLICIT.keys())
def test_every_implicit_host_conversion_raises(x, convert):
    with pytest.raises(HostTransferError, match="to_numpy"):
        convert(x)
    assert issubclass(HostTransferError, TypeError)  # the error CuPy raises for numpy.asarray


MIXED = {
    "a + host": lambda a, h: a + h,
    "host + a": lambda a, h: h + a,
    "a += host": operator.iadd,
    "a @ host.T": lambda a, h: a @ h.T,
    "ufunc": guard.maximum,
    "function": lambda a, h: guard.where(a > 0, a, h),
    "numpy function": lambda a, h: np.concatenate([a, h]),
    "guard function on host": lambda a, h: guard.exp(h),
    "out=host": lambda a, h: guard.multiply(a, 2.0, out=h),
    "fill from host": lambda a, h: a.__setitem__(slice(None), h),
    "0-d host array": lambda a, h: a * np.array(2.0),  # CuPy takes NumPy scalars, not 0-d arrays
}


@pytest.mark.parametrize("mix", MIXED.values(), ids=MIXED.keys())
def test_host_arrays_mixed_into_device_operations_raise(x, mix):
    with pytest.raises(HostTransferError, match="host numpy.ndarray"):
        mix(x, np.ones((3, 4)))


def test_scalars_and_explicit_copies_work(x):
    y = (x + 1) * np.float32(2.0) - 0.5 / (x + 1)  # Python and NumPy scalars are fine
    assert isinstance(y, GuardArray) and y.shape == (3, 4) and y.dtype == np.float64
    host = np.ones(3)
    dev = guard.asarray(host)  # the explicit host -> device copy
    host[0] = 7.0
    assert to_numpy(dev)[0] == 1.0  # a copy: no memory shared with the host array
    assert guard.asarray(dev) is dev and guard.asarray(dev, dtype="float32").dtype == np.float32
    with count_transfers() as transfers:
        back = to_numpy(x)
        to_numpy(x.sum())
    assert transfers.count == 2
    assert type(back) is np.ndarray and back.tolist() == np.arange(12.0).reshape(3, 4).tolist()
    back[0, 0] = 99.0  # to_numpy copies too
    assert to_numpy(x)[0, 0] == 0.0
    assert x[np.array([0, 2])].shape == (2, 4)  # host index arrays are allowed, as in CuPy
    x[0, 0] = np.float64(5.0)
    x[1] = np.array(6.0)  # so is a 0-d host array as a fill value
    assert to_numpy(x)[:2, 0].tolist() == [5.0, 6.0]


def test_reductions_and_indexing_return_device_arrays(x):
    for value in (x.sum(), x.mean(axis=None), x.max(), x.argmax(), x[1, 2], np.sum(x), guard.sqrt(x[0, 0])):
        assert isinstance(value, GuardArray) and value.ndim == 0, type(value)
    assert isinstance(np.exp(x), GuardArray)  # NumPy's functions dispatch, as with CuPy's arrays
    assert len(x) == 3 and all(isinstance(row, GuardArray) for row in x)
    assert all(isinstance(v, GuardArray) and v.ndim == 0 for v in x[0])


def test_views_write_through(x):
    x[:, 1:3] *= 10
    t = x.T
    t += 1
    x.reshape(12)[0] = -1.0
    x[x > 100] = 0.0
    ref = np.arange(12.0).reshape(3, 4)
    ref[:, 1:3] *= 10
    ref += 1
    ref[0, 0] = -1.0
    ref[ref > 100] = 0.0
    np.testing.assert_array_equal(to_numpy(x), ref)


def test_as_strided_views_as_minibp_convolutions_use_them():
    rng = np.random.default_rng(0)
    host = rng.standard_normal((2, 3, 6, 5))
    cols = im2col(guard.asarray(host), 3, 3, 2, 1)  # pads, then a strided view copied once
    assert isinstance(cols, GuardArray)
    np.testing.assert_array_equal(to_numpy(cols), im2col(host, 3, 3, 2, 1))
    dev = guard.zeros(6)
    view = guard.lib.stride_tricks.as_strided(dev, shape=(3, 2), strides=(2 * dev.itemsize, dev.itemsize))
    view += guard.asarray(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(to_numpy(dev), np.arange(6.0))


def test_random_generator_and_module_attributes():
    draw = guard.random.default_rng(3).standard_normal((2, 5), dtype=np.float32)
    assert isinstance(draw, GuardArray) and draw.dtype == np.float32
    np.testing.assert_array_equal(to_numpy(draw), np.random.default_rng(3).standard_normal((2, 5), dtype=np.float32))
    assert guard.float32 is np.float32 and guard.ndarray is GuardArray and guard.pi == np.pi
    f = guard.array(np.ones((2, 3)), dtype="float32", order="F")
    assert f.flags["F_CONTIGUOUS"] and isinstance(guard.zeros_like(f), GuardArray)


def test_the_guard_is_a_backend():
    assert set_backend("guard") is guard and get_backend() is guard
    assert minibp.backend.backend_name() == "guard"
    a = minibp.backend.asarray(np.ones(2))
    assert isinstance(a, GuardArray) and minibp.get_array_module(a) is guard
    assert minibp.get_array_module(np.ones(2), a) is guard
    set_backend("numpy")
    assert minibp.backend.backend_name() == "numpy" and minibp.get_array_module(a) is guard


# --------------------------------------------------------------------------- minibp under the guard

MODELS = {
    "mlp": (lambda: mlp([64, 16, 10]), (64,)),
    "cnn": (lambda: lenet((1, 8, 8), 10, width=4), (1, 8, 8)),
    "resnet20": (lambda: resnet20((1, 8, 8), 10, width=4), (1, 8, 8)),
    "resnet50-bn-before": (lambda: resnet50((3, 8, 8), 10, width=1, bn="before"), (3, 8, 8)),
    # Section 6's brain-like parts: locally connected layers, synaptic scaling, rectified tanh
    "cnn-brain-like": (
        lambda: lenet((1, 8, 8), 10, width=2, conv="local", norm="scaling", activation="rectified_tanh"),
        (1, 8, 8),
    ),
    "resnet20-brain-like": (
        lambda: resnet20(
            (1, 8, 8), 10, width=2, conv="local", norm="scaling", bn="before", activation="rectified_tanh"
        ),
        (1, 8, 8),
    ),
}


def _setup(backend: str, model: str, rule_name: str):
    """A network, its rule and a batch, all on ``backend``; the same numbers on every backend."""
    xp = set_backend(backend)
    make, shape = MODELS[model]
    net = make()
    rule = WeightMirror(every=1, batch_size=8, seed=3) if rule_name == "wm" else get_rule(rule_name)
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((6, *shape)), dtype="float32")
    y = xp.asarray(rng.integers(0, 10, 6))
    net.init_feedback(rule, np.random.default_rng(1), example=x[:1])
    return net, rule, x, y


# every rule on the three small networks; the bottleneck blocks (and BN before ReLU) under bp and wm
STEP_CASES = [(m, r) for m in MODELS for r in RULES if not m.startswith("resnet50") or r in ("bp", "wm")]


@pytest.mark.parametrize(("model", "rule_name"), STEP_CASES)
def test_training_steps_stay_on_the_device(model, rule_name):
    """Forward, loss, backward, SGD with momentum and decay, and the mirror: no host transfer at all,
    and exactly the NumPy backend's numbers."""
    runs = {}
    for backend in ("numpy", "guard"):
        net, rule, x, y = _setup(backend, model, rule_name)
        opt = SGD(0.05, momentum=0.9, weight_decay=1e-3)
        loss_fn = SoftmaxCrossEntropy()
        with count_transfers() as transfers:
            for _ in range(2):
                loss = train_step(net, rule, loss_fn, opt, x, y).loss
            evaluation = net.forward(x, train=False)  # batch norm's running statistics
        if backend == "guard":
            assert transfers.count == 0
            assert isinstance(loss, GuardArray) and loss.ndim == 0
            assert all(isinstance(p, GuardArray) for layer in net.param_layers for p in layer.params.values())
        runs[backend] = [to_numpy(loss), to_numpy(evaluation), *state_arrays(net)]
    for ref, dev in zip(runs["numpy"], runs["guard"], strict=True):
        np.testing.assert_array_equal(dev, ref)


@pytest.mark.parametrize("loss_fn", [SoftmaxCrossEntropy(), MeanSquaredError()], ids=["cross_entropy", "mse"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_losses_and_plain_sgd_stay_on_the_device(loss_fn, momentum):
    runs = {}
    for backend in ("numpy", "guard"):
        net, rule, x, y = _setup(backend, "mlp", "kp")
        with count_transfers() as transfers:
            loss = train_step(net, rule, loss_fn, SGD(0.1, momentum=momentum, weight_decay=0.01), x, y).loss
        assert transfers.count == 0
        runs[backend] = [to_numpy(loss), *state_arrays(net)]
    for ref, dev in zip(runs["numpy"], runs["guard"], strict=True):
        np.testing.assert_array_equal(dev, ref)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_stays_on_the_device(name, train):
    runs = {}
    for backend in ("numpy", "guard"):
        xp = set_backend(backend)
        with count_transfers() as transfers:
            out = layer_outputs(xp, name, train, "float32")
        assert transfers.count == 0
        runs[backend] = [to_numpy(a) for a in out]
    for ref, dev in zip(runs["numpy"], runs["guard"], strict=True):
        np.testing.assert_array_equal(dev, ref)


def test_metrics_convert_explicitly_once_per_number():
    """Matrix and delta angles and accuracy are logging: each number crosses to the host in one
    explicit copy, and they equal the NumPy backend's."""
    runs = {}
    for backend in ("numpy", "guard"):
        net, rule, x, y = _setup(backend, "cnn", "fa")
        with count_transfers() as transfers:
            ma = matrix_angles(net, rule)
            da = delta_angles(net, rule, x, y, SoftmaxCrossEntropy())
            acc = accuracy(net.forward(x, train=False), y)
        if backend == "guard":
            assert transfers.count == len(ma) + len(da) + 1
        runs[backend] = (ma, da, acc)
    assert runs["guard"] == runs["numpy"]
    assert angle(guard.asarray(np.array([1.0, 0.0])), guard.asarray(np.array([0.0, 2.0]))) == pytest.approx(90)
    assert math.isnan(angle(guard.asarray(np.ones(3)), guard.zeros(3)))


# --------------------------------------------------------------------------- the trainer under the guard


@pytest.mark.parametrize("rule_name", list(RULES))
def test_train_under_the_guard_reads_the_host_per_epoch_not_per_step(digits, rule_name):
    """``train(..., backend="guard")``: no implicit host transfer anywhere, and the number of explicit
    ones does not grow with the number of steps (90 or 23 per epoch here) when ``log_every`` exceeds them."""
    from minibp.train import TrainConfig, train

    # read the loss on the host once per epoch (a trainer without the setting must not read it at all)
    quiet = {"log_every": 1000} if "log_every" in {f.name for f in dataclasses.fields(TrainConfig)} else {}
    counts = {}
    for batch_size in (16, 64):
        cfg = TrainConfig(
            rule=rule_name, epochs=2, hidden=(16,), batch_size=batch_size, probe_size=64, backend="guard", **quiet
        )
        with count_transfers() as transfers:
            net, hist = train(cfg, data=digits, progress=False)
        counts[batch_size] = transfers.count
        assert isinstance(net.weight_layers[0].W, GuardArray)
        assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert counts[16] == counts[64], counts


@pytest.mark.parametrize("rule_name", list(RULES))
def test_train_a_cnn_under_the_guard(digits, rule_name):
    from minibp.train import TrainConfig, train

    cfg = TrainConfig(rule=rule_name, model="cnn", epochs=1, width=4, lr=0.02, probe_size=64, backend="guard")
    net, hist = train(cfg, data=digits, progress=False)
    assert isinstance(net.weight_layers[0].W, GuardArray)
    assert len(hist[-1]["delta_angle"]) == len(net.weight_layers) - 1
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]

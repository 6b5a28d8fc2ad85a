"""minibp on a CUDA GPU (CuPy): every layer, loss, rule and metric gives the NumPy backend's numbers
(float64), one training step of a small ResNet agrees with the CPU's in float32 under every rule,
a step makes no host round trip, and training runs end to end.

Every test here is marked ``gpu`` and skipped where CuPy or a CUDA GPU is missing (see
``conftest.py``); ``-m "not gpu"`` leaves them out. With ``MINIBP_GPU_TESTS_BACKEND=guard`` they run
on the guard backend (``minibp.testing``) instead, which checks this file's own code on a machine
without a GPU. The CPU-side checks these build on (finite differences, naive loops, each rule's
equation) live in test_dense.py, test_activations_losses.py, test_convolution.py, test_norm_pool.py,
test_residual.py and test_rules.py: agreeing with the NumPy backend carries them over to the GPU.

The float32 comparison needs full float32 matrix products: ``CUPY_TF32`` must be unset or ``0``
(CuPy reads it once, before its first float32 matmul); the test says so and skips otherwise.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import (
    CONV_CASES,
    LAYERS,
    cmp,
    conv_net_with_rule,
    gpu_backend,
    layer_outputs,
    mlp_batch,
    mlp_with_rule,
    naive_conv,
    state_arrays,
)

from minibp import SGD, get_rule, set_backend, to_numpy, train_step
from minibp.layers import Conv2D, Dense, GlobalAvgPool, ReLU
from minibp.layers.container import FeedbackPass
from minibp.layers.conv import conv2d, conv2d_transpose, conv2d_weight_grad
from minibp.losses import MeanSquaredError, SoftmaxCrossEntropy
from minibp.metrics import accuracy, angle, delta_angles, matrix_angles
from minibp.models import basic_block, bottleneck_block, resnet20
from minibp.network import Network
from minibp.rules import RULES, BatchRandomSignFeedback, WeightMirror
from minibp.rules.family import AlignmentRule

pytestmark = pytest.mark.gpu

RTOL64 = 1e-10  # float64 on GPU vs CPU: only the order of summation differs
RTOL32 = 1e-4  # float32 on GPU vs CPU after one step (relative error of each array, norm-wise)


@pytest.fixture
def dev() -> str:
    """The device backend: ``"cupy"`` (or ``"guard"`` when asked for; the gpu marker skips otherwise)."""
    name, why = gpu_backend()
    assert name is not None, why  # pytest_runtest_setup has skipped already
    return name


def _host(tree: Any) -> Any:
    """Every array in ``tree`` (lists, tuples, dicts) copied to the host."""
    if isinstance(tree, dict):
        return {k: _host(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_host(v) for v in tree]
    if hasattr(tree, "shape"):
        return to_numpy(tree)
    return tree


def both(dev: str, make: Callable[[Any], Any]) -> tuple[Any, Any]:
    """``make(xp)`` on the NumPy backend and on the device, results copied to the host."""
    cpu = _host(make(set_backend("numpy")))
    gpu = _host(make(set_backend(dev)))
    set_backend("numpy")
    return cpu, gpu


def assert_close(cpu: Any, gpu: Any, rtol: float = RTOL64, atol: float = 1e-12, what: str = "") -> None:
    """Element-wise agreement of two trees of host arrays."""
    if isinstance(cpu, dict):
        assert cpu.keys() == gpu.keys(), what
        for k in cpu:
            assert_close(cpu[k], gpu[k], rtol, atol, f"{what}.{k}")
    elif isinstance(cpu, list):
        assert len(cpu) == len(gpu), what
        for i, (c, g) in enumerate(zip(cpu, gpu)):
            assert_close(c, g, rtol, atol, f"{what}[{i}]")
    else:
        np.testing.assert_allclose(gpu, cpu, rtol=rtol, atol=atol, err_msg=cmp(what or "value", gpu, cpu))


def rel_error(gpu: np.ndarray, cpu: np.ndarray) -> float:
    """``‖gpu − cpu‖ / ‖cpu‖`` in float64 (0 when both are zero)."""
    gpu, cpu = np.asarray(gpu, dtype=np.float64), np.asarray(cpu, dtype=np.float64)
    ref = np.linalg.norm(cpu)
    diff = np.linalg.norm(gpu - cpu)
    return float(diff / ref) if ref > 0 else float(diff)


class HostNoise:
    """The weight mirror's noise drawn by NumPy on the host and copied to ``xp``, so that both backends
    mirror with the same numbers (CuPy's generator draws other numbers from the same seed)."""

    def __init__(self, xp: Any, seed: list[int]) -> None:
        self.xp, self.rng = xp, np.random.default_rng(seed)

    def standard_normal(self, shape: tuple[int, ...], dtype: Any = np.float64) -> Any:
        return self.xp.asarray(self.rng.standard_normal(shape, dtype=dtype))


def host_noise(rule: Any, xp: Any) -> None:
    """Make ``rule`` draw its random numbers (the weight mirror's noise, brSF's magnitudes) with
    :class:`HostNoise`."""
    if isinstance(rule, (WeightMirror, AlignmentRule)):
        rule.noise_generator = lambda pass_number: HostNoise(xp, [rule.seed, 3, pass_number])
    if isinstance(rule, BatchRandomSignFeedback):
        rule.magnitude_generator = lambda step, layer: HostNoise(
            xp, [rule.seed, 5, step, zlib.crc32(layer.name.encode())]
        )


# --------------------------------------------------------------------------- the backend


def test_arrays_live_on_the_device_and_come_back_explicitly(dev):
    xp = set_backend(dev)
    from minibp import get_array_module

    a = xp.asarray(np.arange(6.0).reshape(2, 3))
    assert get_array_module(a) is xp and type(a) is not np.ndarray
    back = to_numpy(a * 2)
    assert type(back) is np.ndarray and back.tolist() == [[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]
    with pytest.raises(TypeError):
        np.asarray(a)  # implicit conversion is refused (CuPy and the guard alike)
    with pytest.raises(TypeError):
        a + np.ones((2, 3))  # host arrays do not mix in


# --------------------------------------------------------------------------- layers and losses


@pytest.mark.parametrize(("stride", "padding"), CONV_CASES)
def test_convolution_matches_a_naive_loop(dev, stride, padding):
    rng = np.random.default_rng(stride * 10 + padding)
    x = rng.standard_normal((3, 2, 9, 8))
    W = rng.standard_normal((4, 2, 3, 3))
    d = rng.standard_normal(naive_conv(x, W, stride, padding).shape)

    def run(xp: Any) -> list[Any]:
        xd, Wd, dd = xp.asarray(x), xp.asarray(W), xp.asarray(d)
        return [
            conv2d(xd, Wd, stride, padding),
            conv2d_transpose(dd, Wd, x.shape, stride, padding),
            conv2d_weight_grad(xd, dd, W.shape, stride, padding),
        ]

    cpu, gpu = both(dev, run)
    assert_close(naive_conv(x, W, stride, padding), gpu[0], atol=1e-12, what="conv")
    assert_close(cpu, gpu, what="conv")


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_agrees_with_the_cpu(dev, name, train):
    """Forward, backward, weight gradients and mirror mode of every layer type, in float64."""
    cpu, gpu = both(dev, lambda xp: layer_outputs(xp, name, train, "float64"))
    assert_close(cpu, gpu, what=name)


BLOCKS = {
    "basic": lambda rng, bn: basic_block(4, 4, 1, bn=bn, rng=rng, dtype="float64"),
    "basic-projection": lambda rng, bn: basic_block(4, 6, 2, bn=bn, rng=rng, dtype="float64"),
    "bottleneck-projection": lambda rng, bn: bottleneck_block(4, 2, 2, bn=bn, rng=rng, dtype="float64"),
    "bottleneck": lambda rng, bn: bottleneck_block(8, 2, 1, bn=bn, rng=rng, dtype="float64"),
}


@pytest.mark.parametrize("bn", ["before", "after"])
@pytest.mark.parametrize("block", list(BLOCKS))
def test_residual_blocks_agree_with_the_cpu(dev, block, bn):
    """Both paths of the residual sum, every gradient and the input gradient, under backprop."""

    def run(xp: Any) -> list[Any]:
        rng = np.random.default_rng(7)
        blk = BLOCKS[block](rng, bn)
        c_out = blk.main.layers[-1].c_out if isinstance(blk.main.layers[-1], Conv2D) else blk.main.layers[-2].c_out
        net = Network([blk, GlobalAvgPool(), Dense(c_out, 3, rng=rng, dtype="float64")])
        x = xp.asarray(rng.standard_normal((3, blk.main.layers[0].c_in, 6, 6)))
        loss, dout = SoftmaxCrossEntropy()(net.forward(x), xp.asarray(np.array([0, 2, 1])))
        dx = net.backward_path(dout, FeedbackPass(get_rule("bp"), train=True, error=dout))
        return [loss, dx, [dict(layer.grads) for layer in net.param_layers], state_arrays(net)]

    cpu, gpu = both(dev, run)
    assert_close(cpu, gpu, what=block)


@pytest.mark.parametrize("loss_cls", [SoftmaxCrossEntropy, MeanSquaredError])
def test_losses_agree_with_the_cpu(dev, loss_cls):
    rng = np.random.default_rng(2)
    logits, labels = rng.standard_normal((8, 5)) * 3, rng.integers(0, 5, 8)
    cpu, gpu = both(dev, lambda xp: list(loss_cls()(xp.asarray(logits), xp.asarray(labels))))
    assert_close(cpu, gpu, what=loss_cls.__name__)


# --------------------------------------------------------------------------- the rules


def _mlp_case(rule_name: str, xp: Any) -> tuple[Network, Any, Any, Any]:
    opts = {"every": 1, "batch_size": 16} if rule_name == "wm" else {}
    net, rule = mlp_with_rule(rule_name, **opts)
    x, y = mlp_batch()
    return net, rule, xp.asarray(x), xp.asarray(y)


def _conv_case(rule_name: str, xp: Any) -> tuple[Network, Any, Any, Any]:
    net, rule, x, y = conv_net_with_rule(rule_name)
    if isinstance(rule, WeightMirror):
        rule.every, rule.batch_size = 1, 16
    return net, rule, xp.asarray(x), xp.asarray(y)


@pytest.mark.parametrize("case", [_mlp_case, _conv_case], ids=["mlp", "conv"])
@pytest.mark.parametrize("rule_name", list(RULES))
def test_rules_agree_with_the_cpu_over_training_steps(dev, rule_name, case):
    """Three steps under each rule (float64): the deltas of eqs (2)/(3), the gradients of eqs (4) and
    (17), the updates of eqs (16)-(17) and the weight mirror's eqs (6)-(7) (with the same noise)."""

    def run(xp: Any) -> list[Any]:
        net, rule, x, y = case(rule_name, xp)
        host_noise(rule, xp)
        opt = SGD(0.05, momentum=0.9, weight_decay=0.1)
        out = []
        for _ in range(3):
            _, dout = SoftmaxCrossEntropy()(net.forward(x), y)
            deltas = net.backward(dout, rule)
            out.append([deltas, [dict(layer.grads) for layer in net.param_layers]])
            opt.step(net.param_layers)
            rule.after_step(net)
        out.append([rule.feedback_matrix(layer) for layer in net.weight_layers])
        return [*out, state_arrays(net)]

    cpu, gpu = both(dev, run)
    assert_close(cpu, gpu, rtol=1e-9, atol=1e-12, what=rule_name)


def test_metrics_agree_with_the_cpu(dev):
    def run(xp: Any) -> list[Any]:
        net, rule, x, y = _conv_case("fa", xp)
        loss_fn = SoftmaxCrossEntropy()
        ma, da = matrix_angles(net, rule), delta_angles(net, rule, x, y, loss_fn)
        return [ma, da, accuracy(net.forward(x, train=False), y), angle(x, x * 2), state_arrays(net)]

    cpu, gpu = both(dev, run)
    assert isinstance(gpu[0][0], float) and gpu[3] == pytest.approx(0.0, abs=1e-6)
    assert_close(cpu, gpu, rtol=1e-9, atol=1e-9, what="metrics")


def test_weight_mirror_aligns_a_conv_layer_with_device_noise(dev):
    """Mirror mode with the device's own random generator (as in training): B aligns with W."""
    xp = set_backend(dev)
    rng = np.random.default_rng(8)
    conv = Conv2D(3, 4, 3, stride=2, padding=1, rng=rng, dtype="float64")
    conv.params["b"][...] = xp.asarray(rng.standard_normal(4))  # unequal biases, blocked (eq 12)
    net = Network([conv, ReLU()])
    rule = WeightMirror(sigma=1.0, lr=0.01, decay=0.01, batch_size=64, seed=1)
    net.init_feedback(rule, rng)
    start = angle(conv.params["B"], conv.W)
    for _ in range(1500):
        rule.mirror(net)
    end = angle(conv.params["B"], conv.W)
    assert type(conv.params["B"]) is type(conv.W)
    assert start > 60 and end < 2, (start, end)


# --------------------------------------------------------------------------- a ResNet step in float32


def _tf32_skip(dev: str) -> None:
    flag = os.environ.get("CUPY_TF32", "").strip()
    if dev == "cupy" and flag not in ("", "0"):
        pytest.skip(
            f"CUPY_TF32={flag}: float32 matmuls run in TF32 (10-bit mantissa), about 1e-3 relative error; "
            "unset CUPY_TF32 (or set it to 0) before the process starts to compare GPU and CPU in float32"
        )


@pytest.mark.parametrize("rule_name", list(RULES))
def test_one_resnet_step_agrees_with_the_cpu_in_float32(dev, rule_name):
    """Loss, every gradient, every parameter and running statistic after one step of a small ResNet-20
    (with WM's mirror pass), GPU against CPU in float32: relative error < 1e-4 per array."""
    _tf32_skip(dev)

    def run(xp: Any) -> list[Any]:
        net = resnet20((3, 16, 16), 10, width=4, seed=0, dtype="float32")
        rule = WeightMirror(every=1, batch_size=32, seed=2) if rule_name == "wm" else get_rule(rule_name)
        host_noise(rule, xp)
        rng = np.random.default_rng(0)
        x = xp.asarray(rng.standard_normal((8, 3, 16, 16), dtype=np.float32))
        y = xp.asarray(rng.integers(0, 10, 8))
        net.init_feedback(rule, np.random.default_rng(1), example=x[:1])
        loss = train_step(net, rule, SoftmaxCrossEntropy(), SGD(0.1, momentum=0.9, weight_decay=1e-4), x, y).loss
        grads = [g for layer in net.param_layers for g in layer.grads.values()]
        return [loss, *grads, *state_arrays(net)]

    cpu, gpu = both(dev, run)
    errors = [rel_error(g, c) for g, c in zip(gpu, cpu, strict=True)]
    worst = int(np.argmax(errors))
    assert errors[worst] < RTOL32, f"array {worst} of {len(errors)}: relative error {errors[worst]:.2e}"


def test_a_training_step_makes_no_host_round_trip(dev):
    """On the guard: no transfer at all. On CuPy (where ``cupyx.allow_synchronize`` still exists): no
    device synchronisation inside a step once it has run once (allocations and plans warmed up)."""
    xp = set_backend(dev)
    net = resnet20((3, 16, 16), 10, width=4, dtype="float32")
    rule = WeightMirror(every=1, batch_size=16)
    net.init_feedback(rule, np.random.default_rng(1))
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((8, 3, 16, 16), dtype=np.float32))
    y = xp.asarray(rng.integers(0, 10, 8))
    opt, loss_fn = SGD(0.1, momentum=0.9, weight_decay=1e-4), SoftmaxCrossEntropy()
    train_step(net, rule, loss_fn, opt, x, y)
    if dev == "guard":
        from minibp.testing import count_transfers

        with count_transfers() as transfers:
            train_step(net, rule, loss_fn, opt, x, y)
        assert transfers.count == 0
        return
    import cupyx

    no_sync = getattr(cupyx, "allow_synchronize", None)
    if no_sync is None:
        pytest.skip("this CuPy has no cupyx.allow_synchronize (removed after its deprecation in v10)")
    xp.cuda.Device().synchronize()
    with no_sync(False):
        loss = train_step(net, rule, loss_fn, opt, x, y).loss
    assert np.isfinite(to_numpy(loss))


# --------------------------------------------------------------------------- training end to end


@pytest.mark.parametrize("rule_name", list(RULES))
def test_training_on_the_device_matches_the_cpu(dev, rule_name):
    """One epoch of the LeNet-style CNN on digits through ``minibp.train``: the weights live on the
    device, the loss falls, and (but for WM, whose device noise differs) the CPU's numbers come out."""
    pytest.importorskip("sklearn")
    _tf32_skip(dev)
    from minibp.data import load_digits
    from minibp.train import TrainConfig, train

    data = load_digits()
    hist = {}
    for backend in ("numpy", dev):
        cfg = TrainConfig(rule=rule_name, model="cnn", epochs=1, width=4, lr=0.02, probe_size=64, backend=backend)
        net, hist[backend] = train(cfg, data=data, progress=False)
        assert (type(net.weight_layers[0].W) is np.ndarray) == (backend == "numpy")
    first, last = hist[dev][0], hist[dev][-1]
    assert last["train_loss"] < first["train_loss"]
    draws_on_device = rule_name in ("wm", "brsf") or getattr(get_rule(rule_name), "source", "") == "noise"
    if not draws_on_device or dev == "guard":  # noise from the device's generator differs from NumPy's
        for key in ("train_loss", "test_loss"):
            assert last[key] == pytest.approx(hist["numpy"][-1][key], rel=1e-4), key
        assert last["matrix_angle"] == pytest.approx(hist["numpy"][-1]["matrix_angle"], abs=1e-3, nan_ok=True)

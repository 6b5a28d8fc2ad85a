"""Synaptic scaling (Turrigiano 2008; van Rossum, Bi & Turrigiano 2000): each unit's mean rate settles
at its target, the forward and backward passes never read the batch, the gain step is the rule's
multiplicative step, and a unit's gain is its own (per channel after a convolution, per unit after a
locally connected layer)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grad

from minibp.layers import ReLU, SynapticScaling, get_activation


def drives(rng, n, means, scales):
    """A batch of unit drives ``x``: ``(n, C, 3, 3)`` images, channel ``c`` of mean ``means[c]`` and
    spread ``scales[c]`` (a stationary input, as a unit sees while its inputs do not learn)."""
    c = len(means)
    return np.asarray(means)[None, :, None, None] + np.asarray(scales)[None, :, None, None] * rng.standard_normal(
        (n, c, 3, 3)
    )


@pytest.mark.parametrize("measure", ["relu", "rectified_tanh", None])
def test_each_units_mean_rate_settles_at_the_target(measure):
    """The fixed point: after enough batches each unit's rate (φ of its scaled drive, or the scaled
    drive itself where the layer follows φ) averages the target, on fresh inputs, whatever its drive's
    mean and spread; the trace, a noisy estimate from batch to batch, averages it over time; units with
    other drives took other gains."""
    rng = np.random.default_rng(0)
    means, scales = [0.5, 2.0, -0.2, 0.05], [1.0, 0.3, 1.0, 2.0]
    if measure is None:  # after φ: the drive is a rate, non-negative
        means, scales = [0.5, 2.0, 0.1, 0.05], [0.0, 0.0, 0.0, 0.0]
    act = get_activation(measure) if measure else None
    layer = SynapticScaling(4, measure=act, target=0.2, rate=0.1, lr=0.05, dtype="float64")
    traces = []
    for step in range(2000):
        layer.forward(np.abs(drives(rng, 32, means, scales)) if measure is None else drives(rng, 32, means, scales))
        if step >= 1500:
            traces.append(layer.buffers["activity"].copy())
    x = drives(rng, 20000, means, scales)
    x = np.abs(x) if measure is None else x
    out = layer.forward(x, train=False)
    rate = (act.phi(out) if act else out).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(rate, 0.2, rtol=0.03)
    np.testing.assert_allclose(np.mean(traces, axis=0), 0.2, rtol=0.03)
    assert np.ptp(layer.buffers["gain"]) > 0.5  # units with other drives took other gains


def test_a_unit_per_position_gets_its_own_gain():
    """``units=(C, H, W)``: the units at different positions of a channel see different drives and
    settle at the target each, by gains of their own. (32 samples a batch per unit: the gain wanders
    about its fixed point, so the rate is averaged over the last 500 batches' gains.)"""
    rng = np.random.default_rng(1)
    mean = rng.uniform(0.2, 2.0, (2, 3, 3))
    layer = SynapticScaling((2, 3, 3), measure=ReLU(), target=0.3, lr=0.05, dtype="float64")
    probe = mean + 0.3 * rng.standard_normal((4000, 2, 3, 3))
    rates = []
    for step in range(2000):
        layer.forward(mean + 0.3 * rng.standard_normal((32, 2, 3, 3)))
        if step >= 1500:
            rates.append(np.maximum(layer.forward(probe, train=False), 0).mean(axis=0))
    np.testing.assert_allclose(np.mean(rates, axis=0), 0.3, rtol=0.03)
    assert len(np.unique(np.round(layer.buffers["gain"], 6))) == 18


@pytest.mark.parametrize("train", [True, False])
def test_the_forward_and_backward_passes_never_read_the_batch(train):
    """Each example's output is its drive times the gain held before the batch, bit for bit, whatever
    the other examples are; each example's ``dx`` is its ``dy`` times that gain: no batch statistic
    enters either pass (batch norm's output and derivative would change)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 3, 4, 4))
    dy = rng.standard_normal(x.shape)
    outs, grads = [], []
    for other in (x[1:], 5 + 3 * rng.standard_normal(x[1:].shape)):
        layer = SynapticScaling(3, measure=ReLU(), dtype="float64")
        layer.buffers["gain"][:] = [0.5, 1.0, 2.0]
        gain = layer.buffers["gain"].copy()
        batch = np.concatenate([x[:1], other])
        out = layer.forward(batch, train)
        np.testing.assert_array_equal(out, batch * gain[None, :, None, None])
        dx = layer.backward(np.concatenate([dy[:1], dy[1:]]))
        np.testing.assert_array_equal(dx, dy * gain[None, :, None, None])  # the forward pass's gain
        outs.append(out[0])
        grads.append(dx[0])
        assert train != np.array_equal(layer.buffers["gain"], gain)  # training moved the gain after the pass
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(grads[0], grads[1])


def test_backward_is_the_exact_derivative_with_the_gain_held():
    rng = np.random.default_rng(3)
    layer = SynapticScaling((2, 3, 3), dtype="float64")
    layer.buffers["gain"][...] = rng.uniform(0.5, 2, (2, 3, 3))
    x = rng.standard_normal((4, 2, 3, 3))
    g = rng.standard_normal(x.shape)
    layer.forward(x, train=False)
    dx = layer.backward(g)
    check_grad(lambda: float(np.sum(g * layer.forward(x, train=False))), x, dx, rng)


def test_one_step_is_the_multiplicative_rule():
    """``a ← a + ρ (r̄ − a)``, ``g ← g · exp(η (a* − a) / a*)``, the rate measured on the scaled drive."""
    rng = np.random.default_rng(4)
    layer = SynapticScaling(2, measure=ReLU(), target=0.4, rate=0.2, lr=0.1, dtype="float64")
    layer.buffers["gain"][:] = [0.5, 3.0]
    x = rng.standard_normal((16, 2))
    layer.forward(x)
    rbar = np.maximum(x * [0.5, 3.0], 0).mean(axis=0)
    a = 0.4 + 0.2 * (rbar - 0.4)
    np.testing.assert_allclose(layer.buffers["activity"], a, rtol=1e-14)
    np.testing.assert_allclose(layer.buffers["gain"], [0.5, 3.0] * np.exp(0.1 * (0.4 - a) / 0.4), rtol=1e-14)
    assert (layer.buffers["gain"] > 0).all()


def test_a_silent_units_gain_grows_without_bound_unless_capped():
    """A unit whose drive is never positive (a blank patch, a drive below threshold) fires at rate 0
    whatever its gain, so its gain has no fixed point: it grows by ``e^η`` every batch (the trace
    settles at 0, the error at ``a*``); ``max_gain`` stops it there while the other units settle."""
    rng = np.random.default_rng(5)
    for max_gain, expected in ((0.0, np.exp(0.05 * 300)), (10.0, 10.0)):
        layer = SynapticScaling(2, measure=ReLU(), target=0.2, rate=1.0, lr=0.05, max_gain=max_gain, dtype="float64")
        for _ in range(300):
            x = np.stack([-np.abs(rng.standard_normal(64)), 1 + 0.2 * rng.standard_normal(64)], axis=1)
            layer.forward(x)
        assert layer.buffers["gain"][0] == pytest.approx(expected, rel=1e-9)
        assert layer.buffers["activity"][0] == 0
        assert layer.buffers["gain"][1] == pytest.approx(0.2, rel=0.1)  # mean ReLU(g · x) = g · 1 at rate 0.2


def test_bad_settings_and_shapes_are_refused():
    with pytest.raises(ValueError, match="target > 0"):
        SynapticScaling(3, target=0)
    with pytest.raises(ValueError, match="max_gain >= 0"):
        SynapticScaling(3, max_gain=-1)
    with pytest.raises(ValueError, match="units are"):
        SynapticScaling((3, 4))
    with pytest.raises(ValueError, match=r"expects \(batch, 3, 4, 4"):
        SynapticScaling((3, 4, 4)).forward(np.zeros((2, 3, 5, 5), np.float32))

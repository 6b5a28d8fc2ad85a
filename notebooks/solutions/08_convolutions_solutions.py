# %% [markdown]
# # 08 · Convolutions and ResNets — worked solutions
#
# Solutions to the open-ended exercises of `08_convolutions`. Each one rebuilds what it needs and
# ends in an `assert` that checks the answer.

# %%
import math

import numpy as np

import minibp
from minibp.layers import BatchNorm, Conv2D, Dense, Flatten, LocalConv2D, MaxPool2D, ReLU
from minibp.layers.conv import conv2d, conv2d_weight_grad


# %% [markdown]
# ## Exercise 1 · Stride and the mirror
#
# Without padding, output position `(p, q)` of a stride-`s` convolution reads input pixels
# `s·p + i`, `s·q + j` for every tap `(i, j)`: each tap of each position lands on a noise pixel,
# whatever the stride. So *any* unpadded side `S ≥ k` gives every tap the same number of positions,
# `((S − k)//s + 1)²`, and the correlation's expectation is `σ² W` tap by tap. The side
# `k + s·(m − 1)` that `Conv2D.mirror_input_shape` uses is the one that gives `m` positions a side
# with no pixel left unread: sides between two of those add pixels that no patch reads.


# %%
def tap_factors(layer, side, padding, sigma=0.5, n=20_000, seed=0):
    """Per tap: the mirror correlation over every patch of linear noise images, divided by σ² W."""
    noise = sigma * np.random.default_rng(seed).standard_normal((n, layer.c_in, side, side))
    out = conv2d(noise, layer.W, layer.stride, padding)
    corr = conv2d_weight_grad(noise, out, layer.W.shape, layer.stride, padding) / (n * out.shape[2] * out.shape[3])
    return np.sum(corr * layer.W, axis=(0, 1)) / np.sum(layer.W**2, axis=(0, 1)) / sigma**2


strided = Conv2D(2, 3, 3, stride=2, padding=1, rng=np.random.default_rng(1), dtype="float64")
side = strided.mirror_input_shape[1]
print(f"mirror noise side for k = 3, s = 2: {side} (= 3 + 2·(4 − 1))")
assert strided.mirror_input_shape == (2, 3 + 2 * (Conv2D.mirror_positions - 1), side)
for s_side in (side, side + 1):  # side + 1: one more row and column that no patch reads
    factors = tap_factors(strided, s_side, 0)
    print(f"unpadded, side {s_side}: tap factors from {factors.min():.3f} to {factors.max():.3f}")
    assert np.allclose(factors, 1, atol=0.04)
padded = tap_factors(strided, 8, 1)
print("padded by 1, side 8: tap factors\n", padded.round(2))
assert padded.min() < 0.9  # the border's zeros take their share again

# %% [markdown]
# ## Exercise 2 · Sign-symmetry for kernels
#
# The angle between `sign(W)` and `W` does not depend on the scale in front of `sign(W)`: for
# Gaussian entries it is `arccos(E|w| / √(E w²)) = arccos √(2/π) ≈ 37.1°`, as for a dense layer
# (notebook 06), since `vec(W)` of a kernel is just a Gaussian vector of `C_out·C_in·k²` entries.
# The scale `√(2/(k²·C_out))` sets the size: He initialisation draws `W` with standard deviation
# `√(2/(C_in·k²))`, so `‖sign(W)·scale‖ / ‖W‖ ≈ √(C_in / C_out)`: the sizes agree where the layer
# keeps its width, and the feedback is smaller than `W` where the layer widens (`C_out > C_in`),
# larger where it narrows.

# %%
ss = minibp.get_rule("ss")
expected = math.degrees(math.acos(math.sqrt(2 / math.pi)))
for c_in, c_out in [(16, 16), (16, 64), (64, 16)]:
    layer = Conv2D(c_in, c_out, 3, gain=ReLU.gain, rng=np.random.default_rng(c_in + c_out), dtype="float64")
    F = ss.feedback_matrix(layer)
    a = minibp.angle(F, layer.W)
    ratio = np.linalg.norm(F) / np.linalg.norm(layer.W)
    print(f"C_in {c_in:2d}, C_out {c_out:2d}: ∠(sign W, W) = {a:.2f}°, ‖F‖/‖W‖ = {ratio:.2f} (√(C_in/C_out) = {math.sqrt(c_in / c_out):.2f})")
    assert abs(a - expected) < 1.5
    assert abs(ratio / math.sqrt(c_in / c_out) - 1) < 0.05

# %% [markdown]
# ## Exercise 3 · FA with batch norm
#
# The CNN of notebook 08's section 4 under FA, once as it is and once with a `BatchNorm` after each
# ReLU, 200 steps each from the same start and batches. We measure the first layer's delta angle on
# a probe batch every 20 steps.
#
# **What it shows.** In both, the first convolution's error signal stays close to 90° from the
# gradient over 200 steps: feedback alignment barely aligns a convolution's `δ` (notebook 06 found
# the same in its CNN), and the network learns mostly through the layers near the output. Batch
# norm's derivative (notebook 08, section 5) is the same under FA as under backprop, so it cannot
# turn FA's `δ` toward backprop's by itself; on this seed the run with batch norm ends several degrees
# lower and with a better test accuracy, a difference one seed cannot settle.

# %%
data = minibp.data.load_digits(flatten=False, dtype="float64")
loss_fn = minibp.SoftmaxCrossEntropy()


def cnn(with_bn, seed=6):
    rng = np.random.default_rng(seed)
    norm = (lambda c: [BatchNorm(c, dtype="float64")]) if with_bn else (lambda c: [])
    return minibp.Network(
        [
            Conv2D(1, 6, 3, padding=1, gain=ReLU.gain, rng=rng, dtype="float64"),
            ReLU(),
            *norm(6),
            MaxPool2D(2),
            Conv2D(6, 8, 3, padding=1, gain=ReLU.gain, rng=rng, dtype="float64"),
            ReLU(),
            *norm(8),
            MaxPool2D(2),
            Flatten(),
            Dense(8 * 2 * 2, 10, rng=rng, dtype="float64"),
        ]
    )


def fa_run(with_bn, steps=200):
    net, fa = cnn(with_bn), minibp.get_rule("fa")
    net.init_feedback(fa, np.random.default_rng(7))
    opt, batches = minibp.SGD(0.1, momentum=0.9), np.random.default_rng(8)
    probe = (data.x_train[:256], data.y_train[:256])
    angles = []
    for step in range(steps + 1):
        if step % 20 == 0:
            angles.append(minibp.delta_angles(net, fa, *probe, loss_fn)[0])
        if step < steps:
            idx = batches.choice(len(data.x_train), 64, replace=False)
            minibp.train_step(net, fa, loss_fn, opt, data.x_train[idx], data.y_train[idx])
    accuracy = minibp.metrics.accuracy(net.forward(data.x_test, train=False), data.y_test)
    return np.array(angles), accuracy


plain, acc_plain = fa_run(False)
normed, acc_normed = fa_run(True)
print("first layer's delta angle every 20 steps, no BN:  ", plain.round(1), f" test accuracy {acc_plain:.3f}")
print("first layer's delta angle every 20 steps, BN after:", normed.round(1), f" test accuracy {acc_normed:.3f}")
assert np.all(np.abs(plain - 90) < 10) and np.all(np.abs(normed - 90) < 15)  # near orthogonal throughout
assert min(acc_plain, acc_normed) > 0.5  # both learn, through the layers near the output


# %% [markdown]
# ## Exercise 4 · The mirror's noise budget without sharing
#
# With decay `λ_B` per pass, the settled `B` is an exponentially weighted average of the passes'
# correlations, over about `1/λ_B` of them: its noise is that of a correlation estimated from about
# `N/λ_B` samples, and it stays at that floor however long the mirror runs. A convolution's kernel
# pools its `Ho·Wo = 16` positions, so each pass gives it `16 N` patches; each of the local
# layer's `B[r, s]` gets its own `N`. So the local layer needs `16 N` noise images a pass to settle
# as close to `W` as the convolution does with `N`.


# %%
def settled_angle(layer, batch_size, passes=600, seed=0):
    """∠(B, W) after the mirror settles: one angle for a convolution, the median over positions else."""
    wm = minibp.get_rule("wm", sigma=1.0, lr=0.02, decay=0.02, batch_size=batch_size, seed=seed)
    net = minibp.Network([layer])
    net.init_feedback(wm, np.random.default_rng(seed + 1))
    for _ in range(passes):
        wm.mirror(net)
    if isinstance(layer, Conv2D):
        return minibp.angle(layer.B, layer.W)
    ho, wo = layer.out_size
    return float(np.median([minibp.angle(layer.B[r, s], layer.W[r, s]) for r in range(ho) for s in range(wo)]))


def tied_pair():
    conv = Conv2D(3, 4, 3, bias=False, rng=np.random.default_rng(9), dtype="float64")
    local = LocalConv2D(3, 4, 3, (6, 6), bias=False, rng=np.random.default_rng(9), dtype="float64")
    local.params["W"][...] = conv.W  # the same kernel at each of the 4 × 4 positions
    return conv, local


conv_16 = settled_angle(tied_pair()[0], 16)
local_16 = settled_angle(tied_pair()[1], 16)
local_256 = settled_angle(tied_pair()[1], 256)
print(f"settled ∠(B, W): conv, 16 images {conv_16:.2f}°; local, 16 images {local_16:.2f}°, 256 images {local_256:.2f}°")
assert local_16 > 2.5 * conv_16  # one sample per image per position: about √16 = 4 times the error
assert abs(local_256 / conv_16 - 1) < 0.5  # 16 times the noise: the convolution's floor

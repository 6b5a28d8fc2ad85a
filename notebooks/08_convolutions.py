# %% [markdown]
# # 08 · Convolutions and ResNets under the rules
#
# **Paper:** Akrout et al., *Deep Learning without Weight Transport* (NeurIPS 2019),
# **Section 6** (the ResNet-18 and ResNet-50 experiments) and eqs (1)–(3), (7) and (17) in
# convolutional form.
#
# The paper's large experiments are convolutional networks. A convolution is the dense layer of
# eq (1) applied to every `k×k` patch with the *same* kernel, so every rule carries over — but
# each piece takes a convolutional shape, and this notebook computes each one:
#
# 1. `B` is a **kernel** of `W`'s shape `(C_out, C_in, k, k)`, and the feedback matrix it stands
#    for is the transpose of a convolution's matrix;
# 2. the feedback path is a **transposed convolution** (you write it), checked as the adjoint
#    of the forward convolution;
# 3. the **conv mirror**: mirror mode's correlation settles at `σ² W` only when every output
#    position sees a full patch of noise — which is why its noise images have no padding;
# 4. **Kolen–Pollack** in a small CNN: `W − B` shrinks by `(1 − λ)` per step, kernel by kernel;
# 5. what **batch norm after the ReLU** (the paper's ResNet variant) does to the feedback;
# 6. what changes for the mirror and for KP **without weight sharing** (locally connected layers,
#    the brain-like replacement the paper's Section 6 asks for): you write each position's
#    mirror correlation.
#
# Images are `(N, C, H, W)`; everything here is float64 so the checks can be tight.

# %%
# On Colab or Binder: install minibp first when it cannot be imported (docs/course.md, "Running the notebooks")
try:
    import minibp  # noqa: F401
except ModuleNotFoundError:
    import os
    import subprocess
    import sys

    MINIBP_SOURCE = os.environ.get("MINIBP_PIP_SOURCE", "")  # your course's pip source, e.g. git+https://…/minibp
    if not MINIBP_SOURCE:
        raise ModuleNotFoundError("minibp is not installed: set MINIBP_SOURCE in this cell to a pip source") from None
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", MINIBP_SOURCE])

# %%
import matplotlib.pyplot as plt
import numpy as np

import minibp
from minibp import exercises
from minibp.layers import BatchNorm, Conv2D, Dense, Flatten, Identity, LocalConv2D, MaxPool2D, ReLU
from minibp.layers.conv import conv2d, conv2d_weight_grad
from minibp.plots import save_figure

rng = np.random.default_rng(0)


def rel(a, b):
    """Relative difference ‖a − b‖ / ‖b‖."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# %% [markdown]
# ## 1 · B is a kernel
#
# Under FA, WM and KP a convolution's feedback weights `B` are a kernel of the same shape as `W`,
# and the feedback path uses `B` wherever backprop uses `W` (eq 3 in convolutional form). The
# matrix angle of Fig 4 compares `vec(B)` with `vec(W)`.
#
# Why a kernel, and not a matrix of `Wᵀ`'s shape? Write the convolution as the matrix `M_W` that
# maps a flattened image to a flattened output. Backprop's feedback is `M_Wᵀ`. Weight sharing
# makes `M_W` a matrix built from the few numbers of `W`, so a feedback path that shares its
# weights the same way is `M_Bᵀ`: the same construction from a kernel `B`. We build both
# matrices column by column (the image of each unit input) and check that the feedback of a
# random `B` is exactly `M_Bᵀ δ`.

# %%
conv = Conv2D(2, 3, 3, stride=1, padding=1, rng=rng, dtype="float64")
x_shape = (1, 2, 5, 5)
fa = minibp.get_rule("fa")
net = minibp.Network([conv, ReLU(), Flatten(), Dense(3 * 5 * 5, 4, rng=rng, dtype="float64")])
net.init_feedback(fa, np.random.default_rng(1))
print(f"W {conv.W.shape}, B {conv.B.shape}; ∠(vec B, vec W) = {minibp.angle(conv.B, conv.W):.1f}°")
assert conv.B.shape == conv.W.shape


def conv_matrix(kernel):
    """The matrix of x ↦ kernel ⋆ x on images of x_shape: one column per input unit."""
    n_in = int(np.prod(x_shape))
    columns = [conv2d(np.eye(n_in)[i].reshape(x_shape), kernel, 1, 1).ravel() for i in range(n_in)]
    return np.stack(columns, axis=1)


M_W, M_B = conv_matrix(conv.W), conv_matrix(conv.B)
conv.forward(rng.standard_normal(x_shape))  # the layer keeps its input's shape for the feedback
delta = rng.standard_normal((1, 3, 5, 5))
assert rel(conv.backward_input(delta, conv.W).ravel(), M_W.T @ delta.ravel()) < 1e-12  # eq (2): M_Wᵀ δ
assert rel(conv.backward_input(delta, fa.feedback_matrix(conv)).ravel(), M_B.T @ delta.ravel()) < 1e-12  # eq (3)
print(f"M_W is {M_W.shape[0]}×{M_W.shape[1]} with {np.count_nonzero(M_W)} non-zeros, made of {conv.W.size} numbers")
print(f"∠(M_B, M_W) = {minibp.angle(M_B, M_W):.1f}°: the angle of the kernels, up to the border's missing taps")

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 3.2))
vmax = np.abs(M_W).max()
for ax, M, title in zip(axes, [M_W.T, M_B.T], ["backprop's feedback M_Wᵀ", "FA's feedback M_Bᵀ (B a random kernel)"]):
    ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("output unit (C_out·H·W)")
    ax.set_ylabel("input unit (C_in·H·W)")
fig.tight_layout()
save_figure(fig, "08_conv_feedback_matrices")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 2 · The feedback path is a transposed convolution
#
# Building `M_Wᵀ` costs memory quadratic in the image; the feedback path never does. Each output
# error `δ[n, o, p, q]` was computed from one patch of the input, through the kernel `F[o]`; going
# back, it is spread over that same patch with the same weights:
#
# `dx[n, c, p·s + i − pad, q·s + j − pad] += Σ_o δ[n, o, p, q] · F[o, c, i, j]`,
#
# summed over every output position `(p, q)` and kernel tap `(i, j)`, with stride `s` and zero
# padding `pad`. That is the **transposed convolution** `convᵀ(δ, F)`: the adjoint of the
# forward convolution, `⟨F ⋆ x, δ⟩ = ⟨x, convᵀ(δ, F)⟩` for every `x` and `δ`.
#
# ### Exercise 1 · convᵀ (implement it)
#
# Write `conv_feedback(delta, F, x_shape, stride, padding)`: `delta` is `(N, C_out, H_out, W_out)`,
# `F` a kernel `(C_out, C_in, k, k)`, and the result an image of shape `x_shape`,
# `(N, C_in, H, W)`. One way: start from zeros of the padded shape, loop over the `k²` taps
# (not over pixels), add each tap's contribution with a strided slice and `np.einsum`, and
# crop the padding at the end. `exercises.check_conv_feedback` compares it with minibp's on random
# shapes, strides and paddings.


# %%
def conv_feedback(delta, F, x_shape, stride, padding):
    """convᵀ(δ, F): each output error spread back over its patch through the kernel F (eqs 2-3)."""
    ### BEGIN SOLUTION
    n, c_in, h, w = x_shape
    k = F.shape[2]
    ho, wo = delta.shape[2:]
    out = np.zeros((n, c_in, h + 2 * padding, w + 2 * padding))
    for i in range(k):
        for j in range(k):
            tap = np.einsum("nopq,oc->ncpq", delta, F[:, :, i, j])  # every position's share through tap (i, j)
            out[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += tap
    return out[:, :, padding : padding + h, padding : padding + w]
    ### END SOLUTION


conv_feedback = exercises.check_conv_feedback(conv_feedback)

# %% [markdown]
# The adjoint identity, for a strided, padded convolution, on many random pairs `(x, δ)`: the two
# inner products agree to rounding. And under backprop the layer's own feedback path
# (`layer.backward_input(δ, W)`, eq 2) is the same map.

# %%
layer = Conv2D(3, 5, 3, stride=2, padding=1, rng=rng, dtype="float64")
shape = (2, 3, 9, 9)
lhs, rhs = [], []
for _ in range(50):
    x = rng.standard_normal(shape)
    d = rng.standard_normal(layer.forward(x).shape)
    lhs.append(np.sum((layer.forward(x) - layer.b[:, None, None]) * d))  # ⟨W ⋆ x, δ⟩ (the bias is not linear)
    rhs.append(np.sum(x * conv_feedback(d, layer.W, shape, 2, 1)))  # ⟨x, convᵀ(δ, W)⟩
lhs, rhs = np.array(lhs), np.array(rhs)
print(f"largest |⟨Wx, δ⟩ − ⟨x, convᵀ(δ, W)⟩| over 50 pairs: {np.abs(lhs - rhs).max():.1e}")
assert np.allclose(lhs, rhs, rtol=1e-12, atol=1e-10)
assert rel(conv_feedback(d, layer.W, shape, 2, 1), layer.backward_input(d, layer.W)) < 1e-12

# %% [markdown]
# ## 3 · The conv mirror: its fixed point, and why its noise has no padding
#
# In mirror mode (eqs 6–7) a convolution fires noise images `y_l` of standard deviation `σ`
# through its kernel, and `B` takes the Hebbian step with the correlation of every input patch
# with the output it produced, averaged over every patch (`layer.mirror_correlation`). For a
# linear layer, tap `(i, j)` of that correlation is
# `E[y_l[c, p + i, q + j] · y_{l+1}[o, p, q]] = σ² W[o, c, i, j]`: a multiple of `W`, the
# convolutional eq (5).
#
# That needs every tap of every output position to land on a noise pixel. With zero padding,
# a tap that lands on the border's zeros adds nothing, so tap `(i, j)` only collects a fraction
# `m_ij` of the positions: the expected correlation is `σ² W ⊙ m`, no longer a multiple of `W`
# (the corner taps lose the most). So minibp's conv mirror uses noise images with no padding,
# of side `k + s·(positions − 1)` (`Conv2D.mirror_forward`). We measure both on 20,000 noise images.

# %%
mlayer = Conv2D(2, 3, 3, stride=1, padding=1, rng=np.random.default_rng(3), dtype="float64")
sigma, side = 0.5, 4
noise = sigma * np.random.default_rng(4).standard_normal((20_000, 2, side, side))


def tap_factors(padding):
    """Per tap: the mirror correlation (mean over every patch) over σ² W, fitted tap by tap."""
    out = conv2d(noise, mlayer.W, 1, padding)  # linear layer, bias blocked
    n_patches = out.shape[0] * out.shape[2] * out.shape[3]
    corr = conv2d_weight_grad(noise, out, mlayer.W.shape, 1, padding) / n_patches
    return np.sum(corr * mlayer.W, axis=(0, 1)) / np.sum(mlayer.W**2, axis=(0, 1)) / sigma**2, corr


factor_none, corr_none = tap_factors(0)
factor_pad, corr_pad = tap_factors(1)
positions = side  # with padding 1 and a 3×3 kernel: side × side output positions
inside = np.array([[min(positions, positions - abs(1 - i)) for i in range(3)]]) / positions  # rows or columns kept
expected_pad = inside.T @ inside  # m_ij: the fraction of positions whose tap (i, j) lands on noise
print("tap factors, no padding:\n", factor_none.round(3))
print("tap factors, padding 1:\n", factor_pad.round(3), "\nexpected m_ij:\n", expected_pad.round(3))
assert np.allclose(factor_none, 1, atol=0.03)
assert np.allclose(factor_pad, expected_pad, atol=0.03)
print(f"∠(correlation, W): no padding {minibp.angle(corr_none, mlayer.W):.2f}°, "
      f"padding 1 {minibp.angle(corr_pad, mlayer.W):.2f}°")
assert minibp.angle(corr_none, mlayer.W) < 2 < minibp.angle(corr_pad, mlayer.W)

# %% [markdown]
# The rule itself: `WeightMirror.mirror` drives the layer with unpadded noise images and decays
# `B` by `λ_B` per pass, so `B` settles at `(η_B / λ_B) σ² W` (here `η_B = λ_B`, and no activation
# follows the layer, so `φ' = 1`).

# %%
wm = minibp.get_rule("wm", sigma=sigma, lr=0.02, decay=0.02, batch_size=64, seed=0)
one = minibp.Network([mlayer])
one.init_feedback(wm, np.random.default_rng(5))
angles = [minibp.angle(mlayer.B, mlayer.W)]
for _ in range(400):
    wm.mirror(one)
    angles.append(minibp.angle(mlayer.B, mlayer.W))
scale = np.sum(mlayer.B * mlayer.W) / np.sum(mlayer.W**2)
print(f"∠(B, W): {angles[0]:.0f}° → {angles[-1]:.2f}° in 400 passes; B ≈ {scale:.3f} W (σ² = {sigma**2})")
assert angles[0] > 60 and angles[-1] < 3
assert abs(scale / sigma**2 - 1) < 0.05

fig, axes = plt.subplots(1, 2, figsize=(8, 3))
axes[0].imshow(factor_pad, cmap="viridis", vmin=0.4, vmax=1.05)
for (i, j), v in np.ndenumerate(factor_pad):
    axes[0].text(j, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=9)
axes[0].set_title("padded noise: tap factor ≈ m_ij", fontsize=9)
axes[0].set_xticks([])
axes[0].set_yticks([])
axes[1].semilogy(angles)
axes[1].set_xlabel("mirror passes")
axes[1].set_ylabel("∠(B, W) (°)")
axes[1].set_title("unpadded noise: B → σ² W", fontsize=9)
fig.tight_layout()
save_figure(fig, "08_conv_mirror")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 4 · Kolen–Pollack in a small CNN
#
# KP gives `B` the transpose of `W`'s update (eq 17). For a kernel, "transpose" is the identity:
# `B` has `W`'s layout, and its gradient is the kernel's own gradient (`Conv2D.feedback_grad`). So
# under plain SGD with decay `λ` per step the gradients cancel in `W − B`, and
# `W_t − B_t = (1 − λ)^t (W₀ − B₀)` holds for the kernels as it does for the dense layer
# (`W − Bᵀ`), whatever the data. We train a small CNN on the 8×8 digits for 100 steps: with
# `λ = 0.05` the random start is down to `0.95¹⁰⁰ ≈ 0.6 %` and `B` has come into line with `W`.

# %%
data = minibp.data.load_digits(flatten=False, dtype="float64")
cnn_rng = np.random.default_rng(6)
cnn = minibp.Network(
    [
        Conv2D(1, 6, 3, padding=1, gain=ReLU.gain, rng=cnn_rng, dtype="float64"),
        ReLU(),
        MaxPool2D(2),
        Conv2D(6, 8, 3, padding=1, gain=ReLU.gain, rng=cnn_rng, dtype="float64"),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(8 * 2 * 2, 10, rng=cnn_rng, dtype="float64"),
    ]
)
kp = minibp.get_rule("kp")
cnn.init_feedback(kp, np.random.default_rng(7))
lr, wd, steps = 0.5, 0.1, 100
lam = lr * wd
opt = minibp.SGD(lr, weight_decay=wd)
loss_fn = minibp.SoftmaxCrossEntropy()


def gap(layer):
    """W − B for a kernel, W − Bᵀ for a dense layer."""
    return layer.W - (layer.B if isinstance(layer, Conv2D) else layer.B.T)


gap0 = [np.linalg.norm(gap(layer)) for layer in cnn.weight_layers]
kp_angles = [minibp.matrix_angles(cnn, kp)]
batches = np.random.default_rng(8)
for _ in range(steps):
    idx = batches.choice(len(data.x_train), 64, replace=False)
    minibp.train_step(cnn, kp, loss_fn, opt, data.x_train[idx], data.y_train[idx])
    kp_angles.append(minibp.matrix_angles(cnn, kp))
kp_angles = np.array(kp_angles)
for layer, g0 in zip(cnn.weight_layers, gap0):
    assert abs(np.linalg.norm(gap(layer)) / (g0 * (1 - lam) ** steps) - 1) < 1e-10, layer.name
print(f"‖W − B‖ shrank by exactly (1 − λ)^{steps} = {(1 - lam) ** steps:.4f} in every layer")
print("matrix angles, start:", kp_angles[0].round(1), " after:", kp_angles[-1].round(1))
assert np.all(kp_angles[0] > 80) and np.all(kp_angles[-1] < 5)

# %% [markdown]
# ## 5 · Batch norm after the ReLU
#
# The paper's ResNets put batch norm *after* the ReLU (Section 6; `resnet20(bn="after")`, minibp's
# default). Batch norm is no weight layer: every rule sends `δ` back through its exact
# derivative, `dx = (γ/σ)(dy − mean(dy) − x̂ · mean(dy · x̂))` per channel. Two things follow.
#
# * Batch norm's feedback **projects out** two directions per channel, the constant and `x̂`, the
#   same for every rule: the error the ReLU below receives has zero mean over the batch and is
#   uncorrelated with the normalised activity, under FA as under backprop.
# * The **mirror** sees a different `φ`. Mirror mode drives each weight layer with the activation
#   right after it (`net.mirror_pairs()`): with batch norm after the ReLU, a convolution is
#   followed by its ReLU, so its `B` learns through `φ'`; with batch norm before, the convolution
#   is followed by batch norm, which the mirror leaves out, so its `φ` is the identity.

# %%
bn = BatchNorm(4, eps=1e-12, dtype="float64")  # σ = √(var + ε): ε → 0 makes the projections exact
act = rng.standard_normal((16, 4, 5, 5))
y_bn = bn.forward(np.maximum(act, 0))  # ReLU, then batch norm
dy = rng.standard_normal(y_bn.shape)
dx = bn.backward(dy)
xhat = bn.xhat  # the normalised activity the layer kept from its forward pass
print("per channel, mean of dx:", dx.mean(axis=(0, 2, 3)).round(14))
print("per channel, mean of dx · x̂:", (dx * xhat).mean(axis=(0, 2, 3)).round(14))
assert np.allclose(dx.mean(axis=(0, 2, 3)), 0, atol=1e-12)
assert np.allclose((dx * xhat).mean(axis=(0, 2, 3)), 0, atol=1e-12)

for placement, after_stem in [("after", ReLU), ("before", Identity)]:
    resnet = minibp.models.resnet20((1, 8, 8), width=4, bn=placement, dtype="float64")
    stem, stem_act = next(resnet.mirror_pairs())
    print(f"bn={placement!r}: the stem convolution mirrors through {type(stem_act).__name__}")
    assert isinstance(stem, Conv2D) and isinstance(stem_act, after_stem)

# %% [markdown]
# ## 6 · Without weight sharing: a `B` per position
#
# Section 6 of the paper ends with what a more brain-like network would need: "convolution with
# non-weight-sharing local connections". A **locally connected** layer (`LocalConv2D`) gives each
# output position `(r, s)` a kernel of its own, `W[r, s]` of shape `(C_out, C_in, k, k)`: no neuron
# copies its synapses from its neighbours. Nothing else changes in eq (1); eq (3) carries each
# position's error back through its own `B[r, s]`, and eq (4) sums each kernel's gradient over the
# batch alone.
#
# The cost is `Ho·Wo` times the weights. LeNet's second convolution (6 → 16 channels, 5×5, on
# 14×14 maps) has 2,400 weights; its locally connected twin has 196 kernels, 470,400 weights, and
# as many in `B`.

# %%
shared = Conv2D(6, 16, 5, padding=2, rng=rng)
local = LocalConv2D(6, 16, 5, (14, 14), padding=2, rng=rng)
print(f"shared: W {shared.W.shape}, {shared.W.size:,} weights")
print(f"local:  W {local.W.shape}, {local.W.size:,} weights = {local.positions} positions × {shared.W.size:,}")
assert local.W.size == local.positions * shared.W.size

# %% [markdown]
# What this does to the two rules that learn `B`:
#
# * **The mirror** fires noise at the layer and correlates each input patch with the output it
#   produced (eq 7). A convolution's kernel pools that correlation over every position, so one
#   noise image gives it `Ho·Wo` samples. A position's own `B[r, s]` sees only its own patch: one
#   sample per noise image. For the same accuracy, the mirror needs `Ho·Wo` times the noise per
#   weight.
# * **KP** gives `B[r, s]` the transpose of `W[r, s]`'s own update (eq 17), position by position.
#   The gradients still cancel in `W − B`, which shrinks by exactly `(1 − λ)` per step at every
#   position: nothing about KP's alignment depends on sharing. What each kernel learns from,
#   though, is a single position's patches.
#
# ### Exercise 2 · each position's mirror correlation (implement it)
#
# Write `local_mirror_correlation(noise, post, k, stride)`: `noise` is `(N, C_in, H, W)`, the
# unpadded noise images of mirror mode, `post` `(N, C_out, Ho, Wo)` the layer's output on them.
# Return, in `W`'s shape `(Ho, Wo, C_out, C_in, k, k)`, the mean over the batch of
# `post[n, :, r, s] ⊗ noise[n, :, r·stride : r·stride + k, s·stride : s·stride + k]` at every
# position: eq (7)'s `E[y_{l+1} y_lᵀ]`, one per position. A loop over the `Ho·Wo` positions with
# `np.einsum` inside is fine. `exercises.check_local_mirror` compares it with minibp's.


# %%
def local_mirror_correlation(noise, post, k, stride):
    """Eq (7) at every position: mean over the batch of y_{l+1}[:, :, r, s] ⊗ patch(y_l, r, s)."""
    ### BEGIN SOLUTION
    n, c_out, ho, wo = post.shape
    corr = np.zeros((ho, wo, c_out, noise.shape[1], k, k))
    for r in range(ho):
        for s in range(wo):
            patch = noise[:, :, r * stride : r * stride + k, s * stride : s * stride + k]  # (N, C_in, k, k)
            corr[r, s] = np.einsum("no,nchw->ochw", post[:, :, r, s], patch) / n  # eq (7), this position only
    return corr
    ### END SOLUTION


local_mirror_correlation = exercises.check_local_mirror(local_mirror_correlation)

# %% [markdown]
# Now the noise. We give a convolution and a locally connected layer the same kernel at every
# position (so both correlations estimate `σ² W`), fire `N` noise images at each, and measure the
# angle between each position's correlation and `W`. The convolution pools its `16` positions;
# each local position has `N` samples of its own, and needs `16 N` to do as well.

# %%
kernel = Conv2D(3, 4, 3, bias=False, rng=np.random.default_rng(9), dtype="float64")
tied = LocalConv2D(3, 4, 3, (6, 6), bias=False, rng=np.random.default_rng(9), dtype="float64")
tied.params["W"][...] = kernel.W  # the same kernel at each of the 4 × 4 positions
noise_rng = np.random.default_rng(10)


def mirror_error(layer, n):
    """∠(correlation, W) after one batch of n noise images: one angle for a convolution, one per position else."""
    noise = noise_rng.standard_normal((n, *layer.mirror_input_shape))
    post = layer.mirror_forward(noise, bias=False)  # linear: the correlation estimates σ² W
    if isinstance(layer, Conv2D):
        return minibp.angle(layer.mirror_correlation(noise, post), layer.W)
    corr = local_mirror_correlation(noise, post, layer.k, layer.stride)
    return float(np.median([minibp.angle(corr[r, s], layer.W[r, s]) for r in range(4) for s in range(4)]))


sizes = [16, 64, 256, 1024]
conv_err = [mirror_error(kernel, n) for n in sizes]
local_err = [mirror_error(tied, n) for n in sizes]
local_16 = [mirror_error(tied, 16 * n) for n in sizes]
for n, c, lo, l16 in zip(sizes, conv_err, local_err, local_16):
    print(f"N = {n:5d}: conv {c:5.1f}°   local, N images {lo:5.1f}°   local, 16 N images {l16:5.1f}°")
assert all(c < lo for c, lo in zip(conv_err, local_err))
assert all(abs(l16 / c - 1) < 0.5 for c, l16 in zip(conv_err, local_16))

fig, ax = plt.subplots(figsize=(4.5, 3))
ax.loglog(sizes, conv_err, "o-", label="convolution (pools 16 positions)")
ax.loglog(sizes, local_err, "s-", label="local, each position alone")
ax.loglog(sizes, local_16, "^--", label="local, 16× the noise")
ax.set_xlabel("noise images per mirror batch")
ax.set_ylabel("∠(correlation, W) (°)")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "08_local_mirror_noise")
plt.show()
plt.close(fig)

# %% [markdown]
# KP, position by position: the small CNN of section 4 with locally connected layers in place of
# its convolutions, trained for 100 steps. `W − B` shrinks by exactly `(1 − λ)^t` at every position.

# %%
loc_rng = np.random.default_rng(6)
local_cnn = minibp.Network(
    [
        LocalConv2D(1, 6, 3, (8, 8), padding=1, gain=ReLU.gain, rng=loc_rng, dtype="float64"),
        ReLU(),
        MaxPool2D(2),
        LocalConv2D(6, 8, 3, (4, 4), padding=1, gain=ReLU.gain, rng=loc_rng, dtype="float64"),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(8 * 2 * 2, 10, rng=loc_rng, dtype="float64"),
    ]
)
local_cnn.init_feedback(kp, np.random.default_rng(7))
first = local_cnn.weight_layers[0]


def position_gaps(layer):
    """‖W[r, s] − B[r, s]‖ at every position."""
    return np.sqrt(((layer.W - layer.B) ** 2).sum(axis=(2, 3, 4, 5)))


gap_start = position_gaps(first)
opt = minibp.SGD(lr, weight_decay=wd)
batches = np.random.default_rng(8)
for _ in range(steps):
    idx = batches.choice(len(data.x_train), 64, replace=False)
    minibp.train_step(local_cnn, kp, loss_fn, opt, data.x_train[idx], data.y_train[idx])
ratio = position_gaps(first) / gap_start
print(
    f"‖W[r, s] − B[r, s]‖ / start at the 64 positions: {ratio.min():.6f} to {ratio.max():.6f}; "
    f"(1 − λ)^{steps} = {(1 - lam) ** steps:.6f}"
)
assert np.allclose(ratio, (1 - lam) ** steps, rtol=1e-10)
print("matrix angles after KP:", np.round(minibp.matrix_angles(local_cnn, kp), 1))

# %% [markdown]
# ## What we found
#
# * A convolution's `B` is a kernel: weight sharing on the feedback path too, so its feedback
#   matrix is `M_Bᵀ`, the convolution matrix of `B` transposed.
# * The feedback path is a transposed convolution, the adjoint of the forward one (to 1e-12).
# * The conv mirror's correlation is `σ² W` tap by tap only on unpadded noise; padding scales
#   each tap by the fraction of positions where it lands on noise.
# * KP's `W − B` decays by exactly `(1 − λ)` per step in convolutions as in dense layers.
# * Batch norm's exact derivative projects out the mean and `x̂` per channel under every rule;
#   after the ReLU, it leaves the convolution's mirror `φ` the ReLU.
# * Without weight sharing each position has its own `B`: the mirror's correlation at a position
#   averages one patch per noise image, so it needs `Ho·Wo` times a convolution's noise for the same
#   angle; KP's `W − B` still shrinks by exactly `(1 − λ)` per step, position by position.
#
# ## Open-ended exercises
#
# Worked solutions: `notebooks/solutions/08_convolutions_solutions.py`.
#
# 1. **Stride and the mirror.** Repeat section 3 with stride 2. Which side must the unpadded noise
#    images have so that every tap sees the same number of positions? Compare with
#    `Conv2D.mirror_input_shape`.
# 2. **Sign-symmetry for kernels.** minibp scales `sign(W)` of a convolution by `√(2/(k²·C_out))`
#    (`Conv2D.sign_scale`). Compute the matrix angle of `sign(W)` to `W` for a random kernel and
#    compare it with the dense layer's `arccos √(2/π)` (notebook 06).
# 3. **FA with batch norm.** Train the CNN of section 4 under `fa` with a `BatchNorm` after each
#    ReLU and without, for 200 steps each, and compare the delta angles of the first layer.
# 4. **The mirror's noise budget without sharing.** Run `WeightMirror` (σ = 1, `lr = decay = 0.02`)
#    for 600 passes on the convolution and the tied locally connected layer of section 6, at 16
#    noise images a pass for the convolution and at 16 and 256 for the local layer. Compare the
#    settled angles `∠(B, W)` (for the local layer, the median over positions). Which batch matches
#    the convolution's, and what sets the angle's floor once `B` has settled?

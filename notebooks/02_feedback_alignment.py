# %% [markdown]
# # 02 · Feedback alignment
#
# **Paper:** Akrout et al., *Deep Learning without Weight Transport* (NeurIPS 2019),
# **Section 3**, eqs (3)–(4) (feedback alignment is due to Lillicrap et al. 2016, the paper's ref [3]).
#
# Notebook 01 showed that backprop's error signal needs $\mathbf{W}^T$ (eq 2). Feedback
# alignment (FA) simply puts a **fixed random matrix** $\mathbf{B}$ in its place,
#
# $$\delta_l = \phi'(\mathbf{y}_l) \odot \mathbf{B}_{l+1}\,\delta_{l+1} \qquad (3)$$
#
# and still changes the forward weights with the usual rule
#
# $$\Delta\mathbf{W}_{l+1} = -\eta_W\,\delta_{l+1}\,\mathbf{y}_l^T \qquad (4)$$
#
# The surprise is that this learns: the forward weights $\mathbf{W}$ come to *align* with
# $\mathbf{B}^T$, so that $\mathbf{B}$ ends up carrying a useful error signal after all.
#
# You will compute, and check numerically:
#
# 1. why a random $\mathbf{B}$ starts at about 90° from $\mathbf{W}^T$;
# 2. eq (3) by hand against `net.backward(dout, minibp.get_rule("fa"))`;
# 3. eq (4) by hand against one step of plain `minibp.SGD`;
# 4. *why* $\mathbf{W}$ aligns with $\mathbf{B}^T$, exactly, in a linear network started at zero;
# 5. alignment in a nonlinear network (matrix angle $\angle(\mathbf{B}, \mathbf{W}^T)$ and delta
#    angle $\angle(\delta, \delta^{\rm BP})$, the paper's Fig 4) and the price FA pays against
#    backprop, which grows with depth.
#
# Batches are rows: the paper's $\mathbf{B}\delta$ for a batch `delta` of shape `(N, n)` is
# `delta @ B.T`, and $\delta\,\mathbf{y}^T$ summed over the batch is `delta.T @ y`.

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
from minibp.plots import RULE_COLORS, save_figure

n_in, n_hid, n_out = 20, 30, 10
teacher_rng = np.random.default_rng(100)
T = teacher_rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)  # the task: learn the linear map x ↦ T x


def teacher(x):
    return x @ T.T


x_test = teacher_rng.standard_normal((500, n_in))
y_test = teacher(x_test)
loss_fn = minibp.MeanSquaredError()

net = minibp.mlp([n_in, n_hid, n_out], "tanh", seed=0, dtype="float64")
dense1, tanh1, dense2 = net.layers
fa = minibp.get_rule("fa")
net.init_feedback(fa, np.random.default_rng(1))  # every weight layer gets a random B in the shape of Wᵀ
for layer in net.weight_layers:
    print(f"{layer.name}: W {layer.W.shape}, B {layer.B.shape}, ∠(B, Wᵀ) = {minibp.angle(layer.B, layer.W.T):.1f}°")

# %% [markdown]
# ## 1 · A random B starts at about 90° from Wᵀ
#
# FA draws $\mathbf{B}$ from the same distribution as $\mathbf{W}$'s initialisation,
# $\mathcal N(0, \text{gain}^2/\text{fan-in})$, so it has the right *scale* without ever reading
# $\mathbf{W}$. Its *direction* is another matter. Two independent random vectors in
# $n = 300$ dimensions (a $30\times10$ matrix) have cosine $\approx \mathcal N(0, 1/n)$, so
# their angle is about $90° \pm \frac{180°}{\pi\sqrt n} \approx 90° \pm 3.3°$: nearly
# orthogonal. At the start, FA's feedback is almost unrelated to backprop's.

# %%
assert abs(dense2.B.std() / dense2.init_std - 1) < 0.2  # B has the scale of W's initialisation

rng = np.random.default_rng(3)
angles = np.array(
    [minibp.angle(rng.standard_normal((n_hid, n_out)), rng.standard_normal((n_hid, n_out))) for _ in range(2000)]
)
predicted_std = np.degrees(1 / np.sqrt(n_hid * n_out))
print(f"angle between random 30×10 matrices: {angles.mean():.2f}° ± {angles.std():.2f}°")
print(f"predicted: 90° ± {predicted_std:.2f}°")
assert abs(angles.mean() - 90) < 0.5
assert abs(angles.std() / predicted_std - 1) < 0.1

# %%
fig, ax = plt.subplots(figsize=(4.5, 3))
ax.hist(angles, bins=40, density=True, color="C0", alpha=0.7, label="2000 random pairs")
a = np.linspace(75, 105, 200)
ax.plot(
    a,
    np.exp(-0.5 * ((a - 90) / predicted_std) ** 2) / (predicted_std * np.sqrt(2 * np.pi)),
    color="C1",
    label="N(90°, (180/π)²/n)",
)
ax.axvline(minibp.angle(dense2.B, dense2.W.T), color="k", ls="--", lw=1, label="this network's ∠(B₂, W₂ᵀ)")
ax.set_xlabel("angle (°)")
ax.set_title("Random matrices are nearly orthogonal")
ax.legend(frameon=False, fontsize=8)
save_figure(fig, "02_random_angles")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 2 · The feedback path, eq (3)
#
# The FA rule's feedback matrix is the layer's own `B` (`fa.feedback_matrix(layer)`), and the
# engine runs exactly the same code as for backprop with that matrix in place of
# $\mathbf{W}^T$. Compute eq (3) by hand for the hidden layer and compare. On the same forward
# pass, compare it with backprop's $\delta_1$ too.
#
# ### Exercise 1 · Eq (3) (implement it)
#
# Write `eq3_delta(delta_next, B, y)`: feedback alignment's error at the output of a tanh layer,
# $\delta_l = \phi'(\mathbf{y}_l) \odot \mathbf{B}_{l+1}\delta_{l+1}$, for a batch of rows. `B` has the
# shape of $\mathbf{W}^T$, `(n_in, n_out)`; `delta_next` is `(N, n_out)`; `y` is `(N, n_in)`.
# `exercises.check_eq3_delta` compares it with minibp's on random cases and names the likely
# mistake; until you write it, the cells below use minibp's own.


# %%
def eq3_delta(delta_next, B, y):
    """Eq (3) for a tanh layer, in rows: φ'(y_l) ⊙ B_{l+1} δ_{l+1}."""
    ### BEGIN SOLUTION
    return (1 - y**2) * (delta_next @ B.T)
    ### END SOLUTION


eq3_delta = exercises.check_eq3_delta(eq3_delta)

# %%
batch_rng = np.random.default_rng(4)
x = batch_rng.standard_normal((32, n_in))
out = net.forward(x)
_, dout = loss_fn(out, teacher(x))
delta1, delta2 = net.backward(dout, fa)

assert fa.feedback_matrix(dense2) is dense2.B
y1 = tanh1.y
delta1_hand = eq3_delta(delta2, dense2.B, y1)  # eq (3): φ'(y₁) ⊙ B₂ δ₂, in rows
print("largest difference, eq (3) by hand vs engine:", np.abs(delta1_hand - delta1).max())
assert np.allclose(delta1_hand, delta1, rtol=0, atol=1e-12)

delta1_bp = net.backward(dout, minibp.get_rule("bp"), train=False)[0]  # backprop's δ₁, same forward pass
print(f"∠(δ₁ FA, δ₁ BP) before training: {minibp.angle(delta1, delta1_bp):.1f}°")

# %%
fig, ax = plt.subplots(figsize=(3.6, 3.4))
ax.scatter(delta1_bp.ravel(), delta1.ravel(), s=4, alpha=0.5)
ax.set_xlabel("δ₁ with Wᵀ (backprop)")
ax.set_ylabel("δ₁ with B (FA)")
ax.set_title(f"Before training: {minibp.angle(delta1, delta1_bp):.0f}° apart", fontsize=10)
ax.axhline(0, color="0.8", lw=0.8)
ax.axvline(0, color="0.8", lw=0.8)
save_figure(fig, "02_delta_fa_vs_bp_init")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 3 · The forward update, eq (4)
#
# `net.backward` also stored each layer's gradient $\sum_n \delta_{l+1,n}\mathbf{y}_{l,n}^T$
# (the loss's $1/N$ is already inside $\delta$). One step of plain SGD, `minibp.SGD(lr)` with no
# momentum and no weight decay, must change $\mathbf{W}$ by exactly eq (4), change the bias by
# $-\eta\sum_n\delta_n$, and leave FA's $\mathbf{B}$ alone.
#
# ### Exercise 2 · Eq (4) (implement it)
#
# Write `eq4_update(delta_next, y_prev, lr)`: the change $\Delta\mathbf{W}_{l+1} = -\eta\,\delta_{l+1}\mathbf{y}_l^T$
# summed over the batch (the loss's $1/N$ is already inside $\delta$), in the shape of $\mathbf{W}$,
# `(n_out, n_in)`. `delta_next` is `(N, n_out)` and `y_prev` is `(N, n_in)`.


# %%
def eq4_update(delta_next, y_prev, lr):
    """Eq (4): ΔW_{l+1} = −η Σ_n δ_{l+1,n} y_{l,n}ᵀ."""
    ### BEGIN SOLUTION
    return -lr * delta_next.T @ y_prev
    ### END SOLUTION


eq4_update = exercises.check_eq4_update(eq4_update)

# %%
lr = 0.05
opt = minibp.SGD(lr)
W_before = [layer.W.copy() for layer in net.weight_layers]
b_before = [layer.b.copy() for layer in net.weight_layers]
B_before = [layer.B.copy() for layer in net.weight_layers]
opt.step(net.param_layers)

inputs = [x, y1]  # y_l feeding each weight layer
for layer, W0, b0, B0, delta, y_in in zip(net.weight_layers, W_before, b_before, B_before, [delta1, delta2], inputs):
    dW = layer.W - W0
    assert np.allclose(dW, eq4_update(delta, y_in, lr), rtol=0, atol=1e-12)  # eq (4)
    assert np.allclose(layer.b - b0, -lr * delta.sum(axis=0), rtol=0, atol=1e-12)
    assert np.array_equal(layer.B, B0)  # FA's B never learns
print("eq (4) holds for both layers; B unchanged")

# %%
fig, axes = plt.subplots(1, 2, figsize=(6.5, 2.6))
dW1 = net.weight_layers[0].W - W_before[0]
for ax, M, title in zip(axes, [dW1, -lr * delta1.T @ x], ["ΔW₁ taken by SGD", "−η δ₁ y₀ᵀ (eq 4)"]):
    im = ax.imshow(M, cmap="RdBu_r", vmin=-np.abs(dW1).max(), vmax=np.abs(dW1).max())
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes, shrink=0.8)
save_figure(fig, "02_eq4_update")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 4 · Why W aligns with Bᵀ: a linear network from zero
#
# Take $\phi$ = identity and start from $\mathbf{W}_1 = \mathbf{W}_2 = 0$. Eqs (3)–(4) give
#
# * $\Delta\mathbf{W}_1 = -\eta\,\mathbf{B}_2\delta_2\,\mathbf{x}^T$: every change of $\mathbf{W}_1$ is
#   $\mathbf{B}_2$ times something, so $\mathbf{W}_1 = \mathbf{B}_2\mathbf{M}$ for some $\mathbf{M}$;
# * then $\mathbf{y}_1 = \mathbf{W}_1\mathbf{x} = \mathbf{B}_2\mathbf{M}\mathbf{x}$ and
#   $\Delta\mathbf{W}_2 = -\eta\,\delta_2\,\mathbf{y}_1^T = -\eta\,\delta_2\mathbf{x}^T\mathbf{M}^T\mathbf{B}_2^T$,
#   so $\mathbf{W}_2 = \mathbf{N}\,\mathbf{B}_2^T$ for some $\mathbf{N}$ ($10\times10$).
#
# The hidden layer's activity only ever moves along the columns of $\mathbf{B}_2$ — the
# directions the feedback pushes it — and so $\mathbf{W}_2$ can only read from those
# directions. The rows of $\mathbf{W}_2$ stay in the span of $\mathbf{B}_2$'s columns:
# $\mathbf{W}_2\mathbf{P} = \mathbf{W}_2$ with $\mathbf{P} = \mathbf{B}_2\mathbf{B}_2^+$ the projection on
# that span. The FA error $\mathbf{B}_2\delta_2$ and backprop's
# $\mathbf{W}_2^T\delta_2 = \mathbf{B}_2\mathbf{N}^T\delta_2$ have the inner product
# $\delta_2^T\,\mathbf{B}_2^T\mathbf{B}_2\mathbf{N}^T\,\delta_2$, so they agree in sign for every $\delta_2$ when the
# symmetric part of $\mathbf{B}_2^T\mathbf{B}_2\mathbf{N}^T$ is positive definite: that is the alignment. (If
# $\mathbf{B}_2^T\mathbf{B}_2$ were a multiple of the identity, $\mathbf{N}$ positive definite would be enough.
# The derivation says nothing about either; Lillicrap et al. prove it for the linear case. Here
# we check it numerically.)

# %%
lin = minibp.mlp([n_in, n_hid, n_out], "identity", seed=0, dtype="float64")
lin.init_feedback(fa, np.random.default_rng(1))
for layer in lin.weight_layers:
    layer.W[...] = 0
L1, _, L2 = lin.layers
P = L2.B @ np.linalg.pinv(L2.B)  # projection on the span of B₂'s columns (hidden space)

opt = minibp.SGD(0.05)
data_rng = np.random.default_rng(5)
lin_steps, lin_angle, lin_residual, lin_loss = [], [], [], []
for step in range(301):
    if step in (2, 4, 6, 8) or (step % 10 == 0 and step > 0):  # W₂ is still zero after the first step
        lin_steps.append(step)
        lin_angle.append(minibp.angle(L2.B, L2.W.T))
        lin_residual.append(np.linalg.norm(L2.W - L2.W @ P) / np.linalg.norm(L2.W))
        lin_loss.append(float(loss_fn(lin.forward(x_test), y_test)[0]))
    xb = data_rng.standard_normal((32, n_in))
    _, d = loss_fn(lin.forward(xb), teacher(xb))
    lin.backward(d, fa)
    opt.step(lin.param_layers)

N = L2.W @ np.linalg.pinv(L2.B.T)  # W₂ = N B₂ᵀ
assert np.allclose(N @ L2.B.T, L2.W, rtol=0, atol=1e-12)
eig_sym = np.linalg.eigvalsh((N + N.T) / 2)
G = L2.B.T @ L2.B @ N.T  # δ₂ᵀ G δ₂ is the inner product of the FA and BP errors
eig_G = np.linalg.eigvalsh((G + G.T) / 2)
lin_delta_angle = minibp.delta_angles(lin, fa, x_test, y_test, loss_fn)[0]
print(f"max residual outside span(B₂): {max(lin_residual):.1e}")
print(f"eigenvalues of sym(N): {eig_sym.min():.2f} … {eig_sym.max():.2f}")
print(f"eigenvalues of sym(B₂ᵀB₂Nᵀ): {eig_G.min():.2f} … {eig_G.max():.2f}")
print(f"∠(B₂, W₂ᵀ) = {lin_angle[-1]:.1f}°, ∠(δ₁, δ₁ᴮᴾ) = {lin_delta_angle:.1f}°, test loss {lin_loss[-1]:.1e}")
assert max(lin_residual) < 1e-12  # W₂ never leaves the span of B₂ᵀ: the derivation above, step by step
assert eig_sym.min() > 0 and eig_G.min() > 0  # N and B₂ᵀB₂Nᵀ are positive definite ...
assert lin_angle[-1] < 45 and lin_delta_angle < 45  # ... so B₂ is well aligned and δ₁ points downhill
assert lin_loss[-1] < 1e-5  # and the task is learned (the loss at W = 0 is about 5)

# %%
fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8))
axes[0].plot(lin_steps, lin_angle, color=RULE_COLORS["fa"])
axes[0].set_ylim(0, 95)
axes[0].set_xlabel("step")
axes[0].set_ylabel("∠(B₂, W₂ᵀ) (°)")
axes[0].set_title("Linear FA from zero: alignment", fontsize=9)
axes[1].semilogy(lin_steps, lin_loss, color=RULE_COLORS["fa"], label="test loss")
axes[1].semilogy(lin_steps, np.maximum(lin_residual, 1e-17), color="C3", label="‖W₂ − W₂P‖/‖W₂‖")
axes[1].set_xlabel("step")
axes[1].set_title("W₂ stays in span(B₂ᵀ) while it learns", fontsize=9)
axes[1].legend(frameon=False, fontsize=8)
save_figure(fig, "02_linear_alignment")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 5 · Alignment in a nonlinear network, and FA against backprop
#
# Now a tanh network like that of sections 1–3, from a random start, on the same task. We train
# it twice from identical weights and identical batches: once with FA, once with backprop. Every
# 50 steps we record the test loss, the matrix angles (`minibp.matrix_angles`) and the delta
# angle of the hidden layer (`minibp.delta_angles`: FA's $\delta_1$ against backprop's on the
# same forward pass).


# %%
def train_student(rule_name, sizes, steps=2000, every=50, seed=0, lr=0.05):
    """Train an MLP on the teacher with plain SGD; returns (net, rule, history)."""
    net = minibp.mlp(sizes, "tanh", seed=seed, dtype="float64")
    rule = minibp.get_rule(rule_name)
    net.init_feedback(rule, np.random.default_rng([seed, 1]))
    opt = minibp.SGD(lr)
    data_rng = np.random.default_rng([seed, 2])
    hist = {"step": [], "loss": [], "matrix": [], "delta": []}
    for step in range(steps + 1):
        if step % every == 0:
            hist["step"].append(step)
            hist["loss"].append(float(loss_fn(net.forward(x_test), y_test)[0]))
            hist["matrix"].append(minibp.matrix_angles(net, rule))
            hist["delta"].append(minibp.delta_angles(net, rule, x_test[:200], y_test[:200], loss_fn))
        xb = data_rng.standard_normal((32, sizes[0]))
        _, d = loss_fn(net.forward(xb), teacher(xb))  # eq (1), then δ_L
        net.backward(d, rule)  # eqs (2)/(3) and the gradients of eq (4)
        opt.step(net.param_layers)  # eq (4)
    return net, rule, {k: np.array(v) for k, v in hist.items()}


sizes = [n_in, n_hid, n_out]
_, _, fa_hist = train_student("fa", sizes)
_, _, bp_hist = train_student("bp", sizes)
ma, da = fa_hist["matrix"][:, 1], fa_hist["delta"][:, 0]
print(f"FA: ∠(B₂, W₂ᵀ) {ma[0]:.1f}° → {ma[-1]:.1f}°,  ∠(δ₁, δ₁ᴮᴾ) {da[0]:.1f}° → {da[-1]:.1f}°")
print(f"FA: ∠(B₁, W₁ᵀ) {fa_hist['matrix'][0, 0]:.1f}° → {fa_hist['matrix'][-1, 0]:.1f}° (B₁ is never used)")
print(f"final test loss: FA {fa_hist['loss'][-1]:.4f}, BP {bp_hist['loss'][-1]:.4f}")

# %% [markdown]
# **Checks.** The matrix angle of the layer whose $\mathbf{B}$ is used starts near 90° and
# falls far below it; the delta angle drops below 90° quickly and stays there, so FA's changes
# to $\mathbf{W}_1$ point downhill; FA learns (its test loss falls about a hundredfold) but stays behind
# backprop at every checkpoint. $\mathbf{B}_1$ carries no signal (there is nothing below the input
# layer to send $\delta_0$ to), so nothing aligns $\mathbf{W}_1$ with it: it stays near 90°.

# %%
assert abs(ma[0] - 90) < 10 and ma[-1] < 60 and ma[0] - ma[-1] > 25
assert np.all(da[2:] < 90) and da[-1] < 60
assert abs(fa_hist["matrix"][-1, 0] - 90) < 10
assert fa_hist["loss"][-1] < 0.02 * fa_hist["loss"][0]
assert np.all(fa_hist["loss"][1:] > bp_hist["loss"][1:])

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3))
for name, hist in [("bp", bp_hist), ("fa", fa_hist)]:
    axes[0].semilogy(hist["step"], hist["loss"], color=RULE_COLORS[name], label=name.upper())
axes[0].set_title("Test loss", fontsize=9)
axes[0].legend(frameon=False)
axes[1].plot(fa_hist["step"], fa_hist["matrix"][:, 0], color="C4", label="layer 1 (B₁ unused)")
axes[1].plot(fa_hist["step"], fa_hist["matrix"][:, 1], color="C2", label="layer 2")
axes[1].set_title("FA: matrix angle ∠(B, Wᵀ)", fontsize=9)
axes[1].legend(frameon=False, fontsize=8)
axes[2].plot(fa_hist["step"], fa_hist["delta"][:, 0], color="C2")
axes[2].set_title("FA: delta angle ∠(δ₁, δ₁ᴮᴾ)", fontsize=9)
for ax in axes[1:]:
    ax.set_ylim(0, 95)
    ax.axhline(90, color="0.7", ls=":", lw=0.8)
for ax in axes:
    ax.set_xlabel("step")
save_figure(fig, "02_fa_alignment")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 6 · Where FA falls behind: depth
#
# Each extra hidden layer adds another random $\mathbf{B}$ that must be aligned with, and the
# errors of the layers below are built on the imperfect errors above. Train the same task with
# 1, 2 and 3 hidden layers of 30 tanh units, FA and backprop from identical starts, and compare
# the final test losses.

# %%
depths = [1, 2, 3]
final = {"fa": [], "bp": []}
deep_hist = {}
for depth in depths:
    sizes = [n_in] + [n_hid] * depth + [n_out]
    for name in ("fa", "bp"):
        _, _, hist = train_student(name, sizes, every=250)
        final[name].append(hist["loss"][-1])
        deep_hist[name, depth] = hist
ratio = np.array(final["fa"]) / np.array(final["bp"])
for depth, f, b, r in zip(depths, final["fa"], final["bp"], ratio):
    print(f"{depth} hidden layer(s): FA {f:.4f}  BP {b:.4f}  FA/BP {r:.1f}")
assert np.all(ratio > 1.5)  # FA is behind at every depth ...
assert ratio[-1] > 1.5 * ratio[0]  # ... and further behind in the deeper network
assert max(final["bp"]) < 0.05  # while backprop learns the task at every depth

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for depth, shade in zip(depths, [0.35, 0.65, 1.0]):
    for name in ("fa", "bp"):
        h = deep_hist[name, depth]
        axes[0].semilogy(
            h["step"], h["loss"], color=RULE_COLORS[name], alpha=shade, label=f"{name.upper()}, {depth} hidden"
        )
axes[0].set_xlabel("step")
axes[0].set_title("Test loss", fontsize=9)
axes[0].legend(frameon=False, fontsize=7, ncol=2)
axes[1].plot(depths, ratio, "o-", color=RULE_COLORS["fa"])
axes[1].set_xticks(depths)
axes[1].set_xlabel("hidden layers")
axes[1].set_ylabel("final loss FA / BP")
axes[1].set_title("FA falls further behind with depth", fontsize=9)
save_figure(fig, "02_fa_depth")
plt.show()
plt.close(fig)

# %% [markdown]
# **What this shows.** FA learns without weight transport because the forward weights adapt
# to the random feedback, not the other way round: $\mathbf{W}$ turns towards $\mathbf{B}^T$
# until $\mathbf{B}$'s error signal is within 90° of the gradient. But the alignment is rough
# (here tens of degrees), it costs learning speed, and the cost grows with depth. On ImageNet with
# ResNet-18 the paper (Section 6) reports 97.4 % top-1 error for FA against 30.1 % for backprop, with
# both angles staying above 80° in most layers. The next notebooks make
# $\mathbf{B}$ *learn* $\mathbf{W}^T$ instead: the transposing rule (notebook 03), the weight
# mirror and Kolen–Pollack.

# %% [markdown]
# ## Open-ended exercises
#
# Worked solutions: `notebooks/solutions/02_feedback_alignment_solutions.py`.
#
# 1. **Scale does not matter much.** Multiply every $\mathbf{B}$ of the $20\to30\to10$ tanh
#    network by 10 after `init_feedback` and train with FA as in section 5. Show that it still
#    learns and still aligns. What did scaling $\mathbf{B}$ do to $\delta_1$ and to the step on
#    $\mathbf{W}_1$, and which learning rate for $\mathbf{W}_1$ would undo it exactly?
# 2. **FA started from Wᵀ.** Set $\mathbf{B}_2 = \mathbf{W}_2^T$ at initialisation (a copy, then
#    fixed). At step 0 this is backprop. Train with FA and follow $\angle(\mathbf{B}_2, \mathbf{W}_2^T)$:
#    does the alignment survive once $\mathbf{W}_2$ moves and $\mathbf{B}_2$ does not? Compare the
#    learning curve with FA from a random $\mathbf{B}$ and with backprop.
# 3. **Digits.** Use `minibp.train(minibp.TrainConfig(rule=..., epochs=8, hidden=(64,)))` to
#    train FA and BP on the handwritten digits. `train` returns the network and a list of
#    records, one per epoch (epoch 0 is the untrained network), each a dict with the keys
#    `test_accuracy`, `matrix_angle` (one per weight layer) and `delta_angle` (one per hidden
#    layer), among others. `TrainConfig`'s other defaults are ReLU units, SGD with momentum 0.9,
#    weight decay 5e-3 and a cosine learning-rate schedule (notebook 05 uses it in full). Read
#    the matrix and delta angles from the records, and compare the test accuracy of the two
#    rules.

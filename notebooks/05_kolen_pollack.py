# %% [markdown]
# # 05 · Kolen–Pollack
#
# **Paper:** Akrout et al., *Deep Learning without Weight Transport* (NeurIPS 2019),
# Section 5 (the Kolen–Pollack algorithm), eqs (13)–(18), and the trade-off named in Section 7.
#
# Kolen and Pollack's observation: we need not transport *weights* if the forward and feedback
# synapses receive *identical changes* and decay at the same rate. Their difference then shrinks
# geometrically, whatever the changes are. Section 5.2 shows a network where each synapse
# computes that change from its own local signals (eqs 15–18).
#
# In this notebook you will compute:
#
# 1. two scalar synapses with identical adjustments and decay (eqs 13–14): `W − B = (1 − λ)^t (W₀ − B₀)`,
#    first with plain Python floats, then with minibp;
# 2. the reciprocal network's feedback update (eq 17): `B`'s gradient is `y_l δ_{l+1}ᵀ`, the transpose of `W`'s;
# 3. the matrix version: `‖W − Bᵀ‖ = (1 − λ)^t ‖W₀ − B₀ᵀ‖` in every layer of an MLP trained on digits;
# 4. the price of `λ`: a large decay aligns `B` with `Wᵀ` sooner but hurts learning.

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
import random

import matplotlib.pyplot as plt
import numpy as np

import minibp
from minibp import Dense, Network, exercises
from minibp.plots import save_figure


def rel(a, b):
    """Relative difference |a − b| / |b| (Frobenius norm for arrays)."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


data = minibp.data.load_digits(dtype="float64")

# %% [markdown]
# ## 1. Two synapses, eqs (13)–(14)
#
# A forward synapse `W` and a feedback synapse `B` start unequal. At each step both receive the
# same adjustment `A(t)` — any sequence at all — and both decay by the same factor `λ`:
#
# `ΔW(t) = A(t) − λ W(t)`,  `ΔB(t) = A(t) − λ B(t)`.
#
# Subtract: `W(t+1) − B(t+1) = (1 − λ)(W(t) − B(t))`, so `W(t) − B(t) = (1 − λ)^t (W₀ − B₀)`.
# The adjustments cancel exactly. We check this with plain Python floats and random `A(t)`.

# %%
rng = random.Random(0)
lam, steps = 0.02, 300
W, B = 0.7, -1.3
W0, B0 = W, B
Ws, Bs, worst = [W], [B], 0.0
for t in range(1, steps + 1):
    A = rng.gauss(0.0, 0.2)  # the same adjustment for both synapses
    W, B = W + A - lam * W, B + A - lam * B  # eqs (13) and (14)
    predicted = (1 - lam) ** t * (W0 - B0)
    worst = max(worst, abs((W - B) - predicted) / abs(predicted))
    Ws.append(W)
    Bs.append(B)
print(f"worst relative error of W − B = (1−λ)^t (W₀ − B₀) over {steps} steps: {worst:.1e}")
assert worst <= 1e-12

fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
axes[0].plot(Ws, label="W (forward)")
axes[0].plot(Bs, label="B (feedback)")
axes[0].set_xlabel("step t")
axes[0].legend(fontsize=8)
axes[0].set_title("random, identical adjustments A(t)", fontsize=10)
t_axis = np.arange(steps + 1)
axes[1].semilogy(np.abs(np.array(Ws) - np.array(Bs)), label="|W − B|")
axes[1].semilogy(abs(W0 - B0) * (1 - lam) ** t_axis, "k--", lw=1, label="(1 − λ)^t |W₀ − B₀|")
axes[1].set_xlabel("step t")
axes[1].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "05_scalar_kp")
plt.show()
plt.close(fig)

# %% [markdown]
# ### The same two synapses in minibp
#
# A network with a single 1×1 dense layer has one forward weight `W` and, under
# `get_rule("kp")`, one feedback weight `B`. The adjustment is now the learning step,
# `A(t) = −η δ y` (eq 4), for a regression target, and minibp's `SGD(lr, weight_decay=wd)` applies
# eq (16): `ΔW = −η δ yᵀ − λ W` with `λ = η · wd`. KP gives `B` the same gradient (eq 17), so the
# optimizer gives it the same adjustment and the same decay.

# %%
one = Network([Dense(1, 1, bias=False, rng=np.random.default_rng(0), dtype="float64")])
kp = minibp.get_rule("kp")
one.init_feedback(kp, np.random.default_rng(1))
unit = one.weight_layers[0]
lr, wd = 0.1, 0.2
opt = minibp.SGD(lr, momentum=0.0, weight_decay=wd)
lam = lr * wd  # λ of eq (16)
mse = minibp.MeanSquaredError()
gen = np.random.default_rng(2)
d0 = float(unit.W[0, 0] - unit.B[0, 0])
diffs, worst = [d0], 0.0
for t in range(1, 201):
    x = gen.standard_normal((8, 1))
    _, dout = mse(one.forward(x), 3.0 * x)  # learn y = 3x
    one.backward(dout, kp)
    assert unit.grads["B"][0, 0] == unit.grads["W"][0, 0]  # identical adjustments
    opt.step(one.param_layers)
    diffs.append(float(unit.W[0, 0] - unit.B[0, 0]))
    worst = max(worst, abs(diffs[-1] - (1 - lam) ** t * d0) / abs((1 - lam) ** t * d0))
print(f"λ = {lam:g}: worst relative error {worst:.1e};  W = {unit.W[0, 0]:.4f}, B = {unit.B[0, 0]:.4f}")
assert worst <= 1e-12

fig, ax = plt.subplots(figsize=(4.5, 3.3))
ax.semilogy(np.abs(diffs), label="|W − B| (minibp)")
ax.semilogy(abs(d0) * (1 - lam) ** np.arange(len(diffs)), "k--", lw=1, label="(1 − λ)^t |W₀ − B₀|")
ax.set_xlabel("training step")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "05_scalar_kp_minibp")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 2. The reciprocal network: eqs (15)–(18)
#
# In a real network the forward synapse `W_{l+1}` learns from its input `y_l` and the teaching
# signal `δ_{l+1}` (eq 4). The reciprocal arrangement lets each feedback synapse do the same
# with *its* local signals: `B_{l+1}` connects feedback cell `δ_{l+1}` to feedback cell `δ_l`, and
# learns from `δ_{l+1}` (its input) and `y_l` (sent over from the forward path):
#
# `ΔB_{l+1} = −η y_l δ_{l+1}ᵀ − λ B_{l+1}`  (eq 17),  i.e.  `ΔB_{l+1}ᵀ = −η δ_{l+1} y_lᵀ − λ B_{l+1}ᵀ`  (eq 18).
#
# Eq (18) is eq (16) with `B_{l+1}ᵀ` in place of `W_{l+1}`: the matrix form of eqs (13)–(14).
# We check it on a small ReLU network: after `net.backward(dout, rule)`, `layer.grads["B"]`
# must equal `y_l δ_{l+1}ᵀ` computed from the layer's cached input and the returned `δ`, and
# that is `W`'s gradient transposed. The `δ`s themselves travel through `B` (eq 3).

# %%
net = minibp.mlp([64, 32, 16, 10], "relu", seed=0, dtype="float64")
rule = minibp.get_rule("kp")
net.init_feedback(rule, np.random.default_rng(1))
loss_fn = minibp.SoftmaxCrossEntropy()
x, labels = data.x_train[:64], data.y_train[:64]
_, dout = loss_fn(net.forward(x), labels)
deltas = net.backward(dout, rule)

acts = [layer for layer in net.layers if not layer.has_weights]
for i, layer in enumerate(net.weight_layers):
    y_l = layer.x  # the layer's input y_l (cached by the forward pass)
    eq17 = y_l.T @ deltas[i]  # Σ over the batch of y_l δ_{l+1}ᵀ
    assert rel(layer.grads["B"], eq17) < 1e-12, layer.name
    assert np.array_equal(layer.grads["B"], layer.grads["W"].T)  # eq (18)
    if i > 0:  # eq (3): δ_l = φ'(y_l) ⊙ B_{l+1} δ_{l+1}
        assert rel(deltas[i - 1], acts[i - 1].dphi(y_l) * (deltas[i] @ layer.B.T)) < 1e-12
print("grads['B'] = y_l δ_{l+1}ᵀ = grads['W']ᵀ in every layer (eqs 17-18)")

# %% [markdown]
# One step of `SGD(lr, weight_decay=wd)` is eq (16) for `W` and eq (17) for `B`, with the decay
# per step `λ = lr · wd`.
#
# ### Exercise 1 · Eq (17) (implement it)
#
# Write `kp_step(B, y_prev, delta_next, lr, decay)`: `B` after one plain-SGD step of eq (17),
# `B − η y_l δ_{l+1}ᵀ − λ B`, where `y_prev` is `y_l` `(N, n_in)`, `delta_next` is `δ_{l+1}`
# `(N, n_out)` (the loss's `1/N` already inside), `B` has the shape of `Wᵀ` and `decay` is `λ`.
# Return a new array. The cell after it checks your step against the optimizer's.


# %%
def kp_step(B, y_prev, delta_next, lr, decay):
    """One plain-SGD step of eq (17): B − η Σ_n y_{l,n} δ_{l+1,n}ᵀ − λ B."""
    ### BEGIN SOLUTION
    return B - lr * y_prev.T @ delta_next - decay * B
    ### END SOLUTION


kp_step = exercises.check_kp_step(kp_step)

# %%
lr, wd = 0.05, 0.4
before = {layer.name: (layer.W.copy(), layer.B.copy()) for layer in net.weight_layers}
opt = minibp.SGD(lr, momentum=0.0, weight_decay=wd)
opt.step(net.param_layers)
lam = lr * wd
for layer, delta in zip(net.weight_layers, deltas):
    W_old, B_old = before[layer.name]
    assert rel(layer.W, W_old - lr * layer.grads["W"] - lam * W_old) < 1e-12  # eq (16)
    assert rel(layer.B, kp_step(B_old, layer.x, delta, lr, lam)) < 1e-12  # eq (17), by your function
    assert rel(layer.W - layer.B.T, (1 - lam) * (W_old - B_old.T)) < 1e-12  # eqs (13)-(14)
print(f"one step: W − Bᵀ shrank by exactly 1 − λ = {1 - lam:g}")

top = net.weight_layers[-1]
fig, axes = plt.subplots(1, 3, figsize=(9.5, 3))
for ax, mat, title in zip(
    axes,
    [top.grads["W"], top.grads["B"].T, top.B.T],
    ["grads['W'] = δ yᵀ", "grads['B']ᵀ = (y δᵀ)ᵀ", "Bᵀ (still random)"],
):
    ax.imshow(mat, cmap="RdBu_r", aspect="auto")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
save_figure(fig, "05_eq17_gradients")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 3. The matrix version on digits
#
# Train the network with `SGD(lr, momentum=0, weight_decay=wd)` for a few hundred steps.
# Whatever the gradients do, in every layer
#
# `W_t − B_tᵀ = (1 − λ)^t (W₀ − B₀ᵀ)`, so `‖W_t − B_tᵀ‖ = (1 − λ)^t ‖W₀ − B₀ᵀ‖`,
#
# and the matrix angle `∠(B, Wᵀ)` (Fig 4c) falls as the common part of `W` and `Bᵀ` takes over.

# %%
net = minibp.mlp([64, 32, 16, 10], "relu", seed=0, dtype="float64")
net.init_feedback(rule, np.random.default_rng(1))
lr, wd, steps = 0.2, 0.05, 300
lam = lr * wd
opt = minibp.SGD(lr, momentum=0.0, weight_decay=wd)
D0 = [layer.W - layer.B.T for layer in net.weight_layers]
gen = np.random.default_rng(3)
norms, angles, losses = [[np.linalg.norm(d) for d in D0]], [minibp.matrix_angles(net, rule)], []
for _ in range(steps):
    idx = gen.integers(0, len(data.x_train), 32)
    loss, dout = loss_fn(net.forward(data.x_train[idx]), data.y_train[idx])
    net.backward(dout, rule)  # eqs (3), (4), (17)
    opt.step(net.param_layers)  # eqs (16), (17)
    losses.append(float(loss))
    norms.append([np.linalg.norm(layer.W - layer.B.T) for layer in net.weight_layers])
    angles.append(minibp.matrix_angles(net, rule))
norms, angles = np.array(norms), np.array(angles)

decay = (1 - lam) ** np.arange(steps + 1)
worst = np.max(np.abs(norms / (decay[:, None] * norms[0]) - 1))
print(f"λ = {lam:g}: worst relative error of ‖W − Bᵀ‖ over {steps} steps and 3 layers: {worst:.1e}")
assert worst < 1e-10
for layer, d0 in zip(net.weight_layers, D0):
    assert rel(layer.W - layer.B.T, decay[-1] * d0) < 1e-10  # the whole matrix, not just its norm
print("∠(B, Wᵀ) per layer: start", angles[0].round(1), "→ end", angles[-1].round(1))
assert angles[0].min() > 80 and angles[-1].max() < 15
assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:20])  # and it learns

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
for i in range(3):
    axes[0].semilogy(norms[:, i], label=f"layer {i + 1}")
    axes[1].plot(angles[:, i], label=f"layer {i + 1}")
axes[0].semilogy(norms[0].max() * decay, "k--", lw=1, label="(1 − λ)^t")
axes[0].set_xlabel("training step")
axes[0].set_ylabel("‖W − Bᵀ‖")
axes[0].legend(fontsize=8)
axes[1].set_xlabel("training step")
axes[1].set_ylabel("∠(B, Wᵀ) in degrees")
axes[1].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "05_matrix_kp")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 4. The price of λ (Section 7)
#
# The Discussion: "A big `λ` speeds up alignment, but may hamper learning." Only the decay removes
# the random start `W₀ − B₀` (the shared updates also lower the angle, as the `λ = 0` row below
# shows, but they never remove that start), and the same decay pulls every forward weight
# towards 0. We sweep the
# weight decay with `minibp.train` on digits (a 64-64-10 ReLU network, plain SGD, constant
# learning rate 0.2, so `λ = 0.2 · wd` per step, 8 epochs of 45 steps). `train` records the
# matrix angles and the losses after every epoch.

# %%
decays = [0.0, 0.01, 0.03, 0.1, 0.3]
runs = {}
for wd in decays:
    config = minibp.TrainConfig(
        rule="kp",
        hidden=(64,),
        epochs=8,
        lr=0.2,
        momentum=0.0,
        weight_decay=wd,
        schedule="constant",
        probe_size=128,
        seed=0,
    )
    runs[wd] = minibp.train(config, progress=False)[1]

print(" wd      λ     final angle (mean)   train loss   test acc")
for wd, hist in runs.items():
    last = hist[-1]
    print(
        f"{wd:5.2f} {0.2 * wd:6.3f}  {np.mean(last['matrix_angle']):14.4f}°  {last['train_loss']:12.3f}"
        f"  {last['test_accuracy']:9.3f}"
    )

# %%
final_angle = [np.mean(runs[wd][-1]["matrix_angle"]) for wd in decays]
final_loss = {wd: runs[wd][-1]["train_loss"] for wd in decays}
final_acc = {wd: runs[wd][-1]["test_accuracy"] for wd in decays}
assert all(a > b for a, b in zip(final_angle, final_angle[1:]))  # more decay, closer alignment


def first_epoch_below(hist, limit=20.0):
    return next((r["epoch"] for r in hist if np.mean(r["matrix_angle"]) < limit), np.inf)


reach = [first_epoch_below(runs[wd]) for wd in decays]
print("first epoch with mean angle < 20°:", reach)
assert all(a >= b for a, b in zip(reach, reach[1:])) and reach[-1] < reach[2]  # and sooner
assert final_loss[0.3] > 2 * final_loss[0.01]  # but the largest λ learns much worse
assert final_acc[0.3] < max(final_acc.values()) - 0.1

fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(decays)))
for wd, c in zip(decays, colors):
    hist = runs[wd]
    ep = [r["epoch"] for r in hist]
    axes[0].plot(ep, [np.mean(r["matrix_angle"]) for r in hist], color=c, label=f"λ = {0.2 * wd:.3f}")
    axes[1].plot(ep, [r["train_loss"] for r in hist], color=c, label=f"λ = {0.2 * wd:.3f}")
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("mean ∠(B, Wᵀ) in degrees")
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("training loss")
axes[1].set_yscale("log")
axes[0].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "05_lambda_tradeoff")
plt.show()
plt.close(fig)

# %% [markdown]
# ## What we found
#
# * Identical adjustments plus identical decay make `W − B` shrink by exactly `(1 − λ)` per step
#   (eqs 13–14): to machine precision with floats, and in minibp's optimizer.
# * The reciprocal network gets identical adjustments without sending any weight or weight
#   change across: `B`'s update `y_l δ_{l+1}ᵀ` (eq 17) uses only signals at `B`'s own synapses,
#   and it is `W`'s update transposed (eq 18). So `‖W − Bᵀ‖` follows `(1 − λ)^t` in every layer.
# * `λ` sets the speed of alignment, and also pulls every weight to 0: on digits `λ = 0.02` per
#   step aligns `B` within 3 epochs but costs 17 points of test accuracy (0.778 against 0.95) —
#   the trade-off of Section 7. At `λ = 0.06` the alignment is perfect and worthless: the decay
#   holds `W` so close to 0 that the network outputs chance (loss ≈ ln 10 ≈ 2.30).
#
# ## Open-ended exercises
#
# 1. **Momentum.** minibp's SGD puts weight decay through the momentum buffer. With momentum `μ`
#    the difference `D = W − Bᵀ` obeys `v ← μ v + wd · D`, `D ← D − η v`. Show that
#    `D_{t+1} = (1 + μ − λ) D_t − μ D_{t−1}`, so `D` still shrinks geometrically, and estimate the
#    rate from a training run. Compare with the root of `z² − (1 + μ − λ) z + μ = 0` and with the
#    approximation `λ / (1 − μ)`, which holds only while `λ ≤ (1 − √μ)²`: beyond that the roots
#    are complex, of modulus `√μ`, and the rate is capped at `1 − √μ`.
# 2. **No decay.** With `λ = 0` (weight_decay 0), show that `W − Bᵀ` stays exactly what it was at
#    the start while `W` itself moves a lot. Does the angle `∠(B, Wᵀ)` still fall? Why?
# 3. **Half-life.** How many steps does `‖W − Bᵀ‖` take to halve, as a function of `λ`? Check the
#    formula with minibp for `λ = 0.01` and `λ = 0.05`.
#
# Worked solutions: `solutions/05_kolen_pollack_solutions.py`.

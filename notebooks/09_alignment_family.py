# %% [markdown]
# # 09 · The alignment family
#
# **Papers:** Kunin, Nayebi, Sagastuy-Brena, Ganguli, Bloom & Yamins, *Two Routes to Scalable
# Credit Assignment without Weight Symmetry* (ICML 2020), Table 1 and its primitives; Akrout et
# al., *Deep Learning without Weight Transport* (NeurIPS 2019), Sections 4–5 (the weight mirror
# and Kolen–Pollack).
#
# The weight mirror (notebook 04) and Kolen–Pollack (notebook 05) look like two unrelated tricks.
# Kunin et al. write both, and three new rules, as **gradient descent on a local loss of `B`**, a
# weighted sum of five *primitives*. For one dense layer with input `x` (a row of the batch),
# `W` (`m × n`) and `B` (`n × m`, the shape of `Wᵀ`), with the forward projection `r = W x`, the
# backward projection `s = Bᵀ x` and `E` the mean over the batch:
#
# | primitive | loss | `∇_B` |
# |---|---|---|
# | decay | `‖B‖²` | `2B` |
# | sparse | `E‖r‖² + E‖s‖²` | `2 E[x sᵀ]` |
# | null | `E‖B r‖²` | `2 E[(B r) rᵀ]` |
# | self | `−tr(B W)` | `−Wᵀ` |
# | amp | `−E[sᵀ r]` | `−E[x rᵀ]` |
#
# | rule | local loss | in minibp |
# |---|---|---|
# | weight mirror | decay + amp, on noise | `FamilyMirror` (= `wm`) |
# | Kolen–Pollack | decay, plus `W`'s gradient | `FamilyKolenPollack` (= `kp`) |
# | symmetric alignment | decay + self | `sa` |
# | activation alignment | sparse + amp | `aa` |
# | information alignment | amp + null + decay | `ia` |
#
# In this notebook you will compute:
#
# 1. each primitive as a loss on `B`: its value from the definition, its gradient by finite
#    differences, for a dense layer and a convolution;
# 2. what each named rule makes a single layer's `B` converge to, and why only some of them give
#    a multiple of `Wᵀ`;
# 3. the weight mirror and Kolen–Pollack rebuilt from primitives, matched to `wm` and `kp`;
# 4. the three named rules training on digits.

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
from minibp import Dense, angle, exercises
from minibp.layers import Conv2D
from minibp.plots import save_figure
from minibp.rules import FamilyKolenPollack, FamilyMirror, WeightMirror
from minibp.rules import primitives as P


def rel(a, b):
    """Relative difference ‖a − b‖ / ‖b‖."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def slope(f, B, V, eps=1e-6):
    """Central finite difference of ``f(B)`` along the direction ``V``."""
    return (f(B + eps * V) - f(B - eps * V)) / (2 * eps)


data = minibp.data.load_digits(dtype="float64")
loss_fn = minibp.SoftmaxCrossEntropy()
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Five losses on `B`
#
# Start with the simplest, decay: `L(B) = ‖B‖²`. Its slope along any direction `V` is
# `⟨2B, V⟩`, and a central difference must agree to rounding (the loss is quadratic, so the
# difference has no truncation error).

# %%
layer = Dense(8, 5, rng=rng, dtype="float64")
W = layer.W
B = rng.standard_normal((8, 5)) * layer.init_std  # the shape of Wᵀ
x = rng.standard_normal((64, 8)) @ (np.eye(8) + 0.3 * rng.standard_normal((8, 8)))  # a batch of inputs
V = rng.standard_normal(B.shape)

fd = slope(lambda B: np.sum(B**2), B, V)
print(f"decay: finite difference {fd:.10f}, <2B, V> = {np.sum(2 * B * V):.10f}")
assert abs(fd - np.sum(2 * B * V)) < 1e-8

# %% [markdown]
# Now all five, one sample at a time from the definitions (column vectors, as in the table), against
# `minibp.rules.primitives`, whose functions take the layer's maps, `B`, the batch `x` and its forward
# projection `r`, and return `(loss, ∇_B)`. Then each gradient against finite differences.

# %%
maps = P.layer_maps(layer, x.shape)
r = maps.forward(x)  # r = W x for every row


def by_definition(name, B):
    total = 0.0
    for xi in x:
        ri, si = W @ xi, B.T @ xi
        total += {
            "sparse": ri @ ri + si @ si,
            "null": np.sum((B @ ri) ** 2),
            "null_reversed": np.sum((W.T @ si) ** 2),
            "amp": -si @ ri,
        }.get(name, 0.0)
    extra = {"decay": np.sum(B**2), "self": -np.trace(B @ W)}.get(name, 0.0)
    return total / len(x) + extra


print(f"{'primitive':>14} | {'loss':>10} | {'by definition':>13} | slope error (3 directions)")
for name, primitive in P.PRIMITIVES.items():
    loss, grad = primitive(maps, B, x, r)
    assert rel(loss, by_definition(name, B)) < 1e-12
    errors = []
    for _ in range(3):
        V = rng.standard_normal(B.shape)
        fd = slope(lambda B, f=primitive: float(f(maps, B, x, r)[0]), B, V)
        errors.append(abs(fd - np.sum(grad * V)) / max(1.0, abs(fd)))
    assert max(errors) < 1e-7, name
    print(f"{name:>14} | {float(loss):10.4f} | {by_definition(name, B):13.4f} | {max(errors):.1e}")

# %% [markdown]
# ### Exercise 1 · The null primitive's gradient (implement it)
#
# The null loss `E‖B r‖²`, with `r = W x`, is what `B` sends back of the forward projection.
# Derive its gradient in `B` and write `null_grad(x, W, B)` for a batch of rows `x` `(N, n)`,
# `W` `(m, n)` and `B` `(n, m)`: the mean over the batch, in the shape of `B`. (Hint: the loss of one
# sample is `Σ_i (Σ_j B_ij r_j)²`.) The cell after it checks your gradient against finite differences.


# %%
def null_grad(x, W, B):
    """∇_B E‖B W x‖² for a batch of rows x."""
    ### BEGIN SOLUTION
    r = x @ W.T  # r = W x, one row per sample
    return 2 * (r @ B.T).T @ r / len(x)  # 2 E[(B r) rᵀ]
    ### END SOLUTION


null_grad = exercises.check_null_grad(null_grad)

# %%
directions = np.random.default_rng(9)  # a generator of its own: the notebook's rng stream stays as it was
for _ in range(3):
    V = directions.standard_normal(B.shape)
    fd = slope(lambda B: float(np.mean(np.sum((x @ W.T @ B.T) ** 2, axis=1))), B, V)
    assert abs(fd - np.sum(null_grad(x, W, B) * V)) < 1e-7 * max(1.0, abs(fd))
print("null_grad agrees with finite differences of E‖B W x‖² along 3 random directions")

# %% [markdown]
# Two of the gradients deserve a second look. **Self**'s is `−Wᵀ`: a rule with a self term reads
# `W` itself, as backprop's feedback path does. **Amp**'s is `−E[x rᵀ]`: the weight mirror's
# Hebbian term, eq (7), with `y_l = x` and `y_{l+1} = r`. Only the amp term carries information
# about `W` into a rule that never reads `W`.
#
# ### Convolutions
#
# A convolution is the dense layer on every patch. So `W x` becomes `W ⋆ x`, `Bᵀ x` the
# convolution of `x` with the kernel `B` (which has `W`'s layout), `B r` the transposed
# convolution of `r` with `B` (the map the feedback path uses, eq 3), and `E` the mean over
# every patch. The same functions take a convolution's maps; the gradients still check.

# %%
conv = Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype="float64")
Bk = rng.standard_normal(conv.W.shape)
xc = rng.standard_normal((4, 2, 7, 7))
cmaps = P.layer_maps(conv, xc.shape)
rc = cmaps.forward(xc)
print(f"patches averaged over: {cmaps.patches(rc)} (4 images × {rc.shape[2]}×{rc.shape[3]} positions)")
for name, primitive in P.PRIMITIVES.items():
    loss, grad = primitive(cmaps, Bk, xc, rc)
    V = rng.standard_normal(Bk.shape)
    fd = slope(lambda B, f=primitive: float(f(cmaps, B, xc, rc)[0]), Bk, V)
    print(f"{name:>14}: slope {fd:+.8f}  <∇, V> {np.sum(grad * V):+.8f}")
    assert abs(fd - np.sum(grad * V)) < 1e-7 * max(1.0, abs(fd))

# %% [markdown]
# ## 2. Where each rule takes `B`
#
# Fix `W` and run gradient descent on each named rule's local loss with Kunin et al.'s
# coefficients (`α_decay = 1e-3, α_self = 2e-3` for SA; `α_sparse = 1e-3, α_amp = 2e-3` for AA;
# `α_amp = 2e-3, α_null = 1e-3, α_decay = 1e-3` for IA). On white inputs (`E[x xᵀ] = I`):
#
# * **SA**: `∇ = 2α_decay B − α_self Wᵀ`, zero at `B = (α_self / 2α_decay) Wᵀ = Wᵀ`;
# * **AA**: `∇ = E[x xᵀ](2α_sparse B − α_amp Wᵀ)`, zero at `B = Wᵀ` too (for any full-rank input
#   covariance: the inputs only set the speed);
# * **IA**: `∇ = −α_amp Wᵀ + 2α_null B W Wᵀ + 2α_decay B`, zero at
#   `B = (α_amp / 2α_null) Wᵀ (W Wᵀ + (α_decay/α_null) I)⁻¹`.
#
# With `α_amp = 2 α_null`, IA's loss is `α_null E‖x − B W x‖² + α_decay ‖B‖²` up to a constant:
# `B` learns to *reconstruct* the layer's input from its output, a ridge-regularised
# pseudo-inverse of `W`. It shares `Wᵀ`'s singular vectors, but each singular value `s` of `W`
# becomes `s / (s² + α_decay/α_null)` instead of `s`: a multiple of `Wᵀ` only when all of `W`'s
# singular values are equal.

# %%
x_white = np.sqrt(256) * np.linalg.qr(rng.standard_normal((256, 8)))[0]  # x.T @ x / 256 = I exactly
assert np.allclose(x_white.T @ x_white / 256, np.eye(8))
rules = {name: minibp.get_rule(name, source="activity") for name in ("sa", "aa", "ia")}
B0 = rng.standard_normal((8, 5)) * layer.init_std
lrs = {"sa": 100.0, "aa": 100.0, "ia": 100.0}  # 1 / (the loss's largest curvature) or below
steps = 400
angles = {}
for name, rule in rules.items():
    layer.params["B"] = B0.copy()
    angles[name] = [angle(layer.B, W.T)]
    for _ in range(steps):
        layer.params["B"] -= lrs[name] * rule.local_loss(layer, x_white, with_loss=False)[1]
        angles[name].append(angle(layer.B, W.T))
    rules[name] = (rule, layer.B.copy())

sa_B, aa_B, ia_B = (rules[n][1] for n in ("sa", "aa", "ia"))
ia = rules["ia"][0]
c = ia.alpha_decay / ia.alpha_null
ridge = ia.alpha_amp / (2 * ia.alpha_null) * W.T @ np.linalg.inv(W @ W.T + c * np.eye(5))
print(f"SA: ‖B − Wᵀ‖/‖Wᵀ‖ = {rel(sa_B, W.T):.1e};  AA: {rel(aa_B, W.T):.1e}")
print(f"IA: ‖B − ridge decoder‖/‖ridge‖ = {rel(ia_B, ridge):.1e};  ∠(B, Wᵀ) = {angle(ia_B, W.T):.1f}°")
assert rel(sa_B, W.T) < 1e-10 and rel(aa_B, W.T) < 1e-10 and rel(ia_B, ridge) < 1e-10
assert 5 < angle(ia_B, W.T) < 90

U, s_W, Vt = np.linalg.svd(W, full_matrices=False)  # W = U diag(s) Vᵀ, so Wᵀ = V diag(s) Uᵀ


def along_W(B):
    """``vᵢᵀ B uᵢ`` for each singular pair of ``W``, and the largest ``|vᵢᵀ B uⱼ|`` off the diagonal."""
    M = Vt @ B @ U
    return np.diag(M), np.max(np.abs(M - np.diag(np.diag(M))))


predicted = ia.alpha_amp / (2 * ia.alpha_null) * s_W / (s_W**2 + c)
ia_diag, ia_off = along_W(ia_B)
print("singular values of W:        ", s_W.round(4))
print("IA's B along them:           ", ia_diag.round(4), f"(off the diagonal ≤ {ia_off:.0e})")
print("predicted s / (s² + α_d/α_n):", predicted.round(4))
assert np.allclose(ia_diag, predicted, rtol=1e-9) and ia_off < 1e-10

fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
for name in ("sa", "aa", "ia"):
    axes[0].plot(angles[name], label=name.upper())
axes[0].set_xlabel("gradient step on the local loss")
axes[0].set_ylabel("∠(B, Wᵀ) in degrees")
axes[0].set_yscale("symlog", linthresh=1)
axes[0].legend(fontsize=8)
grid = np.linspace(0.05, 1.5 * s_W.max(), 200)
axes[1].plot(grid, grid, "k:", lw=1, label="s (SA, AA: B = Wᵀ)")
axes[1].plot(grid, ia.alpha_amp / (2 * ia.alpha_null) * grid / (grid**2 + c), "k--", lw=1, label="s / (s² + α_d/α_n)")
axes[1].plot(s_W, along_W(sa_B)[0], "o", label="SA's B")
axes[1].plot(s_W, ia_diag, "s", label="IA's B")
axes[1].set_xlabel("singular value s of W")
axes[1].set_ylabel("vᵢᵀ B uᵢ")
axes[1].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "09_fixed_points")
plt.show()
plt.close(fig)

# %% [markdown]
# So IA's `B` is *not* `Wᵀ`, yet its angle to `Wᵀ` stays below 90° (`tr(B W) > 0`: every singular
# value keeps its sign), which is all feedback alignment needs to carry useful errors. When `W`'s
# rows are orthogonal and of equal length, every singular value is the same and IA's `B` is a
# multiple of `Wᵀ`:

# %%
layer.params["W"] = 0.7 * np.linalg.qr(rng.standard_normal((8, 5)))[0].T  # orthonormal rows × 0.7
layer.params["B"] = B0.copy()
for _ in range(steps):
    layer.params["B"] -= lrs["ia"] * ia.local_loss(layer, x_white, with_loss=False)[1]
print(f"orthogonal W: ∠(IA's B, Wᵀ) = {angle(layer.B, layer.W.T):.2e}°")
assert angle(layer.B, layer.W.T) < 1e-6
layer.params["W"] = W  # back to the generic W

# %% [markdown]
# ## 3. The weight mirror and Kolen–Pollack, rebuilt
#
# **The weight mirror** is decay + amp on noise. A step `B ← B − lr (2 α_decay B − α_amp E[x rᵀ])`
# is eq (7) with decay, `B ← (1 − λ_B) B + η_B E[y_l y_{l+1}ᵀ]`, for `η_B = lr · α_amp` and
# `λ_B = 2 lr · α_decay`. `FamilyMirror`'s defaults are `wm`'s mapped so (`lr = 0.008`,
# `α_amp = 1`, `α_decay = 0.5`) and it draws the same noise for the same seed and pass. Train two
# copies of a network, one under each rule:


# %%
def twin_run(rule, steps=24, momentum=0.9, wd=1e-3, seed=0):
    """A float64 64-32-16-10 ReLU MLP trained under ``rule`` for ``steps`` steps on seeded batches of digits."""
    net = minibp.mlp([64, 32, 16, 10], "relu", seed=seed, dtype="float64")
    net.init_feedback(rule, np.random.default_rng(seed + 1))
    opt = minibp.SGD(0.1, momentum=momentum, weight_decay=wd)
    gen = np.random.default_rng(seed + 2)
    for _ in range(steps):
        idx = gen.integers(0, len(data.x_train), 32)
        minibp.train_step(net, rule, loss_fn, opt, data.x_train[idx], data.y_train[idx])
    return net


wm_net, fam_net = twin_run(WeightMirror(seed=3)), twin_run(FamilyMirror(seed=3))
for a, b in zip(wm_net.weight_layers, fam_net.weight_layers):
    print(f"{a.name}: ‖B_family − B_wm‖ / ‖B_wm‖ = {rel(b.B, a.B):.1e}")
    assert rel(b.B, a.B) < 1e-12

# %% [markdown]
# **Kolen–Pollack** is the decay primitive plus `W`'s own gradient, tied to `B` (eq 17). With a
# zero decay coefficient, `FamilyKolenPollack` is `kp` bit for bit; the optimizer's weight decay
# then acts on `W` and `B` alike, and `W − Bᵀ` shrinks by `(1 − λ)` per step (eqs 13–14). A
# coefficient `c > 0` adds `2c · lr` to `B`'s decay alone, so `W` and `B` forget at different
# rates and `W − Bᵀ` no longer vanishes: Kolen and Pollack's cancellation needs equal decay.

# %%
kp_net = twin_run(minibp.get_rule("kp"), momentum=0.0, wd=0.05, steps=300)
same_net = twin_run(FamilyKolenPollack(alpha_decay=0.0), momentum=0.0, wd=0.05, steps=300)
for a, b in zip(kp_net.weight_layers, same_net.weight_layers):
    assert np.array_equal(a.B, b.B) and np.array_equal(a.W, b.W)
print("α_decay = 0: kp's arrays exactly")

lr, wd = 0.1, 0.05
lam = lr * wd  # λ of eq (16), the optimizer's decay per step
histories = {}
for c in (0.0, 0.01, 0.05):
    rule = FamilyKolenPollack(alpha_decay=c)
    net = minibp.mlp([64, 32, 16, 10], "relu", seed=0, dtype="float64")
    net.init_feedback(rule, np.random.default_rng(1))
    opt = minibp.SGD(lr, momentum=0.0, weight_decay=wd)
    gen = np.random.default_rng(2)
    gaps, angs = [[np.linalg.norm(layer.W - layer.B.T) for layer in net.weight_layers]], []
    for _ in range(300):
        before = [layer.B.copy() for layer in net.weight_layers]
        idx = gen.integers(0, len(data.x_train), 32)
        minibp.train_step(net, rule, loss_fn, opt, data.x_train[idx], data.y_train[idx])
        for layer, B_old in zip(net.weight_layers, before):  # B ← (1 − λ − 2c·lr) B − lr · (W's gradient)ᵀ
            assert rel(layer.B, (1 - lam - 2 * c * lr) * B_old - lr * layer.grads["W"].T) < 1e-12
        gaps.append([np.linalg.norm(layer.W - layer.B.T) for layer in net.weight_layers])
        angs.append([angle(layer.B, layer.W.T) for layer in net.weight_layers])
    histories[c] = (np.array(gaps) / gaps[0], np.array(angs))
    print(f"α_decay = {c}: final ∠(B, Wᵀ) per layer {histories[c][1][-1].round(1)}")

t = np.arange(301)
assert np.allclose(histories[0.0][0], (1 - lam) ** t[:, None], rtol=1e-10)  # eqs (13)-(14), c = 0 only
assert histories[0.05][1][-1].mean() > histories[0.0][1][-1].mean() + 5

fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
for c, (gap, ang) in histories.items():
    axes[0].plot(gap.mean(axis=1), label=f"α_decay = {c}")
    axes[1].plot(ang.mean(axis=1), label=f"α_decay = {c}")
axes[0].plot((1 - lam) ** t, "k--", lw=1, label="(1 − λ)^t")
axes[0].set_xlabel("training step")
axes[0].set_ylabel("‖W − Bᵀ‖ / ‖W₀ − B₀ᵀ‖ (mean of layers)")
axes[1].set_xlabel("training step")
axes[1].set_ylabel("mean ∠(B, Wᵀ) in degrees")
axes[0].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "09_family_kp")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 4. The named rules on digits
#
# `sa` hands its local gradient to the optimizer, as Kunin et al.'s code does: `B` is stepped
# with the run's learning rate, momentum **and weight decay**. `aa` and `ia` learn in mirror mode,
# from noise, as the weight mirror does (minibp's choice: from a ReLU MLP's activity, AA aligns
# `B` only where the activity varies most, and IA's loss has a curvature that grows with the
# activity until training collapses; exercise 3 looks at the first). A 64-64-10 ReLU MLP,
# 12 epochs, each rule with its defaults:

# %%
runs = {}
for name in ("bp", "sa", "aa", "ia"):
    config = minibp.TrainConfig(rule=name, hidden=(64,), epochs=12, probe_size=128)
    runs[name] = minibp.train(config, data=minibp.data.load_digits(), progress=False)[1]
print("rule  test acc   ∠(B, Wᵀ) per layer (in → out)")
for name, hist in runs.items():
    print(f"{name:4}  {hist[-1]['test_accuracy']:.3f}    {np.round(hist[-1]['matrix_angle'], 1)}")
assert all(hist[-1]["test_accuracy"] > 0.85 for hist in runs.values())

fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
for name, hist in runs.items():
    epochs = [rec["epoch"] for rec in hist]
    axes[0].plot(epochs, [rec["test_accuracy"] for rec in hist], label=name.upper())
    if name != "bp":
        axes[1].plot(epochs, [rec["matrix_angle"][-1] for rec in hist], label=name.upper())
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("test accuracy")
axes[0].legend(fontsize=8)
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("∠(B, Wᵀ), output layer (°)")
axes[1].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "09_named_rules_digits")
plt.show()
plt.close(fig)

# %% [markdown]
# All three learn the task about as well as backprop here, but SA's `B` is still far from `Wᵀ` in
# the first layer after 12 epochs. Kunin et al.'s coefficients are small (`2 α_decay = 2e-3`) next
# to the run's weight decay (`wd = 5e-3`), which the optimizer applies to `B` as well: so `B`
# settles at `α_self / (2 α_decay + wd) ≈ 0.29` times `Wᵀ`, slowly. Exercise 4 asks what larger
# coefficients do. AA (on noise) aligns best; IA's angles level off well above 0, as section 2
# predicts for a ridge-regularised inverse.
#
# ## What we found
#
# * Every rule that learns `B` here is gradient descent on a sum of five local losses; their
#   gradients are short formulas (checked by finite differences), and the convolutional forms
#   follow from the dense ones patch by patch.
# * SA and AA send `B` to `Wᵀ` (SA by reading `W`; AA through the forward activity `r`, for any
#   full-rank input covariance). IA sends it to a ridge-regularised inverse of `W`, which shares
#   `Wᵀ`'s singular vectors but not its singular values.
# * The weight mirror is decay + amp on noise; Kolen–Pollack is decay plus `W`'s own gradient.
#   Both are rebuilt exactly, and the rebuilt KP shows why its decay must be shared with `W`.
#
# ## Open-ended exercises
#
# 1. **Noise turns AA into SA.** For white noise `x ~ N(0, σ² I)`, show that the expected
#    gradients satisfy `E[∇ amp] = σ² ∇ self` and `E[∇ sparse] = σ² ∇ decay`, so AA on noise is
#    SA in expectation. Check it by Monte Carlo: how does the error fall with the number of samples?
# 2. **IA without decay.** As `α_decay → 0`, show that IA's `B` tends to `(α_amp / 2α_null) W⁺`,
#    the pseudo-inverse, so that `W B → I` (for `m ≤ n`). How fast does `‖W B − I‖` fall with
#    `α_decay`?
# 3. **Activity or noise for AA.** Train `aa` on digits with `source="activity"` and with
#    `source="noise"` (its default). Which aligns `B` with `Wᵀ` better in the first layer, and why? (Hint:
#    how much does the first layer's input vary along each direction?)
# 4. **Coefficients against weight decay.** With the optimizer's weight decay `wd`, show that SA's
#    `B` settles at `α_self / (2 α_decay + wd) · Wᵀ` for a fixed `W`, and check it on one layer with
#    `minibp.SGD`. Then train `sa` on digits with ten times Kunin et al.'s coefficients: how close
#    to `Wᵀ` does `B` get?
#
# Worked solutions: `solutions/09_alignment_family_solutions.py`.

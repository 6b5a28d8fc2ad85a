# %% [markdown]
# # 09 · The alignment family — worked solutions
#
# Solutions to the exercises of `09_alignment_family`. Each one rebuilds what it needs and ends
# in an `assert` that checks the answer.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minibp
from minibp import Dense, angle
from minibp.plots import save_figure
from minibp.rules import primitives as P


def rel(a, b):
    """Relative difference ‖a − b‖ / ‖b‖."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


rng = np.random.default_rng(0)
layer = Dense(8, 5, rng=rng, dtype="float64")
W = layer.W
B = rng.standard_normal((8, 5)) * layer.init_std

# %% [markdown]
# ## Exercise 1 — noise turns AA into SA
#
# With `x ~ N(0, σ² I)`, `E[x xᵀ] = σ² I`. Amp's gradient is `−E[x rᵀ] = −E[x xᵀ] Wᵀ = −σ² Wᵀ`,
# which is `σ²` times self's gradient `−Wᵀ`; sparse's is `2 E[x sᵀ] = 2 E[x xᵀ] B = σ² · 2B`, `σ²`
# times decay's. (The losses agree too, up to a constant: `E‖r‖²` does not depend on `B`.) So in
# expectation AA on white noise *is* SA, and SA needs no noise at all — this is Kunin et al.'s point
# that the mirror's amp term is an estimate of the non-local self term.
#
# A Monte Carlo estimate from `N` samples has an error of order `1/√N`: the sample covariance
# `x xᵀ / N` differs from `σ² I` by that much.

# %%
sigma = 0.7
maps = P.layer_maps(layer, (1, 8))
errors = {}
for n in (100, 1_000, 10_000, 100_000):
    x = sigma * rng.standard_normal((n, 8))
    r = maps.forward(x)
    amp_grad = P.amp(maps, B, x, r)[1]
    sparse_grad = P.sparse(maps, B, x, r)[1]
    errors[n] = (
        rel(amp_grad, sigma**2 * P.self_(maps, B, x, r)[1]),
        rel(sparse_grad, sigma**2 * P.decay(maps, B, x, r)[1]),
    )
    print(f"N = {n:>6}: amp vs σ²·self {errors[n][0]:.4f};  sparse vs σ²·decay {errors[n][1]:.4f}")

ns = np.array(list(errors))
fit = np.polyfit(np.log(ns), np.log([e[0] for e in errors.values()]), 1)[0]
print(f"the amp error falls like N^{fit:.2f}")
assert -0.7 < fit < -0.3  # about 1/√N
assert max(errors[100_000]) < 0.02

fig, ax = plt.subplots(figsize=(4.5, 3.4))
ax.loglog(ns, [e[0] for e in errors.values()], "o-", label="amp vs σ²·self")
ax.loglog(ns, [e[1] for e in errors.values()], "s-", label="sparse vs σ²·decay")
ax.loglog(ns, 1 / np.sqrt(ns), "k--", lw=1, label="1/√N")
ax.set_xlabel("noise samples N")
ax.set_ylabel("relative difference of the gradients")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "09_solution_noise_aa_is_sa")
plt.show()
plt.close(fig)

# %% [markdown]
# ## Exercise 2 — IA without decay
#
# On white inputs IA's fixed point is `B = k Wᵀ (W Wᵀ + c I)⁻¹` with `k = α_amp / 2α_null` and
# `c = α_decay / α_null`. As `c → 0` that tends to `k Wᵀ (W Wᵀ)⁻¹ = k W⁺` (W has full row rank,
# `m ≤ n`), and `W B = k W Wᵀ (W Wᵀ + c I)⁻¹ = k (I − c (W Wᵀ + c I)⁻¹)`. With Kunin et al.'s
# `k = 1`, `‖W B − I‖ = c ‖(W Wᵀ + c I)⁻¹‖ ≈ c ‖(W Wᵀ)⁻¹‖` once `c` is well below the smallest
# `s²` of `W`: from there on it falls in proportion to `α_decay`.
# We descend IA's local loss (the rule's own gradient) to its fixed point for several `α_decay`.

# %%
x = np.sqrt(256) * np.linalg.qr(rng.standard_normal((256, 8)))[0]  # exactly white
gaps = {}
for alpha_decay in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8):
    ia = minibp.get_rule("ia", source="activity", alpha_decay=alpha_decay)
    L = np.linalg.eigvalsh(2 * ia.alpha_null * W @ W.T + 2 * alpha_decay * np.eye(5))
    layer.params["B"] = B.copy()
    for _ in range(int(np.ceil(40 / -np.log1p(-L[0] / L[-1])))):
        layer.params["B"] -= ia.local_loss(layer, x, with_loss=False)[1] / L[-1]
    c = alpha_decay / ia.alpha_null
    assert rel(layer.B, W.T @ np.linalg.inv(W @ W.T + c * np.eye(5))) < 1e-9
    gaps[alpha_decay] = np.linalg.norm(W @ layer.B - np.eye(5))
    to_pinv = angle(layer.B, np.linalg.pinv(W))
    print(f"α_decay = {alpha_decay:.0e}: ‖W B − I‖ = {gaps[alpha_decay]:.2e}, ∠(B, W⁺) = {to_pinv:.4f}°")

a = np.array(list(gaps))[-3:]  # c ≪ s_min², the asymptotic regime
order = np.polyfit(np.log(a), np.log(list(gaps.values())[-3:]), 1)[0]
print(f"smallest singular value of W squared: {np.linalg.svd(W, compute_uv=False)[-1] ** 2:.3f}")
print(f"for c ≪ s_min²: ‖W B − I‖ ∝ α_decay^{order:.3f}")
assert abs(order - 1) < 0.05
assert angle(layer.B, np.linalg.pinv(W)) < 0.01

# %% [markdown]
# ## Exercise 3 — activity or noise for AA
#
# In activity mode AA's gradient is `Σ (2α_sparse B − α_amp Wᵀ)` with `Σ = E[x xᵀ]` the input's
# second moment: along an eigenvector of `Σ` with eigenvalue `λ`, `B` moves towards `Wᵀ` at a rate
# proportional to `λ`. The first layer's input is the image. Its `Σ` has one large eigenvalue (the
# mean image, about 10) and all others below 1; there AA's pull, `lr · 2α_sparse · λ ≤ lr · 2e-3`,
# is weaker than the weight decay `lr · 5e-3` that the optimizer applies to `B`, so `B` shrinks in
# those directions but does not turn towards `Wᵀ` (directions no image takes, such as pixels that
# are always 0, get no pull at all). Noise has `Σ = σ² I`: every direction learns at one rate.
#
# We train both and measure the first layer's angle inside the top eigenvector of `Σ` and outside
# it (the rows of `B` and `Wᵀ` projected on each subspace).

# %%
digits = minibp.data.load_digits()
X = digits.x_train.astype(np.float64)
lam, U = np.linalg.eigh(X.T @ X / len(X))
print("largest eigenvalues of the pixels' second moment:", lam[::-1][:5].round(3))
top, rest = U[:, lam > 1], U[:, lam <= 1]
results = {}
for source in ("activity", "noise"):
    config = minibp.TrainConfig(rule="aa", aa_source=source, hidden=(64,), epochs=12, probe_size=128)
    net, hist = minibp.train(config, data=digits, progress=False)
    B1, WT1 = net.weight_layers[0].B.astype(np.float64), net.weight_layers[0].W.T.astype(np.float64)
    results[source] = (hist[-1]["matrix_angle"], angle(top.T @ B1, top.T @ WT1), angle(rest.T @ B1, rest.T @ WT1))
    print(
        f"{source:>8}: ∠(B, Wᵀ) per layer {np.round(results[source][0], 1)}; first layer along the top "
        f"eigenvector {results[source][1]:.1f}°, in the other {rest.shape[1]} directions {results[source][2]:.1f}°; "
        f"test accuracy {hist[-1]['test_accuracy']:.3f}"
    )
assert results["activity"][1] < 10 and results["activity"][2] > 80  # aligned only where the images vary a lot
assert results["noise"][2] < 45 and results["noise"][0][0] < results["activity"][0][0] - 30

# %% [markdown]
# ## Exercise 4 — coefficients against weight decay
#
# The optimizer adds `wd · B` to SA's gradient `2α_decay B − α_self Wᵀ`. For a fixed `W` the sum is
# zero at `B = α_self / (2α_decay + wd) · Wᵀ`: with Kunin et al.'s coefficients and minibp's
# `wd = 5e-3`, `2e-3 / 7e-3 ≈ 0.29 Wᵀ`. Momentum changes the path, not the fixed point. We check it on
# one layer, stepping `B` with `minibp.SGD` exactly as training does (`feedback_grads`, then `step`).

# %%
sa = minibp.get_rule("sa")
layer.params["B"] = B.copy()
opt = minibp.SGD(2.0, momentum=0.9, weight_decay=5e-3)
layer.forward(x)
for _ in range(3000):
    layer.grads = {}
    sa.feedback_grads(layer)  # only B has a gradient: W stays fixed
    opt.step([layer])
ratio = sa.alpha_self / (2 * sa.alpha_decay + 5e-3)
print(f"B = {np.sum(layer.B * W.T) / np.sum(W.T**2):.6f} Wᵀ; predicted {ratio:.6f}")
assert rel(layer.B, ratio * W.T) < 1e-8

runs = {}
for scale in (1, 10):
    coefficients = {"sa_alpha_decay": 1e-3 * scale, "sa_alpha_self": 2e-3 * scale}
    config = minibp.TrainConfig(rule="sa", hidden=(64,), epochs=12, probe_size=128, **coefficients)
    runs[scale] = minibp.train(config, data=digits, progress=False)[1]
    print(
        f"×{scale:>2}: ∠(B, Wᵀ) per layer {np.round(runs[scale][-1]['matrix_angle'], 1)}, "
        f"test accuracy {runs[scale][-1]['test_accuracy']:.3f}"
    )
assert max(runs[10][-1]["matrix_angle"]) < 10 < min(runs[1][-1]["matrix_angle"])

fig, ax = plt.subplots(figsize=(4.5, 3.4))
for scale, hist in runs.items():
    ax.plot([rec["epoch"] for rec in hist], [rec["matrix_angle"][0] for rec in hist], label=f"×{scale} coefficients")
ax.set_xlabel("epoch")
ax.set_ylabel("∠(B, Wᵀ), first layer (°)")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "09_solution_sa_coefficients")
plt.show()
plt.close(fig)

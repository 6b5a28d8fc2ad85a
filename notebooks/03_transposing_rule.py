# %% [markdown]
# # 03 · The transposing rule
#
# **Paper:** Akrout et al., *Deep Learning without Weight Transport* (NeurIPS 2019),
# **Section 4.1**, eq (5).
#
# Feedback alignment (notebook 02) keeps $\mathbf{B}$ fixed and lets $\mathbf{W}$ do the aligning.
# Section 4 turns this round: let $\mathbf{B}$ *learn* to be proportional to $\mathbf{W}^T$ — without
# ever reading $\mathbf{W}$. The only signals available are a layer's input $\mathbf{x}$ and its
# output $\mathbf{y} = \mathbf{W}\mathbf{x}$ (ignore $\phi$ for now). The observation is
#
# $$E[\mathbf{x}\mathbf{y}^T] = E[\mathbf{x}\mathbf{x}^T]\,\mathbf{W}^T = \sigma^2\mathbf{W}^T
# \quad\text{if } \mathbf{x} \text{ has independent zero-mean entries of variance } \sigma^2,$$
#
# so the Hebbian *transposing rule*
#
# $$\Delta\mathbf{B} = \eta_B\,\mathbf{x}\mathbf{y}^T \qquad (5)$$
#
# pushes $\mathbf{B}$ along $\mathbf{W}^T$ on average; with weight decay the random start fades
# and $\mathbf{B}$ converges to a multiple of $\mathbf{W}^T$.
#
# You will compute, and check numerically:
#
# 1. the identity $\frac1N\sum \mathbf{x}\mathbf{y}^T = \hat\Sigma\,\mathbf{W}^T$ sample by sample, and
#    $\hat\Sigma \to \sigma^2\mathbf{I}$;
# 2. Monte Carlo estimates converging to $\sigma^2\mathbf{W}^T$, with an error that shrinks like
#    $1/\sqrt N$ — and the exact constant in front;
# 3. the rule with decay, $\mathbf{B} \leftarrow (1-\lambda)\mathbf{B} + \eta\,\overline{\mathbf{x}\mathbf{y}^T}$:
#    the random start forgotten as $(1-\lambda)^t$, and $\mathbf{B}$ settling at
#    $(\eta/\lambda)\,\sigma^2\mathbf{W}^T$;
# 4. what breaks when the inputs are correlated.
#
# We use one `minibp.Dense` layer and its mirror-mode methods: `layer.mirror_forward(x, bias=False)`
# is $\mathbf{y} = \mathbf{W}\mathbf{x}$ for a batch of rows `x`; `layer.mirror_correlation(x, y)` is the
# batch mean of $\mathbf{x}\mathbf{y}^T$, in the shape of $\mathbf{W}^T$; `layer.mirror_update(x, y, lr, decay)`
# applies the rule with decay to `layer.params["B"]`.

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
from minibp.plots import save_figure

n_in, n_out = 6, 4
layer = minibp.Dense(n_in, n_out, rng=np.random.default_rng(0), dtype="float64")
W = layer.W
WT = W.T
sigma = 0.5  # the noise's standard deviation: E[x xᵀ] = σ² I
rng = np.random.default_rng(1)
print("W =\n", W.round(3))

# %% [markdown]
# ## 1 · The correlation is the input covariance times Wᵀ
#
# For any batch,
#
# $$\frac1N\sum_n \mathbf{x}_n\mathbf{y}_n^T = \frac1N\sum_n \mathbf{x}_n\mathbf{x}_n^T\mathbf{W}^T
# = \hat\Sigma\,\mathbf{W}^T$$
#
# exactly, with $\hat\Sigma$ the batch's (uncentred) covariance. Everything then depends on
# $\hat\Sigma$, which for independent noise of variance $\sigma^2$ tends to $\sigma^2\mathbf{I}$.

# %%
x = sigma * rng.standard_normal((50, n_in))
y = layer.mirror_forward(x, bias=False)
C = layer.mirror_correlation(x, y)
Sigma_hat = x.T @ x / len(x)
assert C.shape == WT.shape
assert np.allclose(C, Sigma_hat @ WT, rtol=0, atol=1e-14)  # the identity, sample by sample

x_big = sigma * rng.standard_normal((100_000, n_in))
Sigma_big = x_big.T @ x_big / len(x_big)
print("largest |Σ̂ − σ²I| / σ² at N = 100 000:", np.abs(Sigma_big - sigma**2 * np.eye(n_in)).max() / sigma**2)
assert np.abs(Sigma_big - sigma**2 * np.eye(n_in)).max() < 0.03 * sigma**2  # entries have sd ≈ σ²/√N ≈ 0.003σ²

# %%
fig, axes = plt.subplots(1, 3, figsize=(8, 2.6))
for ax, N in zip(axes, [10, 100, 10_000]):
    xs = sigma * np.random.default_rng(N).standard_normal((N, n_in))
    im = ax.imshow(xs.T @ xs / N / sigma**2, cmap="RdBu_r", vmin=-1.5, vmax=1.5)
    ax.set_title(f"Σ̂ / σ², N = {N}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes, shrink=0.8)
save_figure(fig, "03_sample_covariance")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 2 · Monte Carlo: the error shrinks like 1/√N
#
# The estimate $\mathbf{C}_N$ from $N$ samples has error $(\hat\Sigma - \sigma^2\mathbf{I})\mathbf{W}^T$.
# Each entry of $\hat\Sigma$ is an average of $N$ independent products, with variance
# $\sigma^4/N$ off the diagonal ($E[x_i^2x_j^2] = \sigma^4$) and $2\sigma^4/N$ on it
# ($\mathrm{Var}(x_i^2) = 2\sigma^4$ for a Gaussian); different entries in a row are uncorrelated.
# Adding up the variances gives the exact mean squared error
#
# $$E\,\|\mathbf{C}_N - \sigma^2\mathbf{W}^T\|_F^2 = \frac{\sigma^4\,\|\mathbf{W}\|_F^2\,(n_{\rm in}+1)}{N},$$
#
# so the root-mean-square error falls like $N^{-1/2}$: a slope of $-\tfrac12$ on a log-log plot.
# We measure it over 200 independent estimates at each $N$.

# %%
Ns = np.unique(np.logspace(1, 4, 7).astype(int))
repeats = 200
rms = []
for N in Ns:
    sq = []
    for _ in range(repeats):
        xs = sigma * rng.standard_normal((N, n_in))
        C_N = layer.mirror_correlation(xs, layer.mirror_forward(xs, bias=False))
        sq.append(np.sum((C_N - sigma**2 * WT) ** 2))
    rms.append(np.sqrt(np.mean(sq)))
rms = np.array(rms)
predicted = sigma**2 * np.linalg.norm(W) * np.sqrt((n_in + 1) / Ns)
slope = np.polyfit(np.log(Ns), np.log(rms), 1)[0]
print(f"fitted slope {slope:.3f} (theory −0.5); measured / predicted RMS error:", (rms / predicted).round(3))
assert -0.6 < slope < -0.4
assert np.allclose(rms, predicted, rtol=0.1)  # the constant too, not just the slope

# %%
fig, ax = plt.subplots(figsize=(4.8, 3.2))
ax.loglog(Ns, rms, "o", label=f"measured (fit: slope {slope:.2f})")
ax.loglog(Ns, predicted, "--", label="σ²‖W‖√((n+1)/N)")
ax.set_xlabel("number of samples N")
ax.set_ylabel("RMS ‖C_N − σ²Wᵀ‖")
ax.set_title("The transposing estimate converges like 1/√N")
ax.legend(frameon=False, fontsize=8)
save_figure(fig, "03_mc_error")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 3 · The rule with decay: B forgets its start and settles at (η/λ)σ²Wᵀ
#
# Now let $\mathbf{B}$ integrate eq (5) over time, one batch of fresh noise per step, with a weight
# decay $\lambda$ that keeps its norm bounded (`layer.mirror_update(x, y, lr=η, decay=λ)`):
#
# $$\mathbf{B}_{t+1} = (1-\lambda)\,\mathbf{B}_t + \eta\,\mathbf{C}^{(t)},
# \qquad E[\mathbf{C}^{(t)}] = \sigma^2\mathbf{W}^T.$$
#
# Unrolled, $\mathbf{B}_t = (1-\lambda)^t\mathbf{B}_0 + \eta\sum_{s<t}(1-\lambda)^{t-1-s}\mathbf{C}^{(s)}$:
# the start decays geometrically, and the mean of the rest is
# $(\eta/\lambda)\,(1-(1-\lambda)^t)\,\sigma^2\mathbf{W}^T \to (\eta/\lambda)\,\sigma^2\mathbf{W}^T$.
#
# Because the update is linear in $\mathbf{B}$, running it twice **on the same noise** — once from a
# random $\mathbf{B}_0$, once from $\mathbf{B}_0 = 0$ — separates the two parts exactly: the difference
# of the two runs must be $(1-\lambda)^t\mathbf{B}_0$ to rounding error.
#
# ### Exercise 1 · Eq (5) with decay (implement it)
#
# Write `eq5_step(B, x, y, lr, decay)`: the new $\mathbf{B}$ after one batch,
# $(1-\lambda)\mathbf{B} + \eta\,\overline{\mathbf{x}\mathbf{y}^T}$, where the bar is the mean over the
# batch's rows `x` `(N, n_in)` and `y` `(N, n_out)`, and `B` has the shape of $\mathbf{W}^T$. Return a
# new array; leave `B` as it is. The run from a random $\mathbf{B}_0$ below uses your function, the
# run from zero uses minibp's `mirror_update`, so the two-run check also compares them.


# %%
def eq5_step(B, x, y, lr, decay):
    """One batch of eq (5) with decay: (1 − λ) B + η mean_n(x_n y_nᵀ)."""
    ### BEGIN SOLUTION
    return (1 - decay) * B + lr * x.T @ y / len(x)
    ### END SOLUTION


eq5_step = exercises.check_eq5_step(eq5_step)

# %%
eta, lam, steps, batch = 0.1, 0.02, 400, 32
B_star = (eta / lam) * sigma**2 * WT  # the predicted fixed point
B0 = 2 * np.linalg.norm(B_star) * np.random.default_rng(2).standard_normal(WT.shape) / np.sqrt(WT.size)

from_random = minibp.Dense(n_in, n_out, rng=np.random.default_rng(0), dtype="float64")  # the same W
from_zero = minibp.Dense(n_in, n_out, rng=np.random.default_rng(0), dtype="float64")
no_decay = minibp.Dense(n_in, n_out, rng=np.random.default_rng(0), dtype="float64")
from_random.params["B"] = from_random.as_feedback(B0)
from_zero.params["B"] = from_zero.as_feedback(np.zeros_like(B0))
no_decay.params["B"] = no_decay.as_feedback(B0)
assert np.array_equal(from_random.W, W)

noise_rng = np.random.default_rng(3)
t_axis = np.arange(steps + 1)
angle_B, dist_B, norm_B, norm_nodecay, angle_nodecay = [], [], [], [], []
for t in t_axis:
    angle_B.append(minibp.angle(from_random.B, WT))
    dist_B.append(np.linalg.norm(from_random.B - B_star) / np.linalg.norm(B_star))
    norm_B.append(np.linalg.norm(from_random.B))
    norm_nodecay.append(np.linalg.norm(no_decay.B))
    angle_nodecay.append(minibp.angle(no_decay.B, WT))
    if t == steps:
        break
    xs = sigma * noise_rng.standard_normal((batch, n_in))
    ys = layer.mirror_forward(xs, bias=False)  # every copy has the same W, so the same y
    from_random.params["B"] = from_random.as_feedback(eq5_step(from_random.B, xs, ys, eta, lam))  # yours
    from_zero.mirror_update(xs, ys, eta, lam)  # minibp's: B ← (1 − λ) B + η mean(x yᵀ)
    no_decay.mirror_update(xs, ys, eta, 0.0)  # plain eq (5)

# the random start is forgotten exactly as (1 − λ)^t
assert np.allclose(from_random.B - from_zero.B, (1 - lam) ** steps * B0, rtol=0, atol=1e-12)
# what remains is the fixed point, up to the noise of the last ~1/λ batches
expected_mean = (eta / lam) * (1 - (1 - lam) ** steps) * sigma**2 * WT
print(f"∠(B, Wᵀ): {angle_B[0]:.1f}° → {angle_B[-1]:.2f}°;  ‖B − B*‖/‖B*‖: {dist_B[0]:.2f} → {dist_B[-1]:.3f}")
assert np.linalg.norm(from_zero.B - expected_mean) < 0.15 * np.linalg.norm(expected_mean)
assert angle_B[0] > 45 and angle_B[-1] < 10
assert dist_B[-1] < 0.15

# %% [markdown]
# Without decay (plain eq 5) nothing is forgotten: $\mathbf{B}_t = \mathbf{B}_0 + \eta\sum_s\mathbf{C}^{(s)}$
# grows like $t\,\eta\,\sigma^2\|\mathbf{W}\|$ and only *drowns* $\mathbf{B}_0$ — its angle to $\mathbf{W}^T$
# falls slowly, like $1/t$, and its norm has no bound. With decay the norm settles at
# $\|\mathbf{B}^*\| = (\eta/\lambda)\sigma^2\|\mathbf{W}\|$.

# %%
print(
    f"‖B‖ after {steps} steps: with decay {norm_B[-1]:.2f} (‖B*‖ = {np.linalg.norm(B_star):.2f}); "
    f"without {norm_nodecay[-1]:.2f} (t η σ² ‖W‖ = {steps * eta * sigma**2 * np.linalg.norm(W):.2f})"
)
assert abs(norm_nodecay[-1] / (steps * eta * sigma**2 * np.linalg.norm(W)) - 1) < 0.15
assert abs(norm_B[-1] / np.linalg.norm(B_star) - 1) < 0.15
assert angle_nodecay[-1] > angle_B[-1]  # decay forgets B₀; integration alone only dilutes it

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(t_axis, angle_B, label="with decay λ")
axes[0].plot(t_axis, angle_nodecay, label="without decay (eq 5 only)")
axes[0].set_ylabel("∠(B, Wᵀ) (°)")
axes[0].set_ylim(0, 95)
axes[0].set_title("B turns to Wᵀ", fontsize=9)
axes[0].legend(frameon=False, fontsize=8)
axes[1].plot(t_axis, norm_B, label="‖B‖ with decay")
axes[1].plot(t_axis, norm_nodecay, label="‖B‖ without decay")
axes[1].plot(t_axis, np.linalg.norm(B0) * (1 - lam) ** t_axis, ":", color="0.5", label="‖B₀‖(1 − λ)ᵗ (the start)")
axes[1].axhline(np.linalg.norm(B_star), color="C3", ls="--", lw=1, label="‖(η/λ)σ²Wᵀ‖ (fixed point)")
axes[1].set_title("Decay bounds B and forgets B₀", fontsize=9)
axes[1].legend(frameon=False, fontsize=7)
for ax in axes:
    ax.set_xlabel("step t")
save_figure(fig, "03_transposing_decay")
plt.show()
plt.close(fig)

# %% [markdown]
# The weight mirror of Section 4.2 is this very rule, run by the network itself in *mirror mode*:
# `minibp.WeightMirror(...).mirror(net)` fires Gaussian noise of standard deviation `sigma` into
# each layer (without the bias, eq 12) and applies the same update. On a one-layer network it must
# reach the same fixed point $(\eta_B/\lambda_B)\,\sigma^2\mathbf{W}^T$.

# %%
mirror_layer = minibp.Dense(n_in, n_out, rng=np.random.default_rng(0), dtype="float64")
mirror_layer.params["B"] = mirror_layer.as_feedback(B0)
wm = minibp.WeightMirror(sigma=sigma, lr=eta, decay=lam, batch_size=batch, seed=4)
mirror_net = minibp.Network([mirror_layer])
for _ in range(steps):
    wm.mirror(mirror_net)
print(
    f"weight mirror: ∠(B, Wᵀ) = {minibp.matrix_angles(mirror_net, wm)[0]:.2f}°, "
    f"‖B − B*‖/‖B*‖ = {np.linalg.norm(mirror_layer.B - B_star) / np.linalg.norm(B_star):.3f}"
)
assert minibp.matrix_angles(mirror_net, wm)[0] < 10
assert np.linalg.norm(mirror_layer.B - B_star) < 0.15 * np.linalg.norm(B_star)

# %% [markdown]
# ## 4 · What breaks: correlated inputs
#
# The argument needed $E[\mathbf{x}\mathbf{x}^T] = \sigma^2\mathbf{I}$. Suppose instead the inputs are
# correlated — say neighbouring inputs are alike, as neighbouring pixels of an image are:
# $\Sigma_{ij} = \sigma^2\rho^{|i-j|}$ with $\rho = 0.9$. Every input still has variance
# $\sigma^2$, but now
#
# $$E[\mathbf{x}\mathbf{y}^T] = \Sigma\,\mathbf{W}^T \neq \sigma^2\mathbf{W}^T,$$
#
# and the transposing rule learns $\Sigma\mathbf{W}^T$ — which need not point anywhere near
# $\mathbf{W}^T$. This is why the weight mirror drives each layer with its *own* independent noise
# in mirror mode rather than learning from the data the network sees.

# %%
rho = 0.9
idx = np.arange(n_in)
Sigma = sigma**2 * rho ** np.abs(idx[:, None] - idx[None, :])
L_chol = np.linalg.cholesky(Sigma)  # x = L z with z ~ N(0, I) has covariance L Lᵀ = Σ

xc = rng.standard_normal((20_000, n_in)) @ L_chol.T
C_corr = layer.mirror_correlation(xc, layer.mirror_forward(xc, bias=False))
rel = np.linalg.norm(C_corr - Sigma @ WT) / np.linalg.norm(Sigma @ WT)
print(f"‖C − ΣWᵀ‖/‖ΣWᵀ‖ = {rel:.3f}")
print(f"∠(C, Wᵀ) = {minibp.angle(C_corr, WT):.1f}°,  ∠(ΣWᵀ, Wᵀ) = {minibp.angle(Sigma @ WT, WT):.1f}°")
assert rel < 0.05  # the estimate converges to Σ Wᵀ ...
assert minibp.angle(C_corr, WT) > 30  # ... which is far from Wᵀ
assert abs(minibp.angle(C_corr, WT) - minibp.angle(Sigma @ WT, WT)) < 3

# %% [markdown]
# With decay the rule settles at $(\eta/\lambda)\,\Sigma\,\mathbf{W}^T$: the angle to $\mathbf{W}^T$ stops
# falling at the angle of $\Sigma\mathbf{W}^T$, however long it runs.

# %%
corr_layer = minibp.Dense(n_in, n_out, rng=np.random.default_rng(0), dtype="float64")
corr_layer.params["B"] = corr_layer.as_feedback(B0)
white_angle = angle_B
corr_angle = []
for _ in range(steps + 1):
    corr_angle.append(minibp.angle(corr_layer.B, WT))
    xs = noise_rng.standard_normal((batch, n_in)) @ L_chol.T
    corr_layer.mirror_update(xs, corr_layer.mirror_forward(xs, bias=False), eta, lam)
corr_angle = np.array(corr_angle)
target_angle = minibp.angle(Sigma @ WT, WT)
print(f"correlated inputs: ∠(B, Wᵀ) after {steps} steps = {corr_angle[-1]:.1f}° (∠(ΣWᵀ, Wᵀ) = {target_angle:.1f}°)")
assert corr_angle[-1] > 30 and abs(corr_angle[-1] - target_angle) < 10
assert minibp.angle(corr_layer.B, Sigma @ WT) < 10  # it converged — to the wrong matrix

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(np.arange(steps + 1), white_angle, label="white inputs, Σ = σ²I")
ax.plot(np.arange(steps + 1), corr_angle, label=f"correlated inputs, ρ = {rho}")
ax.axhline(target_angle, color="C1", ls="--", lw=1, label="∠(ΣWᵀ, Wᵀ)")
ax.set_xlabel("step t")
ax.set_ylabel("∠(B, Wᵀ) (°)")
ax.set_ylim(0, 95)
ax.set_title("Correlated inputs: B converges to ΣWᵀ, not Wᵀ", fontsize=10)
ax.legend(frameon=False, fontsize=8)
save_figure(fig, "03_correlated_inputs")
plt.show()
plt.close(fig)

# %% [markdown]
# A consolation: since $\Sigma$ is positive definite, the distorted feedback $\Sigma\mathbf{W}^T\delta$
# always has a positive inner product with backprop's $\mathbf{W}^T\delta$, namely
# $(\mathbf{W}^T\delta)^T\Sigma(\mathbf{W}^T\delta) > 0$, so it still points downhill. But it is a
# badly *preconditioned* gradient, and in a deep network these distortions compound. Check the
# claim on random $\delta$'s:

# %%
deltas = rng.standard_normal((1000, n_out))
g_bp = deltas @ W  # rows of Wᵀ δ
g_corr = deltas @ (Sigma @ WT).T  # rows of Σ Wᵀ δ
cosines = np.sum(g_bp * g_corr, axis=1) / (np.linalg.norm(g_bp, axis=1) * np.linalg.norm(g_corr, axis=1))
between = np.degrees(np.arccos(cosines))
print(f"angle between ΣWᵀδ and Wᵀδ: mean {between.mean():.1f}°, max {between.max():.1f}°")
assert cosines.min() > 0

# %% [markdown]
# **What this shows.** A synapse that only sees its own input and output can learn the transpose of
# a weight matrix from correlations, if the input is white noise: the estimate converges like
# $1/\sqrt N$ and decay turns the integral into a multiple of $\mathbf{W}^T$. Sections 4.2–4.3 of the
# paper build this into a circuit (the weight mirror) and deal with the nonlinearity $\phi$ and the
# biases that this notebook ignored.

# %% [markdown]
# ## Open-ended exercises
#
# Worked solutions: `notebooks/solutions/03_transposing_rule_solutions.py`.
#
# 1. **Uniform noise.** Drive the layer with $x_i \sim \mathcal U(-a, a)$ instead of a Gaussian.
#    What is $\sigma^2$ now? Show that the estimate converges to $\frac{a^2}{3}\mathbf{W}^T$, and
#    redo section 2's error formula: the diagonal of $\hat\Sigma$ now has variance
#    $(E[x^4] - \sigma^4)/N$. Is uniform noise better or worse than Gaussian noise of the same
#    variance for this linear layer?
# 2. **Whitening.** For the correlated inputs of section 4, repair the rule in two ways: (a) drive
#    the layer with whitened inputs $\mathbf{u} = \mathbf{L}^{-1}\mathbf{x}$ (where $\Sigma = \mathbf{L}\mathbf{L}^T$);
#    (b) keep the correlated $\mathbf{x}$ and multiply the estimate by $\hat\Sigma^{-1}$, the inverse of the
#    batch's own covariance. Why is (b) exact, to rounding error, for any batch with $N \ge n_{\rm in}$?
# 3. **How fast is B₀ forgotten?** Using the two-run trick of section 3, measure the number of
#    steps after which the random start has shrunk to half its norm for $\lambda = 0.01, 0.02, 0.05, 0.1$,
#    and compare with $\ln 2 / (-\ln(1-\lambda)) \approx 0.69/\lambda$.

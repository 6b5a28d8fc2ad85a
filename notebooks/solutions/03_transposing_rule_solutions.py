# %% [markdown]
# # 03 · The transposing rule — worked solutions
#
# Solutions to the exercises of `notebooks/03_transposing_rule.py` (paper Section 4.1, eq 5).
# Each solution is self-contained and ends in an `assert` that checks it.

# %%
import numpy as np

import minibp

n_in, n_out = 6, 4
layer = minibp.Dense(n_in, n_out, rng=np.random.default_rng(0), dtype="float64")
W, WT = layer.W, layer.W.T
rng = np.random.default_rng(1)


def estimate(x):
    """The transposing estimate mean(x yᵀ) with y = W x, from a batch of rows x."""
    return layer.mirror_correlation(x, layer.mirror_forward(x, bias=False))


# %% [markdown]
# ## Exercise 1 · Uniform noise
#
# For $x \sim \mathcal U(-a, a)$: $E[x] = 0$, $\sigma^2 = E[x^2] = \frac{1}{2a}\int_{-a}^{a}x^2\,dx = a^2/3$,
# and $E[x^4] = a^4/5$. The entries are still independent and zero-mean, so
# $E[\mathbf{x}\mathbf{y}^T] = \frac{a^2}{3}\mathbf{W}^T$: only independence, zero mean and equal
# variance were used — not the Gaussian shape (that matters once $\phi$ is nonlinear, Section 4.3).
#
# In the error formula only the diagonal of $\hat\Sigma$ changes: its variance is
# $(E[x^4]-\sigma^4)/N = \kappa\sigma^4/N$ with $\kappa = 9/5 - 1 = 4/5$ (Gaussian: $\kappa = 2$). So
#
# $$E\|\mathbf{C}_N - \sigma^2\mathbf{W}^T\|_F^2 = \frac{\sigma^4\|\mathbf{W}\|_F^2\,(n_{\rm in} - 1 + \kappa)}{N},$$
#
# slightly *smaller* than for Gaussian noise of the same variance ($n_{\rm in} - 0.2$ instead of
# $n_{\rm in} + 1$): a bounded distribution has lighter tails, so $x_i^2$ fluctuates less.

# %%
a = 1.0
sigma2 = a**2 / 3
C = estimate(rng.uniform(-a, a, size=(200_000, n_in)))
assert np.linalg.norm(C - sigma2 * WT) < 0.02 * np.linalg.norm(sigma2 * WT)  # converges to (a²/3) Wᵀ

N, repeats = 100, 1000
err_u = [np.sum((estimate(rng.uniform(-a, a, size=(N, n_in))) - sigma2 * WT) ** 2) for _ in range(repeats)]
err_g = [
    np.sum((estimate(np.sqrt(sigma2) * rng.standard_normal((N, n_in))) - sigma2 * WT) ** 2) for _ in range(repeats)
]
rms_u, rms_g = np.sqrt(np.mean(err_u)), np.sqrt(np.mean(err_g))
pred_u = sigma2 * np.linalg.norm(W) * np.sqrt((n_in - 1 + 0.8) / N)
pred_g = sigma2 * np.linalg.norm(W) * np.sqrt((n_in + 1) / N)
print(
    f"RMS error at N = {N}: uniform {rms_u:.4f} (predicted {pred_u:.4f}), Gaussian {rms_g:.4f} (predicted {pred_g:.4f})"
)
assert abs(rms_u / pred_u - 1) < 0.05 and abs(rms_g / pred_g - 1) < 0.05
assert rms_u < rms_g

# %% [markdown]
# ## Exercise 2 · Whitening
#
# (a) With $\Sigma = \mathbf{L}\mathbf{L}^T$, the whitened input $\mathbf{u} = \mathbf{L}^{-1}\mathbf{x}$ has
# $E[\mathbf{u}\mathbf{u}^T] = \mathbf{L}^{-1}\Sigma\mathbf{L}^{-T} = \mathbf{I}$, so driving the layer with
# $\mathbf{u}$ gives $E[\mathbf{u}(\mathbf{W}\mathbf{u})^T] = \mathbf{W}^T$.
#
# (b) For any batch, $\mathbf{C} = \hat\Sigma\mathbf{W}^T$ exactly (notebook section 1), because
# $\mathbf{y} = \mathbf{W}\mathbf{x}$ holds with no noise. If $N \ge n_{\rm in}$ (and the samples span the
# input space), $\hat\Sigma$ is invertible and $\hat\Sigma^{-1}\mathbf{C} = \mathbf{W}^T$ — exactly, whatever
# $\Sigma$ is; this is least squares solving $\mathbf{y} = \mathbf{W}\mathbf{x}$. But it needs every
# synapse to know $\hat\Sigma^{-1}$, a non-local quantity — which is why the weight mirror instead
# makes its own white noise.

# %%
sigma, rho = 0.5, 0.9
idx = np.arange(n_in)
Sigma = sigma**2 * rho ** np.abs(idx[:, None] - idx[None, :])
L_chol = np.linalg.cholesky(Sigma)
x = rng.standard_normal((20_000, n_in)) @ L_chol.T  # correlated inputs
print(f"raw: ∠(C, Wᵀ) = {minibp.angle(estimate(x), WT):.1f}°")

u = np.linalg.solve(L_chol, x.T).T  # (a) whitened inputs
C_white = estimate(u)
print(f"(a) whitened: ∠(C, Wᵀ) = {minibp.angle(C_white, WT):.2f}°")
assert np.linalg.norm(C_white - WT) < 0.05 * np.linalg.norm(WT)

x_small = rng.standard_normal((10, n_in)) @ L_chol.T  # (b) N = 10 ≥ n_in = 6
Sigma_hat = x_small.T @ x_small / len(x_small)
C_fixed = np.linalg.solve(Sigma_hat, estimate(x_small))
print(f"(b) Σ̂⁻¹ C from only 10 samples: max |Σ̂⁻¹C − Wᵀ| = {np.abs(C_fixed - WT).max():.1e}")
assert np.allclose(C_fixed, WT, rtol=0, atol=1e-10)

# %% [markdown]
# ## Exercise 3 · How fast is B₀ forgotten?
#
# Two runs on the same noise, one from $\mathbf{B}_0$ and one from $0$, differ by exactly
# $(1-\lambda)^t\mathbf{B}_0$. Its norm first drops to half after
# $t_{1/2} = \lceil \ln 2 / (-\ln(1-\lambda)) \rceil \approx 0.69/\lambda$ steps. Faster forgetting
# (larger $\lambda$) has a price: $\mathbf{B}$ then averages fewer batches, so it is noisier.

# %%
eta, batch = 0.1, 32
B0 = np.random.default_rng(2).standard_normal(WT.shape)
for lam in (0.01, 0.02, 0.05, 0.1):
    runs = [minibp.Dense(n_in, n_out, rng=np.random.default_rng(0), dtype="float64") for _ in range(2)]
    runs[0].params["B"] = runs[0].as_feedback(B0)
    runs[1].params["B"] = runs[1].as_feedback(np.zeros_like(B0))
    noise = np.random.default_rng(3)
    t = 0
    while np.linalg.norm(runs[0].B - runs[1].B) > 0.5 * np.linalg.norm(B0):
        xs = sigma * noise.standard_normal((batch, n_in))
        ys = layer.mirror_forward(xs, bias=False)
        for r in runs:
            r.mirror_update(xs, ys, eta, lam)
        t += 1
    predicted = int(np.ceil(np.log(2) / -np.log(1 - lam)))
    print(f"λ = {lam}: half-life {t} steps (predicted {predicted}; 0.69/λ = {0.69 / lam:.1f})")
    assert t == predicted

# %% [markdown]
# The price, measured: once the start is forgotten, $\mathbf{B}$ fluctuates around
# $\mathbf{B}^* = (\eta/\lambda)\sigma^2\mathbf{W}^T$. Each step adds $\eta$ times an estimate with mean
# squared error $V = \sigma^4\|\mathbf{W}\|^2(n_{\rm in}+1)/N$ (notebook section 2), and the decay keeps
# a fraction $(1-\lambda)^2$ of the old fluctuation, so the stationary mean squared deviation is
# $\eta^2 V/(1-(1-\lambda)^2)$, i.e. relative to $\|\mathbf{B}^*\|^2$:
# $\frac{\lambda}{2-\lambda}\cdot\frac{n_{\rm in}+1}{N}$ — growing like $\lambda$, so the typical
# (root-mean-square) deviation grows like $\sqrt\lambda$.

# %%
noise_level = {}
for lam in (0.01, 0.1):
    r = minibp.Dense(n_in, n_out, rng=np.random.default_rng(0), dtype="float64")
    B_star = (eta / lam) * sigma**2 * WT
    # start at the fixed point (no burn-in needed); a copy, since as_feedback may keep the array it is given
    r.params["B"] = r.as_feedback(B_star.copy())
    noise = np.random.default_rng(4)
    sq = []
    for _ in range(4000):
        xs = sigma * noise.standard_normal((batch, n_in))
        r.mirror_update(xs, layer.mirror_forward(xs, bias=False), eta, lam)
        sq.append(np.sum((r.B - B_star) ** 2) / np.sum(B_star**2))
    noise_level[lam] = np.sqrt(np.mean(sq))
    predicted = np.sqrt(lam / (2 - lam) * (n_in + 1) / batch)
    print(f"λ = {lam}: relative fluctuation of B {noise_level[lam]:.3f} (predicted {predicted:.3f})")
    assert abs(noise_level[lam] / predicted - 1) < 0.3
assert noise_level[0.1] > 2 * noise_level[0.01]

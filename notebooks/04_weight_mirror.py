# %% [markdown]
# # 04 · The weight mirror
#
# **Paper:** Akrout et al., *Deep Learning without Weight Transport* (NeurIPS 2019),
# Sections 4.2 (a circuit for transposition) and 4.3 (why it works), eqs (6)–(12).
#
# Feedback alignment (eq 3) sends errors back through a random matrix `B` in place of `Wᵀ`.
# The weight mirror makes `B` *learn* to resemble `Wᵀ`, without ever reading `W`. The
# network has two modes (the paper's Fig 1):
#
# * **engaged mode**: ordinary training. Errors go back through `B` (eq 3) and `W` learns
#   by eq (4). `B` does not change.
# * **mirror mode**: no data. One layer `l` fires zero-mean noise `y_l`; the feedback
#   cells copy the forward cells, `δ_l = y_l` and `δ_{l+1} = y_{l+1}` (eq 6), and `B`
#   learns by the Hebbian rule `ΔB = η_B δ_l δ_{l+1}ᵀ` (eq 7).
#
# In this notebook you will compute:
#
# 1. one engaged-mode step, checked against eqs (3) and (4);
# 2. one mirror-mode step, by hand and with `rule.mirror(net)`, checked against eqs (6)–(7);
# 3. how good the linearisation of eq (9) is as the noise `σ` grows (its error grows like `σ²`);
# 4. the expected update `E[ΔB] ≈ η_B σ² φ'_s Wᵀ` (eq 11), by Monte Carlo;
# 5. how unequal biases break eq (11), and how bias-blocking (eq 12) repairs it;
# 6. the angle `∠(B, Wᵀ)` as mirror steps go by, for one layer and for a whole network;
# 7. both modes together, training on handwritten digits.
#
# All checks run in float64, so every tolerance comes from the mathematics, not from rounding.

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
from numpy.polynomial.hermite_e import hermegauss

import minibp
from minibp import Dense, Network, Tanh, angle, exercises
from minibp.plots import save_figure


def rel(a, b):
    """Relative difference ‖a − b‖ / ‖b‖."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


data = minibp.data.load_digits(dtype="float64")
loss_fn = minibp.SoftmaxCrossEntropy()

# %% [markdown]
# ## 1. Engaged mode: eqs (3) and (4)
#
# In engaged mode the weight mirror is feedback alignment: the error at the output of weight
# layer `l+1` goes down through `B_{l+1}` (eq 3),
#
# `δ_l = φ'(y_l) ⊙ B_{l+1} δ_{l+1}`,
#
# and the forward weights take the step `ΔW_{l+1} = −η δ_{l+1} y_lᵀ` (eq 4). minibp stores a
# batch as rows, so `B δ` for every example is `δ @ Bᵀ`, and `δ yᵀ` summed over the batch is
# `δᵀ @ y`. `net.backward` returns the `δ` at the output of every weight layer, input to output.

# %%
net = minibp.mlp([64, 32, 10], "tanh", seed=0, dtype="float64")
rule = minibp.get_rule("wm", sigma=0.5, lr=0.05, decay=0.05, batch_size=256, seed=0)
net.init_feedback(rule, np.random.default_rng(1))  # B starts random, like FA's
layer1, tanh1, layer2 = net.layers

x, labels = data.x_train[:64], data.y_train[:64]
out = net.forward(x)  # eq (1)
loss, dout = loss_fn(out, labels)
deltas = net.backward(dout, rule)  # eqs (3)-(4)

y0, y1 = x, tanh1.y  # y_0 (the input) and y_1 (the hidden layer's output)
eq3 = tanh1.dphi(y1) * (deltas[1] @ layer2.B.T)  # φ'(y_1) ⊙ B_2 δ_2, row by row
assert np.allclose(deltas[1], dout) and rel(deltas[0], eq3) < 1e-12
assert rel(layer1.grads["W"], deltas[0].T @ y0) < 1e-12  # eq (4): δ_1 y_0ᵀ
assert rel(layer2.grads["W"], deltas[1].T @ y1) < 1e-12  # eq (4): δ_2 y_1ᵀ
assert "B" not in layer1.grads  # in engaged mode B does not learn
print("eqs (3) and (4) hold to 1e-12")

# %% [markdown]
# One optimizer step moves `W` by `−η · grad` and leaves `B` alone. With the random `B` we start
# from, the `δ` it carries back has nothing to do with backprop's: `minibp.delta_angles` compares
# the two on the same forward pass, and the angle is near 90°.

# %%
W_before, B_before = layer1.W.copy(), layer1.B.copy()
opt = minibp.SGD(0.1)
opt.step(net.param_layers)  # eq (4)
assert rel(layer1.W, W_before - 0.1 * layer1.grads["W"]) < 1e-12
assert np.array_equal(layer1.B, B_before)

bp = minibp.get_rule("bp")
out = net.forward(x)
_, dout = loss_fn(out, labels)
d_wm = net.backward(dout, rule, train=False)[0]
d_bp = net.backward(dout, bp, train=False)[0]
start_delta_angle = minibp.delta_angles(net, rule, x, labels, loss_fn)[0]
print(f"∠(δ_1 with random B, δ_1 of backprop) = {start_delta_angle:.1f}°")
assert start_delta_angle > 60

fig, ax = plt.subplots(figsize=(4, 3.5))
ax.scatter(d_bp.ravel(), d_wm.ravel(), s=3, alpha=0.4)
ax.set_xlabel("δ₁ of backprop (through Wᵀ)")
ax.set_ylabel("δ₁ through a random B")
ax.set_title(f"before any mirroring: {start_delta_angle:.0f}° apart", fontsize=10)
fig.tight_layout()
save_figure(fig, "04_engaged_random_B")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 2. Mirror mode: eqs (6) and (7)
#
# Now layer 0 (the input) fires Gaussian noise `y_0` of standard deviation `σ`. It passes
# through `W_1` and `φ` as usual: `y_1 = φ(W_1 y_0 + b_1)`. The feedback cells copy the
# forward cells, `δ_0 = y_0`, `δ_1 = y_1` (eq 6), and `B_1` takes the Hebbian step
# `ΔB_1 = η_B δ_0 δ_1ᵀ` (eq 7), averaged over a batch of noise vectors. minibp adds a weight
# decay `−λ_B B` (Section 4.1's "mechanism to keep the norm small").
#
# The layer exposes the two pieces: `layer.mirror_forward(noise, bias=...)` is `W y (+ b)`, and
# `layer.mirror_correlation(pre, post)` is the batch mean of `pre · postᵀ`, in the layout of `B`.
# First we check the pieces against a product written out by hand.

# %%
sigma, n_noise = 0.5, 256
noise = sigma * np.random.default_rng(10).standard_normal((n_noise, 64))  # y_0
z = layer1.mirror_forward(noise, bias=True)
assert rel(z, noise @ layer1.W.T + layer1.b) < 1e-12  # eq (1) driven by noise
y_next = tanh1.phi(z)  # y_1;  by eq (6): δ_0 = y_0, δ_1 = y_1
corr = layer1.mirror_correlation(noise, y_next)
by_hand = np.einsum("ni,nj->ij", noise, y_next) / n_noise  # mean over the batch of δ_0 δ_1ᵀ
assert corr.shape == layer1.B.shape and rel(corr, by_hand) < 1e-12
print("mirror_correlation is the batch mean of δ_l δ_{l+1}ᵀ (eq 7)")

# %% [markdown]
# `rule.mirror(net)` runs mirror mode over every weight layer in turn, input to output. Each pass
# draws its noise from a generator of its own, `rule.noise_generator(pass_number)`, seeded by the
# rule's seed and the number of the pass (so a checkpoint can restore it), so we can redo the
# whole pass by hand and compare: `B ← (1 − λ_B) B + η_B · mean(y_l y_{l+1}ᵀ)`, where
# `φ` is the activation after the layer (the identity for the output layer). The rule blocks
# biases by default (eq 12, section 5 below), so the hand computation uses `bias=False`. (The
# paper's own ImageNet runs used "ReLUs without bias-blocking", Section 6; the `imagenet-*`
# presets follow them.)

# %%
expected = {}
gen = rule.noise_generator(rule.state()["passes"])  # the generator of the pass about to run
for layer, act in net.mirror_pairs():
    y_l = rule.sigma * gen.standard_normal((rule.batch_size, layer.n_in))
    y_up = act.phi(layer.mirror_forward(y_l, bias=not rule.bias_blocking))
    expected[layer.name] = (1 - rule.decay) * layer.B + rule.lr * layer.mirror_correlation(y_l, y_up)

rule.mirror(net)  # eqs (6)-(7), every layer
for layer in net.weight_layers:
    assert rel(layer.B, expected[layer.name]) < 1e-12, layer.name
print("rule.mirror(net) = eq (7) plus decay, layer by layer")

# %% [markdown]
# One batch of noise gives a noisy `ΔB`. Plot each entry of the batch correlation against the
# matching entry of `W_1ᵀ`: with 256 noise vectors the cloud is wide; with 50,000 it closes onto
# a line through the origin. That line is what the next sections derive.

# %%
big = sigma * np.random.default_rng(11).standard_normal((50_000, 64))
corr_big = layer1.mirror_correlation(big, tanh1.phi(layer1.mirror_forward(big, bias=False)))
corr_small = layer1.mirror_correlation(noise, tanh1.phi(layer1.mirror_forward(noise, bias=False)))
a_small, a_big = angle(corr_small, layer1.W.T), angle(corr_big, layer1.W.T)
print(f"∠(correlation, W₁ᵀ): 256 samples {a_small:.1f}°, 50,000 samples {a_big:.1f}°")
assert a_big < 5 < a_small

fig, ax = plt.subplots(figsize=(4, 3.5))
ax.scatter(layer1.W.T.ravel(), corr_small.ravel(), s=3, alpha=0.4, label="256 noise vectors")
ax.scatter(layer1.W.T.ravel(), corr_big.ravel(), s=3, alpha=0.4, label="50,000 noise vectors")
ax.set_xlabel("entry of W₁ᵀ")
ax.set_ylabel("entry of mean(y₀ y₁ᵀ)")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "04_mirror_correlation")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 3. The linearisation of eq (9)
#
# Why should `E[y_l y_{l+1}ᵀ]` point along `Wᵀ`? For small noise, `W y + b` stays near `b`, and a
# first-order Taylor expansion of `φ` around `b` gives eq (9):
#
# `φ(W y + b) ≈ φ'(b) W y + φ(b)`  (`φ'(b)` a diagonal matrix).
#
# The error of a first-order expansion is second order: `½ φ''(b) (W y)²`, which grows like
# `σ²`. We measure the relative error `‖φ(Wy + b) − [φ'(b) W y + φ(b)]‖ / ‖φ(W y + b)‖` for tanh
# on a small layer with unequal biases and fit the slope on a log-log plot. (The rows of `W` get
# unit norm, which section 4 will need.)


# %%
def unit_row_layer(n_in=10, n_out=6, seed=3):
    """A float64 dense layer whose rows w_i all have norm 1."""
    layer = Dense(n_in, n_out, rng=np.random.default_rng(seed), dtype="float64")
    layer.params["W"] /= np.linalg.norm(layer.W, axis=1, keepdims=True)
    return layer


tanh = Tanh()
lin_layer = unit_row_layer()
b = np.linspace(-1.0, 1.0, 6)
lin_layer.params["b"][:] = b
slope_b = tanh.dphi(tanh.phi(b))  # φ'(b), computed from φ(b) as the feedback path does

u = np.random.default_rng(12).standard_normal((4000, 10))
sigmas = np.logspace(-2.5, 0.5, 16)


def linearisation_error(s):
    y = s * u
    exact = tanh.phi(lin_layer.mirror_forward(y, bias=True))
    linear = slope_b * (y @ lin_layer.W.T) + tanh.phi(b)  # eq (9), first line
    return np.linalg.norm(exact - linear) / np.linalg.norm(exact)


errors = np.array([linearisation_error(s) for s in sigmas])
small = sigmas < 0.05
slope = np.polyfit(np.log(sigmas[small]), np.log(errors[small]), 1)[0]
print(f"log-log slope for σ < 0.05: {slope:.3f}")
assert abs(slope - 2) < 0.1  # second-order error
assert errors[0] < 1e-4 and errors[-1] > 0.3  # excellent for small σ, poor for σ ≈ 3

fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.loglog(sigmas, errors, "o-", ms=3, label="tanh, eq (9)")
ax.loglog(sigmas, errors[0] * (sigmas / sigmas[0]) ** 2, "k--", lw=1, label="∝ σ²")
ax.set_xlabel("noise standard deviation σ")
ax.set_ylabel("relative error of eq (9)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
save_figure(fig, "04_linearisation_error")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 4. The expected update, eqs (10)–(11)
#
# Put eq (9) into eq (8): `δ_l δ_{l+1}ᵀ ≈ y_l [y_lᵀ Wᵀ φ'_s + φ(b)ᵀ]` (eq 10). The noise has
# `E[y_l] = 0` and `E[y_l y_lᵀ] = σ² I`, so the `φ(b)` term averages away and
#
# `E[ΔB] ≈ η_B σ² φ'_s Wᵀ`  (eq 11),
#
# provided every unit has the same slope `φ'(b_i) = φ'_s`. Give every unit the same bias,
# `b_i = 0.5`, estimate `E[ΔB]/η_B = E[y_l y_{l+1}ᵀ]` with many noise vectors, and compare.
#
# For Gaussian noise there is also an exact answer. Stein's lemma, `E[u g(u)] = E[g'(u)]` for
# `u ~ N(0, 1)`, gives `E[y_l φ(W y_l + b)ᵀ] = σ² Wᵀ diag(E[φ'(z_i)])` with
# `z_i = w_i·y_l + b_i ~ N(b_i, σ²‖w_i‖²)`. Eq (11) replaces the mean slope `E[φ'(z_i)]` by
# `φ'(b_i)`, its limit as `σ → 0`. Because our rows have `‖w_i‖ = 1`, equal biases give every
# unit the same mean slope, so the product stays an exact multiple of `Wᵀ` at any σ; only the
# factor drifts away from `σ² φ'(b)`. We compute the mean slope by Gauss–Hermite quadrature.

# %%
nodes, weights = hermegauss(60)
weights = weights / weights.sum()  # E[g(u)] ≈ Σ weights · g(nodes) for u ~ N(0, 1)


def mean_slope(bias, s):
    """E[tanh'(bias + s·u)], u ~ N(0, 1): the exact (Stein) factor of a unit with a unit-norm row."""
    return (1 - np.tanh(np.asarray(bias)[..., None] + s * nodes) ** 2) @ weights


eq_layer = unit_row_layer()
eq_layer.params["b"][:] = 0.5
WT = eq_layer.W.T
phi_s = float(tanh.dphi(tanh.phi(0.5)))  # φ'_s = φ'(0.5)
n_mc = 400_000


def expected_dB(layer, s, bias=True, seed=13):
    """Monte Carlo estimate of E[y_l y_{l+1}ᵀ] = E[ΔB] / η_B."""
    y = s * np.random.default_rng(seed).standard_normal((n_mc, layer.n_in))
    return layer.mirror_correlation(y, tanh.phi(layer.mirror_forward(y, bias=bias)))


mc_sigmas = [0.1, 0.3, 1.0, 2.0]
estimates = {s: expected_dB(eq_layer, s) for s in mc_sigmas}
err_eq11 = rel(estimates[0.1], 0.1**2 * phi_s * WT)
print(f"σ = 0.1: ‖E[ΔB]/η_B − σ² φ'_s Wᵀ‖ / ‖σ² φ'_s Wᵀ‖ = {err_eq11:.3f}")
assert err_eq11 < 0.05  # eq (11) holds for small σ
for s in mc_sigmas:
    stein = s**2 * float(mean_slope(0.5, s)) * WT
    assert rel(estimates[s], stein) < 0.05, s  # the exact form, at every σ
    assert angle(estimates[s], WT) < 3, s  # always along Wᵀ
assert rel(estimates[2.0], 2.0**2 * phi_s * WT) > 0.3  # but eq (11)'s factor is wrong at σ = 2

# %% [markdown]
# The factor `c(σ) = ⟨E[ΔB]/η_B, Wᵀ⟩ / ‖Wᵀ‖²`, divided by `σ²`, is the slope the mirror
# "sees". It starts at `φ'(0.5)` (eq 11) and falls as the noise reaches tanh's flat tails.

# %%
factors = [np.sum(estimates[s] * WT) / np.sum(WT * WT) / s**2 for s in mc_sigmas]
fine = np.logspace(-1.2, 0.4, 50)
fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.semilogx(fine, [mean_slope(0.5, f) for f in fine], "k-", lw=1, label="E[φ′(z)] (Stein, exact)")
ax.axhline(phi_s, color="tab:red", ls="--", lw=1, label="φ′(b) (eq 11)")
ax.semilogx(mc_sigmas, factors, "o", label="Monte Carlo")
ax.set_xlabel("σ")
ax.set_ylabel("c(σ) / σ²")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "04_eq11_factor")
plt.show()
plt.close(fig)
assert abs(factors[0] / phi_s - 1) < 0.02

# %% [markdown]
# ## 5. Unequal biases break eq (11); bias-blocking (eq 12) repairs it
#
# Eq (11) needed `φ'(b) ≈ φ'_s I`. With unequal biases the units have different slopes, and the
# same algebra gives `E[ΔB] ≈ η_B σ² Wᵀ diag(φ'(b_i))`: column `i` of `Wᵀ` is scaled by its own
# `φ'(b_i)`. That is not a multiple of `Wᵀ`, so `B` will not line up with `Wᵀ`.
#
# Bias-blocking shuts off the bias currents in mirror mode: `y_{l+1} = φ(W y_l)`. Then every unit
# is linearised around 0 and `E[ΔB] ≈ η_B σ² φ'(0) Wᵀ` (eq 12), whatever the biases.
# `mirror_forward(noise, bias=False)` is the blocked forward pass.

# %%
het_layer = unit_row_layer()
b_het = np.linspace(-1.5, 1.5, 6)
het_layer.params["b"][:] = b_het
WT = het_layer.W.T
s = 0.2
open_ = expected_dB(het_layer, s, bias=True)  # biases on (eq 11's setting)
blocked = expected_dB(het_layer, s, bias=False)  # biases blocked (eq 12)
skewed = WT * tanh.dphi(tanh.phi(b_het))  # Wᵀ diag(φ'(b_i))

exact_open = s**2 * WT * mean_slope(b_het, s)  # σ² Wᵀ diag(E[φ'(z_i)]): Stein, no linearisation
exact_blocked = s**2 * mean_slope(0.0, s) * WT  # eq (12) before linearising: σ² E[φ'(σ u)] Wᵀ

print(f"∠(Wᵀ diag(φ'(b)), Wᵀ)              = {angle(skewed, WT):5.1f}°  (eq 11's prediction is no multiple of Wᵀ)")
print(f"∠(E[ΔB] biases on, Wᵀ)             = {angle(open_, WT):5.1f}°")
print(f"∠(E[ΔB] biases on, Wᵀ diag(φ'(b))) = {angle(open_, skewed):5.1f}°")
print(f"∠(E[ΔB] blocked, Wᵀ)               = {angle(blocked, WT):5.1f}°")
assert angle(skewed, WT) > 10 and angle(open_, WT) > 10  # not a multiple of Wᵀ
assert angle(open_, skewed) < 3 and angle(open_, exact_open) < 2.5  # but the column-scaled Wᵀ
assert angle(blocked, WT) < 1.5  # eq (12): a multiple of Wᵀ again
assert rel(blocked, exact_blocked) < 0.02
print(
    f"blocked factor / σ² = {np.sum(blocked * WT) / np.sum(WT * WT) / s**2:.3f}; "
    f"φ'(0) = 1, E[φ'(σu)] = {float(mean_slope(0.0, s)):.3f}"
)

# %% [markdown]
# Column by column: the factor each unit's column of `E[ΔB]` carries, divided by `σ²`, against
# that unit's bias. Without blocking it follows `φ'(b_i)` (exactly: the mean slope `E[φ'(z_i)]`
# of section 4, a few percent lower at `σ = 0.2`); with blocking it is the same for every unit,
# `φ'(0) = 1` up to that same small correction.


# %%
def column_factors(est):
    return np.sum(est * WT, axis=0) / np.sum(WT * WT, axis=0) / s**2


bb = np.linspace(-1.8, 1.8, 100)
fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.plot(bb, 1 - np.tanh(bb) ** 2, "k-", lw=1, label="φ′(b) (eq 11)")
ax.plot(bb, mean_slope(bb, s), "k:", lw=1, label="E[φ′(z)] at σ = 0.2 (exact)")
ax.plot(b_het, column_factors(open_), "o", label="biases on")
ax.plot(b_het, column_factors(blocked), "s", label="bias-blocking (eq 12)")
ax.set_xlabel("bias b_i of unit i")
ax.set_ylabel("column factor / σ²")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "04_bias_blocking_columns")
plt.show()
plt.close(fig)
assert np.allclose(column_factors(open_), mean_slope(b_het, s), atol=0.02)
assert np.allclose(column_factors(blocked), mean_slope(0.0, s), atol=0.02)
assert np.ptp(column_factors(open_)) > 0.5 and np.ptp(column_factors(blocked)) < 0.05

# %% [markdown]
# ## 6. Mirroring step by step: the angle `∠(B, Wᵀ)`
#
# With decay, each mirror step is `B ← (1 − λ_B) B + η_B · (batch mean of y_l y_{l+1}ᵀ)`. The
# random start shrinks by `(1 − λ_B)` per step, and `B` settles near
# `(η_B / λ_B) · E[y_l y_{l+1}ᵀ]` — a multiple of `Wᵀ` with blocking, a column-scaled `Wᵀ` without.
# We run `rule.mirror(net)` on a one-layer network with the unequal biases above, once with
# blocking and once without. The exact target without blocking uses the mean slopes `E[φ'(z_i)]`
# of section 4 (at `σ = 0.5`, `φ'(b_i)` alone is several degrees off, as section 3 predicts).


# %%
def mirror_run(bias_blocking, steps=2000, sigma=0.5, lr=0.004):
    layer = unit_row_layer()
    layer.params["b"][:] = b_het
    one = Network([layer, Tanh()])
    wm = minibp.get_rule(
        "wm", sigma=sigma, lr=lr, decay=lr, batch_size=512, bias_blocking=bias_blocking, seed=0
    )
    one.init_feedback(wm, np.random.default_rng(4))
    angles = [angle(layer.B, layer.W.T)]
    for _ in range(steps):
        wm.mirror(one)
        angles.append(angle(layer.B, layer.W.T))
    return layer, np.array(angles)


lay_block, ang_block = mirror_run(True)
lay_open, ang_open = mirror_run(False)
target_open = lay_open.W.T * mean_slope(b_het, 0.5)  # Wᵀ diag(E[φ'(z_i)])
print(f"start {ang_block[0]:.0f}°; after 2000 steps: blocked {ang_block[-1]:.2f}°, biases on {ang_open[-1]:.1f}°")
print(f"biases on, angle to Wᵀ diag(E[φ'(z_i)]): {angle(lay_open.B, target_open):.2f}°")
assert ang_block[0] > 60
assert ang_block[-1] < 1.5 and ang_open[-1] > 15
assert angle(lay_open.B, target_open) < 2
scale = np.sum(lay_block.B * lay_block.W.T) / np.sum(lay_block.W.T**2)
assert abs(scale / (0.5**2 * mean_slope(0.0, 0.5)) - 1) < 0.03  # B → (η_B/λ_B) σ² E[φ'] Wᵀ, η_B = λ_B

fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.semilogy(ang_block, label="bias-blocking (eq 12)")
ax.semilogy(ang_open, label="biases on, unequal (eq 11 fails)")
ax.set_xlabel("mirror steps")
ax.set_ylabel("∠(B, Wᵀ) in degrees")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
save_figure(fig, "04_angle_vs_mirror_steps")
plt.show()
plt.close(fig)

# %% [markdown]
# ### Exercise 1 · One mirror batch, with bias-blocking (implement it)
#
# Write `mirror_step(B, W, b, noise, lr, decay)`: what one mirror-mode batch does to the `B` of a
# tanh layer with bias-blocking. The layer fires `noise` (`y_l`, shape `(N, n_in)`) through `W`
# `(n_out, n_in)` with its bias `b` blocked (eq 12), `y_{l+1} = tanh(W y_l)`; eq (6) makes
# `δ_l = y_l` and `δ_{l+1} = y_{l+1}`; and eq (7) with decay gives the new
# `B = (1 − λ_B) B + η_B · mean_n(y_l y_{l+1}ᵀ)`, in the shape of `Wᵀ`. Return a new array.
# The cell after it redoes one pass of `rule.mirror` with your function.


# %%
def mirror_step(B, W, b, noise, lr, decay):
    """One mirror batch through a tanh layer with bias-blocking: eqs (6), (7) with decay, (12)."""
    ### BEGIN SOLUTION
    y_next = np.tanh(noise @ W.T)  # eq (12): no bias in mirror mode
    return (1 - decay) * B + lr * noise.T @ y_next / len(noise)  # eq (7), δ_l = y_l, δ_{l+1} = y_{l+1} (eq 6)
    ### END SOLUTION


mirror_step = exercises.check_mirror_step(mirror_step)

# %%
layer = unit_row_layer()
layer.params["b"][:] = b_het  # unequal biases: blocking must keep them out
one = Network([layer, Tanh()])
wm = minibp.get_rule("wm", sigma=0.5, lr=0.004, decay=0.004, batch_size=512, seed=0)
one.init_feedback(wm, np.random.default_rng(4))
noise = wm.sigma * wm.noise_generator(0).standard_normal((wm.batch_size, layer.n_in))  # the first pass's noise
B_by_hand = mirror_step(layer.B.copy(), layer.W, layer.b, noise, wm.lr, wm.decay)
wm.mirror(one)  # minibp's first mirror pass
print(f"one mirror pass, by hand vs rule.mirror: relative difference {rel(B_by_hand, layer.B):.1e}")
assert rel(B_by_hand, layer.B) < 1e-12

# %% [markdown]
# ### A whole network
#
# `rule.mirror(net)` does this for every weight layer of a `Network`. Below, a fresh
# 64-32-32-10 tanh network (biases still zero) from random `B`s. The output layer has no
# activation, so there `φ' = 1` and `B → (η_B / λ_B) σ² Wᵀ` exactly on average. In the hidden
# layers each column of `Wᵀ` gets its own factor `E[φ'(z_i)]` (Stein, section 3), which depends
# on that unit's row norm of `W` at a finite `σ`: `B` is a multiple of `Wᵀ` only as far as those
# factors agree. Here, at `σ = 0.5`, they run from about 0.75 to 0.89 across the hidden units,
# which alone leaves `B` about 2° from `Wᵀ`.

# %%
deep = minibp.mlp([64, 32, 32, 10], "tanh", seed=1, dtype="float64")
wm = minibp.get_rule("wm", sigma=0.5, lr=0.06, decay=0.06, batch_size=256, seed=1)
deep.init_feedback(wm, np.random.default_rng(2))
history = [minibp.matrix_angles(deep, wm)]
for _ in range(150):
    wm.mirror(deep)
    history.append(minibp.matrix_angles(deep, wm))
history = np.array(history)
print("∠(B, Wᵀ) per layer, start:", history[0].round(1), " after 150 steps:", history[-1].round(1))
assert history[0].min() > 80 and history[-1].max() < 8
top = deep.weight_layers[-1]
top_scale = np.sum(top.B * top.W.T) / np.sum(top.W.T**2)
assert abs(top_scale / 0.5**2 - 1) < 0.05

fig, ax = plt.subplots(figsize=(4.5, 3.5))
for i in range(history.shape[1]):
    ax.plot(history[:, i], label=f"layer {i + 1}")
ax.set_xlabel("mirror steps (rule.mirror(net))")
ax.set_ylabel("∠(B, Wᵀ) in degrees")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "04_mirror_whole_network")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 7. Both modes together
#
# Training alternates the modes. `minibp.train_step(net, rule, loss_fn, optimizer, x, y)` is the
# step `minibp.train` runs (read it in `minibp/step.py`): an engaged step — forward (eq 1), the
# loss, the feedback path through `B` with the gradients of eq (4) (section 1), the optimizer —
# and then `rule.after_step(net)`, which runs mirror mode (section 2) every `every` steps. `W`
# keeps changing, so `B` chases a moving target; with `every=1` and `λ_B = 0.05` it lags by
# about `1/λ_B = 20` steps. We train on digits and compare with feedback alignment, whose `B`
# never learns.


# %%
def train_steps(name, steps=300, **options):
    model = minibp.mlp([64, 64, 10], "tanh", seed=0, dtype="float64")
    r = minibp.get_rule(name, **options)
    model.init_feedback(r, np.random.default_rng(1))
    sgd = minibp.SGD(0.1)
    order = np.random.default_rng(2)
    losses, angles = [], []
    for _ in range(steps):
        idx = order.integers(0, len(data.x_train), 32)
        # engaged mode, eqs (1), (3)-(4), then mirror mode (WM only), eqs (6)-(7)
        result = minibp.train_step(model, r, loss_fn, sgd, data.x_train[idx], data.y_train[idx])
        losses.append(float(result.loss))
        angles.append(minibp.matrix_angles(model, r))
    probe = minibp.delta_angles(model, r, data.x_train[:256], data.y_train[:256], loss_fn)
    return np.array(losses), np.array(angles), probe[0], model


def feedback_scale(model):
    """Per layer, the multiple of Wᵀ that B is: the c that minimises ‖B − c Wᵀ‖."""
    return np.array([np.sum(L.params["B"] * L.W.T) / np.sum(L.W.T**2) for L in model.weight_layers])


wm_opts = dict(sigma=0.5, lr=0.05, decay=0.05, batch_size=128, every=1)
loss_wm, ang_wm, dang_wm, net_wm = train_steps("wm", **wm_opts)
loss_fa, ang_fa, dang_fa, net_fa = train_steps("fa")
loss_wmn, _, _, net_wmn = train_steps("wm", normalize=True, **wm_opts)  # B → (η_B/λ_B) Wᵀ: see below
loss_bp, *_ = train_steps("bp")
print(f"final matrix angles  WM {ang_wm[-1].round(1)}  FA {ang_fa[-1].round(1)}")
print(f"final delta angle    WM {dang_wm:.1f}°  FA {dang_fa:.1f}°")
print(f"loss, first 20 steps {loss_wm[:20].mean():.2f} → last 50 steps {loss_wm[-50:].mean():.2f} (WM)")
assert ang_wm[-1].max() < 10 and ang_fa[-1].min() > 40
assert dang_wm < 10 and dang_fa > 40
assert loss_wm[-50:].mean() < 0.3 * loss_wm[:20].mean()
runs = {"BP": loss_bp, "FA": loss_fa, "WM": loss_wm, "WM normalised": loss_wmn}
last50 = {name: float(v[-50:].mean()) for name, v in runs.items()}
print("loss, last 50 steps:", {k: round(v, 3) for k, v in last50.items()})
print("B as a multiple of Wᵀ, per layer: WM", feedback_scale(net_wm).round(2))
print("                                  WM normalised", feedback_scale(net_wmn).round(2))
assert (feedback_scale(net_wm) < 0.4).all() and (abs(feedback_scale(net_wmn) - 1) < 0.1).all()
assert last50["WM normalised"] < last50["WM"]

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
axes[0].plot(np.convolve(loss_wm, np.ones(20) / 20, "valid"), color="#d62728", label="WM")
axes[0].plot(np.convolve(loss_fa, np.ones(20) / 20, "valid"), color="#1f77b4", label="FA")
axes[0].plot(np.convolve(loss_wmn, np.ones(20) / 20, "valid"), color="#d62728", ls=":", label="WM, normalised")
axes[0].plot(np.convolve(loss_bp, np.ones(20) / 20, "valid"), color="k", lw=0.8, label="BP")
axes[0].set_xlabel("training step")
axes[0].set_ylabel("training loss (20-step mean)")
axes[0].legend(fontsize=8)
for i, ls in enumerate(["-", "--"]):
    axes[1].plot(ang_wm[:, i], ls, color="#d62728", label=f"WM layer {i + 1}")
    axes[1].plot(ang_fa[:, i], ls, color="#1f77b4", label=f"FA layer {i + 1}")
axes[1].set_xlabel("training step")
axes[1].set_ylabel("∠(B, Wᵀ) in degrees")
axes[1].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "04_engaged_and_mirror")
plt.show()
plt.close(fig)

# %% [markdown]
# WM's `B` points along `Wᵀ` within a few degrees, yet WM learns no faster than FA here. The
# reason is `B`'s *size*: it settles at `(η_B/λ_B) σ² E[φ'] Wᵀ` (eqs 11–12 with decay), and with
# `η_B = λ_B` and `σ = 0.5` that is about a fifth of `Wᵀ` (the printed multiples). So the `δ` that
# reaches the hidden layer is about five times smaller than backprop's, and that layer learns as
# if at a fifth of the learning rate. `normalize=True` divides `σ² E[φ']` out of each mirror
# update, so `B` settles at `Wᵀ` itself, and WM then learns about as fast as BP. The direction
# comes from mirroring; the scale is a choice of `η_B`, `λ_B` and `σ`, which the paper leaves open.
#
# ## What we found
#
# * Engaged mode is feedback alignment (eqs 3–4); mirror mode is a Hebbian product of noise and
#   its image through `W` (eqs 6–7), and minibp's `rule.mirror(net)` is exactly that, layer by layer.
# * The linearisation of eq (9) has an error that grows like `σ²`; for Gaussian noise the mirror
#   product is exactly `σ² Wᵀ diag(E[φ'(z_i)])` (Stein), and eq (11)'s `σ² φ'_s Wᵀ` is its small-σ form.
# * Unequal biases give each column of `Wᵀ` its own factor `φ'(b_i)`, so `B` settles tens of
#   degrees away from `Wᵀ`; bias-blocking (eq 12) removes the biases from the mirror pass and the
#   angle drops below a degree.
# * Alternating the modes keeps `B` within a few degrees of a moving `Wᵀ`, while FA's `B` stays far.
# * Mirroring sets `B`'s direction; its size is `(η_B/λ_B) σ² E[φ']` times `Wᵀ`, and a small `B` learns
#   slowly. `normalize=True` makes it `(η_B/λ_B) Wᵀ`.
#
# ## Open-ended exercises
#
# 1. **Where eq (9) stops being good.** For the tanh layer of section 3 (unit rows, biases
#    `linspace(−1, 1, 6)`, the same 4000 noise vectors `u`), find the noise level `σ*` at which
#    the relative linearisation error reaches 10 %. Use bisection on `linearisation_error`.
# 2. **Mirroring through ReLU.** ReLU has no derivative at 0, so eq (12)'s `φ'(0)` is undefined.
#    Show, with Stein's lemma, that with bias-blocking `E[y relu(W y)ᵀ] = (σ²/2) Wᵀ` exactly, so
#    that mirroring drives `B → (σ²/2)(η_B/λ_B) Wᵀ`. Check it with `rule.mirror` on a one-layer
#    ReLU network.
# 3. **The noise floor.** Once `B` has settled, its angle to `Wᵀ` does not reach 0: each step adds
#    fresh noise. Argue that the steady-state angle scales like `√(λ_B / M)` for a mirror batch of
#    `M` noise vectors, and check that quadrupling `M` roughly halves the angle.
#
# Worked solutions: `solutions/04_weight_mirror_solutions.py`.

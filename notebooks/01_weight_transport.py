# %% [markdown]
# # 01 · The weight-transport problem
#
# **Paper:** Akrout et al., *Deep Learning without Weight Transport* (NeurIPS 2019),
# **Section 2**, eqs (1)–(2).
#
# A network computes forward with eq (1),
#
# $$\mathbf{y}_{l+1} = \phi(\mathbf{W}_{l+1}\mathbf{y}_l + \mathbf{b}_{l+1}) \qquad (1)$$
#
# and backprop sends its error signals back with eq (2),
#
# $$\delta_l = \phi'(\mathbf{y}_l) \odot \mathbf{W}_{l+1}^T \delta_{l+1} \qquad (2)$$
#
# ($\odot$ multiplies element by element: the paper writes $\phi'(\mathbf{y}_l)$ as a diagonal matrix in
# front of $\mathbf{W}_{l+1}^T\delta_{l+1}$, which is the same thing.) The same matrix
# $\mathbf{W}_{l+1}$ appears in both: the feedback synapses must be the transpose of the forward
# ones. That is the *weight-transport problem*.
#
# In this notebook you will compute, and check numerically:
#
# 1. eq (1) by hand for one layer, against minibp's layer;
# 2. a gradient by **finite differences**, with no machinery at all;
# 3. that $\delta_l$ — the derivative of the loss with respect to a layer's pre-activation —
#    is what eq (2) computes, and what `net.backward(dout, minibp.get_rule("bp"))` returns;
# 4. how the error of a finite difference depends on its step $h$ (a V-shaped curve);
# 5. exactly where $\mathbf{W}^T$ enters the feedback path, and what happens to $\delta$
#    when another matrix takes its place — the question the rest of the paper answers.
#
# Notation: minibp stores a batch as **rows**, so the paper's column vector
# $\mathbf{W}\mathbf{y}$ is `y @ W.T` for a batch `y` of shape `(N, n_in)`.
# Everything here is float64, so checks can be tight.

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

rng = np.random.default_rng(0)
net = minibp.mlp([4, 5, 3], "tanh", seed=0, dtype="float64")  # 4 inputs → 5 tanh units → 3 linear outputs
dense1, tanh1, dense2 = net.layers
for layer in net.weight_layers:  # biases start at zero; make them non-zero so the "+ b" of eq (1) is tested
    layer.params["b"][:] = rng.normal(scale=0.5, size=layer.b.shape)

x = rng.standard_normal((8, 4))  # a batch of N = 8 inputs y_0
t = rng.standard_normal((8, 3))  # regression targets
loss_fn = minibp.MeanSquaredError()  # L = mean_n ½‖z_n − t_n‖²
print(net)

# %% [markdown]
# ## 1 · The forward path, eq (1)
#
# The first layer is `Dense` (the linear part $\mathbf{z}_1 = \mathbf{W}_1\mathbf{y}_0 + \mathbf{b}_1$)
# followed by `Tanh` ($\mathbf{y}_1 = \phi(\mathbf{z}_1)$). Compute it by hand and compare with
# what the network's layers hold after a forward pass.

# %%
z1_hand = x @ dense1.W.T + dense1.b  # W_1 y_0 + b_1, one row per example
y1_hand = np.tanh(z1_hand)  # φ = tanh
out = net.forward(x)  # eq (1), layer by layer
out_hand = y1_hand @ dense2.W.T + dense2.b  # the output layer is linear (φ = identity)

assert np.allclose(y1_hand, tanh1.y, rtol=0, atol=1e-14)  # the tanh layer keeps its output y_1
assert np.allclose(out_hand, out, rtol=0, atol=1e-14)
print("largest difference, hand vs engine:", np.abs(out_hand - out).max())

# %%
fig, ax = plt.subplots(figsize=(4.5, 3))
reach = max(3.0, float(np.abs(z1_hand).max()) + 0.2)  # the curve spans every unit's pre-activation
zs = np.linspace(-reach, reach, 200)
ax.plot(zs, np.tanh(zs), color="0.6", label="φ(z) = tanh z")
ax.scatter(z1_hand.ravel(), tanh1.y.ravel(), s=14, color="C0", label="(z₁ by hand, y₁ from the engine)")
ax.set_xlabel("pre-activation z₁ = W₁y₀ + b₁")
ax.set_ylabel("y₁")
ax.set_title("Eq (1): every hidden unit sits on φ")
ax.legend(frameon=False, fontsize=8)
save_figure(fig, "01_forward_eq1")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 2 · A gradient with no machinery: the finite difference
#
# Before any backprop, here is the most direct way to learn how the loss depends on one
# synapse $W_{1,ij}$: nudge it and watch the loss. The **central difference**
#
# $$g_{\rm fd} = \frac{L(w + h) - L(w - h)}{2h}$$
#
# approximates $\partial L / \partial w$ with an error of order $h^2$.


# %%
def current_loss():
    """The loss of the network as it is now, on the batch (x, t)."""
    return float(loss_fn(net.forward(x), t)[0])


i, j = 2, 1  # the synapse from input unit 1 to hidden unit 2
w0 = float(dense1.W[i, j])


def loss_at_weight(w):
    dense1.W[i, j] = w
    value = current_loss()
    dense1.W[i, j] = w0  # put it back
    return value


h = 1e-5
g_fd = (loss_at_weight(w0 + h) - loss_at_weight(w0 - h)) / (2 * h)
L0 = loss_at_weight(w0)
print(f"L = {L0:.6f},  ∂L/∂W1[{i},{j}] ≈ {g_fd:.8f}")

# %% [markdown]
# **Check.** If $g_{\rm fd}$ is the slope, the loss minus its tangent line,
# $r(s) = L(w+s) - L(w) - s\,g_{\rm fd}$, is quadratic in $s$: $r(s)/s^2$ tends to the
# constant $\tfrac12 L''(w)$. A wrong slope $g_{\rm fd} + \epsilon$ would add $-\epsilon/s$, which
# blows up as $s$ shrinks.

# %%
steps = np.array([1e-2, 3e-3, 1e-3])
remainder = np.array([loss_at_weight(w0 + s) - L0 - s * g_fd for s in steps])
curvature = remainder / steps**2
print("r(s)/s² for s =", steps, ":", curvature)
assert abs(curvature[0]) > 1e-3  # a real curvature, so the ratio test below means something
assert np.allclose(curvature, curvature[-1], rtol=0.05)

# %%
s = np.linspace(-1.5, 1.5, 61)
fig, ax = plt.subplots(figsize=(4.5, 3))
ax.plot(w0 + s, [loss_at_weight(w0 + v) for v in s], label="L(w)")
ax.plot(w0 + s, L0 + s * g_fd, "--", label=f"tangent, slope g_fd = {g_fd:.3f}")
ax.axvline(w0, color="0.7", lw=0.8)
ax.set_xlabel(f"W1[{i},{j}]")
ax.set_ylabel("loss")
ax.set_title("Nudging one synapse")
ax.legend(frameon=False, fontsize=8)
save_figure(fig, "01_one_weight_fd")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 3 · δ is a derivative with respect to a pre-activation
#
# The error signal $\delta$ of eq (2) is $\partial L/\partial \mathbf{z}$, the derivative of the
# loss with respect to a layer's *pre-activation* $\mathbf{z} = \mathbf{W}\mathbf{y} + \mathbf{b}$.
# We can measure it, again with nothing but finite differences: run the network from
# $\mathbf{z}_1$ onwards and nudge each entry.
#
# At the output, $\mathbf{z}_2$ is the network's output and for the squared error
# $L = \frac1N\sum_n \tfrac12\|\mathbf{z}_{2,n} - \mathbf{t}_n\|^2$ the derivative is
# $\delta_2 = (\mathbf{z}_2 - \mathbf{t})/N$.


# %%
def loss_from_z1(z1):
    """Run the network from the hidden pre-activation z_1 to the loss."""
    return float(loss_fn(dense2.forward(tanh1.forward(z1)), t)[0])


def central_difference(f, z, h):
    """∂f/∂z entry by entry, by central differences with step h."""
    grad = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        e = np.zeros_like(z)
        e[idx] = h
        grad[idx] = (f(z + e) - f(z - e)) / (2 * h)
    return grad


z1 = dense1.forward(x)
z2 = net.forward(x)
delta1_fd = central_difference(loss_from_z1, z1, 1e-5)
delta2_fd = central_difference(lambda z: float(loss_fn(z, t)[0]), z2, 1e-5)

assert np.allclose(delta2_fd, (z2 - t) / len(x), rtol=0, atol=1e-10)  # δ_2 = (z_2 − t)/N
print("δ_1 by finite differences, first example:", delta1_fd[0].round(5))

# %% [markdown]
# ## 4 · Backprop computes the same δ
#
# Now the machinery. `loss_fn` returns the output error $\delta_L$ (`dout`) and
# `net.backward(dout, rule)` runs the feedback path, returning $\delta$ at the output of
# every weight layer, input to output. Under the backprop rule (`"bp"`) this is eq (2).
# It also stores each layer's weight gradient $\partial L/\partial\mathbf{W}$ in
# `layer.grads["W"]` — compare it with the one-synapse finite difference of section 2.

# %%
bp = minibp.get_rule("bp")
out = net.forward(x)
loss, dout = loss_fn(out, t)
delta1, delta2 = net.backward(dout, bp)

rel_err = np.linalg.norm(delta1 - delta1_fd) / np.linalg.norm(delta1)
print(f"relative error of δ_1, backprop vs finite differences: {rel_err:.1e}")
assert np.allclose(delta2, delta2_fd, rtol=0, atol=1e-10)
assert rel_err < 1e-8
assert abs(dense1.grads["W"][i, j] - g_fd) < 1e-8 * abs(g_fd)

# %% [markdown]
# The same check for **every** synapse: finite differences of the loss with respect to all
# of $\mathbf{W}_1$ and $\mathbf{W}_2$ against the gradients backprop stored.


# %%
def loss_as_function_of(layer):
    def f(W):
        saved = layer.W.copy()
        layer.W[...] = W
        value = current_loss()
        layer.W[...] = saved
        return value

    return f


net.backward(loss_fn(net.forward(x), t)[1], bp)  # a fresh pass: the finite differences left perturbed values
grads_fd = [central_difference(loss_as_function_of(layer), layer.W.copy(), 1e-5) for layer in net.weight_layers]
grads_bp = [layer.grads["W"] for layer in net.weight_layers]
for g_num, g_bp in zip(grads_fd, grads_bp):
    assert np.allclose(g_num, g_bp, rtol=1e-7, atol=1e-10)

# %%
fig, ax = plt.subplots(figsize=(4, 4))
pairs = [
    (delta1_fd, delta1, "δ₁"),
    (delta2_fd, delta2, "δ₂"),
    (grads_fd[0], grads_bp[0], "∂L/∂W₁"),
    (grads_fd[1], grads_bp[1], "∂L/∂W₂"),
]
for k, (a, b, name) in enumerate(pairs):
    ax.scatter(a.ravel(), b.ravel(), s=12, color=f"C{k}", label=name)
lim = max(np.abs(a).max() for a, _, _ in pairs) * 1.1
ax.plot([-lim, lim], [-lim, lim], color="0.6", lw=0.8)
ax.set_xlabel("finite difference")
ax.set_ylabel("backprop (net.backward)")
ax.set_title("Backprop = finite differences")
ax.legend(frameon=False, fontsize=8)
save_figure(fig, "01_fd_vs_backprop")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 5 · How small should h be?
#
# The central difference has two errors that pull in opposite directions:
#
# * **truncation**: the Taylor terms it ignores, of order $h^2$ (the $L'''$ term);
# * **rounding**: $L(w\pm h)$ are floats, each wrong by about $\varepsilon|L|$ with
#   $\varepsilon \approx 2.2\times10^{-16}$, and dividing their difference by $2h$ magnifies
#   that to order $\varepsilon / h$.
#
# So the total error falls like $h^2$ for large $h$, rises like $1/h$ for small $h$, and is
# smallest near $h \sim \varepsilon^{1/3} \approx 10^{-5}$. We measure it against backprop's
# $\delta_1$, which the previous section showed to be exact.

# %%
hs = np.logspace(-13, -1, 25)
errors = np.array(
    [np.linalg.norm(central_difference(loss_from_z1, z1, hh) - delta1) / np.linalg.norm(delta1) for hh in hs]
)
big, small = hs >= 1e-3, hs <= 1e-9
slope_big = np.polyfit(np.log10(hs[big]), np.log10(errors[big]), 1)[0]
slope_small = np.polyfit(np.log10(hs[small]), np.log10(errors[small]), 1)[0]
h_best = hs[np.argmin(errors)]
print(
    f"slope for large h: {slope_big:.2f} (theory 2); for small h: {slope_small:.2f} (theory −1); best h ≈ {h_best:.0e}"
)
assert 1.8 < slope_big < 2.2
assert -1.5 < slope_small < -0.5
assert 1e-7 <= h_best <= 1e-3

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(hs, errors, "o-", ms=4, label="relative error of the central difference")
ax.loglog(hs[big], errors[big][-1] * (hs[big] / hs[big][-1]) ** 2, "--", color="C1", label="∝ h² (truncation)")
ax.loglog(hs[small], errors[small][0] * hs[small][0] / hs[small], "--", color="C2", label="∝ 1/h (rounding)")
ax.set_xlabel("step h")
ax.set_ylabel("‖δ₁(fd) − δ₁(bp)‖ / ‖δ₁(bp)‖")
ax.set_title("The finite-difference V")
ax.legend(frameon=False, fontsize=8)
save_figure(fig, "01_fd_step_size")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 6 · Where Wᵀ enters: eq (2) by hand
#
# minibp splits eq (2) into its two factors. The weight layer computes $\mathbf{F}\,\delta_{l+1}$
# (`layer.backward_input(delta, F)`), the activation layer below multiplies by
# $\phi'(\mathbf{y}_l)$ (for tanh, $\phi' = 1 - \mathbf{y}^2$, computed from the output alone).
# The matrix $\mathbf{F}$ is the one thing a learning rule chooses:
# `rule.feedback_matrix(layer)`. For backprop it is $\mathbf{W}^T$ — not a copy, but a view
# of the very array the forward path uses. That shared memory *is* weight transport.
#
# ### Exercise 1 · Eq (2) by hand (implement it)
#
# Write `eq2_delta(delta_next, W, y)`: backprop's error at the output of a tanh layer,
# $\delta_l = \phi'(\mathbf{y}_l) \odot \mathbf{W}_{l+1}^T \delta_{l+1}$, for a batch of rows.
# `delta_next` is $\delta_{l+1}$, shape `(N, n_out)`; `W` is $\mathbf{W}_{l+1}$, shape `(n_out, n_in)`;
# `y` is the tanh layer's output $\mathbf{y}_l$, shape `(N, n_in)`. Two facts from above: for tanh,
# $\phi'$ is a function of the output, $1 - y^2$; and in rows, $\mathbf{W}^T\delta$ is `delta_next @ W`.
#
# `exercises.check_eq2_delta` runs your function and minibp's on random shapes and values and
# names the likely mistake in one sentence. Until you fill it in, it says so and hands back
# minibp's own function, which the cell after it uses.


# %%
def eq2_delta(delta_next, W, y):
    """Eq (2) for a tanh layer, in rows: φ'(y_l) ⊙ W_{l+1}ᵀ δ_{l+1}."""
    ### BEGIN SOLUTION
    return (1 - y**2) * (delta_next @ W)
    ### END SOLUTION


eq2_delta = exercises.check_eq2_delta(eq2_delta)

# %%
out = net.forward(x)  # a fresh forward pass (the finite differences above left perturbed values in the layers)
dout = loss_fn(out, t)[1]
delta1, delta2 = net.backward(dout, bp)

F = bp.feedback_matrix(dense2)
assert F.shape == (5, 3) and np.array_equal(F, dense2.W.T)
assert np.shares_memory(F, dense2.W)  # the feedback path reads the forward synapses themselves

y1 = tanh1.y
phi_prime = 1 - y1**2  # φ'(y_1) for tanh
delta1_hand = eq2_delta(delta2, dense2.W, y1)  # eq (2): your function, or minibp's until it is written
assert np.allclose(delta1_hand, phi_prime * (F @ delta2.T).T, rtol=0, atol=1e-15)  # column form F δ_2, in rows
assert np.allclose(delta1_hand, delta1, rtol=0, atol=1e-15)

# the engine's two factors, one at a time
Fdelta = dense2.backward_input(delta2, F)
assert np.allclose(Fdelta, (F @ delta2.T).T, rtol=0, atol=1e-15)
assert np.allclose(tanh1.backward(Fdelta), delta1, rtol=0, atol=1e-15)
print("eq (2) by hand equals the engine's δ_1")

# %%
fig, axes = plt.subplots(1, 2, figsize=(6, 2.8))
vmax = np.abs(dense2.W).max()
for ax, M, title in zip(axes, [dense2.W, F], ["forward W₂ (3 × 5)", "feedback F = W₂ᵀ (5 × 3)"]):
    im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
axes[0].add_patch(plt.Rectangle((1.5, 0.5), 1, 1, fill=False, lw=2))  # W₂[1, 2] ...
axes[1].add_patch(plt.Rectangle((0.5, 1.5), 1, 1, fill=False, lw=2))  # ... is F[2, 1]
fig.colorbar(im, ax=axes, shrink=0.8)
fig.suptitle("Every feedback synapse must copy a forward one", fontsize=10, y=1.04)
save_figure(fig, "01_W_and_WT")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 7 · Replace Wᵀ by another matrix
#
# A brain has no way to keep $\mathbf{F} = \mathbf{W}^T$. What if the feedback path uses some
# other matrix $\mathbf{B}$? The feedback-alignment rule `"fa"` gives each layer a random
# $\mathbf{B}$ (`net.init_feedback`) and uses $\mathbf{F} = \mathbf{B}$. On the *same* forward
# pass and the same output error, $\delta_2$ is unchanged (it is the loss's own derivative)
# but $\delta_1$ is not — and it is no longer the derivative the finite differences measured.

# %%
fa = minibp.get_rule("fa")
net.init_feedback(fa, np.random.default_rng(1))
out = net.forward(x)
dout = loss_fn(out, t)[1]
delta1_B, delta2_B = net.backward(dout, fa)

assert np.array_equal(fa.feedback_matrix(dense2), dense2.B)
assert np.allclose(delta2_B, delta2, rtol=0, atol=1e-15)
assert np.allclose(delta1_B, phi_prime * (dense2.B @ delta2.T).T, rtol=0, atol=1e-15)  # same formula, B for Wᵀ
print(f"∠(B, W₂ᵀ) = {minibp.angle(dense2.B, dense2.W.T):.1f}°")
print(f"∠(δ₁ with B, δ₁ with Wᵀ) = {minibp.angle(delta1_B, delta1):.1f}°")
assert np.linalg.norm(delta1_B - delta1_fd) > 0.1 * np.linalg.norm(delta1_fd)  # not the gradient any more

# %% [markdown]
# How far does $\delta_1$ turn as $\mathbf{B}$ turns away from $\mathbf{W}^T$? Build feedback
# matrices at a chosen **matrix angle** $\alpha$ from $\mathbf{W}_2^T$,
# $\mathbf{B}_\alpha = \cos\alpha\,\hat{\mathbf{W}}^T + \sin\alpha\,\hat{\mathbf{R}}$ with
# $\hat{\mathbf{R}}$ a random unit matrix orthogonal to $\mathbf{W}_2^T$, and measure the
# **delta angle** $\angle(\delta_1^{\mathbf{B}}, \delta_1^{\rm BP})$ with `minibp.delta_angles`
# (the two quantities of the paper's Fig 4).

# %%
WT = dense2.W.T.copy()
W_hat = WT / np.linalg.norm(WT)
R = np.random.default_rng(2).standard_normal(WT.shape)
R -= (R * W_hat).sum() * W_hat  # remove the Wᵀ component
R_hat = R / np.linalg.norm(R)

alphas = np.linspace(0, 180, 19)
matrix_angle, delta_angle = [], []
for a in np.radians(alphas):
    dense2.params["B"] = dense2.as_feedback(np.cos(a) * W_hat + np.sin(a) * R_hat)
    matrix_angle.append(minibp.matrix_angles(net, fa)[1])
    delta_angle.append(minibp.delta_angles(net, fa, x, t, loss_fn)[0])
matrix_angle, delta_angle = np.array(matrix_angle), np.array(delta_angle)

assert np.allclose(matrix_angle, alphas, atol=1e-6)  # the construction gives the intended angle
assert delta_angle[0] < 1e-6 and delta_angle[-1] > 180 - 1e-6  # B = ±Wᵀ direction: δ along ±δ_BP
assert np.all(np.diff(delta_angle) > 0)  # turning B away from Wᵀ turns δ away from the gradient

dense2.params["B"] = dense2.as_feedback(3.0 * WT)  # a positive multiple of Wᵀ ...
assert minibp.delta_angles(net, fa, x, t, loss_fn)[0] < 1e-6  # ... gives δ in backprop's direction

# %%
fig, ax = plt.subplots(figsize=(4.2, 3.4))
ax.plot(matrix_angle, delta_angle, "o-", ms=4, label="δ₁ angle")
ax.plot([0, 180], [0, 180], color="0.7", lw=0.8, label="equal angles")
ax.axhline(90, color="C3", lw=0.8, ls=":")
ax.text(2, 93, "beyond 90°: δ points uphill", color="C3", fontsize=8)
ax.set_xlabel("matrix angle ∠(B, W₂ᵀ) (°)")
ax.set_ylabel("delta angle ∠(δ₁, δ₁ᴮᴾ) (°)")
ax.set_title("Feedback matrix vs error signal")
ax.legend(frameon=False, fontsize=8, loc="lower right")
save_figure(fig, "01_delta_vs_matrix_angle")
plt.show()
plt.close(fig)

# %% [markdown]
# **What this shows.** Only the *direction* of $\mathbf{B}$ matters (a positive multiple of
# $\mathbf{W}^T$ gives backprop's direction exactly), and the error signal stays within 90° of
# the gradient — so a weight change along $-\delta$ still tends to go downhill — as long as
# $\mathbf{B}$ is not too far from $\mathbf{W}^T$. The rest of the paper is about getting a
# $\mathbf{B}$ close enough to $\mathbf{W}^T$ without ever reading $\mathbf{W}$:
# a fixed random $\mathbf{B}$ (feedback alignment, notebook 02), a $\mathbf{B}$ learned from
# noise (the transposing rule and the weight mirror, notebook 03 on), and Kolen–Pollack.

# %% [markdown]
# ## Open-ended exercises
#
# Worked solutions: `notebooks/solutions/01_weight_transport_solutions.py`.
#
# 1. **Sigmoid units.** Derive $\phi'$ for $\phi(z) = 1/(1+e^{-z})$ written in terms of the
#    output $y = \phi(z)$. Build `minibp.mlp([4, 5, 3], "sigmoid", dtype="float64")`, compute
#    $\delta_1$ by eq (2) by hand with your $\phi'(y)$, and check it against
#    `net.backward(dout, bp)` and against central finite differences.
# 2. **The output error for cross-entropy.** For `minibp.SoftmaxCrossEntropy`,
#    $L = -\frac1N\sum_n \log \mathrm{softmax}(\mathbf{z}_n)_{t_n}$, show that
#    $\delta_L = (\mathrm{softmax}(\mathbf{z}) - \mathrm{onehot}(t))/N$. Check your formula against the
#    loss's returned gradient and against finite differences.
# 3. **Two feedback steps.** In `minibp.mlp([4, 6, 5, 3], "tanh", dtype="float64")`, apply
#    eq (2) twice to write $\delta_1$ in terms of $\delta_3$. Which forward matrices does
#    $\delta_1$ need? Check your expression against the engine, then show that replacing only
#    $\mathbf{W}_3^T$ by a random matrix changes $\delta_1$ as well as $\delta_2$.

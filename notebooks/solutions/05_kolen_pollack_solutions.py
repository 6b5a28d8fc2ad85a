# %% [markdown]
# # 05 · Kolen–Pollack — worked solutions
#
# Solutions to the exercises of `05_kolen_pollack`. Each one rebuilds what it needs and ends in
# an `assert` that checks the answer.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minibp
from minibp.plots import save_figure

data = minibp.data.load_digits(dtype="float64")
loss_fn = minibp.SoftmaxCrossEntropy()


def kp_run(lr, momentum, wd, steps, seed=0):
    """Train a small ReLU MLP with KP on digits; return the network, the starting W's, W − Bᵀ per
    layer at every step (a list of lists of arrays) and the matrix angles at every step."""
    net = minibp.mlp([64, 32, 16, 10], "relu", seed=seed, dtype="float64")
    rule = minibp.get_rule("kp")
    net.init_feedback(rule, np.random.default_rng(seed + 1))
    W0 = [layer.W.copy() for layer in net.weight_layers]
    opt = minibp.SGD(lr, momentum=momentum, weight_decay=wd)
    gen = np.random.default_rng(seed + 2)
    diffs = [[layer.W - layer.B.T for layer in net.weight_layers]]
    angles = [minibp.matrix_angles(net, rule)]
    for _ in range(steps):
        idx = gen.integers(0, len(data.x_train), 32)
        _, dout = loss_fn(net.forward(data.x_train[idx]), data.y_train[idx])
        net.backward(dout, rule)
        opt.step(net.param_layers)
        diffs.append([layer.W - layer.B.T for layer in net.weight_layers])
        angles.append(minibp.matrix_angles(net, rule))
    return net, W0, diffs, np.array(angles)


# %% [markdown]
# ## Exercise 1 — momentum
#
# `W` and `Bᵀ` receive the same gradient `g`, so for `D = W − Bᵀ` and its momentum buffer
# `v_D = v_W − v_Bᵀ` the gradients cancel:
#
# `v_{t+1} = μ v_t + wd · D_t`,  `D_{t+1} = D_t − η v_{t+1}`.
#
# From the second line at step `t`, `η v_t = D_{t−1} − D_t`. Substituting,
# `D_{t+1} = D_t − μ (D_{t−1} − D_t) − λ D_t = (1 + μ − λ) D_t − μ D_{t−1}` with `λ = η · wd`.
# Each entry of `D` follows this linear recursion, so `D_t = c₊ z₊^t + c₋ z₋^t` with `z±` the
# roots of `z² − (1 + μ − λ) z + μ = 0`. For small `λ`, `z₊ ≈ 1 − λ/(1 − μ)` and `z₋ ≈ μ`; the
# `z₋` part dies out within a few tens of steps and `D` then shrinks by `1 − z₊ ≈ λ/(1 − μ)` per
# step: `1/(1 − μ)` = 10 times faster than without momentum at `μ = 0.9`.

# %%
lr, mu, wd, steps = 0.05, 0.9, 0.01, 1000
lam = lr * wd
net, _, diffs, _ = kp_run(lr, mu, wd, steps)

# the recursion, on the real matrices (the buffer starts at 0, so D_1 = (1 − λ) D_0)
for t in range(1, steps):
    for d_prev, d_now, d_next in zip(diffs[t - 1], diffs[t], diffs[t + 1]):
        expected = (1 + mu - lam) * d_now - mu * d_prev
        assert np.linalg.norm(d_next - expected) <= 1e-10 * np.linalg.norm(d_now)

norms = np.array([[np.linalg.norm(d) for d in step] for step in diffs])
t = np.arange(steps + 1)
late = t >= 300
measured = [1 - np.exp(np.polyfit(t[late], np.log(norms[late, i]), 1)[0]) for i in range(3)]
z_plus = ((1 + mu - lam) + np.sqrt((1 + mu - lam) ** 2 - 4 * mu)) / 2
print(f"measured rate per layer: {np.round(measured, 6)}")
print(f"exact 1 − z₊ = {1 - z_plus:.6f};  approximation λ/(1 − μ) = {lam / (1 - mu):.6f};  λ = {lam:.6f}")

fig, ax = plt.subplots(figsize=(4.5, 3.5))
for i in range(3):
    ax.semilogy(norms[:, i] / norms[0, i], label=f"layer {i + 1}")
ax.semilogy(z_plus**t, "k--", lw=1, label="z₊^t")
ax.semilogy((1 - lam) ** t, "k:", lw=1, label="(1 − λ)^t, no momentum")
ax.set_xlabel("training step")
ax.set_ylabel("‖W − Bᵀ‖ / ‖W₀ − B₀ᵀ‖")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "05_solution_momentum")
plt.show()
plt.close(fig)
assert all(abs(r / (1 - z_plus) - 1) < 1e-3 for r in measured)
assert all(abs(r / (lam / (1 - mu)) - 1) < 0.1 for r in measured)

# %% [markdown]
# ## Exercise 2 — no decay
#
# With `λ = 0`, eq (13)–(14) give `W(t+1) − B(t+1) = W(t) − B(t)`: the difference never changes,
# however far `W` moves. The angle still falls, because `W_t = W₀ + S_t` and `B_tᵀ = B₀ᵀ + S_t`
# share the accumulated updates `S_t`. Once `‖S_t‖` outgrows `‖W₀‖` and `‖B₀‖`, both matrices
# are mostly `S_t` — the same "alignment by growth" that makes feedback alignment work, and it
# stalls once learning slows down: the initial mismatch never goes away.

# %%
net, W0, diffs, angles = kp_run(0.1, 0.0, 0.0, 400)
drift = max(np.linalg.norm(d - d0) / np.linalg.norm(d0) for d, d0 in zip(diffs[-1], diffs[0]))
moved = [np.linalg.norm(layer.W - w0) / np.linalg.norm(d0) for layer, w0, d0 in zip(net.weight_layers, W0, diffs[0])]
print(f"max relative change of W − Bᵀ over 400 steps: {drift:.1e}")
print("‖W_t − W₀‖ / ‖W₀ − B₀ᵀ‖ per layer:", np.round(moved, 2))
print("∠(B, Wᵀ) per layer: start", angles[0].round(1), "→ end", angles[-1].round(1))

fig, ax = plt.subplots(figsize=(4.5, 3.5))
for i in range(3):
    ax.plot(angles[:, i], label=f"layer {i + 1}")
ax.set_xlabel("training step (λ = 0)")
ax.set_ylabel("∠(B, Wᵀ) in degrees")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "05_solution_no_decay")
plt.show()
plt.close(fig)
assert drift < 1e-12
assert min(moved) > 0.5  # W moved by a good fraction of the mismatch, which stayed put
assert np.all(angles[-1] < angles[0] - 15)

# %% [markdown]
# ## Exercise 3 — half-life
#
# Without momentum `‖W_t − B_tᵀ‖ = (1 − λ)^t ‖W₀ − B₀ᵀ‖`, so it halves after
# `t½ = ln 2 / (−ln(1 − λ)) ≈ 0.693 / λ` steps (the approximation holds for small `λ`). The first
# whole step at which the norm is at most half its start is `⌈t½⌉`, in every layer.

# %%
for lam_target, lr in [(0.01, 0.1), (0.05, 0.1)]:
    wd = lam_target / lr
    half_life = np.log(2) / -np.log(1 - lam_target)
    _, _, diffs, _ = kp_run(lr, 0.0, wd, int(2 * half_life) + 5)
    norms = np.array([[np.linalg.norm(d) for d in step] for step in diffs])
    first_half = [int(np.argmax(norms[:, i] <= 0.5 * norms[0, i])) for i in range(3)]
    print(
        f"λ = {lam_target}: t½ = {half_life:.2f} (≈ 0.693/λ = {0.693 / lam_target:.1f}); "
        f"first step at half: {first_half}"
    )
    assert first_half == [int(np.ceil(half_life))] * 3

lams = np.logspace(-3, -0.5, 40)
fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.loglog(lams, np.log(2) / -np.log(1 - lams), label="ln 2 / −ln(1 − λ)")
ax.loglog(lams, np.log(2) / lams, "k--", lw=1, label="0.693 / λ")
ax.set_xlabel("λ per step")
ax.set_ylabel("half-life of ‖W − Bᵀ‖ (steps)")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "05_solution_half_life")
plt.show()
plt.close(fig)

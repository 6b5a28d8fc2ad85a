# %% [markdown]
# # 06 — The five rules side by side: worked solutions
#
# Self-contained: each solution re-creates what it needs. The runs are those of notebook 06,
# section 2 (MLP 64-128-128-10 on the digits, 20 epochs, weight decay 0.02, seed 0).

# %%
import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import minibp
from minibp.optim import get_schedule
from minibp.plots import RULE_COLORS, save_figure

threadpool_limits(1)  # tiny matrices: one BLAS thread is fastest
data = minibp.data.load_digits()
base = minibp.TrainConfig(hidden=(128, 128), epochs=20, weight_decay=2e-2, wm_lr=0.02, wm_decay=0.02, seed=0)


def kp_shrink(cfg, n_train):
    """The factor by which KP's ‖W − Bᵀ‖ has shrunk at the end of a run (notebook 06, section 3)."""
    schedule = get_schedule(cfg.schedule, epochs=cfg.epochs, milestones=cfg.milestones, gamma=cfg.gamma)
    steps = math.ceil(n_train / cfg.batch_size)
    d, v = 1.0, 0.0
    for epoch in range(cfg.epochs):
        for step in range(steps):
            v = cfg.momentum * v + cfg.weight_decay * d
            d -= schedule(cfg.lr, epoch + step / steps) * v
    return d


# %% [markdown]
# ## Exercise 1 — KP's trade-off between alignment and learning
#
# Train KP alone with four weight decays. The recurrence predicts what is left of the random
# start `W₀ − B₀ᵀ` after the run; the angles should follow it, and the accuracy pays for it.

# %%
decays = [0.005, 0.01, 0.02, 0.04]
angles, accs, left = [], [], []
for wd in decays:
    cfg = dataclasses.replace(base, rule="kp", weight_decay=wd)
    _, hist = minibp.train(cfg, data=data, progress=False)
    angles.append(hist[-1]["matrix_angle"])
    accs.append(hist[-1]["test_accuracy"])
    left.append(kp_shrink(cfg, len(data.x_train)))
    print(
        f"wd {wd:5.3f}: left of the random start {left[-1]:7.2%}, angles "
        + " ".join(f"{a:5.1f}" for a in angles[-1])
        + f", test accuracy {accs[-1]:.3f}"
    )

fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3))
for i in range(3):
    a1.plot(decays, [a[i] for a in angles], "o-", color=plt.get_cmap("viridis")(i / 2), label=f"layer {i + 1}")
a1.set(xscale="log", xlabel="weight decay", ylabel="final matrix angle (°)", title="KP: alignment")
a1.legend(frameon=False)
a2.plot(decays, accs, "o-", color=RULE_COLORS["kp"])
a2.set(xscale="log", xlabel="weight decay", ylabel="test accuracy", title="KP: learning")
fig.tight_layout()
save_figure(fig, "06_solution_kp_tradeoff")
plt.show()
plt.close(fig)

# more decay: less of the random start left, smaller angles in every layer, and lower accuracy
assert all(x > y for x, y in zip(left, left[1:]))
assert all((np.array(x) > np.array(y)).all() for x, y in zip(angles, angles[1:]))
assert accs[-1] < accs[0] - 0.02

# %% [markdown]
# A bigger `λ` does speed up alignment (from 58° to 0° in the first layer), and it does hamper
# learning (test accuracy drops by about 5 points): the balance the paper's Discussion asks for.

# %% [markdown]
# ## Exercise 2 — more mirroring: lag against noise
#
# The mirror rate `η_B = λ_B` sets two things. The random start of `B` fades like
# `(1 − λ_B)^passes` (the **lag**), and `B` is an average over roughly the last `1/λ_B` mirror
# batches, so its **noise** grows with `λ_B`. Here there are 900 steps, so 225 mirror passes.
# Raising the rate cures the lag but adds noise; more noise samples per pass (`wm_batch_size`)
# cure the noise — the paper's "longer mirroring with more examples".

# %%
settings = {
    "rate 0.008, 128 samples": (0.008, 128),
    "rate 0.05, 128 samples": (0.05, 128),
    "rate 0.05, 512 samples": (0.05, 512),
}
wm = {}
for label, (rate, batch) in settings.items():
    cfg = dataclasses.replace(base, rule="wm", wm_lr=rate, wm_decay=rate, wm_batch_size=batch)
    _, hist = minibp.train(cfg, data=data, progress=False)
    wm[label] = np.array(hist[-1]["matrix_angle"])
    print(f"{label}: random start left {(1 - rate) ** 225:8.2e}, angles " + " ".join(f"{a:5.1f}" for a in wm[label]))

fig, ax = plt.subplots(figsize=(6, 3))
for j, (label, a) in enumerate(wm.items()):
    ax.bar(np.arange(3) + (j - 1) * 0.27, a, 0.27, label=label)
ax.set_xticks(range(3), ["layer 1 (64 in)", "layer 2 (128 in)", "layer 3 (128 in)"])
ax.set_ylabel("final matrix angle (°)")
ax.legend(frameon=False, fontsize=8)
fig.tight_layout()
save_figure(fig, "06_solution_wm_mirroring")
plt.show()
plt.close(fig)

lag, noisy, more = wm.values()
assert lag[0] > 40 and lag[0] == lag.max()  # too slow: the first layer still remembers its random B
assert (more < noisy).all() and more.max() < 8  # the same rate with 4x the noise samples: better everywhere

# %% [markdown]
# With the default rate 0.008 every `B` still carries 16 % of its random start (`0.992^225`).
# That matters in the hidden layers: weight decay 0.02 shrinks their `W` to about a fifth of its
# initial norm during this run, so `B`'s target, a multiple of `Wᵀ` (eqs 11–12), ends up smaller
# than the leftover. The output layer's `W` grows instead, and there the leftover matters little.
# Rate 0.05 forgets the start, but each `B` then rests on only about 1/0.05 = 20 noise batches;
# four times more samples per batch roughly halve the angles.

# %% [markdown]
# ## Exercise 3 — the first layer's feedback matrix is never used
#
# `δ` is only needed at the *input* of a weight layer if something below it learns. Below the
# first layer there is only the data, so `B₁` is never multiplied by anything. Two FA networks
# that differ only in `B₁` must therefore learn exactly the same weights.


# %%
def train_fa(b1_seed, steps=50):
    net = minibp.mlp([64, 128, 128, 10], seed=0)
    rule = minibp.get_rule("fa")
    net.init_feedback(rule, np.random.default_rng(1))  # the same B₂, B₃ for both networks
    first = net.weight_layers[0]
    first.params["B"] = first.as_feedback(np.random.default_rng(b1_seed).standard_normal(first.B.shape))
    opt, loss_fn = minibp.SGD(0.05, momentum=0.9), minibp.SoftmaxCrossEntropy()
    for step in range(steps):
        i = (32 * step) % (len(data.x_train) - 32)
        out = net.forward(data.x_train[i : i + 32])
        _, dout = loss_fn(out, data.y_train[i : i + 32])
        net.backward(dout, rule)
        opt.step(net.param_layers)
    return net, rule


net_a, rule = train_fa(b1_seed=10)
net_b, _ = train_fa(b1_seed=11)
print("B₁ differ by", float(np.abs(net_a.weight_layers[0].B - net_b.weight_layers[0].B).max()))
print("first-layer matrix angles:", [round(minibp.matrix_angles(n, rule)[0], 1) for n in (net_a, net_b)])
for la, lb in zip(net_a.weight_layers, net_b.weight_layers):
    assert np.array_equal(la.W, lb.W) and np.array_equal(la.b, lb.b)
print("every W and b is bit-for-bit identical after 50 steps")

# %% [markdown]
# The weights agree bit for bit, while the first-layer matrix angles differ: that angle measures
# nothing about learning. FA's first-layer angle stays near 90° in the notebook's figures simply
# because `B₁` is a random matrix that no signal ever passes through (and for WM and KP, `B₁`
# aligns all the same, though it is never used).

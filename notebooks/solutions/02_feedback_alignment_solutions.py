# %% [markdown]
# # 02 · Feedback alignment — worked solutions
#
# Solutions to the exercises of `notebooks/02_feedback_alignment.py` (paper Section 3, eqs 3–4).
# Each solution is self-contained and ends in an `assert` that checks it.

# %%
import numpy as np

import minibp

n_in, n_hid, n_out = 20, 30, 10
teacher_rng = np.random.default_rng(100)
T = teacher_rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
x_test = teacher_rng.standard_normal((500, n_in))
y_test = x_test @ T.T
loss_fn = minibp.MeanSquaredError()


def train_fa(scale=1.0, lr=0.05, lr_first=None, B2_from_W=False, rule_name="fa", steps=2000, seed=0):
    """FA (or BP) on the teacher x ↦ T x; B scaled by `scale`; layer 1 may get its own learning rate."""
    net = minibp.mlp([n_in, n_hid, n_out], "tanh", seed=seed, dtype="float64")
    dense1, _, dense2 = net.layers
    rule = minibp.get_rule(rule_name)
    net.init_feedback(rule, np.random.default_rng([seed, 1]))
    if rule_name == "fa":
        for layer in net.weight_layers:
            layer.params["B"] = layer.as_feedback(scale * layer.B)
        if B2_from_W:
            dense2.params["B"] = dense2.as_feedback(dense2.W.T.copy())  # a copy: fixed from now on
    opt1, opt2 = minibp.SGD(lr_first or lr), minibp.SGD(lr)
    data_rng = np.random.default_rng([seed, 2])
    hist = {"loss": [], "angle": []}
    for step in range(steps + 1):
        if step % 100 == 0:
            hist["loss"].append(float(loss_fn(net.forward(x_test), y_test)[0]))
            hist["angle"].append(minibp.matrix_angles(net, rule)[1])
        xb = data_rng.standard_normal((32, n_in))
        _, d = loss_fn(net.forward(xb), xb @ T.T)
        net.backward(d, rule)
        opt1.step([dense1])
        opt2.step([dense2])
    return net, {k: np.array(v) for k, v in hist.items()}


# %% [markdown]
# ## Exercise 1 · Scale does not matter much
#
# With $\mathbf{B}_2 \to 10\,\mathbf{B}_2$, eq (3) gives $\delta_1 \to 10\,\delta_1$ (it is linear in
# $\mathbf{B}$), so eq (4) makes every step on $\mathbf{W}_1$ ten times larger; $\delta_2$ and the step
# on $\mathbf{W}_2$ are unchanged. Scaling $\mathbf{B}$ is therefore *exactly* the same as keeping
# $\mathbf{B}$ and using a ten times larger learning rate for $\mathbf{W}_1$ — and a learning rate of
# $\eta/10$ for $\mathbf{W}_1$ undoes it. (Scaling $\mathbf{B}_1$ changes nothing: it is never used.)
#
# Here the larger effective step on $\mathbf{W}_1$ even helps: the network still learns and aligns,
# faster than with the original scale.

# %%
net_1, base = train_fa(scale=1.0)
net_10, scaled = train_fa(scale=10.0)
net_undo, undone = train_fa(scale=10.0, lr_first=0.005)
print(f"final loss:  B: {base['loss'][-1]:.4f}   10·B: {scaled['loss'][-1]:.4f}", end="   ")
print(f"10·B with η₁/10: {undone['loss'][-1]:.4f}")
print(f"final ∠(B₂, W₂ᵀ):  B: {base['angle'][-1]:.1f}°   10·B: {scaled['angle'][-1]:.1f}°")
assert scaled["loss"][-1] < 0.05 * scaled["loss"][0] and scaled["angle"][-1] < 60  # still learns, still aligns
for a, b in zip(net_undo.weight_layers, net_1.weight_layers):  # η/10 on W₁ undoes the scaling exactly
    assert np.allclose(a.W, b.W, rtol=0, atol=1e-10)

# %% [markdown]
# ## Exercise 2 · FA started from Wᵀ
#
# With $\mathbf{B}_2 = \mathbf{W}_2^T(0)$ the first step is exactly backprop's. But $\mathbf{B}_2$ is
# then frozen while $\mathbf{W}_2$ moves — and at the start it moves a lot, because the random
# initial $\mathbf{W}_2$ has nothing to do with the task. Within a few hundred steps the matrix angle
# climbs to about the same level that FA from a random $\mathbf{B}$ reaches by alignment, and the
# final loss is only a little better than FA's from a random $\mathbf{B}$, still behind backprop.
# A head start in alignment is lost unless $\mathbf{B}$ keeps *learning* $\mathbf{W}^T$ — the
# motivation for the weight mirror and Kolen–Pollack.

# %%
_, from_W = train_fa(B2_from_W=True)
_, bp = train_fa(rule_name="bp")
print("∠(B₂, W₂ᵀ) every 500 steps, B₂ = W₂ᵀ(0):", from_W["angle"][::5].round(1))
print("                       random B₂:        ", base["angle"][::5].round(1))
print(f"final loss: FA from Wᵀ {from_W['loss'][-1]:.4f}, FA random {base['loss'][-1]:.4f}, BP {bp['loss'][-1]:.4f}")
assert from_W["angle"][0] < 1e-6  # it starts as backprop ...
assert from_W["angle"][-1] > 30  # ... but the alignment does not survive W₂'s learning
assert abs(from_W["angle"][-1] - base["angle"][-1]) < 10  # it ends where random-B FA ends
assert bp["loss"][-1] < from_W["loss"][-1]  # and behind backprop

# %% [markdown]
# ## Exercise 3 · Digits
#
# `minibp.train` runs the whole loop (SGD with momentum, weight decay, cosine schedule) and records
# per epoch the test accuracy, the matrix angles (input to output) and the delta angles of the
# hidden layers. With one hidden layer of 64 ReLU units, FA learns the digits almost as well as
# backprop; its output layer's $\mathbf{W}$ aligns with $\mathbf{B}^T$ (well below 90°), its first
# layer's $\mathbf{B}_1$ is unused and stays at 90°, and FA's training loss stays above backprop's.

# %%
from minibp.data import load_digits  # noqa: E402

digits = load_digits()
records = {}
for rule in ("bp", "fa"):
    _, records[rule] = minibp.train(minibp.TrainConfig(rule=rule, epochs=8, hidden=(64,)), data=digits, progress=False)
fa_last, bp_last = records["fa"][-1], records["bp"][-1]
print(f"test accuracy: BP {bp_last['test_accuracy']:.3f}, FA {fa_last['test_accuracy']:.3f}")
print("FA matrix angles:", np.round(fa_last["matrix_angle"], 1), " delta angle:", np.round(fa_last["delta_angle"], 1))
print(f"train loss: BP {bp_last['train_loss']:.3f}, FA {fa_last['train_loss']:.3f}")
assert fa_last["test_accuracy"] > 0.9 and bp_last["test_accuracy"] > 0.9
assert records["fa"][0]["matrix_angle"][1] > 80 and fa_last["matrix_angle"][1] < 75  # W₂ turned towards B₂ᵀ
assert fa_last["delta_angle"][0] < 90
assert fa_last["train_loss"] > bp_last["train_loss"]

# %% [markdown]
# # 01 · The weight-transport problem — worked solutions
#
# Solutions to the exercises of `notebooks/01_weight_transport.py` (paper Section 2, eqs 1–2).
# Each solution is self-contained and ends in an `assert` that checks it.

# %%
import numpy as np

import minibp


def central_difference(f, z, h=1e-5):
    """∂f/∂z entry by entry, by central differences with step h."""
    grad = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        e = np.zeros_like(z)
        e[idx] = h
        grad[idx] = (f(z + e) - f(z - e)) / (2 * h)
    return grad


# %% [markdown]
# ## Exercise 1 · Sigmoid units
#
# With $y = \phi(z) = 1/(1+e^{-z})$,
# $\phi'(z) = e^{-z}/(1+e^{-z})^2 = \frac{1}{1+e^{-z}}\cdot\frac{e^{-z}}{1+e^{-z}} = y\,(1-y)$,
# since $e^{-z}/(1+e^{-z}) = 1 - y$. Like tanh's $1 - y^2$, it needs only the unit's output.
# Eq (2) for the hidden layer is then $\delta_1 = y_1(1-y_1) \odot \mathbf{W}_2^T\delta_2$.

# %%
rng = np.random.default_rng(0)
net = minibp.mlp([4, 5, 3], "sigmoid", seed=0, dtype="float64")
dense1, sig1, dense2 = net.layers
for layer in net.weight_layers:
    layer.params["b"][:] = rng.normal(scale=0.5, size=layer.b.shape)
x, t = rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
loss_fn = minibp.MeanSquaredError()
bp = minibp.get_rule("bp")

# a numerical check of the derivative itself: φ'(z) from the output vs a finite difference of φ
z = np.linspace(-4, 4, 9)
y = sig1.phi(z)
dphi_fd = (sig1.phi(z + 1e-6) - sig1.phi(z - 1e-6)) / 2e-6
assert np.allclose(y * (1 - y), dphi_fd, rtol=0, atol=1e-9)

# eq (2) by hand against the engine
out = net.forward(x)
dout = loss_fn(out, t)[1]
delta1, delta2 = net.backward(dout, bp)
y1 = sig1.y
delta1_hand = y1 * (1 - y1) * (delta2 @ dense2.W)  # rows: (Wᵀ δ)ᵀ = δᵀ W
assert np.allclose(delta1_hand, delta1, rtol=0, atol=1e-15)

# ... and against finite differences of the loss with respect to z_1
z1 = dense1.forward(x)
delta1_fd = central_difference(lambda z1: float(loss_fn(dense2.forward(sig1.forward(z1)), t)[0]), z1)
print("relative error vs finite differences:", np.linalg.norm(delta1_hand - delta1_fd) / np.linalg.norm(delta1_fd))
assert np.linalg.norm(delta1_hand - delta1_fd) < 1e-8 * np.linalg.norm(delta1_fd)

# %% [markdown]
# ## Exercise 2 · The output error for cross-entropy
#
# For one example with logits $\mathbf{z}$ and label $t$, write $p_k = e^{z_k}/\sum_j e^{z_j}$.
# Then $\ell = -\log p_t = -z_t + \log\sum_j e^{z_j}$ and
# $\partial\ell/\partial z_k = -[k = t] + e^{z_k}/\sum_j e^{z_j} = p_k - [k=t]$.
# The loss is the mean over $N$ examples, so $\delta_L = (\mathbf{p} - \mathrm{onehot}(t))/N$.

# %%
rng = np.random.default_rng(1)
logits = rng.standard_normal((6, 4)) * 2
labels = rng.integers(0, 4, size=6)
ce = minibp.SoftmaxCrossEntropy()

p = np.exp(logits - logits.max(axis=1, keepdims=True))
p /= p.sum(axis=1, keepdims=True)
delta_L_hand = (p - np.eye(4)[labels]) / len(labels)

loss, delta_L_engine = ce(logits, labels)
delta_L_fd = central_difference(lambda z: float(ce(z, labels)[0]), logits)
assert np.allclose(delta_L_hand, delta_L_engine, rtol=0, atol=1e-15)
assert np.allclose(delta_L_hand, delta_L_fd, rtol=0, atol=1e-10)
assert np.allclose(delta_L_hand.sum(axis=1), 0, atol=1e-15)  # each row sums to zero: p sums to 1

# %% [markdown]
# ## Exercise 3 · Two feedback steps
#
# In $4 \to 6 \to 5 \to 3$ with tanh, eq (2) applied twice gives
#
# $$\delta_1 = \phi'(\mathbf{y}_1) \odot \mathbf{W}_2^T\big(\phi'(\mathbf{y}_2) \odot \mathbf{W}_3^T \delta_3\big).$$
#
# $\delta_1$ needs **both** $\mathbf{W}_2^T$ and $\mathbf{W}_3^T$: every feedback synapse above a
# layer must mirror its forward partner. Replacing only $\mathbf{W}_3^T$ changes $\delta_2$
# directly and $\delta_1$ through $\delta_2$.

# %%
rng = np.random.default_rng(2)
net = minibp.mlp([4, 6, 5, 3], "tanh", seed=3, dtype="float64")
d1, a1, d2, a2, d3 = net.layers
x, t = rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
out = net.forward(x)
dout = loss_fn(out, t)[1]
delta1, delta2, delta3 = net.backward(dout, bp)

phi1, phi2 = 1 - a1.y**2, 1 - a2.y**2
delta1_hand = phi1 * ((phi2 * (delta3 @ d3.W)) @ d2.W)  # rows form of the formula above
assert np.allclose(delta1_hand, delta1, rtol=0, atol=1e-15)

# keep W₂ᵀ as the feedback for layer 2, but give layer 3 a random B
fa = minibp.get_rule("fa")
net.init_feedback(fa, np.random.default_rng(4))
d2.params["B"] = d2.as_feedback(d2.W.T.copy())  # exact transport for W₂ ...
f1, f2, f3 = net.backward(dout, fa)  # ... but a random B₃ in place of W₃ᵀ
assert np.allclose(f3, delta3, rtol=0, atol=1e-15)  # the output error is untouched
angles = [minibp.angle(f, d) for f, d in [(f2, delta2), (f1, delta1)]]
print("∠(δ₂, δ₂ᴮᴾ), ∠(δ₁, δ₁ᴮᴾ) =", np.round(angles, 1))
assert min(angles) > 20  # both hidden errors moved, though only W₃ᵀ was replaced
